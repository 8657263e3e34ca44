"""torchvision video models under the shared head (models/tv_video.py): every model builds,
trains on a tiny clip, returns ``pool``, loads torchvision-format weights found offline and then
gives torchvision's own logits."""
import os

import pytest
import torch
import torchvision

from models import build_model_from_args, list_models
from models.pretrained import weights_url
from models.tv_video import ARCHS, _build_torchvision

# smallest clips each model takes here (T, H, W); MViT is built for its clip size
SIZES = {'s3d': (8, 32, 32), 'mvit_v1_b': (4, 32, 32), 'mvit_v2_s': (4, 32, 32)}
# torchvision's S3D itself needs 14 x 224 x 224 (its classifier pools 2 x 7 x 7 windows)
REFERENCE_SIZES = {'s3d': (14, 224, 224)}
MVIT_ARGS = {'temporal_size': 4, 'spatial_size': [32, 32]}


def _args(arch):
    return MVIT_ARGS if arch.startswith('mvit') else {}


def _clip(arch, b=2, sizes=SIZES):
    t, h, w = sizes.get(arch, SIZES.get(arch, (4, 32, 32)))
    return torch.randn(b, 1, 3, t, h, w)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A weights folder in $DRL_PRETRAINED_DIR and an empty torch hub."""
    folder = tmp_path / 'weights'
    folder.mkdir()
    monkeypatch.setenv('DRL_PRETRAINED_DIR', str(folder))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return folder


def test_all_registered():
    assert set(ARCHS) <= set(list_models())


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_weights_from_disk_give_torchvision_logits_and_train(arch, offline):
    torch.manual_seed(0)
    tv = _build_torchvision(arch, **_args(arch)).eval()
    # torchvision's own key format, under its standard file name, found through the lookup
    torch.save(tv.state_dict(), offline / os.path.basename(weights_url(arch, 'KINETICS400_V1')))
    model = build_model_from_args(arch, n_class=400, pretrained=True, ret_feat=['pool'], **_args(arch)).eval()
    x = _clip(arch, b=1, sizes=REFERENCE_SIZES)
    with torch.no_grad():
        out = model(x)
        ref = tv(x[:, 0])
    assert out['pred'].shape == (1, 400)
    assert out['pool'].shape == (1, 1, ARCHS[arch][1])
    torch.testing.assert_close(out['pred'], ref, atol=1e-5, rtol=1e-5)

    x = _clip(arch)
    model.train()
    model.reset_head(5)
    out = model(x)
    out['pred'].sum().backward()
    assert out['pred'].shape == (2, 5) and torch.isfinite(out['pred']).all()
    assert model.head.weight.grad is not None
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > len(grads) // 2


def test_video_resnet_stage_features():
    model = build_model_from_args('r2plus1d_18', n_class=3, ret_feat=['conv1', 'conv5', 'pool'])
    out = model(torch.randn(1, 2, 3, 4, 32, 32))
    assert out['pred'].shape == (1, 3) and out['pool'].shape == (1, 2, 512)
    assert out['conv1'].shape[:2] == (2, 64) and out['conv5'].shape[:2] == (2, 512)


def test_pool_only_for_transformers():
    with pytest.raises(ValueError, match='only the pool feature'):
        build_model_from_args('swin3d_t', n_class=3, ret_feat=['conv3'])


def test_mvit_clip_size_is_checked():
    model = build_model_from_args('mvit_v2_s', n_class=3, **MVIT_ARGS)
    with pytest.raises(ValueError, match=r'4x32x32'):
        model(torch.randn(1, 3, 8, 32, 32))


def test_head_replaced_when_n_class_differs(offline):
    torch.manual_seed(0)
    tv = torchvision.models.video.r3d_18().eval()
    torch.save(tv.state_dict(), offline / 'r3d_18-b3b3357e.pth')
    model = build_model_from_args('r3d_18', n_class=7, pretrained=True)
    assert model.head.weight.shape == (7, 512)
    assert torch.equal(model.stem[0].weight, tv.stem[0].weight)


def test_missing_weights_is_one_line(offline):
    with pytest.raises(FileNotFoundError) as e:
        build_model_from_args('swin3d_b', pretrained=True, weights='KINETICS400_IMAGENET22K_V1')
    msg = str(e.value)
    assert '\n' not in msg
    assert 'swin3d_b_22k-7c6ae6fa.pth' in msg and str(offline) in msg and 'https://' in msg


def test_unknown_weights_tag():
    with pytest.raises(ValueError, match='KINETICS400_V1'):
        build_model_from_args('r3d_18', pretrained=True, weights='IMAGENET1K_V1')
