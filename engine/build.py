"""The run builder: every run (the four entry scripts, and the tools that train) is assembled here.

:func:`build_run` does, in this order: run set-up (distributed init, device, locked run folder,
logging, seeds, saved configs) → datasets and loaders → the method's step → optimiser and
scheduler from the parameters the step declares → the :class:`~engine.engine.Engine`. The entry
scripts differ only in the step they build (``make_step``). Also here: the loaders and the
device-ready (DDP-wrapped) models the steps are made of.
"""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from core.errors import UserError
from datasets import VideoDataset, build_dataset, is_train
from datasets.checks import check_labels
from datasets.collate import video_collate
from models.hf_folder import check_data_config

from .checkpoint import load_pretrained
from .engine import Engine
from .optim import OPTIMIZERS, build_scheduler
from .runner import setup_run
from .step import Step

if TYPE_CHECKING:
    from .runner import RunContext

log = logging.getLogger('drl')


class ShardSampler(Sampler):
    """Rank ``r`` of ``w`` takes indices ``r, r+w, ...``: no padding, so no sample counts twice."""

    def __init__(self, n: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, n, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def default_workers(cfg: Mapping[str, Any], args: Optional[argparse.Namespace]) -> int:
    """DataLoader workers: ``-j``, else ``dataset.num_workers``, else ``min(4, CPUs)``."""
    if args is not None and args.workers is not None:
        return args.workers
    n = cfg['dataset']['num_workers']
    return n if n is not None else min(4, os.cpu_count() or 1)


def build_loader(dataset: torch.utils.data.Dataset, cfg: Mapping[str, Any], ctx: RunContext, train: bool,
                 workers: int = 0, batch_size: Optional[int] = None) -> DataLoader:
    """DataLoader over ``dataset`` for this rank.

    Training drops the last incomplete batch (a batch of one breaks BatchNorm).
    ``dataset.batch_size`` in the config is the *global* batch; each of the ``W`` processes
    loads ``batch_size // W`` videos. Training always uses a :class:`DistributedSampler` (also
    with one process) so the global order depends only on the seed, not on the process count.
    """
    world, rank = ctx.dist.world_size, ctx.dist.rank
    batch = batch_size if batch_size is not None else cfg['dataset']['batch_size']
    if batch < world:
        raise UserError(f'dataset.batch_size={batch} is smaller than the {world} processes')
    if batch % world:
        raise UserError(f'dataset.batch_size={batch} is not divisible by the {world} processes')
    per_rank = batch // world
    if train:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=ctx.seed)
    else:
        sampler = ShardSampler(len(dataset), rank, world)
    # NVDEC decoding needs a CUDA context in each worker, which a worker forked from a process
    # that already uses CUDA cannot create: such workers are spawned
    spawn = workers > 0 and cfg['dataset']['decode_device'] == 'cuda'
    return DataLoader(dataset, batch_size=per_rank, sampler=sampler, num_workers=workers,
                      collate_fn=video_collate, pin_memory=ctx.device.type == 'cuda',
                      drop_last=train and len(sampler) >= per_rank, persistent_workers=False,
                      multiprocessing_context='spawn' if spawn else None)


def to_memory_format(model: nn.Module) -> nn.Module:
    """channels-last for 2D convolutions and channels-last-3d for 3D ones."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            m.to(memory_format=torch.channels_last_3d)
        elif isinstance(m, nn.Conv2d):
            m.to(memory_format=torch.channels_last)
    return model


def prepare_model(model: nn.Module, model_cfg: Mapping[str, Any], ctx: RunContext,
                  args: Optional[argparse.Namespace], pretrain: Optional[str] = None,
                  trainable: bool = True) -> nn.Module:
    """Load weights, then move to the device and wrap for speed / DDP.

    Args:
        model: a freshly built module.
        model_cfg: the config's ``model`` block (``sync_bn``, ``copy_head``).
        pretrain: checkpoint path to initialise from (head reset unless ``copy_head``).
        trainable: DDP-wrap only modules that receive gradients.
    """
    if pretrain:
        load_pretrained(model, pretrain, copy_head=model_cfg['copy_head'])
    if ctx.dist.enabled and model_cfg['sync_bn'] and trainable:
        if ctx.device.type == 'cuda':
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:  # torch's SyncBatchNorm is CUDA-only
            log.warning('model.sync_bn: SyncBatchNorm needs CUDA; on CPU each process normalises its own batch')
    model = model.to(ctx.device)
    if getattr(args, 'channels_last', False):
        to_memory_format(model)
    if getattr(args, 'compile', False):
        model = torch.compile(model)
    if ctx.dist.enabled and trainable:
        ids = [ctx.device.index] if ctx.device.type == 'cuda' else None  # CPU: gloo, no ids
        model = DDP(model, device_ids=ids)
    return model


def build_data(cfg: Mapping[str, Any], ctx: RunContext, args: Optional[argparse.Namespace],
               splits: Sequence[str]) -> tuple[dict[str, VideoDataset], dict[str, DataLoader]]:
    """Datasets and loaders of the config's ``splits`` that it has (``dataset.args``), keyed by
    split; training splits (:func:`datasets.is_train`) get training loaders."""
    data = {s: build_dataset(cfg, s, seed=ctx.seed) for s in splits if s in cfg['dataset']['args']}
    check_labels(data, ((cfg.get('model') or {}).get('args') or {}).get('n_class'))  # before any batch
    workers = default_workers(cfg, args)
    loaders = {s: build_loader(d, cfg, ctx, train=is_train(s), workers=workers) for s, d in data.items()}
    for s, d in data.items():
        log.info('%s: %d videos, %d classes', s, len(d), len(d.classes))
    return data, loaders


@dataclass
class Run:
    """An assembled run: its context, data, step and engine (``engine.resume/fit/test`` next)."""
    ctx: RunContext
    data: dict[str, VideoDataset]
    loaders: dict[str, DataLoader]
    step: Step
    engine: Engine


MakeStep = Callable[['RunContext', dict[str, VideoDataset]], Step]


def build_optimizer(train_cfg: Mapping[str, Any], step: Step) -> torch.optim.Optimizer:
    """The ``optimizer`` block's torch optimiser over the step's :meth:`~engine.step.Step.param_groups`;
    the block's ``args`` are the defaults of every group."""
    groups = [g for g in step.param_groups(train_cfg) if g['params']]
    if not groups:
        raise UserError('nothing to train: the method has no parameter that requires gradients')
    return OPTIMIZERS.get(train_cfg['name'], 'optimizer.name')(groups, **(train_cfg.get('args') or {}))


def build_run(args: argparse.Namespace, cfg: dict[str, Any], out_dir: str, make_step: MakeStep, *,
              splits: Sequence[str], train_cfg: Optional[Mapping[str, Any]], eval_period: int = 1,
              cfg_sp: Optional[dict[str, Any]] = None) -> Run:
    """Assemble a run (see the module docstring).

    Args:
        args: the entry script's flags; cfg: the loaded main config; out_dir: the run folder.
        make_step: ``(ctx, datasets) -> Step``, called once the data is built.
        splits: the splits to load (those the config lacks are left out).
        train_cfg: the ``optimizer`` block that trains (main config's, or the DRL config's);
            ``None``: evaluation only, no optimiser.
        eval_period: validate every N epochs.
        cfg_sp: the DRL config (saved in the run folder and in checkpoints).
    """
    ctx = setup_run(args, cfg, out_dir, cfg_sp=cfg_sp)
    check_data_config(cfg)  # a Hugging Face model folder against the config's clips, before any data
    data, loaders = build_data(cfg, ctx, args, splits)
    step = make_step(ctx, data)
    optimizer = build_optimizer(train_cfg, step) if train_cfg is not None else None
    scheduler = build_scheduler(train_cfg, optimizer) if optimizer is not None else None
    engine = Engine(step, optimizer, scheduler, ctx, train_cfg, eval_period=eval_period)
    return Run(ctx, data, loaders, step, engine)
