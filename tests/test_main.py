"""End-to-end runs of main.py on a tiny UCF101-format tree (real videos, real models)."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.fake_trees import make_ucf101

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NORM = {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}


def tiny_config(path, root, epochs=2, **model_extra):
    cfg = {
        'dataset': {
            'name': 'ucf101', 'root': str(root), 'batch_size': 4,
            'transform': {'resize': 32, 'crop': 28, 'hflip': True, 'color_jitter': [0.2, 0.2, 0.2, 0.1],
                          'normalize': NORM},
            'args': {'train': {'n_clips': 1, 'n_frames': 4, 'fps': 8},
                     'test': {'n_clips': 1, 'n_frames': 4, 'fps': 8},
                     'test_final': {'n_clips': 2, 'n_frames': 4, 'fps': 8}},
        },
        'model': {'name': 'resnet3d', 'freeze_bn': True,
                  'args': {'n_class': 3, 'model_depth': 10, 'dropout': 0.0, 'widen_factor': 0.25, **model_extra}},
        'optimizer': {'name': 'SGD', 'epochs': epochs, 'args': {'lr': 0.05, 'momentum': 0.9},
                      'schedule': {'name': 'StepLR', 'args': {'step_size': 1, 'gamma': 0.5}}},
        'criterion': {'name': 'CrossEntropyLoss', 'args': {}},
    }
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture(scope='module')
def ucf_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('ucf')
    make_ucf101(root, n_groups=3)
    return root


def run_main(args, timeout=300, env=None):
    cmd = [sys.executable, 'main.py', *map(str, args), '-j', '0']
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})})
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_train_writes_run_folder(tmp_path, ucf_root):
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    out = tmp_path / 'run'
    run_main([cfg, '--output-dir', out, 'optimizer.epochs=1'])
    for name in ('results.json', 'config.yaml', 'checkpoint.pth.tar', 'model_best.pth.tar', 'metrics.csv', 'log.txt'):
        assert (out / name).is_file(), name
    assert any(n.startswith('events.out.tfevents') for n in os.listdir(out))
    res = json.loads((out / 'results.json').read_text())
    assert 0 <= res['Acc@1'] <= 100 and 'Acc@5' in res
    assert yaml.safe_load((out / 'config.yaml').read_text())['optimizer']['epochs'] == 1
    rows = list(csv.DictReader(open(out / 'metrics.csv')))
    assert len(rows) == 1 and rows[0]['epoch'] == '1'
    # per-video predictions of the final test: every test video once, by its id
    preds = list(csv.DictReader(open(out / 'predictions.csv')))
    assert len(preds) == res['n_videos'] and len({p['vid'] for p in preds}) == len(preds)
    correct = sum(p['label'] == p['pred'] for p in preds)
    assert correct / len(preds) * 100 == pytest.approx(res['Acc@1'], abs=1e-3)


def test_evaluate_and_finetune(tmp_path, ucf_root):
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    out = tmp_path / 'pre'
    run_main([cfg, '--output-dir', out, 'optimizer.epochs=1'])
    acc = json.loads((out / 'results.json').read_text())['Acc@1']
    # -e reuses the run folder's best weights and reproduces the final test exactly
    os.remove(out / 'results.json')
    run_main([cfg, '--output-dir', out, '-e'])
    assert json.loads((out / 'results.json').read_text())['Acc@1'] == pytest.approx(acc)
    # fine-tuning to another label count: head re-initialised, the rest loaded
    cfg4 = tiny_config(tmp_path / 'tiny4.yaml', ucf_root)
    res = run_main([cfg4, '--pretrain', out / 'checkpoint.pth.tar', '--output-dir', tmp_path / 'ft',
                    'model.args.n_class=5', 'optimizer.epochs=1'])
    assert 'head reset' in res.stdout
    assert (tmp_path / 'ft' / 'results.json').is_file()


def test_default_output_dir_rule(tmp_path, ucf_root):
    from engine.runner import default_output_dir
    assert default_output_dir('configs/k400/res3d18.yaml') == 'checkpoints/k400/res3d18'
    assert default_output_dir('configs/hmdb/res3d18.yaml', 'checkpoints/k400/res3d18/checkpoint.pth.tar') \
        == 'checkpoints/k400/res3d18/hmdb/res3d18'
    assert default_output_dir('configs/k400/res3d18.yaml', debug=True) == 'checkpoints/k400/res3d18_debug'


def test_killed_run_resumes_to_identical_results(tmp_path, ucf_root):
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root, epochs=3)
    ref = tmp_path / 'ref'
    run_main([cfg, '--output-dir', ref])
    out = tmp_path / 'killed'
    cmd = [sys.executable, 'main.py', cfg, '--output-dir', str(out), '-j', '0']
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 240
    while not (out / 'checkpoint.pth.tar').exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-way through epoch 2 (or later)
    proc.wait()
    assert not (out / 'results.json').exists(), 'run finished before it could be killed'
    run_main([cfg, '--output-dir', out])
    a = json.loads((ref / 'results.json').read_text())
    b = json.loads((out / 'results.json').read_text())
    assert a == b
    assert [r['train_loss'] for r in csv.DictReader(open(ref / 'metrics.csv'))] == \
        [r['train_loss'] for r in csv.DictReader(open(out / 'metrics.csv'))]


def test_no_resume_starts_over(tmp_path, ucf_root):
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root, epochs=1)
    out = tmp_path / 'run'
    run_main([cfg, '--output-dir', out])
    # more epochs is a changed setting: resumed only when asked (tests/test_run_safety.py)
    res = run_main([cfg, '--output-dir', out, 'optimizer.epochs=2', '--resume-changed'])
    assert 'resumed from' in res.stdout
    res = run_main([cfg, '--output-dir', out, '--no-resume'])
    assert 'resumed from' not in res.stdout


def test_user_errors_are_one_line(tmp_path, ucf_root):
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    cases = [
        ([cfg, 'model.name=resnet3', '--output-dir', tmp_path / 'a'], "did you mean 'resnet3d'"),
        ([cfg, 'optimizer.name=SDG', '--output-dir', tmp_path / 'b'], "'SGD'"),
        ([cfg, '-e', '--output-dir', tmp_path / 'c'], 'nothing to evaluate'),
        ([cfg, '--pretrain', tmp_path / 'missing.pth.tar', '--output-dir', tmp_path / 'd'], 'missing.pth.tar'),
        ([cfg, f'dataset.root={tmp_path / "nowhere"}', '--output-dir', tmp_path / 'e'], 'ucf101'),
    ]
    for args, needle in cases:
        res = subprocess.run([sys.executable, 'main.py', *map(str, args), '-j', '0'], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode != 0
        lines = [l for l in res.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and needle in lines[0], res.stderr[-2000:]


@pytest.mark.parametrize('flags', [['--amp', 'bf16'], ['--compile'], ['--channels-last']])
def test_speed_switches_run_on_cpu(tmp_path, ucf_root, flags):
    # bf16 runs the tiny config where torch 2.14.1's oneDNN bf16 kernels fail (the 7-frame stem on
    # 4-frame clips aborts the process; frozen BatchNorm's losses turned NaN): the runner turns
    # oneDNN off for CPU bf16 training (tests/test_runner_amp.py). The other switches keep the
    # 3-frame stem they were tested with.
    amp = '--amp' in flags
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root, epochs=1, **({} if amp else {'conv1_t_size': 3}))
    out = tmp_path / 'run'
    run = run_main([cfg, '--output-dir', out, *flags, 'dataset.args.test_final.n_clips=1'], timeout=900)
    assert ('oneDNN turned off' in run.stderr) == amp
    res = json.loads((out / 'results.json').read_text())
    assert 0 <= res['Acc@1'] <= 100 and res['loss'] == res['loss']  # finite, not NaN
