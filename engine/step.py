"""The interface between the engine and a method: :class:`Step` and :class:`StepOutput`.

A step holds the models and the per-batch computation (baseline, DRL-aug, scoring, DRL-dir,
...); :class:`engine.engine.Engine` owns everything else and calls only the methods below, as
does :func:`drl.build.run_drl`. Tensors: a batch's ``video`` is ``B × K × C × T × H × W``,
``label`` and ``index`` are ``B``.
"""
from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Optional

import torch
import torch.nn as nn

from .checkpoint import unwrap

Batch = dict[str, Any]            # a collated batch on the device: video, label, index, vid, skipped
Records = dict[str, torch.Tensor]  # per-sample tensors (first dim = samples) of a whole split


@dataclass
class StepOutput:
    """What a step returns for one batch.

    Attributes:
        loss: scalar tensor to back-propagate (train), or ``None``.
        n: number of samples the metrics average over.
        metrics: per-batch means (``loss``, ``Acc@1``, ...), weighted by ``n`` in the meters.
        records: per-sample tensors (first dim = batch) gathered over the split for ``summarize``.
    """
    loss: Optional[torch.Tensor] = None
    n: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    records: Records = field(default_factory=dict)


class Step(abc.ABC):
    """Base class of the per-batch computations. Subclasses implement :meth:`train_step` and
    :meth:`eval_step`; every other method has a default.

    Args:
        modules: checkpoint key -> module, e.g. ``{'state_dict': f, 'state_dict_sp': g}``; kept
            as the instance attribute ``modules`` (what is saved, loaded, put in train mode).

    A subclass that does not call ``super().__init__`` has no modules: the class-level default
    is an empty read-only mapping, never a dict shared between instances.
    """
    modules: Mapping[str, nn.Module] = MappingProxyType({})
    #: ``(metric, 'max' | 'min')``: the validation metric that picks ``model_best.pth.tar``
    best_metric: tuple[str, str] = ('Acc@1', 'max')

    def __init__(self, modules: Optional[Mapping[str, nn.Module]] = None) -> None:
        self.modules = dict(modules or {})

    def train(self, mode: bool = True) -> None:
        """Put the modules in training (``mode=True``) or evaluation mode; the engine calls it
        before every training epoch and every evaluation. Steps that keep a model fixed (scoring,
        ``freeze_bn``, a linear probe) override it."""
        for m in self.modules.values():
            m.train(mode)

    def set_epoch(self, epoch: int) -> None:
        """Called by the engine before training epoch ``epoch`` (0-based; also after a resume,
        with the epoch the run resumes at). Default: nothing."""
        return None

    @abc.abstractmethod
    def train_step(self, batch: Batch) -> StepOutput:
        """One training batch -> :class:`StepOutput` with ``loss`` (the engine zeroes the
        gradients, back-propagates and steps the optimiser) and ``metrics``."""

    @abc.abstractmethod
    def eval_step(self, batch: Batch) -> StepOutput:
        """One evaluation batch (no gradients) -> :class:`StepOutput` with ``metrics`` and the
        ``records`` :meth:`summarize` needs."""

    def summarize(self, records: Records, tag: str) -> dict[str, Any]:
        """Split-level metrics from all ranks' concatenated ``records`` (every rank calls it);
        ``tag`` names the split (``val``, ``test_final``, ...). Pure: computes, writes nothing.

        Returns:
            metrics merged into :meth:`Engine.evaluate`'s result (floats; per-class dicts).
        """
        return {}

    def report(self, records: Records, tag: str, summary: Mapping[str, Any], out_dir: str) -> list[str]:
        """Write the split's report files (CSV tables, PNG charts) into ``out_dir``. The engine
        calls it on rank 0 only, right after :meth:`summarize` (whose result is ``summary``).

        Returns:
            the paths written (empty: nothing to report for this ``tag``).
        """
        return []

    def state_dicts(self) -> dict[str, dict[str, torch.Tensor]]:
        """Checkpoint key -> state dict of each module (DDP / compile wrappers removed)."""
        return {k: unwrap(m).state_dict() for k, m in self.modules.items()}

    def load_state_dicts(self, ckpt: Mapping[str, Any]) -> None:
        """Load each module's state from ``ckpt[key]``; keys absent from ``ckpt`` are skipped."""
        for k, m in self.modules.items():
            if k in ckpt:
                unwrap(m).load_state_dict(ckpt[k])

    def trained_models(self) -> dict[str, nn.Module]:
        """The modules the optimiser updates, by checkpoint key (default: all of ``modules``);
        a model that stays fixed is left out."""
        return dict(self.modules)

    def param_groups(self, train_cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
        """What the optimiser updates, as torch parameter groups (each may carry its own lr, ...).

        Args:
            train_cfg: the config's ``optimizer`` block.
        Default: one group with the parameters of :meth:`trained_models` that require gradients,
        in module order; the block's ``args`` apply to it.
        """
        params = [p for m in self.trained_models().values() for p in m.parameters() if p.requires_grad]
        return [{'params': params}]

    def test_with_best(self) -> bool:
        """Whether the final test loads ``model_best`` (the epoch with the best val Acc@1)
        rather than keeping the last epoch's weights. Default: yes."""
        return True


__all__ = ['Batch', 'Records', 'Step', 'StepOutput']
