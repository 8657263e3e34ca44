"""Run set-up shared by the entry scripts: errors, output folder, logging, device, seeds, loaders."""
import argparse
import contextlib
import copy
import errno
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Optional

import torch

from core.config import ConfigError, save_config
from core.errors import RunFinished, UserError

from . import dist as dist_utils
from .argcheck import check_model_args, check_training_args
from .logging_utils import setup_logging
from .resume_check import check_run_folder, run_identity
from .runlock import lock_folder, release_all, remove_stale_temporaries

log = logging.getLogger('drl')


@dataclass
class RunContext:
    """Everything the engine needs besides the step: where, on what, how to report, and what
    every checkpoint records about the run.

    ``config`` / ``config_sp`` (the resolved configs as they were at set-up, ``config_sp`` only
    for the DRL scripts), ``script`` (the entry script's file name), ``seed`` and ``debug`` are
    saved in each checkpoint by :meth:`engine.engine.Engine.save`; ``resume_changed`` says the
    run-folder check accepted changed settings (``--resume-changed``), which
    :meth:`engine.engine.Engine.resume` then applies.
    """
    out_dir: str
    device: torch.device
    dist: dist_utils.DistInfo
    seed: int = 0
    amp: str = 'off'
    print_freq: int = 20
    debug: bool = False
    max_bad_fraction: float = 0.01
    writer: Optional[Any] = None
    config: Optional[dict[str, Any]] = None
    config_sp: Optional[dict[str, Any]] = None
    script: Optional[str] = None
    resume_changed: bool = False
    # where the run is, for the Ctrl-C line: (``'train E/N'`` or the split's tag, batch from
    # 1), set by the engine as it goes; None before the first batch
    position: Optional[tuple[str, int]] = None

    @property
    def is_main(self) -> bool:
        return self.dist.is_main


# errors of the environment the user controls (the output folder's disk and permissions)
_USER_ERRNOS = {errno.ENOSPC: 'no space left on device', errno.EDQUOT: 'disk quota exceeded',
                errno.EACCES: 'permission denied', errno.EPERM: 'permission denied',
                errno.EROFS: 'read-only file system'}


_runs = []  # the RunContext of this process's run, once set up (for the Ctrl-C line)
_notes = []  # log lines decided before logging is set up (the default run folder's name)


def cpu_bf16_guard() -> None:
    """Turn oneDNN off for a CPU training run under ``--amp bf16``.

    In torch 2.14.1 oneDNN's bf16 ``Conv3d`` weight gradients are wrong when a feature map has
    few frames for the temporal kernel: NaN or ~100 % off in the second stage of SceneMotion's
    R3D-18 on 8-frame clips, and a heap corruption that aborts the process ("double free or
    corruption") for a 7-frame stem on 4-frame clips; forward outputs and input gradients are
    right, fp32 and fp16 are right (docs/bad-input.md; tests/test_runner_amp.py). PyTorch's own
    kernels give the right gradients, at a fraction of the speed, so the warning says to train
    in fp32 on CPUs."""
    if torch.backends.mkldnn.enabled:
        torch.backends.mkldnn.enabled = False
        log.warning('--amp bf16 on CPU: oneDNN turned off (its bf16 Conv3d weight gradients are wrong on '
                    'short clips in torch %s); correct but far slower than fp32: use --amp off on CPUs',
                    torch.__version__.split('+')[0])


def onednn_unsafe(device: torch.device, amp: str) -> bool:
    """Whether a training step on ``device`` under ``amp`` must avoid oneDNN (:func:`cpu_bf16_guard`)."""
    return device.type == 'cpu' and amp == 'bf16'


@contextlib.contextmanager
def engine_kernels(device: torch.device, amp: str):
    """The kernels a training run would use, for one block only: oneDNN off where
    :func:`onednn_unsafe` says so (benchmarks timing such a step beside an fp32 one in the same
    process, and tests), restored afterwards."""
    if not onednn_unsafe(device, amp):
        yield
        return
    was = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = was


def run_entry(main, args):
    """Run ``main(args)``; the user's mistakes become one line on stderr and exit status 2.

    User errors are :class:`UserError` (config, data, run folder, divergence, write failures
    mapped by ``engine.checkpoint``), missing files, and ``OSError`` of the disk or permissions
    (full, read-only, not writable). Any other exception is a bug and keeps its traceback.
    A finished run (:class:`RunFinished`) is one line and exit status 0. Ctrl-C is one line
    saying where the run stopped and what resumes it, exit status 130.
    """
    try:
        return main(args)
    except KeyboardInterrupt:
        sys.stdout.flush()
        print(interrupted_line(_runs[-1] if _runs else None), file=sys.stderr)
        sys.exit(130)
    except RunFinished as e:
        print(f'note: {e}', file=sys.stderr)
        sys.exit(0)
    except (UserError, FileNotFoundError) as e:
        _fail(str(e).strip() or type(e).__name__)
    except OSError as e:
        if e.errno not in _USER_ERRNOS:
            raise
        _fail(os_error_line(e))
    finally:
        release_all()
        dist_utils.cleanup()


def interrupted_line(ctx):
    """The one line of a run stopped by Ctrl-C: where, the last checkpoint, how to go on."""
    if ctx is None:
        return 'interrupted before the run started; nothing was written; the same command starts it'
    where = 'before the first batch'
    if ctx.position is not None:
        desc, batch = ctx.position
        if desc.startswith('train '):  # 'train 3/10'
            where = f'at epoch {desc.split()[1].split("/")[0]}, batch {batch}'
        else:
            where = f'in {desc}, batch {batch}'
    path = os.path.join(ctx.out_dir, 'checkpoint.pth.tar')
    saved = None
    if os.path.isfile(path):
        try:
            from .checkpoint import load_checkpoint
            saved = load_checkpoint(path, mmap=True).get('epoch')
        except (UserError, OSError):
            saved = '?'
    last = f'the last checkpoint is {path} (epoch {saved})' if saved is not None else 'no checkpoint yet'
    return f'interrupted {where}; {last}; the same command resumes'


def os_error_line(e):
    """One line for an ``OSError`` of the disk or permissions, naming the file."""
    reason = _USER_ERRNOS[e.errno]
    if e.filename is None:
        return reason
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f'{reason} while writing {e.filename}'
    return f'cannot access {e.filename}: {reason}'


def _fail(message):
    sys.stdout.flush()
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')


def _outside_rule(cfg_path):
    norm = os.path.normpath(cfg_path)
    return os.path.isabs(norm) or norm.split(os.sep)[0] == os.pardir


def _in_repo_configs(cfg_path):
    return os.path.realpath(cfg_path).startswith(os.path.realpath(REPO_CONFIGS) + os.sep)


def config_run_name(cfg_path):
    """``configs/k400/res3d18.yaml`` -> ``k400/res3d18`` (path without first component, no .yaml).

    An absolute path (or one climbing out with ``..``) is taken relative to the repository's
    ``configs/`` when the file is inside it (``/home/me/repo/configs/k400/res3d18.yaml`` ->
    ``k400/res3d18``, as the relative path gives); elsewhere the file's name alone names the
    run (``/data/exp/my.yaml`` -> ``my``), not every folder of its path.
    """
    if not _outside_rule(cfg_path):
        parts = os.path.normpath(cfg_path).split(os.sep)
        rel = os.path.join(*parts[1:]) if len(parts) > 1 else parts[0]
        return os.path.splitext(rel)[0]
    full = os.path.realpath(cfg_path)
    if _in_repo_configs(cfg_path):
        return os.path.splitext(os.path.relpath(full, os.path.realpath(REPO_CONFIGS)))[0]
    return os.path.splitext(os.path.basename(full))[0]


def default_output_dir(cfg_path, pretrain=None, debug=False):
    """The authors' checkpoint-dir rule (README "Where results go"), with :func:`config_run_name`; the run's
    log says how a config given by an absolute path named it."""
    name = config_run_name(cfg_path)
    out = os.path.join(os.path.dirname(pretrain), name) if pretrain else os.path.join('checkpoints', name)
    out = out + '_debug' if debug else out
    if _outside_rule(cfg_path):
        rule = ("its path relative to the repository's configs/" if _in_repo_configs(cfg_path)
                else "the config file's name (the file is outside the repository's configs/)")
        _notes.append(f'default run folder {out}: named after {rule}; --output-dir chooses another')
    return out


def device_type(kind):
    """``--device`` value -> ``'cuda'`` or ``'cpu'`` (``auto``: CUDA when available)."""
    if kind == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    return kind


def resolve_device(kind, gpu=None, local_rank=0):
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU is a user error."""
    kind = device_type(kind)
    if kind == 'cuda':
        if not torch.cuda.is_available():
            raise UserError('--device cuda: no CUDA device is available (use --device cpu or auto)')
        index = local_rank if int(os.environ.get('WORLD_SIZE', '1')) > 1 else (gpu or 0)
        return torch.device('cuda', index)
    return torch.device('cpu')


def git_sha():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=here, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def seed_everything(seed):
    import random

    import numpy as np
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup_run(args: argparse.Namespace, cfg: dict[str, Any], out_dir: str,
              cfg_sp: Optional[dict[str, Any]] = None) -> RunContext:
    """Distributed init -> device -> output folder (lock, checks) -> logging -> seeds -> saved configs.

    Before anything is written into ``out_dir``: rank 0 takes the folder's lock
    (:mod:`engine.runlock`) and removes temporary files of killed runs; every rank checks what the
    folder holds against this command (:func:`engine.resume_check.check_run_folder`).

    Returns:
        :class:`RunContext` with ``config`` / ``config_sp`` (copies as resolved now, saved in
        checkpoints), ``script`` and ``resume_changed`` filled in.
    """
    if getattr(args, 'workers', None) is not None and args.workers < 0:
        raise UserError(f'-j/--workers must be >= 0, got {args.workers}')
    check_model_args(cfg, getattr(args, 'config', None), cfg_sp)  # before any data is read
    if not getattr(args, 'evaluate', False):
        check_training_args(cfg, getattr(args, 'config', None), cfg_sp)
    dinfo = dist_utils.init_distributed(device_type(args.device), args.dist_url, args.dist_backend)
    device = resolve_device(args.device, args.gpu, dinfo.local_rank)
    if onednn_unsafe(device, args.amp) and not getattr(args, 'evaluate', False):
        cpu_bf16_guard()
    elif args.amp != 'off' and device.type == 'cpu':
        log.warning('--amp %s on CPU: correct but usually slower than fp32', args.amp)
    lock, removed = _claim_folder(out_dir, dinfo.is_main)
    seed = args.seed if args.seed is not None else cfg['seed']
    script = os.path.basename(sys.argv[0])
    epochs = ((cfg_sp if cfg_sp is not None else cfg).get('optimizer') or {}).get('epochs')
    changed = check_run_folder(out_dir, run_identity(cfg, cfg_sp, script, seed, args.debug), epochs,
                               debug=args.debug, evaluate=args.evaluate, no_resume=args.no_resume,
                               resume_changed=getattr(args, 'resume_changed', False))
    setup_logging(out_dir, dinfo.rank)
    if lock is not None and lock.stale:
        log.warning('took over the lock of a run that is gone (pid %s on %s, started %s)',
                    lock.stale.get('pid'), lock.stale.get('host'), lock.stale.get('started'))
    if removed:
        log.warning('removed temporary files of a killed run: %s', ', '.join(removed))
    for note in _notes:
        log.info('%s', note)
    _notes.clear()
    seed_everything(seed + dinfo.rank)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    writer = None
    if dinfo.is_main:
        save_config(cfg, os.path.join(out_dir, 'config.yaml'))
        if cfg_sp is not None:
            save_config(cfg_sp, os.path.join(out_dir, 'config_sp.yaml'))
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(log_dir=out_dir)
    log.info('command: %s', ' '.join(sys.argv))
    log.info('git %s | device %s | world size %d | output %s', git_sha(), device, dinfo.world_size, out_dir)
    ctx = RunContext(out_dir=out_dir, device=device, dist=dinfo, seed=seed, amp=args.amp,
                     print_freq=args.print_freq, debug=args.debug,
                     max_bad_fraction=cfg['dataset']['max_bad_fraction'], writer=writer,
                     config=copy.deepcopy(cfg), config_sp=copy.deepcopy(cfg_sp),
                     script=script, resume_changed=bool(changed))
    _runs.append(ctx)
    return ctx


def _claim_folder(out_dir, is_main):
    """Rank 0 creates ``out_dir``, locks it and removes killed runs' temporary files; every rank
    gets the outcome, so that a refusal stops all ranks alike (none waits for the others).

    Returns:
        ``(lock or None, removed file names)``.
    """
    lock, removed, problem = None, [], None
    if is_main:
        try:
            problem = _not_a_folder(out_dir)
            if problem is None:
                os.makedirs(out_dir, exist_ok=True)
                lock = lock_folder(out_dir)
                removed = remove_stale_temporaries(out_dir)
        except UserError as e:
            problem = str(e)
        except OSError as e:
            if e.errno not in _USER_ERRNOS:
                raise
            problem = f'cannot create the run folder {out_dir}: {_USER_ERRNOS[e.errno]}'
    problems = [p for p in dist_utils.all_gather_objects(problem) if p]
    if problems:
        raise UserError(problems[0])
    return lock, removed


def _not_a_folder(out_dir):
    """Why ``out_dir`` cannot be the run folder (it, or a folder on its path, is a file), or
    ``None``."""
    path = os.path.abspath(out_dir)
    if os.path.lexists(path) and not os.path.isdir(path):
        return f'the run folder {out_dir} is a file, not a folder; remove it or choose another --output-dir'
    parent = os.path.dirname(path)
    while not os.path.lexists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return (f'the run folder {out_dir} cannot be made: {parent} is a file, not a folder; '
                f'choose another --output-dir')
    return None


def apply_batch_flags(cfg, args):
    """``-b`` and ``--debug`` adjust the global batch size before data is built."""
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise ConfigError(f'-b/--batch-size must be >= 1, got {args.batch_size} '
                              f"(it sets dataset.batch_size of {getattr(args, 'config', 'the config')})")
        cfg['dataset']['batch_size'] = args.batch_size
    if args.debug:
        cfg['dataset']['batch_size'] = min(cfg['dataset'].get('batch_size', 2), 2)
    return cfg


__all__ = ['RunContext', 'run_entry', 'setup_run', 'default_output_dir', 'config_run_name',
           'resolve_device', 'apply_batch_flags', 'ConfigError']
