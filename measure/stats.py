"""Confidence intervals shared by every measure.

Two kinds, kept apart because they answer different questions:

- :func:`bootstrap_ci`: resampling *videos* with replacement. "How much would this figure move
  on another draw of videos from the same distribution?" Any run has one.
- :func:`mean_ci`: Student-t interval of a mean over *repeats* (seeds). "How much does it move
  when the randomness of training (a model's, or the dynamic score's mimic) is redrawn?"

A measure's result is a plain dict (see :func:`result`), so the card can write it to JSON as is.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import torch

# two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom; above 30 the normal 1.96
# is within 4 % of the exact value
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t975(dof: int) -> float:
    """The 97.5 % quantile of Student's t with ``dof`` degrees of freedom (``dof`` ≥ 1)."""
    if dof < 1:
        raise ValueError(f'need at least 1 degree of freedom, got {dof}')
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def mean_ci(values: Sequence[float]) -> tuple[float, Optional[float], Optional[float]]:
    """Mean, sample standard deviation and the half-width of its 95 % Student-t interval.

    Returns:
        ``(mean, sd, half_width)``; ``sd`` and ``half_width`` are ``None`` for a single value.
    """
    n = len(values)
    if n == 0:
        raise ValueError('no values')
    mean = sum(values) / n
    if n == 1:
        return mean, None, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, sd, t975(n - 1) * sd / math.sqrt(n)


def bootstrap_ci(statistic: Callable[[torch.Tensor], torch.Tensor], n: int, *, n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95, chunk: int = 250) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic of ``n`` videos.

    Args:
        statistic: maps an index tensor ``R × n`` (``R`` resamples, drawn with replacement) to the
            ``R`` statistic values, e.g. ``lambda idx: correct[idx].float().mean(1)``.
        n: number of videos; n_boot: number of resamples; seed: of the resampling generator.
        level: coverage of the interval; chunk: resamples evaluated at once (memory).
    Returns:
        ``(lo, hi)``.
    """
    if n < 1:
        raise ValueError('bootstrap of an empty sample')
    g = torch.Generator().manual_seed(seed)
    values = []
    for start in range(0, n_boot, chunk):
        r = min(chunk, n_boot - start)
        idx = torch.randint(0, n, (r, n), generator=g)
        values.append(statistic(idx).double())
    v = torch.cat(values)
    alpha = (1 - level) / 2
    lo, hi = torch.quantile(v, torch.tensor([alpha, 1 - alpha], dtype=v.dtype)).tolist()
    return lo, hi


def bootstrap_mean_ci(x: torch.Tensor, **kwargs: Any) -> tuple[float, float]:
    """:func:`bootstrap_ci` of the mean of a per-video vector ``x`` (``N``)."""
    x = x.double().flatten()
    return bootstrap_ci(lambda idx: x[idx].mean(1), len(x), **kwargs)


def mimic_spread(agree: torch.Tensor) -> tuple[Optional[float], Optional[float]]:
    """Split the spread of a score over repeats into a per-video part and a shared part.

    ``agree`` is ``K × N`` (``K`` repeats, e.g. mimic seeds; ``N`` videos), 1 where repeat ``k``
    got video ``n`` "right" (for the dynamic score: agreed with the model). The variance of the
    per-repeat mean is ``Σ_n Var_n / N² + Σ_{n≠m} Cov_nm / N²``:

    - the first term is what it would be if each video were an independent coin flip with its
      own rate (``Var_n`` estimated without bias from the ``K`` repeats); it falls as ``1/N``
      with more scored videos;
    - the rest is shared between videos (a repeat that does better on many videos at once); more
      videos do not shrink it, only more repeats averaged.

    Returns:
        ``(sd_videos, sd_shared)``: the square roots of the two terms (the second clipped at 0,
        since its estimate can fall below 0 by chance); ``(None, None)`` for fewer than 2 repeats.
    """
    a = agree.double()
    k, n = a.shape
    if k < 2:
        return None, None
    per_repeat = a.mean(1)
    var_total = per_repeat.var(unbiased=True).item()
    var_videos = a.var(0, unbiased=True).sum().item() / n ** 2
    return math.sqrt(var_videos), math.sqrt(max(0.0, var_total - var_videos))


def per_video_values(index: torch.Tensor | Sequence[int], values: torch.Tensor) -> dict[str, list]:
    """A measure's per-video values for the card's JSON: ``{'index': [...], 'value': [...]}``,
    ``index`` the videos' positions in their split, ``value`` each video's share of the headline
    (their mean is the measure's ``value``). Two cards of the same videos are compared video by
    video with them (:mod:`measure.compare`)."""
    idx = index.tolist() if isinstance(index, torch.Tensor) else [int(i) for i in index]
    return {'index': [int(i) for i in idx], 'value': [float(v) for v in values.double().flatten().tolist()]}


def result(value: float, ci95: Optional[Sequence[float]], *, split: str, n: int,
           per_class: Optional[Mapping[str, Any]] = None, floor: Optional[float] = None,
           **extra: Any) -> dict[str, Any]:
    """The dict every measure returns: ``value``, ``ci95`` (``[lo, hi]`` or ``None``), ``split``,
    ``n`` (videos), ``per_class`` (class name → value or a dict of values), ``floor`` (the
    static reference's value, where the measure has one) and any measure-specific entries."""
    out = {'value': float(value), 'ci95': None if ci95 is None else [float(ci95[0]), float(ci95[1])],
           'split': split, 'n': int(n), 'per_class': dict(per_class or {})}
    if floor is not None:
        out['floor'] = float(floor)
    out.update(extra)
    return out
