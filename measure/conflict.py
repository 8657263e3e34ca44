"""Scene conflict (in the spirit of SCUBA / ConflFG, Li et al., ICCV 2023): every clip blended with
a still frame of a video of another class; which label wins?

Video ``i`` is paired with a video ``j`` of another class (seeded, see :func:`conflict_pairs`);
every frame of ``i``'s clips becomes ``(1 - w) · frame + w · still``, where ``still`` is the
middle frame of ``j``'s clip (same clip index). Reported, in percent:

- ``value`` (headline): the share of videos where the clip's label gets a higher probability
  than the still frame's label: high for a model that follows the motion;
- ``acc_clip``: accuracy against the clip's label; ``acc_frame``: against the frame's label
  (high for a model that follows the scene).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from datasets.collate import video_collate

from .common import Skipped, batches, check_classes, class_names, logits_of, model_eval, per_class_means
from .stats import bootstrap_mean_ci, per_video_values, result
from .views import blended


def conflict_pairs(labels: Sequence[int], seed: int = 0) -> np.ndarray:
    """For every video a partner of another class, uniformly among them, from ``seed``.

    Args:
        labels: ``N`` class indices.
    Returns:
        ``N`` int64 partner indices (``labels[p[i]] != labels[i]``).
    Raises:
        ValueError: fewer than 2 classes.
    """
    y = np.asarray(labels, dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError(f'scene conflict needs videos of at least 2 classes; the split has {len(np.unique(y))}')
    order = np.argsort(y, kind='stable')           # videos grouped by class
    sorted_y = y[order]
    start = np.searchsorted(sorted_y, y, side='left')
    count = np.searchsorted(sorted_y, y, side='right') - start
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5c0b]))
    r = (rng.random(len(y)) * (len(y) - count)).astype(np.int64)  # position among the others
    pos = np.where(r < start, r, r + count)        # skip the video's own class block
    return order[pos]


class ConflictPairs(Dataset):
    """Items of ``base`` with the partner's middle frames: ``still`` ``K × C × H × W`` and
    ``frame_label``; an item fails (``error``) when either video cannot be decoded."""

    def __init__(self, base: Dataset, partners: np.ndarray) -> None:
        self.base, self.partners = base, partners

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.base[i]
        if 'error' in item:
            return item
        other = self.base[int(self.partners[i])]
        if 'error' in other:
            return {'index': item['index'], 'vid': item['vid'], 'error': other['error']}
        v = other['video']                        # K × C × T × H × W
        return {**item, 'still': v[:, :, v.shape[2] // 2].clone(), 'frame_label': other['label']}


def conflict_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`datasets.collate.video_collate` plus ``still`` (``B × K × C × H × W``) and ``frame_label``."""
    batch = video_collate(items)
    good = [it for it in items if 'error' not in it]
    if good:
        batch['still'] = torch.stack([it['still'] for it in good])
        batch['frame_label'] = torch.tensor([it['frame_label'] for it in good], dtype=torch.long)
    return batch


def _pair_loader(loader: DataLoader, partners: np.ndarray) -> DataLoader:
    """A loader like ``loader`` (batch size, order, workers) over the paired items."""
    return DataLoader(ConflictPairs(loader.dataset, partners), batch_size=loader.batch_size,
                      sampler=loader.sampler, num_workers=loader.num_workers, collate_fn=conflict_collate,
                      pin_memory=loader.pin_memory, multiprocessing_context=loader.multiprocessing_context)


@torch.no_grad()
def scene_conflict(model: nn.Module, loader: DataLoader, device: torch.device, *, weight: float = 0.5,
                   split: str = 'test', seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """Scene-conflict result of ``model`` on ``loader``'s split (module docstring).

    Args:
        weight: the still frame's share in the blend, in (0, 1).
        seed: seeds the pairing (the same seed pairs the same videos, on any machine).
    Returns:
        :func:`measure.stats.result` (percent) with ``acc_clip`` and ``acc_frame``
        (``{'value', 'ci95'}``), ``weight``, ``per_class`` (by the clip's class:
        ``{n, clip_wins, acc_clip, acc_frame}``), ``per_video`` (of the headline, the clip's label
        winning) and the skipped-video count.
    """
    if not 0.0 < float(weight) < 1.0:
        raise ValueError(f'blend weight must be in (0, 1), got {weight}')
    classes = class_names(loader)
    partners = conflict_pairs(loader.dataset.labels, seed)
    mode = model_eval(model)
    skipped = Skipped()
    rows: dict[str, list[torch.Tensor]] = {'y': [], 'yf': [], 'pred': [], 'wins': [], 'index': []}
    try:
        for batch in batches(_pair_loader(loader, partners), device, 'scene conflict', skipped):
            logits = logits_of(model, blended(batch['video'], batch['still'], float(weight)))
            y, yf = batch['label'], batch['frame_label']
            p = logits.float().softmax(1)
            rows['y'].append(y.cpu())
            rows['index'].append(batch['index'].cpu())
            rows['yf'].append(yf.cpu())
            rows['pred'].append(logits.argmax(1).cpu())
            rows['wins'].append((p.gather(1, y[:, None]) > p.gather(1, yf[:, None]))[:, 0].cpu())
    finally:
        model.train(mode)
    if not rows['y']:
        raise ValueError('no decodable video in the split')
    y, yf, pred, wins = (torch.cat(rows[k]) for k in ('y', 'yf', 'pred', 'wins'))
    check_classes(y, classes, 'scene conflict')
    clip_ok, frame_ok, wins = (pred == y).double(), (pred == yf).double(), wins.double()

    def ci(v):
        return [100 * b for b in bootstrap_mean_ci(v, n_boot=n_boot, seed=seed)]

    per_class = per_class_means({'clip_wins': wins, 'acc_clip': clip_ok, 'acc_frame': frame_ok}, y, classes, 100.0)
    return result(100 * float(wins.mean()), ci(wins), split=split, n=len(y), per_class=per_class, unit='%',
                  headline="clip's label beats the frame's", weight=float(weight),
                  acc_clip={'value': 100 * float(clip_ok.mean()), 'ci95': ci(clip_ok)},
                  acc_frame={'value': 100 * float(frame_ok.mean()), 'ci95': ci(frame_ok)},
                  chance=100.0 / len(classes), per_video=per_video_values(torch.cat(rows['index']), 100 * wins),
                  **skipped.report())
