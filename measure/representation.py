"""Representation level: how many dimensions of a feature layer encode static vs dynamic factors
(Kowal et al., CVPR 2022, "A Deeper Dive Into What Deep Spatiotemporal Networks Encode").

Pairs of inputs that share one factor:

- *static pairs*: a clip and its frame-shuffled copy (same appearance, other dynamics);
- *dynamic pairs*: the same motion with another appearance. On SceneMotion the generator
  renders the video's object and trajectory over another scene
  (:func:`datasets.scenemotion_gen.render_on_scene`); elsewhere an appearance change of the
  clip (``grayscale`` by default, or ``channel_swap``), an approximation the result says it is.

Estimator, as in the authors' code (``utils.dim_est`` of YorkUCVIL/Static-Dynamic-Interpretability):
with ``z`` the features of every example of every pair (both factors pooled),

    var   = Σ_d mean_i (z_i,d − mean_d)²                         (population variance, summed)
    m_f,d = ½ (mean_i z_a,i,d + mean_i z_b,i,d)                   (per factor f)
    s_f   = Σ_d mean_i (z_a,i,d − m_f,d)(z_b,i,d − m_f,d) / var
    share = softmax([s_dyn, s_stat, 1])                          (the residual's score is 1)
    dims  = ⌊share_f · D⌋ for dyn and stat, residual = D − their sum.

Features of a layer are averaged over every axis but the channel (``N × C``); the default
layer ``pool`` is the model's pooled clip feature (``forward_features``). The CI is a Poisson
bootstrap over videos (each video weighted by a Poisson(1) draw per replicate, seeded per
video), which streams: the features are accumulated into weighted sums, never kept.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from core.config_schema import IMAGENET_MEAN, IMAGENET_STD
from datasets.collate import video_collate

from .common import Skipped, batched, batches, check_classes, class_names, model_eval
from .stats import result
from .views import APPEARANCE_CHANGES, shuffled, view_seed

FACTORS = ('dynamic', 'static')


class UnknownLayer(ValueError):
    """A feature layer name the model does not have (the message lists the ones it has)."""


def _plain(model: nn.Module) -> nn.Module:
    while hasattr(model, 'module') or hasattr(model, '_orig_mod'):
        model = getattr(model, 'module', None) or model._orig_mod
    return model


def feature_layers(model: nn.Module) -> list[str]:
    """Names a feature layer can take: ``pool`` and every named sub-module of the model."""
    return ['pool'] + [n for n, _ in _plain(model).named_modules() if n and not n.startswith('head')]


def check_layer(model: nn.Module, layer: str) -> None:
    """Raise :class:`UnknownLayer` (one line listing the top-level layers) unless ``layer`` exists."""
    if layer == 'pool' or layer in dict(_plain(model).named_modules()):
        return
    top = ['pool'] + [n for n, _ in _plain(model).named_children() if n not in ('head', 'dropout')]
    raise UnknownLayer(f'unknown feature layer {layer!r}; this model has: {", ".join(top)} '
                       f'(or any dotted sub-module, e.g. {top[-1]}.0)')


class FeatureTap:
    """Channel features ``B × C`` of one layer, per video (clips averaged), as the model runs.

    ``pool``: ``forward_features`` per clip, averaged over clips. Another layer: a forward hook
    on the named module; its output averaged over every axis but the channel (dim 1), then
    over the clips of each video.
    """

    def __init__(self, model: nn.Module, layer: str = 'pool') -> None:
        check_layer(model, layer)
        self.model, self.layer, self.out = model, layer, None
        self.handle = None
        if layer != 'pool':
            module = dict(_plain(model).named_modules())[layer]
            self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        self.out = out.flatten(2).mean(2) if out.dim() > 2 else out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``B × K × C × T × H × W`` → features ``B × D`` (float64)."""
        b, k = x.shape[:2]
        plain = _plain(self.model)
        if self.layer == 'pool':
            feat = plain.forward_features(x.flatten(0, 1))
        else:
            self.model(x)
            feat = self.out
        return feat.double().reshape(b, k, -1).mean(1)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()


# ---------------------------------------------------------------- SceneMotion: another scene

def scenemotion_source(dataset: Any) -> Optional[dict[str, Any]]:
    """The generation parameters of a SceneMotion split (``None`` for any other dataset)."""
    root = getattr(dataset, 'root', None)
    if root is None or getattr(dataset, 'scenes', None) is None:
        return None
    import json
    path = os.path.join(str(root), 'params.json')
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


class SceneSwapPairs(Dataset):
    """Items of a SceneMotion split with ``video_alt``: the same video rendered over another scene.

    The other scene is drawn per video from ``seed`` among the scenes it does not show. The
    re-rendered video is encoded like the generated ones and goes through the split's own
    decoding, sampling and transform (same generator), so only the background differs.
    """

    def __init__(self, base: Any, params: dict[str, Any], workdir: str, seed: int = 0) -> None:
        self.base, self.params, self.workdir, self.seed = base, params, workdir, seed

    def __len__(self) -> int:
        return len(self.base)

    def _render(self, i: int) -> str:
        from datasets.scenemotion_gen import SCENES, render_on_scene, write_video
        rec = self.base.records[i]
        phase_dir = os.path.dirname(os.path.dirname(rec.path))
        subset, phase = os.path.basename(os.path.dirname(phase_dir)), os.path.basename(phase_dir)
        index = int(rec.vid.split('_')[0][-5:])
        own = SCENES.index(self.base.scenes[i])
        g = np.random.default_rng(np.random.SeedSequence([int(self.seed), int(index), 0x5ce7e]))
        scene = [s for s in range(len(SCENES)) if s != own][int(g.integers(len(SCENES) - 1))]
        frames, drawn = render_on_scene(self.params, subset, phase, index, scene)
        if drawn != own:
            raise RuntimeError(f'{rec.path}: the generator replays scene {SCENES[drawn]}, the split says '
                               f'{SCENES[own]}; the generation parameters do not match the files')
        path = os.path.join(self.workdir, f'{subset}_{phase}_{index:05d}.mp4')
        write_video(frames, path, self.params['fps'])
        return path

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.base[i]
        if 'error' in item:
            return item
        alt = copy.copy(self.base)
        alt.records = list(self.base.records)
        alt.records[i] = dataclasses.replace(self.base.records[i], path=self._render(i))
        other = alt[i]
        if 'error' in other:
            return {'index': item['index'], 'vid': item['vid'], 'error': other['error']}
        return {**item, 'video_alt': other['video']}


def pair_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`datasets.collate.video_collate` plus ``video_alt`` (``B × K × C × T × H × W``)."""
    batch = video_collate(items)
    good = [it for it in items if 'error' not in it]
    if good:
        batch['video_alt'] = torch.stack([it['video_alt'] for it in good])
    return batch


# ---------------------------------------------------------------- the estimator, streamed

class KowalAccumulator:
    """Weighted sums for the estimator, for ``R`` weightings of the videos at once.

    Replicate 0 weights every video 1 (the estimate); replicates 1..R-1 are Poisson(1) bootstrap
    weights. Per factor: Σw·z_a, Σw·z_b, Σw·z_a·z_b (``R × D``) and Σw; over all examples:
    Σw·z, Σw·z² and the example weight.
    """

    def __init__(self, n_rep: int, dim: int, seed: int = 0) -> None:
        self.n_rep, self.dim, self.seed = n_rep, dim, seed
        z = torch.zeros
        self.pair = {f: {'a': z(n_rep, dim, dtype=torch.float64), 'b': z(n_rep, dim, dtype=torch.float64),
                         'ab': z(n_rep, dim, dtype=torch.float64), 'w': z(n_rep, dtype=torch.float64)}
                     for f in FACTORS}
        self.tot = {'z': z(n_rep, dim, dtype=torch.float64), 'zz': z(n_rep, dim, dtype=torch.float64),
                    'w': z(n_rep, dtype=torch.float64)}

    def weights(self, index: torch.Tensor) -> torch.Tensor:
        """``R × B`` weights of the videos ``index`` (row 0 all ones)."""
        cols = []
        for i in index.tolist():
            g = torch.Generator().manual_seed(view_seed(self.seed, i, salt=2))
            w = torch.poisson(torch.ones(self.n_rep), generator=g).double()
            w[0] = 1.0
            cols.append(w)
        return torch.stack(cols, 1)

    def update(self, w: torch.Tensor, pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Add a batch: ``w`` ``R × B``; ``pairs[f] = (z_a, z_b)``, each ``B × D`` float64 on CPU."""
        for f, (a, b) in pairs.items():
            acc = self.pair[f]
            acc['a'] += w @ a
            acc['b'] += w @ b
            acc['ab'] += w @ (a * b)
            acc['w'] += w.sum(1)
            for z in (a, b):
                self.tot['z'] += w @ z
                self.tot['zz'] += w @ (z * z)
                self.tot['w'] += w.sum(1)

    def scores(self) -> dict[str, torch.Tensor]:
        """``R`` values of ``s_dynamic``, ``s_static`` (see the module docstring)."""
        tw = self.tot['w'][:, None].clamp(min=1e-12)
        mean = self.tot['z'] / tw
        var = (self.tot['zz'] / tw - mean * mean).sum(1)
        out = {}
        for f, acc in self.pair.items():
            pw = acc['w'][:, None].clamp(min=1e-12)
            ma, mb, mab = acc['a'] / pw, acc['b'] / pw, acc['ab'] / pw
            m = 0.5 * (ma + mb)
            cov = mab - m * ma - m * mb + m * m           # mean (a − m)(b − m)
            out[f] = cov.sum(1) / var.clamp(min=1e-30)
        return out


def kowal_dims(s_dynamic: float, s_static: float, dim: int) -> dict[str, Any]:
    """The authors' split of ``dim`` dimensions: softmax over ``[s_dyn, s_stat, 1]``, ⌊·D⌋ for the
    two factors, the residual gets the rest. Returns ``share`` (fractions) and ``dims`` (ints)."""
    s = torch.tensor([s_dynamic, s_static, 1.0], dtype=torch.float64)
    share = torch.softmax(s, 0)
    dims = [int(math.floor(float(share[0]) * dim)), int(math.floor(float(share[1]) * dim))]
    dims.append(dim - sum(dims))
    return {'share': {'dynamic': float(share[0]), 'static': float(share[1]), 'residual': float(share[2])},
            'dims': {'dynamic': dims[0], 'static': dims[1], 'residual': dims[2]}}


def _percentile(v: torch.Tensor) -> list[float]:
    v = v[torch.isfinite(v)]
    if len(v) < 2:
        return [float('nan'), float('nan')]
    return torch.quantile(v, torch.tensor([0.025, 0.975], dtype=v.dtype)).tolist()


def summarize_kowal(acc: KowalAccumulator, classes_acc: dict[str, KowalAccumulator], split: str, n: int,
                    layer: str, dynamic_pairs: str, **extra: Any) -> dict[str, Any]:
    """The representation result: ``value`` = dynamic share of the dimensions (%), with the
    static share, the dims, ``s_dynamic`` / ``s_static`` and their bootstrap CIs; per class
    the same figures from the class's own videos (no CI)."""
    s = acc.scores()
    share = torch.stack([torch.softmax(torch.stack([d, st, torch.ones_like(d)]), 0)
                         for d, st in zip(s['dynamic'], s['static'])])       # R × 3
    est = kowal_dims(float(s['dynamic'][0]), float(s['static'][0]), acc.dim)
    boot = slice(1, None)
    per_class = {}
    for c, ca in classes_acc.items():
        sc = ca.scores()
        k = kowal_dims(float(sc['dynamic'][0]), float(sc['static'][0]), ca.dim)
        per_class[c] = {'n': int(ca.pair['dynamic']['w'][0]), 'dynamic': 100 * k['share']['dynamic'],
                        'static': 100 * k['share']['static'], 's_dynamic': float(sc['dynamic'][0]),
                        's_static': float(sc['static'][0])}
    return result(100 * est['share']['dynamic'], [100 * b for b in _percentile(share[boot, 0])], split=split, n=n,
                  per_class=per_class, unit='%', headline='dynamic share of the dimensions',
                  static={'value': 100 * est['share']['static'], 'ci95': [100 * b for b in _percentile(share[boot, 1])]},
                  residual=100 * est['share']['residual'], dims=est['dims'], dim=acc.dim,
                  s_dynamic={'value': float(s['dynamic'][0]), 'ci95': _percentile(s['dynamic'][boot])},
                  s_static={'value': float(s['static'][0]), 'ci95': _percentile(s['static'][boot])},
                  layer=layer, dynamic_pairs=dynamic_pairs, **extra)


@torch.no_grad()
def representation(model: nn.Module, loader: DataLoader, device: torch.device, *, layer: str = 'pool',
                   split: str = 'test', seed: int = 0, appearance: Optional[str] = None,
                   mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                   n_boot: int = 1000) -> dict[str, Any]:
    """Static / dynamic dimensions of ``model``'s feature ``layer`` on ``loader``'s split.

    Args:
        layer: ``pool`` (default) or a named sub-module (:func:`feature_layers`).
        appearance: the appearance change of the dynamic pairs off SceneMotion (``grayscale``,
            ``channel_swap``); on SceneMotion ``None`` (the default) re-renders the scene.
        mean, std: the normalisation of the clips (the config's ``dataset.transform.normalize``),
            for the appearance change.
        seed: seeds the shuffles, the other scenes and the bootstrap weights.
    Returns:
        see :func:`summarize_kowal`; ``dynamic_pairs`` says how the dynamic pairs were made
        and ``approximation`` whether they are one.
    """
    check_layer(model, layer)
    classes = class_names(loader)
    params = scenemotion_source(loader.dataset) if appearance is None else None
    if params is None and appearance is None:
        appearance = 'grayscale'
    if appearance is not None and appearance not in APPEARANCE_CHANGES:
        raise ValueError(f'unknown appearance change {appearance!r}; use one of {sorted(APPEARANCE_CHANGES)}')
    workdir = tempfile.mkdtemp(prefix='scene_swap_') if params is not None else None
    if params is not None:
        loader = DataLoader(SceneSwapPairs(loader.dataset, params, workdir, seed), batch_size=loader.batch_size,
                            sampler=loader.sampler, num_workers=loader.num_workers, collate_fn=pair_collate,
                            pin_memory=loader.pin_memory, multiprocessing_context=loader.multiprocessing_context)
    tap, mode = FeatureTap(model, layer), model_eval(model)
    skipped, acc, per_class, labels = Skipped(), None, {}, []
    try:
        for batch in batches(loader, device, 'representation', skipped):
            x = batch['video']
            idx = batch['index'].cpu()
            alt = batch['video_alt'] if params is not None else APPEARANCE_CHANGES[appearance](x, mean, std)
            z, z_shuf, z_alt = (f.cpu() for f in batched(tap, [x, shuffled(x, idx, seed), alt]))
            if acc is None:
                acc = KowalAccumulator(n_boot + 1, z.shape[1], seed)
            w = acc.weights(idx)
            acc.update(w, {'dynamic': (z, z_alt), 'static': (z, z_shuf)})
            y = batch['label'].cpu()
            labels.append(y)
            for c in y.unique().tolist():
                m = y == c
                ca = per_class.setdefault(classes[c], KowalAccumulator(1, z.shape[1], seed))
                ca.update(w[:1, m], {'dynamic': (z[m], z_alt[m]), 'static': (z[m], z_shuf[m])})
    finally:
        tap.close()
        model.train(mode)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    if acc is None:
        raise ValueError('no decodable video in the split')
    y = torch.cat(labels)
    check_classes(y, classes, 'representation')
    per_class = {c: per_class[c] for c in classes if c in per_class}
    how = ('SceneMotion: the same object and trajectory rendered over another scene' if params is not None
           else f'{appearance} copy of the clip (an approximation of "same motion, another appearance")')
    return summarize_kowal(acc, per_class, split, len(y), layer, how, approximation=params is None,
                           **skipped.report())
