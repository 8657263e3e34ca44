"""The dynamic score's mimic without frame banks: every split is streamed through a DataLoader.

:mod:`measure.mimic` decodes each split once into a :class:`~measure.mimic.FrameBank` held in
memory; a Kinetics-size pool does not fit. Here nothing but logits and labels is kept:

- :class:`SplitStream`: one split (``subset/phase``), read like a frame bank (the config's
  dataset, resized, not cropped, uint8) but a batch at a time; the crop is cut per batch with
  the bank's own code, so the centre crops are the frame bank's (the config's test transform).
- :func:`predict`: a model's logits on a split's centre crops, in one pass. The first pass over
  a split also records which videos decode (the others are skipped, as by ``load_bank``).
- :func:`train_mimic`: the KD training of :func:`measure.mimic.train_mimic`, decoding the pool
  again at every epoch (a shuffled DataLoader, ``workers`` processes); each clip's cached
  teacher logits are found by its index in the pool, which the dataset yields with the clip
  (:class:`Indexed`). The draws (order, crops, blends, frames) are those of the in-memory
  training, so both modes train the same mimic.
- :func:`choose`: stream or not. Automatic: stream when the frame banks would exceed
  :data:`BANK_BUDGET` (videos × clips × frames × resize² × 3 bytes, summed over the splits).

Recipe options: every field of :class:`~measure.mimic.MimicRecipe` works as in memory except
``frozen`` (clips of a random frame of random pool videos at every step, which a stream does not
hold): streaming refuses it with a one-line :class:`core.errors.UserError`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import torch
import torch.nn as nn

from core.config_schema import IMAGENET_MEAN, IMAGENET_STD
from core.errors import UserError
from models.outputs import logits_of

from . import mimic as M

# above this estimated size of the frame banks (bytes, every split together) the dynamic score
# streams its splits instead of holding them in memory
BANK_BUDGET = 2 * 1024 ** 3


class Indexed(torch.utils.data.Dataset):
    """A dataset whose item ``i`` is ``(dataset[i], i)``: the index travels with the clip
    through the DataLoader (it keys the cached teacher logits)."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[dict[str, Any], int]:
        return self.dataset[i], i


def _collate(batch: Sequence[tuple[dict[str, Any], int]]):
    """``(clips, index, labels, n_bad)``: the decodable items' uint8 ``K × T × H × W × 3`` clips
    (a list: their sizes may differ), their :class:`Indexed` indices and labels (int64), and
    the number of undecodable items dropped."""
    good = [(it, i) for it, i in batch if 'error' not in it]
    return ([it['video'] for it, _ in good], torch.tensor([i for _, i in good], dtype=torch.long),
            torch.tensor([it['label'] for it, _ in good], dtype=torch.long), len(batch) - len(good))


def _loader(data: torch.utils.data.Dataset, workers: int, **kw) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(data, num_workers=workers, collate_fn=_collate, **kw)


class SplitStream:
    """One split read a batch at a time (the streaming counterpart of a frame bank).

    Attributes:
        dataset: the split's dataset (resize only, uint8 clips; :func:`measure.mimic.load_bank`'s).
        name: ``subset/phase``; classes: class names; workers: DataLoader workers.
        good: dataset indices of the decodable videos, ``None`` until the first :func:`predict`
            pass; rows: ``good``, or every index before that pass (a split's rows are its
            videos in dataset order, as in a frame bank).
        labels: int64, one per row; n_bad: undecodable videos (skipped).
        crop, mean, std: the centre crop's side and the normalisation.
    """

    def __init__(self, cfg: Mapping[str, Any], spec: tuple[Optional[str], str], *, workers: int = 0) -> None:
        self.dataset = M._split_dataset(cfg, spec, M._bank_transform(cfg))
        self.name, self.classes, self.workers = M.split_name(spec), list(self.dataset.classes), int(workers)
        self.good: Optional[torch.Tensor] = None
        self.labels = torch.tensor(self.dataset.labels, dtype=torch.long)
        self.n_bad = 0
        t = cfg['dataset'].get('transform') or {}
        norm = t.get('normalize') or {}
        self.crop, self.mean, self.std = t.get('crop'), norm.get('mean', IMAGENET_MEAN), norm.get('std', IMAGENET_STD)

    @property
    def rows(self) -> torch.Tensor:
        return self.good if self.good is not None else torch.arange(len(self.dataset))

    def __len__(self) -> int:
        return len(self.rows)

    def rows_dataset(self) -> torch.utils.data.Dataset:
        """The rows' videos as a dataset (item ``j`` is row ``j``)."""
        return torch.utils.data.Subset(self.dataset, self.rows.tolist())

    def clips(self, frames: Sequence[torch.Tensor], generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Normalised clips ``B × K × C × T × c × c`` of decoded videos: centre crops, or one
        random crop per video with a ``generator`` (:meth:`measure.mimic.FrameBank.clips`)."""
        if all(f.shape == frames[0].shape for f in frames):
            return self._bank(torch.stack(list(frames))).clips(torch.arange(len(frames)), generator)
        # videos of other aspect ratios (a short-side resize): one at a time
        return torch.cat([self._bank(f[None]).clips(torch.zeros(1, dtype=torch.long), generator) for f in frames])

    def _bank(self, frames: torch.Tensor) -> M.FrameBank:
        return M.FrameBank(frames, torch.zeros(len(frames), dtype=torch.long), self.classes, self.name, self.crop,
                           self.mean, self.std)


def bank_bytes(cfg: Mapping[str, Any], splits: Sequence[SplitStream]) -> Optional[int]:
    """Bytes the frame banks of ``splits`` would take (videos × clips × frames × resize² × 3),
    or ``None`` when the config resizes to no fixed size (the frame size is unknown)."""
    side = M._bank_transform(cfg)['resize']
    if isinstance(side, (list, tuple)):
        area = int(side[0]) * int(side[-1]) if side else 0
    else:
        area = int(side or 0) ** 2
    if not area:
        return None
    return sum(len(s.dataset) * s.dataset.n_clips * s.dataset.n_frames * area * 3 for s in splits)


def choose(cfg: Mapping[str, Any], specs: Sequence[tuple[Optional[str], str]], stream: Optional[bool], *,
           workers: int = 0) -> tuple[bool, str, Optional[list[SplitStream]]]:
    """``(stream, why, splits)``: whether the dynamic score streams ``specs``, in words why, and
    the splits opened to decide (``None`` when ``stream`` is forced: nothing is opened).

    ``stream=None`` streams when :func:`bank_bytes` exceeds :data:`BANK_BUDGET` (or is
    unknown); ``True`` / ``False`` force it."""
    if stream is not None:
        return bool(stream), f'stream={bool(stream)} given', None
    with torch.random.fork_rng(devices=[]):  # opening a split draws nothing from the caller's RNG
        splits = [SplitStream(cfg, s, workers=workers) for s in specs]
    size = bank_bytes(cfg, splits)
    if size is None:
        return True, 'dataset.transform sets no resize or crop: the frame size is unknown before decoding', splits
    if size > BANK_BUDGET:
        return True, f'frame banks of {_size(size)} would exceed the budget of {_size(BANK_BUDGET)}', splits
    return False, f'frame banks of {_size(size)} fit the budget of {_size(BANK_BUDGET)}', splits


def _size(n: int) -> str:
    return f'{n / 2 ** 30:.2f} GiB' if n >= 2 ** 30 else f'{n / 2 ** 20:.1f} MiB'


def check_recipe(recipe: M.MimicRecipe) -> None:
    """Refuse what the streaming mimic cannot do (one line)."""
    if recipe.frozen:
        raise UserError(f'mimic recipe frozen={recipe.frozen}: the streaming mimic cannot draw frames of random '
                        'pool videos at every step; use frozen 0 or the frame banks in memory '
                        '(--mimic-stream off, stream=False)')


# ---------------------------------------------------------------- models

@torch.no_grad()
def predict(model: nn.Module, split: SplitStream, *, device: torch.device | str, batch_size: int = 64) -> torch.Tensor:
    """Logits ``len(split) × n`` (float32, CPU, one row per row of the split) of ``model``
    (eval mode) on the centre crops, in one pass; the first pass over a split fixes its rows
    (its decodable videos) and their labels."""
    first = split.good is None
    rows = split.rows
    was = model.training
    model.eval()
    out, seen, labels, bad = [], [], [], 0
    try:
        for frames, j, y, n_bad in _loader(Indexed(split.rows_dataset()), split.workers, batch_size=batch_size):
            bad += n_bad
            if len(j):
                out.append(logits_of(model(split.clips(frames).to(device))).float().cpu())
                seen.append(j)
                labels.append(y)
    finally:
        model.train(was)
    seen_rows = torch.cat(seen) if seen else torch.zeros(0, dtype=torch.long)
    if first:
        if bad:
            M.log.warning('%s: %d undecodable videos skipped', split.name, bad)
        if not len(seen_rows):
            raise ValueError(f'{split.name}: no decodable video')
        split.good, split.labels, split.n_bad = rows[seen_rows], torch.cat(labels), bad
    elif len(seen_rows) != len(rows):
        raise ValueError(f'{split.name}: {len(rows) - len(seen_rows)} video(s) decoded before could not be '
                         'decoded again')
    return torch.cat(out)


def train_mimic(teacher: nn.Module, splits: Sequence[SplitStream], recipe: M.MimicRecipe, *, seed: int,
                device: torch.device | str, n_class: int, cached: Optional[Sequence[torch.Tensor]] = None,
                progress: Optional[Callable[[int, int, float], None]] = None,
                on_epoch: Optional[Callable[[int, nn.Module], None]] = None) -> nn.Module:
    """:func:`measure.mimic.train_mimic` on streamed splits (same arguments, ``splits`` for
    ``banks``; ``cached`` is indexed by the splits' rows, as :func:`predict` returns it).

    Each epoch decodes the whole pool again through a DataLoader (``workers`` of the first
    split) whose batches are the in-memory training's: the same order, crops, blends and
    frames are drawn from the same generator, so with the same ``seed`` both modes train the
    same mimic. ``recipe.frozen`` is refused (:func:`check_recipe`).
    """
    check_recipe(recipe)
    run = M.Training(teacher, [len(s) for s in splits], recipe, seed=seed, device=device, n_class=n_class,
                     cached=cached, progress=progress)
    owner, local = run.owner, run.local
    crop_gen = run.gen if recipe.crop == 'random' else None
    # pool index p = the p-th row over the splits in turn, as the in-memory training numbers them
    pool = Indexed(torch.utils.data.ConcatDataset([s.rows_dataset() for s in splits]))
    workers = splits[0].workers if splits else 0
    for sub, order in run.epochs(on_epoch):
        batches = [order[s:s + recipe.batch_size].tolist() for s in range(0, run.n, recipe.batch_size)]
        for frames, sel, _, _ in _loader(pool, workers, batch_sampler=batches):
            if not len(sel):
                continue  # every video of the batch failed to decode this time
            parts, targets = [], []
            for i, split in enumerate(splits):
                m = owner[sel] == i
                if not m.any():
                    continue
                parts.append(split.clips([frames[k] for k in m.nonzero()[:, 0].tolist()], crop_gen))
                if not run.online:
                    targets.append(cached[i][local[sel][m]])
            run.update(run.loss(torch.cat(parts), targets, sub))
    return run.result
