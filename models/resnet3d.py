"""3D ResNets in the layout of Hara et al., "3D-ResNets-PyTorch" (CVPR 2018).

Stem: conv ``conv1_t_size × 7 × 7``, stride ``(conv1_t_stride, 2, 2)``, BN, ReLU, then a
``3 × 3 × 3`` max-pool with stride 2 in every dimension (unless ``no_max_pool``). Four stages
of widths 64/128/256/512 (× ``widen_factor``, × 4 for bottlenecks); stages 2-4 start with
stride 2 in time, height and width. Global average pooling gives the clip feature.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .head import VideoModel
from .registry import MODELS

# depth -> (block kind, blocks per stage)
DEPTHS = {
    10: ('basic', (1, 1, 1, 1)),
    18: ('basic', (2, 2, 2, 2)),
    34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)),
    101: ('bottleneck', (3, 4, 23, 3)),
    152: ('bottleneck', (3, 8, 36, 3)),
    200: ('bottleneck', (3, 24, 36, 3)),
}


def conv3x3x3(cin, cout, stride=1):
    return nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1x1(cin, cout, stride=1):
    return nn.Conv3d(cin, cout, kernel_size=1, stride=stride, bias=False)


class ShortcutA(nn.Module):
    """Parameter-free shortcut: strided subsampling, then zero channels appended."""

    def __init__(self, cout, stride):
        super().__init__()
        self.cout, self.stride = cout, stride

    def forward(self, x):
        s = self.stride
        if s != 1:
            x = x[:, :, ::s, ::s, ::s]
        # F.pad pads from the last dim backwards: (W, H, T, C) pairs.
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.cout - x.shape[1]))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1x1(cin, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = conv1x1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet3D(VideoModel):
    """3D ResNet video model (see the module docstring for the layout).

    Stage outputs for ``ret_feat``: ``conv1`` (stem after ReLU, before max-pool) and
    ``conv2``..``conv5`` (stages 1-4), each ``N × C' × T' × H' × W'`` with N = B·K.
    """

    def __init__(self, n_class: int = 400, model_depth: int = 18, dropout: float = 0.0,
                 ret_feat: Sequence[str] = (), consensus: str = 'avg', conv1_t_size: int = 7,
                 conv1_t_stride: int = 1, no_max_pool: bool = False, shortcut_type: str = 'B',
                 widen_factor: float = 1.0, n_input_channels: int = 3) -> None:
        if model_depth not in DEPTHS:
            raise ValueError(f'resnet3d model_depth {model_depth} not in {sorted(DEPTHS)}')
        if shortcut_type not in ('A', 'B'):
            raise ValueError(f"shortcut_type must be 'A' or 'B', got {shortcut_type!r}")
        kind, layers = DEPTHS[model_depth]
        block = BasicBlock if kind == 'basic' else Bottleneck
        widths = [int(w * widen_factor) for w in (64, 128, 256, 512)]
        super().__init__(widths[3] * block.expansion, n_class, dropout, consensus, ret_feat)
        self.shortcut_type = shortcut_type

        self.conv1 = nn.Conv3d(n_input_channels, widths[0], kernel_size=(conv1_t_size, 7, 7),
                               stride=(conv1_t_stride, 2, 2), padding=(conv1_t_size // 2, 3, 3),
                               bias=False)
        self.bn1 = nn.BatchNorm3d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if no_max_pool else nn.MaxPool3d(3, stride=2, padding=1)
        self._cin = widths[0]
        self.layer1 = self._make_layer(block, widths[0], layers[0], 1)
        self.layer2 = self._make_layer(block, widths[1], layers[1], 2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], 2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], 2)
        self._init_weights()

    def _make_layer(self, block, planes, n_blocks, stride):
        cout = planes * block.expansion
        downsample = None
        if stride != 1 or self._cin != cout:
            if self.shortcut_type == 'A':
                downsample = ShortcutA(cout, stride)
            else:
                downsample = nn.Sequential(conv1x1x1(self._cin, cout, stride), nn.BatchNorm3d(cout))
        blocks = [block(self._cin, planes, stride, downsample)]
        self._cin = cout
        blocks += [block(cout, planes) for _ in range(1, n_blocks)]
        return nn.Sequential(*blocks)

    def _init_weights(self):
        # Same scheme as Hara et al.: He init for convs, unit BN; the head keeps nn.Linear's.
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor, feats: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """Clips ``N × C × T × H × W`` → pooled features ``N × D``."""
        x = self.relu(self.bn1(self.conv1(x)))
        self._keep(feats, 'conv1', x)
        x = self.maxpool(x)
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            self._keep(feats, f'conv{i + 2}', x)
        return x.mean((2, 3, 4))


@MODELS.register('resnet3d')
def resnet3d(n_class: int = 400, model_depth: int = 18, dropout: float = 0.0, ret_feat: Sequence[str] = (),
             consensus: str = 'avg', conv1_t_size: int = 7, conv1_t_stride: int = 1, no_max_pool: bool = False,
             shortcut_type: str = 'B', widen_factor: float = 1.0, n_input_channels: int = 3) -> ResNet3D:
    """3D ResNet (Hara et al.) of depth 10/18/34/50/101/152/200; see :class:`ResNet3D`."""
    return ResNet3D(n_class=n_class, model_depth=model_depth, dropout=dropout, ret_feat=ret_feat,
                    consensus=consensus, conv1_t_size=conv1_t_size, conv1_t_stride=conv1_t_stride,
                    no_max_pool=no_max_pool, shortcut_type=shortcut_type,
                    widen_factor=widen_factor, n_input_channels=n_input_channels)
