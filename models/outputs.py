"""What a model's output is, and the mode helpers every step uses.

A model returns logits ``B × n_class``, or, with ``ret_feat=[...]``, a dict holding them under
``pred`` beside the named features. :func:`split_output` is the one place that unwraps it.
"""
from __future__ import annotations

from typing import Union

import torch
from torch import nn

Output = Union[torch.Tensor, dict[str, torch.Tensor]]


def split_output(out: Output) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(logits, features)`` of a model's output: a dict output is also the features dict (its
    ``pred`` entry included); plain logits have no features (``{}``)."""
    if isinstance(out, dict):
        return out['pred'], out
    return out, {}


def logits_of(out: Output) -> torch.Tensor:
    """The logits of a model's output (the ``pred`` entry of a dict output)."""
    return out['pred'] if isinstance(out, dict) else out


def set_bn_eval(model: nn.Module) -> None:
    """Keep every BatchNorm layer in eval mode (``freeze_bn``, linear probes)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
