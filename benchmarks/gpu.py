#!/usr/bin/env python3
"""GPU benchmark (BENCHMARKS §4): training throughput, DRL-FGSM step, DataLoader workers.

One command, a few minutes on one H100-class GPU::

    python benchmarks/gpu.py                      # --device auto: cuda if present
    python benchmarks/gpu.py --toy --device cpu   # tiny sizes, seconds on a CPU (the test)

Prints, each as clips/s (median over timed steps after warm-up, CUDA synchronised around
every step):

1. R3D-18 (400 classes) training at 16 × 112 × 112, input ``B × 1 × C × T × H × W``, SGD step
   through ``supervised.step.ClassifierStep``: fp32, bf16 autocast, bf16 autocast +
   channels-last-3d (cudnn.benchmark on), and the ratio best bf16 / fp32.
2. The DRL-FGSM step of ``main-drl.py`` (``drl.steps.DRLAugStep``): R3D-18 video model and
   per-frame ResNet-18 spatial model, 5-iteration FGSM on the spatial model (input gradients
   only, fp32 inside the attack, ``drl.attacks.FGSM``), both models updated; fp32 and
   bf16 + channels-last.
3. DataLoader throughput of the real clip pipeline (``datasets.base.VideoDataset`` with the
   Kinetics train transform: 16 frames at 16 fps, resize 128, crop 112, flip, jitter 0.2 × 4,
   ``datasets.collate.video_collate``) on generated short-GOP 340 × 256 × 10 s H.264 videos,
   for several worker counts and each combination of decoder (``dataset.decode_device``:
   CPU or the GPU's NVDEC through PyAV's hwaccel) and wire format (float32 clips, or uint8
   clips with flip / jitter / normalisation on the device: ``dataset.transform.
   device_augment``), counted when the batch is ready on the device; and the smallest
   setting whose throughput reaches the training throughput.

A summary block of ``key=value`` lines ends the output.
"""
import argparse
import fractions
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor

import av
import cv2
import numpy as np
import torch
from torch.nn import CrossEntropyLoss

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.base import VideoDataset, VideoRecord  # noqa: E402
from datasets.collate import video_collate  # noqa: E402
from datasets.decode import hw_decode_status  # noqa: E402
from datasets.device_augment import pack_params  # noqa: E402
from datasets.transforms import build_transform, jitter_params  # noqa: E402
from drl.attacks import FGSM  # noqa: E402
from drl.build import build_drl_optimizer  # noqa: E402
from drl.steps import DRLAugStep  # noqa: E402
from engine.build import to_memory_format  # noqa: E402
from engine.engine import to_device  # noqa: E402
from engine.losses import KDLoss  # noqa: E402
from models import build_model  # noqa: E402
from supervised.step import ClassifierStep  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import time_step  # noqa: E402  (same timing loop as the CPU benchmark)

STD = [0.229, 0.224, 0.225]
# sizes of a full run and of --toy (CPU, seconds). --toy clips have 8 frames, not fewer than
# the R3D-18 stem's 7-frame kernel: torch 2.14.1's bf16 CPU Conv3d aborts the process ("double
# free or corruption") in the backward pass of a temporal kernel longer than the clip
# (AVX512-BF16 Xeon; README, "Speed switches")
FULL = dict(batch=32, frames=16, size=112, resize=128, warmup=5, steps=20, videos=24,
            seconds=10.0, workers=[1, 2, 4, 8, 12, 16])
TOY = dict(batch=2, frames=8, size=32, resize=40, warmup=0, steps=1, videos=2,
           seconds=2.0, workers=[0, 1])
# SGD settings of the DRL configs (lr does not change the timing)
SP_OPT = {'optimizer': {'name': 'SGD', 'epochs': 1,
                        'model_sp': {'args': {'lr': 0.01, 'momentum': 0.9, 'weight_decay': 1e-4}},
                        'model': {'args': {'lr': 0.01, 'momentum': 0.9, 'weight_decay': 1e-4}}}}
LOADER_TIMEOUT_S = 120  # a worker that sends no batch for this long is an error, not a wait
TRAIN_CONFIGS = [('fp32', False, False), ('bf16', True, False), ('bf16_cl3d', True, True)]
# loader settings: (decode_device, wire format); the first is the plain pipeline, and ties in
# worker count go to the earlier (simpler) one
COMBOS = [('cpu', 'float32'), ('cpu', 'uint8'), ('cuda', 'float32'), ('cuda', 'uint8')]
COMBO_TEXT = {'float32': 'float32 clips', 'uint8': 'uint8 clips + device augment'}


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def build_r3d18(device, channels_last):
    f = build_model({'name': 'resnet3d', 'args': {'n_class': 400, 'model_depth': 18}}).to(device)
    return to_memory_format(f) if channels_last else f


def build_r2d18(device, channels_last):
    g = build_model({'name': 'resnet2d', 'args': {'n_class': 400, 'model_depth': 18}}).to(device)
    return to_memory_format(g) if channels_last else g


def time_steps(step, optimizer, batch, bf16, device, warmup, steps):
    """Seconds per engine-equivalent step; the timing loop of ``benchmarks/train_step.py``."""
    return time_step(step, optimizer, batch, warmup, steps, 'bf16' if bf16 else 'off', device)


def rate(batch_size, times):
    """clips/s from the median step time."""
    return batch_size / statistics.median(times)


def bench_train(device, sz, batch):
    """R3D-18 training clips/s for each of :data:`TRAIN_CONFIGS` -> {name: clips/s}."""
    out = {}
    for name, bf16, cl in TRAIN_CONFIGS:
        torch.manual_seed(0)
        f = build_r3d18(device, cl)
        opt = torch.optim.SGD(f.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        times = time_steps(ClassifierStep(f, CrossEntropyLoss()), opt, batch, bf16, device,
                           sz['warmup'], sz['steps'])
        out[name] = rate(sz['batch'], times)
        print(f'train R3D-18 {name:10s} {out[name]:9.2f} clips/s  (median of {len(times)} steps, '
              f'{1000 * statistics.median(times):.1f} ms/step)', flush=True)
        del f, opt
        free(device)
    return out


def bench_drl(device, sz, batch):
    """DRL-FGSM step clips/s (``drl.steps.DRLAugStep`` + ``drl.attacks.FGSM``, 5 iterations)
    in fp32 and in bf16 autocast with channels-last models -> {name: clips/s}."""
    out = {}
    for name, bf16, cl in [('fp32', False, False), ('bf16_cl', True, True)]:
        torch.manual_seed(0)
        f, g = build_r3d18(device, cl), build_r2d18(device, cl)
        attack = FGSM(eps=0.03, iters=5, momentum=1, scale=STD, dim=2)  # configs/drl/fgsm-e3-i5
        step = DRLAugStep(f, g, KDLoss(), attack=attack)
        opt = build_drl_optimizer(SP_OPT, f=f, g=g)[0]
        times = time_steps(step, opt, batch, bf16, device, sz['warmup'] // 2,
                           max(1, sz['steps'] // 2))
        out[name] = rate(sz['batch'], times)
        print(f'DRL-FGSM step {name:9s} {out[name]:9.2f} clips/s  (median of {len(times)} steps, '
              f'{1000 * statistics.median(times):.1f} ms/step; attack in fp32)', flush=True)
        del f, g, step, opt
        free(device)
    return out


def free(device):
    if device.type == 'cuda':
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# benchmark videos and the loader


def write_bench_video(args):
    """One deterministic 340 × 256, 30 fps H.264 clip (keyframe every 15 frames, no B-frames):
    a slowly panned smooth random texture with a moving square. ``args = (path, seed, seconds)``."""
    path, seed, seconds = args
    w, h, fps = 340, 256, 30
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    texture = cv2.resize(small, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC)
    with av.open(path, 'w') as c:
        s = c.add_stream('libx264', rate=fractions.Fraction(fps))
        s.width, s.height, s.pix_fmt = w, h, 'yuv420p'
        s.options = {'g': '15', 'bf': '0', 'crf': '23', 'preset': 'veryfast'}
        for t in range(int(seconds * fps)):
            x0, y0 = (t * 2) % w, t % h
            frame = np.ascontiguousarray(texture[y0:y0 + h, x0:x0 + w])
            cx = int(w / 2 + 0.35 * w * math.sin(t / 17))
            cy = int(h / 2 + 0.3 * h * math.cos(t / 23))
            frame[max(0, cy - 20):cy + 20, max(0, cx - 20):cx + 20] = (230, 50, 40)
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def make_videos(folder, n, seconds):
    """Write ``n`` benchmark videos in parallel; returns their paths."""
    jobs = [(os.path.join(folder, f'v{i:03d}.mp4'), i, seconds) for i in range(n)]
    procs = max(1, min(n, (os.cpu_count() or 1)))
    if procs == 1:
        return [write_bench_video(j) for j in jobs]
    with ProcessPoolExecutor(procs) as ex:
        return list(ex.map(write_bench_video, jobs))


def bench_recipe(sz, wire='float32'):
    """Kinetics train recipe (resize 128, crop 112, flip, jitter 0.2 × 4, ImageNet
    normalisation; ``--toy`` sizes), with ``device_augment`` for the ``uint8`` wire format."""
    return {'resize': sz['resize'], 'crop': sz['size'], 'hflip': True,
            'color_jitter': [0.2, 0.2, 0.2, 0.2],
            'normalize': {'mean': [0.485, 0.456, 0.406], 'std': STD},
            'device_augment': wire == 'uint8'}


def build_bench_dataset(paths, sz, n_items, decode='cpu', wire='float32'):
    """``n_items`` records cycling over ``paths``, Kinetics train recipe (16 frames at 16 fps,
    :func:`bench_recipe`), decoded on ``decode`` (``dataset.decode_device``)."""
    records = [VideoRecord(paths[i % len(paths)], i % 2, f'v{i}') for i in range(n_items)]
    clip_args = {'n_clips': 1, 'n_frames': sz['frames'], 'fps': 16}
    return VideoDataset(records, ['a', 'b'], clip_args,
                        build_transform(bench_recipe(sz, wire), train=True), train=True, seed=0,
                        decode_device=decode)


def loader_rate(paths, sz, workers, pin, decode='cpu', wire='float32', device=None):
    """Steady-state clips/s of a DataLoader with ``workers`` processes, counted when the batch
    is ready on ``device`` (default CPU): moved there, and for ``uint8`` finished there by the
    dataset's ``finish_batch`` (flip, jitter, normalisation) in this process, as the engine
    does.

    All workers start together, so the first ``workers`` batches arrive as one wave; timing
    runs from the last batch of that wave to the last batch (``2 × workers + 2`` more
    batches, each ready on the device), which measures the rate at which the workers keep
    producing batches. GPU-decoding workers are started with ``spawn``: a worker forked from
    a process that has initialised CUDA cannot use it.
    """
    device = torch.device(device or 'cpu')
    lead = max(1, workers)
    n_batches = lead + 2 * lead + 2
    ds = build_bench_dataset(paths, sz, n_batches * sz['batch'], decode, wire)
    finish = ds.finish_batch or to_device
    context = 'spawn' if decode != 'cpu' and workers else None
    loader = torch.utils.data.DataLoader(ds, batch_size=sz['batch'], shuffle=False,
                                         num_workers=workers, collate_fn=video_collate,
                                         pin_memory=pin, drop_last=True,
                                         timeout=LOADER_TIMEOUT_S if workers else 0,
                                         multiprocessing_context=context)
    clips, t0, t1, skipped = 0, None, None, 0
    for i, b in enumerate(loader):
        skipped += len(b['skipped'])
        b = finish(b, device)
        sync(device)
        if i == lead - 1:
            t0 = time.perf_counter()
        elif i >= lead:
            clips += b['video'].shape[0]
            t1 = time.perf_counter()  # (not after the loop: that would count the shutdown)
    if skipped:
        raise RuntimeError(f'{skipped} benchmark clips failed to decode')
    return clips / (t1 - t0)


def augment_ms(sz, device, reps=None):
    """Milliseconds per batch of the device augment alone (uint8 batch already on ``device``:
    flip, jitter 0.2 × 4, normalisation), median of ``reps`` synchronised runs."""
    g = torch.Generator().manual_seed(0)
    b = sz['batch']
    u8 = torch.randint(0, 256, (b, 1, sz['frames'], sz['size'], sz['size'], 3),
                       generator=g, dtype=torch.uint8).to(device)
    rows = [pack_params(torch.rand((), generator=g).item() < 0.5,
                        jitter_params([0.2, 0.2, 0.2, 0.2], g)) for _ in range(b)]
    batch = {'video': u8, 'aug': torch.stack(rows)[:, None]}
    tf = build_transform(bench_recipe(sz, 'uint8'), train=True)
    finish = tf.finisher()
    times = []
    for i in range(reps or sz['warmup'] + sz['steps']):
        sync(device)
        t = time.perf_counter()
        finish(batch, device)
        sync(device)
        if i >= (0 if reps else sz['warmup']):
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def workers_needed(rates, target):
    """Smallest worker count whose loader clips/s ≥ ``target``, or ``None``.

    rates: ``{workers: clips/s}``.
    """
    ok = [w for w, r in sorted(rates.items()) if r >= target]
    return ok[0] if ok else None


def bench_loader(sz, device, combos=COMBOS):
    """Loader clips/s per setting and worker count on freshly generated videos ->
    ``({(decode, wire): {workers: clips/s}}, notes)``; ``notes``: the GPU decoder's status
    and the device augment's cost per batch.

    Run before any model: a DataLoader forked after the CPU FGSM attack has been seen to hang
    in its worker (torch 2.14, CPU), so the loader is measured from a clean process state.
    """
    cpus = os.cpu_count() or 1
    counts = [w for w in sz['workers'] if w <= cpus] or [0]
    notes = {}
    if any(d == 'cuda' for d, _ in combos):
        usable, why = hw_decode_status('cuda')  # this process; the workers probe for themselves
        notes['hw_decode'] = 'usable' if usable else f'fallback ({why})'
        print(f'GPU decode (PyAV hwaccel cuda): {why}' + ('' if usable else
              '; the cuda rows measure the CPU fallback'), flush=True)
    all_rates = {}
    with tempfile.TemporaryDirectory(prefix='gpu_bench_videos_') as tmp:
        t = time.perf_counter()
        paths = make_videos(tmp, sz['videos'], sz['seconds'])
        print(f'wrote {len(paths)} short-GOP 340x256 {sz["seconds"]:.0f} s videos in '
              f'{time.perf_counter() - t:.1f} s ({cpus} CPUs)', flush=True)
        for decode, wire in combos:
            print(f'-- loader: {decode.upper()} decode, {COMBO_TEXT[wire]} '
                  f'(ready on {device.type})', flush=True)
            rates = all_rates[decode, wire] = {}
            for w in counts:
                rates[w] = loader_rate(paths, sz, w, pin=device.type == 'cuda', decode=decode,
                                       wire=wire, device=device)
                print(f'loader {w:2d} workers {rates[w]:9.2f} clips/s', flush=True)
    if any(wire == 'uint8' for _, wire in combos):
        notes['augment_ms'] = augment_ms(sz, device)
        print(f'device augment (flip, jitter, normalise) {notes["augment_ms"]:.2f} ms per batch '
              f'of {sz["batch"]} on {device.type}', flush=True)
    return all_rates, notes


def report_workers(rates, targets):
    """Print, for each ``{name: clips/s}`` target, the worker count that keeps up with it
    (or an extrapolation from the best per-worker rate). Returns ``{name: workers or None}``."""
    needed = {}
    best = max(rates.values())
    per_worker = max(r / max(1, w) for w, r in rates.items())
    for name, target in targets.items():
        needed[name] = workers_needed(rates, target)
        if needed[name] is None:
            print(f'{name} ({target:.1f} clips/s): no tested worker count keeps up '
                  f'(best {best:.1f} clips/s; at {per_worker:.1f} clips/s per worker it would '
                  f'take ~{math.ceil(target / per_worker)} workers)')
        else:
            print(f'{name} ({target:.1f} clips/s): {needed[name]} workers keep up')
    return needed


def report_settings(all_rates, targets, batch, augment=None):
    """Print, for each target, the smallest loader setting (fewest workers; on a tie the
    earlier of :data:`COMBOS`) that keeps up with it, or the best one reached. With
    ``augment`` (ms per batch on the device), also the target of training plus the device
    augment. Returns ``{name: 'decode/wire/wN' or None}``."""
    found = {}
    for name, target in targets.items():
        best, need = None, None
        for combo, rates in all_rates.items():
            w = workers_needed(rates, target)
            if w is not None and (need is None or w < need[1]):
                need = (combo, w)
            top = max(rates.items(), key=lambda kv: kv[1])
            if best is None or top[1] > best[2]:
                best = (combo, top[0], top[1])
        note = ''
        if augment:
            with_aug = batch / (batch / target + augment / 1000)
            note = f'; with the device augment in the step: {with_aug:.1f} clips/s'
        if need is None:
            found[name] = None
            print(f'{name} ({target:.1f} clips/s{note}): no setting keeps up; best '
                  f'{"/".join(best[0])} with {best[1]} workers, {best[2]:.1f} clips/s')
        else:
            found[name] = f'{"/".join(need[0])}/w{need[1]}'
            print(f'{name} ({target:.1f} clips/s{note}): smallest setting that keeps up: '
                  f'{need[0][0].upper()} decode, {COMBO_TEXT[need[0][1]]}, {need[1]} workers')
    return found


# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--toy', action='store_true', help='tiny sizes (batch 2, 8 frames, 32 px, '
                   '2 videos, workers 0,1): runs on a CPU in seconds')
    p.add_argument('--workers', type=lambda s: [int(v) for v in s.split(',')], default=None,
                   help='comma-separated DataLoader worker counts (default 1,2,4,8,12,16 '
                        'up to the CPU count)')
    p.add_argument('--batch', type=int, default=None, help='batch size (default 32; --toy 2)')
    p.add_argument('--no-tf32', action='store_true',
                   help='strict fp32 baseline: cuDNN TF32 off (PyTorch allows TF32 convs by default)')
    p.add_argument('--skip', nargs='*', default=[], choices=['train', 'drl', 'loader'])
    p.add_argument('--decode', type=lambda s: s.split(','), default=['cpu', 'cuda'],
                   help='loader decoders to measure, comma-separated (default cpu,cuda)')
    p.add_argument('--wire', type=lambda s: s.split(','), default=['float32', 'uint8'],
                   help='loader wire formats to measure: float32 (augmented in the workers), '
                        'uint8 (augmented on the device); default both')
    return p.parse_args(argv)


def section(name, skip, failed, fn, *args):
    """Run one benchmark part; a failure is printed with its traceback and recorded in
    ``failed`` (the script then exits 1) so the other parts still report their figures."""
    if name in skip:
        return None
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - reported below and in the exit status
        print(f'FAILED: {name}\n{traceback.format_exc()}', flush=True)
        failed.append(name)
        return None


def describe(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'cpu ({torch.get_num_threads()} threads)'


def main(argv=None):
    a = parse_args(argv)
    if a.device == 'auto':
        a.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(a.device)
    sz = dict(TOY if a.toy else FULL)
    if a.workers:
        sz['workers'] = a.workers
    if a.batch:
        sz['batch'] = a.batch
    if a.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    cv2.setNumThreads(1)
    print(f'device {describe(device)} | torch {torch.version.__version__} | batch {sz["batch"]} x '
          f'1 x 3 x {sz["frames"]} x {sz["size"]} x {sz["size"]} | cudnn.benchmark on, '
          f'cudnn TF32 {torch.backends.cudnn.allow_tf32}, matmul TF32 '
          f'{torch.backends.cuda.matmul.allow_tf32}', flush=True)
    summary = {'device': describe(device), 'torch': torch.version.__version__}
    t_start = time.perf_counter()
    failed = []
    combos = [c for c in COMBOS if c[0] in a.decode and c[1] in a.wire]
    all_rates, notes = section('loader', a.skip, failed, bench_loader, sz, device,
                               combos) or ({}, {})
    rates = all_rates.get(COMBOS[0], {})  # the plain pipeline: CPU decode, float32
    summary.update({f'loader_w{w}_clips_per_s': f'{r:.2f}' for w, r in rates.items()})
    for (decode, wire), rs in all_rates.items():
        if (decode, wire) != COMBOS[0]:
            summary.update({f'loader_{decode}_{wire}_w{w}_clips_per_s': f'{r:.2f}'
                            for w, r in rs.items()})
    if 'hw_decode' in notes:
        summary['hw_decode'] = notes['hw_decode']
    if 'augment_ms' in notes:
        summary['device_augment_ms_per_batch'] = f'{notes["augment_ms"]:.3f}'
    g = torch.Generator().manual_seed(0)  # random clips: throughput does not depend on content
    video = torch.randn(sz['batch'], 1, 3, sz['frames'], sz['size'], sz['size'], generator=g)
    batch = {'video': video.to(device),
             'label': torch.randint(0, 400, (sz['batch'],), generator=g).to(device)}
    train = section('train', a.skip, failed, bench_train, device, sz, batch) or {}
    if train:
        best = max(('bf16', 'bf16_cl3d'), key=train.get)
        print(f'bf16 / fp32 = {train[best] / train["fp32"]:.2f}x ({best}; target >= 2x)')
        summary.update({f'train_{k}_clips_per_s': f'{v:.2f}' for k, v in train.items()})
        summary['train_best_bf16'] = best
        summary['bf16_over_fp32'] = f'{train[best] / train["fp32"]:.2f}'
    drl = section('drl', a.skip, failed, bench_drl, device, sz, batch) or {}
    summary.update({f'drl_fgsm_{k}_clips_per_s': f'{v:.2f}' for k, v in drl.items()})
    targets = {}
    if train:
        targets['train_bf16'] = max(train['bf16'], train['bf16_cl3d'])
    if drl:
        targets['drl_fgsm_bf16'] = drl['bf16_cl']
    if rates and targets:
        print('-- plain pipeline (CPU decode, float32 clips):')
        needed = report_workers(rates, targets)
        summary.update({f'workers_needed_{k}': 'none<=%d' % max(rates) if v is None else str(v)
                        for k, v in needed.items()})
    if all_rates and targets:
        print('-- every measured loader setting:')
        settings = report_settings(all_rates, targets, sz['batch'], notes.get('augment_ms'))
        summary.update({f'setting_needed_{k}': v or 'none' for k, v in settings.items()})
    summary['total_s'] = f'{time.perf_counter() - t_start:.1f}'
    if failed:
        summary['failed'] = ','.join(failed)
    print('== summary ==')
    for k, v in summary.items():
        print(f'{k}={v}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
