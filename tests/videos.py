"""Test helpers: write real encoded videos (PyAV) and broken files.

Frames come from a generator ``frame_fn(i, h, w) -> uint8 h × w × 3``. The default,
:func:`index_frame`, writes ``i`` into the picture in a form that survives lossy coding, so a
test can read back which source frame a decoder returned (:func:`frame_id`).
"""
import fractions
import os

import av
import cv2
import numpy as np

# codec, container extension and pixel format of each supported kind
FORMATS = {
    'mp4': ('libx264', 'yuv420p', {'g': '12', 'bf': '2', 'crf': '18'}),
    'avi': ('mpeg4', 'yuv420p', {'g': '12', 'qscale': '2'}),
    'webm': ('libvpx-vp9', 'yuv420p', {'g': '12', 'crf': '20', 'b': '0',
                                       'deadline': 'realtime', 'cpu-used': '8'}),
}
BITS = (2, 8)  # frame id written as a 2 × 8 grid of black / white blocks (16 bits)


def index_frame(i, h, w):
    """Frame ``i``: bit ``b`` of ``i`` paints block ``b`` of a 2 × 8 grid white. Survives
    lossy coding and resizing, so :func:`frame_id` reads ``i`` back from any decoded frame."""
    rows, cols = BITS
    f = np.full((h, w, 3), 16, np.uint8)
    for b in range(rows * cols):
        if (i >> b) & 1:
            r, c = divmod(b, cols)
            f[r * h // rows:(r + 1) * h // rows, c * w // cols:(c + 1) * w // cols] = 235
    return f


def frame_id(frame):
    """Inverse of :func:`index_frame` on a decoded ``H × W × 3`` uint8 frame (block centres)."""
    rows, cols = BITS
    h, w = frame.shape[:2]
    i = 0
    for b in range(rows * cols):
        r, c = divmod(b, cols)
        y0, y1 = (4 * r + 1) * h // (4 * rows), (4 * r + 3) * h // (4 * rows)
        x0, x1 = (4 * c + 1) * w // (4 * cols), (4 * c + 3) * w // (4 * cols)
        if float(frame[y0:y1, x0:x1].astype(np.float32).mean()) > 128:
            i |= 1 << b
    return i


# FFmpeg's AVColorSpace tag -> libswscale's name for its matrix (to encode with it)
SWS_COLORSPACE = {1: 'ITU709', 4: 'FCC', 5: 'ITU601', 6: 'SMPTE170M', 7: 'SMPTE240M',
                  9: 'BT2020'}


def write_video(path, n_frames, fps=30, size=(64, 48), frame_fn=index_frame, fmt=None,
                pix_fmt=None, colorspace=None, color_range=None):
    """Encode ``n_frames`` frames of ``size=(width, height)`` at ``fps`` to ``path``.

    ``fmt`` is ``'mp4'`` (H.264), ``'avi'`` (MPEG-4 part 2) or ``'webm'`` (VP9); by default
    taken from the extension; ``pix_fmt`` overrides its pixel format (e.g. ``'yuv444p'``).
    ``colorspace`` / ``color_range``: FFmpeg's tags (``AVColorSpace``: 1 BT.709, 6 SMPTE 170M
    (BT.601), 9 BT.2020…; ``AVColorRange``: 1 limited "tv", 2 full "pc") written into the
    stream (H.264 and VP9 carry them; MPEG-4 in AVI does not), the RGB frames turned into YUV
    with that matrix and range. Untagged (``None``): BT.601 limited, libswscale's default.
    Returns ``path``.
    """
    fmt = fmt or os.path.splitext(path)[1].lstrip('.')
    codec, default_pix, opts = FORMATS[fmt]
    pix_fmt = pix_fmt or default_pix
    w, h = size
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with av.open(path, 'w') as c:
        s = c.add_stream(codec, rate=fractions.Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.options = dict(opts)
        if colorspace is not None:
            s.codec_context.colorspace = colorspace
        if color_range is not None:
            s.codec_context.color_range = color_range
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frame_fn(i, h, w), format='rgb24')
            if colorspace is not None or color_range is not None:
                frame = frame.reformat(format=pix_fmt,
                                       dst_colorspace=SWS_COLORSPACE.get(colorspace),
                                       dst_color_range=color_range)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_frames(folder, n_frames, size=(64, 48), frame_fn=index_frame):
    """Write ``00001.jpg``, ``00002.jpg``… (SSv1 / Jester layout). Returns ``folder``."""
    os.makedirs(folder, exist_ok=True)
    w, h = size
    for i in range(n_frames):
        rgb = frame_fn(i, h, w)
        cv2.imwrite(os.path.join(folder, f'{i + 1:05d}.jpg'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


def write_corrupt(path, src=None, keep=0.3):
    """A corrupt video: the first ``keep`` fraction of a real mp4 (its index is lost) followed
    by garbage bytes; without ``src`` only garbage."""
    data = b''
    if src is not None:
        with open(src, 'rb') as f:
            full = f.read()
        data = full[:int(len(full) * keep)]
    data += np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with open(path, 'wb') as f:
        f.write(data)
    return path


def write_empty(path):
    """A zero-length file."""
    open(path, 'wb').close()
    return path


def write_audio_only(path, seconds=1.0, rate=16000):
    """A valid container with one audio stream and no video stream (AAC in .mp4)."""
    with av.open(path, 'w') as c:
        s = c.add_stream('aac', rate=rate)
        s.layout = 'mono'
        n, pos = int(seconds * rate), 0
        while pos < n:
            chunk = np.sin(np.arange(pos, pos + 1024) / 10.0).astype(np.float32)[None]
            f = av.AudioFrame.from_ndarray(chunk, format='fltp', layout='mono')
            f.sample_rate, f.pts = rate, pos
            for p in s.encode(f):
                c.mux(p)
            pos += 1024
        for p in s.encode():
            c.mux(p)
    return path


def write_vfr(path, times, size=(64, 48), frame_fn=index_frame, time_base=90000, bframes=2,
              rotation=None, hflip=False, vflip=False, faststart=False, gop=12):
    """H.264 ``.mp4`` whose frame ``i`` has presentation time ``times[i]`` seconds (any
    increasing times: a variable frame rate, a held frame), stored in a ``1/time_base`` time
    base. ``rotation`` (degrees counter-clockwise) / ``hflip`` / ``vflip`` write a display
    matrix, as a phone does. Returns ``path``."""
    w, h = size
    rate = fractions.Fraction(max(1, round((len(times) - 1) / (times[-1] - times[0] or 1))))
    tb = fractions.Fraction(1, time_base)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    options = {'movflags': 'faststart'} if faststart else {}
    with av.open(path, 'w', options=options) as c:
        s = c.add_stream('libx264', rate=rate)
        s.width, s.height, s.pix_fmt = w, h, 'yuv420p'
        s.codec_context.time_base = tb
        s.options = {'g': str(gop), 'bf': str(bframes), 'crf': '18'}
        if rotation is not None or hflip or vflip:
            s.set_display_rotation(rotation or 0, hflip=hflip, vflip=vflip)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(frame_fn(i, h, w), format='rgb24')
            frame.pts, frame.time_base = round(t * time_base), tb
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def truncate_video(src, dst, keep_packets):
    """A copy of ``src`` cut inside its video data, after its first ``keep_packets`` packets
    (plus a few bytes of the next one): a faststart file then keeps a header that promises
    every frame. Returns ``dst``."""
    with av.open(src) as c:
        ends = sorted(p.pos + p.size for p in c.demux(c.streams.video[0]) if p.size)
    with open(src, 'rb') as f:
        data = f.read()
    with open(dst, 'wb') as f:
        f.write(data[:ends[keep_packets - 1] + 7])
    return dst


def pts_seconds(path):
    """Presentation times (s, from the stream start) of every frame PyAV decodes, in order
    (up to the first decoding error: a truncated file's decodable frames)."""
    out = []
    with av.open(path) as c:
        s = c.streams.video[0]
        t0 = s.start_time or 0
        frames = []
        try:
            for packet in c.demux(s):
                frames += packet.decode()
        except (av.FFmpegError, EOFError):
            frames += s.codec_context.decode(None)  # what the decoder holds still shows
        out = [float((f.pts - t0) * s.time_base) for f in frames]
    return out
