"""The dynamic score's mimic: a frame-wise model trained to reproduce a video model's outputs.

The dynamic score (:func:`measure.dynamic.dynamic_score`) asks how many of a video model's
decisions a frame-wise model can reproduce. This module trains that frame-wise model (the
*mimic*, a student) by knowledge distillation from the video model (the *teacher*), which needs
no labels: the teacher's outputs are the targets, so any video (and any transformed or mixed
clip of one) is a training input.

Pieces:

- :func:`scoring_splits`: where the mimic trains and where it is measured (docs/drl.md, "Where
  to score"). On SceneMotion the score is measured on transfer-test and the mimic learns from
  every other subset (pretrain train/val, novel, transfer-train), never from transfer-test.
- :class:`FrameBank`: the decoded frames of one split, resized but not cropped, as uint8, so
  that centre and random crops are cut in memory; :func:`load_bank` fills it through the
  config's dataset (one clip per video when ``fps`` is -1, so a video is decoded once).
- :func:`teacher_logits`: the video model's logits on the centre crops (computed once per
  video and reused by every mimic seed).
- :class:`MimicRecipe` and :func:`train_mimic`: the KD training (loss, length, input
  augmentation).

Splits too large for frame banks are streamed instead (:mod:`measure.mimic_stream`, the same
crops and training without holding any split).

Tensors: clips are ``B × K × C × T × H × W`` float (normalised), banks hold
``N × K × T × H × W × 3`` uint8, logits are ``B × n_class``.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

import torch
import torch.nn as nn
from torch.nn import functional as F

from core.config_schema import IMAGENET_MEAN, IMAGENET_STD
from datasets import build_dataset
from datasets.scenemotion_gen import DEFAULTS as SCENEMOTION_DEFAULTS
from engine.losses import KDLoss
from models import build_model
from models.outputs import logits_of

log = logging.getLogger('measure')

# the frame-wise mimic of the paper's scoring configs: ResNet-18, random init; the widths follow
# the video model's family (SceneMotion's models use widen_factor 0.25)
DEFAULT_MIMIC = {'name': 'resnet2d', 'args': {'model_depth': 18, 'pretrained': False, 'widen_factor': 1.0}}
SCENEMOTION_MIMIC = {'name': 'resnet2d', 'args': {'model_depth': 18, 'pretrained': False, 'widen_factor': 0.25}}


@dataclass
class MimicRecipe:
    """How the mimic is trained (the defaults are the calibrated SceneMotion recipe,
    docs/results/dynamic-score-calibration.md).

    Attributes:
        model: ``model`` block of the mimic (``n_class`` is the video model's).
        epochs: passes over the training pool; batch_size: clips per step.
        lr, weight_decay: AdamW; the learning rate follows a cosine from ``lr`` to 0 after
            ``warmup`` steps of linear warm-up.
        loss: ``kd`` (KL to the teacher's softmax at temperature ``T``), ``mse`` (squared
            error of the centred logits) or ``kd+mse``.
        T: KD temperature.
        crop: ``center`` (the scored view only) or ``random`` (a random crop of the resized
            frames, the same for the teacher and the mimic).
        mix: share of each batch replaced by pixel blends of two clips (weight uniform in
            [0, 1]); the teacher labels the blend.
        pool: ``all`` (every split :func:`scoring_splits` offers) or ``train`` (the scored
            subset's own training split only: the paper's protocol).
        frames: if > 0, the mimic sees only this many frames of each training clip (a random
            subset, in order) while its target stays the teacher's output on the whole clip;
            the last ``full_epochs`` epochs use every frame. A frame-wise mimic averages its
            frames, so this trades exactness of the target for more passes per second.
        frozen: clips added to every batch that hold one frame repeated (a random frame of a
            random video of the pool); the teacher labels the repeated-frame clip, the mimic
            sees the single frame (the same input to a frame-wise model). The teacher's
            answer to each single frame is the most direct target a frame-wise mimic has.
        init: a checkpoint of a frame-wise model (with its classifier) to start from instead
            of random weights; it must not be the model being scored, nor depend on it.
        ema: if > 0, the mimic returned is an exponential moving average of the trained one's
            weights and BatchNorm statistics, updated after every step with this decay (0: the
            trained weights themselves).
    """
    model: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(SCENEMOTION_MIMIC))
    epochs: int = 16
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 0
    loss: str = 'kd'
    T: float = 1.0
    crop: str = 'center'
    mix: float = 0.0
    pool: str = 'all'
    frames: int = 2
    full_epochs: int = 2
    init: Optional[str] = None
    frozen: int = 0
    ema: float = 0.0

    def __post_init__(self):
        if self.loss not in ('kd', 'mse', 'kd+mse'):
            raise ValueError(f'mimic loss {self.loss!r} unknown; use kd, mse or kd+mse')
        if self.crop not in ('center', 'random'):
            raise ValueError(f'mimic crop {self.crop!r} unknown; use center or random')
        if self.pool not in ('all', 'train'):
            raise ValueError(f'mimic pool {self.pool!r} unknown; use all or train')
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f'mimic mix must be in [0, 1], got {self.mix}')
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f'mimic ema must be in [0, 1), got {self.ema}')
        if self.frozen < 0:
            raise ValueError(f'mimic frozen must be ≥ 0, got {self.frozen}')
        if self.frames < 0 or not 0 <= self.full_epochs <= self.epochs:
            raise ValueError('mimic frames must be ≥ 0 and full_epochs in [0, epochs]')
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError('mimic epochs and batch_size must be at least 1')

    @classmethod
    def from_dict(cls, d: Optional[Mapping[str, Any]]) -> MimicRecipe:
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise KeyError(f'mimic recipe: unknown keys {sorted(unknown)}')
        return cls(**d)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# named recipes, as overrides of :func:`default_recipe`. ``strong``: random crops and pixel blends
# that the model labels at every step, 3× as long: a mimic that reproduces more of every model's
# decisions, so it lowers every score, the static model's by ~0.03 and a motion model's by ~0.15
# on SceneMotion (docs/results/dynamic-score-calibration.md, "A stronger mimic"); not the default
RECIPES: dict[str, dict[str, Any]] = {
    'calibrated': {},
    'strong': {'crop': 'random', 'mix': 0.5, 'epochs': 48, 'full_epochs': 4},
}


def default_recipe(cfg: Mapping[str, Any]) -> MimicRecipe:
    """The recipe for a config: SceneMotion's calibrated one, elsewhere the same with a
    full-width ResNet-18 and only the config's own training split (the published protocol)."""
    if cfg['dataset']['name'] == 'scenemotion':
        return MimicRecipe()
    return MimicRecipe(model=copy.deepcopy(DEFAULT_MIMIC), pool='train', epochs=10, frames=0, full_epochs=0)


# ---------------------------------------------------------------- splits

def scoring_splits(cfg: Mapping[str, Any], pool: str = 'all') -> tuple[tuple[str, str], list[tuple[str, str]]]:
    """``((subset, phase) scored, [(subset, phase) the mimic trains on])``.

    SceneMotion: scored on ``transfer/test`` whatever subset the config names (scene and
    class are independent there); trained on ``transfer/train`` and, with ``pool='all'``, also
    ``pretrain/train``, ``pretrain/val`` and ``novel/novel`` (labels unused).
    Other datasets: scored on the config's ``test_final`` split, trained on its ``train``
    split (``subset`` is ``None``, the phase is the config split's name).
    """
    if cfg['dataset']['name'] == 'scenemotion':
        train = [('transfer', 'train')]
        if pool == 'all':
            train += [('pretrain', 'train'), ('pretrain', 'val'), ('novel', 'novel')]
        return ('transfer', 'test'), train
    args = cfg['dataset'].get('args') or {}
    scored = 'test_final' if 'test_final' in args else 'test'
    return (None, scored), [(None, 'train')]


def scoring_config(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    """The config the dynamic score reads its splits with. SceneMotion: the generation at the
    benchmark's own ``bias`` (0.9), whatever bias the model was trained with, so that every model
    is scored by mimics trained on the same videos (the pool's pretrain videos depend on the bias,
    the transfer videos do not). Other datasets: ``cfg`` itself."""
    if cfg['dataset']['name'] != 'scenemotion':
        return cfg
    bias = SCENEMOTION_DEFAULTS['bias']
    sm = dict(cfg['dataset'].get('scenemotion') or {})
    if float(sm.get('bias', bias)) == bias:
        return cfg
    cfg = copy.deepcopy(dict(cfg))
    cfg['dataset']['scenemotion'] = {**sm, 'bias': bias}
    return cfg


def split_name(spec: tuple[Optional[str], str]) -> str:
    subset, phase = spec
    return phase if subset is None else f'{subset}/{phase}'


def _split_dataset(cfg: Mapping[str, Any], spec: tuple[Optional[str], str], transform: Optional[dict]):
    """The dataset of one ``(subset, phase)``, read with the test-time sampling (deterministic)
    and ``transform`` (``None``: the config's own test transform)."""
    cfg = copy.deepcopy(dict(cfg))
    subset, phase = spec
    d = cfg['dataset']
    if transform is not None:
        d['transform'] = transform
    args = d.setdefault('args', {})
    base = dict(args.get('test_final') or args.get('test') or {})
    if subset is None:
        # the config's split, with its own clip sampling but read deterministically (test)
        clip = dict(args.get(phase) or base)
        split = 'test' if phase == 'train' else phase
    else:
        d['subset'] = subset
        clip, split = base, 'test'
        clip['phase'] = phase
    args[split] = clip
    return build_dataset(cfg, split)


# ---------------------------------------------------------------- frame banks

class FrameBank:
    """Decoded frames of one split, resized but not cropped.

    Attributes:
        frames: uint8 ``N × K × T × H × W × 3``; labels: int64 ``N`` (the split's own labels,
            only for accuracies); classes: class names; name: ``subset/phase``.
        crop: side of the centre crop the models see; mean, std: the normalisation.
        paths: the video files (set by :func:`load_bank`); n_bad: videos that could not be
            decoded (skipped, counted).
    """

    def __init__(self, frames: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], name: str,
                 crop: Optional[int], mean: Sequence[float], std: Sequence[float]) -> None:
        self.frames, self.labels, self.classes, self.name = frames, labels, list(classes), name
        self.paths, self.n_bad = [], 0
        h, w = frames.shape[-3:-1]
        self.crop = int(crop) if crop else min(h, w)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 1, 3, 1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 1, 3, 1, 1, 1)

    def __len__(self) -> int:
        return len(self.frames)

    def clips(self, idx: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Normalised clips ``B × K × C × T × c × c`` of videos ``idx``: centre crops, or, with
        a ``generator``, one random crop per video (the same for all its frames)."""
        x = self.frames[idx]
        h, w, c = x.shape[-3], x.shape[-2], self.crop
        if generator is None:
            top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
            x = x[..., top:top + c, left:left + c, :]
        else:
            tops = torch.randint(0, h - c + 1, (len(idx),), generator=generator).tolist()
            lefts = torch.randint(0, w - c + 1, (len(idx),), generator=generator).tolist()
            x = torch.stack([v[..., t:t + c, s:s + c, :] for v, t, s in zip(x, tops, lefts)])
        x = x.permute(0, 1, 5, 2, 3, 4).float().div_(255)  # B × K × C × T × c × c
        return (x - self.mean) / self.std


def _bank_transform(cfg: Mapping[str, Any]) -> dict[str, Any]:
    t = dict(cfg['dataset'].get('transform') or {})
    return {'resize': t.get('resize') or t.get('crop'), 'crop': None, 'device_augment': True,
            'normalize': t.get('normalize') or {}}


def load_bank(cfg: Mapping[str, Any], spec: tuple[Optional[str], str], *, workers: int = 0,
              batch_size: int = 32) -> FrameBank:
    """Decode one split into a :class:`FrameBank` (resize only; the crop is cut later)."""
    ds = _split_dataset(cfg, spec, _bank_transform(cfg))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         collate_fn=list)
    frames, labels, paths, bad = [], [], [], 0
    for items in loader:
        for it in items:
            if 'error' in it:
                bad += 1
                continue
            frames.append(it['video'])
            labels.append(it['label'])
            paths.append(ds.records[it['index']].path)
    if bad:
        log.warning('%s: %d undecodable videos skipped', split_name(spec), bad)
    if not frames:
        raise ValueError(f'{split_name(spec)}: no decodable video')
    t = cfg['dataset'].get('transform') or {}
    norm = t.get('normalize') or {}
    bank = FrameBank(torch.stack(frames), torch.tensor(labels, dtype=torch.long), ds.classes, split_name(spec),
                     t.get('crop'), norm.get('mean', IMAGENET_MEAN), norm.get('std', IMAGENET_STD))
    bank.n_bad, bank.paths = bad, paths
    return bank


# ---------------------------------------------------------------- models

@torch.no_grad()
def predict(model: nn.Module, bank: FrameBank, *, device: torch.device | str, batch_size: int = 64) -> torch.Tensor:
    """Logits ``N × n`` (float32, CPU) of ``model`` (eval mode) on the bank's centre crops."""
    was = model.training
    model.eval()
    out = []
    for s in range(0, len(bank), batch_size):
        idx = torch.arange(s, min(s + batch_size, len(bank)))
        out.append(logits_of(model(bank.clips(idx).to(device))).float().cpu())
    model.train(was)
    return torch.cat(out)


teacher_logits = predict


def build_mimic(recipe: MimicRecipe, n_class: int, seed: int) -> nn.Module:
    """The mimic's fresh weights: a function of ``(recipe, n_class, seed)`` only."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        g = build_model(recipe.model, n_class=n_class)
    finally:
        torch.random.set_rng_state(state)
    if recipe.init:
        from engine.checkpoint import load_pretrained
        load_pretrained(g, recipe.init, copy_head=True)
    return g


def _loss(recipe: MimicRecipe, kd: KDLoss, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    loss = 0.0
    if 'kd' in recipe.loss:
        loss = loss + kd(student, teacher)
    if 'mse' in recipe.loss:
        s = student - student.mean(1, keepdim=True)
        t = teacher - teacher.mean(1, keepdim=True)
        loss = loss + F.mse_loss(s, t)
    return loss


def train_mimic(teacher: nn.Module, banks: Sequence[FrameBank], recipe: MimicRecipe, *, seed: int,
                device: torch.device | str, n_class: int, cached: Optional[Sequence[torch.Tensor]] = None,
                progress: Optional[Callable[[int, int, float], None]] = None,
                on_epoch: Optional[Callable[[int, nn.Module], None]] = None) -> nn.Module:
    """Train one mimic of ``teacher`` by KD on every video of ``banks``.

    Args:
        teacher: the video model (eval mode; never changed).
        banks: the training pool; cached: the teacher's centre-crop logits per bank (reused when
            the recipe feeds centre crops without mixing, else the teacher labels every
            batch itself).
        seed: seeds the mimic's initial weights and every draw of the training (order, crops,
            blends): the mimic is a function of (teacher, pool, recipe, seed).
        progress: ``(step, steps, loss)`` callback; on_epoch: ``(epoch, mimic)`` after each
            epoch (the mimic is put back in training mode afterwards).
    Returns:
        the trained mimic, in eval mode.
    """
    run = Training(teacher, [len(b) for b in banks], recipe, seed=seed, device=device, n_class=n_class,
                   cached=cached, progress=progress)
    gen, owner, local = run.gen, run.owner, run.local
    banks_all = list(banks)
    for sub, order in run.epochs(on_epoch):
        for s in range(0, run.n, recipe.batch_size):
            sel = order[s:s + recipe.batch_size]
            parts, targets = [], []
            for i, b in enumerate(banks):
                m = owner[sel] == i
                if not m.any():
                    continue
                li = local[sel][m]
                parts.append(b.clips(li, gen if recipe.crop == 'random' else None))
                if not run.online:
                    targets.append(cached[i][li])
            loss = run.loss(torch.cat(parts), targets, sub)
            if recipe.frozen:
                xf = _frozen_frames(banks_all, owner, local, recipe, gen).to(device)
                with torch.no_grad():
                    tf = logits_of(teacher(xf.expand(-1, -1, -1, banks_all[0].frames.shape[2], -1, -1))).float()
                loss = loss + _loss(recipe, run.kd, logits_of(run.g(xf)).float(), tf)
            run.update(loss)
    return run.result


class Training:
    """What the in-memory and the streamed mimic trainings share (:func:`train_mimic` and
    :func:`measure.mimic_stream.train_mimic`): the mimic, the generator of every draw, the pool's
    numbering, the optimiser and the loss. Both call :meth:`epochs`, then per batch :meth:`loss`
    and :meth:`update`, so that with one ``seed`` they make the same draws in the same order.

    Attributes:
        g: the mimic being trained; result: what the training returns (``g``, or its weight
            average when ``recipe.ema`` > 0); gen: the generator of the order, crops, blends
            and frames.
        owner, local: pool index → (bank, row in that bank); n: pool size; steps: in all.
        online: whether the teacher labels every batch (random crops, blends or nothing cached).
    """

    def __init__(self, teacher: nn.Module, sizes: Sequence[int], recipe: MimicRecipe, *, seed: int,
                 device: torch.device | str, n_class: int, cached: Optional[Sequence[torch.Tensor]] = None,
                 progress: Optional[Callable[[int, int, float], None]] = None):
        self.teacher, self.recipe, self.device, self.progress = teacher, recipe, device, progress
        self.g = build_mimic(recipe, n_class, seed).to(device)
        self.gen = torch.Generator().manual_seed(seed * 7919 + 17)
        self.owner = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(sizes)])
        self.local = torch.cat([torch.arange(n) for n in sizes])
        self.n = len(self.owner)
        self.steps = math.ceil(self.n / recipe.batch_size) * recipe.epochs
        self.opt, self.sched = _optimizer(self.g, recipe, self.steps)
        self.kd = KDLoss(T=recipe.T)
        self.online = recipe.crop == 'random' or recipe.mix > 0 or cached is None
        self.step = 0
        self.result = self.g
        if recipe.ema:
            self.result = copy.deepcopy(self.g).eval().requires_grad_(False)

    def epochs(self, on_epoch: Optional[Callable[[int, nn.Module], None]] = None):
        """Yields ``(sub, order)`` per epoch: the frames per clip (0 = all) and the pool's
        order; calls ``on_epoch(epoch, mimic)`` (mimic in eval mode) after each, and leaves the
        mimic in eval mode at the end."""
        r = self.recipe
        self.teacher.eval()
        self.g.train()
        for epoch in range(r.epochs):
            sub = r.frames if r.frames and epoch < r.epochs - r.full_epochs else 0
            yield sub, torch.randperm(self.n, generator=self.gen)
            if on_epoch is not None:
                self.g.eval()
                on_epoch(epoch + 1, self.result)
                self.g.train()
        self.g.eval()
        self.result.eval()

    def loss(self, x: torch.Tensor, targets: Sequence[torch.Tensor], sub: int) -> torch.Tensor:
        """The mimic's loss on the batch ``x`` (blended as the recipe says, then cut to ``sub``
        frames) against the cached ``targets`` or, online, the teacher's logits."""
        x = _mixed(x, self.recipe, self.gen).to(self.device)
        if self.online:
            with torch.no_grad():
                t = logits_of(self.teacher(x)).float()
        else:
            t = torch.cat(targets).to(self.device)
        x = _subsampled(x, sub, self.gen)
        return _loss(self.recipe, self.kd, logits_of(self.g(x)).float(), t)

    def update(self, loss: torch.Tensor) -> None:
        """One optimiser and schedule step; reports progress."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.step += 1
        if self.result is not self.g:
            _ema_update(self.result, self.g, self.recipe.ema)
        if self.progress is not None:
            self.progress(self.step, self.steps, loss.item())


def _optimizer(g: nn.Module, recipe: MimicRecipe, steps: int):
    """AdamW and its schedule: linear warm-up over ``recipe.warmup`` steps, then a cosine to 0
    at ``steps``."""
    opt = torch.optim.AdamW(g.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)

    def lr_at(step):
        if step < recipe.warmup:
            return (step + 1) / recipe.warmup
        return 0.5 * (1 + math.cos(math.pi * (step - recipe.warmup) / max(1, steps - recipe.warmup)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


@torch.no_grad()
def _ema_update(avg: nn.Module, model: nn.Module, decay: float) -> None:
    """``avg ← decay · avg + (1 − decay) · model`` for every float parameter and buffer (BatchNorm
    statistics included); integer buffers (BatchNorm's batch counts) are copied."""
    for a, m in zip(avg.state_dict().values(), model.state_dict().values()):
        if a.is_floating_point():
            a.mul_(decay).add_(m.detach(), alpha=1 - decay)
        else:
            a.copy_(m)


def _mixed(x: torch.Tensor, recipe: MimicRecipe, gen: torch.Generator) -> torch.Tensor:
    """The batch with its last ``round(mix · B)`` clips blended with random clips of it."""
    if recipe.mix > 0:
        k = int(round(recipe.mix * len(x)))
        if k:
            lam = torch.rand(k, generator=gen).view(k, 1, 1, 1, 1, 1)
            other = x[torch.randperm(len(x), generator=gen)[:k]]
            x = torch.cat([x[:len(x) - k], lam * x[len(x) - k:] + (1 - lam) * other])
    return x


def _subsampled(x: torch.Tensor, sub: int, gen: torch.Generator) -> torch.Tensor:
    """``sub`` random frames of each clip (the same for the batch, in order); all if ``sub`` is 0."""
    if sub and sub < x.shape[3]:
        keep = torch.randperm(x.shape[3], generator=gen)[:sub].sort().values
        x = x[:, :, :, keep.to(x.device)]
    return x


def _frozen_frames(banks, owner, local, recipe, gen):
    """``recipe.frozen`` single-frame clips ``B × K × C × 1 × c × c`` of random pool videos."""
    pick = torch.randint(0, len(owner), (recipe.frozen,), generator=gen)
    parts = []
    for i, b in enumerate(banks):
        m = owner[pick] == i
        if m.any():
            parts.append(b.clips(local[pick][m], gen if recipe.crop == 'random' else None))
    x = torch.cat(parts)
    t = torch.randint(0, x.shape[3], (len(x),), generator=gen)
    return torch.stack([v[:, :, j:j + 1] for v, j in zip(x, t.tolist())])


class Timer:
    """Wall-clock seconds of named phases (for the card's timing report)."""

    def __init__(self) -> None:
        self.t = {}

    def __call__(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                timer.t[name] = timer.t.get(name, 0.0) + time.perf_counter() - self.start
        return _Ctx()
