"""Frame-wise 2D ResNet (torchvision) video model: every frame is encoded on its own and the
pooled frame features are averaged over time.

The trunk modules keep torchvision's names (``conv1``, ``bn1``, ``layer1``..``layer4``), so
ImageNet checkpoints load key for key; torchvision's ``fc`` becomes the shared ``head``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torchvision
from torch import nn

from .head import VideoModel
from .pretrained import load_imagenet_weights
from .registry import MODELS

ARCHS = ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'resnext50_32x4d',
         'resnext101_32x8d', 'wide_resnet50_2', 'wide_resnet101_2')


def resolve_arch(arch: Optional[str] = None, model_depth: Optional[int] = None) -> str:
    """torchvision architecture name from ``arch`` or ``model_depth`` (they must agree)."""
    if arch is None and model_depth is None:
        raise ValueError('give the 2D ResNet as arch (e.g. resnet18) or model_depth (18/34/50/101/152)')
    from_depth = f'resnet{model_depth}' if model_depth is not None else None
    if arch is not None and from_depth is not None and arch != from_depth:
        raise ValueError(f'arch {arch!r} disagrees with model_depth {model_depth}')
    arch = arch or from_depth
    if arch not in ARCHS:
        raise ValueError(f'unsupported 2D arch {arch!r}; expected one of {ARCHS}')
    return arch


def _narrow_resnet(arch, widen_factor):
    """torchvision ResNet ``arch`` with every stage width (64/128/256/512) scaled by ``widen_factor``.

    Same blocks, depths, strides and initialisation as torchvision's; module names unchanged.
    Used for CPU-sized frame-wise models (e.g. SceneMotion's static mimic); ImageNet weights
    exist only for ``widen_factor == 1``.
    """
    base = torchvision.models.get_model(arch, weights=None)
    if widen_factor == 1:
        return base
    if not 0 < widen_factor <= 1 or base.groups != 1 or base.base_width != 64:
        raise ValueError(f'resnet2d widen_factor must be in (0, 1] for plain ResNets, got {widen_factor} '
                         f'for {arch}')
    block = type(base.layer1[0])
    layers = [len(getattr(base, f'layer{i}')) for i in range(1, 5)]

    class _Narrow(torchvision.models.resnet.ResNet):
        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
            if self.inplanes == 64 and planes == 64:  # first stage: narrow the stem too
                self.inplanes = max(1, round(64 * widen_factor))
                self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
                self.bn1 = self._norm_layer(self.inplanes)
            return super()._make_layer(block, max(1, round(planes * widen_factor)), blocks, stride, dilate)

    net = _Narrow(block, layers)
    net.fc = nn.Linear(_out_channels(net.layer4), 1000)
    return net


def _out_channels(layer):
    """Output channels of a ResNet stage (its last block's last BN)."""
    last = layer[-1]
    return (last.bn3 if hasattr(last, 'bn3') else last.bn2).num_features


def _only_in(t, memory_format):
    """True if ``t`` is laid out in ``memory_format`` and not in the default one."""
    return t.is_contiguous(memory_format=memory_format) and not t.is_contiguous()


class ResNet2D(VideoModel):
    """torchvision ResNet applied to each frame; features averaged over frames.

    Stage outputs for ``ret_feat`` (``conv1`` = stem after ReLU, before max-pool;
    ``conv2``..``conv5`` = stages 1-4) are arranged per frame: ``N × T × C' × H' × W'``.
    Inputs in ``torch.channels_last_3d`` memory format are folded into channels-last frames
    without a copy; a model converted with ``.to(memory_format=torch.channels_last)`` also
    runs its convolutions channels-last.
    """

    def __init__(self, n_class: int = 400, model_depth: Optional[int] = None, arch: Optional[str] = None,
                 pretrained: bool = False, pretrained_path: Optional[str] = None, dropout: float = 0.0,
                 ret_feat: Sequence[str] = (), consensus: str = 'avg', widen_factor: float = 1.0) -> None:
        arch = resolve_arch(arch, model_depth)
        if pretrained and widen_factor != 1:
            raise ValueError('resnet2d: ImageNet weights need widen_factor 1 (set pretrained: false)')
        net = _narrow_resnet(arch, widen_factor)
        super().__init__(net.fc.in_features, n_class, dropout, consensus, ret_feat)
        self.arch = arch
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        if pretrained:
            load_imagenet_weights(self, arch, pretrained_path)

    def _frames(self, x):
        """Clips ``N × C × T × H × W`` → frames ``(N·T) × C × H × W``."""
        n, c, t, h, w = x.shape
        if _only_in(x, torch.channels_last_3d) or _only_in(self.conv1.weight, torch.channels_last):
            # N,T,H,W,C memory order: a free view for channels_last_3d input.
            return x.permute(0, 2, 3, 4, 1).reshape(n * t, h, w, c).permute(0, 3, 1, 2)
        return x.transpose(1, 2).reshape(n * t, c, h, w)

    def _trunk(self, x, t, feats):
        """Frames ``(N·T) × C × H × W`` → last stage map; stores requested stage outputs."""
        x = self.relu(self.bn1(self.conv1(x)))
        self._keep(feats, 'conv1', x.unflatten(0, (-1, t)))
        x = self.maxpool(x)
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            self._keep(feats, f'conv{i + 2}', x.unflatten(0, (-1, t)))
        return x

    def forward_features(self, x: torch.Tensor, feats: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """Clips ``N × C × T × H × W`` → frame-averaged pooled features ``N × D``."""
        t = x.shape[2]
        x = self._trunk(self._frames(x), t, feats)
        return x.mean((2, 3)).unflatten(0, (-1, t)).mean(1)


@MODELS.register('resnet2d')
def resnet2d(n_class: int = 400, model_depth: Optional[int] = None, arch: Optional[str] = None,
             pretrained: bool = False, pretrained_path: Optional[str] = None, dropout: float = 0.0,
             ret_feat: Sequence[str] = (), consensus: str = 'avg', widen_factor: float = 1.0) -> ResNet2D:
    """Frame-wise torchvision ResNet (``model_depth`` 18/34/50/101/152 or ``arch``); stage widths
    × ``widen_factor`` (≤ 1, random init only)."""
    if model_depth is None and arch is None:
        model_depth = 18
    return ResNet2D(n_class=n_class, model_depth=model_depth, arch=arch, pretrained=pretrained,
                    pretrained_path=pretrained_path, dropout=dropout, ret_feat=ret_feat,
                    consensus=consensus, widen_factor=widen_factor)
