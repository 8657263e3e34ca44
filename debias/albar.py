"""ALBAR, adversarial learning against static bias (after Fioresi et al., ICLR 2025;
``augment.name: albar``).

Extra loss terms on the *static clip* ``x_s``, one frame of the clip repeated over time:

    loss = CE(f(x), y) − α·CE(f(x_s), y) + β·Σ_k p_k log p_k + γ·‖∇_{x_s} Σ_k f_k(x_s)‖₂

with ``p = softmax(f(x_s))``. The first term fits the real clip (the step's own loss); the
adversarial term pushes the static clip's prediction away from the label, the negative-entropy
term pushes it towards uniform, and the gradient penalty keeps the game stable.

Every choice, checked against the published code (UCF-CRCV/ALBAR, ``train.py``,
``entropy_loss.py``, ``params_debias.py``, ``multi_dataset_dl.py``):

* weights: α = ``spatial_weight`` = 1, β = ``entropy_weight`` = 4.25, γ = ``gradpen_weight`` = 10
  (``temporal_weight`` = 1 on the first term);
* the static frame: ``frame_choice = 16`` of 32-frame clips, i.e. the middle one; here
  ``static_frame: null`` takes ``T // 2`` (frame 4 of SceneMotion's 8) and an integer picks one;
* the entropy term: ``mean_b Σ_k p log p`` (negative entropy, minimised), on the same forward
  ``f(x_s)`` as the other two static terms; the adversarial term uses plain cross-entropy;
* the gradient penalty: the gradient of the *sum of the logits* (``grad_outputs`` of ones)
  with respect to the static clip (all T repeated frames, the normalised input the model sees),
  taken with ``create_graph=True`` so that the penalty itself is differentiated (double
  backprop); its L2 norm, **not squared**, ``sqrt(Σ g² + 1e-12)`` per clip, averaged over the
  batch. One deviation: the authors sum ``g²`` over dims 1–3 of ``B × C × T × H × W``, which
  leaves the width out (a norm per image column, then averaged with the batch); here the norm
  runs over the whole clip (``K × C × T × H × W``), the ``‖∇‖₂`` of the paper's formula;
* both forwards in training mode (BatchNorm sees the static batch too), as the authors do:
  ``static_bn: batch``, the default. Their model (Swin-T) has LayerNorm only, which normalises
  each clip on its own; with BatchNorm a batch of static clips is normalised by its *own*
  statistics (no temporal variance at all), which a network can tell from a real batch and use
  to push the static CE up without changing what it reads in real clips (measured on SceneMotion:
  docs/results/scenemotion.md, findings). ``static_bn: running`` runs the static forward with
  every BatchNorm layer in eval mode (running statistics, which it does not update), i.e. a
  static clip is normalised like a real clip at test time, as a LayerNorm model would see it.

AMP: the penalty's gradient is taken in the autocast dtype and reduced in fp32; with bf16 it
needs no loss scaling. With fp16 (``--amp fp16``) the inner gradient is not scaled by the
engine's GradScaler and may underflow: use bf16 or fp32 for ALBAR.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.nn import functional as F

from core.errors import UserError

from .base import METHODS, Method, Term


def static_clip(video: torch.Tensor, frame: int) -> torch.Tensor:
    """``B × K × C × T × H × W`` -> the same shape with frame ``frame`` repeated over T (a copy)."""
    return video[:, :, :, frame:frame + 1].expand_as(video).contiguous()


def negative_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``mean_b Σ_k p_k log p_k`` of ``softmax(logits)`` (``B × n_class``), in fp32; ≤ 0, and
    −log(n_class) at the uniform prediction."""
    logp = F.log_softmax(logits.float(), 1)
    return (logp.exp() * logp).sum(1).mean()


def gradient_penalty(logits: torch.Tensor, x_s: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """``mean_b ‖∇_{x_s} Σ_k logits_bk‖₂`` (per-clip L2 norm, not squared), by double backprop.

    Args:
        logits: ``B × n_class``, computed from ``x_s``; x_s: the static clips (requires grad).
    """
    grad, = torch.autograd.grad(logits.sum(), x_s, create_graph=create_graph)
    g = grad.float().flatten(1)
    return ((g * g).sum(1) + 1e-12).sqrt().mean()


class ALBAR(Method):
    """ALBAR as a :class:`debias.base.Method` (loss terms only; the clip itself is unchanged).

    Args:
        alpha: weight of the adversarial CE on the static clip (subtracted).
        beta: weight of its negative entropy.
        gamma: weight of the gradient penalty (0: no penalty, no double backprop).
        static_frame: index of the repeated frame; ``None``: the middle one, ``T // 2``.
    """
    name = 'albar'
    min_frames = 2

    def __init__(self, alpha=1.0, beta=4.25, gamma=10.0, static_frame: Optional[int] = None,
                 static_bn: str = 'batch'):
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.static_frame = static_frame
        if static_bn not in ('batch', 'running'):
            raise UserError(f'augment.albar.static_bn={static_bn!r}: choose batch or running')
        self.static_bn = static_bn
        self._norms: list[torch.nn.Module] = []

    def __repr__(self):
        return (f'ALBAR(alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, '
                f'static_frame={"T // 2" if self.static_frame is None else self.static_frame}, '
                f'static_bn={self.static_bn})')

    def frame(self, n_frames: int) -> int:
        """The static frame's index in clips of ``n_frames`` frames."""
        return n_frames // 2 if self.static_frame is None else self.static_frame

    def check_clips(self, n_frames, where='the training clips'):
        super().check_clips(n_frames, where)
        if self.frame(n_frames) >= n_frames:
            raise UserError(f'augment.albar.static_frame={self.static_frame} is beyond {where} '
                            f'({n_frames} frames: 0..{n_frames - 1}); use null for the middle frame')

    def check_model(self, model):
        modules = model.modules() if isinstance(model, torch.nn.Module) else ()   # a plain callable: none
        self._norms = [m for m in modules if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        # torch.compile'd modules (--compile) do not support double backward: the engine's
        # backward would stop with a traceback in the first batch
        m = model
        for _ in range(4):
            if hasattr(m, '_orig_mod') and self.gamma > 0:
                raise UserError('augment.name=albar: its gradient penalty needs double backprop, which '
                                'torch.compile does not support; run without --compile (or set '
                                'augment.albar.gamma=0)')
            m = getattr(m, 'module', getattr(m, '_orig_mod', None))
            if m is None:
                return

    def loss_terms(self, forward, video, label, logits):
        t = video.shape[3]
        self.check_clips(t)
        x_s = static_clip(video.detach(), self.frame(t)).requires_grad_(self.gamma > 0)
        if self.static_bn == 'running':   # normalised by the running statistics, not updating them
            training = [m for m in self._norms if m.training]
            for m in training:
                m.eval()
            try:
                out = forward(x_s)
            finally:
                for m in training:
                    m.train()
        else:
            out = forward(x_s)
        terms = [Term('static_ce', -self.alpha, F.cross_entropy(out.float(), label)),
                 Term('static_negentropy', self.beta, negative_entropy(out))]
        if self.gamma > 0:
            terms.append(Term('grad_penalty', self.gamma, gradient_penalty(out, x_s)))
        return terms


@METHODS.register('albar')
def _albar(block, cfg):
    a = block['albar']
    return ALBAR(alpha=a['alpha'], beta=a['beta'], gamma=a['gamma'], static_frame=a['static_frame'],
                 static_bn=a['static_bn'])
