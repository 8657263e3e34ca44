"""Temporality report of a checkpoint: accuracy on normal, frozen and shuffled clips.

    python tools/temporality.py configs/scenemotion/res3d18.yaml \
        --pretrain checkpoints/scenemotion/res3d18/model_best.pth.tar [--split test] [key=value ...]

*frozen*: the first frame of every clip repeated over time (no motion left); *shuffled*: the
frames of every clip in a random order (motion direction destroyed, frame content kept).
A model that reads motion loses accuracy on both; a model that reads the scene does not.
Writes ``temporality.json`` and ``temporality.png`` into ``--output-dir`` (default:
``<checkpoint folder>/temporality_<split>``) and prints a table, overall and per class.
"""
import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.config import load_config  # noqa: E402
from drl.static import freeze_frames, shuffle_frames  # noqa: E402
from engine.build import build_loader, default_workers, prepare_model  # noqa: E402
from engine.checkpoint import load_pretrained, save_json  # noqa: E402
from engine.engine import Engine  # noqa: E402
from engine.optim import build_criterion  # noqa: E402
from engine.runner import apply_batch_flags, run_entry, setup_run  # noqa: E402
from engine.step import Batch, Records, StepOutput  # noqa: E402
from supervised.step import ClassifierStep, per_class_accuracy  # noqa: E402

log = logging.getLogger('drl')
VIEWS = ('normal', 'frozen', 'shuffled')


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('config', help='the config the checkpoint was trained with')
    p.add_argument('overrides', nargs='*', default=[], help='config overrides KEY=VALUE')
    p.add_argument('--pretrain', required=True, help='checkpoint to evaluate (its head is kept)')
    p.add_argument('--split', default='test', help='key of dataset.args to evaluate on')
    p.add_argument('--output-dir', default=None, help='default: <checkpoint folder>/temporality_<split>')
    p.add_argument('-j', '--workers', type=int, default=None, help='DataLoader workers')
    p.add_argument('-b', '--batch-size', type=int, default=None, help='batch size')
    p.add_argument('-p', '--print-freq', type=int, default=50, help='log every N batches')
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--gpu', type=int, default=None, help='GPU index')
    p.add_argument('--seed', type=int, default=None, help='seed of the data and of the shuffles')
    # evaluation only: never resumes or trains, whatever the output folder holds
    p.set_defaults(dist_url='env://', dist_backend=None, amp='off', debug=False, evaluate=True, no_resume=True)
    return p


class StaticViewStep(ClassifierStep):
    """Evaluates the classifier on one view of the batch (``normal``, ``frozen``, ``shuffled``).

    Shuffle orders come from a generator seeded by ``(seed, first index of the batch)`` so a
    report is reproducible whatever the batch order or device.
    """

    def __init__(self, model: nn.Module, criterion: nn.Module, classes: Sequence[str], seed: int = 0) -> None:
        super().__init__(model, criterion, classes=classes)
        self.view, self.seed = 'normal', seed

    def eval_step(self, batch: Batch) -> StepOutput:
        x = batch['video']  # B × K × C × T × H × W
        if self.view == 'frozen':
            x = freeze_frames(x)
        elif self.view == 'shuffled':
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(batch['index'][0]))
            x = shuffle_frames(x, generator=g)
        return super().eval_step({**batch, 'video': x})

    def summarize(self, records: Records, tag: str) -> dict[str, Any]:
        """Per-class Acc@1 and the number of videos of every view (the report needs both)."""
        return {'per_class': per_class_accuracy(records['logits'], records['labels'], self.classes),
                'n_videos': int(records['labels'].numel())}


def report(stats, classes, split):
    """The JSON document: overall accuracies and drops (percentage points), per class too."""
    acc = {v: stats[v]['Acc@1'] for v in VIEWS}
    out = {'split': split, 'n_videos': stats['normal']['n_videos'], 'n_class': len(classes),
           'chance': 100.0 / len(classes),
           'Acc@1': acc['normal'], 'Acc@1_frozen': acc['frozen'], 'Acc@1_shuffled': acc['shuffled'],
           'drop_frozen': acc['normal'] - acc['frozen'], 'drop_shuffled': acc['normal'] - acc['shuffled'],
           'per_class': {}}
    for c in classes:
        if c in stats['normal']['per_class']:
            row = {v: stats[v]['per_class'][c] for v in VIEWS}
            row.update(drop_frozen=row['normal'] - row['frozen'], drop_shuffled=row['normal'] - row['shuffled'])
            out['per_class'][c] = row
    return out


def table(doc):
    """Plain-text table of the report."""
    lines = [f"{'class':<20} {'normal':>7} {'frozen':>7} {'shuffled':>8} {'drop_fr':>7} {'drop_sh':>7}"]
    rows = [('all', {'normal': doc['Acc@1'], 'frozen': doc['Acc@1_frozen'], 'shuffled': doc['Acc@1_shuffled'],
                     'drop_frozen': doc['drop_frozen'], 'drop_shuffled': doc['drop_shuffled']})]
    rows += list(doc['per_class'].items())
    for name, r in rows:
        lines.append(f"{name[:20]:<20} {r['normal']:7.1f} {r['frozen']:7.1f} {r['shuffled']:8.1f} "
                     f"{r['drop_frozen']:7.1f} {r['drop_shuffled']:7.1f}")
    lines.append(f"({doc['n_videos']} videos of split {doc['split']}, chance {doc['chance']:.1f} %)")
    return '\n'.join(lines)


def plot(doc, path):
    """Grouped bars: accuracy per view, overall and per class."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = ['all'] + list(doc['per_class'])
    vals = {'normal': [doc['Acc@1']], 'frozen': [doc['Acc@1_frozen']], 'shuffled': [doc['Acc@1_shuffled']]}
    for c in doc['per_class'].values():
        for v in VIEWS:
            vals[v].append(c[v])
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names) + 2), 3.5))
    width = 0.27
    for j, v in enumerate(VIEWS):
        ax.bar([i + (j - 1) * width for i in range(len(names))], vals[v], width, label=v)
    ax.axhline(doc['chance'], color='k', ls='--', lw=0.8, label='chance')
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha='right', fontsize=8)
    ax.set_ylabel('Acc@1 (%)')
    ax.set_ylim(0, 100)
    ax.set_title(f"normal / frozen / shuffled clips ({doc['split']})")
    ax.legend(fontsize=8, ncol=4, loc='upper right')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args):
    cfg = apply_batch_flags(load_config(args.config, args.overrides), args)
    out_dir = args.output_dir or os.path.join(os.path.dirname(os.path.abspath(args.pretrain)),
                                              f'temporality_{args.split}')
    ctx = setup_run(args, cfg, out_dir)

    from datasets import build_dataset
    from models import build_model
    data = build_dataset(cfg, args.split, seed=ctx.seed)
    loader = build_loader(data, cfg, ctx, train=False, workers=default_workers(cfg, args))
    model = build_model(cfg['model'])
    load_pretrained(model, args.pretrain, copy_head=True)
    model = prepare_model(model, cfg['model'], ctx, args, trainable=False)
    step = StaticViewStep(model, build_criterion(cfg['criterion']).to(ctx.device), data.classes, ctx.seed)
    engine = Engine(step, None, None, ctx)
    stats = {}
    for view in VIEWS:
        step.view = view
        stats[view] = engine.evaluate(loader, f'{args.split}/{view}')
    doc = report(stats, data.classes, args.split)
    doc['checkpoint'] = args.pretrain
    if ctx.is_main:
        save_json(doc, os.path.join(out_dir, 'temporality.json'))
        plot(doc, os.path.join(out_dir, 'temporality.png'))
        print(table(doc))
        print(f'wrote {out_dir}/temporality.json and temporality.png')
    return doc


if __name__ == '__main__':
    run_entry(main, get_args_parser().parse_intermixed_args())
