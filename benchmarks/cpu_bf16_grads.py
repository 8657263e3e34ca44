"""Are this CPU's bf16 Conv3d weight gradients right? (docs/bad-input.md, ``--amp bf16`` on a CPU)

One training step's weight gradients of SceneMotion's R3D-18 (width 0.25) on a random batch of
8-frame 48² clips, computed three ways on the CPU: bf16 autocast with oneDNN (torch's default
kernels), bf16 autocast with PyTorch's own kernels (what ``engine.runner.cpu_bf16_guard``
selects), and fp32. Prints, per convolution, the relative error of each bf16 gradient against
fp32 (bf16 rounding alone gives about the same figure in both bf16 columns; the fp32 column
shows what the kernel choice alone changes) and the step times. On an affected CPU the oneDNN
bf16 step may also abort the process ("double free or corruption", or NaN in the table): that
is the answer too.

    python benchmarks/cpu_bf16_grads.py [--frames 8] [--threads 2]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from models import build_model  # noqa: E402
from models.outputs import logits_of  # noqa: E402


def grads(model, x, y, *, onednn, amp):
    torch.backends.mkldnn.enabled = onednn
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
        out = logits_of(model(x))
    torch.nn.functional.cross_entropy(out.float(), y).backward()
    seconds = time.perf_counter() - t0
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None and p.dim() == 5}, seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--frames', type=int, default=8)
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model({'name': 'resnet3d', 'args': {'n_class': 8, 'model_depth': 18, 'widen_factor': 0.25}})
    x, y = torch.randn(16, 1, 3, args.frames, 48, 48), torch.randint(0, 8, (16,))
    runs = {}
    for name, onednn, amp in (('fp32', True, False), ('fp32 native', False, False), ('bf16 oneDNN', True, True),
                              ('bf16 native', False, True)):
        grads(model, x, y, onednn=onednn, amp=amp)   # warm-up
        runs[name] = grads(model, x, y, onednn=onednn, amp=amp)
    ref = runs['fp32'][0]
    print(f'torch {torch.__version__} | threads {torch.get_num_threads()} | batch 16 × {args.frames}×48² | '
          f'step seconds: ' + ', '.join(f'{k} {v[1]:.3f}' for k, v in runs.items()))
    cols = ('fp32 native', 'bf16 oneDNN', 'bf16 native')
    print(f'{"convolution":30s} ' + ' '.join(f'{k:>12s}' for k in cols) + '   (relative error against fp32 with oneDNN)')
    worst = {}
    for n, g in ref.items():
        errs = [((runs[k][0][n] - g).norm() / g.norm()).item() for k in cols]
        for k, e in zip(cols, errs):
            worst[k] = max(worst.get(k, 0.0), e if e == e else float('inf'))
        print(f'{n:30s} ' + ' '.join(f'{e:12.3g}' for e in errs))
    print('worst: ' + ', '.join(f'{k} {v:.3g}' for k, v in worst.items()))


if __name__ == '__main__':
    main()
