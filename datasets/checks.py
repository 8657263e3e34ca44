"""Checks of the built datasets against the model, made once when a run's datasets are built."""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Optional

from core.errors import UserError

from .base import VideoDataset
from .paths import is_train

log = logging.getLogger(__name__)


class LabelError(UserError, ValueError):
    """The model's classifier has fewer outputs than the dataset has classes."""


def check_labels(data: Mapping[str, VideoDataset], n_class: Optional[int]) -> None:
    """Refuse a classifier smaller than the label set; warn about classes with no training video.

    Args:
        data: the run's datasets by split (``train``, ``test``, ...).
        n_class: ``model.args.n_class`` (``None``: not set, nothing to check).
    Raises:
        LabelError: one line, when a split has a label ``>= n_class`` or more classes than
            ``n_class`` (training would stop at the first batch holding such a label with
            ``IndexError: Target 3 is out of bounds``, or at validation only).
    """
    if n_class is not None:
        for split, ds in data.items():
            labels = getattr(ds, 'labels', None) or []
            n_classes = len(getattr(ds, 'classes', []) or [])
            top = max(labels, default=-1)
            if top >= n_class or n_classes > n_class:
                name = getattr(ds, 'name', None)
                what = f'{name}/{split}' if name else split
                first = ds.classes[top] if 0 <= top < n_classes else None
                example = f'; e.g. label {top}' + (f' ({first!r})' if first is not None else '') \
                    if top >= n_class else ''
                raise LabelError(f'model.args.n_class={n_class} but {what} has {n_classes} classes '
                                 f'(labels 0..{max(top, n_classes - 1)}){example}; set model.args.n_class: '
                                 f'{max(n_classes, top + 1)}')
    for split, ds in data.items():
        if not is_train(split) or not getattr(ds, 'classes', None):
            continue
        counts = Counter(ds.labels)
        empty = [c for i, c in enumerate(ds.classes) if counts[i] == 0]
        if empty:
            shown = ', '.join(map(repr, empty[:10])) + (f' (+{len(empty) - 10} more)' if len(empty) > 10 else '')
            log.warning('%s: %d of %d classes have no training video: %s; the model never sees them '
                        'in training', split, len(empty), len(ds.classes), shown)
