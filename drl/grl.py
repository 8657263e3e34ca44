"""Gradient reversal (Ganin & Lempitsky, 2015).

Identity in the forward pass; the backward pass multiplies the incoming gradient by ``-coeff``.
DRL-dir puts it on the spatial model's logits: the loss ``L_cls − λ·KD(o_s, o) − CE(o_s, y)``
is minimised by the video model (it moves away from what a static model can reproduce) and,
through the reversal, ``λ·KD(o_s, o) + CE(o_s, y)`` is minimised by the spatial model (it
learns to classify and to mimic the video model).
"""
import torch
from torch import nn


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coeff):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.coeff * grad, None


def grad_reverse(x, coeff=1.0):
    """Identity on ``x`` (any shape) whose gradient is multiplied by ``-coeff``."""
    return _GradReverse.apply(x, float(coeff))


class GradReverse(nn.Module):
    """Module form of :func:`grad_reverse`."""

    def __init__(self, coeff=1.0):
        super().__init__()
        self.coeff = float(coeff)

    def forward(self, x):
        return grad_reverse(x, self.coeff)

    def extra_repr(self):
        return f'coeff={self.coeff}'
