"""Builders shared by the entry scripts: data loaders and device-ready (DDP-wrapped) models."""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Optional

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from core.errors import UserError
from datasets.collate import video_collate

from .checkpoint import load_pretrained

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
