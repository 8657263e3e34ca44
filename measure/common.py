"""What every measure shares: streaming a loader through a model, counting undecodable videos,
progress bars, per-class means.

A measure never builds the engine: it iterates the DataLoader itself, in eval mode and without
gradients, and keeps per-video *numbers* (predictions, flags), never clips.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Optional

import torch
import torch.nn as nn

from datasets.collate import BadVideoTracker, batch_finisher
from models.outputs import logits_of as output_logits

log = logging.getLogger('drl')


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of ``batch`` moved to ``device`` (other entries as they are)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def progress(iterable: Iterable[Any], desc: str, total: Optional[int] = None) -> Iterable[Any]:
    """A tqdm bar on a terminal (stderr is a tty), the iterable itself otherwise (logs, tests)."""
    if not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


class Skipped:
    """Undecodable videos met by one measure (each file once): ``count`` and ``files``."""

    def __init__(self) -> None:
        self.tracker = BadVideoTracker()

    def update(self, batch: Mapping[str, Any]) -> None:
        self.tracker.update(batch.get('skipped', []))

    @property
    def count(self) -> int:
        return self.tracker.count

    def report(self) -> dict[str, Any]:
        """``{'skipped': n, 'skipped_files': [first 5 error lines]}`` for a result dict."""
        if self.count:
            log.warning('skipped %d undecodable video(s): %s', self.count, '; '.join(self.tracker.files[:3]))
        return {'skipped': self.count, 'skipped_files': list(self.tracker.files[:5])}


def batches(loader: Iterable[dict[str, Any]], device: torch.device, desc: str,
            skipped: Skipped) -> Iterator[dict[str, Any]]:
    """The loader's batches that hold videos, finished and moved to ``device``.

    Batches whose every item failed are counted in ``skipped`` and left out; a dataset's
    ``finish_batch`` (device augmentation) is applied as in training.
    """
    finish = batch_finisher(loader, to_device)
    total = len(loader) if hasattr(loader, '__len__') else None
    for batch in progress(loader, desc, total):
        skipped.update(batch)
        if 'video' not in batch:
            continue
        yield finish(batch, device)


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The video logits ``B × n_class`` of ``model`` on ``x`` (``B × K × C × T × H × W``),
    also for a model built with ``ret_feat`` (which returns a dict)."""
    return output_logits(model(x))


def batched(fn: Callable[[torch.Tensor], torch.Tensor], views: Sequence[torch.Tensor],
            max_videos: int = 256) -> list[torch.Tensor]:
    """``fn`` on several views of one batch at once (one forward pass: several times cheaper on
    CPUs than one pass per view), in chunks of at most ``max_videos`` videos (memory).

    Args:
        fn: e.g. ``lambda x: logits_of(model, x)``, ``B' × ...`` → ``B' × ...``.
        views: tensors of ``B`` videos each.
    Returns:
        ``fn``'s output per view, in order.
    """
    b = views[0].shape[0]
    x = torch.cat(list(views))
    out = torch.cat([fn(c) for c in x.split(max_videos)])
    return list(out.split(b))


def class_names(loader_or_dataset: Any) -> list[str]:
    """The class names of a loader's dataset (through ``Subset``-like wrappers) or a dataset."""
    ds = getattr(loader_or_dataset, 'dataset', loader_or_dataset)
    while not hasattr(ds, 'classes') and hasattr(ds, 'dataset'):
        ds = ds.dataset
    if not hasattr(ds, 'classes'):
        raise TypeError(f'{type(ds).__name__} has no class names (expected a VideoDataset)')
    return list(ds.classes)


def per_class_means(values: Mapping[str, torch.Tensor], labels: torch.Tensor,
                    classes: Sequence[str], scale: float = 1.0) -> dict[str, dict[str, float]]:
    """Per class (with at least one video): the mean of each per-video vector, times ``scale``.

    Args:
        values: name → ``N`` tensor; labels: ``N`` int64; classes: names, index = label.
    Returns:
        ``{class: {'n': videos, name: mean, ...}}`` in class order.
    """
    out = {}
    for c, name in enumerate(classes):
        mask = labels == c
        n = int(mask.sum())
        if n:
            row = {'n': n}
            row.update({k: scale * float(v[mask].double().mean()) for k, v in values.items()})
            out[name] = row
    return out


def check_classes(labels: torch.Tensor, classes: Sequence[str], what: str) -> None:
    """Refuse a measure on fewer than 2 classes (ValueError; the card makes it one line)."""
    present = sorted({int(v) for v in labels.tolist()})
    if len(present) < 2:
        names = ', '.join(classes[i] for i in present) or 'none'
        raise ValueError(f'{what} needs videos of at least 2 classes; the split has {len(present)} ({names})')


def model_eval(model: nn.Module) -> bool:
    """Put ``model`` in eval mode; returns its previous mode (to restore with ``model.train(mode)``)."""
    mode = model.training
    model.eval()
    return mode
