"""The classification step of ``main.py`` (and of ``main-fsl.py``'s base training), built from a config."""
from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch.nn as nn

from engine.build import prepare_model
from engine.checkpoint import load_pretrained
from engine.optim import build_criterion
from engine.runner import RunContext
from models import build_model

from .step import ClassifierStep


def freeze_backbone(model: nn.Module) -> None:
    """``model.linear_probe``: only the classifier (``head.*``) keeps ``requires_grad``. Done
    before DDP wrapping, which reads ``requires_grad`` when it is built."""
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith('head.'))


def build_classifier_step(cfg: Mapping[str, Any], ctx: RunContext, args: Optional[argparse.Namespace], *,
                          classes: Sequence[str], pretrain: Optional[str] = None,
                          evaluate_weights: Optional[str] = None, trainable: bool = True,
                          predictions_to: Optional[tuple[str, Sequence[str]]] = None,
                          method: Any = None) -> ClassifierStep:
    """Model (built, loaded, on the device, DDP-wrapped) → :class:`ClassifierStep`.

    Args:
        cfg: the loaded config (``model``, ``criterion``).
        pretrain: weights to start from (the head is reset unless ``model.copy_head``).
        evaluate_weights: evaluation only: weights loaded with their head (``-e``); the model
            is not trained, so ``model.linear_probe`` does not apply.
        trainable: whether the model receives gradients (DDP wraps only such models).
        predictions_to: ``(csv path, vids)`` for ``predictions.csv`` after the final test.
        method: a de-biasing method (``debias.build_method``), or ``None``.
    """
    model = build_model(cfg['model'])
    linear_probe = cfg['model']['linear_probe'] and evaluate_weights is None and trainable
    if linear_probe:
        freeze_backbone(model)
    if evaluate_weights is not None:
        load_pretrained(model, evaluate_weights, copy_head=True)
        pretrain = None
    model = prepare_model(model, cfg['model'], ctx, args, pretrain=pretrain, trainable=trainable)
    return ClassifierStep(model, build_criterion(cfg['criterion']).to(ctx.device),
                          freeze_bn=cfg['model']['freeze_bn'], classes=classes,
                          predictions_to=predictions_to, method=method, linear_probe=linear_probe)
