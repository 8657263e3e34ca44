"""Few-shot heads (the config's ``model_fs``): ``CloserBaseline`` and ``MetaBaseline``.

Both act on many episodes at once. Inputs are per-clip features of a frozen encoder:

- ``support``: ``E × n_way × n_shot × K × D`` (way ``w`` holds class ``w``'s support videos),
- ``query``: ``E × n_way × n_query × K × D``,

and the output is ``E × (n_way · n_query) × n_way`` query scores, queries way-major (labels from
:func:`fewshot.fit.query_labels`). ``CloserBaseline`` scores every query clip and averages
the clips' scores; ``MetaBaseline`` scores the clip-averaged feature (both as in the published
code; ``MetaBaseline(per_clip=True)`` averages the clips' scores instead).
"""
from collections.abc import Mapping
from typing import Any, Optional

import torch
from torch import nn
from torch.nn import functional as F

from core.registry import Registry

from .fit import RECIPE, cosine_logits, cosine_scale, fit_linear_batched, linear_logits

FEWSHOT_MODELS: Registry[type[nn.Module]] = Registry('few-shot model')


def _check(support, query):
    if support.dim() != 5 or query.dim() != 5 or support.shape[:2] != query.shape[:2] \
            or support.shape[3:] != query.shape[3:]:
        raise ValueError(f'expected support E×n_way×n_shot×K×D and query E×n_way×n_query×K×D, '
                         f'got {tuple(support.shape)} and {tuple(query.shape)}')


@FEWSHOT_MODELS.register('CloserBaseline')
class CloserBaseline(nn.Module):
    """Chen et al.'s Baseline / Baseline++ ("A closer look at few-shot classification").

    Per episode a fresh classifier is trained on all support clips (``n_way · n_shot · K``
    samples) with SGD (lr 0.01, momentum 0.9, dampening 0.9, wd 1e-3, 100 epochs, batch 4),
    fresh ``nn.Linear`` initialisation and shuffling per episode; all episodes are fitted
    together (:func:`fewshot.fit.fit_linear_batched`).

    Args:
        method: ``softmax`` (linear layer with bias) or ``dist`` (Baseline++'s cosine
            classifier: features normalised, no bias, scale 2, or 10 above 200 classes).
        learnable_gain: ``dist`` only. True (default, the published Baseline++): weight
            normalisation with its own gain per class, ``w_c = g_c · v_c / ‖v_c‖`` with ``g``
            and ``v`` trained (``g`` starts at ``‖v_c‖``), so scores are
            ``scale · g_c · cos(x, v_c)``; false: unit-norm rows, scores ``scale · cos(x, w_c)``.
        epochs, batch_size, lr, momentum, dampening, weight_decay: the SGD recipe.
    """

    def __init__(self, method='softmax', learnable_gain=True, epochs=100, batch_size=4, lr=0.01,
                 momentum=0.9, dampening=0.9, weight_decay=1e-3):
        super().__init__()
        if method not in ('softmax', 'dist'):
            raise ValueError(f"CloserBaseline method must be 'softmax' or 'dist', got {method!r}")
        if not isinstance(learnable_gain, bool):
            raise ValueError(f'CloserBaseline learnable_gain must be true or false, got {learnable_gain!r}')
        self.method = method
        self.gain = method == 'dist' and learnable_gain
        self.recipe = dict(RECIPE, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                           dampening=dampening, weight_decay=weight_decay)

    def forward(self, support, query, generator=None):
        """Fit on ``support``, score ``query`` (shapes in the module docstring).

        Args:
            generator: CPU ``torch.Generator`` for the classifiers' init and shuffling.
        Returns:
            ``E × (n_way · n_query) × n_way``.
        """
        _check(support, query)
        e, n_way, n_shot, k, d = support.shape
        x = support.reshape(e, n_way * n_shot * k, d)
        y = torch.arange(n_way, device=x.device).repeat_interleave(n_shot * k).expand(e, -1)
        scale = cosine_scale(n_way) if self.method == 'dist' else None
        with torch.enable_grad():  # callers usually evaluate under no_grad
            w, b = fit_linear_batched(x, y, n_way, scale=scale, gain=self.gain, generator=generator,
                                      **self.recipe)
        q = query.reshape(e, -1, k, d).flatten(1, 2)                # E × (Q·K) × D
        if self.gain:   # w is the trained g · v / ‖v‖
            logits = cosine_logits(q, w, scale)
        else:
            logits = linear_logits(q, w, b, scale)                  # E × (Q·K) × n_way
        return logits.unflatten(1, (-1, k)).mean(2)


@FEWSHOT_MODELS.register('MetaBaseline')
class MetaBaseline(nn.Module):
    """Chen et al.'s Meta-Baseline: nearest prototype.

    Prototype of a way = mean of its support features over shots and clips. A query is its
    clip-averaged feature (the published code), or with ``per_clip`` each of its clips, scored
    separately, the scores averaged. ``cos``: scores are ``temp · cos(query, prototype)`` with
    a learnable temperature (init 10; without meta-training it stays at its init); ``sqr``:
    negative squared Euclidean distance (``per_clip`` then only adds the same constant, the
    clips' spread, to every way's score: same predictions).

    Args:
        method: ``cos`` or ``sqr``.
        temp: initial temperature of ``cos``.
        temp_learnable: make the temperature an ``nn.Parameter``.
        per_clip: score each query clip and average the scores (false: score the clip mean).
    """

    def __init__(self, method='cos', temp=10.0, temp_learnable=True, per_clip=False):
        super().__init__()
        if method not in ('cos', 'sqr'):
            raise ValueError(f"MetaBaseline method must be 'cos' or 'sqr', got {method!r}")
        if not isinstance(per_clip, bool):
            raise ValueError(f'MetaBaseline per_clip must be true or false, got {per_clip!r}')
        self.method = method
        self.per_clip = per_clip
        t = torch.tensor(float(temp))
        self.temp = nn.Parameter(t) if temp_learnable else t

    def forward(self, support, query, generator=None):
        """Score ``query`` against the support prototypes; returns ``E × (n_way·n_query) × n_way``.
        ``generator`` is unused (kept for the common head signature)."""
        _check(support, query)
        e, n_way, _, k, d = support.shape
        proto = support.mean(dim=(2, 3))                            # E × n_way × D
        if self.per_clip:
            q = query.reshape(e, -1, d)                             # E × (Q·K) × D
        else:
            q = query.mean(3).reshape(e, -1, d)                     # E × Q × D (clip means)
        if self.method == 'cos':
            logits = self.temp * torch.bmm(F.normalize(q, dim=-1), F.normalize(proto, dim=-1).transpose(1, 2))
        else:
            logits = -torch.cdist(q, proto).pow(2)
        return logits.unflatten(1, (-1, k)).mean(2) if self.per_clip else logits


def build_fewshot_model(cfg_fs: Optional[Mapping[str, Any]]) -> nn.Module:
    """Build the head of a config's ``model_fs`` block (``name``, optional ``args``)."""
    if not cfg_fs or 'name' not in cfg_fs:
        raise ValueError('the config needs a model_fs block with a name '
                         f'(one of {", ".join(FEWSHOT_MODELS.names())})')
    return FEWSHOT_MODELS.get(cfg_fs['name'])(**(cfg_fs.get('args') or {}))
