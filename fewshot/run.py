"""The few-shot run of ``main-fsl.py``: optional supervised training on the base classes, then
episodes on the novel classes.

With a ``dataset.args.base`` split (and an ``optimizer``) the encoder is first trained on it (the
engine and :class:`supervised.step.ClassifierStep`, as in ``main.py``); then all episodes are drawn
from the ``novel`` split, the videos they use are encoded once (:mod:`fewshot.features`), and every
episode's ``model_fs`` head (:mod:`fewshot.heads`) is fitted and scored, all together
(:mod:`fewshot.fit`). Writes ``episodes.csv`` (per-episode accuracy) and ``results.json``
(``Acc@1``, ``ci95``, ``episodes``) in the run folder.
"""
import csv
import logging
import os
import time

import torch

from core.config import check_overrides_prefixes, load_config
from core.errors import UserError
from datasets import build_dataset
from datasets.episodes import EpisodeSampler
from debias import build_method
from engine.build import build_run, default_workers
from engine.checkpoint import save_json, unwrap
from engine.runner import apply_batch_flags, default_output_dir
from supervised.build import build_classifier_step

from .features import cache_key, cached_features
from .fit import evaluate_episodes, summarize_accuracies
from .heads import build_fewshot_model

log = logging.getLogger('drl')


def train_on_base(run, args):
    """Supervised training on the ``base`` split; returns the checkpoint the features come from."""
    run.engine.resume(enabled=not args.no_resume)
    run.engine.fit(run.loaders['base'])
    return run.engine.ckpt_path


def evaluate_novel(cfg, model, head, ctx, args, checkpoint):
    """Draw the episodes, encode their videos once, fit and score all heads; returns results."""
    d, fs = cfg['dataset'], cfg['fewshot']
    seed = fs['seed'] if fs['seed'] is not None else ctx.seed
    novel = build_dataset(cfg, 'novel', seed=ctx.seed)
    n_batch = min(d['n_batch'], 10) if args.debug else d['n_batch']
    try:
        sampler = EpisodeSampler(novel.labels, d['n_way'], d['n_shot'], d['n_query'], n_batch,
                                 d['ep_per_batch'], seed=seed, min_videos=d['min_videos'])
    except ValueError as e:   # too few classes / videos for the episode shape: a config problem
        raise UserError(f'novel split: {e}') from None
    episodes = sampler.draw()
    used = episodes.unique_indices()
    log.info('novel: %d videos, %d classes (%d with >= %d videos); %d episodes use %d videos',
             len(novel), len(novel.classes), len(sampler.class_ids), sampler.min_videos,
             len(episodes), len(used))

    t0 = time.time()
    key = cache_key(cfg, checkpoint, ctx.seed)
    cache = os.path.join(fs['cache_dir'] or os.path.join(ctx.out_dir, 'feature_cache'),
                         f'{key}.pt') if fs['cache'] else None
    feats, n_new = cached_features(model, novel, used, cache, key, device=ctx.device,
                                   batch_size=fs['batch_size'],
                                   num_workers=default_workers(cfg, args), print_freq=args.print_freq)
    rows = torch.full((len(novel),), -1, dtype=torch.long)
    rows[used] = torch.arange(len(used))
    t_enc = time.time() - t0

    head = head.to(ctx.device)
    g = torch.Generator().manual_seed(seed + 1)
    t0 = time.time()
    with torch.no_grad():
        acc = evaluate_episodes(head, feats, episodes.support, episodes.query, rows,
                                chunk=fs['chunk'], generator=g, device=ctx.device)
    t_fit = time.time() - t0
    log.info('features: %d videos (%d encoded now) in %.1f s; %d episodes fitted in %.1f s (%.1f episodes/s)',
             len(used), n_new, t_enc, len(episodes), t_fit, len(episodes) / max(t_fit, 1e-9))
    if ctx.is_main:
        write_episodes_csv(os.path.join(ctx.out_dir, 'episodes.csv'), acc, episodes, novel.classes)
    results = summarize_accuracies(acc)
    results.update({'n_way': sampler.n_way, 'n_shot': sampler.n_shot, 'n_query': sampler.n_query,
                    'model_fs': cfg['model_fs']['name'], 'videos_encoded': len(used)})
    return results


def write_episodes_csv(path, acc, episodes, class_names):
    """One row per episode: accuracy (%) and its classes."""
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['episode', 'Acc@1', 'classes'])
        for i, (a, cls) in enumerate(zip(acc.tolist(), episodes.classes.tolist())):
            w.writerow([i, f'{a:.4f}', ' '.join(class_names[c] for c in cls)])


def check_fewshot_config(cfg, path, evaluate_only):
    """The keys a few-shot run cannot do without, checked before any work; returns the head."""
    splits = cfg['dataset'].get('args') or {}
    if splits.get('base') is not None and 'optimizer' not in cfg and not evaluate_only:
        raise UserError(f'{path}: dataset.args.base means training on the base split first, '
                        'but there is no optimizer block: add one, or pass -e to only evaluate')
    if splits.get('novel') is None:
        raise UserError(f'{path}: a few-shot config needs dataset.args.novel (clip settings of the novel split)')
    try:   # a wrong head name or argument is a config error: report it before encoding anything
        return build_fewshot_model(cfg.get('model_fs'))
    except (ValueError, TypeError, KeyError) as e:
        raise UserError(f'{path}: model_fs: {e}') from None


def main(args):
    """``main-fsl.py``: config -> (base training) -> novel episodes -> ``results.json``."""
    check_overrides_prefixes(args.overrides, allow_sp=False)
    cfg = apply_batch_flags(load_config(args.config, args.overrides), args)
    head = check_fewshot_config(cfg, args.config, args.evaluate)
    out_dir = args.output_dir or default_output_dir(args.config, args.pretrain, args.debug)
    pretrain = args.pretrain or cfg['model']['pretrain']
    # train on the base classes first only when the config has a base split
    train = (cfg['dataset'].get('args') or {}).get('base') is not None and not args.evaluate

    def make_step(ctx, data):
        classes = data['base'].classes if 'base' in data else None
        return build_classifier_step(cfg, ctx, args, classes=classes, pretrain=pretrain, trainable=train,
                                     method=build_method(cfg) if train else None)

    run = build_run(args, cfg, out_dir, make_step, splits=['base'] if train else [],
                    train_cfg=cfg['optimizer'] if train else None, eval_period=cfg['eval_period'])
    ctx = run.ctx
    checkpoint = train_on_base(run, args) if train else pretrain
    # every rank encodes its share of the videos; the (cheap, deterministic) fits then run on
    # the gathered features and rank 0 writes the results
    results = evaluate_novel(cfg, unwrap(run.step.model), head, ctx, args, checkpoint)
    log.info('few-shot %d-way %d-shot: Acc@1 %.2f ± %.2f (95%% CI, %d episodes)', results['n_way'],
             results['n_shot'], results['Acc@1'], results['ci95'], results['episodes'])
    if ctx.is_main:
        save_json(results, os.path.join(out_dir, 'results.json'))

