"""Two gloo processes on CPU give the same numbers as one process with the same global batch."""
import csv
import json
import os
import subprocess
import sys

import pytest

from tests.fake_trees import make_ucf101
from tests.test_main import ROOT, tiny_config


def launch(args, nproc, timeout=400):
    if nproc == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc),
               '--master_port', str(29500 + os.getpid() % 1000), *args]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope='module')
def ucf_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('ucf_ddp')
    make_ucf101(root, n_groups=3)
    return root


def test_two_processes_match_one(tmp_path, ucf_root):
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root, epochs=2)
    runs = {}
    for n in (1, 2):
        out = tmp_path / f'np{n}'
        launch(['main.py', cfg, '--output-dir', str(out), '-j', '0'], n)
        runs[n] = out
    rows = {n: list(csv.DictReader(open(runs[n] / 'metrics.csv'))) for n in runs}
    for a, b in zip(rows[1], rows[2]):
        assert float(a['train_loss']) == pytest.approx(float(b['train_loss']), abs=1e-4)
        assert float(a['val_loss']) == pytest.approx(float(b['val_loss']), abs=1e-4)
        assert float(a['val_Acc@1']) == pytest.approx(float(b['val_Acc@1']), abs=1e-4)
    r1, r2 = (json.loads((runs[n] / 'results.json').read_text()) for n in (1, 2))
    assert r1['Acc@1'] == pytest.approx(r2['Acc@1'], abs=1e-4)
    assert r1['loss'] == pytest.approx(r2['loss'], abs=1e-4)
    assert r1['n_videos'] == r2['n_videos']  # sharded eval counts every video exactly once
    # only rank 0 writes: one TensorBoard file and the same set of files as a 1-process run
    def names(d):
        return sorted('events' if f.startswith('events.out') else f for f in os.listdir(d))
    assert names(runs[1]) == names(runs[2])
    assert sum(f.startswith('events.out') for f in os.listdir(runs[2])) == 1


def test_drl_step_two_processes_match_one(tmp_path, ucf_root):
    """DRL-dir (frozen-clip penalty) from a baseline: same losses with 1 and 2 processes."""
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root, epochs=1)
    base = tmp_path / 'base'
    launch(['main.py', cfg, '--output-dir', str(base), '-j', '0'], 1)
    runs = {}
    for n in (1, 2):
        out = tmp_path / f'drl{n}'
        launch(['main-drl-dir.py', cfg, 'configs/drl/kd0.5-freeze.yaml', 'sp.optimizer.epochs=1',
                '--pretrain', str(base / 'checkpoint.pth.tar'), '--output-dir', str(out), '-j', '0'], n)
        runs[n] = out
    rows = {n: list(csv.DictReader(open(runs[n] / 'metrics.csv'))) for n in runs}
    for key in ('train_loss', 'val_loss', 'val_Acc@1'):
        assert float(rows[1][0][key]) == pytest.approx(float(rows[2][0][key]), abs=1e-4), key
    r1, r2 = (json.loads((runs[n] / 'results.json').read_text()) for n in (1, 2))
    assert r1['Acc@1'] == pytest.approx(r2['Acc@1'], abs=1e-4)


def test_fewshot_feature_extraction_two_processes_match_one(tmp_path):
    """main-fsl.py: 2 ranks each encode half the videos; gathered features and results match."""
    import torch

    from engine.checkpoint import load_checkpoint, save_checkpoint
    from models import build_model
    from tests.test_fewshot import _tiny_scenemotion
    cfg_path, cfg = _tiny_scenemotion(tmp_path)
    torch.manual_seed(0)
    ckpt = tmp_path / 'enc.pth.tar'
    save_checkpoint({'state_dict': build_model(cfg['model']).state_dict()}, ckpt)
    out = {}
    for n in (1, 2):
        out[n] = tmp_path / f'fs{n}'
        launch(['main-fsl.py', str(cfg_path), '--pretrain', str(ckpt), '--output-dir', str(out[n]), '-j', '0'], n)
    r1, r2 = (json.loads((out[n] / 'results.json').read_text()) for n in (1, 2))
    assert r1 == r2
    (c1,), (c2,) = (os.listdir(out[n] / 'feature_cache') for n in (1, 2))
    f1, f2 = load_checkpoint(out[1] / 'feature_cache' / c1), load_checkpoint(out[2] / 'feature_cache' / c2)
    order1, order2 = f1['index'].argsort(), f2['index'].argsort()
    assert torch.equal(f1['index'][order1], f2['index'][order2])
    torch.testing.assert_close(f1['feat'][order1], f2['feat'][order2], atol=1e-5, rtol=1e-4)
