"""Calibrate the dynamic score (issue 25, 1a): score trained checkpoints with the mimic recipe and
print the figures of docs/results/dynamic-score-calibration.md.

    # one or more models, each as CONFIG CHECKPOINT (SceneMotion: the transfer configs)
    python tools/calibrate_dynamic.py \
        --model configs/scenemotion-transfer/res2d18.yaml runs/calib/res2d18-s3/checkpoint.pth.tar \
        [--mimic-seeds N] [--seed S] [--recipe KEY=VALUE ...] [--json OUT]
    # the calibration table: resnet2d and bias-0 of several study seeds, range and CIs
    python tools/calibrate_dynamic.py --table --runs runs/calib --seeds 0 1 2 [--json OUT]

``--recipe`` overrides fields of :class:`measure.mimic.MimicRecipe` (e.g. ``epochs=20``,
``loss=mse``, ``model.args.widen_factor=0.5``). Every figure is printed with its bootstrap CI
over videos and, with several mimic seeds, the Student-t CI over mimic seeds.
"""
import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time

import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.config import load_config  # noqa: E402
from engine.checkpoint import load_pretrained  # noqa: E402
from measure.dynamic import dynamic_score  # noqa: E402
from measure.mimic import default_recipe  # noqa: E402
from measure.stats import mean_ci  # noqa: E402
from models import build_model  # noqa: E402

FAMILY_CFG = {'res2d18': 'configs/scenemotion-transfer/res2d18.yaml',
              'res3d18-bias0': 'configs/scenemotion-transfer/res3d18.yaml',
              'res3d18': 'configs/scenemotion-transfer/res3d18.yaml'}


def cpu_model():
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        return next(line.split(':', 1)[1].strip() for line in out.splitlines() if line.startswith('Model name'))
    except (OSError, StopIteration):
        return platform.processor() or 'unknown'


def memo_banks():
    """Decode each split once per process (the search scores many recipes on the same data)."""
    from measure import mimic
    load, memo = mimic.load_bank, {}

    def cached(cfg, spec, **kw):
        key = (json.dumps(cfg['dataset'], sort_keys=True, default=str), tuple(spec))
        if key not in memo:
            memo[key] = load(cfg, spec, **kw)
        return memo[key]
    mimic.load_bank = cached


def parse_recipe(items, cfg):
    r = default_recipe(cfg).as_dict()
    for item in items or []:
        key, _, value = item.partition('=')
        target, parts = r, key.split('.')
        for p in parts[:-1]:
            target = target.setdefault(p, {})
        target[parts[-1]] = yaml.safe_load(value)
    return r


def load_model(cfg_path, ckpt):
    cfg = load_config(cfg_path)
    model = build_model(cfg['model'])
    load_pretrained(model, ckpt, copy_head=True)
    return cfg, model.eval()


def fmt_ci(ci):
    return '—' if ci is None else f'[{ci[0]:.3f}, {ci[1]:.3f}]'


def score_one(cfg_path, ckpt, args, reference=None, recipe=None):
    cfg, model = load_model(cfg_path, ckpt)
    ref = load_model(*reference)[1] if reference else None
    t0 = time.perf_counter()
    r = dynamic_score(model, cfg, device=args.device, mimic_seeds=args.mimic_seeds, seed=args.seed,
                      static_reference=ref, workers=args.workers, progress=False,
                      recipe=parse_recipe(args.recipe if recipe is None else recipe, cfg))
    r['wall_s'] = time.perf_counter() - t0
    r['checkpoint'], r['config'] = ckpt, cfg_path
    if recipe is not None:
        print(f'recipe {" ".join(recipe) or "(default)"}:', end=' ')
    print(f'{ckpt}: dynamic score {r["value"]:.4f} CI95(videos) {fmt_ci(r["ci95"])} '
          f'CI95(mimic seeds) {fmt_ci(r["ci95_mimic"])} sd(mimic) '
          f'{"—" if r["sd_mimic"] is None else format(r["sd_mimic"], ".4f")} | per seed '
          f'{" ".join(f"{v:.4f}" for v in r["per_seed"])} | Acc@1 {r["Acc@1"]:.1f} mimic {r["Acc@1_mimic"]:.1f} '
          f'| mimic agreement on its pool {r["agreement_train"]:.4f} | {r["wall_s"]:.0f} s wall, {r.get("cpu_s", float("nan")):.0f} s CPU'
          + (f' | floor {r["floor"]:.4f}' if 'floor' in r else ''), flush=True)
    if 'by_margin' in r:
        print('  by the model\'s top-1 − top-2 logit: ' + ', '.join(
            f'{k}: {b["n"]} videos, score {b["score"]:.3f}' for k, b in r['by_margin'].items()), flush=True)
    return r


def curve(cfg_path, ckpt, args, items):
    """One mimic per model and recipe, its score on the scored split after every epoch (and the
    seconds spent training, evaluation excluded)."""
    from measure import mimic as M
    cfg, model = load_model(cfg_path, ckpt)
    recipe = M.MimicRecipe.from_dict(parse_recipe(items, cfg))
    scored, train = M.scoring_splits(cfg, recipe.pool)
    test, pool = M.load_bank(cfg, scored), [M.load_bank(cfg, s) for s in train]
    t0 = time.perf_counter()
    o = M.predict(model, test, device=args.device)
    cached = [M.predict(model, b, device=args.device) for b in pool]
    t_teacher = time.perf_counter() - t0
    clock = {'start': time.perf_counter(), 'eval': 0.0}
    rows = []

    def on_epoch(epoch, g):
        e0 = time.perf_counter()
        score = 1 - (M.predict(g, test, device=args.device).argmax(1) == o.argmax(1)).float().mean().item()
        tr = (M.predict(g, pool[0], device=args.device).argmax(1) == cached[0].argmax(1)).float().mean().item()
        clock['eval'] += time.perf_counter() - e0
        train_s = time.perf_counter() - clock['start'] - clock['eval']
        rows.append((epoch, train_s, score, tr))
        print(f'  {" ".join(items) or "(default)"} | {os.path.basename(os.path.dirname(ckpt))} epoch {epoch}: '
              f'score {score:.4f}, agreement on {pool[0].name} {tr:.4f}, training {train_s:.0f} s '
              f'(teacher logits {t_teacher:.0f} s)', flush=True)
    M.train_mimic(model, pool, recipe, seed=args.seed, device=args.device, n_class=o.shape[1], cached=cached,
                  on_epoch=on_epoch)
    return rows


def table(args, done=None):
    """Score (or, with ``done``: read from earlier ``--json`` files) ``<runs>/<family>-s<seed>``
    for both controls and print the calibration table, the range and whether the CIs are apart."""
    rows = {}
    for family in ('res2d18', 'res3d18-bias0'):
        for s in args.seeds:
            ckpt = os.path.join(args.runs, f'{family}-s{s}', 'checkpoint.pth.tar')
            if done is not None:
                hits = [r for r in done if os.path.abspath(r['checkpoint']) == os.path.abspath(ckpt)]
                if hits:
                    rows[(family, s)] = hits[0]
                else:
                    print(f'no result for {ckpt} in the --summarize files')
                continue
            if not os.path.exists(ckpt):
                print(f'missing {ckpt}: skipped')
                continue
            rows[(family, s)] = score_one(FAMILY_CFG[family], ckpt, args)
    print(f'\nCPU: {cpu_model()}; torch threads {torch.get_num_threads()}')
    for r in rows.values():
        if r.get('sd_mimic') is not None:
            print(f'{r["checkpoint"]}: {len(r["per_seed"])} mimic seeds, mean {r["value"]:.4f}, sd {r["sd_mimic"]:.4f}, '
                  f'95 % t CI {fmt_ci(r["ci95_mimic"])} (the table gives the mean over these seeds)')
    print('| model | study seed | dynamic score | 95 % CI (videos) | 95 % CI (mimic seeds) | Acc@1 | mimic train agreement | s |')
    print('|---|---|---|---|---|---|---|---|')
    for (family, s), r in rows.items():
        print(f'| {family} | {s} | {r["value"]:.3f} | {fmt_ci(r["ci95"])} | {fmt_ci(r["ci95_mimic"])} | '
              f'{r["Acc@1"]:.1f} | {r["agreement_train"]:.3f} | {r["wall_s"]:.0f} |')
    fam = {f: [r['value'] for (g, _), r in rows.items() if g == f] for f in ('res2d18', 'res3d18-bias0')}
    for f, v in fam.items():
        if v:
            m, sd, hw = mean_ci(v)
            print(f'{f}: mean over study seeds {m:.3f}' + ('' if hw is None else f' ± {hw:.3f} (95 % t, sd {sd:.3f})')
                  + f'; max {max(v):.3f}')
    paired = [rows[('res3d18-bias0', s)]['value'] - rows[('res2d18', s)]['value'] for s in args.seeds
              if ('res3d18-bias0', s) in rows and ('res2d18', s) in rows]
    if paired:
        m, sd, hw = mean_ci(paired)
        print(f'range bias0 − resnet2d, paired over study seeds: {m:.3f}' + ('' if hw is None else f' ± {hw:.3f}'))
        for s in args.seeds:
            if ('res3d18-bias0', s) in rows and ('res2d18', s) in rows:
                a, b = rows[('res2d18', s)]['ci95'], rows[('res3d18-bias0', s)]['ci95']
                print(f'  seed {s}: resnet2d CI {fmt_ci(a)} vs bias0 CI {fmt_ci(b)}: '
                      f'{"apart" if a[1] < b[0] else "OVERLAP"}')
    return {f'{f}-s{s}': r for (f, s), r in rows.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', nargs=2, action='append', metavar=('CONFIG', 'CHECKPOINT'), default=[])
    p.add_argument('--static-reference', nargs=2, metavar=('CONFIG', 'CHECKPOINT'), default=None)
    p.add_argument('--table', action='store_true', help='score <runs>/res2d18-sS and res3d18-bias0-sS')
    p.add_argument('--runs', default='runs/calib')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--mimic-seeds', type=int, default=1)
    p.add_argument('--seed', type=int, default=0, help='first mimic seed')
    p.add_argument('--recipe', nargs='*', default=[], help='MimicRecipe overrides KEY=VALUE')
    p.add_argument('--search', nargs='+', default=None, metavar='RECIPE',
                   help='score every --model with each of these recipes, each a comma-separated list of '
                        'KEY=VALUE overrides ("" for the default); the splits are decoded once')
    p.add_argument('--summarize', nargs='+', default=None, metavar='JSON',
                   help='with --table: read the results from these --json files instead of scoring')
    p.add_argument('--pool-seeds', nargs='+', default=None, metavar='JSON',
                   help='repeatability over the mimic seeds of several --json files (same checkpoint, '
                        'disjoint seeds)')
    p.add_argument('--curve', action='store_true', help='with --search: the score after every epoch')
    p.add_argument('--device', default='cpu')
    p.add_argument('-j', '--workers', type=int, default=0)
    p.add_argument('--json', default=None, help='write every result here')
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = {}
    if args.pool_seeds:
        seeds = {}
        for path in args.pool_seeds:
            for r in json.load(open(path))['results'].values():
                for s, v in zip(r['mimic_seeds'], r['per_seed']):
                    seeds.setdefault(r['checkpoint'], {})[s] = v
        for ckpt, by_seed in seeds.items():
            m, sd, hw = mean_ci(list(by_seed.values()))
            print(f'{ckpt}: {len(by_seed)} mimic seeds {sorted(by_seed)}: mean {m:.4f}, sd {sd:.4f}, '
                  f'95 % t CI [{m - hw:.3f}, {m + hw:.3f}]')
        return
    if args.table:
        done = None
        if args.summarize:
            done = [r for path in args.summarize for r in json.load(open(path))['results'].values()
                    if isinstance(r, dict)]
        out.update(table(args, done))
    if args.search is not None:
        memo_banks()
        for rec in args.search:
            items = [x for x in rec.split(',') if x]
            for cfg_path, ckpt in args.model:
                if args.curve:
                    out[f'{rec} | {ckpt}'] = curve(cfg_path, ckpt, args, items)
                else:
                    out[f'{rec} | {ckpt}'] = score_one(cfg_path, ckpt, args, recipe=items)
        args.model = []
    for cfg_path, ckpt in args.model:
        r = score_one(cfg_path, ckpt, args, args.static_reference)
        out[ckpt] = r
        if r['sd_mimic'] is not None:
            print(f'repeatability over {len(r["per_seed"])} mimic seeds: mean {r["value"]:.4f}, '
                  f'sd {r["sd_mimic"]:.4f}, 95 % t CI {fmt_ci(r["ci95_mimic"])}; of the sd, per-video coin '
                  f'flips {r["sd_mimic_videos"]:.4f}, shared between videos {r["sd_mimic_shared"]:.4f}')
    if not args.table:
        print(f'CPU: {cpu_model()}; torch threads {torch.get_num_threads()}')
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump({'cpu': cpu_model(), 'argv': sys.argv, 'results': out}, f, indent=1)


if __name__ == '__main__':
    main()
