"""DRL steps with real models through the real engine: scoring leaves the video model
bit-for-bit unchanged, a DRL-aug step updates both parameter groups with their own learning
rates, and DRL-dir's losses / gradient reversal do what docs/drl.md says."""
import copy

import pytest
import torch
from torch.nn import functional as F

from drl.attacks import FGSM
from drl.build import build_drl_optimizer
from drl.steps import DRLAugStep, DRLDirStep
from engine.dist import DistInfo
from engine.engine import Engine
from engine.losses import KDLoss
from engine.runner import RunContext
from models import build_model

N_CLASS = 3


def _models():
    torch.manual_seed(0)
    f = build_model({'name': 'resnet3d', 'args': {'model_depth': 10, 'n_class': N_CLASS}})
    g = build_model({'name': 'resnet2d', 'args': {'model_depth': 18, 'n_class': N_CLASS}})
    return f, g


def _batches(n=2, b=2):
    gen = torch.Generator().manual_seed(1)
    return [{'video': torch.randn(b, 1, 3, 4, 16, 16, generator=gen),
             'label': torch.randint(0, N_CLASS, (b,), generator=gen),
             'index': torch.arange(i * b, (i + 1) * b), 'vid': [''] * b, 'skipped': []}
            for i in range(n)]


def _ctx(tmp_path):
    return RunContext(out_dir=str(tmp_path), device=torch.device('cpu'), dist=DistInfo(),
                      print_freq=0)


def _cfg_sp(lr_sp=0.01, lr=0.01):
    return {'optimizer': {'name': 'SGD', 'epochs': 1,
                          'model_sp': {'args': {'lr': lr_sp, 'momentum': 0.9, 'weight_decay': 1e-4}},
                          'model': {'args': {'lr': lr}}}}


def test_scoring_leaves_video_model_bit_for_bit_unchanged(tmp_path):
    f, g = _models()
    f.requires_grad_(False)
    before = copy.deepcopy(f.state_dict())
    g_before = copy.deepcopy(g.state_dict())
    step = DRLAugStep(f, g, KDLoss(), attack=None, ctx=_ctx(tmp_path))
    optimizer, scheduler = build_drl_optimizer(_cfg_sp(), f=None, g=g)
    engine = Engine(step, optimizer, scheduler, _ctx(tmp_path), {'epochs': 1})
    stats = engine.train_one_epoch(_batches(), 0)
    assert not f.training  # kept in eval mode while training
    assert g.training
    after = f.state_dict()
    # weights and BN running statistics identical, bit for bit
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(g_before[k], v) for k, v in g.state_dict().items())
    assert 'loss_sp' in stats and 'loss_adv' not in stats
    res = engine.evaluate(_batches(1), 'test_final')
    assert 0 <= res['dynamic_score'] <= 1 and res['agreement'] == pytest.approx(1 - res['dynamic_score'])
    assert (tmp_path / 'dynamic_score_per_class.csv').is_file()
    assert (tmp_path / 'dynamic_score_per_class.png').is_file()


def test_resumed_drl_aug_run_names_its_pictures_by_the_true_epoch(tmp_path):
    """A run resumed at epoch 2 of 3 writes epoch_003.png (it wrote epoch_001.png, overwriting
    the first epoch's picture, when the step counted its own epochs)."""
    f, g = _models()
    attack = FGSM(eps=0.03, iters=1, scale=[0.229, 0.224, 0.225], dim=2)
    step = DRLAugStep(f, g, KDLoss(), attack=attack, ctx=_ctx(tmp_path), norm=([0.45] * 3, [0.225] * 3))
    optimizer, scheduler = build_drl_optimizer(_cfg_sp(), f=f, g=g)
    engine = Engine(step, optimizer, scheduler, _ctx(tmp_path), {'epochs': 3})
    engine.start_epoch = 2
    engine.fit(_batches(1))
    assert sorted(p.name for p in (tmp_path / 'adversarial').iterdir()) == ['epoch_003.png']


def test_drl_aug_step_updates_both_groups_with_their_lrs(tmp_path):
    f, g = _models()
    lr_sp, lr = 0.01, 0.2
    attack = FGSM(eps=0.03, iters=1, scale=[0.229, 0.224, 0.225], dim=2)
    step = DRLAugStep(f, g, KDLoss(), attack=attack, ctx=_ctx(tmp_path),
                      norm=([0.45] * 3, [0.225] * 3))
    optimizer, _ = build_drl_optimizer(_cfg_sp(lr_sp, lr), f=f, g=g)
    assert [grp['lr'] for grp in optimizer.param_groups] == [lr_sp, lr]
    step.set_epoch(0)
    step.train(True)
    out = step.train_step(_batches(1)[0])
    assert {'loss_adv', 'loss_clean', 'loss_sp', 'Acc@1', 'Acc@1_sp'} <= set(out.metrics)
    assert out.metrics['loss'] == pytest.approx(
        (out.metrics['loss_clean'] + out.metrics['loss_adv']) / 2 + out.metrics['loss_sp'], rel=1e-5)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    pf = {n: (p.detach().clone(), p.grad.clone()) for n, p in f.named_parameters() if p.grad is not None}
    pg = {n: (p.detach().clone(), p.grad.clone()) for n, p in g.named_parameters() if p.grad is not None}
    assert pf and pg
    optimizer.step()
    # first SGD step: momentum buffer = gradient (+ weight decay for the spatial group only)
    for n, p in f.named_parameters():
        if n in pf:
            w, gr = pf[n]
            assert torch.allclose(p.detach(), w - lr * gr, atol=1e-6), n
    for n, p in g.named_parameters():
        if n in pg:
            w, gr = pg[n]
            assert torch.allclose(p.detach(), w - lr_sp * (gr + 1e-4 * w), atol=1e-6), n
    assert (tmp_path / 'adversarial' / 'epoch_001.png').is_file()


@pytest.mark.parametrize('scale', [True, False])
def test_drl_dir_frozen_loss_matches_formula(tmp_path, scale):
    f, _ = _models()
    step = DRLDirStep(f, None, KDLoss(reduction='none'), lam=0.5, scale=scale, shuffle=False)
    step.train(True)
    batch = _batches(1)[0]
    torch.manual_seed(3)
    out = step.train_step(batch)
    # recompute by hand with the same BN batch statistics (train mode, same inputs)
    x, y = batch['video'], batch['label']
    o = f(x)
    with torch.no_grad():
        o_s = f(x[:, :, :, :1].expand_as(x))
    p, log_q = o.softmax(1), o_s.log_softmax(1)
    kd = (p * (o.log_softmax(1) - log_q)).sum(1)
    ce, ce_s = F.cross_entropy(o, y, reduction='none'), F.cross_entropy(o_s, y, reduction='none')
    w = 1 - torch.exp(-(ce_s - ce).clamp(min=0)) if scale else torch.ones_like(ce)
    expected = ce.mean() - 0.5 * (w.detach() * kd).mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-4)
    if not scale:
        # the penalty's gradient reaches the video model: it changes f's gradient
        f.zero_grad()
        out.loss.backward()
        with_penalty = f.head.weight.grad.clone()
        f.zero_grad()
        ce.mean().backward()
        assert not torch.allclose(with_penalty, f.head.weight.grad)


def test_drl_dir_gradient_reversal_trains_spatial_model_to_mimic(tmp_path):
    f, g = _models()
    step = DRLDirStep(f, g, KDLoss(reduction='none'), lam=0.5, scale=False)
    step.train(True)
    batch = _batches(1)[0]
    x, y = batch['video'], batch['label']
    out = step.train_step(batch)
    g.zero_grad()
    f.zero_grad()
    out.loss.backward()
    g_grad = {n: p.grad.clone() for n, p in g.named_parameters() if p.grad is not None}
    # g must receive the gradient of +(λ·KD + CE_s) (minimised by g), f's logits held fixed
    g.zero_grad()
    with torch.no_grad():
        o = f(x)
    o_s = g(x)
    (0.5 * KDLoss()(o_s, o) + F.cross_entropy(o_s, y)).backward()
    for n, p in g.named_parameters():
        if n in g_grad:
            assert torch.allclose(g_grad[n], p.grad, atol=1e-5, rtol=1e-3), n


def test_fixed_spatial_model_from_scoring_checkpoint(tmp_path):
    from types import SimpleNamespace

    from core.config import load_sp_config
    from core.errors import UserError
    from drl.build import build_spatial_model
    from engine.checkpoint import save_checkpoint
    f, g = _models()
    path = str(tmp_path / 'scoring.pth.tar')
    save_checkpoint({'state_dict_sp': g.state_dict()}, path)
    cfg = {'model': {'args': {'n_class': N_CLASS}}}
    cfg_sp = load_sp_config('configs/drl/fgsm-e3-i5-fixed.yaml', [f'sp.sp_pretrain={path}'])
    args = SimpleNamespace(channels_last=False, compile=False)
    g2 = build_spatial_model(cfg, cfg_sp, _ctx(tmp_path), args)
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), g2.state_dict().values()))
    assert not any(p.requires_grad for p in g2.parameters())
    step = DRLAugStep(f, g2, KDLoss(), attack=FGSM(eps=0.03, iters=1), freeze_sp=True)
    optimizer, _ = build_drl_optimizer(_cfg_sp(), f=f, g=None)
    before = copy.deepcopy(g2.state_dict())
    step.train(True)
    assert not g2.training
    out = step.train_step(_batches(1)[0])
    out.loss.backward()
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in g2.state_dict().items())  # fixed, BN too
    with pytest.raises(UserError, match='sp_pretrain'):
        build_spatial_model(cfg, load_sp_config('configs/drl/fgsm-e3-i5-fixed.yaml'), _ctx(tmp_path), args)
