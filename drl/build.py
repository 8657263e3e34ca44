"""Set-up shared by main-drl.py and main-drl-dir.py: where the baseline video model comes from,
where the run goes, the spatial model, and the two-group optimiser (docs/drl.md)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import torch.nn as nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from core.config import check_drl_config_order, fill_defaults, load_config, load_sp_config
from core.config_schema import IMAGENET_MEAN, IMAGENET_STD, SP_SCHEMA
from core.errors import UserError
from engine.build import build_run, prepare_model, to_memory_format
from engine.checkpoint import load_pretrained, read_weights, unwrap
from engine.optim import OPTIMIZERS, build_scheduler
from engine.runner import RunContext, apply_batch_flags, config_run_name
from engine.step import Step
from models import build_model

from .steps import drl_param_groups

log = logging.getLogger('drl')


def baseline_checkpoint(args: argparse.Namespace) -> Optional[str]:
    """The video model's starting weights: ``--pretrain``, nothing with ``--scratch``, else
    ``checkpoints/<cfg path without first component and .yaml>/<--ckp>``."""
    if args.scratch:
        return None
    if args.pretrain:
        return args.pretrain
    return os.path.join('checkpoints', config_run_name(args.config), args.ckp)


def drl_output_dir(args: argparse.Namespace) -> str:
    """``<folder of the baseline checkpoint>/<sp cfg path without first component>``, e.g.
    ``checkpoints/k400/res3d18/drl/fgsm-e3-i5`` (``_debug`` appended with ``--debug``);
    ``--output-dir`` wins."""
    if args.output_dir:
        return args.output_dir
    ckpt = baseline_checkpoint(args)
    base = os.path.dirname(ckpt) if ckpt else os.path.join('checkpoints', config_run_name(args.config))
    out = os.path.join(base, config_run_name(args.sp_config))
    return out + '_debug' if args.debug else out


def _head_fits(model: nn.Module, ckpt_path: str) -> bool:
    state = read_weights(ckpt_path, model)[1]  # any format models/convert.py reads
    head = unwrap(model).head
    w = state.get('head.weight')
    return w is not None and hasattr(head, 'weight') and tuple(w.shape) == tuple(head.weight.shape)


def load_video_model(model: nn.Module, args: argparse.Namespace, need_head: bool) -> Optional[str]:
    """Load the baseline into the video model ``f``, keeping its classifier when it fits.

    Args:
        need_head: the run is meaningless with a fresh head (scoring a model, or DRL-dir's
            pseudo-targets); then a head that does not fit is an error.
    Returns:
        the checkpoint path used, or ``None``.
    """
    path = baseline_checkpoint(args)
    if path is None:
        log.info('--scratch: the video model starts from random weights')
        return None
    if not os.path.isfile(path):
        raise UserError(f'baseline checkpoint not found: {path} (train it with main.py, or give '
                        f'--pretrain PATH / --ckp NAME / --scratch)')
    copy_head = _head_fits(model, path)
    if not copy_head and need_head:
        raise UserError(f'{path}: its classifier does not fit this config\'s n_class; '
                        'a video model without its trained head cannot be scored')
    if not copy_head:
        log.warning('%s: classifier does not fit n_class, the video model gets a fresh head', path)
    load_pretrained(model, path, copy_head=copy_head)
    return path


def build_spatial_model(cfg: dict[str, Any], cfg_sp: dict[str, Any], ctx: RunContext, args: argparse.Namespace,
                        ret_feat: Sequence[str] = ()) -> Optional[nn.Module]:
    """The spatial model of the DRL config (``n_class`` from the main config), on the device,
    with its 2D convolutions channels-last (faster forward + input gradient, same numbers).

    ``sp_pretrain`` (a scoring run's checkpoint, key ``state_dict_sp``) initialises it; with
    ``freeze_sp: true`` it is then fixed (eval mode, no gradients, not in the optimiser).
    Returns:
        the module, or ``None`` when the DRL config has ``model: null``.
    """
    if not cfg_sp.get('model'):
        return None
    extra = {'ret_feat': list(ret_feat)} if ret_feat else {}
    g = build_model(cfg_sp['model'], n_class=cfg['model']['args']['n_class'], **extra)
    path = cfg_sp['sp_pretrain']
    if path:
        load_pretrained(g, path, copy_head=True, key='state_dict_sp')
    elif cfg_sp['freeze_sp']:
        raise UserError('freeze_sp: true needs sp_pretrain: PATH (a scoring run\'s checkpoint)')
    frozen = cfg_sp['freeze_sp']
    if frozen:
        g.requires_grad_(False)
    g = prepare_model(g, cfg_sp['model'], ctx, args, trainable=not frozen)
    to_memory_format(unwrap(g))
    return g


def build_drl_optimizer(cfg_sp: Mapping[str, Any], f: Optional[nn.Module] = None,
                        g: Optional[nn.Module] = None) -> tuple[Optimizer, Optional[LRScheduler]]:
    """The DRL run's optimiser (one parameter group per trained model, :func:`drl.steps.drl_param_groups`)
    and scheduler (``optimizer.schedule``, acting on both groups), for code that drives a DRL step
    without the run builder (benchmarks, tests)."""
    opt = fill_defaults(cfg_sp, SP_SCHEMA)['optimizer']  # also called with hand-built blocks
    optimizer = OPTIMIZERS.get(opt['name'], 'optimizer.name')(drl_param_groups(opt, f=f, g=g))
    return optimizer, build_scheduler(opt, optimizer)


def normalisation(cfg: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    """(mean, std) of the main config's transform, for pictures of clips."""
    # null: what datasets.transforms then normalises with (ImageNet)
    norm = cfg['dataset']['transform']['normalize'] or {'mean': IMAGENET_MEAN, 'std': IMAGENET_STD}
    return norm['mean'], norm['std']


BuildStep = Callable[[dict[str, Any], dict[str, Any], RunContext, argparse.Namespace, Sequence[str]], Step]


def run_drl(args: argparse.Namespace, build_step: BuildStep) -> None:
    """The run of both DRL scripts: configs -> run builder (data, step, optimiser, engine) -> fit
    -> final test.

    Args:
        build_step: ``(cfg, cfg_sp, ctx, args, classes) -> Step``; the optimiser gets the step's
            ``param_groups`` (``state_dict``: ``f``, ``state_dict_sp``: ``g``), the final test
            loads ``model_best`` when ``test_with_best()`` says so.
    """
    check_drl_config_order(args.config, args.sp_config, os.path.basename(sys.argv[0]) or 'main-drl.py')
    cfg = apply_batch_flags(load_config(args.config, args.overrides), args)
    cfg_sp = load_sp_config(args.sp_config, args.overrides)
    if args.seed is None and cfg_sp['seed'] is not None:
        args.seed = cfg_sp['seed']

    def make_step(ctx, data):
        return build_step(cfg, cfg_sp, ctx, args, next(iter(data.values())).classes)

    splits = ['test_final'] if args.evaluate else ['train', 'test', 'test_final']
    run = build_run(args, cfg, drl_output_dir(args), make_step, splits=splits, train_cfg=cfg_sp['optimizer'],
                    eval_period=cfg_sp['eval_period'] or cfg['eval_period'], cfg_sp=cfg_sp)
    engine = run.engine
    if args.evaluate:
        if not engine.resume(enabled=True):
            raise UserError(f'-e: no checkpoint of this DRL run in {run.ctx.out_dir}')
    else:
        engine.resume(enabled=not args.no_resume)
        engine.fit(run.loaders['train'], run.loaders.get('test'))
    if 'test_final' in run.loaders:
        engine.test(run.loaders['test_final'], use_best=run.step.test_with_best() and not args.evaluate)
