"""Temporality: accuracy on normal, frozen (every frame index), shuffled and time-reversed clips.

- *frozen at k*: frame ``k`` of every clip repeated over time (no motion);
- *shuffled*: the frames in a random order per clip (seeded per video);
- *reversed*: the clip played backwards;
- *contrasted accuracy* (Li et al., ICCV 2023): the share of videos classified correctly on the
  normal clip and wrongly on the frozen one, averaged over ``k``. The headline: a model that
  reads only the scene keeps its decisions on frozen clips and scores 0.

Accuracies are in percent. :func:`temporality_records` streams the loader and keeps one
prediction per video and view; :func:`summarize_temporality` turns them into the result dict.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
import torch.nn as nn

from .common import Skipped, batched, batches, check_classes, class_names, logits_of, model_eval, per_class_means
from .stats import bootstrap_mean_ci, per_video_values, result
from .views import frozen, shuffled, time_reversed


@torch.no_grad()
def temporality_records(model: nn.Module, loader: Any, device: torch.device, *, seed: int = 0,
                        frames: Optional[Sequence[int]] = None, desc: str = 'temporality',
                        max_videos: int = 256) -> dict[str, Any]:
    """Predictions of ``model`` on every view of every video of ``loader``.

    Args:
        model: a video model (``B × K × C × T × H × W`` → logits), on ``device``.
        loader: DataLoader of :func:`datasets.collate.video_collate` batches.
        seed: seeds the shuffled orders (per video, see :mod:`measure.views`).
        frames: frame indices of the frozen clips (default: every index of the clip).
        max_videos: the views of a batch go through the model together, at most this many
            videos (× clips) per forward pass.
    Returns:
        dict of per-video int64 tensors ``labels`` (N), ``normal``, ``shuffled``, ``reversed``
        (N predictions), ``frozen`` (N × F predictions, column j = frame ``frames[j]``),
        ``index`` (N), plus ``frames`` (the list) and ``skipped`` (a :class:`Skipped`).
    """
    mode = model_eval(model)
    skipped = Skipped()
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ('labels', 'index', 'normal', 'shuffled',
                                                            'reversed', 'frozen')}
    try:
        for batch in batches(loader, device, desc, skipped):
            x = batch['video']
            t = x.shape[3]
            if frames is None:
                frames = list(range(t))
            out['labels'].append(batch['label'].cpu())
            out['index'].append(batch['index'].cpu())
            views = [x, shuffled(x, batch['index'].cpu(), seed), time_reversed(x)] + [frozen(x, k) for k in frames]
            preds = [p.argmax(1).cpu() for p in batched(lambda v: logits_of(model, v), views, max_videos)]
            out['normal'].append(preds[0])
            out['shuffled'].append(preds[1])
            out['reversed'].append(preds[2])
            out['frozen'].append(torch.stack(preds[3:], 1))
    finally:
        model.train(mode)
    if not out['labels']:
        raise ValueError('no decodable video in the split')
    rec = {k: torch.cat(v) for k, v in out.items()}
    rec['frames'] = list(frames or [])
    rec['skipped'] = skipped
    return rec


def summarize_temporality(rec: dict[str, Any], classes: Sequence[str], split: str, *,
                          n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The temporality result from :func:`temporality_records`' output.

    Returns:
        :func:`measure.stats.result` with ``value`` = contrasted accuracy (%), its bootstrap
        ``ci95`` over videos, and ``acc`` (normal, shuffled, reversed, frozen_mean / min / max:
        ``{'value', 'ci95'}`` each), ``frozen_curve`` (per frame index: accuracy),
        ``frozen_argmin`` (the frame index giving the lowest accuracy), ``chance``,
        ``per_class`` (``{class: {n, normal, shuffled, reversed, frozen_mean, frozen_min,
        frozen_max, contrasted}}``), ``per_video`` (:func:`measure.stats.per_video_values` of
        the contrasted accuracy).
    """
    y = rec['labels']
    check_classes(y, classes, 'temporality')
    ok = {v: (rec[v] == y).double() for v in ('normal', 'shuffled', 'reversed')}
    ok_frozen = (rec['frozen'] == y[:, None]).double()               # N × F
    contrasted = (ok['normal'][:, None] * (1 - ok_frozen)).mean(1)   # per video, averaged over k
    curve = 100 * ok_frozen.mean(0)
    kmin, kmax = int(curve.argmin()), int(curve.argmax())
    frames = rec['frames']

    def ci(v):
        return [100 * b for b in bootstrap_mean_ci(v, n_boot=n_boot, seed=seed)]

    acc = {v: {'value': 100 * float(ok[v].mean()), 'ci95': ci(ok[v])} for v in ok}
    acc['frozen_mean'] = {'value': float(curve.mean()), 'ci95': ci(ok_frozen.mean(1))}
    acc['frozen_min'] = {'value': float(curve[kmin]), 'ci95': ci(ok_frozen[:, kmin]), 'frame': frames[kmin]}
    acc['frozen_max'] = {'value': float(curve[kmax]), 'ci95': ci(ok_frozen[:, kmax]), 'frame': frames[kmax]}
    per_class = per_class_means({'normal': ok['normal'], 'shuffled': ok['shuffled'], 'reversed': ok['reversed'],
                                 'frozen_mean': ok_frozen.mean(1), 'contrasted': contrasted}, y, classes, 100.0)
    for c, row in per_class.items():
        curve_c = 100 * ok_frozen[y == classes.index(c)].mean(0)
        row['frozen_min'], row['frozen_max'] = float(curve_c.min()), float(curve_c.max())
    return result(100 * float(contrasted.mean()), ci(contrasted), split=split, n=len(y), per_class=per_class,
                  unit='%', headline='contrasted accuracy', acc=acc,
                  frozen_curve={int(k): float(a) for k, a in zip(frames, curve)},
                  frozen_argmin=frames[kmin], chance=100.0 / len(classes),
                  per_video=per_video_values(rec['index'], 100 * contrasted), **rec['skipped'].report())


def temporality(model: nn.Module, loader: Any, device: torch.device, *, split: str = 'test', seed: int = 0,
                frames: Optional[Sequence[int]] = None, n_boot: int = 1000) -> dict[str, Any]:
    """Temporality of ``model`` on ``loader``'s split: :func:`temporality_records` then
    :func:`summarize_temporality` (see there for the result's entries)."""
    rec = temporality_records(model, loader, device, seed=seed, frames=frames)
    return summarize_temporality(rec, class_names(loader), split, n_boot=n_boot, seed=seed)
