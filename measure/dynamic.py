"""The dynamic score and its companions, computed from gathered logits.

Notation: ``p_v = softmax(video logits)``, ``p_s = softmax(spatial logits)``, ``y`` labels.

- ``dynamic_score`` = 1 − mean[argmax p_s == argmax p_v]: the share of the video model's
  decisions that the (converged) static model does not reproduce.
- ``kl`` = mean KL(p_v ‖ p_s) in nats.
- ``dynamic_score_sample`` = mean of 1 − exp(−max(0, CE(p_s, y) − CE(p_v, y))): per sample, how
  much more the video model knows about the true class than the static one (0 when the static
  model is at least as good, → 1 when it is far worse).
- ``Acc@1`` / ``Acc@1_sp``: top-1 accuracy of the video / spatial model against ``y`` (percent);
  ``agreement`` = 1 − ``dynamic_score``.
"""
import math

import torch
from torch.nn import functional as F

from engine.losses import KDLoss


def sample_scores(logits, logits_sp, labels):
    """Per-sample quantities.

    Args:
        logits: ``N × n`` video-model logits; logits_sp: ``N × n`` spatial-model logits;
        labels: ``N`` int64.
    Returns:
        dict of ``N`` float tensors: ``correct``, ``correct_sp``, ``agree``, ``kl``, ``score``.
    """
    logits, logits_sp = logits.float(), logits_sp.float()
    pred, pred_sp = logits.argmax(1), logits_sp.argmax(1)
    ce = F.cross_entropy(logits, labels, reduction='none')
    ce_sp = F.cross_entropy(logits_sp, labels, reduction='none')
    return {
        'correct': (pred == labels).float(),
        'correct_sp': (pred_sp == labels).float(),
        'agree': (pred == pred_sp).float(),
        'kl': KDLoss(reduction='none')(logits_sp, logits),
        'score': 1 - torch.exp(-(ce_sp - ce).clamp(min=0)),
    }


def _summary(s):
    return {
        'Acc@1': 100 * s['correct'].mean().item(),
        'Acc@1_sp': 100 * s['correct_sp'].mean().item(),
        'agreement': s['agree'].mean().item(),
        'dynamic_score': 1 - s['agree'].mean().item(),
        'kl': s['kl'].mean().item(),
        'dynamic_score_sample': s['score'].mean().item(),
    }


def dynamic_scores(logits, logits_sp, labels):
    """Split-level figures (see the module docstring) from ``N × n`` logits and ``N`` labels."""
    if len(labels) == 0:
        raise ValueError('no samples to score')
    return _summary(sample_scores(logits, logits_sp, labels))


def per_class_scores(logits, logits_sp, labels, n_class):
    """The same figures per true class.

    Returns:
        list of ``n_class`` dicts with ``n`` and the keys of :func:`dynamic_scores`; a class
        with no sample has ``n = 0`` and NaN figures (never a division by zero).
    """
    s = sample_scores(logits, logits_sp, labels)
    rows = []
    for c in range(n_class):
        mask = labels == c
        n = int(mask.sum())
        if n == 0:
            row = {k: math.nan for k in _summary(s)}
        else:
            row = _summary({k: v[mask] for k, v in s.items()})
        rows.append({'class': c, 'n': n, **row})
    return rows


def agreement(logits_sp, pseudo_labels):
    """Top-1 agreement (percent) of the spatial model with the video model's predictions."""
    return 100 * (logits_sp.argmax(1) == pseudo_labels).float().mean().item()
