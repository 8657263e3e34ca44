"""Clip readers: PyAV for encoded videos, cv2 for ``00001.jpg…`` frame folders.

``read_clips`` opens a container once for all clips of a video, seeks to the keyframe before
each clip, decodes forward, skips frames before the clip without converting them and converts
only the frames it keeps. With ``short_side`` the resize is folded into the colour conversion:
yuv420p planes are resized one by one (OpenCV, area filter) and the clip is turned into RGB
with one BT.601 matrix, which is cheaper than converting at full size and resizing. Scaling
before the colour conversion keeps chroma at its own resolution, so the output is close to,
not bit-equal with, torchvision's resize of the full-size RGB frame (mean abs difference
~1.3 levels on natural video; ``tests/test_decode.py``).
"""
import os
import threading

import av
import cv2
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from .sampling import clip_indices

# Clips are small: OpenCV's own thread pool gains little here, and a pool started in the main
# process can deadlock DataLoader workers forked from it. Parallelism comes from workers.
cv2.setNumThreads(1)

FRAMES_FPS = 12.0   # frame rate assumed for SSv1 / Jester frame folders
SEEK_GAP_S = 1.0    # decode through gaps shorter than this instead of seeking again
SKIP_NONREF = True  # let the decoder drop unneeded non-reference frames (exact; see below)
_local = threading.local()
SWS_INTERP = 'AREA'  # as close to torchvision's antialiased resize as BILINEAR, faster


class VideoDecodeError(Exception):
    """A video that cannot be read; the message is ``'<path>: <reason>'``."""

    def __init__(self, path, reason):
        super().__init__(f'{path}: {reason}')
        self.path, self.reason = path, reason


def resized_hw(h, w, short_side):
    """Output ``(h, w)`` of a short-side resize, rounded as torchvision does (long side
    truncated)."""
    if short_side is None or min(h, w) == short_side:
        return h, w
    if h <= w:
        return short_side, int(short_side * w / h)
    return int(short_side * h / w), short_side


def read_clips(path, n_clips, n_frames, fps, mode, rng=None, kind='video', short_side=None,
               frames_fps=FRAMES_FPS, threads=1, crop=None):
    """Read ``n_clips`` clips of ``n_frames`` frames (SEMANTICS §2 sampling).

    Args:
        path: video file (``kind='video'``) or folder of ``00001.jpg…`` (``kind='frames'``).
        n_clips, n_frames, fps: clip layout; ``fps=-1`` samples at the source rate.
        mode: ``'random'`` or ``'uniform'`` temporal position.
        rng: ``torch.Generator`` for ``random`` mode.
        short_side: if given, frames are resized so their short side is this long.
        frames_fps: frame rate of a frame folder.
        threads: decoder threads (1: parallelism comes from DataLoader workers).
        crop: optional ``crop(h, w) -> (top, left, height, width) or None``, called once
            after the temporal sampling with the (resized) frame size; the frames are then
            cropped before their colour conversion, so only the kept pixels are converted
            (the result equals converting whole frames and cropping).
    Returns:
        ``(video, info)``: uint8 tensor ``K × T × H × W × 3`` (RGB) and a dict with
        ``src_fps``, ``n_src_frames``, ``duration``, ``indices`` (K lists of source indices)
        and ``crop`` (the box applied, or ``None``).
    Raises:
        VideoDecodeError: missing, unreadable, corrupt, zero-length or stream-less input.
    """
    if not os.path.exists(path):
        raise VideoDecodeError(path, 'file not found')
    if kind == 'frames':
        return _read_frame_folder(path, n_clips, n_frames, fps, mode, rng, short_side, frames_fps,
                                  crop)
    if kind != 'video':
        raise ValueError(f"unknown video kind {kind!r} (expected 'video' or 'frames')")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, 'zero-length file')
    try:
        with open_video(path) as container:
            return _read_container(container, path, n_clips, n_frames, fps, mode, rng,
                                   short_side, threads, crop)
    except (av.FFmpegError, OSError, EOFError) as e:
        raise VideoDecodeError(path, f'{type(e).__name__}: {e}') from e


def open_video(path):
    """Open a video for reading with a quick stream probe.

    Opening a container probes its streams (``avformat_find_stream_info``), and for H.264
    that decodes several frames only to learn the pixel format: ~1.1 ms of the ~1.5 ms an
    open costs on a 340×256 benchmark file (~7 % of a training clip). With the probe's
    decoder limited to keyframes (``skip_frame=nonkey``, which touches only the probe's own
    decoder) it decodes none; sizes, rates and durations still come from the container, and
    the reader takes the pixel format and colour range from the frames it decodes.
    """
    return av.open(path, metadata_errors='ignore', options={'skip_frame': 'nonkey'})


def _stream_info(container, stream, path):
    """Source frame rate, frame count and duration (s), from metadata or by counting packets."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise VideoDecodeError(path, 'video stream has no frame rate')
    src_fps = float(rate)
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    n = stream.frames or (round(duration * src_fps) if duration else 0)
    if n <= 0:  # no usable metadata: count the packets (demux only, no decoding)
        n = sum(1 for p in container.demux(stream) if p.size > 0)
        container.seek(0)
        if n == 0:
            raise VideoDecodeError(path, 'video stream has no frames')
    return src_fps, n, n / src_fps


def _reformatter():
    """This thread's ``VideoReformatter``: it keeps its libswscale context between frames and
    videos of the same size, which a fresh ``frame.to_ndarray(...)`` call rebuilds every time
    (setting up the scaling filters costs more than converting a small frame)."""
    if not hasattr(_local, 'sws'):
        _local.sws = VideoReformatter()
    return _local.sws


def _yuv_matrix(full_range):
    """3 × 4 BT.601 YUV -> RGB map (what libswscale applies by default), limited or full range."""
    if full_range:
        m, off = np.array([[1, 0, 1.402], [1, -0.344136, -0.714136], [1, 1.772, 0]]), [0, 128, 128]
    else:
        m = np.array([[1.164383, 0, 1.596027], [1.164383, -0.391762, -0.812968],
                      [1.164383, 2.017232, 0]])
        off = [16, 128, 128]
    return np.concatenate([m, -(m @ np.array(off, np.float64))[:, None]], 1).astype(np.float32)


def _plane(p):
    """Zero-copy ``height × width`` uint8 view of a frame plane (rows padded to line_size)."""
    return np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]


def _box(crop, h, w):
    """The crop box ``crop(h, w)`` asks for, or ``None`` when there is none or it is not a
    proper box inside the frame (the transform then crops or pads as usual)."""
    box = crop(h, w) if crop is not None else None
    if box is None:
        return None
    top, left, ch, cw = box
    if not (0 <= top and 0 <= left and 0 < ch and 0 < cw and top + ch <= h and left + cw <= w):
        return None
    return box


class _Converter:
    """Turns the decoded frames a clip keeps into one uint8 ``N × h × w × 3`` RGB array.

    Set up from the first frame it is given (pixel format, colour range, size, crop box):
    with the quick probe of :func:`open_video` the stream header does not know the pixel
    format, and the frames are the authority on it anyway.

    8-bit yuv420p (nearly every H.264 / VP9 / MPEG-4 file): each plane is resized on its own
    with OpenCV (area filter when shrinking; chroma is already half size, so a 2× downscale
    leaves it as is) into a planar buffer of up to ``n_max`` frames, and :meth:`finish`
    interleaves the buffer and turns it into RGB with one BT.601 colour matrix for the whole
    clip (about twice as fast as libswscale per frame, and closer to torchvision's resize of
    the RGB frame). With a crop box, planes are resized whole and then cut, and only the box
    is interleaved and converted. Other pixel formats go through libswscale.
    """

    def __init__(self, short_side, crop, n_max):
        self.short_side, self.crop, self.n_max = short_side, crop, n_max
        self.box, self.count, self.pix = None, 0, None

    def _setup(self, f):
        self.pix = f.format.name
        self.h, self.w = h, w = resized_hw(f.height, f.width, self.short_side)
        self.box = _box(self.crop, h, w)
        top, left, ch, cw = self.box or (0, 0, h, w)
        self.rows, self.cols = slice(top, top + ch), slice(left, left + cw)
        self.yuv = self.pix in ('yuv420p', 'yuvj420p')
        if self.yuv:
            self.full = self.pix == 'yuvj420p' or f.color_range == 2  # 2 = JPEG (full) range
            self.buf = np.empty((3, self.n_max, ch, cw), np.uint8)  # Y, U, V of kept frames
            self.whole = np.empty((h, w), np.uint8) if self.box else None  # a plane before its cut

    def __call__(self, f):
        """Convert one frame (into the buffer); returns what :meth:`finish` takes."""
        if self.pix is None:
            self._setup(f)
        if f.format.name != self.pix:  # a frame unlike the first: bring it to the same format
            f = f.reformat(format=self.pix)
        if not self.yuv:
            rgb = _reformatter().reformat(f, self.w, self.h, 'rgb24', interpolation=SWS_INTERP)
            return np.ascontiguousarray(rgb.to_ndarray()[self.rows, self.cols])
        i, (h, w), box = self.count, (self.h, self.w), self.box
        self.count += 1
        for p, plane in enumerate(f.planes):  # (``planes`` builds a new tuple per access)
            a, dst = _plane(plane), self.buf[p, i]
            if a.shape != (h, w):
                a = cv2.resize(a, (w, h), dst=self.whole if box else dst,
                               interpolation=cv2.INTER_AREA if a.shape[0] > h
                               else cv2.INTER_LINEAR)
                if not box:
                    continue
            np.copyto(dst, a[self.rows, self.cols])
        return i

    def finish(self, converted):
        """The converted frames, in the order given, as one N × h × w × 3 array."""
        if not self.yuv:
            return np.stack(converted)
        n, (ch, cw) = self.count, self.buf.shape[2:]
        yuv = cv2.merge([self.buf[p, :n].reshape(n * ch, cw) for p in range(3)])
        rgb = cv2.transform(yuv, _yuv_matrix(self.full)).reshape(n, ch, cw, 3)
        return rgb if converted == list(range(n)) else rgb[converted]


def _read_container(container, path, n_clips, n_frames, fps, mode, rng, short_side, threads,
                    crop):
    if not container.streams.video:
        raise VideoDecodeError(path, 'no video stream')
    stream = container.streams.video[0]
    stream.thread_count = threads
    src_fps, n_src, duration = _stream_info(container, stream, path)
    indices = clip_indices(duration, src_fps, n_src, n_clips, n_frames, fps, mode, rng)
    need = sorted({i for c in indices for i in c})
    convert = _Converter(short_side, crop, len(need) + 1)  # +1: a padding frame
    frames = decode_indices(container, stream, need, src_fps, convert, path)
    video = _gather(frames, indices, convert.finish)
    return video, {'src_fps': src_fps, 'n_src_frames': n_src, 'duration': duration,
                   'indices': indices, 'crop': convert.box}


def _gather(frames, indices, finish=np.stack):
    """``{index: converted frame}``, K lists of T indices -> uint8 tensor K × T × H × W × 3
    (``finish`` turns the converted frames, in index order, into one N × H × W × 3 array)."""
    keys = sorted(frames)
    stack = torch.from_numpy(finish([frames[k] for k in keys]))
    flat = [i for clip in indices for i in clip]
    k, t = len(indices), len(indices[0])
    if flat == keys:  # every frame used once, in order (the usual case): no second copy
        return stack.view(k, t, *stack.shape[1:])
    pos = {key: i for i, key in enumerate(keys)}
    return stack[torch.tensor([pos[i] for i in flat])].view(k, t, *stack.shape[1:])


def decode_indices(container, stream, need, src_fps, convert, path='<video>'):
    """Decode the sorted unique source frame indices ``need``; ``convert(frame)`` only those.

    Seeks (to the keyframe at or before the target) only when the next needed frame is more
    than ``SEEK_GAP_S`` ahead. Packets of frames that are not needed are decoded with
    ``skip_frame='NONREF'``: the decoder drops them if no other frame references them (the
    B-frames of long-GOP files), which is exact and saves much of the pre-roll after a seek.
    Indices past the last decodable frame get the last frame (padding). ``convert=None``
    decodes without converting (the decode-only benchmark). Returns ``{index: convert(frame)}``.
    """
    tb = float(stream.time_base)
    t0 = stream.start_time or 0
    gap = max(1, int(SEEK_GAP_S * src_fps))
    convert = convert or (lambda f: f)
    cc = stream.codec_context
    wanted = set(need)
    started = [False]

    def index_of(ts, prev):
        return prev + 1 if ts is None else round((ts - t0) * tb * src_fps)

    def decoded(frames_of_packets):
        idx = -1
        for packet in frames_of_packets:
            skip = ('DEFAULT' if not SKIP_NONREF or packet.pts is None
                    or index_of(packet.pts, 0) in wanted else 'NONREF')
            if cc.skip_frame != skip:
                cc.skip_frame = skip
            for frame in packet.decode():
                idx = index_of(frame.pts, idx)
                yield idx, frame

    def frames_from(target):
        """Yield (index, frame) from the keyframe before ``target`` onward."""
        if target > 0 or started[0]:
            container.seek(t0 + int(target / src_fps / tb), backward=True, any_frame=False,
                           stream=stream)
        started[0] = True
        for idx, frame in decoded(container.demux(stream)):
            if idx > target > 0:  # seek overshot (bad index): rewind and decode from the start
                container.seek(t0, backward=True, any_frame=False, stream=stream)
                yield from decoded(container.demux(stream))
                return
            target = -1  # check only the first frame after a seek
            yield idx, frame

    out, j, last, it, pos = {}, 0, None, None, -1
    while j < len(need):
        if it is None or need[j] - pos > gap:
            it = frames_from(need[j])
        ended = True
        for idx, frame in it:
            last, pos = frame, idx
            if idx < need[j]:
                continue  # before the clip: decoded but never converted
            arr = convert(frame)
            while j < len(need) and need[j] <= idx:
                out[need[j]] = arr
                j += 1
            if j == len(need) or need[j] - idx > gap:
                ended = False
                break
        if ended:  # decoder ran dry: pad with the last frame it gave
            if last is None:
                raise VideoDecodeError(path, 'no decodable video frames')
            arr = convert(last)
            while j < len(need):
                out[need[j]] = arr
                j += 1
    return out


def _read_frame_folder(path, n_clips, n_frames, fps, mode, rng, short_side, frames_fps, crop):
    if not os.path.isdir(path):
        raise VideoDecodeError(path, 'not a frame folder')
    names = sorted(n for n in os.listdir(path) if n.lower().endswith(('.jpg', '.jpeg')))
    if not names:
        raise VideoDecodeError(path, 'frame folder has no .jpg frames')
    n_src = len(names)
    indices = clip_indices(n_src / frames_fps, frames_fps, n_src, n_clips, n_frames, fps, mode, rng)
    frames, box = {}, None
    for n, i in enumerate(sorted({i for c in indices for i in c})):
        img = cv2.imread(os.path.join(path, names[i]), cv2.IMREAD_COLOR)
        if img is None:
            raise VideoDecodeError(path, f'cannot read frame {names[i]}')
        h, w = resized_hw(img.shape[0], img.shape[1], short_side)
        if (h, w) != img.shape[:2]:
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if h < img.shape[0]
                             else cv2.INTER_LINEAR)
        if n == 0:
            box = _box(crop, h, w)
        if box:
            top, left, ch, cw = box
            img = img[top:top + ch, left:left + cw]
        frames[i] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    video = _gather(frames, indices)
    return video, {'src_fps': frames_fps, 'n_src_frames': n_src, 'duration': n_src / frames_fps,
                   'indices': indices, 'crop': box}
