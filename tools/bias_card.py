"""The static-bias card of a trained video model: how much it relies on scene versus motion.

    python tools/bias_card.py configs/scenemotion/res3d18.yaml --pretrain runs/card/r3d/model_best.pth.tar
    python tools/bias_card.py configs/k400/tv-r3d18.yaml --pretrain CKPT --measures temporality conflict

Measures (docs/bias-card.md): the dynamic score (a frame-wise mimic's failure to reproduce the
model), temporality (normal / frozen at every frame / shuffled / reversed clips, contrasted
accuracy), scene conflict (clips blended with a still frame of another class) and the
representation-level static / dynamic dimensions (Kowal et al.), each with a 95 % CI and per
class. Writes ``bias_card.json``, ``bias_card.md`` and ``bias_card.png`` into ``--output-dir``
(default ``<checkpoint folder>/bias_card_<split>``) and prints the markdown table.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.config import load_config, save_config  # noqa: E402
from core.errors import UserError  # noqa: E402
from engine.build import default_workers  # noqa: E402
from engine.runner import apply_batch_flags, run_entry, setup_run  # noqa: E402
from measure.card import MEASURES, run_card  # noqa: E402
from measure.report import markdown, write_card  # noqa: E402
from measure.stats import mean_ci, result  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('config', help='the config the checkpoint was trained with')
    p.add_argument('overrides', nargs='*', default=[], help='config overrides KEY=VALUE')
    p.add_argument('--pretrain', required=True, help='checkpoint to measure (its classifier is kept)')
    p.add_argument('--measures', nargs='+', default=list(MEASURES), choices=MEASURES, metavar='M',
                   help=f'measures to run, of: {" ".join(MEASURES)}')
    p.add_argument('--split', default='test', help='key of dataset.args for temporality, conflict and '
                   'representation (SceneMotion: test = pretrain-val)')
    p.add_argument('--mimic-seeds', type=int, default=1, help='dynamic score: train the mimic N times (≥ 1); '
                   'N ≥ 2 adds the mimic repeatability CI')
    p.add_argument('--static-reference', default=None, help='checkpoint of a frame-wise model of the same data '
                   "(a run of this project's main.py): its dynamic score is printed as the floor")
    p.add_argument('--feature-layer', default='pool', help='representation: pool (pooled clip features) or a '
                   'named module of the model (an unknown name lists them)')
    p.add_argument('--blend', type=float, default=0.5, help='scene conflict: weight of the still frame, in (0, 1)')
    p.add_argument('--output-dir', default=None, help='default: <checkpoint folder>/bias_card_<split>')
    p.add_argument('-j', '--workers', type=int, default=None, help='DataLoader workers')
    p.add_argument('-b', '--batch-size', type=int, default=None, help='batch size')
    p.add_argument('-p', '--print-freq', type=int, default=50, help='unused (progress bars on a terminal)')
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--gpu', type=int, default=None, help='GPU index')
    p.add_argument('--seed', type=int, default=None, help='seed of the views, pairings and bootstrap')
    # measurement only: never resumes or trains, whatever the output folder holds
    p.set_defaults(dist_url='env://', dist_backend=None, amp='off', debug=False, evaluate=True, no_resume=True)
    return p


def check_args(args):
    """The flags' own rules, before anything is built (each a one-line error)."""
    if not 0.0 < args.blend < 1.0:
        raise UserError(f'--blend {args.blend}: the blend weight must be in (0, 1)')
    if args.mimic_seeds < 1:
        raise UserError(f'--mimic-seeds {args.mimic_seeds}: the dynamic score needs at least 1 mimic seed')


def scoring_runs(out_dir, args):
    """The dynamic score through the scoring run (``main-drl.py CFG SCORING``, as tools/score.py),
    once per mimic seed: the card's path until ``measure.dynamic.dynamic_score`` exists.

    Returns ``fn(model, cfg, ctx, pretrain, mimic_seeds, split, workers) -> result dict``.
    """
    def run(model, cfg, ctx, *, pretrain, mimic_seeds, split, workers):
        scene = cfg['dataset']['name'] == 'scenemotion'
        scoring = os.path.join(ROOT, 'configs', 'scoring', 'scenemotion.yaml' if scene else 'res2d18.yaml')
        name = os.path.splitext(os.path.basename(pretrain))[0]
        folder = os.path.join(out_dir, 'dynamic', name)
        os.makedirs(folder, exist_ok=True)
        cfg_path = os.path.join(folder, 'config_scored.yaml')
        save_config(cfg, cfg_path)
        over = ['dataset.subset=transfer'] if scene else []  # docs/drl.md, "Where to score"
        docs = []
        for s in range(mimic_seeds):
            run_dir = os.path.join(folder, f'mimic_seed{s}')
            cmd = [sys.executable, os.path.join(ROOT, 'main-drl.py'), cfg_path, scoring, *over, '--pretrain',
                   os.path.abspath(pretrain), '--output-dir', run_dir, '--device', ctx.device.type,
                   '--seed', str(ctx.seed + s), '--no-resume']
            if args.workers is not None:
                cmd += ['-j', str(args.workers)]
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if r.returncode:
                tail = (r.stderr.strip().splitlines() or ['(no output)'])[-1]
                raise UserError(f'dynamic score: the scoring run failed ({tail}); see {run_dir}/log.txt')
            with open(os.path.join(run_dir, 'results.json')) as f:
                docs.append(json.load(f))
        values = [d['dynamic_score'] for d in docs]
        mean, sd, half = mean_ci(values)
        per_class = {}
        for c in docs[0].get('per_class_dynamic_score', {}):
            vs = [d['per_class_dynamic_score'][c] for d in docs if d['per_class_dynamic_score'].get(c) is not None]
            if vs:
                per_class[c] = sum(vs) / len(vs)
        where = 'transfer/test_final' if scene else 'test_final'
        return result(mean, None if half is None else [mean - half, mean + half], split=where,
                      n=docs[0].get('n_videos', 0), per_class=per_class, unit='score',
                      mimic_seeds=mimic_seeds, values=values, mimic_sd=sd,
                      method='scoring run (main-drl.py with configs/scoring/*), CI over mimic seeds only',
                      acc_sp=docs[0].get('Acc@1_sp'))
    return run


def dynamic_provider(out_dir, args):
    """``measure.dynamic.dynamic_score`` when it exists, else the scoring runs."""
    from measure import dynamic
    fn = getattr(dynamic, 'dynamic_score', None)
    if fn is None:
        return scoring_runs(out_dir, args)

    def run(model, cfg, ctx, *, pretrain, mimic_seeds, split, workers):
        return fn(model, cfg, ctx, mimic_seeds=mimic_seeds, workers=workers)
    return run


def main(args):
    check_args(args)
    cfg = apply_batch_flags(load_config(args.config, args.overrides), args)
    out_dir = args.output_dir or os.path.join(os.path.dirname(os.path.abspath(args.pretrain)),
                                              f'bias_card_{args.split}')
    if not os.path.isfile(args.pretrain):
        raise FileNotFoundError(f'--pretrain {args.pretrain}: no such file')
    ctx = setup_run(args, cfg, out_dir)
    dyn = dynamic_provider(out_dir, args) if 'dynamic' in args.measures else None
    doc = run_card(cfg, ctx, args.pretrain, measures=args.measures, split=args.split,
                   workers=default_workers(cfg, args), feature_layer=args.feature_layer, blend=args.blend,
                   mimic_seeds=args.mimic_seeds, static_reference=args.static_reference, dynamic_fn=dyn,
                   args=args, config_path=args.config)
    paths = write_card(doc, out_dir)
    print(markdown(doc))
    print('wrote ' + ', '.join(paths))
    return doc


if __name__ == '__main__':
    run_entry(main, get_args_parser().parse_intermixed_args())
