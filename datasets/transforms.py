"""Video clip transforms (torchvision ``presets.py`` style), random parameters drawn once per clip.

Input: uint8 ``K × T × H × W × 3`` (what :func:`datasets.decode.read_clips` returns).
Output: float ``K × C × T × H × W``, normalised. Every random parameter (crop box, flip,
jitter factors and order) is drawn once per clip from the generator passed in, so all frames
of a clip share them and clips of one video may differ.

Geometry uses ``torchvision.transforms.v2.functional`` on channels-first uint8 views. Colour
jitter and normalisation (the expensive part) run on the *cropped* clip, in float,
channels-last, with the semantics of ``torchvision.transforms.v2.ColorJitter`` +
``Normalize`` on a float video, fused into a few OpenCV passes (:mod:`datasets.colour`);
``tests/test_transforms.py`` checks them against the library ops and
``benchmarks/pipeline.py --ops`` times both.

With ``device_augment`` the transform stops after the geometry and draws the flip and jitter
parameters without applying them: it returns the uint8 clips and one row of draws per clip,
and :class:`datasets.device_augment.DeviceAugment` (:meth:`VideoTransform.finisher`) applies
them to the batch on the training device.
"""
import math

import cv2
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from core.config_schema import IMAGENET_MEAN, IMAGENET_STD

from .colour import jitter_normalize
from .decode import read_clips, resized_hw
from .device_augment import DeviceAugment, pack_params


def _uniform(lo, hi, g):
    return lo + (hi - lo) * torch.rand((), generator=g, dtype=torch.float64).item()


def jitter_params(factors, g):
    """Draw ColorJitter parameters like torchvision: op order, then b, c, s factors, hue shift.

    Args:
        factors: ``[brightness, contrast, saturation, hue]`` strengths (0 disables one).
    Returns:
        ``(order, values)``: a permutation of ``0..3`` and one value per op (``None`` = off).
    """
    order = torch.randperm(4, generator=g).tolist()
    vals = []
    for k, f in enumerate(factors):
        if not f:
            vals.append(None)
        elif k == 3:
            vals.append(_uniform(-f, f, g))
        else:
            vals.append(_uniform(max(0.0, 1 - f), 1 + f, g))
    return order, vals


def library_color_jitter(x, order, vals):
    """Reference: the same ops with torchvision v2 functionals, float ``T × C × H × W`` clip."""
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for k in order:
        if vals[k] is not None:
            x = ops[k](x, vals[k])
    return x


def rrc_params(h, w, scale, ratio, g):
    """RandomResizedCrop box ``(top, left, height, width)`` drawn like torchvision, from ``g``."""
    area = h * w
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * _uniform(scale[0], scale[1], g)
        aspect = math.exp(_uniform(log_r[0], log_r[1], g))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
            return top, left, ch, cw
    in_ratio = w / h  # fallback: centre crop at the nearest allowed ratio
    if in_ratio < min(ratio):
        cw, ch = w, round(w / min(ratio))
    elif in_ratio > max(ratio):
        ch, cw = h, round(h * max(ratio))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


class VideoTransform:
    """Callable ``(video uint8 K × T × H × W × 3, generator) -> float K × C × T × H × W``.

    Attribute ``short_side``: the short side the decoder may resize to while converting
    colours (``None`` when the transform must see full-resolution frames).

    ``device_augment=True``: the call returns ``(uint8 K × T × h × w × 3, float64 K × 9)``
    instead, the clips after resize + crop and each clip's flip / jitter draws (drawn from
    the generator exactly as the float path draws them); :meth:`finisher` completes them.
    """

    def __init__(self, *, resize=None, crop=None, hflip=False, color_jitter=None,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, rnd_scale=None,
                 rnd_ratio=None, train=True, device_augment=False):
        self.resize, self.crop, self.train = resize, crop, train
        self.hflip = bool(hflip) and train
        jit = list(color_jitter) if (train and color_jitter) else None
        self.jitter = jit if jit and any(jit) else None
        self.rrc = train and (rnd_scale is not None or rnd_ratio is not None)
        self.scale = tuple(rnd_scale or (0.08, 1.0))
        self.ratio = tuple(rnd_ratio or (3 / 4, 4 / 3))
        self.mean, self.std = tuple(mean), tuple(std)
        self.short_side = None if self.rrc else resize
        self.device_augment = bool(device_augment)

    def __call__(self, video, g=None, cropped=False):
        """``cropped``: the decoder already cut the box :meth:`decoder_crop` drew."""
        if self.device_augment:
            return self.deferred(video, g, cropped)
        first = self.clip(video[0], g, cropped)
        if len(video) == 1:
            return first.unsqueeze(0)
        out = torch.empty(len(video), *first.shape)  # clips write into their slice
        out[0] = first
        for k in range(1, len(video)):
            self.clip(video[k], g, cropped, out=out[k])
        return out

    def clip(self, x, g=None, cropped=False, out=None):
        """One clip: uint8 ``T × H × W × 3`` -> float ``C × T × H × W`` (into ``out`` if
        given: contiguous, of the output's shape)."""
        x, flip, jitter = self._draw(x, g, cropped)
        if flip:
            # mirror W on the uint8 crop (img rows are (t, y), columns x)
            t, h, w, c = x.shape
            img = cv2.flip(np.ascontiguousarray(x.numpy()).reshape(t * h, w, c), 1)
            x = torch.from_numpy(img).view(t, h, w, c)
        return jitter_normalize(x, jitter, self.mean, self.std, out=out)

    def _draw(self, x, g, cropped):
        """Geometry (unless ``cropped``) and the clip's random draws, in the order of the
        generator's use: ``(uint8 T × h × w × 3, flip, jitter (order, vals) or None)``."""
        if not cropped:
            x = self._geometry(x, g)
        flip = bool(self.hflip and torch.rand((), generator=g).item() < 0.5)
        jitter = jitter_params(self.jitter, g) if self.jitter else None
        return x, flip, jitter

    def deferred(self, video, g=None, cropped=False):
        """``device_augment``: uint8 ``K × T × H × W × 3`` -> ``(uint8 K × T × h × w × 3,
        float64 K × 9 draws)``, the clips after resize + crop and, per clip, the flip and
        jitter parameters :meth:`clip` would apply (same draws from ``g``, same order)."""
        clips, rows = [], []
        for k in range(len(video)):
            x, flip, jitter = self._draw(video[k], g, cropped)
            clips.append(x)
            rows.append(pack_params(flip, jitter))
        out = video.contiguous() if cropped else torch.stack(clips)
        return out, torch.stack(rows)

    def finisher(self, sparse=False):
        """The batch finisher of ``device_augment`` (``None`` otherwise): a
        :class:`datasets.device_augment.DeviceAugment` with this transform's normalisation."""
        return DeviceAugment(self.mean, self.std, sparse) if self.device_augment else None

    def decoder_crop(self, n_clips, g):
        """``crop(h, w) -> box`` for :func:`datasets.decode.read_clips`, so that only the
        pixels this transform keeps get colour-converted, or ``None`` when the decoder cannot
        do the geometry (random-resized-crop, no crop, or random crops that differ between
        the ``n_clips`` clips). The box is drawn from ``g`` exactly as :meth:`clip` would
        draw it, at the same point of the sequence (after the temporal sampling)."""
        if self.rrc or not self.crop or (self.train and n_clips != 1):
            return None
        return lambda h, w: self._crop_box(h, w, g)

    def _crop_box(self, h, w, g):
        """``(top, left, height, width)`` of the crop on an ``h × w`` frame already resized
        (random when training, centred as ``TF.center_crop`` otherwise), or ``None`` if the
        frame is smaller than the crop (then ``TF.center_crop`` pads)."""
        size = self.crop
        if h < size or w < size:
            return None
        if self.train:
            top = int(torch.randint(0, h - size + 1, (1,), generator=g))
            left = int(torch.randint(0, w - size + 1, (1,), generator=g))
            return top, left, size, size
        return int(round((h - size) / 2.0)), int(round((w - size) / 2.0)), size, size

    def _geometry(self, x, g):
        """Resize + crop (random or centre), or random-resized-crop; uint8 ``T × h × w × 3``."""
        cf = x.permute(0, 3, 1, 2)  # T × C × H × W view for torchvision
        h, w = cf.shape[-2:]
        if self.rrc:
            top, left, ch, cw = rrc_params(h, w, self.scale, self.ratio, g)
            size = [self.crop, self.crop] if self.crop else [ch, cw]
            cf = TF.resized_crop(cf, top, left, ch, cw, size, antialias=True)
            return cf.permute(0, 2, 3, 1)
        if self.resize and min(h, w) != self.resize:
            cf = TF.resize(cf, list(resized_hw(h, w, self.resize)), antialias=True)
            h, w = cf.shape[-2:]
        if self.crop:
            box = self._crop_box(h, w, g)
            cf = (TF.crop(cf, *box) if box else TF.center_crop(cf, [self.crop, self.crop]))
        return cf.permute(0, 2, 3, 1)


def load_clips(path, n_clips, n_frames, fps, mode, g, transform, **kw):
    """Decode ``n_clips`` clips of a video and transform them: :func:`read_clips` followed
    by ``transform(video, g)``, with the transform's crop done by the decoder where it can
    (:meth:`VideoTransform.decoder_crop`). Same output and generator use as the two steps
    done separately. ``kw`` goes to :func:`read_clips`; returns ``(clips, info)``."""
    plan = getattr(transform, 'decoder_crop', None)
    crop = plan(n_clips, g) if plan is not None else None
    video, info = read_clips(path, n_clips, n_frames, fps, mode, g, crop=crop,
                             short_side=getattr(transform, 'short_side', None), **kw)
    if info.get('crop'):
        return transform(video, g, cropped=True), info
    return transform(video, g), info


def build_transform(tcfg, train):
    """Build the train or test transform from a ``dataset.transform`` config block.

    Train: resize short side, random crop (or random-resized-crop with ``rnd_scale`` /
    ``rnd_ratio``), horizontal flip, colour jitter, normalise. Test: resize + centre crop.
    ``device_augment: true``: flip, jitter and normalisation are left to the training device
    (see :class:`VideoTransform`).
    """
    tcfg = tcfg or {}
    norm = tcfg.get('normalize') or {}
    resize = tcfg.get('resize')
    if not train and resize is None and tcfg.get('crop'):
        resize = tcfg['crop']  # test with random-resized-crop training: resize to the crop
    return VideoTransform(
        resize=resize, crop=tcfg.get('crop'), hflip=tcfg.get('hflip', False),
        color_jitter=tcfg.get('color_jitter'), mean=norm.get('mean', IMAGENET_MEAN),
        std=norm.get('std', IMAGENET_STD), rnd_scale=tcfg.get('rnd_scale'),
        rnd_ratio=tcfg.get('rnd_ratio'), train=train,
        device_augment=tcfg.get('device_augment', False))
