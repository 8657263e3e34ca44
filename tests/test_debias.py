"""De-biasing options of main.py (StillMix, Background Erasing, linear probe), the narrow
frame-wise ResNet and the DRL diagnostics: arithmetic pinned on small tensors, end to end on a
real UCF101-format tree."""
import json

import pytest
import torch
from torch.nn import functional as F

from debias.batch_mix import BatchMix, Draw, blend_still, draw
from drl.steps import attack_effect, logit_grad_norms
from models.resnet2d import resnet2d
from tests.test_main import run_main, tiny_config, ucf_root  # noqa: F401 (fixture)


def test_blend_still_arithmetic():
    x = torch.arange(2 * 1 * 1 * 3 * 1 * 1, dtype=torch.float32).view(2, 1, 1, 3, 1, 1)  # B K C T H W
    d = Draw(lam=torch.tensor([0.25, 0.0]), source=torch.tensor([1, 0]), frame=torch.tensor([2, 0]))
    y = blend_still(x, d)
    # clip 0: frames 0,1,2 blended with frame 2 of clip 1 (value 5) at weight 0.25
    assert torch.allclose(y[0].flatten(), torch.tensor([0.75 * 0 + 0.25 * 5, 0.75 * 1 + 0.25 * 5, 0.75 * 2 + 0.25 * 5]))
    assert torch.equal(y[1], x[1])  # λ = 0: untouched
    assert y.shape == x.shape and not torch.equal(y, x)


def test_draw_stillmix_takes_other_clips_and_respects_ranges():
    torch.manual_seed(0)
    for _ in range(20):
        d = draw(5, 8, mix=(0.3, 0.7), prob=1.0, other=True)
        assert (d.source != torch.arange(5)).all()
        assert ((d.lam >= 0.3) & (d.lam <= 0.7)).all()
        assert ((d.frame >= 0) & (d.frame < 8)).all()
    d = draw(4, 8, mix=(0.3, 0.7), prob=1.0, other=False)  # Background Erasing: own frame
    assert torch.equal(d.source, torch.arange(4))
    d = draw(1000, 8, mix=(0.5, 0.5), prob=0.25)
    frac = (d.lam > 0).float().mean().item()
    assert 0.18 < frac < 0.32 and set(d.lam.unique().tolist()) <= {0.0, 0.5}


def test_background_erasing_keeps_a_static_clip_static():
    # a clip whose frames are all equal is unchanged by blending one of its own frames into it
    x = torch.rand(3, 1, 3, 1, 8, 8).expand(3, 1, 3, 4, 8, 8).contiguous()
    torch.manual_seed(1)
    y = BatchMix('background_erasing', mix=(0.2, 0.8))(x)
    assert torch.allclose(y, x, atol=1e-6)


@pytest.mark.parametrize('bad', [dict(name='cutmix'), dict(name='stillmix', mix=(0.8, 0.2)),
                                 dict(name='stillmix', prob=1.5), dict(name='background_erasing', consistency=-1)])
def test_batch_mix_refuses_bad_values(bad):
    with pytest.raises(ValueError):
        BatchMix(**bad)


def test_narrow_resnet2d_widths_and_forward():
    m = resnet2d(n_class=5, model_depth=18, widen_factor=0.25)
    assert m.conv1.out_channels == 16 and m.layer4[-1].bn2.num_features == 128 and m.head.in_features == 128
    x = torch.randn(2, 1, 3, 4, 32, 32, requires_grad=True)
    out = m(x)
    out.sum().backward()
    assert out.shape == (2, 5) and torch.isfinite(x.grad).all()
    full = resnet2d(n_class=5, model_depth=18)
    assert sum(p.numel() for p in m.parameters()) < sum(p.numel() for p in full.parameters()) / 10
    with pytest.raises(ValueError):
        resnet2d(n_class=5, model_depth=18, widen_factor=0.5, pretrained=True)


def test_logit_grad_norms_match_autograd():
    z = torch.randn(4, 6, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3])
    ce = F.cross_entropy(z, y)
    pen = 0.5 * (z ** 2).sum()
    out = logit_grad_norms(z, ce=ce, penalty=pen)
    p = z.softmax(1)
    g_ce = (p - F.one_hot(y, 6)) / 4
    assert out['grad_ce'] == pytest.approx(g_ce.norm().item(), rel=1e-5)
    assert out['grad_penalty'] == pytest.approx(z.norm().item(), rel=1e-5)
    assert out['grad_ratio'] == pytest.approx(out['grad_penalty'] / out['grad_ce'], rel=1e-6)
    # a KL penalty between equal distributions has zero gradient: the DRL-dir start
    q = z.detach().log_softmax(1)
    kl = F.kl_div(q, z.log_softmax(1), reduction='batchmean', log_target=True)
    assert logit_grad_norms(z, penalty=kl)['grad_penalty'] < 1e-6


def test_attack_effect_counts_flips():
    g = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.randn(5, 4)
    y_hat = g(x).argmax(1)
    o = torch.randn(5, 3)
    o_adv = o.clone()
    o_adv[:2] = -o[:2]  # may change the decision of the first two
    out = attack_effect(g, x, o, o_adv, y_hat)
    flips = (o_adv.argmax(1) != y_hat).float().mean().item() * 100
    assert out['flip_f'] == pytest.approx(flips)
    assert out['Acc@1_sp_adv'] == pytest.approx(100.0)  # g unchanged on the same input
    assert out['kl_f_adv'] >= 0


def test_main_stillmix_background_erasing_and_linear_probe(tmp_path, ucf_root):  # noqa: F811
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    base = tmp_path / 'base'
    run_main([cfg, '--output-dir', base, 'optimizer.epochs=1'])
    for name, extra in (('stillmix', ['augment.name=stillmix', 'augment.mix=[0.3,0.7]']),
                        ('be', ['augment.name=background_erasing', 'augment.consistency=1.0'])):
        out = tmp_path / name
        run_main([cfg, '--output-dir', out, 'optimizer.epochs=1', *extra])
        assert json.loads((out / 'results.json').read_text())['n_videos'] > 0
    assert 'loss_consistency' in (tmp_path / 'be' / 'metrics.csv').read_text()
    # linear probe: only the head changes
    probe = tmp_path / 'probe'
    run_main([cfg, '--output-dir', probe, 'optimizer.epochs=1', 'model.linear_probe=true',
              '--pretrain', base / 'checkpoint.pth.tar'])
    a = torch.load(base / 'checkpoint.pth.tar', weights_only=True)['state_dict']
    b = torch.load(probe / 'checkpoint.pth.tar', weights_only=True)['state_dict']
    body = [k for k in a if not k.startswith('head.')]
    assert body and all(torch.equal(a[k], b[k]) for k in body)  # weights and BN statistics
    assert not torch.equal(a['head.weight'], b['head.weight'])


def test_eval_period_validates_every_n_epochs_and_the_last(tmp_path, ucf_root):  # noqa: F811
    import csv
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    out = tmp_path / 'run'
    run_main([cfg, '--output-dir', out, 'optimizer.epochs=3', 'eval_period=2'])
    with open(out / 'metrics.csv') as f:
        rows = list(csv.DictReader(f))
    assert [bool(r['val_Acc@1']) for r in rows] == [False, True, True]
    assert json.loads((out / 'results.json').read_text())['n_videos'] > 0
