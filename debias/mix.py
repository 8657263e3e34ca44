"""mixup and CutMix, the generic baselines (``augment.name: mixup`` / ``cutmix``), through
``torchvision.transforms.v2.MixUp`` / ``CutMix``.

Mapping: a batch of clips ``B × K × C × T × H × W`` is viewed as a batch of ``B`` images with
``K·C·T`` channels (``B × KCT × H × W``, no copy), which both transforms accept as a plain
tensor. So mixup blends whole clips, and CutMix's one box (drawn on ``H × W``) is cut at the
same place in every frame, channel and clip of a video. As torchvision does: one λ per batch
(Beta(α, α); α 0.8 for mixup, 1.0 for CutMix, the values timm and torchvision's reference
recipes use), the partner of clip ``i`` is clip ``i − 1`` (``roll(1)``; the training loader
shuffles), and the labels become soft, ``λ·onehot(y) + (1 − λ)·onehot(y_partner)`` (CutMix:
λ corrected to the box's actual area). The step's cross-entropy takes them as class
probabilities (``torch.nn.CrossEntropyLoss`` accepts soft targets), so the configured criterion
must be ``CrossEntropyLoss``; training accuracy is counted against the unmixed labels.
"""
from __future__ import annotations

from torchvision.transforms import v2

from core.errors import UserError

from .base import METHODS, Method, Mixed


class TorchvisionMix(Method):
    """mixup or CutMix as a :class:`debias.base.Method` (batch transform, soft labels).

    Args:
        name: ``'mixup'`` or ``'cutmix'``; alpha: the Beta distribution's parameter;
        n_class: number of classes (for the one-hot labels).
    """

    def __init__(self, name: str, alpha: float, n_class: int):
        self.name, self.alpha, self.n_class = name, float(alpha), int(n_class)
        cls = v2.MixUp if name == 'mixup' else v2.CutMix
        self.op = cls(alpha=self.alpha, num_classes=self.n_class)

    def __repr__(self):
        return f'TorchvisionMix({self.name}, alpha={self.alpha}, n_class={self.n_class})'

    def transform(self, video, label):
        b, k, c, t, h, w = video.shape
        mixed, soft = self.op(video.reshape(b, k * c * t, h, w), label)
        return Mixed(mixed.reshape(video.shape), soft)


def _build(name):
    def build(block, cfg):
        n_class = cfg.get('model', {}).get('args', {}).get('n_class')
        if n_class is None:
            raise UserError(f'augment.name={name} needs model.args.n_class (the number of classes of '
                            f'its soft labels)')
        criterion = cfg.get('criterion', {}).get('name', 'CrossEntropyLoss')
        if criterion != 'CrossEntropyLoss':
            raise UserError(f'augment.name={name} trains on soft labels and needs criterion.name='
                            f'CrossEntropyLoss, not {criterion}')
        return TorchvisionMix(name, block[name]['alpha'], n_class)
    return build


METHODS.register('mixup')(_build('mixup'))
METHODS.register('cutmix')(_build('cutmix'))
