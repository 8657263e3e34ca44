"""Training-step throughput: baseline, DRL-FGSM and DRL-dir steps (BENCHMARKS §3).

R3D-18 (400 classes) at 16 × 112 × 112, batch 8, one SGD step per iteration, with the same
step objects the entry scripts use (``supervised.step.ClassifierStep``, ``drl.steps``). Prints
clips/s (median over the timed steps, after warm-up) for each step, and the machine load.

    python benchmarks/train_step.py                 # CPU, 2 threads
    python benchmarks/train_step.py --steps 5 --only fgsm
    python benchmarks/train_step.py --device cuda --amp bf16
"""
import argparse
import contextlib
import os
import statistics
import sys
import time

import torch
from torch.nn import CrossEntropyLoss

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from drl.attacks import FGSM  # noqa: E402
from drl.build import build_drl_optimizer  # noqa: E402
from drl.losses import KDLoss  # noqa: E402
from drl.steps import DRLAugStep, DRLDirStep  # noqa: E402
from models import build_model  # noqa: E402
from supervised.step import ClassifierStep  # noqa: E402
from utils.build import to_memory_format  # noqa: E402

AUTHORS = {'baseline': 1.83, 'fgsm': 0.27}  # clips/s measured here with the authors' code
SP_OPT = {'optimizer': {'name': 'SGD', 'epochs': 1,
                        'model_sp': {'args': {'lr': 0.01, 'momentum': 0.9, 'weight_decay': 1e-4}},
                        'model': {'args': {'lr': 0.01}}}}


def video_model(device):
    return build_model({'name': 'resnet3d', 'args': {'model_depth': 18, 'n_class': 400}}).to(device)


def spatial_model(device, channels_last):
    g = build_model({'name': 'resnet2d', 'args': {'model_depth': 18, 'n_class': 400}}).to(device)
    return to_memory_format(g) if channels_last else g


def make_step(kind, device, channels_last, fuse_bn=True):
    """(step, optimizer) for ``baseline`` | ``fgsm`` | ``dir``."""
    f = video_model(device)
    if kind == 'baseline':
        opt = torch.optim.SGD(f.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        return ClassifierStep(f, CrossEntropyLoss()), opt
    if kind == 'fgsm':
        g = spatial_model(device, channels_last)
        attack = FGSM(eps=0.03, iters=5, momentum=1, scale=[0.229, 0.224, 0.225], dim=2,
                      fuse_bn=fuse_bn)
        return DRLAugStep(f, g, KDLoss(), attack=attack), build_drl_optimizer(SP_OPT, f=f, g=g)[0]
    if kind == 'dir':
        step = DRLDirStep(f, None, KDLoss(reduction='none'), lam=0.5, shuffle=False)
        return step, build_drl_optimizer(SP_OPT, f=f)[0]
    raise ValueError(kind)


def time_step(step, optimizer, batch, n_warmup, n_steps, amp, device):
    """Seconds per step (list) for engine-equivalent steps: forward, zero_grad, backward, update."""
    step.train(True)
    ctx = (torch.autocast(device.type, dtype=torch.bfloat16) if amp == 'bf16'
           else contextlib.nullcontext())
    times = []
    for i in range(n_warmup + n_steps):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with ctx:
            out = step.train_step(batch)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        if i >= n_warmup:
            times.append(time.perf_counter() - t0)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--threads', type=int, default=2, help='CPU threads (BENCHMARKS §3 uses 2)')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--frames', type=int, default=16)
    p.add_argument('--size', type=int, default=112)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--steps', type=int, default=3, help='timed steps per kind (median reported)')
    p.add_argument('--only', nargs='*', default=['baseline', 'fgsm', 'dir'])
    p.add_argument('--no-channels-last', action='store_true', help='spatial model in NCHW')
    p.add_argument('--no-fuse-bn', action='store_true', help='attack the spatial model with its BN layers')
    p.add_argument('--amp', default='off', choices=['off', 'bf16'])
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    batch = {'video': torch.randn(args.batch, 1, 3, args.frames, args.size, args.size, device=device),
             'label': torch.randint(0, 400, (args.batch,), device=device)}
    print(f'device {device} | threads {torch.get_num_threads()} | batch {args.batch} × '
          f'{args.frames}×{args.size}×{args.size} | amp {args.amp} | '
          f'spatial channels-last {not args.no_channels_last} | attack fuse_bn {not args.no_fuse_bn}')
    if hasattr(os, 'getloadavg'):
        print('load average before: %.2f %.2f %.2f' % os.getloadavg())
    rates = {}
    for kind in args.only:
        step, optimizer = make_step(kind, device, not args.no_channels_last, not args.no_fuse_bn)
        times = time_step(step, optimizer, batch, args.warmup, args.steps, args.amp, device)
        med = statistics.median(times)
        rate = args.batch / med
        rates[kind] = rate
        ref = AUTHORS.get(kind)
        vs = f' | {rate / ref:.2f}× the authors\' {ref} clips/s' if ref and device.type == 'cpu' else ''
        print(f'{kind:8s} {rate:7.3f} clips/s (median {med:.2f} s/step over {len(times)}: '
              f'{", ".join(f"{t:.2f}" for t in times)}){vs}', flush=True)
        del step, optimizer
    if {'baseline', 'fgsm'} <= set(rates) and device.type == 'cpu':
        # on a shared machine absolute rates move with the load; the ratio of two steps
        # measured in the same run does much less
        ours, theirs = rates['fgsm'] / rates['baseline'], AUTHORS['fgsm'] / AUTHORS['baseline']
        print(f'fgsm / baseline throughput ratio = {ours:.3f} (authors\' code: {theirs:.3f})')
    if hasattr(os, 'getloadavg'):
        print('load average after: %.2f %.2f %.2f' % os.getloadavg())


if __name__ == '__main__':
    main()
