"""Compare two models' bias cards of the same videos: paired differences with 95 % CIs.

    python tools/bias_card.py CFG --pretrain A.pth.tar --output-dir runs/card-a
    python tools/bias_card.py CFG --pretrain B.pth.tar --output-dir runs/card-b
    python tools/compare_cards.py runs/card-a runs/card-b [--output-dir runs/card-b-vs-a]

Prints B − A for the dynamic score, the contrasted accuracy and the scene conflict, each with a
bootstrap CI over the videos both cards hold (paired: much narrower than the two cards' own
CIs side by side), and writes ``compare.md`` / ``compare.json`` with ``--output-dir``
(docs/bias-card.md, "Comparing two models").
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from engine.checkpoint import save_json  # noqa: E402
from engine.runner import run_entry  # noqa: E402
from measure.compare import compare_cards, load_card, markdown  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('a', help='card A: a bias_card.json or its folder (the reference)')
    p.add_argument('b', help='card B: a bias_card.json or its folder (the differences are B − A)')
    p.add_argument('--output-dir', default=None, help='also write compare.md and compare.json there')
    p.add_argument('--n-boot', type=int, default=1000, help='bootstrap resamples')
    p.add_argument('--seed', type=int, default=0, help='seed of the bootstrap')
    return p


def main(args):
    cmp = compare_cards(load_card(args.a), load_card(args.b), n_boot=args.n_boot, seed=args.seed,
                        names=(args.a, args.b))
    md = markdown(cmp)
    print(md, end='')
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        save_json(cmp, os.path.join(args.output_dir, 'compare.json'))
        with open(os.path.join(args.output_dir, 'compare.md'), 'w') as f:
            f.write(md)
    return 0


if __name__ == '__main__':
    sys.exit(run_entry(main, get_args_parser().parse_args()))
