"""Batching that drops undecodable items, and the tracker that enforces the bad-video policy."""
import logging

import torch

log = logging.getLogger(__name__)


def video_collate(items):
    """Stack the good items of a batch; failed items go to ``skipped``.

    Args:
        items: dicts from :class:`datasets.base.VideoDataset` (``video`` ``K × C × T × H × W``,
            ``label``, ``index``, ``vid``; or ``index``, ``vid``, ``error``).
    Returns:
        ``{'video': B × K × C × T × H × W, 'label': LongTensor B, 'index': LongTensor B,
        'vid': [str] * B, 'skipped': [error strings]}``. When every item failed, ``video`` is
        **absent** and ``label`` / ``index`` are empty LongTensors (B = 0): check
        ``'video' in batch`` before running a model. Items of a ``device_augment``
        transform (uint8 ``video``, ``aug`` draws) give ``aug`` ``B × K × 9`` as well, and the
        dataset's ``finish_batch`` completes the batch on the device.
    """
    good = [it for it in items if 'error' not in it]
    batch = {
        'label': torch.tensor([it['label'] for it in good], dtype=torch.long),
        'index': torch.tensor([it['index'] for it in good], dtype=torch.long),
        'vid': [it['vid'] for it in good],
        'skipped': [it['error'] for it in items if 'error' in it],
    }
    if good:
        batch['video'] = torch.stack([it['video'] for it in good])
        if 'aug' in good[0]:
            batch['aug'] = torch.stack([it['aug'] for it in good])
    return batch


def batch_finisher(loader, default):
    """How batches of ``loader`` reach the training device: its dataset's ``finish_batch``
    (``(batch, device) -> batch``; looked up through wrappers such as ``Subset``) when that
    is set, else ``default`` (a plain move)."""
    ds = getattr(loader, 'dataset', None)
    while ds is not None:
        finish = getattr(ds, 'finish_batch', None)
        if finish is not None:
            return finish
        ds = getattr(ds, 'dataset', None)
    return default


class BadVideoTracker:
    """Counts skipped videos over an epoch and stops the run above a fraction.

    The engine calls ``update(batch['skipped'])`` per batch and ``check(n_seen, max_fraction)``
    (``dataset.max_bad_fraction``, default 0.01) to enforce the policy; ``summary()`` goes
    into the epoch log.
    """

    def __init__(self):
        self.files = []

    @property
    def count(self):
        return len(self.files)

    def update(self, skipped):
        for err in skipped:
            if err not in self.files:  # a file seen twice (several clips/epochs) counts once
                self.files.append(err)

    def check(self, n_seen, max_fraction=0.01):
        """Raise ``RuntimeError`` (one line, the first files named) if ``count / n_seen > max_fraction``."""
        if self.count and self.count > max_fraction * max(1, n_seen):
            more = len(self.files) - 3
            named = '; '.join(self.files[:3]) + (f' (+{more} more)' if more > 0 else '')
            raise RuntimeError(
                f'{self.count} of {n_seen} videos could not be decoded '
                f'(> dataset.max_bad_fraction={max_fraction}): {named}; fix or remove them')

    def summary(self):
        return f'bad videos: {self.count}' + (f' (e.g. {self.files[0]})' if self.files else '')
