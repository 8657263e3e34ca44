"""tools/temporality.py (a thin caller of measure/temporality.py): an end-to-end run and its errors;
the views themselves are pinned in tests/test_measures.py."""
import json
import os
import subprocess
import sys

import torch

from core.config import load_config
from engine.checkpoint import save_checkpoint
from models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = 'configs/scenemotion/res3d18.yaml'


def test_temporality_end_to_end(tmp_path):
    over = [f'dataset.scenemotion.cache_dir={tmp_path / "cache"}', 'dataset.scenemotion.size=32',
            'dataset.scenemotion.n_frames=4', 'dataset.scenemotion.n_train=8', 'dataset.scenemotion.n_val=16',
            'dataset.scenemotion.n_transfer_train=8', 'dataset.scenemotion.n_transfer_test=8',
            'dataset.scenemotion.n_novel=6', 'dataset.args.test.n_frames=4', 'dataset.transform.resize=32',
            'dataset.transform.crop=32', 'dataset.num_workers=0', 'dataset.batch_size=6']
    cfg = load_config(os.path.join(ROOT, CFG), over)
    torch.manual_seed(0)
    ckpt = tmp_path / 'ckpt' / 'checkpoint.pth.tar'
    save_checkpoint({'state_dict': build_model(cfg['model']).state_dict(), 'epoch': 1}, str(ckpt))
    out = tmp_path / 'report'
    r = subprocess.run([sys.executable, 'tools/temporality.py', CFG, *over, '--pretrain', str(ckpt),
                        '--output-dir', str(out), '--device', 'cpu'],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / 'temporality.json').read_text())
    assert (out / 'temporality.png').stat().st_size > 1000
    assert doc['n_videos'] == 16 and doc['n_class'] == 8 and doc['chance'] == 12.5
    for v in ('Acc@1', 'Acc@1_frozen', 'Acc@1_shuffled', 'Acc@1_reversed', 'Acc@1_frozen_mean',
              'contrasted_accuracy'):
        assert 0.0 <= doc[v] <= 100.0
    assert sorted(doc['frozen_curve']) == ['0', '1', '2', '3']   # every frame index of the 4-frame clips
    assert doc['Acc@1_frozen_min'] <= doc['Acc@1_frozen_mean'] <= doc['Acc@1_frozen_max']
    assert doc['skipped'] == 0
    assert abs(doc['drop_frozen'] - (doc['Acc@1'] - doc['Acc@1_frozen'])) < 1e-9
    assert len(doc['per_class']) == 8
    # per-class accuracies average to the overall one (balanced classes: 2 videos each)
    mean = sum(c['frozen'] for c in doc['per_class'].values()) / 8
    assert abs(mean - doc['Acc@1_frozen']) < 1e-6
    assert 'frozen' in r.stdout and 'all' in r.stdout


def test_missing_checkpoint_is_a_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, 'tools/temporality.py', CFG, '--pretrain', str(tmp_path / 'nope.pth'),
                        '--output-dir', str(tmp_path / 'o'), f'dataset.scenemotion.cache_dir={tmp_path}',
                        'dataset.scenemotion.n_train=8', 'dataset.scenemotion.n_val=8',
                        'dataset.scenemotion.n_transfer_train=8', 'dataset.scenemotion.n_transfer_test=8',
                        'dataset.scenemotion.n_novel=6', 'dataset.scenemotion.size=32'],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and 'nope.pth' in r.stderr
