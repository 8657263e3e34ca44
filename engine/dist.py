"""Distributed helpers. One process without a process group is the default case.

Launch with ``torchrun`` (reads RANK / WORLD_SIZE / LOCAL_RANK from the environment) or with
the authors' ``--dist-url`` / ``--dist-backend`` plus those variables. gloo on CPU, NCCL on CUDA.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False

    @property
    def is_main(self):
        return self.rank == 0


def init_distributed(device_type, dist_url='env://', backend=None):
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1).

    Args:
        device_type: ``'cpu'`` or ``'cuda'``; picks the default backend.
        dist_url: init method (the authors' ``--dist-url``); ``env://`` for torchrun.
        backend: ``gloo`` / ``nccl``; default gloo on CPU, NCCL on CUDA.
    Returns:
        :class:`DistInfo`.
    """
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    backend = backend or ('nccl' if device_type == 'cuda' else 'gloo')
    if device_type == 'cuda':
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method=dist_url or 'env://',
                                world_size=world, rank=rank)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, enabled=True)


def is_enabled():
    return dist.is_available() and dist.is_initialized()


def get_rank():
    return dist.get_rank() if is_enabled() else 0


def get_world_size():
    return dist.get_world_size() if is_enabled() else 1


def barrier():
    if is_enabled():
        dist.barrier()


def all_reduce_sums(values, device):
    """Sum a list of floats over ranks (exact for the counts and weighted sums of meters)."""
    if not is_enabled():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_objects(obj):
    """List of ``obj`` from every rank, in rank order (a one-element list without a group)."""
    if not is_enabled():
        return [obj]
    out = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def cleanup():
    if is_enabled():
        dist.destroy_process_group()
