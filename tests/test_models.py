"""Tests of models/: every registered model on a tiny clip, layouts, consensus, temporal shift,
parameter counts and ImageNet weight loading from disk."""
import os

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from models import MODELS, build_model, build_model_from_args, list_models
from models.head import clip_consensus
from models.pretrained import weights_url
from models.resnet3d import DEPTHS, ShortcutA
from models.tsm import ShiftConv2d, temporal_shift

B, K, C, T, S = 2, 2, 3, 4, 32
N_CLASS = 5

# (name, args) covering every registered model and a few depths.
CASES = [
    ('resnet3d', {'model_depth': 10}),
    ('resnet3d', {'model_depth': 18}),
    ('resnet3d', {'model_depth': 18, 'shortcut_type': 'A', 'no_max_pool': True}),
    ('resnet3d', {'model_depth': 50, 'conv1_t_size': 3, 'conv1_t_stride': 2, 'widen_factor': 0.25}),
    ('resnet2d', {'model_depth': 18}),
    ('tsm', {'arch': 'resnet18', 'num_segments': T}),
    ('tsm', {'model_depth': 50, 'num_segments': T, 'shift_div': 4}),  # 2D bottlenecks
]


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def clip(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_every_registered_model_is_covered():
    from models.tv_video import ARCHS  # torchvision's video models: tests/test_tv_models.py
    hf = {'hf_video'}  # Hugging Face video transformers: tests/test_hf_models.py
    in_house = [n for n in list_models() if n not in ARCHS and n not in hf]
    assert in_house == ['resnet2d', 'resnet3d', 'tsm']
    assert {name for name, _ in CASES} == set(in_house)
    assert set(list_models()) == set(in_house) | set(ARCHS) | hf


@pytest.mark.parametrize('name,args', CASES, ids=[f'{n}-{a}' for n, a in CASES])
def test_forward_backward(name, args):
    torch.manual_seed(0)
    model = build_model({'name': name, 'args': dict(args, n_class=N_CLASS, dropout=0.5)})
    x = clip(B, K, C, T, S, S)
    out = model(x)
    assert out.shape == (B, N_CLASS)
    assert torch.isfinite(out).all()
    F.cross_entropy(out, torch.tensor([1, 3])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert model.head.weight.grad.abs().sum() > 0
    # B × C × T × H × W is read as K = 1.
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x[:, 0]), model(x[:, :1]), atol=1e-6)


@pytest.mark.parametrize('depth', sorted(DEPTHS))
def test_resnet3d_depth_counts_layers(depth):
    # depth = stem conv + convs of the residual branches + the classifier.
    with torch.device('meta'):
        model = build_model_from_args('resnet3d', n_class=400, model_depth=depth)
    branch = [m for n, m in model.named_modules()
              if isinstance(m, nn.Conv3d) and 'downsample' not in n and n != 'conv1']
    assert 1 + len(branch) + 1 == depth
    assert model.num_features == (512 if depth < 50 else 2048)


def test_parameter_counts():
    r3d = build_model({'name': 'resnet3d', 'args': {'n_class': 400, 'model_depth': 18}})
    assert n_params(r3d) == 33_409_104
    r2d = build_model({'name': 'resnet2d', 'args': {'n_class': 101, 'model_depth': 18}})
    tv = torchvision.models.resnet18(num_classes=101)
    assert n_params(r2d) == n_params(tv) == 11_228_325
    # Same keys as torchvision, with fc renamed head: ImageNet checkpoints fit key for key.
    tv_keys = {k.replace('fc.', 'head.') for k in tv.state_dict()}
    assert set(r2d.state_dict()) == tv_keys
    tsm = build_model({'name': 'tsm', 'args': {'n_class': 101, 'arch': 'resnet18'}})
    assert set(tsm.state_dict()) == tv_keys


def test_shortcut_a_vs_b():
    a = build_model_from_args('resnet3d', n_class=400, model_depth=18, shortcut_type='A')
    b = build_model_from_args('resnet3d', n_class=400, model_depth=18, shortcut_type='B')
    # B adds a 1×1×1 conv + BN at the first block of stages 2-4; A adds nothing.
    extra = sum(cin * cout + 2 * cout for cin, cout in ((64, 128), (128, 256), (256, 512)))
    assert n_params(b) - n_params(a) == extra == 173_824
    assert isinstance(a.layer2[0].downsample, ShortcutA)
    x = clip(1, 2, 3, 5, 4)
    y = ShortcutA(4, 2)(x)
    assert y.shape == (1, 4, 2, 3, 2)
    assert torch.equal(y[:, :2], x[:, :, ::2, ::2, ::2])
    assert (y[:, 2:] == 0).all()


def test_ret_feat_shapes_3d():
    model = build_model_from_args('resnet3d', n_class=N_CLASS, model_depth=18,
                                  ret_feat=['pool', 'conv1', 'conv2', 'conv3', 'conv4', 'conv5'])
    out = model(clip(B, K, C, T, S, S))
    n = B * K
    assert set(out) == {'pred', 'pool', 'conv1', 'conv2', 'conv3', 'conv4', 'conv5'}
    assert out['pred'].shape == (B, N_CLASS)
    assert out['pool'].shape == (B, K, 512)
    assert out['conv1'].shape == (n, 64, 4, 16, 16)
    assert out['conv2'].shape == (n, 64, 2, 8, 8)
    assert out['conv3'].shape == (n, 128, 1, 4, 4)
    assert out['conv4'].shape == (n, 256, 1, 2, 2)
    assert out['conv5'].shape == (n, 512, 1, 1, 1)
    # pool is the spatio-temporal mean of conv5, before dropout.
    assert torch.allclose(out['pool'].flatten(0, 1), out['conv5'].mean((2, 3, 4)), atol=1e-6)


@pytest.mark.parametrize('name', ['resnet2d', 'tsm'])
def test_ret_feat_shapes_2d(name):
    model = build_model_from_args(name, n_class=N_CLASS, arch='resnet18',
                                  ret_feat=['conv1', 'conv3', 'conv5', 'pool'])
    out = model(clip(B, K, C, T, S, S))
    n = B * K
    assert out['conv1'].shape == (n, T, 64, 16, 16)
    assert out['conv3'].shape == (n, T, 128, 4, 4)
    assert out['conv5'].shape == (n, T, 512, 1, 1)
    assert out['pool'].shape == (B, K, 512)
    # Frame features averaged over frames give the clip feature.
    assert torch.allclose(out['pool'].flatten(0, 1), out['conv5'].mean((1, 3, 4)), atol=1e-6)


def test_consensus_modes():
    logits = torch.tensor([[[1.0, 2.0, 0.0], [3.0, -1.0, 0.5]]])  # B=1, K=2, n=3
    assert torch.allclose(clip_consensus(logits, 'avg'), torch.tensor([[2.0, 0.5, 0.25]]))
    assert torch.equal(clip_consensus(logits, 'max'), torch.tensor([[3.0, 2.0, 0.5]]))
    mean_p = logits.softmax(-1).mean(1)
    assert torch.allclose(clip_consensus(logits, 'avg_softmax'), mean_p.log(), atol=1e-6)
    with pytest.raises(ValueError, match='consensus'):
        clip_consensus(logits, 'median')


@pytest.mark.parametrize('mode', ['avg', 'avg_softmax', 'max'])
def test_model_consensus_matches_per_clip_scores(mode):
    model = build_model_from_args('resnet3d', n_class=N_CLASS, model_depth=10, consensus=mode).eval()
    x = clip(B, K, C, T, S, S)
    with torch.no_grad():
        per_clip = model.head(model.forward_features(x.flatten(0, 1))).unflatten(0, (B, K))
        assert torch.allclose(model(x), clip_consensus(per_clip, mode), atol=1e-5)
    if mode == 'avg_softmax':  # a log-probability: usable with CrossEntropyLoss
        assert torch.allclose(model(x).exp().sum(1), torch.ones(B), atol=1e-5)


def test_no_head_and_reset_head():
    feat_model = build_model_from_args('resnet2d', n_class=0, model_depth=18).eval()
    x = clip(B, K, C, T, S, S)
    with torch.no_grad():
        feats = feat_model(x)
        assert feats.shape == (B, 512)
        assert torch.allclose(feats, feat_model.forward_features(x.flatten(0, 1)).view(B, K, -1).mean(1))
    model = build_model_from_args('resnet2d', n_class=N_CLASS, model_depth=18).eval()
    trunk = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith('head.')}
    model.reset_head(7)
    assert model(x).shape == (B, 7)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in trunk.items())
    model.reset_head(0)
    assert model(x).shape == (B, 512)


def test_temporal_shift_moves_the_right_channels():
    n, t, c = 2, 3, 8
    # value = 100·clip + 10·frame + channel + 1, so every entry is distinct and non-zero.
    v = (100 * torch.arange(n).view(n, 1, 1) + 10 * torch.arange(t).view(1, t, 1)
         + torch.arange(c).view(1, 1, c) + 1).float()
    x = v.view(n * t, c, 1, 1).expand(n * t, c, 2, 2).contiguous()
    out = temporal_shift(x, t, shift_div=4).view(n, t, c, 2, 2)[..., 0, 0]  # fold = 2
    v = v.view(n, t, c)
    # channels 0-1: frame i gets frame i+1 (last frame zero)
    assert torch.equal(out[:, :-1, :2], v[:, 1:, :2]) and (out[:, -1, :2] == 0).all()
    # channels 2-3: frame i gets frame i-1 (first frame zero)
    assert torch.equal(out[:, 1:, 2:4], v[:, :-1, 2:4]) and (out[:, 0, 2:4] == 0).all()
    assert torch.equal(out[:, :, 4:], v[:, :, 4:])
    # channels_last input stays channels_last
    y = temporal_shift(x.to(memory_format=torch.channels_last), t, shift_div=4)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y.view(n, t, c, 2, 2)[..., 0, 0], out)


def test_tsm_shifts_inside_residual_branches_for_any_t():
    model = build_model_from_args('tsm', n_class=N_CLASS, arch='resnet18', num_segments=8).eval()
    shifts = [m for m in model.modules() if isinstance(m, ShiftConv2d)]
    assert len(shifts) == 8 and all(blk.conv1 in shifts for lay in
                                    (model.layer1, model.layer2, model.layer3, model.layer4) for blk in lay)
    seen = {}
    conv = model.layer2[1].conv1
    handle = conv.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    for t in (3, 5):  # not num_segments: the actual T is used
        with torch.no_grad():
            assert model(clip(B, K, C, t, S, S)).shape == (B, N_CLASS)
            ref = F.conv2d(temporal_shift(seen['inp'], t, 8), conv.weight, stride=conv.stride,
                           padding=conv.padding)
        assert torch.allclose(seen['out'], ref, atol=1e-5)
    handle.remove()


def test_frame_order_invariance_2d_but_not_tsm():
    x = clip(B, K, C, T, S, S)
    perm = torch.tensor([2, 0, 3, 1])
    r2d = build_model_from_args('resnet2d', n_class=N_CLASS, model_depth=18).eval()
    tsm = build_model_from_args('tsm', n_class=N_CLASS, arch='resnet18', num_segments=T)
    tsm.load_state_dict(r2d.state_dict())
    tsm.eval()
    with torch.no_grad():
        assert torch.allclose(r2d(x), r2d(x[:, :, :, perm]), atol=1e-5)
        assert not torch.allclose(tsm(x), tsm(x[:, :, :, perm]), atol=1e-3)


def test_resnet2d_channels_last():
    model = build_model_from_args('resnet2d', n_class=N_CLASS, model_depth=18).eval()
    x = clip(B * K, C, T, S, S)
    x_cl = x.to(memory_format=torch.channels_last_3d)
    frames = model._frames(x_cl)
    assert frames.data_ptr() == x_cl.data_ptr()  # folded without a copy
    assert frames.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = model.forward_features(x)
        assert torch.allclose(model.forward_features(x_cl), ref, atol=1e-5)
        model.to(memory_format=torch.channels_last)
        assert model._frames(x).is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(model.forward_features(x), ref, atol=1e-5)


def _fake_imagenet_file(folder, arch='resnet18'):
    """Save a freshly initialised torchvision model under its official weights file name."""
    torch.manual_seed(1)
    tv = torchvision.models.get_model(arch, weights=None)
    path = os.path.join(folder, os.path.basename(weights_url(arch)))
    torch.save(tv.state_dict(), path)
    return tv.state_dict(), path


@pytest.mark.parametrize('name', ['resnet2d', 'tsm'])
def test_pretrained_from_env_dir(name, tmp_path, monkeypatch):
    ref, path = _fake_imagenet_file(str(tmp_path))
    assert os.path.basename(path) == 'resnet18-f37072fd.pth'
    monkeypatch.setenv('DRL_PRETRAINED_DIR', str(tmp_path))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty'))
    model = build_model({'name': name, 'args': {'n_class': N_CLASS, 'arch': 'resnet18', 'pretrained': True}})
    state = model.state_dict()
    for k, v in ref.items():
        if not k.startswith('fc.'):
            assert torch.equal(state[k], v), k
    assert state['head.weight'].shape == (N_CLASS, 512)


def test_pretrained_lookup_order_and_missing_file(tmp_path, monkeypatch):
    (tmp_path / 'env').mkdir()
    (tmp_path / 'hub' / 'checkpoints').mkdir(parents=True)
    monkeypatch.setenv('DRL_PRETRAINED_DIR', str(tmp_path / 'env'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        build_model_from_args('resnet2d', n_class=N_CLASS, model_depth=18, pretrained=True)
    msg = str(err.value)
    assert '\n' not in msg and 'resnet18-f37072fd.pth' in msg
    assert 'https://download.pytorch.org/models/resnet18-f37072fd.pth' in msg
    assert str(tmp_path / 'env') in msg and str(tmp_path / 'hub' / 'checkpoints') in msg
    # torch hub cache, then the env dir (wins), then an explicit pretrained_path (wins again)
    hub_ref, _ = _fake_imagenet_file(str(tmp_path / 'hub' / 'checkpoints'))
    m = build_model_from_args('resnet2d', n_class=N_CLASS, model_depth=18, pretrained=True)
    assert torch.equal(m.conv1.weight, hub_ref['conv1.weight'])
    torch.manual_seed(2)
    other = torchvision.models.resnet18().state_dict()
    torch.save(other, tmp_path / 'env' / 'resnet18-f37072fd.pth')
    m = build_model_from_args('resnet2d', n_class=N_CLASS, model_depth=18, pretrained=True)
    assert torch.equal(m.conv1.weight, other['conv1.weight'])
    m = build_model_from_args('resnet2d', n_class=N_CLASS, model_depth=18, pretrained=True,
                              pretrained_path=str(tmp_path / 'hub' / 'checkpoints'))
    assert torch.equal(m.conv1.weight, hub_ref['conv1.weight'])


def test_build_errors_are_specific():
    with pytest.raises(KeyError, match='resnet3d'):
        build_model({'name': 'resnet3', 'args': {}})
    with pytest.raises(TypeError, match="did you mean 'model_depth'"):
        build_model({'name': 'resnet3d', 'args': {'model_dept': 18}})
    with pytest.raises(ValueError, match='model_depth'):
        build_model_from_args('resnet3d', model_depth=19)
    with pytest.raises(ValueError, match='disagrees'):
        build_model_from_args('resnet2d', arch='resnet50', model_depth=18)
    with pytest.raises(ValueError, match='ret_feat'):
        build_model_from_args('resnet2d', ret_feat=['conv6'])
    with pytest.raises(ValueError, match='consensus'):
        build_model_from_args('tsm', consensus='mean')
    # overrides win over the config's args (DRL's spatial model takes the video model's n_class)
    m = build_model({'name': 'resnet2d', 'args': {'model_depth': 18, 'n_class': 3}}, n_class=9)
    assert m.head.out_features == 9 and 'resnet2d' in MODELS
