"""The per-batch computations of the DRL scripts (docs/drl.md), as engine steps.

- :class:`DRLAugStep` (``main-drl.py``): the spatial model ``g`` learns to mimic the video model
  ``f`` (``KD``); with an attack ``f`` is also trained on clips perturbed against ``g``
  (*adversarial augmentation*); without one it is *dynamic scoring* (``f`` fixed, eval mode).
- :class:`DRLDirStep` (``main-drl-dir.py``): ``f`` is pushed away from a static model's
  prediction (frozen / shuffled clips through ``f``, or ``g`` behind a gradient-reversal layer).

Both record ``logits`` / ``logits_sp`` / ``labels`` on evaluation; ``summarize`` turns them into
the dynamic score (``measure.dynamic``) and, on the final test, per-class scores; ``report`` (called by
the engine on rank 0) writes the per-class CSV and chart of the final test.
Tensors: ``x`` is ``B × K × C × T × H × W``, logits ``B × n_class``, labels ``B``.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

import torch
import torch.nn as nn
from torch.nn import functional as F

from core.errors import UserError
from engine.checkpoint import unwrap
from engine.metrics import accuracy
from engine.optim import build_criterion
from engine.step import Batch, Records, Step, StepOutput
from measure.dynamic import agreement, dynamic_scores, per_class_scores
from models.outputs import set_bn_eval, split_output

from . import report
from .grl import grad_reverse
from .static import freeze_frames, shuffle_frames

if TYPE_CHECKING:
    from engine.runner import RunContext

    from .attacks import _Attack

log = logging.getLogger('drl')


def _pooled(feat, frames):
    """A feature map reduced to ``N × C`` so 2D (per-frame ``N × T × C × H × W``) and 3D
    (``N × C × T × H × W``) maps compare; ``pool`` features (``B × K × D``) are kept."""
    if feat.dim() != 5:
        return feat
    return feat.mean((1, 3, 4)) if frames else feat.mean((2, 3, 4))


def logit_grad_norms(logits: torch.Tensor, **terms: torch.Tensor) -> dict[str, float]:
    """Diagnostics: the L2 norm of each loss term's gradient at the logits (what flows back
    into the video model), and ``grad_ratio`` = penalty / ce when both are given.

    Args:
        logits: ``B × n`` tensor in the graph of every term; terms: name -> scalar loss.
    Returns:
        ``{'grad_<name>': float, ..., 'grad_ratio': float}``.
    """
    if not logits.requires_grad:
        return {}
    out = {}
    for name, term in terms.items():
        g, = torch.autograd.grad(term, logits, retain_graph=True, allow_unused=True)
        out[f'grad_{name}'] = 0.0 if g is None else g.norm().item()
    if 'grad_ce' in out and 'grad_penalty' in out:
        out['grad_ratio'] = out['grad_penalty'] / max(out['grad_ce'], 1e-12)
    return out


@torch.no_grad()
def attack_effect(g: nn.Module, x_adv: torch.Tensor, o: torch.Tensor, o_adv: torch.Tensor,
                  y_hat: torch.Tensor) -> dict[str, float]:
    """Diagnostics of one attacked batch (percent, and KL in nats).

    ``Acc@1_sp_adv``: how often the spatial model still agrees with the video model's decision
    ``y_hat`` on the perturbed clips (100 − attack success); ``flip_f``: how often the video
    model's own decision changes; ``kl_f_adv``: ``KL(p_f(x) ‖ p_f(x_adv))``.
    """
    was_training = g.training
    g.eval()
    o_sp_adv, _ = split_output(g(x_adv))
    g.train(was_training)
    kl = F.kl_div(F.log_softmax(o_adv.float(), 1), F.log_softmax(o.float(), 1), reduction='batchmean',
                  log_target=True)
    return {'Acc@1_sp_adv': agreement(o_sp_adv.float(), y_hat),
            'flip_f': (o_adv.argmax(1) != y_hat).float().mean().item() * 100,
            'kl_f_adv': kl.item()}


class FeatureLoss:
    """``criterion_feat``: distil the video model's features into the spatial model's.

    Config: ``{keys: [pool], name: MSELoss, args: {}, weight: 1.0}`` (defaults: ``SP_SCHEMA``).
    """

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.keys = list(cfg['keys'] or [])
        self.weight = float(cfg['weight'])
        self.criterion = build_criterion(cfg)

    def __call__(self, feats_sp: Mapping[str, torch.Tensor], feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for k in self.keys:
            a, b = _pooled(feats_sp[k], frames=True), _pooled(feats[k], frames=False)
            total = total + self.criterion(a.float(), b.detach().float())
        return self.weight * total


def drl_param_groups(train_cfg: Mapping[str, Any], f: Optional[nn.Module] = None,
                     g: Optional[nn.Module] = None) -> list[dict[str, Any]]:
    """Parameter groups of a DRL run: ``g`` (``model_sp``) first, then ``f`` (``model``), each with
    its block's ``args``; either model may be ``None`` (not trained).

    Raises:
        UserError: a trained model without its ``optimizer.<key>`` block, or nothing to train.
    """
    groups = []
    for module, key in ((g, 'model_sp'), (f, 'model')):
        if module is None:
            continue
        if key not in train_cfg:
            raise UserError(f'DRL config: optimizer.{key}.args is needed to train that model')
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            groups.append({'params': params, 'name': key, **(train_cfg[key]['args'] or {})})
    if not groups:
        raise UserError('DRL config: nothing to train (no trainable model)')
    return groups


class _DRLStep(Step):
    """Shared parts: evaluation records, the dynamic score and its report files.

    Args:
        modules: checkpoint key -> module (``state_dict``: ``f``, ``state_dict_sp``: ``g``).
        ctx: the run context (rank, output folder, TensorBoard) for pictures made while training.
        classes: class names (index = label) for per-class results.
    """

    def __init__(self, modules: Mapping[str, nn.Module], ctx: Optional[RunContext] = None,
                 classes: Optional[Sequence[str]] = None) -> None:
        super().__init__(modules)
        self.ctx, self.classes = ctx, classes

    def param_groups(self, train_cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One group per trained model: ``g`` with ``optimizer.model_sp.args``, ``f`` with
        ``optimizer.model.args`` (the DRL config's ``optimizer`` block)."""
        trained = self.trained_models()
        return drl_param_groups(train_cfg, f=trained.get('state_dict'), g=trained.get('state_dict_sp'))

    def summarize(self, records: Records, tag: str) -> dict[str, Any]:
        """Dynamic score, agreement, ... of the split; on ``test_final`` also per class."""
        if 'logits_sp' not in records or len(records['labels']) == 0:
            return {}
        logits, logits_sp, labels = records['logits'], records['logits_sp'], records['labels']
        out = dynamic_scores(logits, logits_sp, labels)
        if tag == 'test_final':
            n_class = logits.shape[1]
            rows = per_class_scores(logits, logits_sp, labels, n_class)
            out['n_videos'] = int(labels.numel())
            out['per_class_dynamic_score'] = {
                (self.classes[r['class']] if self.classes else str(r['class'])): r['dynamic_score']
                for r in rows if r['n'] > 0}
        return out

    def report(self, records: Records, tag: str, summary: Mapping[str, Any], out_dir: str) -> list[str]:
        """On ``test_final``: ``dynamic_score_per_class.csv`` and ``.png`` in ``out_dir``."""
        if tag != 'test_final' or 'logits_sp' not in records or len(records['labels']) == 0:
            return []
        logits = records['logits']
        rows = per_class_scores(logits, records['logits_sp'], records['labels'], logits.shape[1])
        csv_path = os.path.join(out_dir, 'dynamic_score_per_class.csv')
        png_path = os.path.join(out_dir, 'dynamic_score_per_class.png')
        report.write_class_csv(rows, self.classes, csv_path)
        report.plot_class_scores(rows, self.classes, png_path, overall=summary['dynamic_score'])
        return [csv_path, png_path]

    def _eval_output(self, logits: torch.Tensor, logits_sp: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        acc1, acc5 = accuracy(logits.float(), labels)
        metrics = {'loss': F.cross_entropy(logits.float(), labels).item(), 'Acc@1': acc1, 'Acc@5': acc5,
                   'Acc@1_sp': accuracy(logits_sp.float(), labels, topk=(1,))[0],
                   'agreement': agreement(logits_sp.float(), logits.argmax(1)) / 100}
        return StepOutput(n=labels.shape[0], metrics=metrics,
                          records={'logits': logits.detach(), 'logits_sp': logits_sp.detach(),
                                   'labels': labels})


class DRLAugStep(_DRLStep):
    """DRL by adversarial augmentation, or dynamic scoring when ``attack`` is ``None``.

    Args:
        f: video model; g: spatial model (either may be DDP-wrapped).
        criterion_sp: ``KD(o_sp, o)`` loss (batch mean).
        attack: a :mod:`drl.attacks` object, or ``None`` (scoring: ``f`` in eval mode, untrained).
        freeze_bn: keep ``f``'s BatchNorm layers in eval mode.
        freeze_sp: ``g`` is fixed (eval mode, no gradients).
        feat_loss: optional :class:`FeatureLoss`.
        visualize: ``{'n_clips', 'every'}`` for the adversarial-example pictures (rank 0).
        norm: ``(mean, std)`` of the input normalisation (for pictures).
    """

    def __init__(self, f: nn.Module, g: nn.Module, criterion_sp: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 attack: Optional[_Attack] = None, freeze_bn: bool = False, freeze_sp: bool = False,
                 feat_loss: Optional[FeatureLoss] = None, ctx: Optional[RunContext] = None,
                 classes: Optional[Sequence[str]] = None, visualize: Optional[Mapping[str, int]] = None,
                 norm: Optional[tuple[Sequence[float], Sequence[float]]] = None) -> None:
        super().__init__({'state_dict': f, 'state_dict_sp': g}, ctx, classes)
        self.f, self.g, self.criterion_sp, self.attack = f, g, criterion_sp, attack
        self.scoring = attack is None
        self.freeze_bn, self.freeze_sp, self.feat_loss = freeze_bn, freeze_sp, feat_loss
        self.visualize = dict({'n_clips': 4, 'every': 1}, **(visualize or {}))
        self.norm = norm or ([0.0] * 3, [1.0] * 3)
        self.epoch, self._vis_due = 0, False

    def trained_models(self) -> dict[str, nn.Module]:
        """``f`` unless scoring, ``g`` unless ``freeze_sp``."""
        trained = {'state_dict': None if self.scoring else self.f,
                   'state_dict_sp': None if self.freeze_sp else self.g}
        return {k: m for k, m in trained.items() if m is not None}

    def test_with_best(self) -> bool:
        # scoring wants the converged spatial model (last epoch); f never changes there
        return not self.scoring

    def train(self, mode: bool = True) -> None:
        self.f.train(mode and not self.scoring)
        if mode and self.freeze_bn:
            set_bn_eval(self.f)
        self.g.train(mode and not self.freeze_sp)

    def set_epoch(self, epoch: int) -> None:
        # from the engine, so that a resumed run names its pictures by the true epoch
        self.epoch = epoch + 1
        self._vis_due = self.visualize['every'] > 0 and epoch % self.visualize['every'] == 0

    def train_step(self, batch: Batch) -> StepOutput:
        x, y = batch['video'], batch['label']
        with torch.set_grad_enabled(not self.scoring):
            o, feats = split_output(self.f(x))
        with torch.set_grad_enabled(not self.freeze_sp):
            o_sp, feats_sp = split_output(self.g(x))
        loss_sp = self.criterion_sp(o_sp.float(), o.detach().float())
        loss_clean = F.cross_entropy(o.float(), y)
        metrics = {'loss_sp': loss_sp.item(), 'Acc@1': accuracy(o.detach().float(), y, topk=(1,))[0],
                   'Acc@1_sp': agreement(o_sp.detach().float(), o.detach().argmax(1))}
        loss_cls = loss_clean
        if self.attack is not None:
            y_hat = o.detach().argmax(1)
            x_adv = self.attack(unwrap(self.g), x, y_hat)  # unwrapped: no DDP hooks for input grads
            o_adv, _ = split_output(self.f(x_adv))
            loss_adv = F.cross_entropy(o_adv.float(), y)
            loss_cls = (loss_clean + loss_adv) / 2
            metrics.update(loss_clean=loss_clean.item(), loss_adv=loss_adv.item(),
                           **{'Acc@1_adv': accuracy(o_adv.detach().float(), y, topk=(1,))[0]},
                           **attack_effect(unwrap(self.g), x_adv, o.detach(), o_adv.detach(), y_hat))
            self._maybe_visualize(x, x_adv)
        loss = loss_cls + loss_sp
        if self.feat_loss is not None:
            loss_feat = self.feat_loss(feats_sp, feats)
            loss = loss + loss_feat
            metrics['loss_feat'] = float(loss_feat)
        metrics['loss'] = loss.item()
        return StepOutput(loss=loss, n=y.shape[0], metrics=metrics)

    @torch.no_grad()
    def eval_step(self, batch: Batch) -> StepOutput:
        x, y = batch['video'], batch['label']
        o, _ = split_output(self.f(x))
        o_sp, _ = split_output(self.g(x))
        out = self._eval_output(o, o_sp, y)
        out.metrics['loss_sp'] = self.criterion_sp(o_sp.float(), o.float()).item()
        return out

    def _maybe_visualize(self, x, x_adv):
        """First training batch of every ``visualize.every``-th epoch, rank 0 only."""
        if not self._vis_due or self.ctx is None or not self.ctx.is_main:
            return
        self._vis_due = False
        mean, std = self.norm
        eps = getattr(self.attack, 'eps', 1.0)
        grid = report.adversarial_grid(x, x_adv, mean, std, eps, n_clips=self.visualize['n_clips'])
        path = os.path.join(self.ctx.out_dir, 'adversarial', f'epoch_{self.epoch:03d}.png')
        report.save_image(grid, path, title=f'clean | perturbed | perturbation (x{0.5 / max(eps, 1e-12):.0f}), '
                                            f'epoch {self.epoch}')
        if self.ctx.writer is not None:
            self.ctx.writer.add_image('adversarial_examples', grid, self.epoch)
        log.info('adversarial examples: %s', path)


class DRLDirStep(_DRLStep):
    """DRL by direct optimisation: ``L = CE(o, y) − λ·w·KD(o_s, o) [− CE(o_s, y)]``.

    Args:
        f: video model; g: spatial model behind gradient reversal, or ``None`` to use static
            clips through ``f`` (``shuffle``: random frame order, else first frame repeated).
        criterion_sp: per-sample (``reduction='none'``) ``KD(o_s, o)``; its gradient reaches ``o``.
        lam: λ (``criterion.lambda``); scale: weight each sample's penalty by
            ``1 − exp(−max(0, CE_s − CE))`` (detached).
        seed: seeds the frame orders used on evaluation (reproducible shuffled clips).
    """

    def __init__(self, f: nn.Module, g: Optional[nn.Module],
                 criterion_sp: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], lam: float = 0.5,
                 scale: bool = False, shuffle: bool = False, freeze_bn: bool = False,
                 ctx: Optional[RunContext] = None, classes: Optional[Sequence[str]] = None, seed: int = 0) -> None:
        super().__init__({'state_dict': f, **({'state_dict_sp': g} if g is not None else {})}, ctx, classes)
        self.f, self.g, self.criterion_sp = f, g, criterion_sp
        self.lam, self.scale, self.shuffle, self.freeze_bn, self.seed = lam, scale, shuffle, freeze_bn, seed

    def train(self, mode: bool = True) -> None:
        self.f.train(mode)
        if mode and self.freeze_bn:
            set_bn_eval(self.f)
        if self.g is not None:
            self.g.train(mode)

    def static_logits(self, x: torch.Tensor, training: bool,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The static model's logits ``B × n``: ``g(x)`` (reversed gradient while training) or
        ``f`` on frozen / shuffled clips (no gradient)."""
        if self.g is not None:
            o_s, _ = split_output(self.g(x))
            return grad_reverse(o_s) if training else o_s
        x_s = shuffle_frames(x, generator) if self.shuffle else freeze_frames(x)
        with torch.no_grad():
            return split_output(self.f(x_s))[0].detach()

    def train_step(self, batch: Batch) -> StepOutput:
        x, y = batch['video'], batch['label']
        o, _ = split_output(self.f(x))
        o_s = self.static_logits(x, training=True)
        o32, os32 = o.float(), o_s.float()
        kd = self.criterion_sp(os32, o32)  # B: KL(p(x) ‖ p(x_s)), gradient reaches o
        ce = F.cross_entropy(o32, y, reduction='none')
        ce_s = F.cross_entropy(os32, y, reduction='none')
        w = (1 - torch.exp(-(ce_s - ce).clamp(min=0))).detach() if self.scale else torch.ones_like(kd)
        penalty = (w * kd).mean()
        loss = ce.mean() - self.lam * penalty
        grads = logit_grad_norms(o32, ce=ce.mean(), penalty=self.lam * penalty)
        if self.g is not None:
            loss = loss - ce_s.mean()  # reversed for g: it learns to classify
        metrics = {'loss': loss.item(), 'loss_cls': ce.mean().item(), 'loss_sp': kd.mean().item(),
                   'loss_cls_s': ce_s.mean().item(), 'penalty_weight': w.mean().item(),
                   'Acc@1': accuracy(o32.detach(), y, topk=(1,))[0],
                   'Acc@1_s': accuracy(os32.detach(), y, topk=(1,))[0],
                   'Acc@1_sp': agreement(os32.detach(), o32.detach().argmax(1)), **grads}
        return StepOutput(loss=loss, n=y.shape[0], metrics=metrics)

    @torch.no_grad()
    def eval_step(self, batch: Batch) -> StepOutput:
        x, y = batch['video'], batch['label']
        gen = None
        if self.shuffle and self.g is None:
            # frame orders depend on the seed and the videos, not on batch composition order
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(batch['index'][0]))
        o, _ = split_output(self.f(x))
        o_s = self.static_logits(x, training=False, generator=gen)
        out = self._eval_output(o, o_s, y)
        out.metrics['loss_sp'] = self.criterion_sp(o_s.float(), o.float()).mean().item()
        return out
