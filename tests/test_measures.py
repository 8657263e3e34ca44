"""measure/: every measure's arithmetic on inputs with a known answer, on real encoded videos
(a tiny SceneMotion generated into a temporary folder)."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from core.config import load_config
from datasets import scenemotion_gen as G
from datasets.collate import video_collate
from engine.dist import DistInfo
from engine.runner import RunContext
from measure import views
from measure.card import build_split, notes_for, per_class_table
from measure.common import Skipped
from measure.conflict import conflict_pairs, scene_conflict
from measure.report import markdown
from measure.representation import FeatureTap, KowalAccumulator, UnknownLayer, check_layer, kowal_dims, representation
from measure.stats import bootstrap_mean_ci, mimic_spread
from measure.temporality import summarize_temporality, temporality_records
from models import build_model
from models.head import VideoModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, 'configs', 'scenemotion', 'res3d18.yaml')
TINY = {'size': 32, 'n_frames': 4, 'fps': 8, 'n_train': 8, 'n_val': 16, 'n_transfer_train': 8,
        'n_transfer_test': 8, 'n_novel': 6}


def tiny_cfg(cache, model=CFG):
    over = [f'dataset.scenemotion.{k}={v}' for k, v in TINY.items()]
    over += [f'dataset.scenemotion.cache_dir={cache}', 'dataset.args.test.n_frames=4', 'dataset.transform.resize=32',
             'dataset.transform.crop=32', 'dataset.num_workers=0', 'dataset.batch_size=5']
    return load_config(model, over)


def ctx():
    return RunContext(out_dir='', device=torch.device('cpu'), dist=DistInfo(), seed=0)


@pytest.fixture(scope='module')
def split(tmp_path_factory):
    cfg = tiny_cfg(tmp_path_factory.mktemp('sm'))
    data, loader = build_split(cfg, 'test', ctx())
    return cfg, data, loader


class FrameDifferences(VideoModel):
    """Reads only the differences of consecutive frames: a frozen clip is all zeros to it."""

    def __init__(self, n_class=8):
        super().__init__(16, n_class)
        self.conv = nn.Conv3d(3, 16, (1, 3, 3), padding=(0, 1, 1))

    def forward_features(self, x, feats=None):
        return torch.relu(self.conv(x[:, :, 1:] - x[:, :, :-1])).mean((2, 3, 4))


# ---------------------------------------------------------------- views

def test_views_exact():
    x = torch.randn(2, 3, 3, 5, 4, 4)
    assert torch.equal(views.frozen(x, 2), x[:, :, :, 2:3].expand_as(x))
    assert torch.equal(views.time_reversed(x)[:, :, :, 0], x[:, :, :, 4])
    s = views.shuffled(x, torch.tensor([7, 8]), seed=1)
    assert torch.equal(s.sort(3).values, x.sort(3).values) and not torch.equal(s, x)
    # per video, not per batch: video 8 alone gets the same order
    assert torch.equal(views.shuffled(x[1:], torch.tensor([8]), seed=1), s[1:])
    still = torch.randn(2, 3, 3, 4, 4)
    b = views.blended(x, still, 0.25)
    assert torch.allclose(b[:, :, :, 3], 0.75 * x[:, :, :, 3] + 0.25 * still)
    with pytest.raises(ValueError, match='in \\(0, 1\\)'):
        views.blended(x, still, 1.0)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    g = views.grayscale(x, mean, std)
    pix = g * torch.tensor(std).view(1, 1, 3, 1, 1, 1) + torch.tensor(mean).view(1, 1, 3, 1, 1, 1)
    assert torch.allclose(pix[:, :, 0], pix[:, :, 1], atol=1e-5) and torch.allclose(pix[:, :, 1], pix[:, :, 2], atol=1e-5)


# ---------------------------------------------------------------- temporality

def test_framewise_model_same_outputs_on_normal_shuffled_reversed(split):
    cfg, data, loader = split
    torch.manual_seed(0)
    model = build_model({'name': 'resnet2d', 'args': {'n_class': 8, 'model_depth': 18, 'widen_factor': 0.25}}).eval()
    batch = video_collate([data[i] for i in range(4)])
    x = batch['video']
    with torch.no_grad():
        ref = model(x)
        for v in (views.shuffled(x, batch['index'], 3), views.time_reversed(x)):
            assert torch.allclose(model(v), ref, atol=1e-5, rtol=0)   # the same up to float summation order
    rec = temporality_records(model, loader, torch.device('cpu'), seed=3)
    assert torch.equal(rec['shuffled'], rec['normal']) and torch.equal(rec['reversed'], rec['normal'])
    res = summarize_temporality(rec, data.classes, 'test', n_boot=200)
    a = res['acc']
    assert a['normal']['value'] == a['shuffled']['value'] == a['reversed']['value']
    assert res['n'] == 16 and len(res['frozen_curve']) == 4


def test_frame_difference_model_constant_on_every_frozen_clip(split):
    _, data, loader = split
    torch.manual_seed(0)
    model = FrameDifferences()
    rec = temporality_records(model, loader, torch.device('cpu'))
    assert rec['frozen'].shape == (16, 4)
    assert rec['frozen'].unique().numel() == 1          # one prediction, whatever the video and frame
    res = summarize_temporality(rec, data.classes, 'test', n_boot=200)
    assert set(res['frozen_curve'].values()) == {res['acc']['frozen_mean']['value']}


def test_contrasted_accuracy_arithmetic():
    y = torch.tensor([0, 1, 0, 1])
    rec = {'labels': y, 'normal': torch.tensor([0, 1, 1, 1]), 'shuffled': y, 'reversed': y, 'index': torch.arange(4),
           'frozen': torch.tensor([[1, 0], [1, 1], [0, 0], [0, 1]]), 'frames': [0, 5]}
    rec['skipped'] = Skipped()
    res = summarize_temporality(rec, ['a', 'b'], 'test', n_boot=100)
    # video 0: right, frozen wrong at k=0 only -> 0.5; video 1: 0; video 2: wrong -> 0; video 3: frozen wrong at 0 -> 0.5
    assert res['value'] == pytest.approx(25.0)
    assert res['per_video'] == {'index': [0, 1, 2, 3], 'value': [50.0, 0.0, 0.0, 50.0]}   # for measure.compare
    assert res['frozen_curve'] == {0: 50.0, 5: 100.0} and res['frozen_argmin'] == 0
    assert res['per_class']['a']['contrasted'] == pytest.approx(25.0)


def test_undecodable_videos_are_counted(split, tmp_path):
    import copy
    import dataclasses

    from engine.build import build_loader
    from tests.videos import write_empty
    cfg, data, _ = split
    broken = copy.copy(data)
    broken.records = list(data.records)
    broken.records[2] = dataclasses.replace(data.records[2], path=str(write_empty(tmp_path / 'empty.mp4')))
    loader = build_loader(broken, cfg, ctx(), train=False)
    model = FrameDifferences()
    res = summarize_temporality(temporality_records(model, loader, torch.device('cpu')), data.classes, 'test',
                                n_boot=50)
    assert res['n'] == 15 and res['skipped'] == 1 and 'empty.mp4' in res['skipped_files'][0]
    assert scene_conflict(model, loader, torch.device('cpu'), n_boot=50)['skipped'] >= 1


# ---------------------------------------------------------------- CIs

def test_bootstrap_ci_coverage():
    rng = np.random.default_rng(0)
    p, n, trials, hits = 0.3, 120, 200, 0
    for t in range(trials):
        x = torch.from_numpy((rng.random(n) < p).astype(np.float64))
        lo, hi = bootstrap_mean_ci(x, n_boot=400, seed=t)
        hits += lo <= p <= hi
    assert 0.9 <= hits / trials <= 0.99


def test_mimic_spread_splits_per_video_from_shared():
    """Known answers: independent coin flips have no shared part; a block of videos that every
    repeat gets all right or all wrong together has the block's covariance as its shared part."""
    rng = np.random.default_rng(1)
    k, n = 400, 400
    p = rng.uniform(0.1, 0.9, n)
    indep = torch.from_numpy((rng.random((k, n)) < p).astype(np.float64))
    sd_v, sd_s = mimic_spread(indep)
    assert sd_v == pytest.approx(np.sqrt((p * (1 - p)).sum()) / n, rel=0.05)
    assert sd_s < 0.4 * sd_v
    # videos 0..99 move together (each repeat gets all of them, or none, with rate 1/2)
    block = torch.from_numpy((rng.random(k) < 0.5).astype(np.float64))
    shared = indep.clone()
    shared[:, :100] = block[:, None]
    sd_v2, sd_s2 = mimic_spread(shared)
    expected = np.sqrt(100 * 99 * 0.25) / n  # the block's covariances, sum over pairs
    assert sd_s2 == pytest.approx(expected, rel=0.1)
    total = shared.mean(1).std().item()
    assert sd_v2 ** 2 + sd_s2 ** 2 == pytest.approx(total ** 2)
    assert mimic_spread(indep[:1]) == (None, None)


# ---------------------------------------------------------------- scene conflict

def test_conflict_pairs_other_class_seeded_and_spread():
    labels = [i % 4 for i in range(400)]
    p = conflict_pairs(labels, seed=5)
    assert all(labels[j] != labels[i] for i, j in enumerate(p))
    assert np.array_equal(p, conflict_pairs(labels, seed=5)) and not np.array_equal(p, conflict_pairs(labels, seed=6))
    assert len(set(p.tolist())) > 200                    # not a fixed partner per class
    with pytest.raises(ValueError, match='at least 2 classes'):
        conflict_pairs([3, 3, 3])


def test_scene_conflict_on_a_framewise_model(split):
    _, data, loader = split
    torch.manual_seed(0)
    model = FrameDifferences()
    res = scene_conflict(model, loader, torch.device('cpu'), weight=0.5, n_boot=200)
    assert res['n'] == 16 and 0 <= res['value'] <= 100 and res['weight'] == 0.5
    assert res['acc_clip']['ci95'][0] <= res['acc_clip']['value'] <= res['acc_clip']['ci95'][1]
    assert sum(r['n'] for r in res['per_class'].values()) == 16
    pv = res['per_video']   # each video once, 0 or 100 (the clip's label won), their mean the value
    assert sorted(pv['index']) == list(range(16)) and set(pv['value']) <= {0.0, 100.0}
    assert np.mean(pv['value']) == pytest.approx(res['value'])


# ---------------------------------------------------------------- representation (Kowal et al.)

def _authors_scores(za_d, zb_d, za_s, zb_s):
    """The estimator written out as in the authors' utils.dim_est (numpy, both factors pooled)."""
    zall = np.concatenate([za_d, za_s, zb_d, zb_s])
    var = np.sum(np.mean((zall - zall.mean(0)) ** 2, 0))
    out = []
    for a, b in ((za_d, zb_d), (za_s, zb_s)):
        m = 0.5 * (a.mean(0) + b.mean(0))
        out.append(np.sum(np.mean((a - m) * (b - m), 0)) / var)
    return out


def test_kowal_estimator_recovers_planted_dimensions():
    rng = np.random.default_rng(0)
    n, n_stat, n_dyn, n_res = 4000, 6, 12, 12
    stat, dyn = rng.normal(size=(n, n_stat)), rng.normal(size=(n, n_dyn))

    def feats(s, d):
        return np.concatenate([s, d, rng.normal(size=(n, n_res))], 1)
    z = feats(stat, dyn)
    z_shuf = feats(stat, rng.normal(size=(n, n_dyn)))      # same appearance, other dynamics
    z_alt = feats(rng.normal(size=(n, n_stat)), dyn)       # same dynamics, other appearance
    acc = KowalAccumulator(1, z.shape[1])
    t = {k: torch.from_numpy(v) for k, v in (('z', z), ('s', z_shuf), ('a', z_alt))}
    for i in range(0, n, 500):                             # streamed in batches
        sl = slice(i, i + 500)
        acc.update(torch.ones(1, 500, dtype=torch.float64), {'dynamic': (t['z'][sl], t['a'][sl]),
                                                              'static': (t['z'][sl], t['s'][sl])})
    s = acc.scores()
    total = n_stat + n_dyn + n_res
    assert float(s['static'][0]) == pytest.approx(n_stat / total, abs=0.02)
    assert float(s['dynamic'][0]) == pytest.approx(n_dyn / total, abs=0.02)
    ref = _authors_scores(z, z_alt, z, z_shuf)
    assert float(s['dynamic'][0]) == pytest.approx(ref[0], abs=1e-9)
    assert float(s['static'][0]) == pytest.approx(ref[1], abs=1e-9)
    d = kowal_dims(float(s['dynamic'][0]), float(s['static'][0]), total)
    e = np.exp([ref[0], ref[1], 1.0])
    assert d['dims']['dynamic'] == int(e[0] / e.sum() * total) and d['dims']['static'] == int(e[1] / e.sum() * total)
    assert sum(d['dims'].values()) == total and d['dims']['dynamic'] > d['dims']['static']


def test_feature_layers_and_unknown_layer():
    model = build_model({'name': 'resnet3d', 'args': {'n_class': 8, 'model_depth': 18, 'widen_factor': 0.25}}).eval()
    check_layer(model, 'pool')
    check_layer(model, 'layer4')
    with pytest.raises(UnknownLayer) as e:
        check_layer(model, 'layer9')
    msg = str(e.value)
    assert "'layer9'" in msg and 'pool' in msg and 'layer4' in msg and '\n' not in msg
    x = torch.randn(2, 1, 3, 4, 32, 32)
    with torch.no_grad():
        assert FeatureTap(model, 'pool')(x).shape == (2, model.num_features)
        tap = FeatureTap(model, 'layer3')
        assert tap(x).shape[0] == 2 and tap(x).dim() == 2
        tap.close()


def test_representation_scenemotion_rerenders_the_scene(split):
    _, data, loader = split
    torch.manual_seed(0)
    model = build_model({'name': 'resnet3d', 'args': {'n_class': 8, 'model_depth': 18, 'widen_factor': 0.25}})
    res = representation(model, loader, torch.device('cpu'), n_boot=50)
    assert res['approximation'] is False and 'another scene' in res['dynamic_pairs']
    assert sum(res['dims'].values()) == res['dim'] == model.num_features
    assert res['ci95'][0] <= res['value'] <= res['ci95'][1]
    gray = representation(model, loader, torch.device('cpu'), appearance='grayscale', n_boot=50)
    assert gray['approximation'] is True


def test_render_on_scene_replays_the_generated_video(split, tmp_path):
    _, data, _ = split
    params = {**G.DEFAULTS, **TINY}
    rec = data.records[3]
    same, own = G.render_on_scene(params, 'pretrain', 'val', 3)
    assert G.SCENES[own] == data.scenes[3]
    G.write_video(same, tmp_path / 'same.mp4', params['fps'])      # the encoder is deterministic
    assert (tmp_path / 'same.mp4').read_bytes() == open(rec.path, 'rb').read()
    other, own2 = G.render_on_scene(params, 'pretrain', 'val', 3, scene=(own + 1) % len(G.SCENES))
    assert own2 == own and np.abs(other.astype(float) - same.astype(float)).mean() > 10


# ---------------------------------------------------------------- card notes

def test_tubelet_note():
    model = FrameDifferences()
    doc = {'measures': {}}
    assert notes_for(model, doc) == []
    model.tubelet_size = 2
    assert 'tubelet' in notes_for(model, doc)[0]
    rec = {'labels': torch.tensor([0, 1]), 'normal': torch.tensor([0, 1]), 'shuffled': torch.tensor([0, 0]),
           'reversed': torch.tensor([0, 1]), 'frozen': torch.tensor([[0], [0]]), 'index': torch.arange(2),
           'frames': [0], 'skipped': Skipped()}
    doc = {'model': 'm', 'dataset': 'd', 'subset': None, 'checkpoint': 'c', 'config': None, 'split': 'test',
           'n_videos': 2, 'classes': ['a', 'b'], 'device': 'cpu', 'seed': 0, 'tubelet_size': 2,
           'measures': {'temporality': {**summarize_temporality(rec, ['a', 'b'], 'test', n_boot=20),
                                        'headline': 'contrasted accuracy'}}}
    doc['notes'] = notes_for(model, doc)
    doc['per_class'] = per_class_table(doc)
    md = markdown(doc)
    assert '| Acc@1 shuffled † |' in md and '† the model embeds 2-frame tubelets' in md


def test_reading_warns_when_the_mimic_cannot_fit_the_model():
    """A model with unstable (e.g. near-uniform) decisions gets a high dynamic score that is not
    motion: the reading says so when the mimic's fit on its own pool is below FIT_WARN."""
    from measure.report import FIT_WARN, reading
    for fit, warned in ((0.98, False), (FIT_WARN - 0.01, True)):
        doc = {'measures': {'dynamic': {'value': 0.52, 'agreement_train': fit}}}
        lines = reading(doc)
        assert any('fails to reproduce 52.0 %' in x for x in lines)
        assert any(x.startswith('Caution: the mimic reproduces only') for x in lines) is warned


def test_card_reports_the_mimic_seeds_spread():
    """With several mimic seeds the table gets the CI over seeds and the reading the two parts of
    the spread; with one seed neither appears."""
    from measure.report import reading, rows
    one = {'value': 0.6, 'ci95': [0.55, 0.65], 'n': 480, 'headline': 'dynamic score', 'unit': 'score',
           'agreement_train': 0.95, 'per_seed': [0.6], 'ci95_mimic': None, 'sd_mimic': None,
           'sd_mimic_videos': None, 'sd_mimic_shared': None}
    many = {**one, 'per_seed': [0.58, 0.6, 0.62], 'ci95_mimic': [0.55, 0.65], 'sd_mimic': 0.02,
            'sd_mimic_videos': 0.015, 'sd_mimic_shared': 0.0132}
    r1, r3 = rows({'measures': {'dynamic': one}}), rows({'measures': {'dynamic': many}})
    assert len(r1) == 1 and len(r3) == 2
    assert r3[1][1] == 'CI over its 3 mimic seeds' and r3[1][3] == [0.55, 0.65]
    assert not any('mimic seeds it varies' in x for x in reading({'measures': {'dynamic': one}}))
    line = [x for x in reading({'measures': {'dynamic': many}}) if 'mimic seeds it varies' in x]
    assert line and 'sd 0.020' in line[0] and '0.015 from videos' in line[0] and '0.013 shared' in line[0]
