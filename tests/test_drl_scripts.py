"""End-to-end runs of main-drl.py (FGSM and scoring) and main-drl-dir.py on a tiny SceneMotion
(real encoded videos generated into a temporary folder), from a saved baseline checkpoint."""
import json
import os
import subprocess
import sys

import pytest
import torch

from core.config import load_config
from engine.checkpoint import load_checkpoint, save_checkpoint
from models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SM_CFG = 'configs/scenemotion/res3d18.yaml'
N_CLASS = 8


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny SceneMotion (real encoded videos, generated into tmp) and a baseline checkpoint."""
    tmp = tmp_path_factory.mktemp('drl_e2e')
    overrides = [f'dataset.scenemotion.cache_dir={tmp / "cache"}', 'dataset.scenemotion.n_train=16',
                 'dataset.scenemotion.n_val=8', 'dataset.batch_size=8', 'dataset.num_workers=0']
    cfg = load_config(os.path.join(ROOT, SM_CFG), overrides)
    torch.manual_seed(0)
    ckpt = tmp / 'base' / 'checkpoint.pth.tar'
    save_checkpoint({'state_dict': build_model(cfg['model']).state_dict(), 'epoch': 1}, str(ckpt))
    return tmp, overrides, ckpt


def _run(script, overrides, sp_cfg, out, *extra):
    cmd = [sys.executable, os.path.join(ROOT, script), SM_CFG, sp_cfg, 'sp.optimizer.epochs=1',
           *overrides, '--output-dir', str(out), '--device', 'cpu', *extra]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / 'results.json').read_text()), (out / 'log.txt').read_text()


def test_main_drl_fgsm(setup):
    tmp, overrides, ckpt = setup
    out = tmp / 'fgsm'
    res, log = _run('main-drl.py', overrides, 'configs/drl/fgsm-e3-i5-scratch.yaml', out,
                    'sp.adversary.args.iters=1', '--pretrain', str(ckpt))
    assert {'Acc@1', 'Acc@1_sp', 'dynamic_score', 'kl', 'dynamic_score_sample'} <= set(res)
    assert 'loss_adv' in log
    assert (out / 'adversarial' / 'epoch_001.png').is_file()
    assert (out / 'config_sp.yaml').is_file()
    state = load_checkpoint(str(out / 'checkpoint.pth.tar'))
    assert 'state_dict_sp' in state


def test_main_drl_scoring_keeps_video_model(setup):
    tmp, overrides, ckpt = setup
    out = tmp / 'scoring'
    res, _ = _run('main-drl.py', overrides, 'configs/scoring/res2d18-scratch.yaml', out, '--pretrain', str(ckpt))
    assert 0.0 <= res['dynamic_score'] <= 1.0
    base = load_checkpoint(str(ckpt))['state_dict']
    after = load_checkpoint(str(out / 'checkpoint.pth.tar'))['state_dict']
    assert base.keys() == after.keys() and all(torch.equal(base[k], after[k]) for k in base)
    assert (out / 'dynamic_score_per_class.csv').read_text().count('\n') == N_CLASS + 1


def test_main_drl_dir_freeze(setup):
    tmp, overrides, ckpt = setup
    out = tmp / 'dir'
    res, log = _run('main-drl-dir.py', overrides, 'configs/drl/kd0.5-freeze.yaml', out, '--pretrain', str(ckpt))
    assert 'dynamic_score' in res and 'Acc@1' in res
    assert 'frozen clips' in log
    # the DRL config is part of what a resume checks: another epoch count there is refused
    before = (out / 'results.json').read_bytes()
    cmd = [sys.executable, os.path.join(ROOT, 'main-drl-dir.py'), SM_CFG, 'configs/drl/kd0.5-freeze.yaml',
           'sp.optimizer.epochs=2', *overrides, '--output-dir', str(out), '--device', 'cpu', '--pretrain', str(ckpt)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
    assert 'sp.optimizer.epochs 1 → 2' in lines[0] and '--resume-changed' in lines[0]
    assert (out / 'results.json').read_bytes() == before


def test_output_dir_rule():
    from types import SimpleNamespace

    from drl.build import drl_output_dir
    a = SimpleNamespace(output_dir=None, scratch=False, pretrain=None, ckp='checkpoint.pth.tar',
                        config='configs/k400/res3d18.yaml', sp_config='configs/drl/fgsm-e3-i5.yaml',
                        debug=False)
    assert drl_output_dir(a) == os.path.join('checkpoints', 'k400', 'res3d18', 'drl', 'fgsm-e3-i5')
    a.sp_config, a.debug = 'configs/scoring/res2d18.yaml', True
    assert drl_output_dir(a) == os.path.join('checkpoints', 'k400', 'res3d18', 'scoring', 'res2d18_debug')
    a.debug, a.pretrain = False, 'runs/base/model_best.pth.tar'
    assert drl_output_dir(a) == os.path.join('runs', 'base', 'scoring', 'res2d18')
