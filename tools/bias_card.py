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
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.config import load_config  # noqa: E402
from core.errors import UserError  # noqa: E402
from engine.build import default_workers  # noqa: E402
from engine.runner import apply_batch_flags, run_entry, setup_run  # noqa: E402
from measure.card import MEASURES, run_card  # noqa: E402
from measure.mimic import RECIPES  # noqa: E402
from measure.report import markdown, write_card  # noqa: E402


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
    p.add_argument('--mimic-epochs', type=int, default=None, help="dynamic score: the mimic's training epochs "
                   '(default: the calibrated recipe of measure/mimic.py)')
    p.add_argument('--mimic-recipe', default='calibrated', choices=sorted(RECIPES),
                   help='dynamic score: the mimic recipe; strong: random crops and blends labelled by the model, '
                   '3x as long: lowers every model\'s score, ~4x the time (docs/bias-card.md)')
    p.add_argument('--mimic-stream', default='auto', choices=['auto', 'on', 'off'],
                   help='dynamic score: stream the splits through a DataLoader (on), hold their frames in memory '
                   '(off) or choose by their size (auto: stream above measure.mimic_stream.BANK_BUDGET)')
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
    if args.mimic_epochs is not None and args.mimic_epochs < 1:
        raise UserError(f'--mimic-epochs {args.mimic_epochs}: the mimic needs at least 1 epoch')


def mimic_overrides(args):
    """The mimic recipe's fields that differ from the calibrated one (``None``: none)."""
    over = dict(RECIPES[args.mimic_recipe])
    if args.mimic_epochs:
        over['epochs'] = args.mimic_epochs
    return over or None


def main(args):
    check_args(args)
    cfg = apply_batch_flags(load_config(args.config, args.overrides), args)
    out_dir = args.output_dir or os.path.join(os.path.dirname(os.path.abspath(args.pretrain)),
                                              f'bias_card_{args.split}')
    if not os.path.isfile(args.pretrain):
        raise FileNotFoundError(f'--pretrain {args.pretrain}: no such file')
    ctx = setup_run(args, cfg, out_dir)
    doc = run_card(cfg, ctx, args.pretrain, measures=args.measures, split=args.split,
                   workers=default_workers(cfg, args), feature_layer=args.feature_layer, blend=args.blend,
                   mimic_seeds=args.mimic_seeds, static_reference=args.static_reference,
                   mimic_recipe=mimic_overrides(args),
                   args=args, config_path=args.config,
                   mimic_stream={'auto': None, 'on': True, 'off': False}[args.mimic_stream])
    paths = write_card(doc, out_dir)
    print(markdown(doc))
    print('wrote ' + ', '.join(paths))
    return doc


if __name__ == '__main__':
    run_entry(main, get_args_parser().parse_intermixed_args())
