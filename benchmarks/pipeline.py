#!/usr/bin/env python3
"""Clip-pipeline throughput per core (docs/data.md, "Benchmark").

usage: python benchmarks/pipeline.py DIR [--transform train|test] [--repeat N] [--ops]

One process, one thread, no DataLoader workers; the Kinetics recipe (1 clip of 16 frames at
16 fps, random position for train / middle for test; resize 128, crop 112, flip, jitter
0.2 × 4, ImageNet normalisation); every file in DIR read twice per pass. Prints the
decode-only figure (seek + decode of the frames the clips need, no colour conversion), the
full pipeline, their ratio, and as the last line ``clips_per_s=<median over repeats>``.
"""
import os

os.environ['OMP_NUM_THREADS'] = '1'  # before torch is imported

import argparse  # noqa: E402
import glob  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from datasets.colour import color_jitter  # noqa: E402
from datasets.decode import _stream_info, decode_indices, open_video  # noqa: E402
from datasets.sampling import clip_indices  # noqa: E402
from datasets.transforms import build_transform, jitter_params, library_color_jitter, load_clips  # noqa: E402

RECIPE = {'resize': 128, 'crop': 112, 'hflip': True, 'color_jitter': [0.2, 0.2, 0.2, 0.2],
          'normalize': {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}}
N_CLIPS, N_FRAMES, FPS = 1, 16, 16
VIDEO_EXT = ('.mp4', '.avi', '.webm', '.mkv')


def decode_only(path, mode, g):
    """Open (as the reader does) + seek + decode the frames one clip needs, no conversion."""
    with open_video(path) as c:
        s = c.streams.video[0]
        s.thread_count = 1
        src_fps, n, dur = _stream_info(c, s, path)
        idx = clip_indices(dur, src_fps, n, N_CLIPS, N_FRAMES, FPS, mode, g)
        decode_indices(c, s, sorted({i for clip in idx for i in clip}), src_fps, None, path)


def full(path, mode, g, transform):
    """What a dataset item does: decode (the transform's crop done by the decoder) + transform."""
    return load_clips(path, N_CLIPS, N_FRAMES, FPS, mode, g, transform)[0]


def pil_reference(path, mode, g):
    """The kind of pipeline the project's protocol (docs/data.md, "Benchmark") measured for the authors, rebuilt for a same-run
    comparison: each kept frame becomes a full-size PIL image, then resize / crop / flip /
    colour jitter run frame by frame (same parameters for the clip) with torchvision's PIL
    ops, then to_tensor + normalise. (Seek and decode are ours, so it is, if anything, faster
    than the authors' loader.)"""
    import torchvision.transforms as T1
    import torchvision.transforms.functional as F1
    with open_video(path) as c:
        s = c.streams.video[0]
        s.thread_count = 1
        src_fps, n, dur = _stream_info(c, s, path)
        idx = clip_indices(dur, src_fps, n, N_CLIPS, N_FRAMES, FPS, mode, g)[0]
        frames = decode_indices(c, s, sorted(set(idx)), src_fps, lambda f: f.to_image(), path)
    imgs = [F1.resize(frames[i], RECIPE['resize']) for i in idx]
    w, h = imgs[0].size
    top = int(torch.randint(0, h - 112 + 1, (1,), generator=g))
    left = int(torch.randint(0, w - 112 + 1, (1,), generator=g))
    flip = torch.rand((), generator=g).item() < 0.5
    order, b, c_, s_, hue = T1.ColorJitter.get_params(*[(0.8, 1.2)] * 3, (-0.2, 0.2))
    ops = [lambda im: F1.adjust_brightness(im, b), lambda im: F1.adjust_contrast(im, c_),
           lambda im: F1.adjust_saturation(im, s_), lambda im: F1.adjust_hue(im, hue)]
    out = []
    for im in imgs:
        im = F1.crop(im, top, left, 112, 112)
        im = F1.hflip(im) if flip else im
        for k in order.tolist():
            im = ops[k](im)
        out.append(F1.normalize(F1.to_tensor(im), RECIPE['normalize']['mean'],
                                RECIPE['normalize']['std']))
    return torch.stack(out, 1)


def one_pass(files, fns):
    """Clips per second of each ``fn(path, generator)`` over every file read twice, by wall
    clock and by this process's CPU time (which a busy shared machine inflates far less).

    The functions run interleaved file by file (same positions: same generator seed), so a
    change of machine load hits them alike and their ratio stays meaningful.
    Returns ``[(wall clips/s, cpu clips/s) per fn]``.
    """
    wall, cpu = [0.0] * len(fns), [0.0] * len(fns)
    for k, f in enumerate(files * 2):
        for i, fn in enumerate(fns):
            t, c = time.perf_counter(), time.process_time()
            fn(f, torch.Generator().manual_seed(k))
            wall[i] += time.perf_counter() - t
            cpu[i] += time.process_time() - c
    n = 2 * len(files) * N_CLIPS
    return [(n / w, n / c) for w, c in zip(wall, cpu)]


def time_ops(repeat=20):
    """ms per 16 × 112 × 112 clip: colour jitter with torchvision v2 vs ours."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N_FRAMES, 112, 112, 3, generator=g)
    order, vals = jitter_params([0.2] * 4, g)
    cf = x.permute(0, 3, 1, 2).contiguous()
    res = {}
    for name, fn in [('torchvision v2 ColorJitter ops (T×C×H×W float)',
                      lambda: library_color_jitter(cf, order, vals)),
                     ('ours (channels-last, cv2 hue)',
                      lambda: color_jitter(x.clone(), order, vals)),
                     ('torchvision adjust_hue only', lambda: library_color_jitter(
                         cf, [3], [None, None, None, vals[3]])),
                     ('ours hue only',
                      lambda: color_jitter(x.clone(), [3], [None, None, None, vals[3]]))]:
        ts = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        res[name] = 1000 * statistics.median(ts)
        print(f'  {name}: {res[name]:.2f} ms/clip')
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('dir', help='folder of videos (e.g. from benchmarks/gpu.py make_videos, as `make bench` does)')
    ap.add_argument('--transform', choices=['train', 'test'], default='train')
    ap.add_argument('--repeat', type=int, default=3, help='passes; medians are reported')
    ap.add_argument('--ops', action='store_true', help='also time colour jitter vs torchvision')
    ap.add_argument('--reference', action='store_true',
                    help='also run a PIL frame-by-frame pipeline (the authors\' kind) interleaved, '
                         'for a speed-up measured under the same load (train transform only)')
    a = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    files = sorted(f for f in glob.glob(os.path.join(a.dir, '*')) if f.endswith(VIDEO_EXT))
    if not files:
        sys.exit(f'no videos in {a.dir}')
    train = a.transform == 'train'
    mode = 'random' if train else 'uniform'
    tf = build_transform(RECIPE, train=train)
    fns = [lambda f, g: decode_only(f, mode, g), lambda f, g: full(f, mode, g, tf)]
    if a.reference and train:
        fns.append(lambda f, g: pil_reference(f, mode, g))
    one_pass(files[:2], fns)  # warm-up (imports, caches)
    runs = [one_pass(files, fns) for _ in range(a.repeat)]
    med = [[statistics.median(r[i][j] for r in runs) for j in (0, 1)] for i in range(len(fns))]
    (d, d_cpu), (p, p_cpu) = med[:2]
    print(f'{len(files)} files x2, {a.transform} transform, {a.repeat} passes, 1 thread '
          f'(medians; wall clock, and CPU time of this process in brackets)')
    print(f'decode only (seek + decode, no conversion): {d:.1f} clips/s [{d_cpu:.1f}] '
          f'({1000 / d:.1f} ms/clip)  passes: {", ".join(f"{r[0][0]:.1f}" for r in runs)}')
    print(f'full pipeline: {p:.1f} clips/s [{p_cpu:.1f}] ({1000 / p:.1f} ms/clip)  '
          f'passes: {", ".join(f"{r[1][0]:.1f}" for r in runs)}')
    print(f'full / decode-only time: {d / p:.2f}x [{d_cpu / p_cpu:.2f}x]')
    if len(med) > 2:
        r, r_cpu = med[2]
        print(f'PIL frame-by-frame reference: {r:.1f} clips/s [{r_cpu:.1f}]; '
              f'speed-up {p / r:.2f}x [{p_cpu / r_cpu:.2f}x]')
    if a.ops:
        time_ops()
    print(f'clips_per_s={p:.2f}')


if __name__ == '__main__':
    main()
