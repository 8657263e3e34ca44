"""benchmarks/train_step.py: same-run ratios, and an equivalence check that catches unequal work.

Tiny models (width 1/8) and clips (2 × 4 × 32 × 32) keep each run to seconds.
"""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

import train_step as ts

TINY = ['--batch', '2', '--frames', '4', '--size', '32', '--width', '0.125', '--classes', '10',
        '--threads', '1', '--device', 'cpu']


def models(workload):
    f0, g0 = ts.build_models(workload, 18, 10, 0.125, torch.device('cpu'), seed=0)
    return f0, g0, ts.make_batch(2, 4, 32, 10, torch.device('cpu'), seed=0)


def pair(workload, **kw):
    """Published and our step without its layout / BN-folding speed-ups (the algorithm check)."""
    f0, g0, batch = models(workload)
    return (*ts.make_pair(workload, f0, g0, **{**ts.PLAIN, **kw}), batch)


def test_train_step_prints_checks_and_same_run_ratios():
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    p = subprocess.run([sys.executable, os.path.join(ROOT, 'benchmarks', 'train_step.py'), *TINY,
                        '--repeats', '1', '--workload', 'baseline', 'drl-fgsm'],
                       check=False, capture_output=True, text=True, timeout=300, env=env,
                       cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    for w in ('baseline', 'drl-fgsm'):
        assert f'{w:9s} check: same loss' in out, out
        timing = [line for line in out.splitlines() if line.startswith(f'{w} ') and 'clips/s' in line]
        assert len(timing) == 1 and 'published' in timing[0] and 'ours/published' in timing[0], out
    ratios = dict(line.split(' ', 1)[1].split('=') for line in out.splitlines() if line.startswith('ratio '))
    assert set(ratios) == {'baseline', 'drl-fgsm'}
    assert all(float(v) > 0 for v in ratios.values())
    assert "authors'" not in out   # no figure from another run is divided into these


@pytest.mark.parametrize('workload', ['baseline', 'drl-fgsm', 'drl-pgd', 'drl-dir'])
def test_variants_compute_the_same_step(workload):
    pub, ours, batch = pair(workload)
    res = ts.check_pair(pub, ours, batch)
    assert res['worst'][1] <= 1e-3
    if workload == 'baseline':   # same kernels, same order: bit for bit
        assert res['worst'][1] == 0


def test_speedups_compute_the_same_functions():
    f0, g0, batch = models('drl-fgsm')
    fast = ts.make_ours('drl-fgsm', f0, g0, channels_last=True)   # + channels-last g, folded BN
    assert ts.uses_speedups('drl-fgsm', {**ts.PLAIN, 'fuse_bn': True})
    assert not ts.uses_speedups('baseline', {**ts.PLAIN, 'fuse_bn': True})
    err = ts.check_same_function(f0, g0, fast, batch)
    assert err['logits'] <= 1e-4 and err['input_grad'] <= 1e-3
    with torch.no_grad():   # a model that differs is caught
        next(fast.g.parameters()).mul_(1.1)
    err = ts.check_same_function(f0, g0, fast, batch)
    assert err['logits'] > 1e-2 and err['input_grad'] > 1e-2


def test_check_catches_a_different_attack():
    # published FGSM without momentum: a different perturbed clip
    pub, ours, batch = pair('drl-fgsm', published_args={'eps': 0.03, 'iters': 5, 'momentum': 0.0})
    with pytest.raises(ts.NotEquivalent, match='x_adv'):
        ts.check_pair(pub, ours, batch)


def test_check_catches_a_different_update_and_loss():
    pub, ours, batch = pair('baseline')
    pub.optimizer.param_groups[0]['lr'] = 0.02
    with pytest.raises(ts.NotEquivalent, match='update'):
        ts.check_pair(pub, ours, batch)
    pub, ours, batch = pair('drl-dir')
    ts_lambda = ts.LAMBDA
    try:
        ts.LAMBDA = 0.25   # the published penalty weight only (ours got λ when built)
        with pytest.raises(ts.NotEquivalent, match='loss'):
            ts.check_pair(pub, ours, batch)
    finally:
        ts.LAMBDA = ts_lambda


def test_failed_check_stops_before_timing(capsys):
    assert ts.main([*TINY, '--repeats', '1', '--workload', 'drl-dir', '--rtol', '1e-12']) == 1
    out = capsys.readouterr().out
    assert 'check FAILED, not timed' in out and 'ratio drl-dir' not in out


def test_debias_workloads_print_their_cost_against_the_plain_step(capsys):
    assert ts.main([*TINY, '--repeats', '1', '--workload', 'stillmix', 'be', 'fame', 'albar', 'mixup', 'cutmix']) == 0
    out = capsys.readouterr().out
    costs = dict(line.split(' ', 1)[1].split('=') for line in out.splitlines() if line.startswith('cost '))
    assert set(costs) == {'stillmix', 'be', 'fame', 'albar', 'mixup', 'cutmix'}
    assert all(float(v) > 0 for v in costs.values())
    assert 'method/plain' in out and 'ratio ' not in out   # no published-vs-ours figure here
