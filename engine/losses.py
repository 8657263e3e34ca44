"""Distillation losses (DRL's KD and JSD).

``engine.optim.CRITERIA`` registers both beside every ``torch.nn`` loss, so a config's
``criterion.name`` can name either. Every loss here takes logits ``B × n`` (input, target) and
returns a scalar (batch mean) unless ``reduction='none'`` (a ``B`` vector).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F


def _reduce(per_sample, reduction):
    # per_sample is already summed over classes, so torch's 'batchmean' (sum / batch size) is
    # the batch mean here; the published configs pass it
    if reduction in ('mean', 'batchmean'):
        return per_sample.mean()
    if reduction == 'sum':
        return per_sample.sum()
    if reduction == 'none':
        return per_sample
    raise ValueError(f"reduction must be 'mean', 'batchmean', 'sum' or 'none', got {reduction!r}")


def _temperature(T, temperature):
    """``T``, or the published code's name for it, ``temperature`` (both given must agree)."""
    if temperature is None:
        return float(T)
    if T != 1.0 and float(T) != float(temperature):
        raise ValueError(f'criterion: T={T} and temperature={temperature} disagree; give one of them')
    return float(temperature)


class KDLoss(nn.Module):
    """Knowledge distillation: ``T² · KL(softmax(target/T) ‖ softmax(input/T))``.

    ``input`` is the student (its gradient is what we want), ``target`` the teacher; detach the
    target yourself when the teacher must not learn from this loss.

    Args:
        T: softmax temperature (1 in every config); ``temperature`` is accepted as its alias.
        reduction: ``mean`` over the batch (default; ``batchmean`` is the same), ``sum`` or ``none``.
    """

    def __init__(self, T=1.0, reduction='mean', temperature=None):
        super().__init__()
        self.T, self.reduction = _temperature(T, temperature), reduction

    def forward(self, input, target):
        """input, target: ``B × n`` logits -> scalar (or ``B`` with ``reduction='none'``)."""
        log_q = F.log_softmax(input.float() / self.T, dim=-1)
        log_p = F.log_softmax(target.float() / self.T, dim=-1)
        kl = (log_p.exp() * (log_p - log_q)).sum(-1)
        return _reduce(kl * self.T ** 2, self.reduction)


class JSDLoss(nn.Module):
    """Jensen-Shannon divergence ``½ KL(p ‖ m) + ½ KL(q ‖ m)``, ``m = (p + q) / 2``, in nats,
    between ``p = softmax(input/T)`` and ``q = softmax(target/T)`` (symmetric, ≤ log 2)."""

    def __init__(self, T=1.0, reduction='mean', temperature=None):
        super().__init__()
        self.T, self.reduction = _temperature(T, temperature), reduction

    def forward(self, input, target):
        """input, target: ``B × n`` logits -> scalar (or ``B`` with ``reduction='none'``)."""
        log_p = F.log_softmax(input.float() / self.T, dim=-1)
        log_q = F.log_softmax(target.float() / self.T, dim=-1)
        # log m computed in log space: log((e^a + e^b)/2).
        log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - math.log(2.0)
        kl_pm = (log_p.exp() * (log_p - log_m)).sum(-1)
        kl_qm = (log_q.exp() * (log_q - log_m)).sum(-1)
        return _reduce(0.5 * (kl_pm + kl_qm), self.reduction)
