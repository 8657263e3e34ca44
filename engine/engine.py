"""The one training / evaluation loop. Methods differ only in the *step* handed to it.

The engine owns epochs, batches, the optimiser step (with AMP), meters, progress, TensorBoard,
``metrics.csv``, checkpoints, resume and ``results.json``; a :class:`Step` owns the models and
the per-batch computation. Nothing here branches on a model or method name.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional

import torch

from core.errors import DivergenceError, UserError
from datasets.collate import BadVideoTracker
from datasets.collate import batch_finisher as find_finisher

from . import dist as dist_utils
from .checkpoint import FORMAT_VERSION, load_checkpoint, rng_state, save_checkpoint, save_json, set_rng_state
from .meters import MetricMeter, write_metrics_csv
from .step import Batch, Step

if TYPE_CHECKING:
    from .runner import RunContext

log = logging.getLogger('drl')


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move the batch's tensors to ``device`` (other entries unchanged)."""
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def batch_finisher(loader: Iterable[Batch]) -> Callable[[Batch, torch.device], Batch]:
    """``(batch, device) -> batch`` bringing ``loader``'s batches to the device: the dataset's
    ``finish_batch`` when it leaves work for the device (``dataset.transform.device_augment``:
    uint8 clips flipped, jittered and normalised there), else :func:`to_device`."""
    return find_finisher(loader, to_device)


class Engine:
    """Runs a step over loaders. Create one per run; call :meth:`resume`, :meth:`fit`, :meth:`test`.

    Args:
        step: the method's :class:`~engine.step.Step`.
        optimizer: updates the step's ``trained_models()``; ``None`` to only evaluate.
        scheduler: stepped once per epoch, or ``None``.
        ctx: the run's :class:`engine.runner.RunContext` (device, ranks, output folder, logging, and
            the ``config`` / ``config_sp`` / ``script`` saved in every checkpoint).
        train_cfg: the config's ``optimizer`` block: the training options are read here and
            nowhere else: ``epochs`` (total; absent: 0, evaluation only) and ``clip_grad`` (max
            gradient norm before each optimiser step, ``None``: no clipping). A new training
            option is a key of that block in the schema, read here.
        eval_period: validate every N epochs (and after the last one).

    The step's ``best_metric`` (name, ``'max'`` or ``'min'``) picks ``model_best.pth.tar`` among
    the validated epochs (the training value when there is no validation split).
    """

    def __init__(self, step: Step, optimizer: Optional[torch.optim.Optimizer],
                 scheduler: Optional[torch.optim.lr_scheduler.LRScheduler], ctx: RunContext,
                 train_cfg: Optional[Mapping[str, Any]] = None, eval_period: int = 1) -> None:
        self.step, self.optimizer, self.scheduler, self.ctx = step, optimizer, scheduler, ctx
        train_cfg = train_cfg or {}
        self.epochs = int(train_cfg.get('epochs') or 0)
        self.clip_grad = train_cfg.get('clip_grad')  # max gradient norm, None = no clipping
        if int(eval_period) < 1:
            raise UserError(f'eval_period must be >= 1, got {eval_period}')
        self.eval_period = int(eval_period)  # validate every N epochs and after the last one
        # a step that is not a Step subclass (duck-typed) gets the default: the largest Acc@1
        self.best_key, direction = getattr(step, 'best_metric', Step.best_metric)
        self.sign = {'max': 1.0, 'min': -1.0}[direction]  # best = largest sign * value
        self.start_epoch = 0
        self.best_value = -math.inf  # sign * best value of best_key (checkpoint key: best_acc1)
        self.history = []
        self.scaler = None
        if ctx.amp == 'fp16':
            self.scaler = torch.amp.GradScaler(ctx.device.type)
        self.ckpt_path = os.path.join(ctx.out_dir, 'checkpoint.pth.tar')
        self.best_path = os.path.join(ctx.out_dir, 'model_best.pth.tar')

    # ---------------------------------------------------------------- checkpoints
    def resume(self, enabled: bool = True) -> bool:
        """Continue from ``checkpoint.pth.tar`` in the run folder if it exists (and ``enabled``).

        When the run set-up accepted changed settings (``--resume-changed``, see
        :mod:`engine.resume_check`), the saved optimiser state (momentum, Adam moments) is kept but
        its hyper-parameters (lr, weight decay, ...) are the new config's, and the new schedule is
        fast-forwarded to the saved epoch: from there on the learning rate is the one the new
        config would give at that epoch.
        """
        if not (enabled and os.path.isfile(self.ckpt_path)):
            return False
        ckpt = load_checkpoint(self.ckpt_path)
        changed = bool(self.ctx.resume_changed)
        self.step.load_state_dicts(ckpt)
        if self.optimizer is not None and ckpt.get('optimizer'):
            fresh = [{k: v for k, v in g.items() if k != 'params'} for g in self.optimizer.param_groups]
            self.optimizer.load_state_dict(ckpt['optimizer'])
            if changed:
                for group, hyper in zip(self.optimizer.param_groups, fresh):
                    group.update(hyper)
        self.start_epoch = ckpt.get('epoch', 0)
        if self.scheduler is not None and ckpt.get('scheduler'):
            if changed:
                self._fast_forward_schedule(self.start_epoch)
            else:
                self.scheduler.load_state_dict(ckpt['scheduler'])
        if self.scaler is not None and ckpt.get('scaler'):
            self.scaler.load_state_dict(ckpt['scaler'])
        self.best_value = ckpt.get('best_acc1', -math.inf)
        self.history = list(ckpt.get('history', []))
        if ckpt.get('rng') and self.ctx.dist.world_size == 1:
            set_rng_state(ckpt['rng'])
        log.info('resumed from %s at epoch %d (best %s %.4g)%s', self.ckpt_path, self.start_epoch,
                 self.best_key, self.sign * self.best_value, ' with the changed settings' if changed else '')
        return True

    def _fast_forward_schedule(self, epochs_done: int) -> None:
        """Step the freshly built scheduler ``epochs_done`` times (it is stepped once per epoch)."""
        import warnings
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
            warnings.simplefilter('ignore', UserWarning)
            for _ in range(epochs_done):
                self.scheduler.step()

    def last_good(self) -> str:
        """``'<checkpoint path> (epoch N)'`` of the latest checkpoint, or ``'no checkpoint yet'``."""
        if not os.path.isfile(self.ckpt_path):
            return 'no checkpoint yet'
        try:
            saved = load_checkpoint(self.ckpt_path, mmap=True).get('epoch')
        except UserError:
            return f'{self.ckpt_path} (unreadable)'
        return f'{self.ckpt_path} (epoch {saved})'

    def save(self, epoch: int, is_best: bool) -> None:
        """Rank 0 writes ``checkpoint.pth.tar`` (and ``model_best.pth.tar`` when ``is_best``): the
        step's state dicts, the training state, and ``ctx.config`` / ``config_sp`` / ``script`` /
        ``seed`` / ``debug``, which :mod:`engine.resume_check` compares before a resume."""
        if not self.ctx.is_main:
            return
        state = dict(self.step.state_dicts(), epoch=epoch, best_acc1=self.best_value,
                     history=self.history, rng=rng_state(),
                     optimizer=self.optimizer.state_dict() if self.optimizer else None,
                     scheduler=self.scheduler.state_dict() if self.scheduler else None,
                     scaler=self.scaler.state_dict() if self.scaler else None,
                     config=self.ctx.config, config_sp=self.ctx.config_sp,
                     format_version=FORMAT_VERSION, script=self.ctx.script,
                     seed=self.ctx.seed, debug=bool(self.ctx.debug))
        # written once; model_best is a copy of those bytes, put in place before the checkpoint:
        # once checkpoint.pth.tar says "epoch N", model_best covers epochs <= N
        save_checkpoint(state, self.ckpt_path, copies=[self.best_path] if is_best else [])

    # ---------------------------------------------------------------- loops
    def _autocast(self):
        if self.ctx.amp == 'off':
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.ctx.amp == 'bf16' else torch.float16
        return torch.autocast(self.ctx.device.type, dtype=dtype)

    def _batches(self, loader, desc):
        """Iterate a loader with a progress bar on a terminal (rank 0), else periodic log lines."""
        total = len(loader)
        limit = min(total, 4) if self.ctx.debug else total
        use_bar = self.ctx.is_main and sys.stderr.isatty()
        bar = None
        if use_bar:
            from tqdm import tqdm
            bar = tqdm(total=limit, desc=desc, leave=False, dynamic_ncols=True)
        for i, batch in enumerate(loader):
            if i >= limit:
                break
            self.ctx.position = (desc, i + 1)  # where a Ctrl-C stops the run (engine.runner)
            yield i, limit, batch, bar
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()

    def _log_progress(self, i, limit, desc, meter, bar, t0):
        if bar is not None:
            bar.set_postfix_str(meter.short())
        elif self.ctx.is_main and self.ctx.print_freq and (i + 1) % self.ctx.print_freq == 0:
            log.info('%s [%d/%d] %s (%.2fs/it)', desc, i + 1, limit, meter.short(), (time.time() - t0) / (i + 1))

    def _prepare_epoch(self, loader, epoch):
        # per-epoch seeds make a resumed run identical to an uninterrupted one
        torch.manual_seed(self.ctx.seed + 1000 * epoch + self.ctx.dist.rank)
        for obj in (getattr(loader, 'sampler', None), getattr(loader, 'dataset', None), self.step):
            if obj is not None and hasattr(obj, 'set_epoch'):
                obj.set_epoch(epoch)

    def train_one_epoch(self, loader: Iterable[Batch], epoch: int) -> dict[str, float]:
        """One pass over ``loader`` with optimiser steps. Returns averaged metrics (all ranks)."""
        self._prepare_epoch(loader, epoch)
        self.step.train(True)
        meter, bad, grad_norms = MetricMeter(), BadVideoTracker(), []
        desc, t0 = f'train {epoch + 1}/{self.epochs}', time.time()
        finish = batch_finisher(loader)
        for i, limit, batch, bar in self._batches(loader, desc):
            bad.update(batch.get('skipped', []))
            if len(batch.get('label', [])) == 0:
                continue
            batch = finish(batch, self.ctx.device)
            with self._autocast():
                out = self.step.train_step(batch)
            self.optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(out.loss):
                raise DivergenceError(
                    f'training diverged: loss {out.loss.item()} at epoch {epoch + 1}, batch {i + 1}; last good '
                    f'checkpoint: {self.last_good()}; lower the learning rate, or use --amp off')
            if self.scaler is not None:
                self.scaler.scale(out.loss).backward()
                self._clip_gradients(grad_norms)
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                out.loss.backward()
                self._clip_gradients(grad_norms)
                self.optimizer.step()
            meter.update(out.metrics, out.n)
            self._log_progress(i, limit, desc, meter, bar, t0)
        stats = meter.reduce(self.ctx.device)
        stats['lr'] = self.optimizer.param_groups[0]['lr']
        if grad_norms:  # the same on every rank: gradients are all-reduced before clipping
            stats['grad_norm'] = sum(grad_norms) / len(grad_norms)
        stats['skipped'] = self._check_bad(bad, meter.count, 'train')
        stats['time'] = time.time() - t0
        return stats

    def _clip_gradients(self, grad_norms):
        """``optimizer.clip_grad``: scale the gradients of the optimiser's parameters to a total
        L2 norm of at most ``clip_grad`` (fp16 AMP: unscaled first) and append the norm before
        clipping to ``grad_norms`` (the epoch's ``grad_norm`` is their mean). No-op when off."""
        if self.clip_grad is None:
            return
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # GradScaler.step then skips its own unscale
        params = [p for g in self.optimizer.param_groups for p in g['params']]
        norm = torch.nn.utils.clip_grad_norm_(params, self.clip_grad).item()
        if math.isfinite(norm):  # fp16 overflow: the scaler skips this step, nothing to report
            grad_norms.append(norm)

    @torch.no_grad()
    def evaluate(self, loader: Iterable[Batch], tag: str = 'val', epoch: Optional[int] = None) -> dict[str, Any]:
        """Evaluate ``step`` on ``loader`` (sharded over ranks, exact reduction).

        Every rank gets the step's :meth:`~engine.step.Step.summarize` of the whole split; rank 0
        then has the step write its report files (:meth:`~engine.step.Step.report`).

        Returns:
            dict of averaged metrics plus the step's split-level ``summarize`` results.
        """
        if epoch is not None:
            self._prepare_epoch(loader, epoch)
        self.step.train(False)
        meter, bad, records = MetricMeter(), BadVideoTracker(), {}
        t0 = time.time()
        finish = batch_finisher(loader)
        for i, limit, batch, bar in self._batches(loader, tag):
            bad.update(batch.get('skipped', []))
            if len(batch.get('label', [])) == 0:
                continue
            batch = finish(batch, self.ctx.device)
            with self._autocast():
                out = self.step.eval_step(batch)
            meter.update(out.metrics, out.n)
            for k, v in out.records.items():
                records.setdefault(k, []).append(v.detach().float().cpu() if v.is_floating_point() else v.detach().cpu())
            self._log_progress(i, limit, tag, meter, bar, t0)
        stats = meter.reduce(self.ctx.device)
        local = {k: torch.cat(v) for k, v in records.items()}
        gathered = dist_utils.all_gather_objects(local)
        merged = {k: torch.cat([g[k] for g in gathered if k in g]) for k in local}
        summary = self.step.summarize(merged, tag)
        stats.update(summary)
        if self.ctx.is_main:  # report files (per-class tables, charts) come from rank 0 only
            for path in self.step.report(merged, tag, summary, self.ctx.out_dir):
                log.debug('%s: wrote %s', tag, path)
        stats['skipped'] = self._check_bad(bad, meter.count, tag)
        stats['time'] = time.time() - t0
        return stats

    def _check_bad(self, tracker, n_good, tag):
        """Gather skipped videos over ranks, report them, stop above ``max_bad_fraction``."""
        files = [f for part in dist_utils.all_gather_objects(tracker.files) for f in part]
        n_seen = int(dist_utils.all_reduce_sums([n_good], self.ctx.device)[0]) + len(files)
        if files:
            tracker.files = files
            log.warning('%s: skipped %d undecodable video(s) of %d: %s', tag, len(files), n_seen,
                        '; '.join(files[:5]) + (' ...' if len(files) > 5 else ''))
            try:
                tracker.check(n_seen, self.ctx.max_bad_fraction)
            except RuntimeError as e:  # the policy's stop is a user-facing error, not a crash
                listed = os.path.join(self.ctx.out_dir, f"bad_videos_{tag.replace('/', '_')}.txt")
                if self.ctx.is_main:
                    with open(listed, 'w') as f:
                        f.write(''.join(p + '\n' for p in files))
                raise UserError(f'{e} (all {len(files)} listed in {listed})') from None
        return len(files)

    # ---------------------------------------------------------------- orchestration
    def fit(self, train_loader: Iterable[Batch], val_loader: Optional[Iterable[Batch]] = None) -> None:
        """Train ``epochs`` epochs from ``start_epoch``, checkpointing each one and validating every
        ``eval_period``-th and the last; the best checkpoint is chosen among validated epochs."""
        for epoch in range(self.start_epoch, self.epochs):
            train = self.train_one_epoch(train_loader, epoch)
            due = (epoch + 1) % self.eval_period == 0 or epoch + 1 == self.epochs
            val = self.evaluate(val_loader, 'val', epoch) if val_loader is not None and due else {}
            if self.scheduler is not None:
                self.scheduler.step()
            is_best = False
            if val or val_loader is None:
                value = self.sign * val.get(self.best_key, train.get(self.best_key, 0.0))
                is_best = value > self.best_value
                self.best_value = max(value, self.best_value)
            row = {'epoch': epoch + 1, **{f'train_{k}': v for k, v in train.items()},
                   **{f'val_{k}': v for k, v in val.items() if not isinstance(v, (list, dict))}}
            self.history.append(row)
            self._report_epoch(row)
            self.save(epoch + 1, is_best)
        dist_utils.barrier()

    def _report_epoch(self, row):
        log.info('epoch %d | %s', row['epoch'], ' '.join(
            f'{k} {v:.4g}' for k, v in row.items() if k != 'epoch' and isinstance(v, (int, float))))
        if not self.ctx.is_main:
            return
        write_metrics_csv(self.history, os.path.join(self.ctx.out_dir, 'metrics.csv'))
        if self.ctx.writer is not None:
            for k, v in row.items():
                if k != 'epoch' and isinstance(v, (int, float)):
                    split, _, name = k.partition('_')
                    self.ctx.writer.add_scalar(f'{name}/{split}', v, row['epoch'])
            self.ctx.writer.flush()

    def test(self, loader: Iterable[Batch], use_best: bool = True,
             extra: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """Final multi-clip test (best weights when they exist); writes ``results.json`` last."""
        if use_best and os.path.isfile(self.best_path):
            self.step.load_state_dicts(load_checkpoint(self.best_path))
            log.info('final test with the best weights (%s)', self.best_path)
        stats = self.evaluate(loader, 'test_final')
        # wall-clock time stays in the log: results.json must be reproducible run to run
        results = {k: v for k, v in stats.items() if k != 'time'}
        results.update(extra or {})
        if self.best_value > -math.inf:
            results[f'best_val_{self.best_key}'] = self.sign * self.best_value
        log.info('final test | %s', ' '.join(f'{k} {v:.4g}' for k, v in results.items() if isinstance(v, float)))
        if self.ctx.is_main:
            if self.ctx.writer is not None:
                for k, v in results.items():
                    if isinstance(v, (int, float)):
                        self.ctx.writer.add_scalar(f'{k}/test_final', v, self.epochs)
                self.ctx.writer.flush()
            save_json(results, os.path.join(self.ctx.out_dir, 'results.json'))
        dist_utils.barrier()
        return results


__all__ = ['Engine', 'batch_finisher', 'to_device']
