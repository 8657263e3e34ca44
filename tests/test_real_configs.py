"""The authors' configs train one tiny epoch on fake trees laid out exactly like the real data."""
import json
import os
import subprocess
import sys

import pytest

from tests.fake_trees import fake_tree_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# shrink the recipe, never its structure: same datasets, model family, transforms and splits
TINY = ['optimizer.epochs=1', 'dataset.batch_size=2', 'model.args.model_depth=10',
        'model.args.widen_factor=0.25', 'dataset.transform.resize=32', 'dataset.transform.crop=28',
        'dataset.args.train.n_frames=4', 'dataset.args.test.n_frames=4',
        'dataset.args.test_final.n_frames=4', 'dataset.args.test_final.n_clips=2']


@pytest.mark.parametrize('config', ['configs/k400/res3d18.yaml', 'configs/hmdb/res3d18.yaml',
                                    'configs/diving/res3d18.yaml'])
def test_main_trains_one_tiny_epoch(config, tmp_path, monkeypatch):
    fake_tree_for(os.path.join(ROOT, config), tmp_path, monkeypatch)
    out = tmp_path / 'run'
    res = subprocess.run([sys.executable, 'main.py', config, *TINY, '--output-dir', str(out), '-j', '0'],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / 'results.json').read_text())
    assert 0 <= results['Acc@1'] <= 100
    assert results['n_videos'] > 0


@pytest.mark.parametrize('config', ['configs/sthv2-fs/res3d18-1shot.yaml', 'configs/hmdb-fs/res3d18-1shot.yaml'])
def test_fewshot_config_runs_on_fake_tree(config, tmp_path, monkeypatch):
    """Few-shot configs: episodes drawn from the fake tree's novel classes, encoded once, fitted."""
    from core.config import load_config
    from engine.checkpoint import save_checkpoint
    from models import build_model
    tree = os.path.join(ROOT, config.replace('hmdb-fs', 'hmdb'))
    fake_tree_for(tree, tmp_path, monkeypatch)
    tiny = ['model.args.model_depth=10', 'model.args.widen_factor=0.25', 'dataset.transform.resize=32',
            'dataset.transform.crop=28', 'dataset.args.novel.n_clips=2', 'dataset.args.novel.n_frames=4',
            'dataset.n_batch=4', 'dataset.n_way=3', 'dataset.n_query=1']
    cfg = load_config(os.path.join(ROOT, config), tiny)
    ckpt = tmp_path / 'enc.pth.tar'
    save_checkpoint({'state_dict': build_model(cfg['model']).state_dict()}, str(ckpt))
    out = tmp_path / 'fs'
    res = subprocess.run([sys.executable, 'main-fsl.py', config, *tiny, '--pretrain', str(ckpt),
                          '--output-dir', str(out), '-j', '0'], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / 'results.json').read_text())
    assert results['episodes'] == 4 and 0 <= results['Acc@1'] <= 100 and 'ci95' in results
