"""Colour jitter and normalisation of a clip as a few fused per-pixel passes.

Semantics are torchvision's ``v2.ColorJitter`` on a float video followed by ``Normalize``:
the four ops run in a random order, each result clamped to [0, 1], contrast blending every
frame with its own mean grey level, hue a rotation of H in HSV.

Brightness, contrast and saturation are affine colour maps, and so are the uint8 -> [0, 1]
scaling and the normalisation. They are not applied one by one: :class:`ColourChain` keeps
the pending map ``y = A x + b_t`` (a 3 × 3 matrix shared by the clip, an offset per frame
``t``) and composes each new op into it. The clip is only rewritten when the semantics need
the values themselves: before hue (not affine), after an op that can leave [0, 1] (a factor
above 1: its clamp), and at the end (normalised, channels-first). An op with a factor <= 1
blends values inside [0, 1], so its clamp is a no-op and it costs two 3 × 3 products.
Contrast needs each frame's mean grey level of the current values: that is the grey weight
applied to ``A`` times the frame's mean colour plus ``b_t``, from one cached mean per frame.

``tests/test_transforms.py`` checks the result against torchvision's ops and
``benchmarks/pipeline.py --ops`` times both.
"""
import threading

import cv2
import numpy as np
import torch

_local = threading.local()
GRAY = np.array([0.2989, 0.587, 0.114])  # torchvision's rgb_to_grayscale weights
_EYE = np.eye(3)
_GRAY3 = np.tile(GRAY, (3, 1))  # every row: the grey level


def _image(a):
    """``(T*H) × W × 3`` view of a contiguous ``T × H × W × 3`` array (OpenCV then handles the
    whole clip in one call)."""
    t, h, w, c = a.shape
    return a.reshape(t * h, w, c)


def scratch(name, shape):
    """This thread's reusable float32 buffer ``name`` of ``shape``: scratch space that
    is written before it is read, kept between clips (a fresh multi-MB buffer costs page
    faults on first touch, as much as the pass that fills it)."""
    bufs = _local.__dict__.setdefault('bufs', {})
    n = int(np.prod(shape))
    buf = bufs.get(name)
    if buf is None or buf.size < n:  # grows only: a smaller last chunk reuses the memory
        buf = bufs[name] = np.empty(n, np.float32)
    return buf[:n].reshape(shape)


class ColourChain:
    """Pending affine colour map over a float32 channels-last clip ``T × H × W × 3``.

    The map is ``y = A x + b_t``; while it is a plain scaling ``k x`` (the / 255, brightness)
    ``A`` and ``b`` are ``None`` and only ``k`` is kept, which makes the common cases cheap.

    Args:
        x: contiguous float32 numpy array ``T × H × W × 3``, values >= 0; may be overwritten.
        scale: initial map ``y = scale · x`` (``1 / 255`` for values still in 0..255).
    """

    def __init__(self, x, scale=1.0):
        self.x = x
        self._reset(scale)

    def _reset(self, scale=1.0):
        self.k, self.A, self.b = scale, None, None
        self._means = None

    def _spare(self):
        """A scratch buffer for the next rewrite (never the one holding ``x``)."""
        a = scratch('a', self.x.shape)
        return scratch('b', self.x.shape) if np.may_share_memory(a, self.x) else a

    def _matrix(self):
        return self.A if self.A is not None else _EYE * self.k

    def _compose(self, m, offset=None):
        """Follow the pending map with ``y -> m y + offset`` (``m``: 3 × 3; ``offset``:
        ``1 × 3`` for all frames, or ``T × 1`` / ``T × 3`` per frame)."""
        self.A = m @ self._matrix()
        if self.b is not None:
            self.b = self.b @ m.T
        if offset is not None:
            offset = np.broadcast_to(offset, (offset.shape[0], 3))
            self.b = offset + self.b if self.b is not None else offset

    def _frame_means(self):
        """Mean colour of every frame of ``x`` (``T × 3``, float64), computed once per buffer."""
        if self._means is None:
            self._means = np.array([cv2.mean(f)[:3] for f in self.x])
        return self._means

    def _write(self, dst):
        """Write ``A x + b_t`` into ``dst`` (same shape); one call unless offsets differ
        between frames (``b`` is ``None``, one row for all frames, or one row per frame)."""
        a = self._matrix().astype(np.float32)
        b = np.zeros((1, 3)) if self.b is None else self.b
        if len(b) == 1:
            cv2.transform(_image(self.x), np.hstack([a, b.T.astype(np.float32)]),
                          dst=_image(dst))
            return
        for i in range(len(self.x)):
            cv2.transform(self.x[i], np.hstack([a, b[i, :, None].astype(np.float32)]),
                          dst=dst[i])

    def apply(self):
        """Rewrite ``x`` with the pending map; returns ``x``."""
        if self.A is None and self.k == 1:
            return self.x
        out = self._spare()  # OpenCV's transform is ~2x slower in place
        self._write(out)
        self.x = out
        self._reset()
        return out

    def _clamp(self):
        """Clamp the current values (pending map included) to [0, 1]."""
        if self._scalar_map():
            # clamp(k x, 0, 1) = k min(x, 1 / k) for x >= 0: one pass, k stays pending
            cv2.threshold(_image(self.x), 1.0 / self.k, 0, cv2.THRESH_TRUNC, dst=_image(self.x))
            self._means = None
        else:
            torch.from_numpy(self.apply()).clamp_(0.0, 1.0)

    def _scalar_map(self):
        """True when the pending map is a scaling ``k x`` with ``k > 0`` (``A``, ``b`` unset:
        ``b`` is only ever set together with ``A``)."""
        return self.A is None and self.k > 0

    def brightness(self, v):
        if self.A is None:
            self.k *= v
        else:
            self._compose(_EYE * v)
        if v > 1:
            self._clamp()

    def contrast(self, v):
        current = self._frame_means() @ self._matrix().T  # mean colour per frame, map applied
        grey = (current + (self.b if self.b is not None else 0.0)) @ GRAY
        self._compose(_EYE * v, ((1 - v) * grey)[:, None])
        if v > 1:
            self._clamp()

    def saturation(self, v):
        self._compose(_EYE * v + (1 - v) * _GRAY3)
        if v > 1:
            self._clamp()

    def hue(self, v):
        # a hue rotation commutes with a positive scaling of all channels (H and S are
        # ratios, V scales along): a pending ``k x`` stays pending instead of costing a
        # rewrite
        if self._scalar_map():
            self._means = None
        else:
            self.apply()
        img = _image(self.x)
        hsv = _image(scratch('hsv', self.x.shape))
        cv2.cvtColor(img, cv2.COLOR_RGB2HSV, dst=hsv)  # H in degrees, S in [0, 1], V = max
        # OpenCV wraps H >= 360 back into range but not H < 0: shift by a positive angle
        cv2.add(hsv, ((v * 360.0) % 360.0, 0.0, 0.0, 0.0), dst=hsv)
        cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB, dst=img)

    def jitter(self, order, vals):
        """ColorJitter ops in ``order`` (indices into brightness, contrast, saturation, hue)
        with factors ``vals`` (``None``: op off)."""
        ops = (self.brightness, self.contrast, self.saturation, self.hue)
        for k in order:
            if vals[k] is not None:
                ops[k](vals[k])
        return self

    def normalize_into(self, mean, std, out):
        """Apply the pending map followed by ``(y - mean) / std`` and write the result
        channels-first into ``out`` (float32 numpy ``3 × T × H × W``, planes contiguous)."""
        inv = 1.0 / np.asarray(std, np.float64)
        self._compose(np.diag(inv), (-np.asarray(mean, np.float64) * inv)[None])
        cv2.split(_image(self.apply()), [p.reshape(-1, p.shape[-1]) for p in out])


def jitter_normalize(x, jitter, mean, std, chunk=4, out=None):
    """uint8 channels-last clip ``T × H × W × 3`` -> float tensor ``3 × T × H × W``: scale to
    [0, 1], colour jitter ``jitter = (order, vals)`` (or ``None``), normalise. ``out``: a
    contiguous float32 tensor of that shape to write into (returned).

    Every op works on single frames (contrast uses each frame's own mean), so the clip goes
    through in chunks of ``chunk`` frames whose scratch buffers stay in the CPU's L2 cache;
    a whole 16 × 112 × 112 float clip (2.4 MB) would not.
    """
    t = x.shape[0]
    out = torch.empty(3, *x.shape[:3]) if out is None else out
    planes = out.numpy()
    for s in range(0, t, chunk):
        e = min(t, s + chunk)
        buf = scratch('in', (e - s, *x.shape[1:]))
        torch.from_numpy(buf).copy_(x[s:e])  # a plain dtype copy; the / 255 joins the map
        chain = ColourChain(buf, scale=1 / 255.0)
        if jitter is not None:
            chain.jitter(*jitter)
        chain.normalize_into(mean, std, planes[:, s:e])
    return out


def color_jitter(x, order, vals):
    """Colour jitter of a float channels-last clip ``T × H × W × 3`` in [0, 1] (torchvision's
    float ColorJitter semantics, see the module docstring). ``x`` may be overwritten; returns
    the result as a tensor of the same shape."""
    assert x.is_contiguous() and x.dtype == torch.float32, 'needs a contiguous float32 clip'
    a = x.numpy()
    y = ColourChain(a).jitter(order, vals).apply()
    return x if y is a else torch.from_numpy(y.copy())  # never hand out a scratch buffer
