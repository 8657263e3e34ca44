"""StillMix and Background Erasing: de-biasing methods of ``main.py`` (config block ``augment``,
interface :mod:`debias.base`).

Both blend a *still* image into every frame of a clip, so that static appearance stops
predicting the label while the motion is untouched; the label is unchanged.

* **StillMix** (after Li et al., ICCV 2023): the still is one frame of *another* video of the
  batch, ``x' = (1 − λ)·x + λ·s``. Its scene then belongs to an unrelated label, so a model
  that answers from the scene is pushed towards the motion.
* **Background Erasing** (after Wang et al., CVPR 2021): the still is a frame of the *same*
  clip, ``x' = (1 − λ)·x + λ·x_t``, and a consistency loss asks the model to predict the same
  on ``x'`` as on ``x`` (KL between the two predictions, weight ``consistency``).

``λ`` is drawn per clip uniformly from ``mix`` and each clip is blended with probability
``prob``. Draws come from torch's global generator, which the engine re-seeds every epoch, so a
resumed run draws what an uninterrupted one does.

Tensors: ``x`` is ``B × K × C × T × H × W`` (normalised; the blend is affine, so blending
normalised clips equals normalising blended ones).
"""
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .base import METHODS as REGISTRY
from .base import Method, Mixed, Term

METHODS = ('stillmix', 'background_erasing')


@dataclass
class Draw:
    """The random parameters of one batch: per clip ``lam`` (0 = untouched), ``source`` clip
    and ``frame`` index of the still."""
    lam: torch.Tensor
    source: torch.Tensor
    frame: torch.Tensor


def draw(b, t, mix=(0.3, 0.7), prob=1.0, other=True):
    """Draw the parameters for a batch of ``b`` clips of ``t`` frames.

    Args:
        mix: ``(lo, hi)`` range of the still's weight λ.
        prob: probability that a clip is blended.
        other: take the still from another clip of the batch (StillMix) or the same one.
    Returns:
        :class:`Draw` with tensors of shape ``b``.
    """
    lo, hi = mix
    lam = lo + (hi - lo) * torch.rand(b)
    lam = torch.where(torch.rand(b) < prob, lam, torch.zeros(b))
    if other and b > 1:  # a random non-zero shift: every clip gets a still of a different clip
        source = (torch.arange(b) + int(torch.randint(1, b, ()))) % b
    else:
        source = torch.arange(b)
    frame = torch.randint(0, t, (b,))
    return Draw(lam, source, frame)


def blend_still(x, d):
    """``x' = (1 − λ)·x + λ·still`` with the still of :func:`draw` repeated over time.

    Args:
        x: ``B × K × C × T × H × W``; d: a :class:`Draw` for ``B`` clips.
    Returns:
        a new tensor of the shape of ``x``.
    """
    b = x.shape[0]
    still = x[d.source, :, :, d.frame].unsqueeze(3)  # B × K × C × 1 × H × W
    lam = d.lam.to(device=x.device, dtype=x.dtype).view(b, 1, 1, 1, 1, 1)
    return torch.lerp(x, still, lam)


class BatchMix(Method):
    """StillMix or Background Erasing: ``BatchMix(name, mix, prob, consistency)(x)`` → ``x'``.

    As a :class:`debias.base.Method`: the batch transform blends the stills (labels unchanged);
    with ``consistency > 0`` the loss term is ``KL(f(x) ‖ f(x'))`` with ``f(x)`` computed
    without gradients (the clean forward runs after the blended one, as it always did).
    """

    def __init__(self, name, mix=(0.3, 0.7), prob=1.0, consistency=0.0):
        if name not in METHODS:
            raise ValueError(f'augment.name {name!r} unknown; use one of {METHODS}')
        lo, hi = (float(v) for v in mix)
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f'augment.mix must be [lo, hi] with 0 <= lo <= hi <= 1, got {list(mix)}')
        if not 0 <= prob <= 1:
            raise ValueError(f'augment.prob must be in [0, 1], got {prob}')
        if consistency < 0:
            raise ValueError(f'augment.consistency must be >= 0, got {consistency}')
        self.name, self.mix, self.prob, self.consistency = name, (lo, hi), float(prob), float(consistency)

    def __repr__(self):
        return f'BatchMix({self.name}, mix={list(self.mix)}, prob={self.prob}, consistency={self.consistency})'

    def __call__(self, x):
        d = draw(x.shape[0], x.shape[3], self.mix, self.prob, other=self.name == 'stillmix')
        return blend_still(x, d)

    def transform(self, video, label):
        return Mixed(self(video), label)

    def loss_terms(self, forward, video, label, logits):
        if self.consistency <= 0:
            return []
        with torch.no_grad():  # Background Erasing: predict on x' as on x
            clean = forward(video)
        kl = F.kl_div(F.log_softmax(logits.float(), 1), F.log_softmax(clean.float(), 1),
                      reduction='batchmean', log_target=True)
        return [Term('consistency', self.consistency, kl)]


def _from_block(block, cfg=None):
    # a loaded config: mix / prob / consistency carry the schema's defaults (core/config_schema.py)
    return BatchMix(block['name'], mix=block['mix'], prob=block['prob'], consistency=block['consistency'])


REGISTRY.register('stillmix')(_from_block)
REGISTRY.register('background_erasing')(_from_block)


def build_batch_mix(cfg):
    """Kept for callers written before :func:`debias.build_method` (which it now is)."""
    from .build import build_method
    return build_method(cfg)
