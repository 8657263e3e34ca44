"""The static-bias card: every measure of one model, with CIs, per class, in one document.

:func:`run_card` builds the split's loader and the model (from the config and a checkpoint),
runs the requested measures (:data:`MEASURES`) and returns the card (a plain dict, the JSON
schema of docs/bias-card.md); :func:`write_card` writes ``bias_card.json``, ``bias_card.md``
and ``bias_card.png``. ``tools/bias_card.py`` is the command line.
"""
from __future__ import annotations

import copy
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch.nn as nn

from core.config_schema import IMAGENET_MEAN, IMAGENET_STD
from core.errors import UserError
from engine.build import build_loader, prepare_model
from engine.checkpoint import load_checkpoint, load_pretrained, unwrap

from .conflict import scene_conflict
from .representation import UnknownLayer, check_layer, representation
from .temporality import temporality

log = logging.getLogger('drl')

MEASURES = ('dynamic', 'temporality', 'conflict', 'representation')
SCHEMA = 'bias_card/1'
# what each measure's headline means, in the card's words
HEADLINES = {
    'dynamic': 'dynamic score: share of decisions a frame-wise mimic cannot reproduce',
    'temporality': 'contrasted accuracy: right on the clip, wrong on its frozen copy (mean over frames)',
    'conflict': "scene conflict: the clip's label beats the blended frame's label",
    'representation': 'dynamic share of the feature dimensions (Kowal et al.)',
}


def eval_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``cfg`` whose clips leave the workers finished (``device_augment`` off): the
    measures build their views from normalised clips."""
    cfg = copy.deepcopy(dict(cfg))
    transform = cfg['dataset'].get('transform')
    if transform and transform.get('device_augment'):
        log.info('bias card: dataset.transform.device_augment off (the views need finished clips)')
        transform['device_augment'] = False
    return cfg


def build_split(cfg: Mapping[str, Any], split: str, ctx: Any, workers: int = 0):
    """The evaluation dataset and its loader; a split with fewer than 2 classes is refused."""
    from datasets import build_dataset
    args = cfg['dataset'].get('args') or {}
    if split not in args:
        raise UserError(f'--split {split}: the config has no such split (dataset.args has: {", ".join(args)})')
    data = build_dataset(cfg, split, seed=ctx.seed)
    present = sorted(set(data.labels))
    if len(present) < 2:
        names = ', '.join(data.classes[i] for i in present) or 'no videos'
        raise UserError(f'--split {split}: the split has videos of {len(present)} class(es) ({names}); '
                        'the bias card needs at least 2')
    return data, build_loader(data, cfg, ctx, train=False, workers=workers)


def build_scored_model(cfg: Mapping[str, Any], pretrain: str, ctx: Any, args: Any = None) -> nn.Module:
    """The model of ``cfg`` with the weights (classifier included) of ``pretrain``, in eval mode
    on the device; a checkpoint that does not fit the config is a one-line ``CheckpointError``."""
    from models import build_model
    try:
        model = build_model(cfg['model'])
    except (TypeError, ValueError) as e:
        raise UserError(f"model {cfg['model'].get('name')!r}: {e}") from None
    load_pretrained(model, pretrain, copy_head=True)
    model = prepare_model(model, cfg['model'], ctx, args, trainable=False)
    model.eval()
    return model


def reference_config(path: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The config of a static reference checkpoint: ``cfg`` with the model block the checkpoint
    recorded (a checkpoint of this project); the data stays the card's."""
    ckpt = load_checkpoint(path, mmap=True)
    recorded = ckpt.get('config') if isinstance(ckpt, dict) else None
    if not isinstance(recorded, dict) or 'model' not in recorded:
        raise UserError(f'--static-reference {path}: the checkpoint records no config (a run of this '
                        "project's main.py is needed, e.g. a resnet2d trained on the same data)")
    out = copy.deepcopy(dict(cfg))
    out['model'] = copy.deepcopy(recorded['model'])
    return out


def tubelet_size(model: nn.Module) -> int:
    """Frames per input token of the model (``tubelet_size`` of the unwrapped model, else 1)."""
    t = getattr(unwrap(model), 'tubelet_size', 1)
    if isinstance(t, (tuple, list)):
        t = t[0]
    return int(t or 1)


def notes_for(model: nn.Module, doc: Mapping[str, Any]) -> list[str]:
    """Caveats printed beside the measures (tubelets, approximations, skipped videos)."""
    notes = []
    tubelet = tubelet_size(model)
    if tubelet > 1:
        notes.append(f'† the model embeds {tubelet}-frame tubelets: shuffling (shuffled accuracy, the static pairs '
                     'of the representation measure) also mixes frames within a token, not only their order')
    dyn = doc['measures'].get('dynamic')
    if dyn and dyn.get('recipe_overrides'):
        over = ', '.join(f'{k}={v}' for k, v in sorted(dyn['recipe_overrides'].items()))
        notes.append(f'dynamic: the mimic recipe differs from the calibrated one ({over}); its floor is that '
                     "recipe's, not the calibrated one's")
    rep = doc['measures'].get('representation')
    if rep and rep.get('approximation'):
        notes.append(f"representation: dynamic pairs are a {rep['dynamic_pairs']}")
    for name, m in doc['measures'].items():
        if m.get('skipped'):
            notes.append(f"{name}: {m['skipped']} undecodable video(s) skipped, e.g. {m['skipped_files'][0]}")
    return notes


def _dynamic(model: nn.Module, cfg: Mapping[str, Any], ctx: Any, *, workers: int, mimic_seeds: int,
             static_reference: Optional[str], recipe: Optional[Mapping[str, Any]], args: Any,
             stream: Optional[bool] = None) -> dict[str, Any]:
    """The dynamic score (:func:`measure.dynamic.dynamic_score`), with the static reference's
    score as its floor when a reference checkpoint is given; ``stream``: its ``stream``."""
    from .dynamic import dynamic_score
    ref = None
    if static_reference:
        ref = build_scored_model(reference_config(static_reference, cfg), static_reference, ctx, args)
    r = dynamic_score(model, cfg, device=ctx.device, mimic_seeds=mimic_seeds, seed=ctx.seed, static_reference=ref,
                      workers=workers, progress=sys.stderr.isatty(), log=log, recipe=recipe, stream=stream)
    r.setdefault('unit', 'score')
    from .mimic import default_recipe
    base = default_recipe(cfg).as_dict()
    over = {k: v for k, v in r['recipe'].items() if base.get(k) != v}
    if over:   # the fields the run changed (--mimic-recipe, --mimic-epochs), as applied
        r['recipe_overrides'] = over
    if static_reference:
        r['floor_checkpoint'] = static_reference
    return r


def _measure(name: str, model: nn.Module, loader: Any, cfg: Mapping[str, Any], ctx: Any, *, split: str,
             workers: int, feature_layer: str, blend: float, mimic_seeds: int, static_reference: Optional[str],
             mimic_recipe: Optional[Mapping[str, Any]], n_boot: int, args: Any,
             mimic_stream: Optional[bool] = None) -> dict[str, Any]:
    """One measure's result dict."""
    if name == 'temporality':
        return temporality(model, loader, ctx.device, split=split, seed=ctx.seed, n_boot=n_boot)
    if name == 'conflict':
        return scene_conflict(model, loader, ctx.device, weight=float(blend), split=split, seed=ctx.seed,
                              n_boot=n_boot)
    if name == 'representation':
        norm = (cfg['dataset'].get('transform') or {}).get('normalize') or {}
        return representation(model, loader, ctx.device, layer=feature_layer, split=split, seed=ctx.seed,
                              mean=norm.get('mean', IMAGENET_MEAN),
                              std=norm.get('std', IMAGENET_STD), n_boot=n_boot)
    return _dynamic(model, cfg, ctx, workers=workers, mimic_seeds=int(mimic_seeds),
                    static_reference=static_reference, recipe=mimic_recipe, args=args, stream=mimic_stream)


def run_card(cfg: Mapping[str, Any], ctx: Any, pretrain: str, *, measures: Sequence[str] = MEASURES,
             split: str = 'test', workers: int = 0, feature_layer: str = 'pool', blend: float = 0.5,
             mimic_seeds: int = 1, static_reference: Optional[str] = None,
             mimic_recipe: Optional[Mapping[str, Any]] = None, n_boot: int = 1000, args: Any = None,
             config_path: Optional[str] = None, mimic_stream: Optional[bool] = None) -> dict[str, Any]:
    """Every requested measure of the model ``cfg`` + ``pretrain`` (see the module docstring).

    Args:
        cfg: resolved config (data and model); ctx: :class:`engine.runner.RunContext` (device,
            seed, distributed info).
        measures: names from :data:`MEASURES`; split: key of ``dataset.args`` for the
            accuracy-based and representation measures.
        feature_layer: of the representation measure; blend: still-frame weight of the scene
            conflict; mimic_seeds, static_reference: of the dynamic score.
        mimic_recipe: fields of :class:`measure.mimic.MimicRecipe` that differ from the default.
        mimic_stream: the dynamic score's ``stream`` (``None``: automatic, ``True``: stream the
            splits, ``False``: frame banks in memory).
    Returns:
        the card (docs/bias-card.md, "JSON schema").
    """
    unknown = [m for m in measures if m not in MEASURES]
    if unknown:
        raise UserError(f'unknown measure(s) {", ".join(unknown)}; choose from {", ".join(MEASURES)}')
    if not 0.0 < float(blend) < 1.0:
        raise UserError(f'--blend {blend}: the blend weight must be in (0, 1)')
    if int(mimic_seeds) < 1:
        raise UserError(f'--mimic-seeds {mimic_seeds}: the dynamic score needs at least 1 mimic seed')
    if ctx.dist.enabled:
        raise UserError('the bias card runs in one process (start it without torchrun)')
    cfg = eval_config(cfg)
    model = build_scored_model(cfg, pretrain, ctx, args)
    if 'representation' in measures:
        try:
            check_layer(model, feature_layer)
        except UnknownLayer as e:
            raise UserError(f'--feature-layer: {e}') from None
    data, loader = build_split(cfg, split, ctx, workers)
    doc: dict[str, Any] = {
        'schema': SCHEMA, 'checkpoint': pretrain, 'config': config_path, 'model': cfg['model']['name'],
        'dataset': cfg['dataset']['name'], 'subset': cfg['dataset'].get('subset'), 'split': split,
        'n_videos': len(data), 'classes': list(data.classes), 'device': str(ctx.device), 'seed': ctx.seed,
        'tubelet_size': tubelet_size(model), 'measures': {}, 'seconds': {},
    }
    for name in measures:
        start = time.perf_counter()
        log.info('bias card: %s', name)
        try:
            r = _measure(name, model, loader, cfg, ctx, split=split, workers=workers, feature_layer=feature_layer,
                         blend=blend, mimic_seeds=mimic_seeds, static_reference=static_reference,
                         mimic_recipe=mimic_recipe, n_boot=n_boot, args=args, mimic_stream=mimic_stream)
        except ValueError as e:
            raise UserError(f'{name}: {e}') from None
        r.setdefault('headline', HEADLINES[name])
        doc['measures'][name] = r
        doc['seconds'][name] = round(time.perf_counter() - start, 2)
        log.info('bias card: %s = %.3f %s (%.1f s)', name, r['value'], r.get('unit', ''), doc['seconds'][name])
    doc['per_class'] = per_class_table(doc)
    doc['skipped'] = {name: m.get('skipped', 0) for name, m in doc['measures'].items()}
    doc['notes'] = notes_for(model, doc)
    return doc


# the per-class table: (measure, entry of its per_class rows, column title)
PER_CLASS_COLUMNS = (
    ('temporality', 'normal', 'Acc normal'), ('temporality', 'frozen_mean', 'Acc frozen'),
    ('temporality', 'shuffled', 'Acc shuffled'), ('temporality', 'reversed', 'Acc reversed'),
    ('temporality', 'contrasted', 'contrasted'), ('conflict', 'clip_wins', 'clip wins'),
    ('conflict', 'acc_frame', 'Acc frame'), ('representation', 'dynamic', 'dyn dims'),
    ('representation', 'static', 'stat dims'), ('dynamic', None, 'dynamic score'),
)


def per_class_table(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{class: {'<measure>.<entry>': value}}`` over every measure's ``per_class`` rows."""
    table: dict[str, dict[str, Any]] = {c: {} for c in doc['classes']}
    for name, m in doc['measures'].items():
        for c, row in (m.get('per_class') or {}).items():
            if c not in table:
                continue
            if isinstance(row, Mapping):
                table[c].update({f'{name}.{k}': v for k, v in row.items() if k != 'n'})
                table[c].setdefault('n', row.get('n'))
            else:
                table[c][name] = row
    return {c: row for c, row in table.items() if row}
