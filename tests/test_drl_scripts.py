"""End-to-end runs of main-drl.py (FGSM and scoring) and main-drl-dir.py on a tiny UCF101-
layout dataset of real encoded videos, from a saved baseline checkpoint."""
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from models import build_model
from tests.videos import write_video
from utils.checkpoint import load_checkpoint, save_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ['Left', 'Right']


def _frame_fn(label):
    """A bar moving left or right: the class is in the motion, not in one frame."""
    import numpy as np

    def fn(i, h, w):
        f = np.full((h, w, 3), 40, np.uint8)
        pos = (4 * i) % w if label == 1 else w - 1 - (4 * i) % w
        f[:, max(0, pos - 3):pos + 3] = 220
        return f
    return fn


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('drl_e2e')
    root = tmp / 'ucf'
    (root / 'UCF-101').mkdir(parents=True)
    (root / 'classInd.txt').write_text(''.join(f'{i + 1} {c}\n' for i, c in enumerate(CLASSES)))
    lists = {'train': [], 'test': []}
    for label, c in enumerate(CLASSES):
        for g in range(3):
            rel = f'{c}/v_{c}_g{g + 1:02d}_c01.mp4'
            write_video(str(root / 'UCF-101' / rel), 20, fps=10, size=(40, 32), frame_fn=_frame_fn(label))
            lists['train' if g < 2 else 'test'].append(rel)
    (root / 'trainlist01.txt').write_text(''.join(f'{r} 1\n' for r in lists['train']))
    (root / 'testlist01.txt').write_text(''.join(f'{r}\n' for r in lists['test']))
    clip = {'n_clips': 1, 'n_frames': 4, 'fps': 5}
    cfg = {
        'dataset': {'name': 'ucf101', 'root': str(root), 'batch_size': 2, 'num_workers': 0,
                    'transform': {'resize': 32, 'crop': 24, 'hflip': False,
                                  'normalize': {'mean': [0.45] * 3, 'std': [0.225] * 3}},
                    'args': {'train': clip, 'test': clip, 'test_final': dict(clip, n_clips=2)}},
        'model': {'name': 'resnet3d', 'args': {'model_depth': 10, 'n_class': 2}},
        'optimizer': {'name': 'SGD', 'epochs': 1, 'args': {'lr': 0.01}},
    }
    cfg_path = tmp / 'res3d10.yaml'
    cfg_path.write_text(yaml.safe_dump(cfg))
    torch.manual_seed(0)
    ckpt = tmp / 'base' / 'checkpoint.pth.tar'
    save_checkpoint({'state_dict': build_model(cfg['model']).state_dict(), 'epoch': 1}, str(ckpt))
    return tmp, cfg_path, ckpt


def _run(script, cfg, sp_cfg, out, *extra):
    cmd = [sys.executable, os.path.join(ROOT, script), str(cfg), os.path.join(ROOT, sp_cfg),
           'sp.optimizer.epochs=1', '--output-dir', str(out), '--device', 'cpu', *extra]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / 'results.json').read_text()), (out / 'log.txt').read_text()


def test_main_drl_fgsm(setup):
    tmp, cfg, ckpt = setup
    out = tmp / 'fgsm'
    res, log = _run('main-drl.py', cfg, 'configs/drl/fgsm-e3-i5-scratch.yaml', out,
                    'sp.adversary.args.iters=2', '--pretrain', str(ckpt))
    assert {'Acc@1', 'Acc@1_sp', 'dynamic_score', 'kl', 'dynamic_score_sample'} <= set(res)
    assert 'loss_adv' in log
    assert (out / 'adversarial' / 'epoch_001.png').is_file()
    assert (out / 'config_sp.yaml').is_file()
    state = load_checkpoint(str(out / 'checkpoint.pth.tar'))
    assert 'state_dict_sp' in state


def test_main_drl_scoring_keeps_video_model(setup):
    tmp, cfg, ckpt = setup
    out = tmp / 'scoring'
    res, _ = _run('main-drl.py', cfg, 'configs/scoring/res2d18-scratch.yaml', out, '--pretrain', str(ckpt))
    assert 0.0 <= res['dynamic_score'] <= 1.0
    base = load_checkpoint(str(ckpt))['state_dict']
    after = load_checkpoint(str(out / 'checkpoint.pth.tar'))['state_dict']
    assert base.keys() == after.keys() and all(torch.equal(base[k], after[k]) for k in base)
    assert (out / 'dynamic_score_per_class.csv').read_text().count('\n') == len(CLASSES) + 1


def test_main_drl_dir_freeze(setup):
    tmp, cfg, ckpt = setup
    out = tmp / 'dir'
    res, log = _run('main-drl-dir.py', cfg, 'configs/drl/kd0.5-freeze.yaml', out, '--pretrain', str(ckpt))
    assert 'dynamic_score' in res and 'Acc@1' in res
    assert 'frozen clips' in log


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
