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


def score_one(cfg_path, ckpt, args, reference=None):
    cfg, model = load_model(cfg_path, ckpt)
    ref = load_model(*reference)[1] if reference else None
    t0 = time.perf_counter()
    r = dynamic_score(model, cfg, device=args.device, mimic_seeds=args.mimic_seeds, seed=args.seed,
                      static_reference=ref, workers=args.workers, progress=False,
                      recipe=parse_recipe(args.recipe, cfg))
    r['wall_s'] = time.perf_counter() - t0
    r['checkpoint'], r['config'] = ckpt, cfg_path
    print(f'{ckpt}: dynamic score {r["value"]:.4f} CI95(videos) {fmt_ci(r["ci95"])} '
          f'CI95(mimic seeds) {fmt_ci(r["ci95_mimic"])} sd(mimic) '
          f'{"—" if r["sd_mimic"] is None else format(r["sd_mimic"], ".4f")} | per seed '
          f'{" ".join(f"{v:.4f}" for v in r["per_seed"])} | Acc@1 {r["Acc@1"]:.1f} mimic {r["Acc@1_mimic"]:.1f} '
          f'| mimic agreement on its pool {r["agreement_train"]:.4f} | {r["wall_s"]:.0f} s'
          + (f' | floor {r["floor"]:.4f}' if 'floor' in r else ''), flush=True)
    return r


def table(args):
    rows = {}
    for family in ('res2d18', 'res3d18-bias0'):
        for s in args.seeds:
            ckpt = os.path.join(args.runs, f'{family}-s{s}', 'checkpoint.pth.tar')
            if not os.path.exists(ckpt):
                print(f'missing {ckpt}: skipped')
                continue
            rows[(family, s)] = score_one(FAMILY_CFG[family], ckpt, args)
    print(f'\nCPU: {cpu_model()}; torch threads {torch.get_num_threads()}')
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
    p.add_argument('--device', default='cpu')
    p.add_argument('-j', '--workers', type=int, default=0)
    p.add_argument('--json', default=None, help='write every result here')
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = {}
    if args.table:
        out.update(table(args))
    for cfg_path, ckpt in args.model:
        r = score_one(cfg_path, ckpt, args, args.static_reference)
        out[ckpt] = r
        if r['sd_mimic'] is not None:
            print(f'repeatability over {len(r["per_seed"])} mimic seeds: mean {r["value"]:.4f}, '
                  f'sd {r["sd_mimic"]:.4f}, 95 % t CI {fmt_ci(r["ci95_mimic"])}')
    if not args.table:
        print(f'CPU: {cpu_model()}; torch threads {torch.get_num_threads()}')
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump({'cpu': cpu_model(), 'argv': sys.argv, 'results': out}, f, indent=1)


if __name__ == '__main__':
    main()
