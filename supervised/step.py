"""The supervised step of ``main.py`` (and the base-split training of ``main-fsl.py``)."""
from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import torch
import torch.nn as nn

from engine.metrics import accuracy
from engine.step import Batch, Records, Step, StepOutput
from models.outputs import logits_of, set_bn_eval


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor,
                       classes: Optional[Sequence[str]] = None) -> dict[str, float]:
    """Top-1 accuracy (percent) of each class present in ``labels``; absent classes are left out."""
    pred = logits.argmax(1)
    out = {}
    for c in torch.unique(labels).tolist():
        mask = labels == c
        name = classes[c] if classes is not None and c < len(classes) else str(c)
        out[name] = (pred[mask] == c).float().mean().item() * 100
    return out


def write_predictions(target: tuple[str, Sequence[str]], records: Records,
                      classes: Optional[Sequence[str]] = None) -> str:
    """``predictions.csv``: per video id, true and predicted class and the predicted probability.

    Args:
        target: ``(csv path, vids)``; ``vids[i]`` names dataset index ``i``.
        records: ``logits`` ``N × n_class``, ``labels`` and ``index`` ``N``.
    Returns:
        the path written.
    """
    path, vids = target
    conf, pred = records['logits'].float().softmax(1).max(1)
    def name(c):  # the head may have more outputs than the split has classes
        return classes[c] if classes is not None and c < len(classes) else str(c)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['vid', 'index', 'label', 'pred', 'prob'])
        for i, y, p, c in zip(records['index'].tolist(), records['labels'].tolist(), pred.tolist(), conf.tolist()):
            w.writerow([vids[i], i, name(y), name(p), f'{c:.4f}'])
    os.replace(tmp, path)
    return path


class ClassifierStep(Step):
    """Cross-entropy training of one video model; logits are recorded for split metrics.

    Args:
        model: video model (maybe DDP-wrapped), input ``B × K × C × T × H × W``.
        criterion: loss module taking ``(logits, labels)``.
        freeze_bn: keep BatchNorm layers in eval mode while training.
        classes: class names, for per-class results.
        predictions_to: ``(csv_path, vids)``: after the final test, write one row per video
            (id, label, prediction, its probability) there (:meth:`report`, rank 0);
            ``vids[i]`` names dataset index ``i``.
        method: the de-biasing method (``debias.build_method(cfg)``, interface
            :class:`debias.base.Method`) or ``None``. Training calls its batch transform
            ``method.transform(video, label) -> (video', target)`` and its extra loss terms
            ``method.loss_terms(forward, video, label, logits) -> [(name, weight, value)]``;
            the loss is ``criterion(f(video'), target) + Σ weight · value`` (``target``: labels,
            or soft labels for mixup / CutMix). The step never looks at the method's name.
        linear_probe: only the head is trained; the backbone stays in eval mode (frozen
            BatchNorm statistics), so the result measures the pretrained features.
    """

    def __init__(self, model: nn.Module, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 freeze_bn: bool = False, classes: Optional[Sequence[str]] = None,
                 predictions_to: Optional[tuple[str, Sequence[str]]] = None, method: Optional[Any] = None,
                 linear_probe: bool = False) -> None:
        super().__init__({'state_dict': model})
        self.model, self.criterion, self.freeze_bn, self.classes = model, criterion, freeze_bn, classes
        self.predictions_to, self.linear_probe = predictions_to, linear_probe
        self.method = method
        if self.method is not None:   # before any training: a method may refuse the model
            self.method.check_model(model)

    def train(self, mode: bool = True) -> None:
        self.model.train(mode and not self.linear_probe)
        if mode and self.freeze_bn:
            set_bn_eval(self.model)

    def _logits(self, video: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(video))

    def _forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, StepOutput]:
        logits = self._logits(batch['video'])
        loss = self.criterion(logits.float(), batch['label'])
        acc1, acc5 = accuracy(logits.detach(), batch['label'])
        n = batch['label'].shape[0]
        return logits, loss, StepOutput(loss=loss, n=n, metrics={'loss': loss.item(), 'Acc@1': acc1, 'Acc@5': acc5})

    def train_step(self, batch: Batch) -> StepOutput:
        if self.method is None:
            return self._forward(batch)[2]
        x, y = batch['video'], batch['label']
        mixed = self.method.transform(x, y)
        logits = self._logits(mixed.video)
        loss = self.criterion(logits.float(), mixed.target)
        acc1, acc5 = accuracy(logits.detach(), y)  # against the clips' own labels
        out = StepOutput(loss=loss, n=y.shape[0], metrics={'loss': loss.item(), 'Acc@1': acc1, 'Acc@5': acc5,
                                                           **mixed.metrics})
        terms = self.method.loss_terms(self._logits, x, y, logits)
        if terms:
            for t in terms:
                out.loss = out.loss + t.weight * t.value
            out.metrics.update(loss_cls=loss.item(), **{f'loss_{t.name}': t.value.item() for t in terms},
                               loss=out.loss.item())
        return out

    def eval_step(self, batch: Batch) -> StepOutput:
        logits, _, out = self._forward(batch)
        out.loss = None
        out.records = {'logits': logits.detach(), 'labels': batch['label'], 'index': batch['index']}
        return out

    def summarize(self, records: Records, tag: str) -> dict[str, Any]:
        """On the final test: per-class Acc@1 and the number of videos."""
        if tag != 'test_final' or 'logits' not in records:
            return {}
        return {'per_class_Acc@1': per_class_accuracy(records['logits'], records['labels'], self.classes),
                'n_videos': int(records['labels'].numel())}

    def report(self, records: Records, tag: str, summary: Mapping[str, Any], out_dir: str) -> list[str]:
        """On the final test: ``predictions.csv`` where ``predictions_to`` says."""
        if tag != 'test_final' or 'logits' not in records or self.predictions_to is None:
            return []
        return [write_predictions(self.predictions_to, records, self.classes)]
