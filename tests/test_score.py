"""tools/score.py end to end on a tiny SceneMotion (transfer subset) with torchvision's r3d_18,
scored from a bare torchvision state dict (an imported checkpoint)."""
import csv
import json
import os
import subprocess
import sys

import torch
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['dataset.subset=transfer', 'dataset.scenemotion.size=32', 'dataset.scenemotion.n_frames=4',
        'dataset.scenemotion.n_train=8', 'dataset.scenemotion.n_val=8', 'dataset.scenemotion.n_transfer_train=8',
        'dataset.scenemotion.n_transfer_test=8', 'dataset.scenemotion.n_novel=6',
        'dataset.args.train.n_frames=4', 'dataset.args.test.n_frames=4', 'dataset.args.test_final.n_frames=4',
        'dataset.transform.resize=32', 'dataset.transform.crop=28', 'dataset.num_workers=0',
        'dataset.batch_size=4', 'sp.optimizer.epochs=1']


def test_score_torchvision_r3d18(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / 'r3d_18.pth'
    torch.save(torchvision.models.video.r3d_18(num_classes=8).state_dict(), ckpt)
    out = tmp_path / 'score'
    r = subprocess.run([sys.executable, 'tools/score.py', 'configs/scenemotion/tv-r3d18.yaml', *TINY,
                        f'dataset.scenemotion.cache_dir={tmp_path / "cache"}', '--pretrain', str(ckpt),
                        '--output-dir', str(out), '--device', 'cpu'],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / 'score.json').read_text())
    assert 0.0 <= doc['dynamic_score'] <= 1.0
    assert doc['n_videos'] == 8 and doc['split'] == 'test_final'
    for key in ('Acc@1', 'Acc@1_frozen', 'Acc@1_shuffled'):
        assert 0.0 <= doc[key] <= 100.0
    assert 'dynamic score' in r.stdout and 'frozen' in r.stdout
    rows = list(csv.DictReader(open(out / 'per_class.csv')))
    assert rows and set(rows[0]) == {'class', 'dynamic_score', 'Acc@1', 'Acc@1_frozen', 'Acc@1_shuffled'}
    assert (out / 'scoring' / 'dynamic_score_per_class.csv').exists()
    assert (out / 'temporality' / 'temporality.png').exists()
    assert 'torchvision format' in (out / 'scoring' / 'log.txt').read_text()
