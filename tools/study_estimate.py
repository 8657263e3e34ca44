"""Run-time estimate of `make study` and `make demo` from measured per-command times.

The old study (before the bias card and the debias/ methods) was timed on an idle machine:
145 min of wall time, 270 min of command time (docs/results/scenemotion.md, run notes), its
25-epoch attack trainings 765 s (FGSM) / 893 s (PGD), two at a time, one thread each. The new
commands cannot be timed on an idle machine now, so every command kind is timed in one period on
the loaded machine (``runs/study``: the study's own commands, ``job_time.json``; and
``runs/study/timing``: the old score / temporality commands and 2-epoch runs of each training
recipe, for its per-epoch cost), and the old graph is priced with the same times:

    load  = (old graph's command time, attacks left out, at today's times) / (270 min − attacks' idle time)

Today's times are normalised to the period's mean load: each command's time is divided by the
mean epoch time of the plain 3D trainings that ended while it ran, over their overall mean.
    new   = (new graph's command time, attacks left out, at today's times) / load + attacks' idle time
    wall  = new × 145 / 270   (the old run's wall / command-time ratio, two commands at a time)

The demo likewise: ``8.0 min × new demo / old demo`` at today's times (its 16 runs took 8.0 min
of wall time, two at a time, on 2026-12-02), plus ~2.2 min to create the venv.

    python tools/study_estimate.py [--out runs/study] [--json FILE] [--since EPOCH]

``--since EPOCH`` prices each command kind instead by the median time of the study's own jobs
that started after EPOCH (a run of the study on a quiet machine, two at a time: no
normalisation), and simulates the two-lane schedule of tools/jobs.Graph on the whole graph.
"""
import argparse
import csv
import glob
import json
import os
import subprocess
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import study  # noqa: E402
from tools.jobs import ROOT  # noqa: E402

OLD_WALL, OLD_CMD = 145.0, 270.0  # min, idle, 2026-12-02
ATTACK_IDLE = {'fgsm': 765.0, 'pgd': 893.0}  # s, idle, two at a time, 2026-12-02
OLD_DEMO_WALL, VENV_MIN = 8.0, 2.2  # min
OLD_COMMIT = '0c145c2~1'  # tools/study.py before the bias card


def kind(job):
    """A job's cost class: the measure's name, or the training recipe and its epochs."""
    parts = job.key.split('/')
    if len(parts) > 2:
        return parts[2]
    cmd = ' '.join(job.cmd)
    for m in ('fgsm', 'pgd'):
        if m in cmd:
            return m
    if 'main-drl-dir.py' in cmd:
        return 'dir'
    for m in ('stillmix', 'albar', 'fame', 'mixup', 'cutmix', 'be'):
        if f'res3d18-{m}.yaml' in cmd:
            return m
    if 'res2d18' in cmd:
        return 'r2d'
    return 'r3d24' if 'optimizer.epochs=24' in cmd else 'r3d'


def counts(graph):
    c = {}
    for job in graph.items.values():
        c[kind(job)] = c.get(kind(job), 0) + 1
    return c


def old_graph():
    """The study's job graph as it was before the bias card (tools/study.py at OLD_COMMIT)."""
    src = subprocess.run(['git', 'show', f'{OLD_COMMIT}:tools/study.py'], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    mod = types.ModuleType('old_study')
    mod.__file__ = os.path.join(ROOT, 'tools', 'study.py')
    exec(compile(src, 'old_study.py', 'exec'), mod.__dict__)
    return mod.build([0, 1, 2], '/nonexistent/old', True, 2, lambda m: None, '/nonexistent/page.md')[0]


def epoch_times(run_dir):
    """Per-epoch (train + val) seconds of a run's metrics.csv."""
    path = os.path.join(ROOT, run_dir, 'metrics.csv')
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [float(r['train_time']) + float(r.get('val_time') or 0) for r in rows]


def epoch_log(path):
    """``[(end time s, train_time, val_time)]`` of the ``epoch N |`` lines of a run's log.txt."""
    full = os.path.join(ROOT, path)
    if not os.path.isfile(full):
        return []
    out = []
    for line in open(full):
        if ' I epoch ' not in line or 'train_time' not in line:
            continue
        h, m, sec = (int(x) for x in line[:8].split(':'))
        vals = line.split()
        tt = float(vals[vals.index('train_time') + 1])
        vt = float(vals[vals.index('val_time') + 1]) if 'val_time' in vals else 0.0
        out.append((h * 3600 + m * 60 + sec, tt, vt))
    return out


def reference_epochs(out):
    """Epochs of plain 12-epoch 3D trainings (the study's resnet3d / resnet3d-bias0 and the
    calibration runs of the same command), the reference of the same period."""
    paths = glob.glob(os.path.join(ROOT, out, 'seed*', 'resnet3d', 'log.txt'))
    paths += glob.glob(os.path.join(ROOT, out, 'seed*', 'resnet3d-bias0', 'log.txt'))
    paths += glob.glob(os.path.join(ROOT, 'runs', 'calib', 'res3d18-bias0-s*', 'log.txt'))
    paths += glob.glob(os.path.join(ROOT, out, 'seed*', 'resnet3d-stillmix-24ep', 'log.txt'))  # step 1.03x plain
    seen, ref = set(), []
    for p in paths:
        for e in epoch_log(os.path.relpath(p, ROOT)):
            if e not in seen:  # a copied run's log appears twice
                seen.add(e)
                ref.append(e)
    return ref


def measured(out):
    """Seconds per command kind, measured in one period (see the module docstring)."""
    ref = reference_epochs(out)
    mean_ref = sum(e[1] for e in ref) / len(ref) if ref else None

    def load_index(start, end):
        """Mean train time of the reference epochs that ended while a command ran (else the 6
        nearest in time), over the mean of all reference epochs (1: the period's mean load)."""
        if not ref:
            return 1.0
        day = 86400
        s0, s1 = start % day, end % day  # the logs' clock is UTC time of day
        near = [e[1] for e in ref if s0 - 60 <= e[0] <= s1 + 60]
        if not near:
            near = [e[1] for e in sorted(ref, key=lambda e: abs(e[0] - (s0 + s1) / 2))[:6]]
        return (sum(near) / len(near)) / mean_ref

    t, src = {}, {}
    for path in glob.glob(os.path.join(ROOT, out, 'seed*', '*', '**', 'job_time.json'), recursive=True):
        with open(path) as f:
            j = json.load(f)
        parts = j['key'].split('/')
        name = parts[1]
        spec = study.MODELS.get(name) or study.SWEEP.get(name)
        if spec is None:
            continue
        k = parts[2] if len(parts) > 2 else kind(types.SimpleNamespace(key=j['key'], cmd=[spec[0], *spec[1]]))
        t.setdefault(k, []).append((j['end'] - j['start']) / load_index(j['start'], j['end']))
        src.setdefault(k, []).append(j['key'])
    times = {k: sum(v) / len(v) for k, v in t.items()}
    tdir = os.path.join(out, 'timing')
    walls = {}
    tfile = os.path.join(ROOT, tdir, 'times.txt')
    if os.path.isfile(tfile):
        for line in open(tfile):
            name, rc, wall, start = line.split()[:4]
            if rc == 'rc=0':
                w, s0 = float(wall.split('=')[1]), float(start.split('=')[1])
                walls[name] = w / load_index(s0, s0 + w)
    for k, name in (('score', 'old-score'), ('temporality', 'old-temporality'), ('dynamic_now', 'dynamic-now')):
        if name in walls:
            times[k], src[k] = walls[name], [f'{tdir}/{name}']
    # training recipes not run by the study yet: a 2-epoch run of the recipe against the plain
    # 3D trainings' epochs that ended during it (another lane or engineer, same load), i.e.
    # train-time ratio r, then 12-epoch r3d time x epochs / 12 x (share_train x r + 1 - share_train)
    ratios = {}
    for m, epochs, d in (('albar', 24, 'albar'), ('fame', 24, 'fame'), ('mixup', 24, 'mixup'),
                         ('cutmix', 24, 'cutmix'), ('be', 12, 'be'), ('dir', 25, 'dirfreeze')):
        run = epoch_log(f'{tdir}/{d}/log.txt')
        if not run or 'r3d' not in times:
            continue
        t0, t1 = run[0][0] - run[0][1] - run[0][2], run[-1][0]
        near = [e for e in ref if t0 - 60 <= e[0] <= t1 + 60]
        if not near:
            continue
        r = (sum(e[1] for e in run) / len(run)) / (sum(e[1] for e in near) / len(near))
        share = sum(e[1] for e in near) / sum(e[1] + e[2] for e in near)
        ratios[m] = {'train_ratio': r, 'reference_epochs': len(near), 'share_train': share}
        if m not in times:
            times[m] = times['r3d'] * epochs / 12 * (share * r + 1 - share)
            src[m] = [f'{tdir}/{d}: train-time ratio {r:.2f} to {len(near)} plain 3D epochs of the same minutes']
    if 'r3d24' not in times and 'r3d' in times:
        times['r3d24'], src['r3d24'] = 2 * times['r3d'], ['2 x r3d']
    if 'stillmix' not in times and 'r3d' in times and 'stillmix12' in times:
        times['stillmix'] = 2 * times['stillmix12']
    return times, src, ratios


def priced(c, times, attacks_idle):
    """(seconds at today's times without attacks, attacks' idle seconds, kinds without a time)."""
    now, idle, missing = 0.0, 0.0, []
    for k, n in c.items():
        if k in ATTACK_IDLE:
            idle += n * attacks_idle[k]
        elif k in times:
            now += n * times[k]
        else:
            missing.append(k)
    return now, idle, missing


def since(out, t0):
    """Median seconds per command kind over the study's jobs that started at or after ``t0``
    (epoch seconds): one period of one run of the study, no load normalisation."""
    t = {}
    for path in glob.glob(os.path.join(ROOT, out, 'seed*', '*', '**', 'job_time.json'), recursive=True):
        with open(path) as f:
            j = json.load(f)
        if j['start'] < t0:
            continue
        parts = j['key'].split('/')
        spec = study.MODELS.get(parts[1]) or study.SWEEP.get(parts[1])
        if spec is None:
            continue
        k = parts[2] if len(parts) > 2 else kind(types.SimpleNamespace(key=j['key'], cmd=[spec[0], *spec[1]]))
        t.setdefault(k, []).append(j['end'] - j['start'])
    return {k: sorted(v)[len(v) // 2] for k, v in t.items()}, {k: len(v) for k, v in t.items()}


DEMO_KIND = {'resnet2d': 'r2d', 'resnet3d': 'r3d', 'resnet3d-bias0': 'r3d', 'resnet3d-stillmix': 'stillmix12'}


def demo_times(folder):
    """Median seconds per command kind of a `make demo` run folder (its job_time.json files;
    the demo's commands are the study's, at the same settings, two at a time)."""
    t = {}
    for path in glob.glob(os.path.join(folder, 'seed*', '*', '**', 'job_time.json'), recursive=True):
        with open(path) as f:
            j = json.load(f)
        parts = j['key'].split('/')
        k = parts[2] if len(parts) > 2 else DEMO_KIND.get(parts[1])
        if k:
            t.setdefault(k, []).append(j['end'] - j['start'])
    return {k: sorted(v)[len(v) // 2] for k, v in t.items()}


def simulate(graph, price, lanes=2):
    """Wall seconds of ``graph`` run as tools/jobs.Graph runs it (``lanes`` commands at once, the
    first ready job in insertion order starts when a lane frees), each job taking
    ``price[kind]`` seconds."""
    jobs = list(graph.items.values())
    end, running, clock = {}, [], 0.0
    todo = [j for j in jobs]
    while todo or running:
        for j in list(todo):
            if len(running) >= lanes:
                break
            if all(d in end and end[d] <= clock for d in j.deps):
                running.append((clock + price[kind(j)], j.key))
                todo.remove(j)
        if not running:
            raise RuntimeError('a job waits on a job that never runs')
        running.sort()
        clock, key = running.pop(0)
        end[key] = clock
    return clock


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default='runs/study')
    ap.add_argument('--json', default=None)
    ap.add_argument('--dynamic-now', action='store_true',
                    help='price the dynamic score with runs/study/timing/dynamic-now (the recipe of today)')
    ap.add_argument('--since', type=float, default=None, metavar='EPOCH',
                    help='also price every command kind by the median time of the study jobs started after '
                         'EPOCH (one run, two at a time) and simulate make study\'s two-lane schedule')
    ap.add_argument('--idle-demo', default=None, metavar='DIR',
                    help='with --since: the runs folder of a `make demo` on an idle machine (e.g. runs/demo): its '
                         'per-kind times price those kinds, and its ratio to --since\'s prices scales the others')
    a = ap.parse_args(argv)
    times, src, ratios = measured(a.out)
    if a.dynamic_now or 'dynamic' not in times:
        if 'dynamic_now' in times:
            times['dynamic'], src['dynamic'] = times['dynamic_now'], src['dynamic_now']
    old = counts(old_graph())
    old_now, old_att, old_miss = priced(old, times, ATTACK_IDLE)
    load = old_now / (OLD_CMD * 60 - old_att)
    report = {'times_s': times, 'sources': src, 'epoch_ratio_vs_baseline': ratios, 'old_counts': old,
              'missing_times': sorted(set(old_miss)), 'load_factor': load, 'variants': {}}
    variants = {'new study, nothing cut': (), 'sweep points to --extra-sweep': ('sweep',),
                '+ DRL-aug variants without linear probe (make study)': ('sweep', 'aug_probe')}
    for label, cuts in variants.items():
        g = study.build([0, 1, 2], '/nonexistent/new', True, 2, lambda m: None, '/nonexistent/p.md', cuts=cuts)[0]
        c = counts(g)
        now, att, miss = priced(c, times, ATTACK_IDLE)
        cmd_min = (now / load + att) / 60
        report['variants'][label] = {'counts': c, 'command_min': cmd_min, 'wall_min': cmd_min * OLD_WALL / OLD_CMD,
                                     'missing_times': miss, 'commands': sum(c.values())}
    demo_old = {'r2d': 1, 'r3d': 2, 'stillmix12': 1, 'score': 4, 'temporality': 4, 'probe': 4}
    demo_new = {'r2d': 1, 'r3d': 2, 'stillmix12': 1, 'card': 4, 'dynamic': 4, 'probe': 4}
    t = dict(times)
    if 'stillmix' in t:
        t['stillmix12'] = t['stillmix'] / 2
    po, _, mo = priced(demo_old, t, ATTACK_IDLE)
    pn, _, mn = priced(demo_new, t, ATTACK_IDLE)
    if not (mo or mn):
        report['demo'] = {'wall_min': OLD_DEMO_WALL * pn / po, 'with_venv_min': OLD_DEMO_WALL * pn / po + VENV_MIN,
                          'ratio': pn / po}
    if a.since is not None:
        today, n = since(a.out, a.since)
        # kinds with no job of this run: the load-normalised time scaled by this run's median
        # ratio to it over the kinds timed in both (said in 'fallback')
        both = [k for k in today if k in times]
        ratio = sorted(today[k] / (times[k] / load) for k in both)[len(both) // 2] if both else 1.0
        price, fallback = {}, []
        g = study.build([0, 1, 2], '/nonexistent/new', True, 2, lambda m: None, '/nonexistent/p.md')[0]
        for k in counts(g):
            if k in today:
                price[k] = today[k]
            elif k in ATTACK_IDLE:
                price[k], _ = ATTACK_IDLE[k] * ratio, fallback.append(k)
            else:
                price[k], _ = times[k] / load * ratio, fallback.append(k)
        c = counts(g)
        report['since'] = {'t0': a.since, 'median_s': today, 'jobs_timed': n, 'ratio_to_estimate': ratio,
                           'fallback_kinds': fallback, 'price_s': price,
                           'command_min': sum(c[k] * price[k] for k in c) / 60,
                           'wall_min_two_lanes': simulate(g, price) / 60}
        if a.idle_demo:
            idle = demo_times(a.idle_demo)
            if 'stillmix12' in idle:
                idle['stillmix'] = 2 * idle.pop('stillmix12')   # the study's StillMix trains 24 epochs
            common = [k for k in idle if k in today]
            r = sorted(idle[k] / today[k] for k in common)[len(common) // 2] if common else 1.0
            p_idle, how = {}, {}
            for k in c:
                if k in idle:
                    p_idle[k], how[k] = idle[k], 'demo'
                elif k in today:
                    p_idle[k], how[k] = today[k] * r, 'this run x ratio'
                elif k in ATTACK_IDLE:
                    p_idle[k], how[k] = ATTACK_IDLE[k], 'idle 2026-12-02'
                else:
                    p_idle[k], how[k] = times[k] / load, 'load-normalised estimate'
            report['since']['idle'] = {'demo': idle, 'ratio_demo_to_run': r, 'price_s': p_idle, 'source': how,
                                       'command_min': sum(c[k] * p_idle[k] for k in c) / 60,
                                       'wall_min_two_lanes': simulate(g, p_idle) / 60}
    print(json.dumps(report, indent=1, default=str))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(report, f, indent=1, default=str)
    return report


if __name__ == '__main__':
    main()
