"""Per-batch metrics the steps report."""
from collections.abc import Sequence

import torch


def accuracy(logits: torch.Tensor, target: torch.Tensor, topk: Sequence[int] = (1, 5)) -> list[float]:
    """Top-k accuracies in percent; k larger than the number of classes counts as top-all.

    Args:
        logits: ``B × n_class``; target: ``B`` class indices.
    """
    maxk = min(max(topk), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    correct = pred.eq(target[:, None])
    return [correct[:, :min(k, maxk)].any(dim=1).float().mean().item() * 100 for k in topk]
