"""The SceneMotion study's report: reads the result files of tools/study.py's runs and writes
``docs/results/scenemotion.md``, ``scenemotion.json`` and ``scenemotion.png``.

Statistics: mean and 95 % confidence interval over seeds (Student t, ``n − 1`` degrees of
freedom); paired differences are taken per seed against the same seed's baseline ``resnet3d``.
"""
import csv
import json
import math
import os
import statistics

from tools.jobs import ROOT

BASE = 'resnet3d'
# key -> (column label, where it is read from: (measure, result key))
COLUMNS = {
    'pretrain_acc1': ('pretrain-val Acc@1', ('temporality', 'Acc@1')),
    'frozen_acc1': ('frozen-clip Acc@1', ('temporality', 'Acc@1_frozen')),
    'dynamic_score': ('dynamic score', ('score', 'dynamic_score')),
    'mimic_acc1': ('transfer-test Acc@1 as is', ('score', 'Acc@1')),
    'transfer_acc1': ('transfer Acc@1 (fine-tuned)', ('finetune', 'Acc@1')),
    'probe_acc1': ('transfer Acc@1 (linear probe)', ('probe', 'Acc@1')),
    'fewshot_acc1': ('5-way 5-shot novel Acc@1', ('fewshot', 'Acc@1')),
}
EXTRA = {'score_pretrain': ('score_pretrain', 'dynamic_score'),  # read, but not columns
         'penalty_kl': ('penalty', 'kl'), 'penalty_ratio': ('penalty', 'ratio_actual_detached'),
         'penalty_cos': ('penalty', 'cos_penalty_ce')}
PENALTY = {'penalty_kl': 'KL(p(x) ‖ p(x_static)) on train clips',
           'penalty_ratio': 'actual / static-side-held gain of one step',
           'penalty_cos': 'cosine(penalty ascent, CE descent)'}
PAIRED = ('dynamic_score', 'frozen_acc1', 'transfer_acc1', 'probe_acc1', 'fewshot_acc1')
# per-epoch training diagnostics of the DRL runs (metrics.csv columns)
DIAG = {
    'train_grad_ratio': '‖∇ penalty‖ / ‖∇ CE‖ at the logits',
    'train_loss_sp': 'KL(p(x) ‖ p(x_static)) (dir) / KD loss of the mimic (aug)',
    'train_Acc@1_sp': 'static agreement with f (%)',
    'train_Acc@1_sp_adv': 'spatial model agreement on perturbed clips (%)',
    'train_flip_f': 'f decisions changed by the perturbation (%)',
    'train_kl_f_adv': 'KL(f(x) ‖ f(x_adv))',
    'train_loss_cls': 'CE on clean clips',
}
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def ci95(values):
    """Half-width of the 95 % confidence interval of the mean (nan for one value)."""
    n = len(values)
    if n < 2:
        return float('nan')
    return T975.get(n - 1, 1.96) * statistics.stdev(values) / math.sqrt(n)


def _read(path):
    full = os.path.join(ROOT, path)
    if not os.path.isfile(full):
        return None
    with open(full) as f:
        return json.load(f)


def collect(paths):
    """``{section: {name: {seed: {column: value}}}}`` from every finished result file."""
    out = {}
    for (section, name, seed), p in paths.items():
        row = {}
        sources = {**{k: src for k, (_, src) in COLUMNS.items()}, **EXTRA}
        for key, (measure, field) in sources.items():
            res = _read(p[measure]) if measure in p else None
            if res is not None and field in res:
                row[key] = float(res[field])
        row['_diag'] = diagnostics(p['dir'])
        out.setdefault(section, {}).setdefault(name, {})[seed] = row
    return out


def diagnostics(run_dir):
    """First- and last-epoch values of the DRL training diagnostics in ``metrics.csv``."""
    path = os.path.join(ROOT, run_dir, 'metrics.csv')
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: (float(rows[0][k]), float(rows[-1][k])) for k in DIAG if rows[0].get(k) not in (None, '')}


def fmt(v, digits=3):
    return '—' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{v:.{digits}g}'


def mean_ci(values, digits=3):
    if not values:
        return '—'
    if len(values) == 1:
        return f'{fmt(values[0], digits)} (1 seed)'
    return f'{fmt(statistics.mean(values), digits)} ± {fmt(ci95(values), 2)}'


def summary(table):
    """The JSON of the issue: per model mean/CI, transfer spread and paired differences."""
    models = {}
    base = table.get(BASE, {})
    for name, per_seed in table.items():
        entry = {}
        for key in COLUMNS:
            vals = [r[key] for r in per_seed.values() if key in r]
            if vals:
                entry[key] = [statistics.mean(vals), ci95(vals) if len(vals) > 1 else None]
                if key in ('transfer_acc1', 'probe_acc1'):
                    entry[key + '_std'] = statistics.stdev(vals) if len(vals) > 1 else None
        if name != BASE:
            paired = {}
            for key in PAIRED:
                diffs = [r[key] - base[s][key] for s, r in per_seed.items() if key in r and key in base.get(s, {})]
                if diffs:
                    paired[key] = [statistics.mean(diffs), statistics.stdev(diffs) if len(diffs) > 1 else None]
            entry['paired'] = paired
        entry['seeds'] = sorted(per_seed)
        models[name] = entry
    return models


def paired_lines(models):
    lines = ['| model vs `resnet3d` (same seed) | ' + ' | '.join(COLUMNS[k][0] for k in PAIRED) + ' |',
             '|---|' + '---|' * len(PAIRED)]
    for name, e in models.items():
        if name == BASE or not e.get('paired'):
            continue
        cells = []
        for key in PAIRED:
            d = e['paired'].get(key)
            if not d:
                cells.append('—')
                continue
            mean, sd = d
            clear = sd is not None and abs(mean) > 2 * sd
            sd_s = '' if sd is None else f' (sd {fmt(sd, 2)})'
            cells.append(f'{mean:+.3g}{sd_s}{" **clear**" if clear else ""}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return lines


def diag_lines(table):
    names = [n for n in table if any(r['_diag'] for r in table[n].values())]
    keys = [k for k in DIAG if any(k in r['_diag'] for n in names for r in table[n].values())]
    if not names:
        return []
    lines = ['| run | ' + ' | '.join(f'{DIAG[k]}: first → last epoch' for k in keys) + ' |',
             '|---|' + '---|' * len(keys)]
    for n in names:
        cells = []
        for k in keys:
            pairs = [r['_diag'][k] for r in table[n].values() if k in r['_diag']]
            if not pairs:
                cells.append('—')
                continue
            first, last = (statistics.mean(p[i] for p in pairs) for i in (0, 1))
            cells.append(f'{fmt(first)} → {fmt(last)}')
        lines.append(f'| {n} | ' + ' | '.join(cells) + ' |')
    return lines


def write(paths, seeds, graph, page):
    data = collect(paths)
    table, sweep = data.get('main', {}), data.get('sweep', {})
    models = summary(table)
    done = sorted({s for n in table.values() for s, r in n.items() if 'dynamic_score' in r})
    state = {}
    for j in graph.items.values():
        state[j.state] = state.get(j.state, 0) + 1
    wall, busy = graph.times()
    doc = os.path.dirname(page)
    with open(os.path.join(doc, 'scenemotion.json'), 'w') as f:
        json.dump({'seeds': done, 'models': models}, f, indent=1, default=lambda v: None)
        f.write('\n')
    plot(table, os.path.join(doc, 'scenemotion.png'))
    lines = [
        '# SceneMotion study: does the dynamic score tell static from dynamic models, and do DRL and '
        'de-biasing make a static-biased model more dynamic?', '',
        f'Generated by `make study` (`python tools/study.py --seeds {" ".join(map(str, seeds))}`) on this '
        'repository\'s 2-core CPU machine, two commands at a time with one thread each. '
        f'Run time: {busy / 60:.0f} min of command time (the sum over the finished commands, each '
        f'timed by the runner), {wall / 60:.0f} min from the first command to the last (pauses and '
        'restarts included); '
        f'commands {", ".join(f"{k}: {v}" for k, v in sorted(state.items()))}; how loaded the machine '
        'was: run notes at the end. '
        'Chance: 12.5 % (8 classes), 20 % for 5-way few-shot. Cells: mean ± 95 % CI over seeds '
        '(Student t); protocol and columns below the tables.', '',
        '## Models', '',
        '| model | ' + ' | '.join(label for label, _ in COLUMNS.values()) + ' |',
        '|---|' + '---|' * len(COLUMNS)]
    for name, per_seed in table.items():
        cells = [mean_ci([r[k] for r in per_seed.values() if k in r]) for k in COLUMNS]
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines += ['', '## Paired differences against the baseline', '',
              'Per seed, model minus that seed\'s `resnet3d`; mean and standard deviation over seeds. '
              '**clear**: |mean| > 2 × sd.', ''] + paired_lines(models)
    lines += ['', '## Training diagnostics of the DRL runs (mean over seeds)', ''] + diag_lines(table)
    rows = [(n, per_seed) for n, per_seed in list(table.items()) + list(sweep.items())
            if any('penalty_kl' in r for r in per_seed.values())]
    if rows:
        lines += ['', '## What a step along the DRL-dir penalty does (`tools/penalty_probe.py`, mean over seeds)', '',
                  'Eval mode, 8 training batches, step 0.0005 along the gradient of the detached penalty '
                  '(frozen clips; shuffled for the shuffle run).', '',
                  '| model | ' + ' | '.join(PENALTY.values()) + ' |', '|---|' + '---|' * len(PENALTY)]
        for name, per_seed in rows:
            lines.append(f'| {name} | ' + ' | '.join(mean_ci([r[k] for r in per_seed.values() if k in r])
                                                     for k in PENALTY) + ' |')
    protocol = data.get('protocol', {})
    if protocol:
        lines += ['', f'## Why score on transfer (seed {seeds[0]})', '',
                  'The controls scored as the published code would score them on a scene-biased dataset, on '
                  'pretrain-val (bias 0.9: the scene predicts the class ~90 % of the time), and on transfer:', '',
                  '| model | dynamic score on pretrain-val (published) | dynamic score on transfer (ours) |',
                  '|---|---|---|']
        for name, per_seed in protocol.items():
            r = next(iter(per_seed.values()))
            lines.append(f"| {name} | {fmt(r.get('score_pretrain'))} | {fmt(r.get('dynamic_score'))} |")
    if sweep:
        lines += ['', f'## Sweep (seed {seeds[0]}): where does each variant start to act?', '',
                  '| run | pretrain-val Acc@1 | frozen-clip Acc@1 | dynamic score | transfer-test Acc@1 as is |',
                  '|---|---|---|---|---|']
        for name, per_seed in sweep.items():
            r = next(iter(per_seed.values()))
            lines.append(f'| {name} | ' + ' | '.join(fmt(r.get(k)) for k in
                                                     ('pretrain_acc1', 'frozen_acc1', 'dynamic_score', 'mimic_acc1'))
                         + ' |')
        lines += ['', 'Sweep diagnostics:', ''] + diag_lines(sweep)
    findings = os.path.join(doc, 'scenemotion-findings.md')
    if os.path.isfile(findings):
        with open(findings) as f:
            lines += ['', f.read().strip()]
    lines += ['', '![SceneMotion study](scenemotion.png)', '', PROTOCOL, '', '## Commands', '', '```']
    lines += [j.shown if j.state == 'done' else f'{j.shown}   # {j.state}, not in the tables'
              for j in graph.items.values()]
    lines += ['```', '']
    with open(page, 'w') as f:
        f.write('\n'.join(lines))


PROTOCOL = """## Protocol and columns

- Every model is measured on its last-epoch `checkpoint.pth.tar`.
- *pretrain-val Acc@1* / *frozen-clip Acc@1*: `tools/temporality.py` on the pretrain val split
  (scene predicts the class with probability ≈ 0.9), clips as they are / with the first frame
  repeated. Frozen ≈ normal means the model answers from the scene.
- *dynamic score*: `main-drl.py <transfer config> configs/scoring/scenemotion.yaml`: the model is
  fixed, a frame-wise ResNet-18 (widths of the video model) learns to mimic it on transfer-train
  (480 videos, scene independent of class), and 1 − its top-1 agreement on transfer-test (480)
  is the score. On the pretrain split the scene predicts the class, so even a motion model's
  decisions are mostly reproducible from one frame there and every model scores near 0
  (docs/drl.md, "Where to score").
- *transfer-test Acc@1 as is*: the model without any fine-tuning on transfer-test (from the
  scoring run): a scene model is at chance there.
- *transfer (fine-tuned)*: the whole model, new head, 10 epochs on transfer-train (480 videos),
  tested once after the last epoch on transfer-test (480); *linear probe*: the same with the
  backbone frozen (eval mode), only the new head trained. `transfer_acc1` in the JSON is the
  fine-tuned figure, `probe_acc1` the probe's.
- *5-way 5-shot*: `main-fsl.py configs/scenemotion-fs/*-5shot.yaml`, 200 episodes on the 6 novel
  motions.
- DRL runs use the DRL configs' full length (25 epochs, SGD, lr / 10 after epochs 10 and 20);
  FGSM / PGD attack a frame-wise ResNet-18 with the video model's widths
  (`configs/drl/scenemotion-{fgsm,pgd}.yaml`)."""


def plot(table, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    keys = ['frozen_acc1', 'dynamic_score', 'transfer_acc1', 'probe_acc1', 'fewshot_acc1']
    names = list(table)
    if not names:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4.2))
    for ax, key in zip(axes, keys):
        vals = [[r[key] for r in table[n].values() if key in r] for n in names]
        means = [statistics.mean(v) if v else 0 for v in vals]
        errs = [ci95(v) if len(v) > 1 else 0 for v in vals]
        ax.bar(range(len(names)), means, yerr=errs, capsize=3, color='tab:blue')
        ax.set_xticks(range(len(names)), [n.replace('resnet3d-', '+') for n in names], rotation=50, ha='right')
        ax.set_title(COLUMNS[key][0], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
