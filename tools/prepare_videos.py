"""Transcode a video dataset to a smaller short side and a short GOP, keeping the folder layout.

    python tools/prepare_videos.py /data/kinetics400 /data/kinetics400_s128 --short-side 128 -j 8

Every video file under SRC (mp4, avi, webm, mkv, mov, m4v, flv) is re-encoded with libx264
(a keyframe every ``--gop`` frames, no B-frames: a random seek decodes at most ``gop`` frames),
resized so its short side is ``--short-side`` (never upscaled), audio dropped, to the same
relative path and *file name* under DST, so the annotation files still apply. Containers follow
the extension (``.webm`` outputs are Matroska files holding H.264; FFmpeg/PyAV read them by
content). A video with a display matrix (a phone's rotation or mirror) is written upright,
turned as a player shows it, without a matrix. Annotation files (csv, json, txt) are copied. Frame folders (jpg, SSv1 / Jester) are
left alone. Resumable: each output is written to ``<name>.part`` then renamed, and outputs that
exist are skipped. Exits 1 if any file failed (they are listed).
"""
import argparse
import multiprocessing as mp
import os
import shutil
import sys
from fractions import Fraction

import av
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.decode import display_orientation, file_display_matrix, upright  # noqa: E402

VIDEO_FORMATS = {'.mp4': 'mp4', '.m4v': 'mp4', '.mov': 'mov', '.avi': 'avi',
                 '.webm': 'matroska', '.mkv': 'matroska', '.flv': 'matroska'}
COPY_EXTS = {'.csv', '.json', '.txt'}


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('src', help='dataset folder to read')
    p.add_argument('dst', help='output folder (same layout); may not be inside SRC')
    p.add_argument('--short-side', type=int, required=True,
                   help='output short side in pixels (128 for 112-crop models, 256 for 224-crop)')
    p.add_argument('--gop', type=int, default=16, help='keyframe interval in frames (default 16)')
    p.add_argument('--crf', type=int, default=23, help='x264 quality (lower = better, bigger)')
    p.add_argument('--preset', default='veryfast', help='x264 preset')
    p.add_argument('-j', '--workers', type=int, default=os.cpu_count() or 1, help='parallel processes')
    return p


def out_size(w, h, short_side):
    """Output ``(w, h)`` with short side ``short_side`` (no upscaling), both even (yuv420p)."""
    scale = min(1.0, short_side / min(w, h))
    return max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)


# AVColorSpace values whose YUV planes are kept as they are and tagged on the output: BT.709,
# FCC, BT.470 BG, SMPTE 170M, SMPTE 240M, BT.2020 (non-constant and constant luminance)
KEPT_COLORSPACES = (1, 4, 5, 6, 7, 9, 10)


def _kept_colorspace(frame):
    """The colour space tag the output takes from a decoded source ``frame``, or ``None``
    (untagged: what libswscale, and the reader, read as BT.601). RGB sources are turned into
    YUV with libswscale's default BT.601 matrix and stay untagged."""
    if frame.format.is_rgb or frame.colorspace not in KEPT_COLORSPACES:
        return None
    return frame.colorspace


def transcode(src, dst, short_side, gop=16, crf=23, preset='veryfast'):
    """Re-encode one file to ``dst`` (via ``dst.part``). Returns the number of frames written.

    The output is constant frame rate at the source's average rate, H.264 yuv420p, limited
    range (a full-range source is brought to 16-235) and tagged so. The planes are scaled
    without a change of colour matrix, so the output is tagged with the source's colour space
    (:func:`_kept_colorspace`): a BT.709 source stays BT.709 for the reader
    (``datasets.decode.colour_standard``); an untagged one stays untagged (read as BT.601).
    """
    fmt = VIDEO_FORMATS[os.path.splitext(dst)[1].lower()]
    tmp = dst + '.part'
    try:
        with av.open(src, metadata_errors='ignore') as inp:
            if not inp.streams.video:
                raise ValueError('no video stream')
            vin = inp.streams.video[0]
            rate = vin.average_rate or vin.guessed_rate or Fraction(30)
            w, h = out_size(vin.codec_context.width, vin.codec_context.height, short_side)
            orient = None
            with av.open(tmp, 'w', format=fmt) as out:
                vout = out.add_stream('libx264', rate=rate)
                vout.width, vout.height, vout.pix_fmt = w, h, 'yuv420p'
                vout.options = {'crf': str(crf), 'preset': preset, 'threads': '1',
                                'x264-params': f'keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0'}
                vout.codec_context.color_range = 1  # limited ("tv"), what the frames become
                n = 0
                for frame in inp.decode(vin):
                    if n == 0:
                        colorspace = _kept_colorspace(frame)
                        if colorspace is not None:
                            vout.codec_context.colorspace = colorspace
                        # a phone's display matrix: the output is written upright, without one
                        orient, _ = display_orientation(frame, file_display_matrix(inp, src))
                        if orient is not None and orient[0]:
                            vout.width, vout.height = h, w
                    img = frame.reformat(width=w, height=h, format='yuv420p', interpolation='AREA',
                                         dst_color_range='MPEG')
                    if orient is not None:
                        img = _turned(img, orient)
                    img.pts, img.time_base = n, Fraction(1) / rate
                    out.mux(vout.encode(img))
                    n += 1
                out.mux(vout.encode())
        if n == 0:
            raise ValueError('no decodable frame')
        os.replace(tmp, dst)
        return n
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _turned(frame, orient):
    """A yuv420p frame with each plane turned upright (:func:`datasets.decode.upright`)."""
    planes = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]
              for p in frame.planes]
    planes = [upright(a[None, :, :, None], orient)[0, :, :, 0] for a in planes]
    h, w = planes[0].shape
    packed = np.concatenate([a.ravel() for a in planes]).reshape(h * 3 // 2, w)
    return av.VideoFrame.from_ndarray(packed, format='yuv420p')


def plan(src, dst):
    """Walk ``src``: ``(videos, copies)`` as lists of ``(src_path, dst_path)``."""
    videos, copies = [], []
    for folder, _, files in os.walk(src):
        rel = os.path.relpath(folder, src)
        for name in sorted(files):
            ext = os.path.splitext(name)[1].lower()
            pair = (os.path.join(folder, name), os.path.normpath(os.path.join(dst, rel, name)))
            if ext in VIDEO_FORMATS:
                videos.append(pair)
            elif ext in COPY_EXTS:
                copies.append(pair)
    return sorted(videos), copies


def _job(item):
    """Worker: ``(src, dst, short_side, gop, crf, preset) -> (src, status, detail)``."""
    src, dst = item[:2]
    if os.path.exists(dst):
        return src, 'skipped', ''
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        return src, 'done', transcode(*item)
    except (av.FFmpegError, OSError, EOFError, ValueError) as e:
        return src, 'failed', f'{type(e).__name__}: {e}'


def main(args):
    src, dst = os.path.abspath(args.src), os.path.abspath(args.dst)
    if not os.path.isdir(src):
        print(f'error: {src} is not a folder', file=sys.stderr)
        return 2
    if dst == src or dst.startswith(src + os.sep):
        print('error: DST must not be SRC or inside it', file=sys.stderr)
        return 2
    videos, copies = plan(src, dst)
    for s, d in copies:
        if not os.path.exists(d):
            os.makedirs(os.path.dirname(d), exist_ok=True)
            shutil.copy2(s, d)
    from tqdm import tqdm

    jobs = [(s, d, args.short_side, args.gop, args.crf, args.preset) for s, d in videos]
    counts, failed = {'done': 0, 'skipped': 0, 'failed': 0}, []
    with mp.get_context('spawn').Pool(max(1, args.workers)) as pool:
        for s, status, detail in tqdm(pool.imap_unordered(_job, jobs), total=len(jobs),
                                      desc='transcoding', unit='video', file=sys.stderr):
            counts[status] += 1
            if status == 'failed':
                failed.append(f'{s}: {detail}')
    print(f"{len(jobs)} videos: {counts['done']} transcoded, {counts['skipped']} already done, "
          f"{counts['failed']} failed; {len(copies)} annotation files copied")
    for line in failed:
        print(f'  failed: {line}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
