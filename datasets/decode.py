"""Clip readers: PyAV for encoded videos, cv2 for ``00001.jpg…`` frame folders.

``read_clips`` opens a container once for all clips of a video, seeks to the keyframe before
each clip, decodes forward, skips frames before the clip without converting them and converts
only the frames it keeps. With ``short_side`` the resize is folded into the colour conversion:
yuv420p planes are resized one by one (OpenCV, area filter) and the clip is turned into RGB
with one colour matrix, which is cheaper than converting at full size and resizing. Scaling
before the colour conversion keeps chroma at its own resolution, so the output is close to,
not bit-equal with, torchvision's resize of the full-size RGB frame (mean abs difference
~1.3 levels on natural video; ``tests/test_decode.py``).

The colour matrix is the file's own: :func:`colour_standard` reads the decoded frames'
``colorspace`` / ``color_range`` tags once per video (BT.709, BT.601, BT.2020, FCC, SMPTE 240M;
limited or full range, ``yuvj*`` formats being full range) and falls back where FFmpeg's
libswscale does: an untagged stream is BT.601, limited range unless marked full
(``tests/test_colour_matrix.py`` compares with libswscale's own conversion).

``decode_device='cuda'`` (``dataset.decode_device``) decodes on the GPU's video engines
through PyAV's hardware acceleration (``av.codec.hwaccel``, NVDEC): same sampling, seeking and
frame selection, the decoded frames are downloaded (NV12) and converted on the CPU as above.
Where no hardware decoder is usable the reader decodes on the CPU and says so once per process.
"""
import bisect
import ctypes
import functools
import logging
import math
import os
import struct
import threading

import av
import cv2
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from core.errors import UserError

from .sampling import EPS, clip_indices, clip_positions, positions_to_indices

log = logging.getLogger(__name__)

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
               frames_fps=FRAMES_FPS, threads=1, crop=None, decode_device='cpu'):
    """Read ``n_clips`` clips of ``n_frames`` frames (docs/data.md, "Clip sampling").

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
        decode_device: ``'cpu'`` or ``'cuda'`` (hardware decoding, see :func:`hw_decoder`;
            encoded videos only: frame folders are read on the CPU). Where the hardware
            decoder is not usable, or fails on a file, the CPU decodes instead (same frames).
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
    args = (path, n_clips, n_frames, fps, mode, rng, short_side, threads, crop)
    accel = hw_decoder(decode_device)
    if accel is None:
        return _read(*args)
    state = rng.get_state() if rng is not None else None
    try:
        return _read(*args, hwaccel=accel)
    except VideoDecodeError as e:  # the CPU decoder has the last word on a file
        if state is not None:
            rng.set_state(state)  # same temporal positions and crop the second time
        out = _read(*args)  # raises if the file is bad for the CPU decoder too
        _warn_once('hw-error', 'dataset.decode_device=%s: the hardware decoder failed on %s; '
                   'such files are decoded on the CPU (same frames)', decode_device, e)
        return out


def _read(path, n_clips, n_frames, fps, mode, rng, short_side, threads, crop, hwaccel=None):
    try:
        with open_video(path, hwaccel) as container:
            return _read_container(container, path, n_clips, n_frames, fps, mode, rng,
                                   short_side, threads, crop)
    except (av.FFmpegError, OSError, EOFError) as e:
        raise VideoDecodeError(path, f'{type(e).__name__}: {e}') from e


def open_video(path, hwaccel=None):
    """Open a video for reading with a quick stream probe.

    Opening a container probes its streams (``avformat_find_stream_info``), and for H.264
    that decodes several frames only to learn the pixel format: ~1.1 ms of the ~1.5 ms an
    open costs on a 340×256 benchmark file (~7 % of a training clip). With the probe's
    decoder limited to keyframes (``skip_frame=nonkey``, which touches only the probe's own
    decoder) it decodes none; sizes, rates and durations still come from the container, and
    the reader takes the pixel format and colour range from the frames it decodes.
    ``hwaccel``: an ``av.codec.hwaccel.HWAccel`` (:func:`hw_decoder`) to decode on a device.
    """
    if hwaccel is None:
        return av.open(path, metadata_errors='ignore', options={'skip_frame': 'nonkey'})
    return av.open(path, metadata_errors='ignore', options={'skip_frame': 'nonkey'},
                   hwaccel=hwaccel)


# --------------------------------------------------------------------------- hardware decoding
DECODE_DEVICES = ('cpu', 'cuda')


class DecodeDeviceError(UserError, ValueError):
    """An unknown ``dataset.decode_device`` (entry scripts print it as one line)."""
_hw = {}          # per process: device -> HWAccel to open videos with, or None (use the CPU)
_hw_why = {}      # per process: device -> why it is not used
_hw_keep = []     # the probe's own context: keeps the GPU's primary CUDA context alive
_warned = set()   # warnings already given by this process


def _warn_once(key, msg, *args):
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


def check_decode_device(device):
    """Validate a ``dataset.decode_device`` value; returns it.

    For ``'cuda'`` it also runs the checks that need no CUDA context (FFmpeg built with CUDA,
    the driver library present): when they fail, this process and DataLoader workers forked
    from it decode on the CPU and the one warning is given here, not once per worker.
    """
    if device not in DECODE_DEVICES:
        raise DecodeDeviceError(f'dataset.decode_device={device!r}: expected one of '
                                f'{", ".join(DECODE_DEVICES)}')
    if device != 'cpu' and device not in _hw:
        reason = _hw_unusable_without_context(device)
        if reason:
            _fall_back(device, reason)
    return device


def _hw_unusable_without_context(device):
    """Why ``device`` decoding cannot work here, from checks that create no CUDA context, or
    ``None`` when it may work."""
    from av.codec.hwaccel import hwdevices_available
    if device not in hwdevices_available():
        return f'this FFmpeg (PyAV {av.__version__}) has no {device} hardware device'
    if device == 'cuda' and os.name == 'posix':
        try:
            ctypes.CDLL('libcuda.so.1')  # what FFmpeg loads; loading it initialises nothing
        except OSError:
            return 'no NVIDIA driver (libcuda.so.1 not found)'
    return None


def _fall_back(device, reason):
    _hw[device], _hw_why[device] = None, reason
    _warn_once(('fallback', device), 'dataset.decode_device=%s: no usable hardware decoder '
               '(%s); decoding on the CPU in this process (same frames)', device, reason)


def hw_decoder(device):
    """The ``HWAccel`` this process opens videos with for ``decode_device=device``, or
    ``None`` to decode on the CPU (``'cpu'``, or no usable hardware decoder: one warning per
    process says why).

    The first call of a process probes the device by creating a decoder context for H.264:
    FFmpeg built with the device type, the driver, a GPU, and for CUDA a process that may use
    it (a DataLoader worker *forked* from a process that had already initialised CUDA may
    not: use a ``spawn`` or ``forkserver`` worker context). The GPU is the one of
    ``$LOCAL_RANK`` (``torchrun``), else GPU 0. Videos are opened with the GPU's primary CUDA
    context, which the probe's context keeps alive, so opening a file creates no new CUDA
    context. Codecs or profiles the GPU cannot decode fall back to the CPU decoder inside
    PyAV (``allow_software_fallback``).
    """
    if device == 'cpu':
        return None
    if device not in _hw:
        check_decode_device(device)
    if device not in _hw:
        _hw[device] = _probe(device)
    return _hw[device]


def hw_decode_status(device):
    """``(usable, reason)`` of ``decode_device=device`` in this process (probes it if needed;
    for the benchmark's report)."""
    usable = hw_decoder(device) is not None
    return usable, 'hardware decoder in use' if usable else _hw_why.get(device, 'CPU')


def _probe(device):
    from av.codec.hwaccel import HWAccel
    in_bad_fork = getattr(getattr(torch, 'cuda', None), '_is_in_bad_fork', lambda: False)
    if device == 'cuda' and in_bad_fork():
        _fall_back(device, 'this DataLoader worker was forked from a process that had already '
                   'initialised CUDA; use a spawn or forkserver worker context')
        return None
    options = {'primary_ctx': '1'} if device == 'cuda' else None
    accel = HWAccel(device, device=os.environ.get('LOCAL_RANK') or None,
                    allow_software_fallback=True, options=options)
    try:
        _hw_keep.append(accel.create(av.Codec('h264', 'r')))
    except (av.FFmpegError, OSError, NotImplementedError, ValueError, RuntimeError) as e:
        _fall_back(device, f'{type(e).__name__}: {e}')
        return None
    log.info('dataset.decode_device=%s: decoding on the hardware decoder', device)
    return accel


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


# YUV -> RGB matrices by (Kr, Kb) luma weights, and the libswscale colour space of each (the
# ``src_colorspace`` of ``VideoReformatter.reformat``, for formats converted by libswscale)
STANDARDS = {'bt601': (0.299, 0.114, 'ITU601'),       # SMPTE 170M, BT.470 BG: SD video
             'bt709': (0.2126, 0.0722, 'ITU709'),     # HD video
             'bt2020': (0.2627, 0.0593, 'BT2020'),    # UHD / HDR (non-constant luminance)
             'fcc': (0.30, 0.11, 'FCC'),
             'smpte240m': (0.212, 0.087, 'SMPTE240M')}
# frame.colorspace (FFmpeg's AVColorSpace) -> standard. Every other value is read as BT.601,
# as libswscale does for an unspecified (2) colour space; libswscale rejects BT.2020
# constant luminance (10) and YCgCo (8): the first gets the BT.2020 matrix, the second BT.601.
_TAGGED = {1: 'bt709', 4: 'fcc', 7: 'smpte240m', 9: 'bt2020', 10: 'bt2020'}
_JPEG_RANGE = 2  # frame.color_range of full-range ("pc", "jpeg") video; 0 / 1: limited


def colour_standard(frame):
    """``(standard, full_range)`` of a decoded frame: its ``colorspace`` tag as a key of
    :data:`STANDARDS` (untagged: ``'bt601'``) and whether its YUV is full range (a
    ``color_range`` tag of JPEG / "pc", or a ``yuvj*`` pixel format, which libswscale always
    reads as full range; otherwise limited, 16-235)."""
    full = frame.color_range == _JPEG_RANGE or frame.format.name.startswith('yuvj')
    return _TAGGED.get(frame.colorspace, 'bt601'), full


@functools.cache
def _yuv_matrix(standard='bt601', full_range=False):
    """3 × 4 float32 map from 8-bit ``(Y, U, V, 1)`` to RGB for one of :data:`STANDARDS`,
    limited (Y 16-235, U / V 16-240) or full range."""
    kr, kb, _ = STANDARDS[standard]
    kg = 1 - kr - kb
    m = np.array([[1, 0, 2 * (1 - kr)],
                  [1, -2 * kb * (1 - kb) / kg, -2 * kr * (1 - kr) / kg],
                  [1, 2 * (1 - kb), 0]])
    off = np.array([0.0, 128, 128])
    if not full_range:
        m = m * np.array([255 / 219, 255 / 224, 255 / 224])
        off[0] = 16
    return np.concatenate([m, -(m @ off)[:, None]], 1).astype(np.float32)


def _plane(p):
    """Zero-copy ``height × width`` uint8 view of a frame plane (rows padded to line_size)."""
    return np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]


def _yuv_planes(f, nv12):
    """Y, U, V of a 4:2:0 frame as ``height × width`` uint8 arrays (views where the layout
    allows; NV12's interleaved U and V are copied out, so that OpenCV gets plain planes and
    resizes them exactly as it resizes yuv420p's)."""
    planes = f.planes  # (builds a new tuple per access)
    if not nv12:
        return [_plane(p) for p in planes]
    c = planes[1]  # width: chroma samples per row, each a (U, V) byte pair
    uv = np.frombuffer(c, np.uint8).reshape(c.height, c.line_size)[:, :2 * c.width]
    uv = uv.reshape(c.height, c.width, 2)
    return [_plane(planes[0]), np.ascontiguousarray(uv[..., 0]), np.ascontiguousarray(uv[..., 1])]


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

    Set up from the first frame it is given (pixel format, colour tags, size, crop box):
    with the quick probe of :func:`open_video` the stream header does not know the pixel
    format, and the frames are the authority on it anyway. The colour matrix is the one the
    first frame's tags ask for (:func:`colour_standard`), chosen once for the video.

    8-bit yuv420p (nearly every H.264 / VP9 / MPEG-4 file): each plane is resized on its own
    with OpenCV (area filter when shrinking; chroma is already half size, so a 2× downscale
    leaves it as is) into a planar buffer of up to ``n_max`` frames, and :meth:`finish`
    interleaves the buffer and turns it into RGB with that matrix for the whole clip (about
    twice as fast as libswscale per frame, and closer to torchvision's resize of the RGB
    frame). With a crop box, planes are resized whole and then cut, and only the box is
    interleaved and converted. NV12 (what a hardware decoder hands back for the same 4:2:0
    video: U and V interleaved in one plane, the tags carried over) takes the same path after
    splitting U and V, so it gives the very same pixels. Other pixel formats go through
    libswscale, told the same colour space and range.
    """

    def __init__(self, short_side, crop, n_max, matrix=None):
        self.short_side, self.crop, self.n_max, self.matrix_file = short_side, crop, n_max, matrix
        self.box, self.count, self.pix = None, 0, None
        self.orient, self.orientation = None, None

    def _setup(self, f):
        self.pix = f.format.name
        self.h, self.w = h, w = resized_hw(f.height, f.width, self.short_side)
        self.orient, self.orientation = display_orientation(f, self.matrix_file)
        # the transform's crop box is in upright coordinates: upright frames are cropped there
        self.box = None if self.orient else _box(self.crop, h, w)
        top, left, ch, cw = self.box or (0, 0, h, w)
        self.rows, self.cols = slice(top, top + ch), slice(left, left + cw)
        self.yuv = self.pix in ('yuv420p', 'yuvj420p', 'nv12')
        self.standard, self.full = colour_standard(f)  # once per video, not per frame
        if self.yuv:
            self.matrix = _yuv_matrix(self.standard, self.full)
            self.buf = np.empty((3, self.n_max, ch, cw), np.uint8)  # Y, U, V of kept frames
            self.whole = np.empty((h, w), np.uint8) if self.box else None  # a plane before its cut

    def __call__(self, f):
        """Convert one frame (into the buffer); returns what :meth:`finish` takes."""
        if self.pix is None:
            self._setup(f)
        if f.format.name != self.pix:  # a frame unlike the first: bring it to the same format
            f = f.reformat(format=self.pix)
        if not self.yuv:
            rgb = _reformatter().reformat(f, self.w, self.h, 'rgb24', interpolation=SWS_INTERP,
                                          src_colorspace=STANDARDS[self.standard][2],
                                          src_color_range='JPEG' if self.full else 'MPEG')
            return np.ascontiguousarray(rgb.to_ndarray()[self.rows, self.cols])
        i, (h, w), box = self.count, (self.h, self.w), self.box
        self.count += 1
        for p, a in enumerate(_yuv_planes(f, self.pix == 'nv12')):
            dst = self.buf[p, i]
            if a.shape != (h, w):
                a = cv2.resize(a, (w, h), dst=self.whole if box else dst,
                               interpolation=cv2.INTER_AREA if a.shape[0] > h
                               else cv2.INTER_LINEAR)
                if not box:
                    continue
            np.copyto(dst, a[self.rows, self.cols])
        return i

    def finish(self, converted):
        """The converted frames, in the order given, as one N × h × w × 3 array, upright
        (the stream's display matrix applied, :func:`display_orientation`)."""
        if not self.yuv:
            return upright(np.stack(converted), self.orient)
        n, (ch, cw) = self.count, self.buf.shape[2:]
        yuv = cv2.merge([self.buf[p, :n].reshape(n * ch, cw) for p in range(3)])
        rgb = cv2.transform(yuv, self.matrix).reshape(n, ch, cw, 3)
        return upright(rgb if converted == list(range(n)) else rgb[converted], self.orient)


# ------------------------------------------------------------------------------- orientation
_DISPLAYMATRIX = av.sidedata.sidedata.Type.DISPLAYMATRIX


def _boxes(data, start=0, end=None):
    """``(type, payload start, payload end)`` of the ISO-BMFF boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack('>I4s', data[start:start + 8])
        head = 8
        if size == 1 and start + 16 <= end:
            size, head = struct.unpack('>Q', data[start + 8:start + 16])[0], 16
        elif size == 0:
            size = end - start
        if size < head or start + size > end:
            return
        yield kind, start + head, start + size
        start += size


def _moov(path):
    """The bytes of an mp4 / mov file's ``moov`` box (a few kB), or ``None``."""
    with open(path, 'rb') as f:
        total = os.fstat(f.fileno()).st_size
        pos = 0
        while pos + 8 <= total:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                return None
            size, kind = struct.unpack('>I4s', head[:8])
            skip = 8
            if size == 1 and len(head) == 16:
                size, skip = struct.unpack('>Q', head[8:16])[0], 16
            elif size == 0:
                size = total - pos
            if size < skip:
                return None
            if kind == b'moov':
                return f.read(size - skip) if skip == 16 else head[8:] + f.read(size - 16)
            pos += size
    return None


def mov_display_matrix(path):
    """The display matrix of the first video track of an mp4 / mov file (its ``tkhd`` box),
    as FFmpeg exports it: nine int32 (16.16, 2.30 fixed point), or ``None``.

    Read from the file because the reader's quick stream probe (:func:`open_video`) makes
    FFmpeg drop the stream's display matrix."""
    moov = _moov(path)
    if moov is None:
        return None
    for kind, a, b in _boxes(moov):
        if kind != b'trak':
            continue
        tkhd, video = None, False
        for k, c, d in _boxes(moov, a, b):
            if k == b'tkhd':
                tkhd = moov[c:d]
            elif k == b'mdia':
                for k2, e, _ in _boxes(moov, c, d):
                    if k2 == b'hdlr' and moov[e + 8:e + 12] == b'vide':
                        video = True
        if video and tkhd:
            at = 40 + (12 if tkhd[0] == 1 else 0)  # after times, ids, duration, layer, volume
            if len(tkhd) >= at + 36:
                return np.array(struct.unpack('>9i', tkhd[at:at + 36]), np.int32)
            return None
    return None


def file_display_matrix(container, path):
    """The display matrix of ``path`` (mp4 / mov: two or three small reads and a parse of its
    ``moov``, tens of microseconds; ``None`` for other containers)."""
    if 'mp4' not in container.format.name and 'mov' not in container.format.name:
        return None
    try:
        return mov_display_matrix(path)
    except (OSError, struct.error):
        return None


def display_orientation(frame, matrix=None):
    """How a decoded frame is shown, from its display matrix (the side data phones write,
    ``rotate=90`` in older tools): ``(orient, description)``.

    ``orient`` is ``None`` for an upright frame or ``(transpose, flip_rows, flip_cols)``, the
    steps :func:`upright` takes. The matrix maps a stored pixel ``(x, y)`` to the display at
    ``(a·x + c·y, b·x + d·y)`` (FFmpeg's convention, 16.16 fixed point): with ``a = d = 0`` the
    axes swap (90° / 270°, possibly mirrored), and a negative coefficient reverses that display
    axis. A rotation that is not a multiple of 90° is left as stored, with a warning.
    ``matrix``: the matrix when known from the file (:func:`file_display_matrix`), else the
    frame's side data is read.
    """
    if matrix is None:
        data = next((bytes(sd) for sd in frame.side_data if sd.type == _DISPLAYMATRIX), None)
        if data is None or len(data) < 36:
            return None, None
        matrix = np.frombuffer(data[:36], np.int32)
    m = np.asarray(matrix, np.float64)
    a, b, c, d = m[0], m[1], m[3], m[4]
    swap = abs(b) > abs(a)
    x_from, y_from = (c, b) if swap else (a, d)  # the coefficients that carry each display axis
    off = (a, d) if swap else (b, c)
    if min(abs(x_from), abs(y_from)) < 1e-3 * max(abs(m[:5]).max(), 1) \
            or max(abs(off[0]), abs(off[1])) > 1e-3 * abs(x_from):
        _warn_once(('rotation', degrees(m)), 'a display matrix rotating by %s degrees is '
                   'not a multiple of 90; such videos are read as stored', degrees(m))
        return None, None
    orient = (bool(swap), bool(y_from < 0), bool(x_from < 0))
    if orient == (False, False, False):
        return None, None
    mirrored = (a * d - b * c) < 0
    return orient, f'rotated {degrees(m)} degrees' + (', mirrored' if mirrored else '')


def degrees(m):
    """Counter-clockwise rotation (degrees, -180..180) of a display matrix, as FFmpeg reports
    it (``av_display_rotation_get``; PyAV's ``VideoFrame.rotation``)."""
    sx, sy = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if not sx or not sy:
        return 0
    return round(-math.degrees(math.atan2(m[1] / sy, m[0] / sx)))


def upright(frames, orient):
    """``N × H × W × C`` frames as displayed: the steps of :func:`display_orientation`."""
    if orient is None:
        return frames
    swap, flip_rows, flip_cols = orient
    if swap:
        frames = frames.transpose(0, 2, 1, 3)
    if flip_rows:
        frames = frames[:, ::-1]
    if flip_cols:
        frames = frames[:, :, ::-1]
    return np.ascontiguousarray(frames)


def _read_container(container, path, n_clips, n_frames, fps, mode, rng, short_side, threads,
                    crop):
    if not container.streams.video:
        raise VideoDecodeError(path, 'no video stream')
    stream = container.streams.video[0]
    stream.thread_count = threads
    src_fps, n_src, duration = _stream_info(container, stream, path)
    state = rng.get_state() if rng is not None else None
    positions = clip_positions(duration, src_fps, n_src, n_clips, n_frames, fps, mode, rng)
    known_end = _short_files.get(_file_key(path))
    if known_end is not None and past_end(max(max(c) for c in positions), known_end):
        # learnt earlier in this process: this clip reaches past the file's true end
        positions = _within(known_end, state, rng, src_fps, n_clips, n_frames, fps, mode)
    try:
        return _decode_clips(container, stream, path, positions, src_fps, n_src, short_side,
                             crop)
    except _ShortFile as short:
        _learn_short(path, short.end, n_src, src_fps)
        positions = _within(short.end, state, rng, src_fps, n_clips, n_frames, fps, mode)
        return _decode_clips(container, stream, path, positions, src_fps, n_src, short_side,
                             crop, short=short.end)


def _decode_clips(container, stream, path, positions, src_fps, n_src, short_side, crop,
                  short=None):
    need = sorted({p for c in positions for p in c})
    convert = _Converter(short_side, crop, len(need) + 1, file_display_matrix(container, path))
    n_true = n_src if short is None else math.floor(short) + 1
    frames = decode_indices(container, stream, need, src_fps, convert, path, n_src=n_true,
                            reused=short is not None, detect_short=short is None)
    video = _gather(frames, positions, convert.finish)
    return video, {'src_fps': src_fps, 'n_src_frames': n_true, 'duration': n_true / src_fps,
                   'indices': positions_to_indices(positions), 'crop': convert.box,
                   'orientation': convert.orientation,
                   'header_frames': n_src if short is not None else None}


# ------------------------------------------------------------------ files shorter than header
class _ShortFile(Exception):
    """The decodable frames end well before the frame count of the header (a truncated file);
    ``end``: position (in source frames) of the last decodable frame."""

    def __init__(self, end):
        super().__init__(end)
        self.end = end


# Per process: file -> position of its last decodable frame, for files whose header promises
# more frames than they hold. Only a shortcut: a clip comes out the same whether or not this
# process has seen the file before (see _read_container), so DataLoader workers, which each
# have their own copy, and resumed runs agree.
_short_files = {}


def _file_key(path):
    try:
        st = os.stat(path)
    except OSError:
        return path
    return path, st.st_size, st.st_mtime_ns


def _learn_short(path, end, n_src, src_fps):
    key = _file_key(path)
    if key not in _short_files:
        _short_files[key] = end
        log.warning('%s: the header promises %d frames but only %d decode (truncated file?); '
                    'its clips are sampled within the frames it holds, never padded',
                    path, n_src, math.floor(end) + 1)


def _within(end, state, rng, src_fps, n_clips, n_frames, fps, mode):
    """The clip positions drawn again, with the same draws, for a video whose last decodable
    frame is at position ``end``: as if its header had said ``floor(end) + 1`` frames."""
    if state is not None:
        rng.set_state(state)
    n = math.floor(end) + 1
    return clip_positions(n / src_fps, src_fps, n, n_clips, n_frames, fps, mode, rng)


def _gather(frames, indices, finish=np.stack):
    """``{key: converted frame}``, K lists of T keys -> uint8 tensor K × T × H × W × 3
    (``finish`` turns the converted frames, in key order, into one N × H × W × 3 array; keys
    are source frame indices or positions)."""
    keys = sorted(frames)
    stack = torch.from_numpy(finish([frames[k] for k in keys]))
    flat = [i for clip in indices for i in clip]
    k, t = len(indices), len(indices[0])
    if flat == keys:  # every frame used once, in order (the usual case): no second copy
        return stack.view(k, t, *stack.shape[1:])
    pos = {key: i for i, key in enumerate(keys)}
    return stack[torch.tensor([pos[i] for i in flat])].view(k, t, *stack.shape[1:])


def frame_positions(stream, src_fps):
    """``position(pts, prev) -> float | int``: where a frame sits, in source frames from the
    stream's start (``(pts - start) * time_base * src_fps``). A frame within half a tick of the
    time base from a whole position is put on it: a constant-frame-rate file (even one whose
    container rounds timestamps, e.g. Matroska's milliseconds) has frame ``i`` at exactly
    ``i``. A frame without pts follows the previous one."""
    tb = float(stream.time_base)
    t0 = stream.start_time or 0
    snap = tb * src_fps / 2 + 1e-9

    def position(ts, prev):
        if ts is None:
            return prev + 1
        p = (ts - t0) * tb * src_fps
        r = round(p)
        return r if abs(p - r) <= snap else p
    return position


def decode_indices(container, stream, need, src_fps, convert, path='<video>', n_src=None,
                   reused=False, detect_short=True):
    """The frame on screen at each of the sorted positions ``need`` (source frames from the
    start: ``t * src_fps``): the last frame whose position is at or before it (within ``EPS``);
    ``convert(frame)`` is called once per frame returned.

    On a constant-frame-rate file frame ``i`` sits at ``i``, so integer ``need`` are frame
    indices. On a variable-frame-rate file a frame shown for longer than one frame interval
    (a held frame) is returned for every time it is on screen, and a frame is never returned
    before its time. A frame is known to be the answer once the next one has been decoded.

    Seeks (to the keyframe at or before the target) only when the next needed position is more
    than ``SEEK_GAP_S`` ahead. Packets that cannot hold an answer are decoded with
    ``skip_frame='NONREF'``: the decoder drops them if no other frame references them (the
    B-frames of long-GOP files), which is exact and saves much of the pre-roll after a seek;
    should a dropped frame turn out to be an answer (a held frame), that stretch is decoded
    again without dropping. Positions past the last frame get the last frame (the end of the
    video): with ``n_src`` (the frame count the positions were clamped to), the position
    ``n_src - 1`` stands for "the end", the last frame, wherever a variable frame rate puts it.
    With ``detect_short``, a clip reaching past the last decodable frame of a file whose index
    lists frames after it (a truncated file) raises ``_ShortFile``. ``convert=None`` decodes without
    converting (the decode-only benchmark). Returns ``{position: convert(frame)}``.
    """
    tb = float(stream.time_base)
    t0 = stream.start_time or 0
    gap = max(1, int(SEEK_GAP_S * src_fps))
    convert = convert or (lambda f: f)
    cc = stream.codec_context
    position = frame_positions(stream, src_fps)
    # a container read before (a second pass over a truncated file) is sought before use
    state = {'started': reused, 'exact': False, 'error': None, 'cut': False}
    dropped = set()  # positions of packets sent with NONREF and not (yet) seen decoded
    end = n_src - 1 if n_src is not None and need and need[-1] >= n_src - 1 else None

    def may_answer(p):
        """Whether the frame at ``p`` may be on screen at a needed position: it is within one
        frame interval before one (on-grid frames: exactly the frame ``floor(s + EPS)``), two for
        off-grid ones (variable frame rate)."""
        if end is not None and p > end - 1:
            return True  # may be the last frame, which "the end" shows
        i = bisect.bisect_left(need_eps, p)
        if i == len(need_eps):
            return False  # after every needed position: never on screen at one
        return need_eps[i] - p < (1 if isinstance(p, int) else 2)

    need_eps = [s + EPS for s in need]

    def decoded(packets):
        pos = -1
        packets = iter(packets)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.FFmpegError, EOFError) as e:  # unreadable: the data ends here
                state['error'] = e
                return
            skip = 'DEFAULT'
            if SKIP_NONREF and not state['exact'] and packet.pts is not None:
                p = position(packet.pts, 0)
                if not may_answer(p):
                    skip = 'NONREF'
                    dropped.add(p)
            if cc.skip_frame != skip:
                cc.skip_frame = skip
            try:
                frames = packet.decode()
            except (av.FFmpegError, EOFError) as e:
                if _more_packets(packets):
                    raise  # damage inside the file, not its end: undecodable
                state['error'] = e  # the last packet is cut short (a truncated file):
                frames = _drain(cc)  # the frames the decoder still holds are the last ones
            for frame in frames:
                pos = position(frame.pts, pos)
                dropped.discard(pos)
                yield pos, frame

    def frames_from(target):
        """Yield (position, frame) from the keyframe before ``target`` onward."""
        if target > 0 or state['started']:
            container.seek(t0 + int(target / src_fps / tb), backward=True, any_frame=False,
                           stream=stream)
        state['started'] = True
        seeked = target > 0
        for pos, frame in decoded(container.demux(stream)):
            if pos > target + EPS and target > 0:
                # seek overshot (bad index): rewind and decode from the start
                container.seek(t0, backward=True, any_frame=False, stream=stream)
                yield from decoded(container.demux(stream))
                return
            target = -1  # check only the first frame after a seek
            yield pos, frame
        if seeked and target > 0:
            # nothing decodes after the keyframe the seek found (a file cut before it):
            # decode from the start to find where its frames end
            state['error'], state['cut'] = None, True
            container.seek(t0, backward=True, any_frame=False, stream=stream)
            yield from decoded(container.demux(stream))

    out, j, prev, it = {}, 0, None, None  # prev: [position, frame, converted or None]

    def answer(s):
        if prev[2] is None:
            prev[2] = convert(prev[1])
        out[s] = prev[2]

    def lost_answer(upto):
        """Whether a dropped frame, not ``prev``, is the last one at or before ``upto``."""
        return any(prev[0] < p <= upto for p in dropped)

    while j < len(need):
        if it is None or need[j] - prev[0] > gap:
            it, prev = frames_from(need[j]), None
        redo = stopped = False
        for pos, frame in it:
            j0 = j
            while j < len(need) and pos > need_eps[j] and need[j] != end:  # frame ends prev's time
                if prev is None:  # nothing before the first frame: it is what is shown
                    prev = [pos, frame, None]
                elif dropped and lost_answer(need_eps[j]):
                    redo = True
                    break
                answer(need[j])
                j += 1
            if redo:
                break
            if prev is None or prev[1] is not frame:
                prev = [pos, frame, None]
            # past a clip, a far next one is sought; frames before a clip are decoded through
            if j == len(need) or (j > j0 and need[j] - pos > gap and not state['cut']):
                stopped = True
                break
        if redo or (not stopped and prev is not None and dropped
                    and lost_answer(float('inf'))):
            # an answer was dropped (a held frame of a variable-rate file): decode that
            # stretch again without dropping anything
            state['exact'], it = True, None
            dropped.clear()
            continue
        if stopped:
            continue
        # the decoder ran dry: the end of the video, or of what a truncated file holds
        if prev is None:
            err = state['error']
            raise VideoDecodeError(path, f'{type(err).__name__}: {err}' if err is not None
                                   else 'no decodable video frames')
        if detect_short and n_src is not None and past_end(need[-1], prev[0]):
            promised = _last_indexed(stream, position)
            if promised is not None and prev[0] < promised - 0.5:
                raise _ShortFile(prev[0])
        while j < len(need):
            answer(need[j])
            j += 1
    return out


def _last_indexed(stream, position):
    """Position of the last frame the container's index lists (mp4 / mov: every frame, by its
    decoding time, which is never after its presentation time; Matroska: the last keyframe;
    AVI: every frame), or ``None`` without an index. Frames the index lists but the decoder
    cannot reach make a file truncated; an estimate of the frame count from the duration
    never does."""
    try:
        entries = stream.index_entries
        n = len(entries)
        return position(entries[n - 1].timestamp, 0) if n else None
    except (AttributeError, av.FFmpegError, IndexError):
        return None


def past_end(position, end):
    """Whether a clip position needs a frame after the one at ``end`` (the last decodable
    frame of a file shorter than its header): it is a frame interval or more beyond it."""
    return position + EPS >= end + 1


def _drain(cc):
    """The frames a decoder still holds (after the last packet it could read)."""
    try:
        return cc.decode(None)
    except (av.FFmpegError, EOFError):
        return []


def _more_packets(packets):
    """Whether a demuxer has packets left (consumes at most one)."""
    try:
        return any(p.size > 0 for p in packets)
    except (av.FFmpegError, EOFError):
        return False


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
