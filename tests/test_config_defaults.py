"""Defaults live in the schema (``core/config_schema.py``) and are filled in at load: the run
folder's ``config.yaml`` is the complete config that ran; old checkpoints without the defaults
still resume; ``optimizer.clip_grad`` clips in the real engine."""
import inspect
import logging

import pytest
import torch
import yaml

from core.config import fill_defaults, load_config, load_sp_config
from core.config_schema import CFG_SCHEMA, IMAGENET_MEAN, IMAGENET_STD, SP_SCHEMA
from datasets.base import VideoDataset
from datasets.transforms import VideoTransform, build_transform
from drl.steps import DRLAugStep
from engine.args import base_parser
from engine.dist import DistInfo
from engine.engine import Engine
from engine.resume_check import differences, run_identity, saved_identity
from engine.runlock import release_all
from engine.runner import RunContext, setup_run
from supervised.step import ClassifierStep

CONFIG = 'configs/scenemotion/res3d18.yaml'
SP_CONFIG = 'configs/drl/kd0.5-freeze.yaml'


# ---- fill rules -----------------------------------------------------------------------------

def test_defaults_fill_present_parents_only():
    cfg = fill_defaults({'dataset': {'name': 'x', 'args': {'train': {'n_frames': 8}, 'test': {'n_frames': 4,
                                                                                              'n_clips': 3}}}})
    d = cfg['dataset']
    assert d['max_bad_fraction'] == 0.01 and d['decode_device'] == 'cpu' and d['num_workers'] is None
    assert d['transform']['normalize'] == {'mean': IMAGENET_MEAN, 'std': IMAGENET_STD}   # created blocks
    assert d['transform']['hflip'] is False and d['transform']['device_augment'] is False
    # MapOf entries: per-entry defaults; given values kept
    assert d['args']['train'] == {'n_frames': 8, 'n_clips': 1, 'fps': -1, 'sparse': False}
    assert d['args']['test']['n_clips'] == 3
    assert cfg['seed'] == 0 and cfg['eval_period'] == 1
    assert cfg['criterion'] == {'name': 'CrossEntropyLoss', 'args': {}}
    # switches and presence-significant blocks are not created
    for key in ('augment', 'optimizer', 'model', 'model_fs'):
        assert key not in cfg, key
    assert 'scenemotion' not in d and 'subset' not in d   # a family's own keys: no default here


def test_defaults_inside_present_optional_blocks_and_nulls_kept():
    cfg = fill_defaults({'optimizer': {'name': 'SGD', 'epochs': 2}, 'augment': {'name': 'stillmix'},
                         'dataset': {'transform': {'normalize': None, 'color_jitter': [0.1, 0.1, 0.1, 0.1]}}})
    assert cfg['optimizer'] == {'name': 'SGD', 'epochs': 2, 'args': {}, 'schedule': None, 'clip_grad': None}
    assert cfg['augment'] == {'name': 'stillmix', 'mix': [0.3, 0.7], 'prob': 1.0, 'consistency': 0.0,
                              'fame': {'fg_fraction': 0.5, 'refine': True},
                              'albar': {'alpha': 1.0, 'beta': 4.25, 'gamma': 10.0, 'static_frame': None,
                                        'static_bn': 'batch'},
                              'mixup': {'alpha': 0.8}, 'cutmix': {'alpha': 1.0}}
    assert cfg['dataset']['transform']['normalize'] is None   # an explicit null stays
    assert cfg['dataset']['transform']['color_jitter'] == [0.1, 0.1, 0.1, 0.1]
    sp = fill_defaults({'model': None, 'optimizer': {'name': 'SGD', 'epochs': 1, 'model': {}}}, SP_SCHEMA)
    assert sp['model'] is None and 'adversary' not in sp and 'criterion_feat' not in sp
    assert 'model_sp' not in sp['optimizer'] and sp['optimizer']['model'] == {'args': {}}
    assert sp['criterion'] == {'name': 'KDLoss', 'args': {}, 'lambda': 0.5, 'scale': False}
    assert sp['visualize'] == {'n_clips': 4, 'every': 1}
    assert sp['seed'] is None and sp['eval_period'] is None and sp['shuffle'] is False


def test_fill_is_idempotent_and_leaves_its_input_alone():
    raw = {'dataset': {'name': 'x'}}
    once = fill_defaults(raw)
    assert raw == {'dataset': {'name': 'x'}}
    assert fill_defaults(once) == once
    once['dataset']['transform']['normalize']['mean'][0] = 9   # no list shared with the schema
    assert fill_defaults(raw)['dataset']['transform']['normalize']['mean'] == IMAGENET_MEAN


def test_library_defaults_equal_the_schema():
    """``datasets`` sits below ``utils`` and keeps keyword defaults for direct callers: the same values."""
    sig = inspect.signature(VideoTransform.__init__).parameters
    tf = fill_defaults({'dataset': {}})['dataset']['transform']
    assert list(sig['mean'].default) == tf['normalize']['mean'] and list(sig['std'].default) == tf['normalize']['std']
    assert sig['hflip'].default == tf['hflip'] and sig['device_augment'].default == tf['device_augment']
    assert build_transform({}, train=True).__dict__ == build_transform(tf, train=True).__dict__
    clip = fill_defaults({'dataset': {'args': {'s': {'n_frames': 4}}}})['dataset']['args']['s']
    ds, full = VideoDataset([], [], {'n_frames': 4}, None, False), VideoDataset([], [], clip, None, False)
    assert (ds.n_clips, ds.fps, ds.sparse) == (full.n_clips, full.fps, full.sparse) == (1, -1, False)
    step = DRLAugStep(torch.nn.Identity(), torch.nn.Identity(), None)   # direct callers: no visualize block
    assert step.visualize == fill_defaults({}, SP_SCHEMA)['visualize']


# ---- the run folder's config.yaml -------------------------------------------------------------

def _setup(tmp_path, argv, cfg, cfg_sp=None):
    args = base_parser('t', two_configs=cfg_sp is not None).parse_args(argv + ['--device', 'cpu'])
    try:
        ctx = setup_run(args, cfg, str(tmp_path / 'run'), cfg_sp=cfg_sp)
        ctx.writer.close()
    finally:
        release_all()
        root = logging.getLogger()
        for h in [h for h in root.handlers if getattr(h, '_drl', False)]:
            root.removeHandler(h)
            h.close()
    return ctx


def test_saved_config_is_complete_and_loads_to_the_same_dict(tmp_path):
    for source in (CONFIG, 'configs/scenemotion/base.yaml'):   # the YAML leaves both to their defaults
        text = open(source).read()
        assert 'max_bad_fraction' not in text and 'eval_period' not in text
    overrides = ['optimizer.epochs=1']
    cfg, sp = load_config(CONFIG, overrides), load_sp_config(SP_CONFIG, overrides)
    ctx = _setup(tmp_path, [CONFIG, SP_CONFIG, *overrides], cfg, sp)
    saved = yaml.safe_load((tmp_path / 'run' / 'config.yaml').read_text())
    assert saved['dataset']['max_bad_fraction'] == 0.01 and saved['eval_period'] == 1
    assert saved['optimizer']['clip_grad'] is None and saved['criterion']['name'] == 'CrossEntropyLoss'
    assert saved == cfg == ctx.config
    assert load_config(str(tmp_path / 'run' / 'config.yaml')) == cfg   # idempotent
    saved_sp = tmp_path / 'run' / 'config_sp.yaml'
    assert yaml.safe_load(saved_sp.read_text())['criterion']['lambda'] == 0.5
    assert load_sp_config(str(saved_sp)) == sp
    assert ctx.max_bad_fraction == 0.01


# ---- resuming a checkpoint written before the defaults ----------------------------------------

def test_old_checkpoint_without_defaults_compares_equal():
    old_cfg = {'dataset': {'name': 'x', 'batch_size': 2}, 'optimizer': {'name': 'SGD', 'epochs': 2}}
    old_sp = {'optimizer': {'name': 'SGD', 'epochs': 1}, 'criterion': {'name': 'KDLoss'}}
    ckpt = {'config': old_cfg, 'config_sp': old_sp, 'script': 'main-drl-dir.py', 'seed': 0, 'debug': False}
    new_cfg, new_sp = fill_defaults(old_cfg, CFG_SCHEMA), fill_defaults(old_sp, SP_SCHEMA)
    new = run_identity(new_cfg, new_sp, 'main-drl-dir.py', 0, False)
    assert differences(saved_identity(ckpt), new) == []
    # a value other than the default, or a block switched on, still differs
    changed = dict(new_cfg, augment={'name': 'stillmix'}, dataset=dict(new_cfg['dataset'], max_bad_fraction=0.5))
    keys = [k for k, _, _ in differences(saved_identity(ckpt), run_identity(changed, new_sp, 'main-drl-dir.py', 0,
                                                                            False))]
    assert 'dataset.max_bad_fraction' in keys and 'augment.name' in keys and 'augment.prob' not in keys


# ---- optimizer.clip_grad ------------------------------------------------------------------------

def _model():
    from models import build_model
    torch.manual_seed(0)
    return build_model({'name': 'resnet3d', 'args': {'model_depth': 10, 'n_class': 3, 'widen_factor': 0.25}})


def _batch():
    g = torch.Generator().manual_seed(1)
    return {'video': 10 * torch.randn(2, 1, 3, 4, 16, 16, generator=g), 'label': torch.tensor([0, 2]),
            'index': torch.arange(2), 'vid': ['a', 'b'], 'skipped': []}


def _engine_step(tmp_path, clip, amp='off', n=1):
    model = _model()
    step = ClassifierStep(model, torch.nn.CrossEntropyLoss(), classes=['a', 'b', 'c'])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)   # no momentum: the step is -lr * grad
    ctx = RunContext(out_dir=str(tmp_path), device=torch.device('cpu'), dist=DistInfo(), print_freq=0, amp=amp)
    engine = Engine(step, opt, None, ctx, {'epochs': 1, 'clip_grad': clip})
    batch = _batch()
    before = [p.detach().clone() for p in model.parameters()]
    stats = engine.train_one_epoch([batch] * n, 0)
    moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    return stats, moved.item()


def test_clip_grad_bounds_the_step_and_logs_the_norm(tmp_path):
    free, moved_free = _engine_step(tmp_path, None)
    assert 'grad_norm' not in free
    clip = 1e-3
    stats, moved = _engine_step(tmp_path, clip)
    # pre-clip norm: the unclipped step's length over lr
    assert stats['grad_norm'] == pytest.approx(moved_free / 0.1, rel=1e-4)
    assert stats['grad_norm'] > clip
    assert moved <= 0.1 * clip * (1 + 1e-4)
    assert moved == pytest.approx(0.1 * clip, rel=1e-3)


def test_clip_grad_with_fp16_unscales_first(tmp_path):
    """fp16: the norm is measured on unscaled gradients; steps the scaler skips (overflow while it
    finds its scale) move nothing and report no norm."""
    stats, moved = _engine_step(tmp_path, 1e-7, amp='fp16', n=24)
    model, batch = _model(), _batch()   # the same step by hand: fp16 autocast, no loss scaling
    with torch.autocast('cpu', dtype=torch.float16):
        loss = torch.nn.functional.cross_entropy(model(batch['video']), batch['label'])
    loss.backward()
    norm = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in model.parameters())).item()
    assert stats['grad_norm'] == pytest.approx(norm, rel=1e-3)   # weights barely move: same gradients
    assert 0 < moved <= 24 * 0.1 * 1e-7 * (1 + 1e-3)


def test_clip_grad_config_rule(tmp_path):
    p = tmp_path / 'c.yaml'
    p.write_text('optimizer: {name: SGD, epochs: 1, clip_grad: 0}\n')
    with pytest.raises(Exception, match=r"'optimizer\.clip_grad'.*must be > 0, got 0"):
        load_config(str(p))
    assert load_config(str(p), ['optimizer.clip_grad=5'])['optimizer']['clip_grad'] == 5
