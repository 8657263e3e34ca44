"""measure.dynamic.dynamic_score and measure.mimic on a tiny generated SceneMotion: where the
mimic trains and is scored, the frames it sees, its seeding, and the arithmetic of the result."""
import copy

import pytest
import torch
import torch.nn as nn

from core.config import load_config
from datasets import build_dataset
from measure import mimic as M
from measure.dynamic import dynamic_score
from measure.stats import mean_ci

TINY = ['dataset.subset=transfer', 'dataset.scenemotion.size=32', 'dataset.scenemotion.n_frames=4',
        'dataset.scenemotion.n_train=8', 'dataset.scenemotion.n_val=8', 'dataset.scenemotion.n_transfer_train=8',
        'dataset.scenemotion.n_transfer_test=16', 'dataset.scenemotion.n_novel=6',
        'dataset.args.train.n_frames=4', 'dataset.args.test.n_frames=4', 'dataset.args.test_final.n_frames=4',
        'dataset.transform.resize=32', 'dataset.transform.crop=28', 'dataset.num_workers=0',
        'dataset.batch_size=4']
# two epochs: one on 2 of the 4 frames, the last on every frame (the default recipe's two phases)
FAST = {'epochs': 2, 'full_epochs': 1, 'frames': 2, 'batch_size': 8,
        'model': {'name': 'resnet2d', 'args': {'model_depth': 18, 'widen_factor': 0.125}}}


@pytest.fixture(scope='module')
def cfg(tmp_path_factory):
    cache = tmp_path_factory.mktemp('cache')
    return load_config('configs/scenemotion-transfer/res3d18.yaml',
                       [*TINY, f'dataset.scenemotion.cache_dir={cache}', 'model.args.widen_factor=0.125'])


class FrameMean(nn.Module):
    """Static by construction: logits from the mean colour of each frame, averaged over time."""

    def __init__(self, n_class=8, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(3, n_class)

    def forward(self, x):  # B × K × C × T × H × W
        return self.lin(x.mean((4, 5)).transpose(2, 3)).mean((1, 2))


class Shifted(nn.Module):
    """Another model's decisions moved to the next class on the videos ``flip`` (a mask)."""

    def __init__(self, inner, n_class=8):
        super().__init__()
        self.inner, self.n_class = inner, n_class

    def forward(self, x):
        o = self.inner(x)
        return torch.roll(o, 1, dims=1)


def test_splits_never_train_on_transfer_test(cfg):
    scored, train = M.scoring_splits(cfg)
    assert scored == ('transfer', 'test') and scored not in train
    assert set(train) == {('transfer', 'train'), ('pretrain', 'train'), ('pretrain', 'val'), ('novel', 'novel')}
    pre = copy.deepcopy(cfg)
    pre['dataset']['subset'] = 'pretrain'
    assert M.scoring_splits(pre)[0] == ('transfer', 'test')  # a pretrain config is scored on transfer too
    assert M.scoring_splits(cfg, 'train')[1] == [('transfer', 'train')]
    # the files themselves: no scored video is in the training pool
    test = M.load_bank(cfg, scored)
    pool = [M.load_bank(cfg, s) for s in train]
    assert len(test) == 16 and [len(b) for b in pool] == [8, 8, 8, 6]
    assert not set(test.paths) & {p for b in pool for p in b.paths}


def test_scenemotion_scored_at_the_benchmark_bias_whatever_the_training_bias(cfg):
    """A model trained on another SceneMotion bias (e.g. the bias-0 control) is scored by mimics
    trained on the same videos as every other model: the benchmark's bias-0.9 generation."""
    cfg0 = copy.deepcopy(cfg)
    cfg0['dataset']['scenemotion']['bias'] = 0.0
    pinned = M.scoring_config(cfg0)
    assert pinned['dataset']['scenemotion'] == cfg['dataset']['scenemotion'] and cfg0['dataset']['scenemotion']['bias'] == 0.0
    assert M.scoring_config(cfg) is cfg
    model = FrameMean()
    a = dynamic_score(model, cfg, device='cpu', recipe=dict(FAST), progress=False)
    b = dynamic_score(model, cfg0, device='cpu', recipe=dict(FAST), progress=False)
    assert a['value'] == b['value'] and a['agreement_train'] == b['agreement_train']


def test_bank_centre_clips_are_the_test_transform(cfg):
    bank = M.load_bank(cfg, ('transfer', 'test'))
    ds = build_dataset(cfg, 'test_final')
    assert bank.paths == [r.path for r in ds.records]
    x = bank.clips(torch.arange(len(ds)))
    for i in (0, 5, 15):
        item = ds[i]
        assert x[i].shape == item['video'].shape  # 1 × C × T × 28 × 28
        assert torch.allclose(x[i], item['video'], atol=1e-5)
        assert bank.labels[i] == item['label']
    # a random crop is a shifted window of the same frames (same size, same normalisation)
    r = bank.clips(torch.arange(4), torch.Generator().manual_seed(0))
    assert r.shape == x[:4].shape and not torch.equal(r, x[:4])


def test_mimic_start_does_not_depend_on_the_model():
    recipe = M.MimicRecipe.from_dict(FAST)
    torch.manual_seed(123)
    a = M.build_mimic(recipe, 8, seed=3).state_dict()
    FrameMean(seed=9)  # other draws in between
    torch.manual_seed(456)
    b = M.build_mimic(recipe, 8, seed=3).state_dict()
    c = M.build_mimic(recipe, 8, seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_result_arithmetic_and_floor(cfg):
    teacher = FrameMean(seed=1).eval()
    r = dynamic_score(teacher, cfg, device='cpu', mimic_seeds=2, seed=5, static_reference=teacher,
                      progress=False, recipe=FAST)
    assert r['split'] == 'transfer/test' and r['n'] == 16 and r['n_train'] == 30
    assert 'transfer/test' not in r['train_splits']
    assert r['mimic_seeds'] == [5, 6] and len(r['per_seed']) == 2
    assert r['value'] == pytest.approx(sum(r['per_seed']) / 2)
    m, sd, hw = mean_ci(r['per_seed'])
    assert r['ci95_mimic'] == pytest.approx([m - hw, m + hw]) and r['sd_mimic'] == pytest.approx(sd)
    # its two parts add up to it unless the shared part's estimate fell below 0 (then clipped)
    parts = r['sd_mimic_videos'] ** 2 + r['sd_mimic_shared'] ** 2
    assert parts == pytest.approx(sd ** 2) if r['sd_mimic_shared'] > 0 else parts >= sd ** 2 - 1e-12
    assert r['ci95'][0] <= r['value'] + 1e-9 and r['value'] <= r['ci95'][1] + 1e-9
    # per video (for measure.compare): the scored split's order, the seed-averaged disagreement
    assert r['per_video']['index'] == list(range(16))
    assert sum(r['per_video']['value']) / 16 == pytest.approx(r['value'])
    # the same model as its own reference, same seeds: the floor is the score (deterministic)
    assert r['floor'] == pytest.approx(r['value']) and r['floor_per_seed'] == pytest.approx(r['per_seed'])
    # per class: the class means weighted by their counts give the value back
    labels = M.load_bank(cfg, ('transfer', 'test')).labels
    names = M.load_bank(cfg, ('transfer', 'test')).classes
    total = sum(r['per_class'][names[c]] * int((labels == c).sum()) for c in range(8) if (labels == c).any())
    assert total / 16 == pytest.approx(r['value'])
    # the margin bins partition the videos and their scores add up to the value
    bins = r['by_margin'].values()
    assert sum(b['n'] for b in bins) == 16
    assert sum(b['n'] * b['score'] for b in bins if b['n']) / 16 == pytest.approx(r['value'])
    # the video model's accuracy is its own
    bank = M.load_bank(cfg, ('transfer', 'test'))
    acc = 100 * (M.predict(teacher, bank, device='cpu').argmax(1) == bank.labels).float().mean().item()
    assert r['Acc@1'] == pytest.approx(acc)
    # same seed, same answer
    r2 = dynamic_score(teacher, cfg, device='cpu', mimic_seeds=1, seed=5, progress=False, recipe=FAST)
    assert r2['per_seed'] == pytest.approx(r['per_seed'][:1]) and r2['ci95_mimic'] is None
    assert r2['sd_mimic_videos'] is None and r2['sd_mimic_shared'] is None


def test_score_counts_disagreements(cfg, monkeypatch):
    """Known answers: a mimic that copies the video model scores 0, one that always answers the
    next class scores 1 (the mimic's training is replaced, the arithmetic is the real one)."""
    teacher = FrameMean(seed=2).eval()
    monkeypatch.setattr(M, 'train_mimic', lambda t, *a, **k: t)
    r = dynamic_score(teacher, cfg, device='cpu', progress=False, recipe=FAST)
    assert r['value'] == 0.0 and r['ci95'] == [0.0, 0.0] and r['agreement_train'] == 1.0
    monkeypatch.setattr(M, 'train_mimic', lambda t, *a, **k: Shifted(t))
    r = dynamic_score(teacher, cfg, device='cpu', progress=False, recipe=FAST)
    assert r['value'] == 1.0 and set(r['per_class'].values()) == {1.0} and r['agreement_train'] == 0.0


def test_repeated_frame_clips_are_frames_of_the_pool(cfg):
    bank = M.load_bank(cfg, ('transfer', 'train'))
    recipe = M.MimicRecipe.from_dict({**FAST, 'frozen': 5})
    owner, local = torch.zeros(len(bank), dtype=torch.long), torch.arange(len(bank))
    x = M._frozen_frames([bank], owner, local, recipe, torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 3, 1, 28, 28)
    every = bank.clips(torch.arange(len(bank)))  # N × 1 × C × T × h × w
    frames = every.permute(0, 3, 1, 2, 4, 5).flatten(0, 1)  # (N·T) × 1 × C × h × w
    for clip in x:
        assert (frames - clip[:, :, 0]).abs().flatten(1).max(1).values.min() < 1e-6


def test_weight_average_of_the_mimic(cfg, monkeypatch):
    """``ema``: the trained mimic is the same as without it (no draw is added), and the mimic
    returned is the running average of its states after each step, BatchNorm statistics included."""
    bank = M.load_bank(cfg, ('transfer', 'train'))
    teacher = FrameMean(seed=1).eval()
    fast = {**FAST, 'batch_size': 2}
    plain = M.train_mimic(teacher, [bank], M.MimicRecipe.from_dict(fast), seed=2, device='cpu', n_class=8)
    decay, states = 0.5, []
    recipe = M.MimicRecipe.from_dict({**fast, 'ema': decay})
    update = M.Training.update

    def recording(self, loss):  # the trained mimic's state after each step
        update(self, loss)
        states.append({k: v.clone() for k, v in self.g.state_dict().items()})
    monkeypatch.setattr(M.Training, 'update', recording)
    avg = M.train_mimic(teacher, [bank], recipe, seed=2, device='cpu', n_class=8)
    assert len(states) == 8
    # the trained weights are the plain run's
    assert all(torch.equal(v, states[-1][k]) for k, v in plain.state_dict().items())
    # the average, computed by hand from the initial weights and every step's state
    ref = {k: v.clone() for k, v in M.build_mimic(recipe, 8, seed=2).state_dict().items()}
    for st in states:
        for k, v in st.items():
            ref[k] = decay * ref[k] + (1 - decay) * v if v.is_floating_point() else v.clone()
    got = avg.state_dict()
    assert all(torch.allclose(got[k].float(), ref[k].float(), atol=1e-6) for k in ref)
    assert not avg.training and not any(p.requires_grad for p in avg.parameters())
    assert any(not torch.equal(got[k], plain.state_dict()[k]) for k in ref if ref[k].is_floating_point())
    with pytest.raises(ValueError, match='ema'):
        M.MimicRecipe(ema=1.0)


def test_recipe_defaults_and_protocols(cfg):
    r = M.default_recipe(cfg)
    assert r.pool == 'all' and r.full_epochs <= r.epochs and r.init is None
    other = copy.deepcopy(cfg)
    other['dataset']['name'] = 'ucf101'
    p = M.default_recipe(other)
    assert p.pool == 'train' and p.frames == 0 and p.model['args']['widen_factor'] == 1.0
    assert M.scoring_splits(other) == ((None, 'test_final'), [(None, 'train')])


def test_bad_input(cfg):
    with pytest.raises(ValueError, match='mimic_seeds'):
        dynamic_score(FrameMean(), cfg, device='cpu', mimic_seeds=0, progress=False)
    with pytest.raises(KeyError, match='unknown'):
        M.MimicRecipe.from_dict({'epoch': 3})
    with pytest.raises(ValueError, match='loss'):
        M.MimicRecipe(loss='l1')
    with pytest.raises(ValueError, match='full_epochs'):
        M.MimicRecipe(epochs=2, full_epochs=3)
