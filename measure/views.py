"""The clip views the measures feed a model: frozen, shuffled, time-reversed, blended, recoloured.

Every function takes a batch of clips ``B × K × C × T × H × W`` (normalised, on any device) and
returns a new tensor of the same shape; the input is never modified. Random draws come from a
generator seeded per *video* (``view_seed(seed, index)``), so a view of a video is the same
whatever the batch it arrives in, the batch size, the device or the worker count.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

# ITU-R BT.601 luma weights (what PIL and OpenCV use for RGB -> grey)
LUMA = (0.299, 0.587, 0.114)


def view_seed(seed: int, index: int, salt: int = 0) -> int:
    """A 63-bit seed from ``(seed, video index, salt)``; plain integer arithmetic, the same everywhere."""
    p = 1_000_003
    return ((int(seed) * p + int(salt)) * p + int(index)) % (1 << 63)


def frozen(x: torch.Tensor, k: int) -> torch.Tensor:
    """Frame ``k`` of every clip repeated over time (no motion left).

    Args:
        x: ``B × K × C × T × H × W``; k: frame index, ``0 <= k < T``.
    """
    t = x.shape[3]
    if not 0 <= k < t:
        raise ValueError(f'frame index {k} outside the clip of {t} frames')
    return x[:, :, :, k:k + 1].expand_as(x).contiguous()


def frame_orders(index: torch.Tensor, n_clips: int, n_frames: int, seed: int) -> torch.Tensor:
    """A random frame order per clip, drawn from a generator per video.

    Args:
        index: ``B`` video indices (the dataset's); n_clips: K; n_frames: T.
    Returns:
        ``B × K × T`` int64 permutations of ``0..T-1``.
    """
    orders = []
    for i in index.tolist():
        g = torch.Generator().manual_seed(view_seed(seed, i, salt=1))
        orders.append(torch.argsort(torch.rand(n_clips, n_frames, generator=g), dim=1))
    return torch.stack(orders) if orders else torch.empty(0, n_clips, n_frames, dtype=torch.long)


def permute_frames(x: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """``x`` with the frames of clip ``(b, k)`` taken in the order ``orders[b, k]`` (``B × K × T``)."""
    b, k, c, t, h, w = x.shape
    idx = orders.to(x.device)[:, :, None, :, None, None].expand(b, k, c, t, h, w)
    return torch.gather(x, 3, idx)


def shuffled(x: torch.Tensor, index: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The frames of every clip in a random order (motion destroyed, frame content kept).

    Args:
        x: ``B × K × C × T × H × W``; index: ``B`` video indices seeding the orders; seed: base seed.
    """
    return permute_frames(x, frame_orders(index, x.shape[1], x.shape[3], seed))


def time_reversed(x: torch.Tensor) -> torch.Tensor:
    """Every clip played backwards (motion direction flipped, content and speed kept)."""
    return x.flip(3)


def blended(x: torch.Tensor, still: torch.Tensor, weight: float) -> torch.Tensor:
    """Every frame of ``x`` mixed with a still frame: ``(1 - weight) · x + weight · still``.

    Mixing normalised tensors equals mixing the pixels and normalising (the normalisation is
    affine and the two weights sum to 1).

    Args:
        x: ``B × K × C × T × H × W``; still: ``B × K × C × H × W`` (one frame per clip);
        weight: the still frame's share, in (0, 1).
    """
    if not 0.0 < weight < 1.0:
        raise ValueError(f'blend weight must be in (0, 1), got {weight}')
    return (1.0 - weight) * x + weight * still.unsqueeze(3).to(x.dtype)


def grayscale(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The clips in grey (BT.601 luma in every channel): same motion, another appearance.

    ``x`` is normalised with ``mean`` / ``std`` (per channel, pixel range [0, 1]); the grey
    image is computed on the pixels and normalised again.
    """
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 1, 3, 1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 1, 3, 1, 1, 1)
    luma = torch.as_tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 1, 3, 1, 1, 1)
    pixels = x * s + m
    grey = (pixels * luma).sum(2, keepdim=True)
    return (grey - m) / s


def channel_swap(x: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                 order: Optional[Sequence[int]] = (2, 0, 1)) -> torch.Tensor:
    """The clips with their colour channels permuted (RGB -> BRG by default) on the pixels."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 1, 3, 1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 1, 3, 1, 1, 1)
    pixels = (x * s + m)[:, :, list(order)]
    return (pixels - m) / s


APPEARANCE_CHANGES = {'grayscale': grayscale, 'channel_swap': channel_swap}
