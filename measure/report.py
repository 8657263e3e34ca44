"""The bias card's files: ``bias_card.json`` (the card as it is), ``bias_card.md`` (tables and a
reading in plain words) and ``bias_card.png`` (bars with CIs, and the per-class view)."""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, Optional

from engine.checkpoint import save_json

from .card import MEASURES, PER_CLASS_COLUMNS

# below this agreement of the mimic with the model on its own training pool, the reading warns that
# the dynamic score also counts unstable decisions (docs/bias-card.md, "Reading the dynamic score")
FIT_WARN = 0.9


def _num(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return '–'
    return f'{v:.{digits}f}'


def _ci(ci: Optional[list], digits: int = 1) -> str:
    return '–' if not ci else f'[{_num(ci[0], digits)}, {_num(ci[1], digits)}]'


def rows(doc: Mapping[str, Any]) -> list[tuple[str, str, Any, Optional[list], Any, str, int, int]]:
    """The summary table: ``(measure, quantity, value, ci95, floor, unit, digits, split-n)``
    rows, the headline of each measure first."""
    out = []
    for name in MEASURES:
        m = doc['measures'].get(name)
        if m is None:
            continue
        unit = m.get('unit', '')
        d = 3 if unit != '%' else 1
        out.append((name, m['headline'], m['value'], m.get('ci95'), m.get('floor'), unit, d, m['n']))
        subs: list[tuple[str, Mapping[str, Any]]] = []
        if name == 'temporality':
            a = m['acc']
            subs = [('Acc@1 normal', a['normal']), ('Acc@1 frozen, mean over frames', a['frozen_mean']),
                    (f"Acc@1 frozen, worst frame ({a['frozen_min']['frame']})", a['frozen_min']),
                    (f"Acc@1 frozen, best frame ({a['frozen_max']['frame']})", a['frozen_max']),
                    ('Acc@1 shuffled', a['shuffled']), ('Acc@1 time-reversed', a['reversed'])]
        elif name == 'conflict':
            subs = [(f"Acc@1 vs the clip's label (blend {m['weight']:g})", m['acc_clip']),
                    ("Acc@1 vs the frame's label", m['acc_frame'])]
        elif name == 'representation':
            subs = [('static share of the dimensions', m['static'])]
        elif name == 'dynamic' and m.get('ci95_mimic') is not None:
            subs = [(f"CI over its {len(m['per_seed'])} mimic seeds", {'value': m['value'], 'ci95': m['ci95_mimic']})]
        mark = ' †' if doc.get('tubelet_size', 1) > 1 else ''   # shuffling mixes frames within a token
        for title, s in subs:
            if mark and (title == 'Acc@1 shuffled' or name == 'representation'):
                title += mark
            out.append((name, title, s['value'], s.get('ci95'), None, unit, d, m['n']))
        if name == 'representation':
            out.append((name, 's_dynamic / s_static (Kowal scores)', None, None, None, '', 3, m['n']))
    return out


def reading(doc: Mapping[str, Any]) -> list[str]:
    """A few sentences in plain words, one per measure present."""
    ms, out = doc['measures'], []
    t = ms.get('temporality')
    if t:
        a = t['acc']
        kept = a['frozen_mean']['value'] / a['normal']['value'] if a['normal']['value'] > 0 else float('nan')
        out.append(f"On frozen clips (one frame repeated, no motion) the model keeps {a['frozen_mean']['value']:.1f} % "
                   f"accuracy of its {a['normal']['value']:.1f} % on real clips ({100 * kept:.0f} % of it; chance "
                   f"{t['chance']:.1f} %). Only {t['value']:.1f} % of the videos are right on the real clip and wrong "
                   "on the frozen one (contrasted accuracy): the higher, the more its decisions need motion.")
        out.append(f"Shuffling the frames gives {a['shuffled']['value']:.1f} %, playing them backwards "
                   f"{a['reversed']['value']:.1f} %: a model that reads the direction of motion loses accuracy on both.")
    c = ms.get('conflict')
    if c:
        out.append(f"Blended with a still frame of another class (weight {c['weight']:g}), the clip's own label wins in "
                   f"{c['value']:.1f} % of the videos; the model names the frame's class in {c['acc_frame']['value']:.1f} % "
                   "of them (a scene-reading model follows the frame).")
    r = ms.get('representation')
    if r:
        out.append(f"In the {r['layer']} features, {r['dims']['dynamic']} of {r['dim']} dimensions encode the dynamics "
                   f"and {r['dims']['static']} the static appearance ({r['value']:.1f} % vs {r['static']['value']:.1f} %;"
                   " the residual takes the rest).")
    d = ms.get('dynamic')
    if d:
        floor = f" (static reference: {d['floor']:.3f}, the score's zero in practice)" if d.get('floor') is not None else ''
        out.append(f"A frame-wise mimic fails to reproduce {100 * d['value']:.1f} % of the model's decisions: dynamic "
                   f"score {d['value']:.3f}{floor}.")
        if d.get('sd_mimic') is not None:
            out.append(f"Over {len(d['per_seed'])} mimic seeds it varies by sd {d['sd_mimic']:.3f}: "
                       f"{d['sd_mimic_videos']:.3f} from videos the mimics get right or wrong at random (more scored "
                       f"videos shrink it) and {d['sd_mimic_shared']:.3f} shared between videos (only more mimic seeds, "
                       f"averaged, shrink it).")
        fit = d.get('agreement_train')
        if fit is not None and fit < FIT_WARN:
            out.append(f"Caution: the mimic reproduces only {100 * fit:.1f} % of the model's decisions even on the videos "
                       f"it trained on (a static model's mimic: ~97 %). The model's decisions are unstable (e.g. "
                       f"near-uniform outputs), and part of the dynamic score measures that, not motion: read it with "
                       f"the accuracy-based measures.")
    return out


def markdown(doc: Mapping[str, Any]) -> str:
    """``bias_card.md``: header, summary table, reading, notes, per-class table."""
    lines = [f"# Static-bias card: {doc['model']} on {doc['dataset']}"
             + (f"/{doc['subset']}" if doc.get('subset') else ''), '',
             f"checkpoint `{doc['checkpoint']}`" + (f", config `{doc['config']}`" if doc.get('config') else '')
             + f"; split `{doc['split']}` ({doc['n_videos']} videos, {len(doc['classes'])} classes), "
             f"device {doc['device']}, seed {doc['seed']}.", '',
             '| measure | quantity | value | 95 % CI | floor | split | videos |',
             '|---|---|---|---|---|---|---|']
    for name, title, value, ci, floor, unit, d, n in rows(doc):
        m = doc['measures'][name]
        if value is None:  # the Kowal scores line
            value_s = f"{_num(m['s_dynamic']['value'], 3)} / {_num(m['s_static']['value'], 3)}"
            ci_s = f"{_ci(m['s_dynamic']['ci95'], 3)} / {_ci(m['s_static']['ci95'], 3)}"
        else:
            value_s, ci_s = _num(value, d) + (' %' if unit == '%' else ''), _ci(ci, d)
        lines.append(f"| {name} | {title} | {value_s} | {ci_s} | {_num(floor, d) if floor is not None else '–'} | "
                     f"{m.get('split', doc['split'])} | {n} |")
    lines += ['', '## Reading', ''] + [f'- {s}' for s in reading(doc)]
    if doc.get('notes'):
        lines += ['', '## Notes', ''] + [f'- {s}' for s in doc['notes']]
    cols = [(m, k, t) for m, k, t in PER_CLASS_COLUMNS if m in doc['measures']]
    if doc.get('per_class') and cols:
        lines += ['', '## Per class', '', '| class | videos | ' + ' | '.join(t for _, _, t in cols) + ' |',
                  '|---|---|' + '---|' * len(cols)]
        for c, row in doc['per_class'].items():
            vals = []
            for m, k, _ in cols:
                v = row.get(m if k is None else f'{m}.{k}')
                vals.append(_num(v, 3 if m == 'dynamic' else 1) if isinstance(v, (int, float)) else '–')
            lines.append(f"| {c} | {row.get('n', '–')} | " + ' | '.join(vals) + ' |')
    lines += ['', 'Accuracies and shares in percent; CIs: bootstrap over videos (the dynamic score: also over '
              'mimic seeds where several ran). docs/bias-card.md explains every entry.']
    return '\n'.join(lines) + '\n'


def plot(doc: Mapping[str, Any], path: str) -> None:
    """``bias_card.png``: left, every value of the summary table with its CI (percent; the
    dynamic score × 100); right, the headline measures per class."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    table = [r for r in rows(doc) if r[2] is not None]
    labels, vals, los, his, colours = [], [], [], [], []
    for name, title, value, ci, _, unit, _, _ in table:
        colours.append('tab:red' if title == doc['measures'][name]['headline'] else 'tab:blue')
        f = 100.0 if unit != '%' else 1.0
        labels.append(f'{name}: {title}'[:58])
        vals.append(f * value)
        lo, hi = (ci if ci and all(v is not None and math.isfinite(v) for v in ci) else (value, value))
        los.append(max(0.0, f * (value - lo)))
        his.append(max(0.0, f * (hi - value)))
    classes = list(doc.get('per_class') or {})
    heads = [(m, k, t) for m, k, t in (('temporality', 'contrasted', 'contrasted acc'),
                                       ('conflict', 'clip_wins', 'clip wins'),
                                       ('representation', 'dynamic', 'dyn dims'),
                                       ('dynamic', None, 'dynamic score ×100')) if m in doc['measures']]
    fig, axes = plt.subplots(1, 2, figsize=(14, max(4.0, 0.32 * len(labels) + 1.5)),
                             gridspec_kw={'width_ratios': [1.1, 1]})
    ax = axes[0]
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, vals, xerr=[los, his], color=colours, alpha=0.8, capsize=3)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel('percent (dynamic score × 100)')
    ax.set_xlim(0, 100)
    ax.set_title('measures with 95 % CIs (red: each measure\'s headline)', fontsize=9)
    ax = axes[1]
    width = 0.8 / max(1, len(heads))
    for j, (m, k, t) in enumerate(heads):
        f = 100.0 if m == 'dynamic' else 1.0
        ys = [f * (doc['per_class'][c].get(m if k is None else f'{m}.{k}') or 0.0) for c in classes]
        ax.bar([i + (j - (len(heads) - 1) / 2) * width for i in range(len(classes))], ys, width, label=t)
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(classes, rotation=45, ha='right', fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_title('per class', fontsize=9)
    if heads:
        ax.legend(fontsize=7)
    fig.suptitle(f"static-bias card: {doc['model']} on {doc['dataset']} ({doc['split']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_card(doc: Mapping[str, Any], out_dir: str) -> list[str]:
    """Write ``bias_card.json``, ``bias_card.md``, ``bias_card.png`` into ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f'bias_card.{ext}') for ext in ('json', 'md', 'png')]
    save_json(doc, paths[0])
    with open(paths[1], 'w') as f:
        f.write(markdown(doc))
    plot(doc, paths[2])
    return paths
