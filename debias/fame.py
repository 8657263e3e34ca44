"""FAME, foreground-background merging (after Ding et al., CVPR 2022; ``augment.name: fame``).

A batch transform: each clip keeps its moving foreground and gets the background of another
clip of the batch, ``x' = m·x + (1 − m)·x_other``, label unchanged. A model that answers from
the background then meets an unrelated label's scene.

The mask ``m`` (one per clip, the same in every frame and channel, values 0 / 1), as in the
authors' ``moco/loader.py`` (class ``FAME``):

1. motion map: ``Σ_c mean_t |x_t − x_{t+1}|`` on the *un-normalised* pixels (values in [0, 1]);
2. Gaussian blur, kernel ``k = int(0.1 · S) // 2 · 2 + 1`` pixels (odd), σ = k / 3, reflected
   borders, ``S`` the clip's shorter side (the authors use the crop size: 11 px at 112, 23 at
   224; SceneMotion's 48-px crops give k = 5, σ = 5/3);
3. ``refine: true`` (the authors' code, default): the colour-histogram refinement. Colours of the
   time-averaged frame are binned (10 × 10 × 10 bins of ``(s·cos 2πh, s·sin 2πh, v)`` in HSV);
   the histogram of the 50 % most-moving pixels (foreground sample) and of the 10 % least-moving
   ones (background sample, +1 per bin) give each pixel ``p_fg / (p_fg + p_bg)`` of its colour,
   which is blurred again. ``refine: false`` keeps the motion map;
4. the top ``fg_fraction`` (β = 0.5) of the pixels form the foreground.

Deviations from the published code, each deliberate: the hue enters as a fraction of a turn
(the authors' kornia ``rgb_to_hsv`` returns radians, which their ``cos(2π·h)`` wraps 2π times
round the colour wheel), the bins are 0-based (theirs run 1..1000 in a 1000-entry table, which
overflows for a saturated or white pixel), the min-max normalisations are left out (they change
no ranking), and the other clip is another one for every clip (a random non-zero cyclic shift
of the batch, as StillMix's); ``torch.randperm`` can pair a clip with itself, leaving it unchanged.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from core.config_schema import IMAGENET_MEAN, IMAGENET_STD

from .base import METHODS, Method, Mixed

COLOUR_BINS = 10
FG_SAMPLE, BG_SAMPLE = 0.5, 0.1   # the refinement's colour samples (fixed in the authors' code)


def blur_kernel_size(side: int) -> int:
    """The authors' Gaussian kernel size for clips of shorter side ``side`` (odd, ≥ 1)."""
    return int(0.1 * side) // 2 * 2 + 1


def gaussian_blur(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Separable Gaussian blur of ``N × H × W`` maps, σ = ``size`` / 3, reflected borders."""
    if size <= 1:
        return maps
    sigma = size / 3
    r = size // 2
    ax = torch.arange(size, dtype=maps.dtype, device=maps.device) - r
    k = torch.exp(-ax ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    x = maps.unsqueeze(1)
    pad_h, pad_w = min(r, x.shape[2] - 1), min(r, x.shape[3] - 1)
    x = F.pad(x, (pad_w, pad_w, 0, 0), mode='reflect') if pad_w else x
    x = F.conv2d(x, k[r - pad_w:r + pad_w + 1].view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, pad_h, pad_h), mode='reflect') if pad_h else x
    x = F.conv2d(x, k[r - pad_h:r + pad_h + 1].view(1, 1, -1, 1))
    return x.squeeze(1)


def motion_map(raw: torch.Tensor) -> torch.Tensor:
    """``N × C × T × H × W`` un-normalised clips -> ``N × H × W``: ``Σ_c mean_t |x_t − x_{t+1}|``."""
    return (raw[:, :, :-1] - raw[:, :, 1:]).abs().sum(1).mean(1)


def colour_index(rgb: torch.Tensor, bins: int = COLOUR_BINS) -> torch.Tensor:
    """``N × 3 × H × W`` RGB in [0, 1] -> ``N × H × W`` bin index in ``[0, bins³)`` of
    ``(s·cos 2πh, s·sin 2πh, v)`` (HSV, hue as a fraction of a turn)."""
    rgb = rgb.clamp(0, 1)
    r, g, b = rgb.unbind(1)
    v, _ = rgb.max(1)
    c = v - rgb.min(1).values
    safe = torch.where(c > 0, c, torch.ones_like(c))
    hue = torch.where(v == r, ((g - b) / safe) % 6,
                      torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    hue = torch.where(c > 0, hue, torch.zeros_like(hue))
    sat = torch.where(v > 0, c / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    hx = (sat * torch.cos(2 * math.pi * hue) + 1) / 2
    hy = (sat * torch.sin(2 * math.pi * hue) + 1) / 2
    q = [torch.round(a * (bins - 1)).long().clamp(0, bins - 1) for a in (hx, hy, v)]
    return q[0] + bins * q[1] + bins * bins * q[2]


def refine_by_colour(motion: torch.Tensor, rgb: torch.Tensor, size: int) -> torch.Tensor:
    """The colour-histogram refinement (module docstring, step 3).

    Args:
        motion: ``N × H × W`` blurred motion maps; rgb: ``N × 3 × H × W`` time-averaged frames.
    Returns:
        ``N × H × W`` blurred ``p_fg / (p_fg + p_bg)`` of each pixel's colour.
    """
    n, h, w = motion.shape
    flat = motion.reshape(n, -1)
    colours = colour_index(rgb).reshape(n, -1)
    n_bins = COLOUR_BINS ** 3
    fg = flat.topk(max(1, int(FG_SAMPLE * h * w)), dim=1).indices
    bg = flat.topk(max(1, int(BG_SAMPLE * h * w)), dim=1, largest=False).indices
    hist_fg = torch.zeros(n, n_bins, device=motion.device).scatter_add_(
        1, colours.gather(1, fg), torch.ones(fg.shape, device=motion.device))
    hist_bg = torch.ones(n, n_bins, device=motion.device).scatter_add_(
        1, colours.gather(1, bg), torch.ones(bg.shape, device=motion.device))
    hist_fg = hist_fg / hist_fg.sum(1, keepdim=True)
    hist_bg = hist_bg / hist_bg.sum(1, keepdim=True)
    p_fg, p_bg = hist_fg.gather(1, colours), hist_bg.gather(1, colours)
    return gaussian_blur((p_fg / (p_fg + p_bg)).reshape(n, h, w), size)


def foreground_mask(raw: torch.Tensor, fg_fraction: float = 0.5, refine: bool = True) -> torch.Tensor:
    """FAME's foreground mask of each clip.

    Args:
        raw: ``N × 3 × T × H × W`` un-normalised clips (values in [0, 1]), ``T ≥ 2``.
        fg_fraction: the share of pixels marked foreground (``int(fg_fraction · H · W)``).
        refine: apply the colour-histogram refinement.
    Returns:
        ``N × H × W`` float mask of 0 / 1.
    """
    n, _, _, h, w = raw.shape
    size = blur_kernel_size(min(h, w))
    score = gaussian_blur(motion_map(raw), size)
    if refine:
        score = refine_by_colour(score, raw.mean(2), size)
    k = max(1, int(fg_fraction * h * w))
    top = score.reshape(n, -1).topk(k, dim=1).indices
    return torch.zeros(n, h * w, device=raw.device).scatter_(1, top, 1.0).reshape(n, h, w)


class FAME(Method):
    """FAME as a :class:`debias.base.Method` (batch transform only).

    Args:
        fg_fraction: β, the share of each frame taken as foreground.
        refine: the authors' colour-histogram refinement of the mask.
        mean, std: the clips' normalisation (per channel), undone to compute the mask.
    """
    name = 'fame'
    min_frames = 2

    def __init__(self, fg_fraction=0.5, refine=True, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.fg_fraction, self.refine = float(fg_fraction), bool(refine)
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]

    def __repr__(self):
        return f'FAME(fg_fraction={self.fg_fraction}, refine={self.refine})'

    def _raw(self, video: torch.Tensor) -> torch.Tensor:
        """``B × K × C × T × H × W`` normalised clips -> ``B·K × C × T × H × W`` pixels in [0, 1]."""
        b, k, c, t, h, w = video.shape
        self.check_clips(t)
        shape = (1, c, 1, 1, 1)
        mean = torch.tensor(self.mean, device=video.device).view(shape)
        std = torch.tensor(self.std, device=video.device).view(shape)
        return video.detach().float().reshape(b * k, c, t, h, w) * std + mean

    def masks(self, video: torch.Tensor) -> torch.Tensor:
        """``B × K × C × T × H × W`` normalised clips -> ``B × K × 1 × 1 × H × W`` masks."""
        b, k, _, _, h, w = video.shape
        return foreground_mask(self._raw(video), self.fg_fraction, self.refine).view(b, k, 1, 1, h, w)

    def transform(self, video, label):
        """Also logs ``fame_motion_in_mask``: the share of the clips' temporal difference
        (``motion_map``, unblurred) that falls inside their masks, batch mean; 1 = the mask
        holds all of the motion, ``fg_fraction`` = no better than a random mask."""
        b, k, _, _, h, w = video.shape
        raw = self._raw(video)
        flat = foreground_mask(raw, self.fg_fraction, self.refine)
        motion = motion_map(raw)
        inside = ((motion * flat).flatten(1).sum(1) / motion.flatten(1).sum(1).clamp_min(1e-12)).mean().item()
        m = flat.view(b, k, 1, 1, h, w)
        if b > 1:  # a random non-zero shift: every clip gets another clip's background
            source = (torch.arange(b) + int(torch.randint(1, b, ()))) % b
        else:
            source = torch.arange(b)
        other = video[source.to(video.device)]
        return Mixed(torch.where(m > 0, video, other), label, {'fame_motion_in_mask': inside})


@METHODS.register('fame')
def _fame(block, cfg):
    norm = cfg.get('dataset', {}).get('transform', {}).get('normalize') or {}
    return FAME(fg_fraction=block['fame']['fg_fraction'], refine=block['fame']['refine'],
                mean=norm.get('mean', IMAGENET_MEAN), std=norm.get('std', IMAGENET_STD))
