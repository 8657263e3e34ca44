"""Attacks on a real (small-input) frame-wise ResNet-18: bounds, step sizes, momentum,
projection, random start, shared perturbations, and no weight gradients."""
import pytest
import torch
from torch.nn import functional as F

from drl.attacks import ATTACKS, FGSM, PGD, SPFGSM, SPPGD, build_attack
from models import build_model

STD = [0.229, 0.224, 0.225]
STD_T = torch.tensor(STD).view(1, 1, 3, 1, 1, 1)


@pytest.fixture(scope='module')
def setup():
    torch.manual_seed(0)
    g = build_model({'name': 'resnet2d', 'args': {'model_depth': 18, 'n_class': 5}})
    x = torch.randn(2, 1, 3, 4, 24, 24)  # B × K × C × T × H × W
    g.eval()
    with torch.no_grad():
        y = g(x).argmax(1)
    g.train()
    return g, x, y


def _units(delta, step):
    """delta expressed in steps of ``step / std_c`` (per channel)."""
    return delta * STD_T / step


def test_registry_names():
    assert set(ATTACKS.names()) == {'FGSM', 'PGD', 'SPFGSM', 'SPPGD'}
    assert isinstance(build_attack('PGD', eps=0.03, alpha=0.01, iters=2), PGD)
    with pytest.raises(KeyError, match='FGSM'):
        build_attack('FGMS', eps=0.03)


def test_fgsm_single_step_is_exactly_eps_over_std(setup):
    g, x, y = setup
    x_adv = FGSM(eps=0.03, iters=1, scale=STD, dim=2)(g, x, y)
    u = _units(x_adv - x, 0.03)
    # every pixel moves by exactly one sign step of eps / std_c (gradients are never exactly 0)
    assert torch.allclose(u.abs(), torch.ones_like(u), atol=1e-4)


def test_fgsm_iterations_bounded_and_quantised(setup):
    g, x, y = setup
    iters, eps = 5, 0.03
    x_adv = FGSM(eps=eps, iters=iters, momentum=1, scale=STD, dim=2)(g, x, y)
    delta = x_adv - x
    bound = eps / STD_T
    assert (delta.abs() <= bound * (1 + 1e-4)).all()
    # the sum of 5 steps of ±eps/5: an odd integer number of steps
    u = _units(delta, eps / iters)
    assert torch.allclose(u, u.round(), atol=1e-3)
    assert set(u.round().unique().tolist()) <= {-5.0, -3.0, -1.0, 1.0, 3.0, 5.0}
    # no clipping: some pixels leave the bound of a smaller eps
    assert (delta.abs() > 0.6 * bound).any()


def test_fgsm_increases_loss_of_the_attacked_model(setup):
    g, x, y = setup
    x_adv = FGSM(eps=0.03, iters=2, scale=STD, dim=2)(g, x, y)
    g.eval()
    with torch.no_grad():
        assert F.cross_entropy(g(x_adv), y) > F.cross_entropy(g(x), y)
    g.train()


def _reference_momentum_fgsm(g, x, y, eps, iters, momentum):
    """Straightforward loop with .backward() on a leaf input, for comparison."""
    g.eval()
    xa, prev = x.clone(), None
    for _ in range(iters):
        xa = xa.detach().requires_grad_(True)
        F.cross_entropy(g(xa), y, reduction='sum').backward()
        grad = xa.grad if prev is None else xa.grad + momentum * prev
        prev = grad
        xa = xa + eps / iters * grad.sign() / STD_T
    g.zero_grad(set_to_none=True)
    g.train()
    return xa.detach()


def test_fgsm_momentum_matches_reference(setup):
    g, x, y = setup
    ours = FGSM(eps=0.03, iters=3, momentum=1.0, scale=STD, dim=2)(g, x, y)
    ref = _reference_momentum_fgsm(g, x, y, 0.03, 3, 1.0)
    no_mom = FGSM(eps=0.03, iters=3, momentum=0.0, scale=STD, dim=2)(g, x, y)
    assert torch.allclose(ours, ref, atol=1e-5)
    assert not torch.allclose(ours, no_mom, atol=1e-5)  # momentum changes the result


def test_attack_touches_no_weight_grad_and_restores_modes(setup):
    g, x, y = setup
    g.zero_grad(set_to_none=True)
    g.bn1.eval()  # e.g. a frozen BN: must stay in eval after the attack
    with torch.autocast('cpu', dtype=torch.bfloat16):
        x_adv = PGD(eps=0.03, alpha=0.01, iters=2, scale=STD, dim=2)(g, x, y)
    assert x_adv.dtype == torch.float32 and not x_adv.requires_grad
    assert all(p.grad is None for p in g.parameters())
    assert g.training and g.layer1.training and not g.bn1.training
    g.train()


def test_pgd_projection_and_random_start(setup):
    g, x, y = setup
    eps = 0.03
    bound = eps / STD_T
    # a step larger than the ball: every pixel ends on the boundary after projection
    x_adv = PGD(eps=eps, alpha=3 * eps, iters=2, rand_start=True, scale=STD, dim=2)(g, x, y)
    assert torch.allclose((x_adv - x).abs(), bound.expand_as(x), rtol=1e-4)
    # alpha = 0: what remains is the random start, uniform in ±eps/std
    gen = torch.Generator().manual_seed(1)
    start = PGD(eps=eps, alpha=0.0, iters=1, scale=STD, dim=2, generator=gen)(g, x, y) - x
    u = start * STD_T / eps
    assert (u.abs() <= 1 + 1e-5).all()
    assert u.min() < -0.95 and u.max() > 0.95 and abs(u.mean()) < 0.05
    no_start = PGD(eps=eps, alpha=0.0, iters=1, rand_start=False, scale=STD, dim=2)(g, x, y)
    assert torch.equal(no_start, x)


def test_pgd_small_steps_stay_inside(setup):
    g, x, y = setup
    x_adv = PGD(eps=0.03, alpha=0.008, iters=7, scale=STD, dim=2)(g, x, y)
    assert ((x_adv - x).abs() <= 0.03 / STD_T * (1 + 1e-4)).all()


@pytest.mark.parametrize('cls,kwargs', [(SPFGSM, {'iters': 2}),
                                        (SPPGD, {'alpha': 0.01, 'iters': 2})])
def test_sp_variants_share_one_perturbation_over_time(setup, cls, kwargs):
    g, x, y = setup
    delta = cls(eps=0.03, scale=STD, dim=2, cp_dim=[3], **kwargs)(g, x, y) - x
    assert torch.allclose(delta, delta[:, :, :, :1].expand_as(delta), atol=1e-6)
    assert (delta.abs() <= 0.03 / STD_T * (1 + 1e-4)).all() and delta.abs().max() > 0
    # the plain attack perturbs frames differently
    plain = FGSM(eps=0.03, iters=2, scale=STD, dim=2)(g, x, y) - x
    assert not torch.allclose(plain, plain[:, :, :, :1].expand_as(plain), atol=1e-6)


def test_fused_attack_model_is_the_same_function(setup):
    from drl.attacks import eval_mode, fuse_conv_bn
    g, x, y = setup
    with eval_mode(g), torch.no_grad():
        fused = fuse_conv_bn(g)
        assert fused is not g and not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
        assert torch.allclose(fused(x), g(x), atol=1e-4, rtol=1e-4)
    a = FGSM(eps=0.03, iters=2, scale=STD, dim=2, fuse_bn=True)(g, x, y)
    b = FGSM(eps=0.03, iters=2, scale=STD, dim=2, fuse_bn=False)(g, x, y)
    # rounding may flip the sign of a near-zero gradient entry, nothing more
    assert (a != b).float().mean() < 1e-3
    assert g.training and all(p.requires_grad for p in g.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_attack_on_cuda_under_bf16_autocast(setup):
    g, x, y = setup
    g, x, y = g.cuda(), x.cuda(), y.cuda()
    try:
        with torch.autocast('cuda', dtype=torch.bfloat16):
            x_adv = FGSM(eps=0.03, iters=2, scale=STD, dim=2)(g, x, y)
        assert x_adv.is_cuda and x_adv.dtype == torch.float32
        assert ((x_adv - x).abs() <= 0.03 / STD_T.cuda() * (1 + 1e-4)).all()
        assert all(p.grad is None for p in g.parameters())
    finally:
        g.cpu()
