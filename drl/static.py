"""Static versions of a clip batch: the inputs a motion-blind model would see.

All functions take and return ``B × K × C × T × H × W`` tensors and never modify the input.
"""
import torch


def freeze_frames(x):
    """Repeat the first frame of every clip over time ("frozen" clip)."""
    return x[:, :, :, :1].expand_as(x).contiguous()


def shuffle_frames(x, generator=None):
    """Permute the frames of every clip with an independent random order per clip.

    Args:
        x: ``B × K × C × T × H × W``.
        generator: optional ``torch.Generator`` (on CPU) for reproducible orders.
    """
    b, k, c, t, h, w = x.shape
    order = torch.argsort(torch.rand(b * k, t, generator=generator), dim=1).to(x.device)
    flat = x.reshape(b * k, c, t, h * w)
    idx = order[:, None, :, None].expand(b * k, c, t, h * w)
    return torch.gather(flat, 2, idx).reshape(b, k, c, t, h, w)

