import glob
import os
import subprocess
import sys

import pytest
import yaml

from core.config import ConfigError, fill_defaults, load_config, load_sp_config, parse_override
from core.registry import Registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = '/work/shared/reference/configs'


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_base_stacking_later_wins(tmp_path):
    write(tmp_path / 'a.yaml', {'dataset': {'name': 'x', 'batch_size': 8, 'transform': {'crop': 112}}})
    write(tmp_path / 'b.yaml', {'_base_': ['a.yaml'], 'dataset': {'batch_size': 4}})
    write(tmp_path / 'c.yaml', {'_base_': ['b.yaml'], 'optimizer': {'name': 'SGD', 'epochs': 2}})
    cfg = load_config(str(tmp_path / 'c.yaml'))
    assert cfg['dataset'] == fill_defaults({'dataset': {'name': 'x', 'batch_size': 4, 'transform': {'crop': 112}}})['dataset']
    assert cfg['optimizer']['epochs'] == 2
    assert '_base_' not in cfg


def test_overrides_parse_yaml_values(tmp_path):
    p = write(tmp_path / 'a.yaml', {'optimizer': {'name': 'SGD', 'epochs': 2, 'args': {'lr': 0.1}}})
    cfg = load_config(p, ['optimizer.epochs=5', 'optimizer.args.lr=1e-3', 'model.args.ret_feat=[pool]'])
    assert cfg['optimizer']['epochs'] == 5
    assert cfg['optimizer']['args']['lr'] == pytest.approx(1e-3)
    assert cfg['model']['args']['ret_feat'] == ['pool']
    assert parse_override('a.b=true') == ('a.b', True)


def test_unknown_key_names_key_file_and_closest(tmp_path):
    p = write(tmp_path / 'a.yaml', {'optimizer': {'name': 'SGD', 'epochs': 2}})
    with pytest.raises(ConfigError) as e:
        load_config(p, ['optimizer.epoch=3'])
    msg = str(e.value)
    assert "'optimizer.epoch'" in msg and p in msg and "'optimizer.epochs'" in msg
    assert '\n' not in msg


def test_unknown_key_in_file(tmp_path):
    p = write(tmp_path / 'a.yaml', {'dataset': {'batchsize': 2}})
    with pytest.raises(ConfigError, match="dataset.batch_size"):
        load_config(p)


def test_wrong_type(tmp_path):
    p = write(tmp_path / 'a.yaml', {'dataset': {'batch_size': 'eight'}})
    with pytest.raises(ConfigError, match="'dataset.batch_size'.*must be int"):
        load_config(p)
    p = write(tmp_path / 'b.yaml', {'model': {'args': {'dropout': 0.5, 'pretrained': 'yes'}}})
    with pytest.raises(ConfigError, match='pretrained'):
        load_config(p)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match='not found'):
        load_config(str(tmp_path / 'nope.yaml'))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('a: [1, 2\n')
    with pytest.raises(ConfigError, match='invalid YAML'):
        load_config(str(bad))


def test_sp_namespace_is_separate(tmp_path):
    p = write(tmp_path / 'main.yaml', {'optimizer': {'name': 'SGD', 'epochs': 100}})
    q = write(tmp_path / 'sp.yaml', {'model': None, 'shuffle': False,
                                     'optimizer': {'name': 'SGD', 'epochs': 25}})
    overrides = ['optimizer.epochs=7', 'sp.optimizer.epochs=1', 'sp.shuffle=true']
    cfg, sp = load_config(p, overrides), load_sp_config(q, overrides)
    assert cfg['optimizer']['epochs'] == 7 and 'shuffle' not in cfg
    assert sp['optimizer']['epochs'] == 1 and sp['shuffle'] is True and sp['model'] is None
    with pytest.raises(ConfigError, match="sp.adversry|adversary"):
        load_sp_config(q, ['sp.adversry.name=FGSM'])


@pytest.mark.parametrize('path', sorted(glob.glob(os.path.join(REF, '*', '*.yaml'))))
def test_schema_covers_reference_configs(path):
    if not os.path.isdir(REF):
        pytest.skip('reference configs not present')
    if '/drl/' in path or '/scoring/' in path:
        load_sp_config(path)
    else:
        load_config(path)


@pytest.mark.parametrize('path', sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '**', '*.yaml'), recursive=True)
                                          if '_base_' not in p.split(os.sep)))  # bases are parts, not runs
def test_shipped_configs_validate(path):
    if '/drl/' in path or '/scoring/' in path:
        load_sp_config(path)
    else:
        load_config(path)


def test_registry_errors():
    r = Registry('thing')
    r.register('resnet3d')(object)
    with pytest.raises(KeyError, match='registered twice'):
        r.register('resnet3d')(object)
    with pytest.raises(KeyError, match="did you mean 'resnet3d'"):
        r.get('resnet3')


def test_cli_typo_exits_with_one_line():
    cmd = [sys.executable, 'main.py', 'configs/scenemotion/res3d18.yaml', 'optimizer.epoch=3']
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    lines = [l for l in res.stderr.strip().splitlines() if l]
    assert len(lines) == 1, res.stderr
    assert 'optimizer.epoch' in lines[0] and 'optimizer.epochs' in lines[0]
    assert 'configs/scenemotion/res3d18.yaml' in lines[0]
