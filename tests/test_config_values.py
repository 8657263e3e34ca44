"""Config values are checked, not coerced: range / shape rules, duplicate YAML keys, ``-b 0``."""
import argparse
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import yaml

from core.config import ConfigError, fill_defaults, load_config, load_sp_config
from core.config_schema import ListOf, Range
from core.errors import UserError
from engine.build import build_loader
from engine.runner import apply_batch_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def nested(dotted, value):
    """``'a.b.c', 1`` -> ``{'a': {'b': {'c': 1}}}``."""
    out = value
    for key in reversed(dotted.split('.')):
        out = {key: out}
    return out


def write_cfg(tmp_path, dotted, value, name='c.yaml'):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(nested(dotted, value)))
    return str(path)


# (namespace, dotted key, bad values, accepted values)
RULES = [
    ('cfg', 'optimizer.epochs', [0, -1], [1, 30]),
    ('cfg', 'dataset.batch_size', [0, -4], [1, 8]),
    ('cfg', 'dataset.num_workers', [-1], [0, 4]),
    ('cfg', 'dataset.max_bad_fraction', [-0.01, 1.5, float('nan')], [0, 0.01, 1]),
    ('cfg', 'dataset.scenemotion.bias', [-0.1, 1.01], [0.0, 0.9, 1]),
    ('cfg', 'dataset.n_way', [0], [1, 5]),
    ('cfg', 'dataset.n_shot', [0], [1]),
    ('cfg', 'dataset.n_query', [0, -1], [1]),
    ('cfg', 'dataset.n_batch', [0], [1]),
    ('cfg', 'dataset.ep_per_batch', [0], [1]),
    ('cfg', 'dataset.transform.color_jitter',
     [[0.4, 0.4, 0.4], [0.4, 0.4, 0.4, 0.4, 0.4], [0.4, 0.4, 0.4, -0.1], [0.4, 0.4, 'x', 0.4], []],
     [None, [0.4, 0.4, 0.4, 0.4], [0, 0, 0, 0.1]]),
    ('cfg', 'dataset.transform.normalize.mean', [[0.5, 0.5], [0.5, 0.5, 0.5, 0.5], [0.5, 'a', 0.5]],
     [[0.485, 0.456, 0.406], [0, 0, 0]]),
    ('cfg', 'dataset.transform.normalize.std', [[0.2, 0, 0.2], [0.2, 0.2, -0.1], [0.2, 0.2]],
     [[0.229, 0.224, 0.225], [1, 1, 1]]),
    ('cfg', 'model.args.dropout', [1, 1.0, -0.1], [0, 0.5, 0.99]),
    ('cfg', 'augment.prob', [1.1, -0.5], [0, 0.5, 1]),
    ('cfg', 'augment.mix', [[0.7, 0.3], [0.1, 1.2], [-0.1, 0.5], [0.5], [0.1, 0.2, 0.3]],
     [[0.3, 0.7], [0.5, 0.5], [0, 1]]),
    ('cfg', 'optimizer.clip_grad', [0, -1.0, float('nan')], [None, 0.5, 10]),
    ('cfg', 'eval_period', [0, -1], [1, 3]),
    ('sp', 'optimizer.epochs', [0, -2], [1, 25]),
    ('sp', 'optimizer.clip_grad', [0], [None, 1.0]),
    ('sp', 'eval_period', [0], [None, 2]),
    ('sp', 'visualize.every', [-1], [0, 2]),
    ('sp', 'adversary.args.eps', [-0.01], [0, 0.03]),
    ('sp', 'adversary.args.iters', [0, -1], [1, 7]),
    ('sp', 'criterion.lambda', [-0.5], [0, 0.5]),
    ('sp', 'model.args.dropout', [1.0], [0.0]),
]
BAD = [pytest.param(ns, key, v, id=f'{ns}:{key}={v!r}') for ns, key, bad, _ in RULES for v in bad]
GOOD = [pytest.param(ns, key, v, id=f'{ns}:{key}={v!r}') for ns, key, _, good in RULES for v in good]


def load(ns, path, overrides=()):
    return (load_sp_config if ns == 'sp' else load_config)(path, overrides)


@pytest.mark.parametrize('ns,key,value', BAD)
def test_bad_value_in_file_is_one_line_naming_key_value_file(tmp_path, ns, key, value):
    path = write_cfg(tmp_path, key, value)
    with pytest.raises(ConfigError) as e:
        load(ns, path)
    msg = str(e.value)
    assert '\n' not in msg
    assert f"'{key}'" in msg and path in msg and f'got {value!r}' in msg, msg


@pytest.mark.parametrize('ns,key,value', GOOD)
def test_value_within_the_rule_is_accepted(tmp_path, ns, key, value):
    cfg = load(ns, write_cfg(tmp_path, key, value))
    node = cfg
    for k in key.split('.'):
        node = node[k]
    assert node == value


def test_bad_value_from_override_names_the_override(tmp_path):
    path = write_cfg(tmp_path, 'optimizer.epochs', 3)
    with pytest.raises(ConfigError) as e:
        load_config(path, ['optimizer.epochs=-1'])
    msg = str(e.value)
    assert "'optimizer.epochs'" in msg and 'got -1' in msg and path in msg
    assert "override 'optimizer.epochs=-1'" in msg
    # the sp namespace: the override carries its prefix
    with pytest.raises(ConfigError,
                       match=r"'adversary\.args\.iters'.*override 'sp\.adversary\.args\.iters=0'.*got 0"):
        load_sp_config(path, ['sp.adversary.args.iters=0'])
    # a mapping set as a whole: its bad leaf still points at that override
    with pytest.raises(ConfigError, match=r"'augment\.mix'.*override 'augment=\{mix: \[0\.9, 0\.1\]\}'"):
        load_config(path, ['augment={mix: [0.9, 0.1]}'])


def test_values_are_checked_once_after_overrides(tmp_path):
    path = write_cfg(tmp_path, 'optimizer.epochs', 0)
    assert load_config(path, ['optimizer.epochs=2'])['optimizer']['epochs'] == 2
    with pytest.raises(ConfigError, match=r"'optimizer\.epochs' in .*c\.yaml must be >= 1, got 0"):
        load_config(path)


def test_types_still_checked_before_values(tmp_path):
    path = write_cfg(tmp_path, 'optimizer.epochs', 2)
    with pytest.raises(ConfigError, match=r"'optimizer\.epochs'.*must be int, got True"):
        load_config(path, ['optimizer.epochs=true'])
    with pytest.raises(ConfigError, match=r"'dataset\.transform\.color_jitter'.*must be list or null"):
        load_config(path, ['dataset.transform.color_jitter=0.4'])
    # adversary.args stays open: other keys pass unchecked
    sp = load_sp_config(write_cfg(tmp_path, 'adversary.args', {'eps': 0.03, 'alpha': 'anything'}))
    assert sp['adversary']['args']['alpha'] == 'anything'


def test_constraint_helpers():
    r = Range((int, float), 0, 1, hi_open=True)
    assert r.problem(0) is None and r.problem(0.5) is None
    assert r.problem(1) == 'must be in [0, 1)' and r.problem(True) and r.problem(float('nan'))
    assert Range(int, lo=1).problem(0) == 'must be >= 1'
    assert Range(float, lo=0, lo_open=True).describe() == '> 0'
    lst = ListOf(Range((int, float), 0, 1), length=2, ordered=True)
    assert lst.problem([0.2, 0.8]) is None
    assert lst.problem([0.8, 0.2]) == 'must be a list of 2 numbers in [0, 1] in non-decreasing order'
    assert ListOf(str).problem(['a', 'b']) is None and ListOf(str).problem(['a', 1])
    assert ListOf(Range(int, lo=0)).problem([1, 2.5]) and ListOf(Range(float)).problem([1, 2.5]) is None


# ---- duplicate YAML keys ------------------------------------------------------------------

def test_duplicate_top_level_key_in_base_file(tmp_path):
    base = tmp_path / 'base.yaml'
    base.write_text('dataset:\n  name: ucf101\n  batch_size: 8\n'
                    'seed: 1\n'
                    'dataset:\n  batch_size: 4\n')
    child = tmp_path / 'child.yaml'
    child.write_text('_base_: [base.yaml]\noptimizer:\n  epochs: 2\n')
    with pytest.raises(ConfigError) as e:
        load_config(str(child))
    msg = str(e.value)
    assert '\n' not in msg
    assert "'dataset'" in msg and str(base) in msg and 'line 5' in msg and 'line 1' in msg, msg


def test_duplicate_key_inside_optimizer_args(tmp_path):
    p = tmp_path / 'c.yaml'
    p.write_text('optimizer:\n'
                 '  name: SGD\n'
                 '  args:\n'
                 '    lr: 0.1\n'
                 '    momentum: 0.9\n'
                 '    lr: 0.01\n')
    with pytest.raises(ConfigError) as e:
        load_config(str(p))
    msg = str(e.value)
    assert "'optimizer.args.lr'" in msg and str(p) in msg and 'line 6' in msg and 'line 4' in msg, msg


def test_duplicate_key_in_sp_config_and_in_override(tmp_path):
    p = tmp_path / 'sp.yaml'
    p.write_text('adversary:\n  name: FGSM\n  args: {eps: 0.03, iters: 5, eps: 0.1}\n')
    with pytest.raises(ConfigError, match=r"'adversary\.args\.eps'.*sp\.yaml at line 3"):
        load_sp_config(str(p))
    q = write_cfg(tmp_path, 'seed', 0)
    with pytest.raises(ConfigError, match=r"duplicate key 'x'"):
        load_config(q, ['optimizer.args={x: 1, x: 2}'])


def test_merge_keys_and_repeats_in_separate_mappings_are_fine(tmp_path):
    p = tmp_path / 'c.yaml'
    p.write_text('optimizer:\n'
                 '  name: SGD\n'
                 '  args: &sgd {lr: 0.1, momentum: 0.9}\n'
                 '  schedule:\n'
                 '    name: StepLR\n'
                 '    args:\n'
                 '      <<: *sgd\n'
                 '      lr: 0.5\n'
                 'criterion:\n'
                 '  name: CrossEntropyLoss\n'
                 '  args: {lr: 3}\n')
    cfg = load_config(str(p))
    assert cfg['optimizer']['schedule']['args'] == {'lr': 0.5, 'momentum': 0.9}


# ---- batch size: refused, not coerced -----------------------------------------------------

def test_batch_flag_zero_is_refused():
    args = argparse.Namespace(batch_size=0, debug=False, config='configs/x.yaml')
    with pytest.raises(ConfigError, match=r'-b/--batch-size must be >= 1, got 0'):
        apply_batch_flags({'dataset': {'batch_size': 8}}, args)
    args.batch_size = 3
    assert apply_batch_flags({'dataset': {'batch_size': 8}}, args)['dataset']['batch_size'] == 3


def _ctx(world):
    return SimpleNamespace(dist=SimpleNamespace(world_size=world, rank=0), seed=0, device=torch.device('cpu'))


def test_batch_smaller_than_process_count_is_an_error():
    data = list(range(10))
    with pytest.raises(UserError, match=r'dataset\.batch_size=2 is smaller than the 4 processes'):
        build_loader(data, {'dataset': {'batch_size': 2}}, _ctx(4), train=False)
    with pytest.raises(UserError, match=r'dataset\.batch_size=0 is smaller than the 1 processes'):
        build_loader(data, {'dataset': {'batch_size': 0}}, _ctx(1), train=False)
    with pytest.raises(UserError, match='not divisible'):
        build_loader(data, {'dataset': {'batch_size': 6}}, _ctx(4), train=False)
    assert build_loader(data, fill_defaults({'dataset': {'batch_size': 8}}), _ctx(4), train=False).batch_size == 2


# ---- end to end ---------------------------------------------------------------------------

@pytest.mark.parametrize('extra,words', [
    (['optimizer.epochs=-1'], ['optimizer.epochs', '-1']),
    (['-b', '0'], ['--batch-size', '0']),
])
def test_cli_bad_value_exits_2_with_one_line(tmp_path, extra, words):
    out = tmp_path / 'run'
    cmd = [sys.executable, 'main.py', 'configs/scenemotion/res3d18.yaml', *extra, '--output-dir', str(out)]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert 'configs/scenemotion/res3d18.yaml' in lines[0]
    assert not (out / 'results.json').exists()


@pytest.mark.parametrize('script', ['main-drl.py', 'main-drl-dir.py'])
def test_drl_configs_swapped_are_named_as_swapped(tmp_path, script):
    """The DRL config given first is reported as a swap of the two configs, not as an unknown
    key of the wrong file."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, script, 'configs/drl/scenemotion-fgsm.yaml', 'configs/scenemotion/res3d18.yaml',
                        '--output-dir', str(tmp_path / 'run')], cwd=root, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith('error:') and 'swap them' in lines[0], r.stderr
    assert 'configs/drl/scenemotion-fgsm.yaml is a DRL config' in lines[0]
    assert not (tmp_path / 'run').exists()
