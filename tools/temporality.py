"""Temporality report of a checkpoint: accuracy on normal, frozen, shuffled and time-reversed clips.

    python tools/temporality.py configs/scenemotion/res3d18.yaml \
        --pretrain checkpoints/scenemotion/res3d18/model_best.pth.tar [--split test] [key=value ...]

*frozen*: one frame of every clip repeated over time (no motion left), for every frame index;
``Acc@1_frozen`` is the first frame's (as before), the curve and its mean / min / max are beside
it; *shuffled*: the frames of every clip in a random order (motion direction destroyed, frame
content kept); *reversed*: the clip played backwards. A model that reads motion loses accuracy
on all of them; a model that reads the scene does not. A thin caller of
:mod:`measure.temporality` (``tools/bias_card.py`` gives this and the other measures, with CIs).
Writes ``temporality.json`` and ``temporality.png`` into ``--output-dir`` (default:
``<checkpoint folder>/temporality_<split>``) and prints a table, overall and per class.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.config import load_config  # noqa: E402
from engine.build import default_workers  # noqa: E402
from engine.checkpoint import save_json  # noqa: E402
from engine.runner import apply_batch_flags, run_entry, setup_run  # noqa: E402
from measure.card import build_scored_model, build_split, eval_config  # noqa: E402
from measure.temporality import summarize_temporality, temporality_records  # noqa: E402

VIEWS = ('normal', 'frozen', 'shuffled', 'reversed')


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
    p.add_argument('-p', '--print-freq', type=int, default=50, help='unused (progress bar on a terminal)')
    p.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--gpu', type=int, default=None, help='GPU index')
    p.add_argument('--seed', type=int, default=None, help='seed of the data and of the shuffles')
    # evaluation only: never resumes or trains, whatever the output folder holds
    p.set_defaults(dist_url='env://', dist_backend=None, amp='off', debug=False, evaluate=True, no_resume=True)
    return p


def report(rec, classes, split):
    """The JSON document (percent; drops in percentage points), overall and per class."""
    res = summarize_temporality(rec, classes, split)
    y = rec['labels']
    first = 100 * (rec['frozen'][:, 0] == y).double()            # frozen at frame 0 (the report's 'frozen')
    acc = {'normal': res['acc']['normal']['value'], 'frozen': float(first.mean()),
           'shuffled': res['acc']['shuffled']['value'], 'reversed': res['acc']['reversed']['value']}
    out = {'split': split, 'n_videos': len(y), 'n_class': len(classes), 'chance': 100.0 / len(classes),
           'Acc@1': acc['normal'], 'Acc@1_frozen': acc['frozen'], 'Acc@1_shuffled': acc['shuffled'],
           'Acc@1_reversed': acc['reversed'], 'drop_frozen': acc['normal'] - acc['frozen'],
           'drop_shuffled': acc['normal'] - acc['shuffled'],
           'Acc@1_frozen_mean': res['acc']['frozen_mean']['value'], 'Acc@1_frozen_min': res['acc']['frozen_min']['value'],
           'Acc@1_frozen_max': res['acc']['frozen_max']['value'], 'frozen_curve': res['frozen_curve'],
           'contrasted_accuracy': res['value'], 'contrasted_accuracy_ci95': res['ci95'],
           'skipped': res['skipped'], 'per_class': {}}
    for c, row in res['per_class'].items():
        k = classes.index(c)
        r = {'normal': row['normal'], 'frozen': float(first[y == k].mean()), 'shuffled': row['shuffled'],
             'reversed': row['reversed'], 'frozen_mean': row['frozen_mean'], 'contrasted': row['contrasted']}
        r.update(drop_frozen=r['normal'] - r['frozen'], drop_shuffled=r['normal'] - r['shuffled'])
        out['per_class'][c] = r
    return out


def table(doc):
    """Plain-text table of the report."""
    lines = [f"{'class':<20} {'normal':>7} {'frozen':>7} {'shuffled':>8} {'reversed':>8} {'drop_fr':>7} {'drop_sh':>7}"]
    rows = [('all', {'normal': doc['Acc@1'], 'frozen': doc['Acc@1_frozen'], 'shuffled': doc['Acc@1_shuffled'],
                     'reversed': doc['Acc@1_reversed'], 'drop_frozen': doc['drop_frozen'],
                     'drop_shuffled': doc['drop_shuffled']})]
    rows += list(doc['per_class'].items())
    for name, r in rows:
        lines.append(f"{name[:20]:<20} {r['normal']:7.1f} {r['frozen']:7.1f} {r['shuffled']:8.1f} "
                     f"{r['reversed']:8.1f} {r['drop_frozen']:7.1f} {r['drop_shuffled']:7.1f}")
    lines.append(f"({doc['n_videos']} videos of split {doc['split']}, chance {doc['chance']:.1f} %; frozen = first "
                 f"frame; frozen over every frame: mean {doc['Acc@1_frozen_mean']:.1f}, min {doc['Acc@1_frozen_min']:.1f}, "
                 f"max {doc['Acc@1_frozen_max']:.1f}; contrasted accuracy {doc['contrasted_accuracy']:.1f})")
    return '\n'.join(lines)


def plot(doc, path):
    """Grouped bars: accuracy per view, overall and per class."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = ['all'] + list(doc['per_class'])
    vals = {'normal': [doc['Acc@1']], 'frozen': [doc['Acc@1_frozen']], 'shuffled': [doc['Acc@1_shuffled']],
            'reversed': [doc['Acc@1_reversed']]}
    for c in doc['per_class'].values():
        for v in VIEWS:
            vals[v].append(c[v])
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names) + 2), 3.5))
    width = 0.2
    for j, v in enumerate(VIEWS):
        ax.bar([i + (j - 1.5) * width for i in range(len(names))], vals[v], width, label=v)
    ax.axhline(doc['chance'], color='k', ls='--', lw=0.8, label='chance')
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha='right', fontsize=8)
    ax.set_ylabel('Acc@1 (%)')
    ax.set_ylim(0, 100)
    ax.set_title(f"normal / frozen / shuffled / reversed clips ({doc['split']})")
    ax.legend(fontsize=8, ncol=5, loc='upper right')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args):
    cfg = eval_config(apply_batch_flags(load_config(args.config, args.overrides), args))
    out_dir = args.output_dir or os.path.join(os.path.dirname(os.path.abspath(args.pretrain)),
                                              f'temporality_{args.split}')
    ctx = setup_run(args, cfg, out_dir)
    model = build_scored_model(cfg, args.pretrain, ctx, args)
    data, loader = build_split(cfg, args.split, ctx, default_workers(cfg, args))
    rec = temporality_records(model, loader, ctx.device, seed=ctx.seed)
    doc = report(rec, data.classes, args.split)
    doc['checkpoint'] = args.pretrain
    save_json(doc, os.path.join(out_dir, 'temporality.json'))
    plot(doc, os.path.join(out_dir, 'temporality.png'))
    print(table(doc))
    print(f'wrote {out_dir}/temporality.json and temporality.png')
    return doc


if __name__ == '__main__':
    run_entry(main, get_args_parser().parse_intermixed_args())
