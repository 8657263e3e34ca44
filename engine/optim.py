"""Optimisers, LR schedulers and criteria by name (explicit tables, close-match errors).

The builders take blocks of a loaded config, defaults filled in (``core.config.fill_defaults``).
"""
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

import torch
import torch.nn as nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from core.registry import Registry

from .losses import JSDLoss, KDLoss

OPTIMIZERS: Registry[type[Optimizer]] = Registry('optimizer')
SCHEDULERS: Registry[type[LRScheduler]] = Registry('lr scheduler')
CRITERIA: Registry[type[nn.Module]] = Registry('criterion')

for _name, _obj in sorted(vars(torch.optim).items()):
    if isinstance(_obj, type) and issubclass(_obj, torch.optim.Optimizer) and _obj is not torch.optim.Optimizer:
        OPTIMIZERS.register(_name)(_obj)
for _name, _obj in sorted(vars(torch.optim.lr_scheduler).items()):
    if (isinstance(_obj, type) and issubclass(_obj, torch.optim.lr_scheduler.LRScheduler)
            and not _name.startswith('_') and _name != 'LRScheduler'):
        SCHEDULERS.register(_name)(_obj)
for _name, _obj in sorted(vars(nn).items()):
    if isinstance(_obj, type) and _name.endswith('Loss') and issubclass(_obj, nn.Module):
        CRITERIA.register(_name)(_obj)
CRITERIA.register('KDLoss')(KDLoss)
CRITERIA.register('JSDLoss')(JSDLoss)


def build_optimizer(opt_cfg: Mapping[str, Any],
                    params: Iterable[Union[torch.Tensor, dict[str, Any]]]) -> Optimizer:
    """``optimizer`` block -> torch optimiser.

    Args:
        opt_cfg: ``{'name': 'SGD', 'args': {...}, 'schedule': ...}``.
        params: parameters or a list of parameter-group dicts (each may carry its own lr, ...).
    """
    return OPTIMIZERS.get(opt_cfg['name'])(params, **(opt_cfg['args'] or {}))


def build_scheduler(opt_cfg: Mapping[str, Any], optimizer: Optimizer) -> Optional[LRScheduler]:
    """``optimizer.schedule`` block -> LR scheduler stepped once per epoch, or ``None``."""
    sched = opt_cfg['schedule']
    if not sched:
        return None
    return SCHEDULERS.get(sched['name'])(optimizer, **(sched['args'] or {}))


def build_criterion(crit_cfg: Mapping[str, Any], **overrides: Any) -> nn.Module:
    """``criterion`` block -> loss module (every ``torch.nn`` loss, ``KDLoss``, ``JSDLoss``).

    Args:
        crit_cfg: ``{'name': ..., 'args': {...}}``.
        overrides: constructor arguments that win over ``args`` (e.g. ``reduction='none'``).
    Raises:
        UnknownNameError: unknown name (a one-line user error listing close matches).
    """
    return CRITERIA.get(crit_cfg['name'], 'criterion.name')(**{**(crit_cfg['args'] or {}), **overrides})
