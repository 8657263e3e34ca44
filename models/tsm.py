"""Temporal Shift Module (Lin et al., ICCV 2019) on a torchvision ResNet, "residual shift":
the input of the first convolution of every residual branch is shifted along time.

Shift convention (same as the TSM reference code, so its checkpoints keep their meaning), with
``fold = C // shift_div``: channels ``[0, fold)`` move one frame back in time (frame t receives
frame t+1's values), channels ``[fold, 2·fold)`` move one frame forward (frame t receives frame
t-1's), the rest stay; positions shifted in from outside the clip are zero.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn

from .registry import MODELS
from .resnet2d import ResNet2D

log = logging.getLogger(__name__)


def temporal_shift(x: torch.Tensor, n_frames: int, shift_div: int = 8) -> torch.Tensor:
    """Shift 2/``shift_div`` of the channels by one frame (see the module docstring).

    Args:
        x: frames ``(N·T) × C × H × W``, the T frames of each clip consecutive.
        n_frames: T.
        shift_div: 1/``shift_div`` of the channels goes each way.
    Returns:
        a new tensor of the same shape and memory format.
    """
    fold = x.shape[1] // shift_div
    x = x.unflatten(0, (-1, n_frames))
    out = torch.empty_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, -1:, :fold] = 0
    out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]
    out[:, :1, fold:2 * fold] = 0
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.flatten(0, 1)


class ShiftConv2d(nn.Conv2d):
    """``nn.Conv2d`` that temporally shifts its input first; keeps ``weight``/``bias`` names so
    torchvision checkpoints load unchanged. ``n_frames`` is set by the model for each batch."""

    def __init__(self, *args, shift_div=8, **kwargs):
        super().__init__(*args, **kwargs)
        self.shift_div = shift_div
        self.n_frames = None

    @classmethod
    def from_conv(cls, conv, shift_div):
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                  conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                  shift_div=shift_div)
        new.weight = conv.weight
        new.bias = conv.bias
        return new

    def forward(self, x):
        if self.n_frames is None:
            raise RuntimeError('ShiftConv2d.n_frames is unset: call the TSM model, not its layers')
        return super().forward(temporal_shift(x, self.n_frames, self.shift_div))

    def extra_repr(self):
        return super().extra_repr() + f', shift_div={self.shift_div}'


class TSM(ResNet2D):
    """ResNet2D with a temporal shift in every residual branch; features averaged over frames.

    ``num_segments`` is the expected number of frames per clip; the shift always uses the
    actual T of the input (a mismatch is logged once). Stage outputs as in :class:`ResNet2D`.
    """

    def __init__(self, n_class: int = 400, arch: Optional[str] = None, model_depth: Optional[int] = None,
                 pretrained: bool = False, pretrained_path: Optional[str] = None, num_segments: int = 8,
                 shift_div: int = 8, dropout: float = 0.0, ret_feat: Sequence[str] = (),
                 consensus: str = 'avg') -> None:
        if shift_div < 2:
            raise ValueError(f'shift_div must be >= 2, got {shift_div}')
        super().__init__(n_class=n_class, model_depth=model_depth, arch=arch, pretrained=pretrained,
                         pretrained_path=pretrained_path, dropout=dropout, ret_feat=ret_feat,
                         consensus=consensus)
        self.num_segments = num_segments
        self.shift_div = shift_div
        self._warned = False
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                block.conv1 = ShiftConv2d.from_conv(block.conv1, shift_div)

    def forward_features(self, x: torch.Tensor, feats: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """Clips ``N × C × T × H × W`` → frame-averaged pooled features ``N × D``."""
        t = x.shape[2]
        if t != self.num_segments and not self._warned:
            log.warning('tsm: clips have %d frames but num_segments is %d; shifting over %d',
                        t, self.num_segments, t)
            self._warned = True
        for m in self.modules():
            if isinstance(m, ShiftConv2d):
                m.n_frames = t
        return super().forward_features(x, feats)


@MODELS.register('tsm')
def tsm(n_class: int = 400, arch: Optional[str] = None, model_depth: Optional[int] = None, pretrained: bool = False,
        pretrained_path: Optional[str] = None, num_segments: int = 8, shift_div: int = 8, dropout: float = 0.0,
        ret_feat: Sequence[str] = (), consensus: str = 'avg') -> TSM:
    """TSM on a torchvision ResNet (``arch``, default resnet18); see :class:`TSM`."""
    if model_depth is None and arch is None:
        arch = 'resnet18'
    return TSM(n_class=n_class, arch=arch, model_depth=model_depth, pretrained=pretrained,
               pretrained_path=pretrained_path, num_segments=num_segments, shift_div=shift_div,
               dropout=dropout, ret_feat=ret_feat, consensus=consensus)
