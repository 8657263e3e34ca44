"""The SceneMotion study's report: reads the result files of tools/study.py's runs and writes

* ``docs/results/scenemotion.md``, ``scenemotion.json`` and ``scenemotion.png``: every model's
  dynamic score, frozen-clip accuracy, the bias card's headline measures, transfer (fine-tune,
  linear probe), 5-shot and pretrain-val accuracy; paired differences against the 12- and the
  24-epoch baseline; for each method whether it de-biases, by how much and at what cost;
* ``docs/results/bias-card.md`` and ``bias-card.json``: every measure of the bias card
  (tools/bias_card.py) for the study's models, paired differences against the baseline and,
  per measure, whether the static controls sit on the static side of the motion-only model.

Both pages render whatever subset of the results exists: a model or seed whose command has not
finished shows ``—`` and the coverage table says what is missing.

Statistics: mean and 95 % confidence interval over seeds (Student t, ``n − 1`` degrees of
freedom); paired differences are taken per seed against the same seed's baseline, reported as
mean, standard deviation and 95 % CI over seeds; **clear** means ``|mean| > 2 × sd`` (at least
2 seeds).
"""
import csv
import json
import math
import os
import platform
import statistics

from measure.report import FIT_WARN
from tools.jobs import ROOT

BASE, BASE24 = 'resnet3d', 'resnet3d-24ep'
CONTROLS = ('resnet2d', 'resnet3d', 'resnet3d-bias0')  # static by construction, static baseline, motion only
STATIC, MOTION = ('resnet2d', 'resnet3d'), 'resnet3d-bias0'
# trained 24 epochs: their matched baseline is the 24-epoch one (both baselines are shown)
LONG = ('resnet3d-stillmix-24ep', 'resnet3d-fame', 'resnet3d-albar', 'resnet3d-mixup', 'resnet3d-cutmix')
BASELINES = (BASE, BASE24)
# the bias card's quantities: key -> (label, study step, path in bias_card.json, direction).
# Direction: +1 when a higher value means more motion, -1 when it means more scene, 0 neither.
CARD = {
    'dynamic_score': ('dynamic score', 'dynamic', ('measures', 'dynamic', 'value'), +1),
    'transfer_asis': ('transfer-test Acc@1 as is', 'dynamic', ('measures', 'dynamic', 'Acc@1'), +1),
    # how much of the model's decisions its mimic reproduces on its own training pool: low = the
    # model's decisions are unstable, and the dynamic score counts that too (docs/bias-card.md)
    'mimic_fit': ('mimic fit on its own pool', 'dynamic', ('measures', 'dynamic', 'agreement_train'), 0),
    'contrasted': ('contrasted accuracy', 'card', ('measures', 'temporality', 'value'), +1),
    'pretrain_acc1': ('pretrain-val Acc@1', 'card', ('measures', 'temporality', 'acc', 'normal', 'value'), 0),
    'frozen_acc1': ('frozen-clip Acc@1 (mean over frames)', 'card',
                    ('measures', 'temporality', 'acc', 'frozen_mean', 'value'), -1),
    'frozen_first': ('frozen-clip Acc@1, frame 0', 'card', ('measures', 'temporality', 'frozen_curve', '0'), -1),
    'frozen_min': ('frozen-clip Acc@1, worst frame', 'card',
                   ('measures', 'temporality', 'acc', 'frozen_min', 'value'), -1),
    'frozen_max': ('frozen-clip Acc@1, best frame', 'card',
                   ('measures', 'temporality', 'acc', 'frozen_max', 'value'), -1),
    'shuffled_acc1': ('shuffled-clip Acc@1', 'card', ('measures', 'temporality', 'acc', 'shuffled', 'value'), -1),
    'reversed_acc1': ('time-reversed Acc@1', 'card', ('measures', 'temporality', 'acc', 'reversed', 'value'), -1),
    'clip_wins': ('scene conflict: clip label wins', 'card', ('measures', 'conflict', 'value'), +1),
    'conflict_acc_clip': ("scene conflict: Acc@1 vs the clip's label", 'card',
                          ('measures', 'conflict', 'acc_clip', 'value'), +1),
    'conflict_acc_frame': ("scene conflict: Acc@1 vs the frame's label", 'card',
                           ('measures', 'conflict', 'acc_frame', 'value'), -1),
    'dynamic_dims': ('dynamic dims (%, Kowal)', 'card', ('measures', 'representation', 'value'), +1),
    'static_dims': ('static dims (%, Kowal)', 'card', ('measures', 'representation', 'static', 'value'), -1),
}
# the card's headline of each measure (the bias-card page's paired table)
HEADLINES = ('dynamic_score', 'contrasted', 'clip_wins', 'dynamic_dims', 'frozen_acc1', 'transfer_asis')
OTHER = {  # the study's other measures
    'transfer_acc1': ('transfer Acc@1 (fine-tuned)', 'finetune', ('Acc@1',), +1),
    'probe_acc1': ('transfer Acc@1 (linear probe)', 'probe', ('Acc@1',), +1),
    'fewshot_acc1': ('5-way 5-shot novel Acc@1', 'fewshot', ('Acc@1',), +1),
}
FIELDS = {**CARD, **OTHER}
EXTRA = {'score_pretrain': ('score_pretrain', ('dynamic_score',)),  # read, but not columns
         'penalty_kl': ('penalty', ('kl',)), 'penalty_ratio': ('penalty', ('ratio_actual_detached',)),
         'penalty_cos': ('penalty', ('cos_penalty_ce',))}
# the scenemotion page's columns
COLUMNS = ('pretrain_acc1', 'frozen_acc1', 'dynamic_score', 'contrasted', 'clip_wins', 'dynamic_dims',
           'transfer_asis', 'transfer_acc1', 'probe_acc1', 'fewshot_acc1')
PAIRED = ('dynamic_score', 'frozen_acc1', 'contrasted', 'clip_wins', 'dynamic_dims', 'transfer_acc1',
          'probe_acc1', 'fewshot_acc1', 'pretrain_acc1')
# a method de-biases when one of these moves in the de-biasing direction beyond 2 x the paired sd
DEBIAS = ('dynamic_score', 'frozen_acc1', 'contrasted')
# the verdict's caveats: a paired loss of pretrain-val accuracy beyond this many points, and a mimic
# fit below measure.report.FIT_WARN
TASK_LOSS = 20.0
STEPS = ('train', 'card', 'dynamic', 'probe', 'finetune', 'fewshot')
PENALTY = {'penalty_kl': 'KL(p(x) ‖ p(x_static)) on train clips',
           'penalty_ratio': 'actual / static-side-held gain of one step',
           'penalty_cos': 'cosine(penalty ascent, CE descent)'}
# per-epoch training diagnostics of the DRL runs and the de-biasing methods (metrics.csv columns)
DIAG = {
    'train_grad_ratio': '‖∇ penalty‖ / ‖∇ CE‖ at the logits',
    'train_loss_sp': 'KL(p(x) ‖ p(x_static)) (dir) / KD loss of the mimic (aug)',
    'train_Acc@1_sp': 'static agreement with f (%)',
    'train_Acc@1_sp_adv': 'spatial model agreement on perturbed clips (%)',
    'train_flip_f': 'f decisions changed by the perturbation (%)',
    'train_kl_f_adv': 'KL(f(x) ‖ f(x_adv))',
    'train_loss_cls': 'CE on clean clips',
    # the de-biasing methods' own terms and transform metrics (debias/, logged by the step)
    'train_loss_static_ce': 'ALBAR: CE of the static clip (pushed up)',
    'train_loss_static_negentropy': 'ALBAR: negative entropy of the static clip (−log 8 = −2.08 is uniform)',
    'train_loss_grad_penalty': 'ALBAR: ‖∇ of the static clip‖₂',
    'train_fame_motion_in_mask': "FAME: share of the clip's motion inside its mask",
    'train_loss_consistency': 'BE: KL(clean ‖ erased)',
}
DIAG_DEBIAS = ('train_loss_cls', 'train_loss_static_ce', 'train_loss_static_negentropy', 'train_loss_grad_penalty',
               'train_fame_motion_in_mask', 'train_loss_consistency')
DIAG_DRL = tuple(k for k in DIAG if k not in DIAG_DEBIAS or k == 'train_loss_cls')
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def label(key):
    return FIELDS[key][0]


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
    try:
        with open(full) as f:
            return json.load(f)
    except (OSError, ValueError):  # a file being written
        return None


def _dig(doc, keys):
    for k in keys:
        if isinstance(doc, dict) and k in doc:
            doc = doc[k]
        elif isinstance(doc, dict) and k.isdigit() and int(k) in doc:
            doc = doc[int(k)]
        else:
            return None
    return doc if isinstance(doc, (int, float)) and not isinstance(doc, bool) else None


def collect(paths):
    """``{section: {name: {seed: {key: value}}}}`` from every finished result file."""
    out = {}
    for (section, name, seed), p in paths.items():
        row, cache = {}, {}
        sources = {**{k: (step, keys) for k, (_, step, keys, _) in FIELDS.items()}, **EXTRA}
        for key, (step, keys) in sources.items():
            if step not in p:
                continue
            if step not in cache:
                cache[step] = _read(p[step])
            v = _dig(cache[step], keys) if cache[step] is not None else None
            if v is not None:
                row[key] = float(v)
        card = cache.get('card') or _read(p['card']) if 'card' in p else None
        row['_seconds'] = {f'card.{m}': s for m, s in ((card or {}).get('seconds') or {}).items()}
        dyn = _read(p['dynamic']) if 'dynamic' in p else None
        row['_seconds'].update({f'card.{m}': s for m, s in ((dyn or {}).get('seconds') or {}).items()})
        row['_trained'] = os.path.isfile(os.path.join(ROOT, p['train'])) if 'train' in p else False
        row['_diag'] = diagnostics(p['dir']) if row['_trained'] else {}   # not a training still running
        out.setdefault(section, {}).setdefault(name, {})[seed] = row
    return out


def diagnostics(run_dir):
    """First- and last-epoch values of the training diagnostics (``DIAG``) in ``metrics.csv``."""
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


def values(per_seed, key):
    return [r[key] for _, r in sorted(per_seed.items()) if key in r]


def paired(per_seed, base, key):
    """``[mean, sd, ci95 half-width, n]`` of the per-seed differences model − baseline, or None."""
    diffs = [r[key] - base[s][key] for s, r in sorted(per_seed.items()) if key in r and key in base.get(s, {})]
    if not diffs:
        return None
    sd = statistics.stdev(diffs) if len(diffs) > 1 else None
    return [statistics.mean(diffs), sd, ci95(diffs) if len(diffs) > 1 else None, len(diffs)]


def is_clear(d):
    return d is not None and d[1] is not None and abs(d[0]) > 2 * d[1]


def matched(name):
    """The baseline of the same training length."""
    return BASE24 if name in LONG else BASE


def verdict(name, table):
    """Does ``name`` de-bias against its matched baseline (the other one while the matched one
    has no paired seed yet), by how much, at what cost."""
    keys = (*DEBIAS, 'pretrain_acc1', 'transfer_acc1', 'probe_acc1')
    base_name, note = matched(name), None
    d = {k: paired(table[name], table.get(base_name, {}), k) for k in keys}
    n = max((x[3] for x in d.values() if x), default=0)
    other = BASE if base_name == BASE24 else BASE24
    if n < 2 and other in table:
        d2 = {k: paired(table[name], table[other], k) for k in keys}
        n2 = max((x[3] for x in d2.values() if x), default=0)
        if n2 >= 2 > n:
            note, base_name, d, n = f'`{base_name}` not run yet', other, d2, n2
    if n < 2:
        return {'baseline': base_name, 'debiases': f'not decided ({n} paired seed{"s" if n != 1 else ""})',
                'paired': d, 'seeds': n, 'note': note}
    sign = {k: FIELDS[k][3] for k in DEBIAS}
    towards = [k for k in DEBIAS if is_clear(d[k]) and d[k][0] * sign[k] > 0]
    against = [k for k in DEBIAS if is_clear(d[k]) and d[k][0] * sign[k] < 0]
    if 'dynamic_score' in towards:
        word = 'yes'
    elif towards:
        word = 'partly (' + ', '.join(label(k) for k in towards) + ')'
    elif against:
        word = 'no: more static (' + ', '.join(label(k) for k in against) + ')'
    elif d['dynamic_score'] is None:
        word = 'not decided (no dynamic score yet), no clear change of the card measures'
    else:
        word = 'no'
    # what the verdict cannot see: a model that fails its task, or whose decisions no mimic can
    # fit, looks "dynamic" to the dynamic score and the frozen-clip measures
    acc = d['pretrain_acc1']
    if is_clear(acc) and acc[0] < -TASK_LOSS:
        word += f'; **but the task breaks** (pretrain-val Acc@1 {acc[0]:+.0f} points)'
    fit = [v for v in values(table[name], 'mimic_fit') if v is not None]
    if fit and statistics.mean(fit) < FIT_WARN:
        word += (f'; the mimic fits only {statistics.mean(fit):.2f} of its pool (unstable decisions '
                 'inflate the dynamic score)')
    return {'baseline': base_name, 'note': note, 'debiases': word, 'towards': towards, 'against': against,
            'paired': d, 'seeds': n}


def summary(table):
    """The JSON of the study: per model mean/CI, transfer spread, paired differences against
    both baselines and the verdict."""
    models = {}
    for name, per_seed in table.items():
        entry = {}
        for key in FIELDS:
            vals = values(per_seed, key)
            if vals:
                entry[key] = [statistics.mean(vals), ci95(vals) if len(vals) > 1 else None]
                if key in ('transfer_acc1', 'probe_acc1'):
                    entry[key + '_std'] = statistics.stdev(vals) if len(vals) > 1 else None
        for tag, base_name in (('paired', BASE), ('paired_24ep', BASE24)):
            if name == base_name or base_name not in table:
                continue
            diffs = {k: paired(per_seed, table[base_name], k) for k in FIELDS}
            entry[tag] = {k: v for k, v in diffs.items() if v}
        if name not in CONTROLS and name != BASE24 and (BASE in table or BASE24 in table):
            entry['verdict'] = verdict(name, table)
        entry['seeds'] = sorted(s for s, r in per_seed.items() if r.get('_trained'))
        models[name] = entry
    return models


def _cell(d):
    if not d:
        return '—'
    mean, sd, _, n = d
    sd_s = f' (sd {fmt(sd, 2)})' if sd is not None else f' ({n} seed)'
    return f'{mean:+.3g}{sd_s}{" **clear**" if is_clear(d) else ""}'


def paired_lines(models, tag='paired', base=BASE, keys=PAIRED, only=None):
    lines = [f'| model vs `{base}` (same seed) | ' + ' | '.join(label(k) for k in keys) + ' |',
             '|---|' + '---|' * len(keys)]
    for name, e in models.items():
        if name == base or not e.get(tag) or (only is not None and name not in only):
            continue
        lines.append(f'| {name} | ' + ' | '.join(_cell(e[tag].get(k)) for k in keys) + ' |')
    return lines


def verdict_lines(models):
    lines = ['| method | matched baseline | de-biases? | dynamic score | frozen-clip Acc@1 | contrasted accuracy | '
             'cost: pretrain-val Acc@1 | transfer (fine-tuned) | transfer (linear probe) | seeds |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for name, e in models.items():
        v = e.get('verdict')
        if not v:
            continue
        p = v['paired']
        lines.append(f"| {name} | `{v['baseline']}`{' (' + v['note'] + ')' if v.get('note') else ''} | {v['debiases']} | "
                     + ' | '.join(_cell(p.get(k)) for k in (*DEBIAS, 'pretrain_acc1', 'transfer_acc1', 'probe_acc1'))
                     + f" | {v['seeds']} |")
    return lines


def coverage(table, graph, names):
    """Rows ``name | trained | card | dynamic | ...``: finished seeds per step, from the graph."""
    state = {}
    for j in graph.items.values():
        parts = j.key.split('/')
        if len(parts) < 2:
            continue
        step = parts[2] if len(parts) > 2 else 'train'
        state.setdefault((parts[1], step), []).append((parts[0], j.state))
    lines = ['| model | ' + ' | '.join(STEPS) + ' |', '|---|' + '---|' * len(STEPS)]
    for name in names:
        cells = []
        for step in STEPS:
            runs = state.get((name, step), [])
            if not runs:
                cells.append('—')
                continue
            done = [s for s, st in runs if st == 'done']
            by_state = {}
            for s, st in runs:
                if st != 'done':
                    by_state.setdefault(st, []).append(s)
            missing = '; '.join(f'{st}: {", ".join(ss)}' for st, ss in sorted(by_state.items()))
            cells.append(f'{len(done)}/{len(runs)}' + (f' ({missing})' if missing else ''))
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return lines


def diag_lines(table, only=None):
    """Table of the first → last epoch values of the ``DIAG`` columns (``only``: a subset) that
    some run of ``table`` logged, one row per such run."""
    cols = [k for k in DIAG if only is None or k in only]
    own = [k for k in cols if k != 'train_loss_cls']  # logged by every run: does not pick the rows
    names = [n for n in table if any(k in r['_diag'] for r in table[n].values() for k in own)]
    keys = [k for k in cols if any(k in r['_diag'] for n in names for r in table[n].values())]
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


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def _complete(table, graph, names, steps):
    """Whether every (model, seed, step) of ``names`` x ``steps`` in the graph is done."""
    for j in graph.items.values():
        parts = j.key.split('/')
        step = parts[2] if len(parts) > 2 else 'train'
        if len(parts) > 1 and parts[1] in names and step in steps and j.state != 'done':
            return False
    return True


def write(paths, seeds, graph, page, command=None):
    data = collect(paths)
    table, sweep = data.get('main', {}), data.get('sweep', {})
    models = summary(table)
    done = sorted({s for n in table.values() for s, r in n.items() if r.get('_trained')})
    state = {}
    for j in graph.items.values():
        state[j.state] = state.get(j.state, 0) + 1
    wall, busy = graph.times()
    doc = os.path.dirname(page)
    command = command or f'python tools/study.py --seeds {" ".join(map(str, seeds))}'
    complete = all(v == 'done' for v in (j.state for j in graph.items.values()))
    with open(os.path.join(doc, 'scenemotion.json'), 'w') as f:
        json.dump({'seeds': done, 'complete': complete, 'command': command, 'cpu': cpu_model(),
                   'models': models}, f, indent=1, default=lambda v: None)
        f.write('\n')
    plot(table, os.path.join(doc, 'scenemotion.png'))
    partial = '' if complete else (
        '**Partial results**: not every command of the study has finished (coverage table below; `—` marks a '
        'figure whose command has not run). ')
    lines = [
        '# SceneMotion study: does the dynamic score tell static from dynamic models, and which '
        'de-biasing methods make a static-biased model more dynamic?', '',
        partial + f'Generated by `{command}` on a 2-core CPU machine ({cpu_model()}), two commands at a '
        'time with one thread each. '
        f'Command time of the finished commands: {busy / 60:.0f} min (the sum, each timed by the runner), '
        f'{wall / 60:.0f} min from the first to the last (pauses, restarts and other users\' load included; '
        'run notes and the run-time estimate at the end); '
        f'commands {", ".join(f"{k}: {v}" for k, v in sorted(state.items()))}. '
        'Chance: 12.5 % (8 classes), 20 % for 5-way few-shot. Cells: mean ± 95 % CI over seeds '
        '(Student t); protocol and columns below the tables.', '',
        '## Models', '',
        '| model | ' + ' | '.join(label(k) for k in COLUMNS) + ' |',
        '|---|' + '---|' * len(COLUMNS)]
    shown = [n for n, per_seed in table.items() if any(k in r for r in per_seed.values() for k in FIELDS)]
    for name in shown:
        lines.append(f'| {name} | ' + ' | '.join(mean_ci(values(table[name], k)) for k in COLUMNS) + ' |')
    if len(shown) < len(table):
        lines += ['', 'No figure yet (coverage table below): '
                  + ', '.join(f'`{n}`' for n in table if n not in shown) + '.']
    lines += ['', '## Does each method de-bias, by how much, at what cost?', '',
              'Against the baseline of the same training length (12 epochs: `resnet3d`; 24 epochs: '
              '`resnet3d-24ep`), per seed, then mean and sd over seeds. **De-biases: yes** when the dynamic '
              'score rises beyond 2 × its paired sd; *partly* when only frozen-clip accuracy (falling) or '
              'contrasted accuracy (rising) moves beyond 2 × sd; *no* otherwise. The cost is the paired change of '
              'pretrain-val accuracy (the original task) and of transfer. A model that fails its task, or whose '
              'decisions no frame-wise mimic can fit, also looks dynamic to these measures: the verdict says so '
              f'when pretrain-val accuracy falls by more than {TASK_LOSS:g} points (clear) or when the mimic fits '
              f'less than {FIT_WARN:g} of its own pool (docs/bias-card.md, "Reading the dynamic score").', '']
    lines += verdict_lines(models)
    lines += ['', '## Paired differences against the 12-epoch baseline', '',
              "Per seed, model minus that seed's `resnet3d`; mean and standard deviation over seeds. "
              '**clear**: |mean| > 2 × sd.', ''] + paired_lines(models)
    lines += ['', '## Paired differences against the 24-epoch baseline', '',
              "Per seed, model minus that seed's `resnet3d-24ep` (the baseline recipe at StillMix's length).", '']
    rows24 = paired_lines(models, 'paired_24ep', BASE24)
    lines += rows24 if len(rows24) > 2 else [f'No paired figures yet (`{BASE24}` and a method of the same seed both needed).']
    lines += ['', '## Coverage', '', 'Finished seeds per step (`held`: left out by `--models` / `--steps`; '
              '`todo`: not run yet; `failed` / `skipped`: see the log).', '']
    lines += coverage(table, graph, list(table))
    rows = diag_lines(table, DIAG_DRL)
    lines += ['', '## Training diagnostics of the DRL runs (mean over seeds)', ''] + (rows or ['No DRL run yet.'])
    rows = diag_lines(table, DIAG_DEBIAS)
    if rows:
        lines += ['', '## Training diagnostics of the de-biasing methods (mean over seeds)', '',
                  "Each method's own loss terms (unweighted) and transform metrics, from its runs' "
                  '`metrics.csv`; FAME\'s mask against the object: `python tools/fame_mask.py` (run notes).', ''] + rows
    rows = [(n, per_seed) for n, per_seed in list(table.items()) + list(sweep.items())
            if any('penalty_kl' in r for r in per_seed.values())]
    if rows:
        lines += ['', '## What a step along the DRL-dir penalty does (`tools/penalty_probe.py`, mean over seeds)', '',
                  'Eval mode, 8 training batches, step 0.0005 along the gradient of the detached penalty '
                  '(frozen clips; shuffled for the shuffle run).', '',
                  '| model | ' + ' | '.join(PENALTY.values()) + ' |', '|---|' + '---|' * len(PENALTY)]
        for name, per_seed in rows:
            lines.append(f'| {name} | ' + ' | '.join(mean_ci(values(per_seed, k)) for k in PENALTY) + ' |')
    protocol = data.get('protocol', {})
    if protocol:
        lines += ['', f'## Why score on transfer (seed {seeds[0]})', '',
                  'The controls scored as the published code would score them on a scene-biased dataset, on '
                  'pretrain-val (bias 0.9: the scene predicts the class ~90 % of the time; `main-drl.py` with '
                  '`configs/scoring/scenemotion.yaml`), and by the bias card on transfer-test:', '',
                  '| model | dynamic score on pretrain-val (published) | dynamic score on transfer (card) |',
                  '|---|---|---|']
        for name, per_seed in protocol.items():
            r = next(iter(per_seed.values()))
            lines.append(f"| {name} | {fmt(r.get('score_pretrain'))} | {fmt(r.get('dynamic_score'))} |")
    if sweep:
        keys = ('pretrain_acc1', 'frozen_acc1', 'dynamic_score', 'contrasted', 'transfer_asis')
        lines += ['', f'## Sweep (seed {seeds[0]}): where does each variant start to act?', '',
                  '| run | ' + ' | '.join(label(k) for k in keys) + ' |', '|---|' + '---|' * len(keys)]
        for name, per_seed in sweep.items():
            r = next(iter(per_seed.values()))
            lines.append(f'| {name} | ' + ' | '.join(fmt(r.get(k)) for k in keys) + ' |')
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
    write_card_page(table, graph, os.path.join(doc, 'bias-card.md'), command)


PROTOCOL = """## Protocol and columns

- Every model is measured on its last-epoch `checkpoint.pth.tar`.
- The bias card (`tools/bias_card.py`, docs/bias-card.md) gives every column but transfer and
  5-shot, in two commands per model: `--measures temporality conflict representation` on
  pretrain-val (the config's `test` split: scene predicts the class with probability ≈ 0.9,
  where the models are accurate), and `--measures dynamic`, whose mimic trains on every split
  but transfer-test and is scored on transfer-test (docs/drl.md, "Where to score"). Two commands
  so that a change of the mimic's recipe reruns only the dynamic score.
- *pretrain-val Acc@1*: normal clips. *frozen-clip Acc@1*: one frame repeated over time, mean
  over the frame index (the card's `frozen_mean`; the 2026-12-02 run used the first frame only,
  `tools/temporality.py`). Frozen ≈ normal means the model answers from the scene.
- *contrasted accuracy*: share of videos right on the real clip and wrong on its frozen copy,
  averaged over the frame index (Li et al., ICCV 2023). *clip label wins*: every clip blended
  half-and-half with a still frame of a video of another class; the share where the clip's label
  gets the higher probability. *dynamic dims*: share of the pooled features' dimensions that
  encode the dynamics (Kowal et al., CVPR 2022; pairs: frame-shuffled copy / same motion on
  another scene).
- *dynamic score*: a frame-wise mimic (measure/mimic.py's recipe) learns the fixed model's
  outputs without labels; 1 − its agreement on transfer-test (480 videos, scene independent of
  class). *transfer-test Acc@1 as is*: the model without fine-tuning on transfer-test (a scene
  model is at chance there).
- *transfer (fine-tuned)*: the whole model, new head, 10 epochs on transfer-train (480 videos),
  tested once after the last epoch on transfer-test (480); *linear probe*: the same with the
  backbone frozen (eval mode), only the new head trained. `transfer_acc1` in the JSON is the
  fine-tuned figure, `probe_acc1` the probe's.
- *5-way 5-shot*: `main-fsl.py configs/scenemotion-fs/*-5shot.yaml`, 200 episodes on the 6 novel
  motions.
- Methods: StillMix, FAME, ALBAR, mixup and CutMix train 24 epochs (`configs/scenemotion/res3d18-*.yaml`,
  docs/methods.md) and are compared with the 24-epoch baseline (and the 12-epoch one); Background
  Erasing trains the baseline's 12. DRL runs use the DRL configs' full length (25 epochs from the
  12-epoch baseline, SGD, lr / 10 after epochs 10 and 20); FGSM / PGD attack a frame-wise
  ResNet-18 with the video model's widths (`configs/drl/scenemotion-{fgsm,pgd}.yaml`)."""


# ---------------------------------------------------------------------------------------------
# docs/results/bias-card.md

CARD_MODELS_FIRST = ('resnet2d', 'resnet3d', 'resnet3d-bias0', 'resnet3d-24ep')
CARD_GROUPS = (
    ('Dynamic score and temporality', ('dynamic_score', 'mimic_fit', 'transfer_asis', 'contrasted', 'pretrain_acc1', 'frozen_acc1',
                                       'frozen_first', 'frozen_min', 'frozen_max', 'shuffled_acc1', 'reversed_acc1')),
    ('Scene conflict and representation level', ('clip_wins', 'conflict_acc_clip', 'conflict_acc_frame',
                                                 'dynamic_dims', 'static_dims')),
)


def separation(table, key):
    """Whether both static controls sit on the static side of the motion-only model, CIs apart.
    Returns ``(text, verdict)`` with verdict True / False / None (undecided)."""
    direction = CARD[key][3]
    if direction == 0:
        what = 'accuracy' if 'Acc@1' in label(key) else 'a control of the dynamic score'
        return f'not a bias measure ({what})', None
    motion = values(table.get(MOTION, {}), key)
    if not motion:
        return f'no `{MOTION}` result', None
    out, verdicts = [], []
    for name in STATIC:
        vals = values(table.get(name, {}), key)
        if not vals:
            out.append(f'no `{name}`')
            verdicts.append(None)
            continue
        side = (statistics.mean(vals) - statistics.mean(motion)) * direction < 0
        if len(vals) < 2 or len(motion) < 2:
            out.append(f"`{name}` {'static side' if side else 'motion side'}, CIs need 2 seeds")
            verdicts.append(None)
            continue
        gap = abs(statistics.mean(vals) - statistics.mean(motion)) - ci95(vals) - ci95(motion)
        apart = side and gap > 0
        out.append(f"`{name}` {'static side' if side else '**motion side**'}, "
                   f"{'CIs apart' if gap > 0 else '**CIs overlap**'}")
        verdicts.append(apart)
    verdict = None if None in verdicts else all(verdicts)
    return '; '.join(out), verdict


def card_summary(table):
    models = {}
    for name, per_seed in table.items():
        entry = {'seeds': sorted(s for s, r in per_seed.items() if any(k in r for k in CARD))}
        for key in CARD:
            vals = values(per_seed, key)
            if vals:
                entry[key] = {'mean': statistics.mean(vals), 'ci95': ci95(vals) if len(vals) > 1 else None,
                              'per_seed': {str(s): r[key] for s, r in sorted(per_seed.items()) if key in r}}
        for tag, base_name in (('paired', BASE), ('paired_24ep', BASE24)):
            if name != base_name and base_name in table:
                d = {k: paired(per_seed, table[base_name], k) for k in CARD}
                entry[tag] = {k: dict(zip(('mean', 'sd', 'ci95', 'n'), v)) for k, v in d.items() if v}
        secs = {}
        for r in per_seed.values():
            for m, s in r.get('_seconds', {}).items():
                secs.setdefault(m, []).append(s)
        entry['seconds'] = {m: statistics.mean(v) for m, v in secs.items()}
        models[name] = entry
    return models


def write_card_page(table, graph, page, command):
    names = [n for n in CARD_MODELS_FIRST if n in table] + [n for n in table if n not in CARD_MODELS_FIRST]
    have = [n for n in names if any(any(k in r for k in CARD) for r in table[n].values())]
    models = card_summary({n: table[n] for n in names})
    seps = {k: separation(table, k) for k in CARD}
    complete = _complete(table, graph, names, ('train', 'card', 'dynamic'))
    present = [f"`{n}` (seeds {', '.join(map(str, models[n]['seeds']))})" for n in have]
    doc = {'schema': 'study_bias_card/1', 'complete': complete, 'command': command, 'cpu': cpu_model(),
           'models': models, 'separation': {k: {'text': t, 'apart': v} for k, (t, v) in seps.items()}}
    with open(os.path.splitext(page)[0] + '.json', 'w') as f:
        json.dump(doc, f, indent=1, default=lambda v: None)
        f.write('\n')
    lines = ['# The bias card on SceneMotion: every measure for the study\'s models', '']
    if not complete:
        lines += ['**Partial results.** Models and seeds present: ' + (', '.join(present) or 'none') + '. '
                  'Commands not finished are listed in the coverage table; `—` marks a missing figure.', '']
    lines += [f'Generated by `{command}` (tools/study.py, tools/study_page.py) on a 2-core CPU machine ({cpu_model()}). '
              'Each model is carded by two commands of `tools/bias_card.py` (the exact lines are at the end): '
              'temporality, scene conflict and the representation level on pretrain-val, the dynamic score '
              'with its mimic trained without transfer-test and scored on transfer-test (docs/bias-card.md). '
              'Cells: mean ± 95 % CI over seeds (Student t); percent, the dynamic score in [0, 1].', '']
    absent = [n for n in names if n not in have]
    if absent:
        lines += ['Not carded yet (no row below): ' + ', '.join(f'`{n}`' for n in absent) + '.', '']
    for title, keys in CARD_GROUPS:
        lines += [f'## {title}', '', '| model | ' + ' | '.join(label(k) for k in keys) + ' |',
                  '|---|' + '---|' * len(keys)]
        for n in have:
            lines.append(f'| {n} | ' + ' | '.join(mean_ci(values(table[n], k)) for k in keys) + ' |')
        lines.append('')
    seeds = sorted({s for n in have for s in table[n]})
    if any('dynamic_score' in table[n].get(s, {}) for n in have for s in seeds):
        lines += ['## Dynamic score per seed', '',
                  'Each seed\'s score on transfer-test (1 mimic seed); issue 25\'s calibration asks ≤ 0.05 for '
                  '`resnet2d` on each seed and a range `resnet3d-bias0` − `resnet2d` ≥ 0.45. Why no mimic meets both on '
                  'SceneMotion (a late frame tells part of the class, so a stronger mimic lowers the motion '
                  'model\'s score more than the floor): docs/results/dynamic-score-calibration.md, "A stronger '
                  'mimic".', '',
                  '| model | ' + ' | '.join(f'seed {s}' for s in seeds) + ' |', '|---|' + '---|' * len(seeds)]
        for n in have:
            lines.append(f'| {n} | ' + ' | '.join(fmt(table[n].get(s, {}).get('dynamic_score')) for s in seeds) + ' |')
        lines.append('')
    lines += ['## Do the static controls sit on the static side of the motion-only model?', '',
              f'For each measure: both static controls (`resnet2d`, static by construction; `resnet3d`, the '
              f'scene-biased baseline) against `{MOTION}` (trained where scene and class are independent), '
              'with 95 % CIs apart.', '', '| measure | higher means | result | separates |', '|---|---|---|---|']
    for k in CARD:
        text, v = seps[k]
        d = {1: 'motion', -1: 'scene', 0: '—'}[CARD[k][3]]
        lines.append(f"| {label(k)} | {d} | {text} | {'yes' if v else 'n/a' if v is None else '**no**'} |")
    lines += ['', '## Paired differences against the baseline', '',
              "Per seed, model minus that seed's `resnet3d`; mean (sd over seeds), **clear**: |mean| > 2 × sd.", '']
    lines += paired_lines({n: {'paired': {k: [e['mean'], e['sd'], e['ci95'], e['n']]
                                          for k, e in models[n].get('paired', {}).items()}} for n in have},
                          keys=HEADLINES + ('pretrain_acc1',))
    long_names = [n for n in have if n in LONG and models[n].get('paired_24ep')]
    if long_names:
        lines += ['', "Methods trained 24 epochs against the same seed's `resnet3d-24ep`:", '']
        lines += paired_lines({n: {'paired_24ep': {k: [e['mean'], e['sd'], e['ci95'], e['n']]
                                                   for k, e in models[n].get('paired_24ep', {}).items()}}
                               for n in have}, 'paired_24ep', BASE24, HEADLINES + ('pretrain_acc1',), only=long_names)
    secs = {}
    for n in names:
        for m, s in models[n]['seconds'].items():
            secs.setdefault(m, []).append(s)
    if secs:
        lines += ['', '## Time per measure', '',
                  'Mean wall time of each measure over the cards above (one thread, the card\'s own `seconds`; '
                  'measured while other work shared the machine unless the run notes say otherwise):', '',
                  '| measure | seconds |', '|---|---|']
        lines += [f'| {m.split(".", 1)[1]} | {statistics.mean(v):.0f} |' for m, v in sorted(secs.items())]
    lines += ['', '## Coverage', ''] + coverage(table, graph, names)
    notes = os.path.join(os.path.dirname(page), 'bias-card-notes.md')  # written by hand
    if os.path.isfile(notes):
        with open(notes) as f:
            lines += ['', f.read().strip()]
    lines += ['', '## Commands', '', '```']
    lines += [j.shown if j.state == 'done' else f'{j.shown}   # {j.state}, not in the tables'
              for j in graph.items.values() if j.key.split('/')[-1] in ('card', 'dynamic')
              and j.key.split('/')[1] in names]
    lines += ['```', '']
    with open(page, 'w') as f:
        f.write('\n'.join(lines))


def plot(table, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    keys = ['frozen_acc1', 'dynamic_score', 'contrasted', 'transfer_acc1', 'probe_acc1', 'fewshot_acc1']
    names = list(table)
    if not names:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4.2))
    for ax, key in zip(axes, keys):
        vals = [values(table[n], key) for n in names]
        means = [statistics.mean(v) if v else 0 for v in vals]
        errs = [ci95(v) if len(v) > 1 else 0 for v in vals]
        ax.bar(range(len(names)), means, yerr=errs, capsize=3, color='tab:blue')
        ax.set_xticks(range(len(names)), [n.replace('resnet3d-', '+') for n in names], rotation=50, ha='right')
        ax.set_title(label(key), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
