"""Adversarial attacks on the spatial model (docs/drl.md, "DRL by adversarial augmentation"), behind the ``ATTACKS`` registry.

Every attack is called as ``attack(model, x, y) -> x_adv`` with ``x`` a normalised batch
``B × K × C × T × H × W`` and ``y`` the (pseudo-)labels ``B``; it maximises
``CE(model(x_adv), y)``. ``eps``/``alpha`` are in [0, 1] pixel units: the step is divided by
``scale`` (the normalisation std, one value per colour channel, laid along tensor dim ``dim``)
so that it has the intended size before normalisation.

Only input gradients are computed (``torch.autograd.grad`` w.r.t. the perturbation): no weight
``.grad`` is touched and autograd skips the weight-gradient kernels. The model runs in eval mode
during the attack (its BN statistics must not move) and in fp32 (autocast off), and every
module's mode is restored afterwards. By default the attack runs on a copy of the model with
BatchNorm folded into the convolutions (``fuse_bn``), which is the same function in eval mode.

The ``SP`` variants keep one perturbation per position of the dims in ``cp_dim`` (size 1 there,
e.g. time), so all frames of a clip receive the same perturbation: a static, appearance-only
attack.
"""
from __future__ import annotations

import abc
import contextlib
import copy
from typing import Any

import torch
from torch.nn import functional as F

from core.registry import Registry
from models.outputs import logits_of

ATTACKS: Registry[type[_Attack]] = Registry('adversary')


def build_attack(name: str, **kwargs: Any) -> _Attack:
    """``build_attack('FGSM', eps=0.03, iters=5, ...)`` from a config's ``adversary`` block.

    Raises:
        UnknownNameError: unknown name (a one-line user error listing close matches).
    """
    return ATTACKS.get(name, 'adversary.name')(**kwargs)


@contextlib.contextmanager
def frozen_weights(model):
    """Weights stop requiring gradients (restored on exit): the attack's graph then neither
    computes weight gradients nor keeps the activations that only those would need."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)


def fuse_conv_bn(model):
    """An eval-mode copy of ``model`` with every BatchNorm folded into the convolution before
    it (same function up to float rounding, one pass less over each activation map).

    Pairs are found by name, as laid out in torchvision ResNets: ``convN`` / ``bnN``
    attributes of one module and ``Sequential(conv, bn)`` downsample branches. Returns the
    original model (in eval mode via the caller) when nothing can be fused.
    """
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    fused = copy.deepcopy(model).eval()
    n = 0
    for module in fused.modules():
        for name, child in list(module.named_children()):
            bn_name = name.replace('conv', 'bn', 1)
            pair = getattr(module, bn_name, None) if name.startswith('conv') else None
            if isinstance(child, nn.Conv2d) and isinstance(pair, nn.BatchNorm2d):
                setattr(module, name, _fused(child, pair, fuse_conv_bn_eval))
                setattr(module, bn_name, nn.Identity())
                n += 1
        if isinstance(module, nn.Sequential) and len(module) == 2 and \
                isinstance(module[0], nn.Conv2d) and isinstance(module[1], nn.BatchNorm2d):
            module[0] = _fused(module[0], module[1], fuse_conv_bn_eval)
            module[1] = nn.Identity()
            n += 1
    return fused if n else model


def _fused(conv, bn, fuse):
    out = fuse(conv, bn)
    if conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous():
        out = out.to(memory_format=torch.channels_last)
    return out


@contextlib.contextmanager
def eval_mode(model):
    """Put every module of ``model`` in eval mode; restore each module's own flag on exit
    (``model.train()`` would undo e.g. frozen BatchNorm layers)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


class _Attack(abc.ABC):
    """Shared machinery: scale broadcasting, perturbation shape, input gradients."""

    def __init__(self, eps, iters, scale=None, dim=None, cp_dim=None, fuse_bn=True):
        if eps < 0 or iters < 1:
            raise ValueError(f'need eps >= 0 and iters >= 1, got eps={eps}, iters={iters}')
        self.eps, self.iters = float(eps), int(iters)
        self.scale = None if scale is None else [float(s) for s in scale]
        self.dim = dim
        self.fuse_bn = bool(fuse_bn)  # fold BN into convs during the attack (fuse_conv_bn)
        self.cp_dim = () if cp_dim is None else tuple([cp_dim] if isinstance(cp_dim, int) else cp_dim)

    def __repr__(self):
        args = ', '.join(f'{k}={v}' for k, v in vars(self).items())
        return f'{type(self).__name__}({args})'

    def _scale(self, x):
        """The std as a tensor broadcastable to ``x`` (size C along ``dim``), or 1."""
        if self.scale is None:
            return torch.ones((), device=x.device)
        if self.dim is None:
            if len(set(self.scale)) != 1:
                raise ValueError('a per-channel scale needs dim (the channel dim of the input)')
            return torch.tensor(self.scale[0], device=x.device)
        if x.shape[self.dim] != len(self.scale):
            raise ValueError(f'scale has {len(self.scale)} values but input dim {self.dim} '
                             f'has size {x.shape[self.dim]}')
        shape = [1] * x.dim()
        shape[self.dim] = len(self.scale)
        return torch.tensor(self.scale, device=x.device).view(shape)

    def _delta_shape(self, x):
        return [1 if d in self.cp_dim or d - x.dim() in self.cp_dim else n
                for d, n in enumerate(x.shape)]

    @staticmethod
    def _grad(model, x, delta, y):
        """∇_delta CE(model(x + delta), y); delta broadcasts over x (shared along cp_dim)."""
        delta = delta.detach().requires_grad_(True)
        loss = F.cross_entropy(logits_of(model(x + delta)).float(), y, reduction='sum')
        return torch.autograd.grad(loss, delta)[0]

    def __call__(self, model, x, y):
        """x: ``B × K × C × T × H × W``, y: ``B`` -> ``x_adv`` (same shape, detached, fp32)."""
        device_type = x.device.type
        x = x.detach().float()
        with eval_mode(model), frozen_weights(model), torch.autocast(device_type, enabled=False), \
                torch.enable_grad():
            net = fuse_conv_bn(model) if self.fuse_bn else model
            delta = self.run(net, x, y, self._scale(x))
        return (x + delta).detach()

    @abc.abstractmethod
    def run(self, model, x, y, scale):
        """The perturbation ``delta`` (same shape as ``x``) for this attack."""


@ATTACKS.register('FGSM')
class FGSM(_Attack):
    """Iterative fast gradient sign method with optional momentum, no projection.

    ``iters`` steps of size ``eps / iters``: each pixel moves by at most ``eps / std_c``.

    Args:
        eps: total L∞ budget in pixel units.
        iters: number of sign steps.
        momentum: ``g ← g + momentum · g_prev`` (``g_prev`` is the accumulated gradient).
        scale: per-channel normalisation std, along tensor dim ``dim``.
        cp_dim: dims along which the perturbation is shared (see ``SPFGSM``).
        fuse_bn: run the attack on a copy of the model with BatchNorm folded into the
            convolutions (~1.2× faster on CPU; equal up to float rounding, which can flip the
            sign of a near-zero gradient entry).
    """

    def __init__(self, eps, iters=1, momentum=0.0, scale=None, dim=None, cp_dim=None, fuse_bn=True):
        super().__init__(eps, iters, scale, dim, cp_dim, fuse_bn)
        self.momentum = float(momentum)

    def run(self, model, x, y, scale):
        delta = torch.zeros(self._delta_shape(x), device=x.device)
        step = self.eps / self.iters
        g_prev = None
        for _ in range(self.iters):
            g = self._grad(model, x, delta, y)
            if self.momentum and g_prev is not None:
                g = g + self.momentum * g_prev
            g_prev = g
            delta = delta + step * g.sign() / scale
        return delta


@ATTACKS.register('PGD')
class PGD(_Attack):
    """Projected gradient descent (Madry et al.) in the L∞ ball ``x ± eps / std_c``.

    Args:
        eps: L∞ radius in pixel units.
        alpha: step size in pixel units.
        iters: number of steps.
        rand_start: start from a uniform random point of the ball.
        scale, dim, cp_dim, fuse_bn: as in :class:`FGSM`.
        generator: optional ``torch.Generator`` for the random start (same device as x).
    """

    def __init__(self, eps, alpha, iters, rand_start=True, scale=None, dim=None, cp_dim=None,
                 generator=None, fuse_bn=True):
        super().__init__(eps, iters, scale, dim, cp_dim, fuse_bn)
        self.alpha, self.rand_start, self.generator = float(alpha), bool(rand_start), generator

    def run(self, model, x, y, scale):
        bound = self.eps / scale
        shape = self._delta_shape(x)
        if self.rand_start:
            u = torch.rand(shape, device=x.device, generator=self.generator)
            delta = (2 * u - 1) * bound
        else:
            delta = torch.zeros(shape, device=x.device)
        for _ in range(self.iters):
            g = self._grad(model, x, delta, y)
            delta = delta + self.alpha * g.sign() / scale
            delta = torch.maximum(torch.minimum(delta, bound), -bound)
        return delta


@ATTACKS.register('SPFGSM')
class SPFGSM(FGSM):
    """:class:`FGSM` with one perturbation shared along ``cp_dim`` (default: time, dim 3)."""

    def __init__(self, eps, iters=1, momentum=0.0, scale=None, dim=None, cp_dim=(3,), fuse_bn=True):
        super().__init__(eps, iters, momentum, scale, dim, cp_dim, fuse_bn)


@ATTACKS.register('SPPGD')
class SPPGD(PGD):
    """:class:`PGD` with one perturbation shared along ``cp_dim`` (default: time, dim 3)."""

    def __init__(self, eps, alpha, iters, rand_start=True, scale=None, dim=None, cp_dim=(3,),
                 generator=None, fuse_bn=True):
        super().__init__(eps, alpha, iters, rand_start, scale, dim, cp_dim, generator, fuse_bn)
