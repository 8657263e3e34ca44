"""FAME, ALBAR, mixup and CutMix (debias/): their arithmetic pinned on small tensors, the
interface ClassifierStep calls, bad input, and one main.py epoch of each (one under torchrun)."""
import csv
import json
import math
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

from core.config import ConfigError, fill_defaults, load_config
from core.errors import UserError
from debias import METHODS, build_method
from debias.albar import ALBAR, gradient_penalty, negative_entropy, static_clip
from debias.fame import FAME, blur_kernel_size, foreground_mask, gaussian_blur, motion_map
from debias.mix import TorchvisionMix
from supervised.step import ClassifierStep
from tests.test_main import ROOT, run_main, tiny_config, ucf_root  # noqa: F401 (fixture)


def _cfg(augment, n_frames=8, **extra):
    return fill_defaults({'augment': augment, 'model': {'name': 'resnet3d', 'args': {'n_class': 5}},
                          'dataset': {'args': {'train': {'n_frames': n_frames}}}, **extra})


# ---------------------------------------------------------------- FAME

def _moving_square(h=32, t=4, step=2):
    """A static plain background; a textured 6 × 6 square moving ``step`` px per frame along x
    (rows 10-15, columns 4-9 at t = 0). Returns the clip ``1 × 3 × T × H × W`` and its path."""
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([0.2, 0.3, 0.6]).view(1, 3, 1, 1, 1).expand(1, 3, t, h, h).clone()
    tex = 0.5 + 0.5 * torch.rand(1, 3, 6, 6, generator=g)
    tex[:, 1:] *= 0.2   # reddish: colours the background does not have
    path = torch.zeros(h, h, dtype=torch.bool)
    for i in range(t):
        c = 4 + step * i
        x[:, :, i, 10:16, c:c + 6] = tex
        path[10:16, c:c + 6] = True
    return x, path


def test_fame_blur_kernel_is_the_authors():
    assert [blur_kernel_size(s) for s in (112, 224, 48, 28, 8)] == [11, 23, 5, 3, 1]
    m = torch.zeros(1, 9, 9)
    m[0, 4, 4] = 1
    b = gaussian_blur(m, 3)   # σ = 1: separable, normalised, symmetric
    k = torch.exp(-torch.tensor([1.0, 0.0, 1.0]) / 2)
    k = k / k.sum()
    assert torch.allclose(b[0, 3:6, 3:6], k[:, None] * k[None, :], atol=1e-7)
    assert b.sum().item() == pytest.approx(1.0) and (b[0, :2] == 0).all()


def test_fame_mask_is_where_the_square_moves():
    raw, path = _moving_square()
    # the unrefined score is non-zero exactly on the path widened by the blur radius (1 px at
    # 32 px): asking for that many pixels gives exactly that region
    support = torch.zeros_like(path)
    support[9:17, 3:17] = True
    assert torch.equal(gaussian_blur(motion_map(raw), 3)[0] > 0, support)
    m = foreground_mask(raw, fg_fraction=support.sum().item() / 32 ** 2, refine=False)[0]
    assert torch.equal(m.bool(), support)
    # the default share: half of the pixels, the whole path among them
    m = foreground_mask(raw, refine=False)[0]
    assert m.sum().item() == 512 and set(m.unique().tolist()) == {0.0, 1.0} and m[path].all()


def test_fame_colour_refinement_recovers_a_plain_objects_interior():
    # a plain red 8 × 8 square moving 1 px per frame: the middle of its path stays red in every
    # frame, so its temporal difference is 0 there; the refinement marks it by its colour
    h, t = 32, 4
    raw = torch.tensor([0.2, 0.3, 0.6]).view(1, 3, 1, 1, 1).expand(1, 3, t, h, h).clone()
    path = torch.zeros(h, h, dtype=torch.bool)
    for i in range(t):
        raw[:, :, i, 10:18, 4 + i:12 + i] = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)
        path[10:18, 4 + i:12 + i] = True
    assert (gaussian_blur(motion_map(raw), 3)[0][path] == 0).sum() == 24
    plain, refined = (foreground_mask(raw, refine=r)[0].bool() for r in (False, True))
    assert refined.sum() == plain.sum() == 512
    assert refined[path].all() and not plain[path].all()


def test_fame_transform_pastes_foreground_on_another_clip():
    raw, path = _moving_square()
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    clip = (raw - torch.tensor(mean).view(1, 3, 1, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1, 1)
    other = torch.randn(1, 3, 4, 32, 32)
    video = torch.stack([clip, other])   # B × K × C × T × H × W, K = 1
    fame = FAME(refine=False, mean=mean, std=std)
    masks = fame.masks(video)
    assert masks.shape == (2, 1, 1, 1, 32, 32)
    # computed on un-normalised pixels: the same mask as on the raw clip
    assert torch.equal(masks[0, 0, 0, 0], foreground_mask(raw, refine=False)[0])
    torch.manual_seed(0)
    out = fame.transform(video, torch.tensor([3, 1]))
    assert torch.equal(out.target, torch.tensor([3, 1]))   # the label stays x's
    m = masks[0, 0, 0, 0].bool()
    assert torch.equal(out.video[0][..., m], video[0][..., m])        # foreground of x
    assert torch.equal(out.video[0][..., ~m], video[1][..., ~m])      # background of the other clip
    assert torch.equal(out.video[0][..., path], video[0][..., path])
    # the diagnostic: share of each clip's temporal difference inside its mask (square: all of it)
    motion = motion_map(fame._raw(video))
    share = (motion * masks[:, 0, 0, 0]).flatten(1).sum(1) / motion.flatten(1).sum(1)
    assert share[0].item() == pytest.approx(1.0)
    assert out.metrics['fame_motion_in_mask'] == pytest.approx(share.mean().item())


# ---------------------------------------------------------------- ALBAR

def test_albar_static_clip_entropy_and_penalty():
    x = torch.arange(2 * 1 * 3 * 5 * 2 * 2, dtype=torch.float32).view(2, 1, 3, 5, 2, 2)
    s = static_clip(x, 5 // 2)
    assert torch.equal(s, x[:, :, :, 2:3].expand_as(x))
    assert ALBAR().frame(8) == 4 and ALBAR(static_frame=1).frame(8) == 1
    assert negative_entropy(torch.zeros(3, 7)).item() == pytest.approx(-math.log(7))
    assert negative_entropy(torch.tensor([[50.0, 0, 0]])).item() == pytest.approx(0, abs=1e-6)
    # linear model f(x) = W·vec(x): ∇_x Σ_k f_k = Σ_k W_k for every clip; the penalty is its
    # norm (not squared), and its gradient w.r.t. W_k is (Σ_k W_k) / ‖Σ_k W_k‖ (double backprop)
    w = torch.randn(4, 12, requires_grad=True)
    xs = torch.randn(3, 12, requires_grad=True)
    pen = gradient_penalty(xs @ w.t(), xs)
    v = w.detach().sum(0)
    assert pen.item() == pytest.approx(v.norm().item(), rel=1e-5)
    pen.backward()
    assert torch.allclose(w.grad, (v / v.norm()).expand(4, 12), atol=1e-5)


class _Tiny(torch.nn.Module):
    """Clips -> logits through a non-linearity (so the gradient penalty depends on weights)."""

    def __init__(self, d=3 * 4 * 4 * 4, n=5):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(d, 16), torch.nn.Linear(16, n)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x.flatten(1))))


def _batch(b=6, n=5):
    g = torch.Generator().manual_seed(1)
    return {'video': torch.randn(b, 1, 3, 4, 4, 4, generator=g), 'label': torch.arange(b) % n,
            'index': torch.arange(b)}


def test_albar_loss_is_the_sum_of_its_terms():
    model, batch = _Tiny(), _batch()
    step = ClassifierStep(model, torch.nn.CrossEntropyLoss(), method=ALBAR())
    out = step.train_step(batch)
    m = out.metrics
    expect = m['loss_cls'] - 1.0 * m['loss_static_ce'] + 4.25 * m['loss_static_negentropy'] + 10 * m['loss_grad_penalty']
    assert out.loss.item() == pytest.approx(expect, rel=1e-5) and m['loss'] == pytest.approx(expect, rel=1e-5)
    x_s = static_clip(batch['video'], 2)
    assert m['loss_cls'] == pytest.approx(F.cross_entropy(model(batch['video']), batch['label']).item(), rel=1e-5)
    assert m['loss_static_ce'] == pytest.approx(F.cross_entropy(model(x_s), batch['label']).item(), rel=1e-5)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize('term,direction', [('static_ce', +1), ('static_negentropy', -1), ('grad_penalty', -1)])
def test_albar_each_term_moves_the_static_prediction_its_way(term, direction):
    """A small gradient step on ``weight · term`` alone: the adversarial term raises the static
    clip's CE, the entropy term lowers its negative entropy (towards uniform), the penalty
    lowers the input-gradient norm."""
    model, batch = _Tiny(), _batch()
    albar = ALBAR()

    def value():
        terms = albar.loss_terms(model, batch['video'], batch['label'], None)
        return {t.name: t for t in terms}[term]

    t = value()
    (t.weight * t.value).backward()
    before = t.value.item()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:   # the last bias does not enter the input gradient
                p -= 1e-3 * p.grad
    after = value().value.item()
    assert (after - before) * direction > 0, (before, after)


def test_albar_under_bf16_autocast_matches_fp32():
    # the engine runs the step under autocast; the penalty's double backprop goes through
    # bf16 convolutions, BatchNorm and pooling (a small R3D-style stack, cheap on CPU)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.BatchNorm3d(4), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5))
    net = lambda x: model(x.flatten(0, 1))   # noqa: E731  (B × K clips -> B·K logits; K = 1)
    batch = _batch(4)
    step = ClassifierStep(net, torch.nn.CrossEntropyLoss(), method=ALBAR())
    grads = {}
    for amp in (False, True):
        model.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            out = step.train_step(batch)
        out.loss.backward()
        grads[amp] = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert torch.isfinite(out.loss) and torch.isfinite(grads[amp]).all()
        assert out.metrics['loss_grad_penalty'] > 0
    cos = F.cosine_similarity(grads[False], grads[True], dim=0).item()
    assert cos > 0.9, cos   # bf16 rounding only



def _bn_net():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.BatchNorm3d(4), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5))
    return model, (lambda x: model(x.flatten(0, 1)))


def test_albar_static_bn_running_normalises_the_static_clip_like_a_test_clip():
    """``static_bn: running``: the static forward uses BatchNorm's running statistics and leaves
    them as they are; ``batch`` (the authors') normalises the static batch by its own."""
    batch = _batch(4)
    x_s = static_clip(batch['video'], 2)
    for mode in ('batch', 'running'):
        model, net = _bn_net()
        bn = model[1]
        bn.running_mean.fill_(0.3)
        bn.running_var.fill_(2.0)
        albar = ALBAR(static_bn=mode)
        ClassifierStep(net, torch.nn.CrossEntropyLoss(), method=albar)   # check_model: finds no module on a lambda
        albar.check_model(model)
        model.train()
        terms = {t.name: t.value for t in albar.loss_terms(net, batch['video'], batch['label'], None)}
        model.eval()
        eval_ce = F.cross_entropy(net(x_s), batch['label']).item()
        assert model.training is False and bn.training is False
        if mode == 'running':
            assert terms['static_ce'].item() == pytest.approx(eval_ce, rel=1e-5)
            assert torch.all(bn.running_mean == 0.3) and torch.all(bn.running_var == 2.0)
        else:
            assert terms['static_ce'].item() != pytest.approx(eval_ce, rel=1e-3)
            assert not torch.all(bn.running_mean == 0.3)   # the static batch updated them
    model.train()
    with pytest.raises(UserError, match="augment.albar.static_bn='joint': choose batch or running"):
        ALBAR(static_bn='joint')


def test_albar_static_bn_running_restores_train_mode_and_backprops():
    model, net = _bn_net()
    albar = ALBAR(static_bn='running')
    albar.check_model(model)
    model.train()
    batch = _batch(4)
    terms = albar.loss_terms(net, batch['video'], batch['label'], None)
    assert model[1].training   # back in training mode after the static forward
    sum(t.weight * t.value for t in terms).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

# ---------------------------------------------------------------- mixup / CutMix

def _clips(b=4):
    return torch.randn(b, 2, 3, 4, 8, 10), torch.tensor([0, 1, 2, 3])[:b]


def test_mixup_blends_whole_clips_with_the_label_weights():
    x, y = _clips()
    torch.manual_seed(3)
    out = TorchvisionMix('mixup', 0.8, 5).transform(x, y)
    lam = out.target[0, 0].item()   # labels all differ: weight of the clip's own class
    assert 0 < lam < 1
    assert torch.allclose(out.video, lam * x + (1 - lam) * x.roll(1, 0), atol=1e-6)
    onehot = F.one_hot(y, 5).float()
    assert torch.allclose(out.target, lam * onehot + (1 - lam) * onehot.roll(1, 0), atol=1e-6)
    assert torch.allclose(out.target.sum(1), torch.ones(4))


def test_cutmix_cuts_one_box_through_every_frame():
    x, y = _clips()
    for seed in range(20):
        torch.manual_seed(seed)
        out = TorchvisionMix('cutmix', 1.0, 5).transform(x, y)
        changed = out.video != x
        if changed.any():
            break
    box = changed[0].all(0).all(0).all(0)   # H × W: changed in every clip, channel and frame
    assert torch.equal(changed, box.expand_as(changed))
    rows, cols = box.any(1).nonzero().flatten(), box.any(0).nonzero().flatten()
    assert box.sum() == len(rows) * len(cols)   # a rectangle
    assert torch.equal(out.video[..., box], x.roll(1, 0)[..., box])
    lam = 1 - box.sum().item() / (8 * 10)
    onehot = F.one_hot(y, 5).float()
    assert torch.allclose(out.target, lam * onehot + (1 - lam) * onehot.roll(1, 0), atol=1e-6)


def test_soft_labels_reach_the_criterion():
    model, batch = _Tiny(), _batch(4)
    torch.manual_seed(0)
    step = ClassifierStep(model, torch.nn.CrossEntropyLoss(), method=TorchvisionMix('mixup', 0.8, 5))
    out = step.train_step(batch)
    torch.manual_seed(0)
    mixed = TorchvisionMix('mixup', 0.8, 5).transform(batch['video'], batch['label'])
    logp = F.log_softmax(model(mixed.video), 1)
    assert out.loss.item() == pytest.approx(-(mixed.target * logp).sum(1).mean().item(), rel=1e-5)


# ---------------------------------------------------------------- the interface, bad input

def test_registry_and_build():
    assert METHODS.names() == ['albar', 'background_erasing', 'cutmix', 'fame', 'mixup', 'stillmix']
    assert build_method(_cfg(None)) is None
    m = build_method(_cfg({'name': 'albar', 'albar': {'beta': 0.0}}))
    assert (m.alpha, m.beta, m.gamma, m.static_frame) == (1.0, 0.0, 10.0, None)
    m = build_method(_cfg({'name': 'fame'}))
    assert (m.fg_fraction, m.refine) == (0.5, True)
    assert build_method(_cfg({'name': 'cutmix'})).alpha == 1.0
    assert build_method(_cfg({'name': 'mixup'})).alpha == 0.8


@pytest.mark.parametrize('augment,frames,match', [
    ({'name': 'cutmixx'}, 8, r"unknown de-biasing method 'cutmixx'; did you mean 'cutmix'.*known: albar, "
                             r"background_erasing, cutmix, fame, mixup, stillmix"),
    ({'name': 'fame'}, 1, r'augment.name=fame needs clips of at least 2 frames; dataset.args.train clips have 1'),
    ({'name': 'albar'}, 1, r'augment.name=albar needs clips of at least 2 frames'),
    ({'name': 'albar', 'albar': {'static_frame': 8}}, 8, r'augment.albar.static_frame=8 is beyond dataset.args.train '
                                                         r'clips \(8 frames: 0..7\)'),
])
def test_build_refuses_in_one_line(augment, frames, match):
    with pytest.raises(UserError, match=match) as e:
        build_method(_cfg(augment, n_frames=frames))
    assert '\n' not in str(e.value)


def test_albar_refuses_a_compiled_model():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(UserError, match='needs double backprop, which torch.compile does not support'):
        ClassifierStep(torch.compile(model, backend='eager'), torch.nn.CrossEntropyLoss(), method=ALBAR())
    ClassifierStep(torch.compile(model, backend='eager'), torch.nn.CrossEntropyLoss(), method=ALBAR(gamma=0))
    ClassifierStep(model, torch.nn.CrossEntropyLoss(), method=ALBAR())


def test_mix_needs_classes_and_cross_entropy():
    with pytest.raises(UserError, match='needs criterion.name=CrossEntropyLoss, not KDLoss'):
        build_method(_cfg({'name': 'mixup'}, criterion={'name': 'KDLoss'}))
    cfg = _cfg({'name': 'cutmix'})
    del cfg['model']['args']['n_class']
    with pytest.raises(UserError, match='needs model.args.n_class'):
        build_method(cfg)


@pytest.mark.parametrize('key,bad', [('augment.fame.fg_fraction', 1.0), ('augment.fame.fg_fraction', 0),
                                     ('augment.albar.beta', -1), ('augment.albar.static_frame', -1),
                                     ('augment.albar.static_frame', 1.5), ('augment.mixup.alpha', 0),
                                     ('augment.cutmix.alpha', -0.5), ('augment.consistency', -1)])
def test_knobs_out_of_range_refused_in_one_line(tmp_path, key, bad):
    p = tmp_path / 'c.yaml'
    p.write_text('augment: {name: albar}\n')
    with pytest.raises(ConfigError, match=key.replace('.', r'\.')) as e:
        load_config(str(p), [f'{key}={bad}'])
    assert '\n' not in str(e.value)


# ---------------------------------------------------------------- end to end

def test_main_one_epoch_each_method(tmp_path, ucf_root):  # noqa: F811
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    runs = {'fame': [], 'mixup': [], 'cutmix': [],
            # ALBAR with gradient clipping: the double-backprop loss through the engine's clip_grad
            'albar': ['optimizer.clip_grad=0.5']}
    for name, extra in runs.items():
        out = tmp_path / name
        run_main([cfg, '--output-dir', out, 'optimizer.epochs=1', f'augment.name={name}', *extra])
        assert json.loads((out / 'results.json').read_text())['n_videos'] > 0
        row = next(csv.DictReader(open(out / 'metrics.csv')))
        assert math.isfinite(float(row['train_loss'])), name
    assert 0 < float(next(csv.DictReader(open(tmp_path / 'fame' / 'metrics.csv')))['train_fame_motion_in_mask']) <= 1
    row = next(csv.DictReader(open(tmp_path / 'albar' / 'metrics.csv')))
    for key in ('train_loss_cls', 'train_loss_static_ce', 'train_loss_static_negentropy', 'train_loss_grad_penalty',
                'train_grad_norm'):
        assert math.isfinite(float(row[key])), key


@pytest.mark.parametrize('extra,message', [
    (['augment.name=cutmixx'], "augment.name: unknown de-biasing method 'cutmixx'; did you mean 'cutmix' or "
                               "'stillmix' or 'mixup'? (known: albar, background_erasing, cutmix, fame, mixup, stillmix)"),
    (['augment.name=albar', 'augment.albar.static_frame=4'],
     'augment.albar.static_frame=4 is beyond dataset.args.train clips (4 frames: 0..3); use null for the middle frame'),
])
def test_main_refuses_what_the_method_cannot_use(tmp_path, ucf_root, extra, message):  # noqa: F811
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    res = subprocess.run([sys.executable, 'main.py', cfg, '--output-dir', str(tmp_path / 'run'), '-j', '0', *extra],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == f'error: {message}'
    assert not (tmp_path / 'run' / 'checkpoint.pth.tar').exists()


def test_albar_two_processes_match_one(tmp_path, ucf_root):  # noqa: F811
    """ALBAR under DDP (gloo, 2 CPU processes): every term is a batch mean and BatchNorm is
    frozen in the tiny config, so 2 × 2 clips give the losses of 1 × 4."""
    from tests.test_distributed import launch
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root, epochs=1)
    rows = {}
    for n in (1, 2):
        out = tmp_path / f'np{n}'
        launch(['main.py', cfg, '--output-dir', str(out), '-j', '0', 'augment.name=albar'], n)
        rows[n] = next(csv.DictReader(open(out / 'metrics.csv')))
    for key in ('train_loss', 'train_loss_grad_penalty', 'val_loss'):
        assert float(rows[1][key]) == pytest.approx(float(rows[2][key]), abs=1e-4), key
