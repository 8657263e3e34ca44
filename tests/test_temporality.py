"""tools/temporality.py: the static views it feeds the model, and an end-to-end run."""
import json
import os
import subprocess
import sys

import torch
from torch import nn

from core.config import load_config
from engine.checkpoint import save_checkpoint
from models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
import temporality  # noqa: E402

CFG = 'configs/scenemotion/res3d18.yaml'


class Recorder(nn.Module):
    """Stand-in model that records its input and predicts class 0."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.zeros(x.shape[0], 3).index_fill_(1, torch.tensor([0]), 1.0)


def test_views_freeze_and_shuffle_the_frames():
    x = torch.arange(2 * 1 * 3 * 6 * 2 * 2, dtype=torch.float).view(2, 1, 3, 6, 2, 2)
    batch = {'video': x, 'label': torch.tensor([0, 1]), 'index': torch.tensor([4, 5])}
    rec = Recorder()
    step = temporality.StaticViewStep(rec, nn.CrossEntropyLoss(), ['a', 'b', 'c'], seed=3)
    outs = {}
    for view in temporality.VIEWS:
        step.view = view
        outs[view] = step.eval_step(batch)
    normal, frozen, shuffled = rec.seen
    assert torch.equal(normal, x)
    assert torch.equal(frozen, x[:, :, :, :1].expand_as(x))
    assert not torch.equal(shuffled, x)
    assert torch.equal(shuffled.sort(dim=3).values, x)           # a permutation of the frames
    step.view = 'shuffled'
    step.eval_step(batch)
    assert torch.equal(rec.seen[-1], shuffled)                   # reproducible
    assert outs['normal'].metrics['Acc@1'] == 50.0


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
    for v in ('Acc@1', 'Acc@1_frozen', 'Acc@1_shuffled'):
        assert 0.0 <= doc[v] <= 100.0
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
