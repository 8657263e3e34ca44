"""Colour jitter, flip and normalisation of uint8 clip batches on the training device.

With ``dataset.transform.device_augment: true`` DataLoader workers stop after the geometry
(decode, resize, crop). An item's ``video`` is then the uint8 clip ``K × T × H × W × 3``
(channels-last, as decoded: 4× fewer bytes than float32 through the queues, the pinned
buffer and PCIe) and its ``aug`` is ``K × 9`` float64: each clip's random draws, made in the
worker from the item's generator at the same points and in the same order as the float path
makes them (flip, then the jitter order and factors), so a seed gives the same samples either
way. The main process hands the batch to :class:`DeviceAugment` (the dataset's
``finish_batch``, which the engine calls on every batch), which moves the uint8 batch to the
device and there flips, jitters and normalises it into the float ``B × K × C × T × H × W``
batch the float path would have produced.

Semantics are those of the float path (:mod:`datasets.colour`): torchvision's
``v2.ColorJitter`` on a float video (the four ops in each clip's random order, each result
clamped to [0, 1], contrast against each frame's mean grey level, hue a rotation of H in
HSV), then ``Normalize``. The ops work on the whole batch at once with per-clip factors
(a clip whose op at a position is another one, or is off, gets the neutral factor), and hue
on the clips that rotate hue at that position. The elementwise arithmetic follows
torchvision's, not the float path's fused OpenCV passes, so the two agree within float
rounding: ``tests/test_device_augment.py`` bounds the difference at 1e-4 after normalisation
(about 0.006 grey levels); no matrix products are used, so TF32 settings do not matter.
"""
import math

import torch

N_PARAMS = 9  # flip, jitter op order (4 op indices), jitter factors (4; NaN = op off)
GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
NO_JITTER = (0.0, 1.0, 2.0, 3.0) + (math.nan,) * 4


def pack_params(flip, jitter):
    """One clip's draws as a row of :data:`N_PARAMS` float64 values.

    Args:
        flip: whether the clip is mirrored.
        jitter: ``(order, vals)`` of :func:`datasets.transforms.jitter_params`, or ``None``.
    """
    if jitter is None:
        return torch.tensor((float(flip),) + NO_JITTER, dtype=torch.float64)
    order, vals = jitter
    return torch.tensor([float(flip)] + [float(k) for k in order]
                        + [math.nan if v is None else float(v) for v in vals],
                        dtype=torch.float64)


def _column(values, like):
    """Per-clip values (CPU float64, length N) as an ``N × 1 × 1 × 1 × 1`` tensor of ``like``'s
    dtype and device (broadcasts against ``N × C × T × H × W``)."""
    return values.to(like.dtype).view(-1, 1, 1, 1, 1).to(like.device, non_blocking=True)


def _grey(x):
    """torchvision's grey level of each pixel, ``N × 1 × T × H × W``."""
    return (GRAY[0] * x[:, 0:1]).add_(x[:, 1:2], alpha=GRAY[1]).add_(x[:, 2:3], alpha=GRAY[2])


def hue_shift(x, shift):
    """Rotate the hue of float RGB clips ``N × 3 × T × H × W`` in [0, 1] by ``shift`` (turns,
    ``N × 1 × 1 × 1 × 1``): torchvision's ``adjust_hue`` (RGB -> HSV, H + shift mod 1, back),
    written as one formula. V (the max) and the chroma (max - min) are kept; with ``h6`` the
    hue in sixths of a turn, channel ``c`` is ``max - chroma · clamp(min(k, 4 - k), 0, 1)``
    for ``k = (n_c + h6) mod 6``, ``n = 5, 3, 1`` for R, G, B."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    mx = torch.maximum(torch.maximum(r, g), b)
    chroma = mx - torch.minimum(torch.minimum(r, g), b)
    div = torch.where(chroma > 0, chroma, torch.ones_like(chroma))  # grey: any hue, h6 = 0
    h6 = torch.where(mx == r, torch.remainder((g - b) / div, 6.0),
                     torch.where(mx == g, (b - r) / div + 2.0, (r - g) / div + 4.0))
    h6 = h6 + 6.0 * shift
    out = torch.empty_like(x)
    for c, n in enumerate((5.0, 3.0, 1.0)):
        k = torch.remainder(h6 + n, 6.0)
        out[:, c:c + 1] = mx - chroma * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return out


def color_jitter_batch(x, params):
    """ColorJitter of float clips ``N × 3 × T × H × W`` in [0, 1] (modified in place and
    returned), each clip with its own op order and factors from ``params`` (``N × 9`` CPU
    float64 rows of :func:`pack_params`). The plan (which op each clip runs at each of the
    four positions) is read on the CPU, so nothing waits for the device."""
    order, vals = params[:, 1:5].long(), params[:, 5:9]
    for pos in range(4):
        op = order[:, pos]
        v = vals.gather(1, op[:, None])[:, 0]
        on = ~torch.isnan(v)

        def factors(k, neutral):
            sel = on & (op == k)  # noqa: B023 (called within this iteration)
            return sel, torch.where(sel, v, torch.full_like(v, neutral))  # noqa: B023

        b_sel, b = factors(0, 1.0)
        c_sel, c = factors(1, 1.0)
        s_sel, s = factors(2, 1.0)
        h_sel, h = factors(3, 0.0)
        if (b_sel | c_sel | s_sel).any():
            # brightness blends with black, contrast with the frame's mean grey level,
            # saturation with the pixel's grey level: y = f·x + (1 - f)·other, clamped
            f = b * c * s  # at most one of the three differs from 1 for a clip
            other = None
            if s_sel.any():
                other = _grey(x).mul_(_column(1.0 - s, x))
            if c_sel.any():
                mean = _grey(x).mean(dim=(3, 4), keepdim=True).mul_(_column(1.0 - c, x))
                other = mean if other is None else other.add_(mean)
            x.mul_(_column(f, x))
            if other is not None:
                x.add_(other)
            x.clamp_(0.0, 1.0)
        if h_sel.any():
            idx = torch.nonzero(h_sel)[:, 0]
            dev_idx = idx.to(x.device, non_blocking=True)
            sub = hue_shift(x.index_select(0, dev_idx), _column(h[idx], x))
            x.index_copy_(0, dev_idx, sub)
    return x


def finish_clips(video, params, mean, std):
    """uint8 clips ``N × T × H × W × 3`` (on the device) and their CPU ``N × 9`` draws ->
    float ``N × 3 × T × H × W``: flip, to [0, 1], colour jitter, normalise."""
    n, t, h, w, _ = video.shape
    flip = params[:, 0] > 0.5
    if flip.any():  # mirror W on uint8, before anything else, as the float path does
        mask = flip.view(-1, 1, 1, 1, 1).to(video.device, non_blocking=True)
        video = torch.where(mask, video.flip(3), video)
    x = torch.empty((n, 3, t, h, w), dtype=torch.float32, device=video.device)
    x.copy_(video.permute(0, 4, 1, 2, 3)).div_(255.0)
    if not torch.isnan(params[:, 5:9]).all():
        color_jitter_batch(x, params)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1)
    return x.sub_(m.to(x.device, non_blocking=True)).div_(s.to(x.device, non_blocking=True))


class DeviceAugment:
    """A batch finisher ``(batch, device) -> batch``: completes uint8 clips of a
    ``device_augment`` transform on ``device`` (see the module docstring).

    Args:
        mean, std: the normalisation.
        sparse: the dataset's ``sparse`` clips (K clips of T frames become T clips of K
            frames), done here after the colour ops since the draws are per sampled clip.
    """

    def __init__(self, mean, std, sparse=False):
        self.mean, self.std, self.sparse = tuple(mean), tuple(std), bool(sparse)

    def __call__(self, batch, device):
        batch = dict(batch)
        params = batch.pop('aug', None)
        out = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v)
               for k, v in batch.items()}
        if 'video' not in out or params is None:  # every item failed: nothing to finish
            return out
        video = out['video']  # B × K × T × H × W × 3 uint8
        b, k = video.shape[:2]
        x = finish_clips(video.flatten(0, 1), params.reshape(b * k, N_PARAMS), self.mean,
                         self.std)
        x = x.view(b, k, *x.shape[1:])
        if self.sparse:  # per item K × C × T × H × W -> T × C × K × H × W
            x = x.permute(0, 3, 2, 1, 4, 5).contiguous()
        out['video'] = x
        return out
