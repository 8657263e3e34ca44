"""The video head shared by every model family, and the base class that owns it.

A video batch is ``B × K × C × T × H × W`` (K clips per video). Each clip is encoded to a
pooled feature (``forward_features``), the head (dropout → linear) scores every clip, and the
clip scores are combined into one prediction per video (``forward_head``, "clip consensus").
"""
from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

CONSENSUS = ('avg', 'avg_softmax', 'max')
FEATURE_NAMES = ('conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'pool')


def clip_consensus(logits: torch.Tensor, mode: str) -> torch.Tensor:
    """Combine per-clip scores into one score per video.

    Args:
        logits: ``B × K × n`` per-clip scores.
        mode: ``avg`` (mean of logits), ``max`` (element-wise max over clips) or
            ``avg_softmax`` (log of the mean softmax probability; feeding it to
            ``CrossEntropyLoss`` gives the NLL of the averaged probabilities, because
            ``log_softmax`` leaves log-probabilities unchanged).
    Returns:
        ``B × n``.
    """
    if mode == 'avg':
        return logits.mean(1)
    if mode == 'max':
        return logits.amax(1)
    if mode == 'avg_softmax':
        # log(mean_k p_k) computed in log space for numerical stability.
        return torch.logsumexp(F.log_softmax(logits, dim=-1), dim=1) - math.log(logits.shape[1])
    raise ValueError(f'unknown consensus {mode!r}; expected one of {CONSENSUS}')


class VideoModel(nn.Module, metaclass=abc.ABCMeta):
    """Base of all video models: clip folding, the ``head`` classifier, consensus, ``ret_feat``.

    Subclasses build their trunk and implement ``forward_features(x, feats=None)``, which maps
    clips ``N × C × T × H × W`` to pooled features ``N × D`` and, when ``feats`` is a dict,
    stores the stage outputs whose names are in ``self.ret_feat`` (``conv1``..``conv5``).

    Args:
        num_features: D, the width of the pooled feature.
        n_class: number of classes; 0 builds no classifier (``head`` is an identity and the
            model returns the clip-consensus of the pooled features, ``B × D``).
        dropout: dropout probability before the linear layer.
        consensus: how clip scores are combined, one of ``CONSENSUS``.
        ret_feat: names of features to return next to the logits (``FEATURE_NAMES``).
    """

    def __init__(self, num_features: int, n_class: int, dropout: float = 0.0, consensus: str = 'avg',
                 ret_feat: Sequence[str] = ()) -> None:
        super().__init__()
        if consensus not in CONSENSUS:
            raise ValueError(f'unknown consensus {consensus!r}; expected one of {CONSENSUS}')
        if n_class < 0:
            raise ValueError(f'n_class must be >= 0, got {n_class}')
        if n_class == 0 and consensus == 'avg_softmax':
            raise ValueError("consensus 'avg_softmax' needs a classifier (n_class > 0)")
        ret_feat = list(ret_feat or [])
        bad = [n for n in ret_feat if n not in FEATURE_NAMES]
        if bad:
            raise ValueError(f'unknown ret_feat {bad}; expected names from {FEATURE_NAMES}')
        self.num_features = num_features
        self.n_class = n_class
        self.consensus = consensus
        self.ret_feat = ret_feat
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(num_features, n_class) if n_class > 0 else nn.Identity()

    def reset_head(self, n_class: int) -> None:
        """Replace the classifier by a freshly initialised one with ``n_class`` outputs
        (0 removes it); keeps the device and dtype of the trunk."""
        ref = next(self.parameters())
        self.n_class = n_class
        if n_class > 0:
            self.head = nn.Linear(self.num_features, n_class, device=ref.device, dtype=ref.dtype)
        else:
            self.head = nn.Identity()

    @abc.abstractmethod
    def forward_features(self, x: torch.Tensor, feats: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """``N × C × T × H × W`` → ``N × D``; see the class docstring."""

    def forward_head(self, feat: torch.Tensor) -> torch.Tensor:
        """Per-clip pooled features ``B × K × D`` → video scores ``B × n_class``
        (``B × D`` when ``n_class`` is 0)."""
        return clip_consensus(self.head(self.dropout(feat)), self.consensus)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Score videos.

        Args:
            x: ``B × K × C × T × H × W`` (or ``B × C × T × H × W``, taken as K = 1).
        Returns:
            logits ``B × n_class``; if ``ret_feat`` is non-empty a dict with ``pred`` (the
            logits), ``pool`` (``B × K × D``, before dropout) and the requested stage outputs
            (leading dim N = B·K, see the model's docstring for their layout).
        """
        if x.dim() == 5:
            x = x.unsqueeze(1)
        if x.dim() != 6:
            raise ValueError(f'expected B×K×C×T×H×W or B×C×T×H×W input, got shape {tuple(x.shape)}')
        b, k = x.shape[:2]
        feats = {} if self.ret_feat else None
        pooled = self.forward_features(x.flatten(0, 1), feats).unflatten(0, (b, k))
        logits = self.forward_head(pooled)
        if feats is None:
            return logits
        out = {'pred': logits}
        for name in self.ret_feat:
            out[name] = pooled if name == 'pool' else feats[name]
        return out

    def _keep(self, feats, name, value):
        """Store a stage output only when it was asked for (so eval does not hold memory)."""
        if feats is not None and name in self.ret_feat:
            feats[name] = value
