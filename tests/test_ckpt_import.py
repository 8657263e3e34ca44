"""Checkpoint import (models/convert.py, engine.checkpoint.load_pretrained, tools/convert_checkpoint.py):
state dicts are written here in each foreign format's key layout and loaded as ``--pretrain`` does;
the loaded model must give the source model's logits."""
import os
import sys

import pytest
import torch
import torchvision

from engine.checkpoint import CheckpointError, load_checkpoint, load_pretrained, save_checkpoint
from models import build_model_from_args
from models.convert import detect
from models.tv_video import _build_torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
import convert_checkpoint  # noqa: E402

CLIP = (1, 1, 3, 4, 32, 32)


def _build(name, **kw):
    torch.manual_seed(0)
    return build_model_from_args(name, **kw).eval()


def _head_to(state, new):
    return {(new + k[len('head.'):] if k.startswith('head.') else k): v for k, v in state.items()}


def _shift_wrapped(state):
    """TSM's layout: the shifted conv of each residual branch is wrapped as ``conv1.net``."""
    return {(k.replace('.conv1.', '.conv1.net.') if k.startswith('layer') else k): v for k, v in state.items()}


def _prefix(state, p, skip_head=True):
    return {(k if skip_head and k.startswith('head.') else p + k): v for k, v in state.items()}


def _module(state):
    return {'module.' + k: v for k, v in state.items()}


# name -> (model name, args, function: source state dict -> what is written to the file, format)
FORMATS = {
    'project': ('resnet3d', dict(model_depth=10, widen_factor=0.25, n_class=5),
                lambda s: {'state_dict': s, 'epoch': 3}, 'project'),
    'published-resnet3d': ('resnet3d', dict(model_depth=18, widen_factor=0.25, n_class=5),
                           lambda s: {'state_dict': _module(s), 'epoch': 3, 'best_acc1': 1.0}, 'project'),
    'published-resnet2d': ('resnet2d', dict(model_depth=18, widen_factor=0.25, n_class=5),
                           lambda s: {'state_dict': _prefix(s, 'net.'), 'epoch': 3}, 'published'),
    'published-resnet2d-module': ('resnet2d', dict(model_depth=18, widen_factor=0.25, n_class=5),
                                  lambda s: {'state_dict': _module(_prefix(s, 'net.'))}, 'published'),
    'published-tsm': ('tsm', dict(arch='resnet18', n_class=5, num_segments=4),
                      lambda s: {'state_dict': _prefix(_shift_wrapped(s), 'net.')}, 'published'),
    'published-tsm-module': ('tsm', dict(arch='resnet18', n_class=5, num_segments=4),
                             lambda s: {'state_dict': _module(_prefix(_shift_wrapped(s), 'net.'))}, 'published'),
    'tsm-official': ('tsm', dict(arch='resnet18', n_class=5, num_segments=4),
                     lambda s: {'state_dict': _module(_head_to(_prefix(_shift_wrapped(s), 'base_model.'), 'new_fc.')),
                                'epoch': 50, 'arch': 'resnet18', 'best_prec1': 70.0}, 'tsm-official'),
    'tsm-official-no-dropout': ('tsm', dict(arch='resnet18', n_class=5, num_segments=4),
                                lambda s: {'state_dict': _prefix(_shift_wrapped(_head_to(s, 'fc.')), 'base_model.',
                                                                 skip_head=False)}, 'tsm-official'),
    '3d-resnets': ('resnet3d', dict(model_depth=18, widen_factor=0.25, n_class=7),
                   lambda s: {'state_dict': _module(_head_to(s, 'fc.')), 'arch': 'resnet-18', 'epoch': 200,
                              'optimizer': {'state': {}, 'param_groups': []}}, '3d-resnets'),
}


@pytest.mark.parametrize('name', sorted(FORMATS))
def test_format_loads_with_the_source_logits(name, tmp_path):
    model_name, kw, write, fmt = FORMATS[name]
    src = _build(model_name, **kw)
    path = str(tmp_path / 'ck.pth')
    torch.save(write(src.state_dict()), path)
    assert detect(torch.load(path, weights_only=True))[0] == fmt
    torch.manual_seed(1)
    dst = build_model_from_args(model_name, **kw).eval()
    load_pretrained(dst, path, copy_head=True)
    x = torch.randn(*CLIP)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), atol=1e-5, rtol=1e-5)
    # fine-tuning (--pretrain without copy_head): trunk loaded, fresh head of another size
    other = build_model_from_args(model_name, **{**kw, 'n_class': 3})
    load_pretrained(other, path)
    assert torch.equal(other.conv1.weight, src.conv1.weight)


def test_torchvision_video_state_dict(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.video.r2plus1d_18(num_classes=6).eval()
    path = str(tmp_path / 'r2plus1d.pth')
    torch.save(tv.state_dict(), path)
    model = build_model_from_args('r2plus1d_18', n_class=6).eval()
    load_pretrained(model, path, copy_head=True)
    x = torch.randn(*CLIP)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv(x[:, 0]), atol=1e-5, rtol=1e-5)


def test_torchvision_imagenet_resnet_into_resnet2d(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=10).eval()
    path = str(tmp_path / 'resnet18.pth')
    torch.save(tv.state_dict(), path)
    model = build_model_from_args('resnet2d', model_depth=18, n_class=10).eval()
    load_pretrained(model, path, copy_head=True)
    x = torch.randn(*CLIP)
    frames = x[0, 0].transpose(0, 1)  # T × C × H × W
    with torch.no_grad():  # a frame-wise model: the mean of torchvision's per-frame logits
        torch.testing.assert_close(model(x)[0], tv(frames).mean(0), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('arch', ['s3d', 'mvit_v2_s', 'swin3d_t'])
def test_torchvision_families_are_detected(arch):
    kw = {'temporal_size': 4, 'spatial_size': [32, 32]} if arch.startswith('mvit') else {}
    tv = _build_torchvision(arch, **kw)
    fmt, state = detect(tv.state_dict())
    model = build_model_from_args(arch, n_class=400, **kw)
    assert fmt == 'torchvision'
    assert set(state) == set(model.state_dict())
    assert all(state[k].shape == v.shape for k, v in model.state_dict().items())


def test_unknown_format_is_one_line(tmp_path):
    path = str(tmp_path / 'bert.pth')
    torch.save({'encoder.layer.0.attention.weight': torch.zeros(2)}, path)
    with pytest.raises(CheckpointError) as e:
        load_pretrained(_build('resnet3d', model_depth=10, widen_factor=0.25, n_class=5), path)
    msg = str(e.value)
    assert '\n' not in msg and path in msg
    for fmt in ('project', 'published', 'tsm-official', '3d-resnets', 'torchvision'):
        assert fmt in msg


def test_shape_mismatch_names_the_key_and_both_shapes(tmp_path):
    path = str(tmp_path / 'ck.pth.tar')
    save_checkpoint({'state_dict': _build('resnet3d', model_depth=10, widen_factor=0.25, n_class=5).state_dict()},
                    path)
    with pytest.raises(CheckpointError) as e:
        load_pretrained(_build('resnet3d', model_depth=10, widen_factor=0.5, n_class=5), path)
    msg = str(e.value)
    assert '\n' not in msg
    assert 'conv1.weight' in msg and '(16, 3, 7, 7, 7)' in msg and '(32, 3, 7, 7, 7)' in msg


def test_convert_tool(tmp_path, capsys):
    src = _build('resnet3d', model_depth=18, widen_factor=0.25, n_class=7)
    hara = str(tmp_path / 'r3d18_K_200ep.pth')
    torch.save(FORMATS['3d-resnets'][2](src.state_dict()), hara)
    out = str(tmp_path / 'converted.pth.tar')
    assert convert_checkpoint.main([hara, out]) == 0
    printed = capsys.readouterr().out
    assert 'format: 3d-resnets' in printed and 'dropped keys: none' in printed and 'model.name: resnet3d' in printed
    state = load_checkpoint(out)['state_dict']
    assert set(state) == set(src.state_dict())

    # checked against a config's model: keys it lacks are dropped and listed
    tsm = _build('tsm', arch='resnet18', n_class=400, num_segments=8)
    official = FORMATS['tsm-official'][2](tsm.state_dict())
    official['state_dict']['module.base_model.layer4.0.nl.weight'] = torch.zeros(1)  # e.g. a non-local block
    path = str(tmp_path / 'TSM_kinetics.pth')
    torch.save(official, path)
    cfg = os.path.join(ROOT, 'configs/k400/tsmres18.yaml')
    assert convert_checkpoint.main([path, out, '--config', cfg, 'model.args.pretrained=false']) == 0
    printed = capsys.readouterr().out
    assert 'format: tsm-official' in printed and 'dropped keys: layer4.0.nl.weight' in printed
    model = _build('tsm', arch='resnet18', n_class=400)
    load_pretrained(model, out, copy_head=True)
    assert torch.equal(model.layer1[0].conv1.weight, tsm.layer1[0].conv1.weight)

    torch.save({'something': torch.zeros(1)}, path)
    assert convert_checkpoint.main([path, out]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'unknown checkpoint format' in err and path in err


@pytest.mark.parametrize('name', sorted(FORMATS))
def test_format_as_safetensors(name, tmp_path):
    """Every format's weights, written as a bare ``.safetensors`` file, load as ``--pretrain`` does."""
    from engine.checkpoint import save_safetensors
    model_name, kw, write, fmt = FORMATS[name]
    src = _build(model_name, **kw)
    path = str(tmp_path / 'ck.safetensors')
    save_safetensors(write(src.state_dict())['state_dict'], path)
    assert detect(load_checkpoint(path))[0] == fmt
    torch.manual_seed(1)
    dst = build_model_from_args(model_name, **kw).eval()
    load_pretrained(dst, path, copy_head=True)
    x = torch.randn(*CLIP)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('arch', ['s3d'])  # r3d_18: tests/test_hf_models.py
def test_torchvision_and_project_safetensors_of_the_torchvision_zoo(arch, tmp_path):
    from engine.checkpoint import save_safetensors
    torch.manual_seed(0)
    tv = _build_torchvision(arch).eval()
    path = str(tmp_path / f'{arch}.safetensors')
    save_safetensors(tv.state_dict(), path)  # torchvision's own keys
    model = build_model_from_args(arch, n_class=400).eval()
    load_pretrained(model, path, copy_head=True)
    out = str(tmp_path / 'project.safetensors')
    assert convert_checkpoint.main([path, out]) == 0  # the project's keys (head.*), weights only
    again = build_model_from_args(arch, n_class=400).eval()
    load_pretrained(again, out, copy_head=True)
    x = torch.randn(1, 1, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
