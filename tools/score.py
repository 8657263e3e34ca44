"""How much does a trained video model rely on motion? One command for both measurements.

    python tools/score.py configs/scenemotion/tv-r3d18.yaml dataset.subset=transfer --pretrain CKPT
    python tools/score.py configs/k400/res3d18.yaml --pretrain r3d18_K_200ep.pth model.args.n_class=700

Runs, on the config's data and model, (1) dynamic scoring (``main-drl.py CFG SCORING_CFG``: a
frame-wise mimic is trained on the train split, the score is measured on ``test_final``) and
(2) the temporality report (``tools/temporality.py``: accuracy on normal / frozen / shuffled
clips of the same split), then prints both and writes ``score.json`` and ``per_class.csv``
(class, dynamic score, normal / frozen / shuffled Acc@1) next to the two runs' own files in
``--output-dir`` (default ``<checkpoint folder>/score/<config path>``). ``--pretrain`` takes any
format ``tools/convert_checkpoint.py`` reads; its classifier must fit ``model.args.n_class``.
Overrides ``KEY=VALUE`` go to the config, ``sp.KEY=VALUE`` to the scoring config. On SceneMotion
score on the ``transfer`` subset (docs/drl.md, "Where to score").
"""
import argparse
import csv
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.config import load_config  # noqa: E402
from core.errors import UserError  # noqa: E402
from engine.checkpoint import save_json  # noqa: E402
from engine.runner import config_run_name  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('config', help='config of the model and data (e.g. configs/k400/res3d18.yaml)')
    p.add_argument('overrides', nargs='*', default=[], help='KEY=VALUE (config) and sp.KEY=VALUE (scoring config)')
    p.add_argument('--pretrain', required=True, help='checkpoint to score (any importable format)')
    p.add_argument('--scoring', default=None, help='scoring config (default: configs/scoring/scenemotion.yaml '
                   'for SceneMotion, else configs/scoring/res2d18.yaml)')
    p.add_argument('--output-dir', default=None, help='default: <checkpoint folder>/score/<config path>')
    p.add_argument('--split', default='test_final', help='split of the temporality report (the dynamic score '
                   'is measured on test_final)')
    p.add_argument('-j', '--workers', type=int, default=None, help='DataLoader workers')
    p.add_argument('-b', '--batch-size', type=int, default=None, help='global batch size')
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--seed', type=int, default=None, help='seed of both runs')
    return p


def _run(cmd):
    print('+ ' + ' '.join(cmd), flush=True)
    r = subprocess.run([sys.executable, *cmd], cwd=ROOT)
    if r.returncode:
        raise UserError(f'{cmd[0]} failed (exit status {r.returncode}); see its output above')


def per_class_rows(scores, temporality):
    """Rows of ``per_class.csv``: the union of both reports' classes."""
    names = list(temporality.get('per_class', {})) + [c for c in scores.get('per_class_dynamic_score', {})
                                                      if c not in temporality.get('per_class', {})]
    rows = []
    for c in names:
        t = temporality.get('per_class', {}).get(c, {})
        rows.append({'class': c, 'dynamic_score': scores.get('per_class_dynamic_score', {}).get(c, ''),
                     'Acc@1': t.get('normal', ''), 'Acc@1_frozen': t.get('frozen', ''),
                     'Acc@1_shuffled': t.get('shuffled', '')})
    return rows


def main(argv=None):
    args = get_args_parser().parse_intermixed_args(argv)
    main_over = [o for o in args.overrides if not o.startswith('sp.')]
    cfg = load_config(args.config, main_over)  # fail early on a bad key
    scoring = args.scoring or os.path.join(
        'configs', 'scoring', 'scenemotion.yaml' if cfg['dataset']['name'] == 'scenemotion' else 'res2d18.yaml')
    pretrain = os.path.abspath(args.pretrain)
    out = os.path.abspath(args.output_dir or os.path.join(os.path.dirname(pretrain), 'score',
                                                          config_run_name(args.config)))
    flags = ['--device', args.device]
    for flag, value in (('-j', args.workers), ('-b', args.batch_size), ('--seed', args.seed)):
        if value is not None:
            flags += [flag, str(value)]
    cfg_path, sp_path = os.path.abspath(args.config), os.path.abspath(scoring)
    _run(['main-drl.py', cfg_path, sp_path, *args.overrides, '--pretrain', pretrain,
          '--output-dir', os.path.join(out, 'scoring'), *flags])
    _run(['tools/temporality.py', cfg_path, *main_over, '--pretrain', pretrain, '--split', args.split,
          '--output-dir', os.path.join(out, 'temporality'), *flags])

    with open(os.path.join(out, 'scoring', 'results.json')) as f:
        scores = json.load(f)
    with open(os.path.join(out, 'temporality', 'temporality.json')) as f:
        temporality = json.load(f)
    doc = {'checkpoint': pretrain, 'config': args.config, 'scoring_config': scoring,
           'dynamic_score': scores['dynamic_score'], 'Acc@1_sp': scores.get('Acc@1_sp'),
           'Acc@1': temporality['Acc@1'], 'Acc@1_frozen': temporality['Acc@1_frozen'],
           'Acc@1_shuffled': temporality['Acc@1_shuffled'], 'drop_frozen': temporality['drop_frozen'],
           'drop_shuffled': temporality['drop_shuffled'], 'split': temporality['split'],
           'n_videos': temporality['n_videos'], 'chance': temporality['chance']}
    save_json(doc, os.path.join(out, 'score.json'))
    rows = per_class_rows(scores, temporality)
    with open(os.path.join(out, 'per_class.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ['class'])
        w.writeheader()
        w.writerows(rows)
    print(f"\ndynamic score {doc['dynamic_score']:.3f} (a frame-wise mimic reproduces "
          f"{100 * (1 - doc['dynamic_score']):.1f} % of the decisions)")
    print(f"Acc@1 on {doc['split']} ({doc['n_videos']} videos, chance {doc['chance']:.1f} %): normal "
          f"{doc['Acc@1']:.1f}, frozen {doc['Acc@1_frozen']:.1f}, shuffled {doc['Acc@1_shuffled']:.1f}")
    print(f'wrote {out}/score.json, per_class.csv (and scoring/, temporality/)')
    return doc


if __name__ == '__main__':
    try:
        main()
    except (UserError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
