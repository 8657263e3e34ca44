"""Hugging Face video transformers (models/hf_video.py, ``model.name: hf_video``) and safetensors.

For each of the five classifiers, on tiny random configs (2 layers, hidden size 32-48, 4 frames,
32² crops; nothing is downloaded): forward + backward; ``save_pretrained`` → ``model.args.path``
with the reference logits; ``--pretrain model.safetensors`` of that folder; one ``main.py``
fine-tuning epoch on a tiny SceneMotion (fresh 8-class head) and one dynamic-scoring run
(``main-drl.py CFG configs/scoring/scenemotion.yaml``) of the result. Also: an R3D through
safetensors, the bad inputs (one line, exit status 2), and import hygiene (transformers only when
an HF model is built; HF never imports the project's ``datasets``)."""
import importlib.util
import json
import logging
import os
import subprocess
import sys

import pytest
import torch

from core.config import load_config
from engine.checkpoint import CheckpointError, load_checkpoint, load_pretrained, save_checkpoint, save_safetensors
from engine.runner import run_entry
from models import build_model, build_model_from_args
from models.convert import detect
from models.hf_folder import ALIASES, FAMILIES, ClipSizeError, HFModelError, check_data_config, recommended

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
import convert_checkpoint  # noqa: E402

transformers = pytest.importorskip('transformers')
import main as main_script  # noqa: E402

CFG = 'configs/scenemotion/hf-videomae.yaml'
LAYERS = dict(num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, hidden_size=32)
TINY = {
    'videomae': dict(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, **LAYERS),
    'timesformer': dict(image_size=32, patch_size=16, num_frames=4, **LAYERS),
    'vivit': dict(image_size=32, num_frames=4, tubelet_size=[2, 16, 16], **LAYERS),
    'vjepa2': dict(crop_size=32, patch_size=16, frames_per_clip=4, tubelet_size=2, hidden_size=48, num_hidden_layers=2,
                   num_attention_heads=2, mlp_ratio=2.0, num_pooler_layers=1, pred_hidden_size=24,
                   pred_num_attention_heads=2, pred_num_hidden_layers=1),
    'videoprism': dict(image_size=32, num_frames=4, tubelet_size=[1, 16, 16], hidden_size=32, num_attention_heads=2,
                       intermediate_size=64, num_spatial_layers=1, num_temporal_layers=1, num_auxiliary_layers=1),
}
TUBELET = {'videomae': 2, 'timesformer': 1, 'vivit': 2, 'vjepa2': 2, 'videoprism': 1}
SM = ['dataset.scenemotion.size=32', 'dataset.scenemotion.n_frames=4', 'dataset.scenemotion.n_train=8',
      'dataset.scenemotion.n_val=8', 'dataset.scenemotion.n_transfer_train=8', 'dataset.scenemotion.n_transfer_test=8',
      'dataset.scenemotion.n_novel=6', 'dataset.args.train.n_frames=4', 'dataset.args.test.n_frames=4',
      'dataset.args.test_final.n_frames=4', 'dataset.transform.resize=32', 'dataset.transform.crop=32',
      'dataset.num_workers=0', 'dataset.batch_size=4']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


def _hf_classes(family):
    kind = ALIASES.get(family, family)
    return getattr(transformers, FAMILIES[kind][0]), getattr(transformers, FAMILIES[kind][1])


def _clip(b=2, k=1, seed=0):
    return torch.randn(b, k, 3, 4, 32, 32, generator=torch.Generator().manual_seed(seed))


def _flow(d):
    """A YAML flow mapping for a key=value override."""
    return '{' + ', '.join(f'{k}: {json.dumps(v)}' for k, v in d.items()) + '}'


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    """family -> a save_pretrained folder of a tiny 5-class classifier, and its reference model."""
    root = tmp_path_factory.mktemp('hf')
    out = {}
    for family, cfg in TINY.items():
        cls, config_cls = _hf_classes(family)
        torch.manual_seed(0)
        net = cls(config_cls(**cfg, num_labels=5)).eval()
        net.save_pretrained(root / family)
        out[family] = (str(root / family), net)
    return out


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp('sm-cache'))


@pytest.mark.parametrize('family', sorted(TINY))
def test_inline_config_forward_backward(family):
    torch.manual_seed(0)
    model = build_model({'name': 'hf_video', 'args': {'n_class': 3, 'dropout': 0.5, 'ret_feat': ['pool'],
                                                      'config': {'model_type': family, **TINY[family]}}})
    out = model(_clip(k=2))
    assert out['pred'].shape == (2, 3) and out['pool'].shape == (2, 2, model.num_features)
    torch.nn.functional.cross_entropy(out['pred'], torch.tensor([0, 2])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.tubelet_size == TUBELET[family]
    assert isinstance(model.head, torch.nn.Linear) and model.head.out_features == 3
    assert not any(n.startswith('hf.classifier.') for n, _ in model.named_parameters())
    feats = model.forward_features(_clip()[:, 0])
    assert feats.shape == (2, model.num_features)


@pytest.mark.parametrize('family', sorted(TINY))
def test_folder_gives_the_reference_logits(family, folders, tmp_path):
    path, net = folders[family]
    model = build_model({'name': 'hf_video', 'args': {'path': path}}).eval()
    x = _clip()
    with torch.no_grad():
        ref = net(x[:, 0].transpose(1, 2)).logits.reshape(2, -1)  # transformers' own layout B×T×C×H×W
        torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)
        # the same weights as --pretrain: the folder's model.safetensors into an inline-config model
        inline = build_model({'name': 'hf_video', 'args': {'n_class': 5, 'config': {'model_type': family,
                                                                                    **TINY[family]}}}).eval()
        load_pretrained(inline, os.path.join(path, 'model.safetensors'), copy_head=True)
        torch.testing.assert_close(inline(x), ref, atol=1e-5, rtol=1e-5)
        # and the folder itself as --pretrain, the classifier reset
        fresh = build_model({'name': 'hf_video', 'args': {'n_class': 8, 'config': {'model_type': family,
                                                                                   **TINY[family]}}}).eval()
        load_pretrained(fresh, path)
        torch.testing.assert_close(fresh.forward_features(x[:, 0]), model.forward_features(x[:, 0]))
    assert fresh.head.out_features == 8
    # a fresh head when n_class differs; the folder's classifier when it fits
    other = build_model({'name': 'hf_video', 'args': {'path': path, 'n_class': 7}})
    assert other.head.out_features == 7 and model.head.out_features == 5
    assert torch.equal(model.head.weight, net.classifier.weight)


def _script(name):
    """An entry script as a module (a hyphenated file name cannot be imported by name)."""
    spec = importlib.util.spec_from_file_location(name.replace('-', '_')[:-3], os.path.join(ROOT, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finetune(family, path, cache, out, *extra):
    model_args = [f'model.args.path={path}', 'model.args.config=null']
    args = main_script.get_args_parser().parse_intermixed_args(
        [CFG, *SM, *model_args, f'dataset.scenemotion.cache_dir={cache}', 'optimizer.epochs=1',
         '--output-dir', str(out), '--device', 'cpu', '-j', '0', *extra])
    run_entry(main_script.main, args)
    return model_args


@pytest.mark.parametrize('family', sorted(TINY))
def test_finetune_one_epoch_then_score(family, folders, cache, tmp_path):
    path, _ = folders[family]
    run = tmp_path / 'ft'
    # V-JEPA 2 as a linear probe: only the final linear layer learns, its attentive pooler is kept as is
    probe = family == 'vjepa2'
    model_args = _finetune(family, path, cache, run, *(['model.linear_probe=true'] if probe else []))
    results = json.loads((run / 'results.json').read_text())
    assert 0.0 <= results['Acc@1'] <= 100.0
    state = load_checkpoint(str(run / 'checkpoint.pth.tar'))['state_dict']
    assert state['head.weight'].shape[0] == 8  # SceneMotion's 8 classes: a fresh head on the 5-class folder
    start = build_model({'name': 'hf_video', 'args': {'path': path}}).state_dict()
    trunk = [k for k in state if k.startswith('hf.')]
    assert trunk and set(trunk) == {k for k in start if k.startswith('hf.')}
    changed = [k for k in trunk if not torch.equal(state[k], start[k])]
    assert (not changed) if probe else changed
    if probe:
        assert any(k.startswith('hf.pooler.') for k in trunk)

    score = tmp_path / 'score'
    drl = _script('main-drl.py')  # in-process: the same code as the command line, without a new interpreter
    run_entry(drl.main, drl.get_args_parser().parse_intermixed_args(
        [CFG, 'configs/scoring/scenemotion.yaml', *SM, *model_args, 'dataset.subset=transfer',
         f'dataset.scenemotion.cache_dir={cache}', 'sp.optimizer.epochs=1', 'sp.eval_period=1',
         '--pretrain', str(run / 'checkpoint.pth.tar'), '--output-dir', str(score), '--device', 'cpu', '-j', '0']))
    doc = json.loads((score / 'results.json').read_text())
    assert 0.0 <= doc['dynamic_score'] <= 1.0


def test_r3d_safetensors_round_trip(tmp_path, capsys):
    torch.manual_seed(0)
    src = build_model_from_args('r3d_18', n_class=6).eval()
    ckpt = str(tmp_path / 'r3d.pth.tar')
    save_checkpoint({'state_dict': src.state_dict(), 'epoch': 2}, ckpt)
    out = str(tmp_path / 'r3d.safetensors')
    assert convert_checkpoint.main([ckpt, out]) == 0
    assert 'format: project' in capsys.readouterr().out
    from safetensors import safe_open
    with safe_open(out, 'pt') as f:
        assert f.metadata()['source_format'] == 'project' and set(f.keys()) == set(src.state_dict())
    dst = build_model_from_args('r3d_18', n_class=6).eval()
    load_pretrained(dst, out, copy_head=True)
    x = torch.randn(1, 1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x))
    # fine-tuning from it: trunk loaded, fresh head; back to the project format
    other = build_model_from_args('r3d_18', n_class=3)
    load_pretrained(other, out)
    assert torch.equal(other.stem[0].weight, src.stem[0].weight)
    back = str(tmp_path / 'back.pth.tar')
    assert convert_checkpoint.main([out, back]) == 0
    assert set(load_checkpoint(back)['state_dict']) == set(src.state_dict())
    # written by save_safetensors directly, under another name (the header says what it is)
    odd = str(tmp_path / 'weights.bin')
    save_safetensors(src.state_dict(), odd)
    fmt, state = detect(load_checkpoint(odd))
    assert set(state) == set(src.state_dict())
    # a damaged file is one line
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1')
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(str(bad))
    assert '\n' not in str(e.value) and str(bad) in str(e.value)


def test_convert_tool_reads_a_folder_and_prints_its_recommendations(folders, tmp_path, capsys):
    path, net = folders['videomae']
    pre = {'image_mean': [0.5, 0.5, 0.5], 'image_std': [0.5, 0.5, 0.5], 'size': {'shortest_edge': 36},
           'crop_size': {'height': 32, 'width': 32}, 'do_normalize': True}
    folder = tmp_path / 'videomae'
    folder.mkdir()
    for name in os.listdir(path):
        (folder / name).write_bytes(open(os.path.join(path, name), 'rb').read())
    (folder / 'preprocessor_config.json').write_text(json.dumps(pre))
    assert convert_checkpoint.main(['--info', str(folder)]) == 0
    printed = capsys.readouterr().out
    for text in ('VideoMAEForVideoClassification', 'clip length: 4 frames (2 per token)', 'crop size: 32x32',
                 'dataset.transform.normalize.mean=[0.5,0.5,0.5]', 'resize (short side): 36', 'classes: 5'):
        assert text in printed, text
    rec = recommended(str(folder))
    assert rec['preprocessor']['std'] == [0.5, 0.5, 0.5] and rec['frames'] == 4

    out = str(tmp_path / 'videomae.safetensors')
    assert convert_checkpoint.main([str(folder), out]) == 0
    printed = capsys.readouterr().out
    assert 'format: hf' in printed and 'model.name: hf_video' in printed
    model = build_model({'name': 'hf_video', 'args': {'n_class': 5, 'config': {'model_type': 'videomae',
                                                                               **TINY['videomae']}}}).eval()
    load_pretrained(model, out, copy_head=True)
    x = _clip()
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x[:, 0].transpose(1, 2)).logits)


def test_preprocessor_disagreement_is_one_warning(folders, tmp_path, caplog):
    path, _ = folders['vivit']
    folder = tmp_path / 'vivit'
    folder.mkdir()
    (folder / 'config.json').write_text(open(os.path.join(path, 'config.json')).read())
    (folder / 'video_preprocessor_config.json').write_text(json.dumps({'image_mean': [0.5] * 3,
                                                                        'image_std': [0.5] * 3}))
    cfg = load_config(os.path.join(ROOT, CFG), SM + [f'model.args.path={folder}', 'model.args.config=null'])
    with caplog.at_level(logging.WARNING):
        check_data_config(cfg)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert '[0.485, 0.456, 0.406]' in warnings[0] and '[0.5, 0.5, 0.5]' in warnings[0]
    assert 'video_preprocessor_config.json' in warnings[0]
    caplog.clear()
    same = [f'dataset.transform.normalize.mean={[0.5] * 3}', f'dataset.transform.normalize.std={[0.5] * 3}']
    with caplog.at_level(logging.WARNING):
        check_data_config(load_config(os.path.join(ROOT, CFG), SM + same + [f'model.args.path={folder}',
                                                                           'model.args.config=null']))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # the clip length is checked before any data: one line naming both values and the key
    with pytest.raises(ClipSizeError) as e:
        check_data_config(load_config(os.path.join(ROOT, CFG), SM + ['dataset.args.train.n_frames=8',
                                                                     f'model.args.path={folder}',
                                                                     'model.args.config=null']))
    assert '\n' not in str(e.value) and '4-frame' in str(e.value) and 'got 8-frame' in str(e.value)


# case -> (config.json of the folder or None (no file) or 'tiny' (the saved VideoMAE), extra files,
#          extra overrides, texts the one line must hold)
BAD = {
    'no-config': (None, (), (), ('no config.json',)),
    'not-a-video-classifier': ({'model_type': 'bert', 'hidden_size': 32}, (), (),
                               ("model_type 'bert' is not a supported video classifier",) + tuple(FAMILIES)),
    'remote-code': ({'model_type': 'videomae', 'auto_map': {'AutoModel': 'modeling_custom.CustomModel'}},
                    ('modeling_custom.py',), (), ('trust_remote_code', 'never runs')),
    'damaged-weights': ('tiny-config', (), (), ('cannot load it as VideoMAEForVideoClassification',
                                               'deserializing header')),
    # VideoMAE's fixed position table: 4-frame 32x32 clips, asked for 8-frame 28x28 ones
    'clip-size': ('tiny', (), ('dataset.args.train.n_frames=8', 'dataset.args.test.n_frames=8',
                               'dataset.args.test_final.n_frames=8', 'dataset.transform.crop=28'),
                  ('takes 4-frame 32x32 clips', 'got 8-frame 28x28 clips', 'dataset.args.<split>.n_frames=4',
                   'dataset.transform.crop=32')),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_input_is_one_line(case, folders, cache, tmp_path, capsys):
    config, extra, over, texts = BAD[case]
    if config == 'tiny':
        folder = folders['videomae'][0]
    elif config == 'tiny-config':  # the saved config.json beside a damaged model.safetensors
        folder = tmp_path / case
        folder.mkdir()
        (folder / 'config.json').write_text(open(os.path.join(folders['videomae'][0], 'config.json')).read())
        (folder / 'model.safetensors').write_bytes(b'\x10' + b'\x00' * 7 + b'{"a": 1')
    else:
        folder = tmp_path / case
        folder.mkdir()
        if config is not None:
            (folder / 'config.json').write_text(json.dumps(config))
        for f in extra:
            (folder / f).write_text('raise SystemExit("code from a checkpoint folder ran")\n')
    args = main_script.get_args_parser().parse_intermixed_args(
        [CFG, *SM, f'dataset.scenemotion.cache_dir={cache}', 'optimizer.epochs=1', '--output-dir',
         str(tmp_path / 'run'), '--device', 'cpu', '-j', '0', f'model.args.path={folder}', 'model.args.config=null',
         *over])
    with pytest.raises(SystemExit) as e:
        run_entry(main_script.main, args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and err.startswith('error: '), err
    for text in texts:
        assert text in err, text


def test_bad_inline_configs():
    with pytest.raises(HFModelError, match="no config key 'num_frame'; did you mean 'num_frames'"):
        build_model({'name': 'hf_video', 'args': {'config': {'model_type': 'videomae', 'num_frame': 4}}})
    with pytest.raises(HFModelError, match='exactly one of'):
        build_model({'name': 'hf_video', 'args': {}})
    with pytest.raises(HFModelError, match='not a supported video classifier'):
        build_model({'name': 'hf_video', 'args': {'config': {'model_type': 'vit'}}})


def test_vjepa2_takes_any_whole_number_of_tubelets():
    model = build_model({'name': 'hf_video', 'args': {'n_class': 2, 'config': {'model_type': 'vjepa2',
                                                                               **TINY['vjepa2']}}}).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 32, 32)).shape == (1, 2)
        with pytest.raises(ClipSizeError, match='a multiple of 2'):
            model(torch.randn(1, 3, 5, 32, 32))
        with pytest.raises(ClipSizeError, match='dataset.transform.crop=32'):
            model(torch.randn(1, 3, 4, 48, 48))


IMPORTS = '''
import sys
sys.path.insert(0, {root!r})
import models, engine.checkpoint, engine.runner, core.config, main, drl.build, fewshot.run, measure  # noqa
assert 'transformers' not in sys.modules, 'importing the project imported transformers'
assert 'safetensors' not in sys.modules, 'importing the project imported safetensors'
del sys.modules['datasets']  # main imports the project's datasets; start from none
model = models.build_model({{'name': 'hf_video', 'args': {{'path': {path!r}}}}})
import torch
model(torch.randn(1, 1, 3, 4, 32, 32)).sum().backward()
model.hf.save_pretrained({out!r})
assert 'transformers' in sys.modules
# transformers finds the project's top-level datasets/ on sys.path (find_spec), but never imports it,
# nor Hugging Face's datasets
assert 'datasets' not in sys.modules, sys.modules['datasets']
import datasets
assert datasets.__file__.startswith({root!r}), datasets.__file__
print('ok')
'''


def test_import_hygiene(folders, tmp_path):
    path, _ = folders['videomae']
    code = IMPORTS.format(root=ROOT, path=path, out=str(tmp_path / 'resaved'))
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr[-3000:]


def test_videoprism_video_text_folder_gives_its_video_encoder(tmp_path, caplog):
    """A VideoPrism video-text folder (model_type videoprism): its video encoder, a fresh pooling head."""
    text = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=1, vocab_size=64)
    torch.manual_seed(0)
    clip_model = transformers.VideoPrismClipModel(transformers.VideoPrismConfig(vision_config=TINY['videoprism'],
                                                                                text_config=text))
    clip_model.save_pretrained(tmp_path / 'videoprism-clip')
    with caplog.at_level(logging.WARNING):
        model = build_model({'name': 'hf_video', 'args': {'path': str(tmp_path / 'videoprism-clip'), 'n_class': 3}})
    assert 'start fresh' in caplog.text
    ref = clip_model.video_model.vision_model.state_dict()
    own = model.hf.vision_model.state_dict()
    assert set(ref) == set(own) and all(torch.equal(ref[k], own[k]) for k in ref)
    assert model(_clip()).shape == (2, 3)
