"""torchvision's video classification models as backbones of the shared video head.

``model.name`` is torchvision's own name: ``r3d_18``, ``mc3_18``, ``r2plus1d_18`` (video
ResNets), ``s3d``, ``mvit_v1_b``, ``mvit_v2_s``, ``swin3d_t``, ``swin3d_s``, ``swin3d_b``.
The trunk is torchvision's module, kept under torchvision's attribute names (so its keys are
torchvision's); only the classifier changes: it becomes the shared ``head`` (dropout → linear
→ clip consensus). :func:`from_torchvision` maps a torchvision state dict onto these keys.

Pretrained weights (``pretrained: true``, torchvision's ``KINETICS400_V1`` unless ``weights``
names another tag) are read from disk only, with the ImageNet lookup of
:mod:`models.pretrained`. With ``n_class: 400`` the Kinetics-400 classifier is kept (the model
can be scored or evaluated as it is); with another ``n_class`` the head starts fresh.

Expected clips (what the weights were trained on; docs/models.md): video ResNets 16 × 112²,
mean (0.43216, 0.394666, 0.37645) std (0.22803, 0.22145, 0.216989); S3D the same
normalisation, 224², ≥ 14 frames (128 in training); MViT exactly 16 × 224² (other sizes through
``temporal_size`` / ``spatial_size``, random init only), mean 0.45 std 0.225; Swin3D 224², 32
frames, ImageNet mean / std.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torchvision
from torch.nn import functional as F

from .head import VideoModel
from .pretrained import find_weights, load_trunk, read_weights_file
from .registry import MODELS

# arch -> (family, pooled feature width D)
ARCHS = {
    'r3d_18': ('resnet', 512), 'mc3_18': ('resnet', 512), 'r2plus1d_18': ('resnet', 512),
    's3d': ('s3d', 1024),
    'mvit_v1_b': ('mvit', 768), 'mvit_v2_s': ('mvit', 768),
    'swin3d_t': ('swin', 768), 'swin3d_s': ('swin', 768), 'swin3d_b': ('swin', 1024),
}
# torchvision's trunk attributes kept by each family (their keys are torchvision's)
TRUNK = {
    'resnet': ('stem', 'layer1', 'layer2', 'layer3', 'layer4'),
    's3d': ('features',),
    'mvit': ('conv_proj', 'pos_encoding', 'blocks', 'norm'),
    'swin': ('patch_embed', 'pos_drop', 'features', 'norm'),
}
# torchvision classifier key prefix -> the head's; s3d's 1×1×1 conv is flattened to a linear layer
HEAD_PREFIX = {'resnet': 'fc.', 's3d': 'classifier.1.', 'mvit': 'head.1.', 'swin': 'head.'}
DEFAULT_WEIGHTS = 'KINETICS400_V1'
S3D_POOL = (2, 7, 7)  # torchvision S3D's average-pool window before its classifier
MVIT_SIZE = (16, (224, 224))


def from_torchvision(state, arch):
    """A torchvision state dict of ``arch`` with its classifier renamed to ``head.*``.

    Returns:
        a new dict; the trunk keys are unchanged.
    """
    family = ARCHS[arch][0]
    prefix = HEAD_PREFIX[family]
    out = {}
    for k, v in state.items():
        if k.startswith(prefix):
            rest = k[len(prefix):]
            out['head.' + rest] = v.flatten(1) if family == 's3d' and rest == 'weight' else v
        else:
            out[k] = v
    return out


def _build_torchvision(arch, temporal_size=None, spatial_size=None):
    """torchvision's ``arch`` (random init); MViT at another input size than 16 × 224²."""
    if ARCHS[arch][0] != 'mvit' or (temporal_size, spatial_size) == (None, None):
        return torchvision.models.get_model(arch, weights=None)
    # mvit_v1_b / mvit_v2_s fix the input size they pass to the private builder ``_mvit``: swap
    # the size in on the way (the size only shapes the positional embeddings)
    from torchvision.models.video import mvit as tv_mvit
    size = (temporal_size or MVIT_SIZE[0], tuple(spatial_size or MVIT_SIZE[1]))
    builder = tv_mvit._mvit

    def sized(**kwargs):
        kwargs.update(temporal_size=size[0], spatial_size=size[1])
        return builder(**kwargs)
    tv_mvit._mvit = sized
    try:
        return torchvision.models.get_model(arch, weights=None)
    finally:
        tv_mvit._mvit = builder


class TorchvisionVideo(VideoModel):
    """A torchvision video model's trunk under the shared head (see the module docstring).

    ``ret_feat``: ``pool`` for every model (the pooled clip feature, ``B × K × D``); the video
    ResNets also give ``conv1`` (stem) and ``conv2``..``conv5`` (stages 1-4),
    ``N × C' × T' × H' × W'``.
    """

    def __init__(self, arch: str, n_class: int = 400, dropout: float = 0.0, consensus: str = 'avg',
                 ret_feat: Sequence[str] = (), pretrained: bool = False, pretrained_path: Optional[str] = None,
                 weights: Optional[str] = None, temporal_size: Optional[int] = None,
                 spatial_size: Optional[Sequence[int]] = None) -> None:
        if arch not in ARCHS:
            raise ValueError(f'unknown torchvision video model {arch!r}; expected one of {sorted(ARCHS)}')
        family, dim = ARCHS[arch]
        if family != 'mvit' and (temporal_size is not None or spatial_size is not None):
            raise ValueError(f'{arch}: temporal_size / spatial_size are MViT arguments '
                             '(the other models take any clip size)')
        if family != 'resnet' and any(n != 'pool' for n in (ret_feat or ())):
            raise ValueError(f'{arch} returns only the pool feature (ret_feat: [pool]), got {list(ret_feat)}')
        super().__init__(dim, n_class, dropout, consensus, ret_feat)
        self.arch, self.family = arch, family
        net = _build_torchvision(arch, temporal_size, spatial_size)
        for name in TRUNK[family]:
            setattr(self, name, getattr(net, name))
        if pretrained:
            self.load_torchvision_weights(weights or DEFAULT_WEIGHTS, pretrained_path)
        elif weights is not None:
            raise ValueError(f'{arch}: weights={weights!r} needs pretrained: true')

    def load_torchvision_weights(self, tag: str, pretrained_path: Optional[str] = None) -> str:
        """Load torchvision's weights ``tag`` from disk (:func:`models.pretrained.find_weights`).

        The classifier is kept when it has this model's shape, else the head stays fresh;
        every trunk key must fit. Returns the path loaded.
        """
        path = find_weights(self.arch, pretrained_path, tag)
        state = from_torchvision(read_weights_file(path, self.arch), self.arch)
        head = {'head.' + k: v for k, v in self.head.state_dict().items()}
        if any(k not in head or head[k].shape != state[k].shape for k in state if k.startswith('head.')):
            state = {k: v for k, v in state.items() if not k.startswith('head.')}
        return load_trunk(self, state, path, self.arch)

    def forward_features(self, x: torch.Tensor, feats: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """Clips ``N × C × T × H × W`` → pooled features ``N × D``."""
        return getattr(self, f'_features_{self.family}')(x, feats)

    def _features_resnet(self, x, feats):
        x = self.stem(x)
        self._keep(feats, 'conv1', x)
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            self._keep(feats, f'conv{i + 2}', x)
        return x.mean((2, 3, 4))

    def _features_s3d(self, x, feats):
        x = self.features(x)
        # torchvision averages (2, 7, 7) windows (stride 1) and then all window means: the same
        # here, with the window clipped to the map so that smaller clips work too
        window = [min(k, s) for k, s in zip(S3D_POOL, x.shape[2:])]
        return F.avg_pool3d(x, window, stride=1).mean((2, 3, 4))

    def _features_mvit(self, x, feats):
        x = self.conv_proj(x)
        thw = (self.pos_encoding.temporal_size,) + tuple(self.pos_encoding.spatial_size)
        if tuple(x.shape[2:]) != thw:
            stride = self.conv_proj.stride
            want = 'x'.join(str(n * s) for n, s in zip(thw, stride))
            raise ValueError(f'{self.arch} is built for {want} (T x H x W) clips, got '
                             f'{"x".join(map(str, x.shape[2:]))} patches from a {tuple(x.shape)} input; '
                             'set the clip size or model.args temporal_size / spatial_size')
        x = self.pos_encoding(x.flatten(2).transpose(1, 2))
        for block in self.blocks:
            x, thw = block(x, thw)
        return self.norm(x)[:, 0]  # the class token

    def _features_swin(self, x, feats):
        x = self.features(self.pos_drop(self.patch_embed(x)))  # N × T' × H' × W' × C
        return self.norm(x).mean((1, 2, 3))


def _register(arch: str) -> None:
    def build(n_class: int = 400, dropout: float = 0.0, consensus: str = 'avg', ret_feat: Sequence[str] = (),
              pretrained: bool = False, pretrained_path: Optional[str] = None, weights: Optional[str] = None,
              temporal_size: Optional[int] = None, spatial_size: Optional[Sequence[int]] = None) -> TorchvisionVideo:
        return TorchvisionVideo(arch, n_class=n_class, dropout=dropout, consensus=consensus,
                                ret_feat=ret_feat, pretrained=pretrained, pretrained_path=pretrained_path,
                                weights=weights, temporal_size=temporal_size, spatial_size=spatial_size)
    build.__name__ = arch
    build.__doc__ = f'torchvision {arch} under the shared head; see :class:`TorchvisionVideo`.'
    MODELS.register(arch)(build)


for _arch in ARCHS:
    _register(_arch)
