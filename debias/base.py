"""The interface every de-biasing method of ``main.py`` implements (config block ``augment``).

A method hooks into :class:`supervised.step.ClassifierStep`'s training step at two points, and
the step calls nothing else, so it never branches on a method's name:

1. :meth:`Method.transform` (a *batch transform*): the clips and targets the model is trained
   on, e.g. StillMix's blended clips, or mixup's mixed clips with soft labels.
2. :meth:`Method.loss_terms` (an *extra loss term* with its own forward passes): weighted terms
   added to the step's loss, e.g. Background Erasing's consistency with the clean clip, or
   ALBAR's adversarial, entropy and gradient-penalty terms on the static clip.

The step computes ``loss = criterion(f(x'), target) + Σ weight · term`` and logs each term's
unweighted value as ``loss_<name>`` (and the first part as ``loss_cls``). Its random draws use
torch's global generator, which the engine re-seeds every epoch (a resumed run draws what an
uninterrupted one does). Tensors: clips ``B × K × C × T × H × W`` (normalised), labels ``B``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from core.errors import UserError
from core.registry import Registry

#: name -> constructor ``fn(block, cfg) -> Method`` (``block`` is the ``augment`` block with its
#: defaults filled, ``cfg`` the whole resolved config)
METHODS: Registry = Registry('de-biasing method')

Forward = Callable[[torch.Tensor], torch.Tensor]   # clips B × K × C × T × H × W -> logits B × n_class


@dataclass
class Mixed:
    """What the model is trained on: ``video`` ``B × K × C × T × H × W`` and ``target``, the
    labels ``B`` (int) or soft labels ``B × n_class`` (float, rows summing to 1); ``metrics``:
    the transform's own diagnostics (batch means), logged with the step's metrics."""
    video: torch.Tensor
    target: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Term:
    """One extra loss term: ``weight · value`` is added to the loss (a negative weight pushes
    ``value`` up); ``value`` (a scalar) is logged as ``loss_<name>``."""
    name: str
    weight: float
    value: torch.Tensor


class Method:
    """Base class: a method overrides :meth:`transform`, :meth:`loss_terms` or both.

    Attributes:
        name: the ``augment.name`` it was built from.
        min_frames: the shortest clip it can train on (checked by :meth:`check_clips`).
    """
    name = ''
    min_frames = 1

    def transform(self, video: torch.Tensor, label: torch.Tensor) -> Mixed:
        """The training batch after the method's batch transform. Default: unchanged."""
        return Mixed(video, label)

    def loss_terms(self, forward: Forward, video: torch.Tensor, label: torch.Tensor,
                   logits: torch.Tensor) -> list[Term]:
        """Extra loss terms, with their own forward passes through ``forward`` (the step's model).

        Args:
            forward: the model, clips -> logits (DDP-wrapped where the run is distributed).
            video: the clean clips, before :meth:`transform`; label: their labels ``B``.
            logits: the model's output on the transformed clips (part of the graph).
        Returns:
            the terms (default: none).
        """
        return []

    def check_model(self, model: torch.nn.Module) -> None:
        """Raise :class:`core.errors.UserError` (one line) when ``model`` (as the step holds it:
        maybe DDP-wrapped or compiled) cannot be trained with this method. Default: any model."""
        return None

    def check_clips(self, n_frames: int, where: str = 'the training clips') -> None:
        """Raise :class:`core.errors.UserError` (one line) when clips of ``n_frames`` frames
        cannot be trained with this method."""
        if n_frames < self.min_frames:
            raise UserError(f'augment.name={self.name} needs clips of at least {self.min_frames} frames; '
                            f'{where} have {n_frames} (dataset.args.<split>.n_frames)')

