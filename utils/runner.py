"""Run set-up shared by the entry scripts: errors, output folder, logging, device, seeds, loaders."""
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from core.errors import UserError

from . import dist as dist_utils
from .config import ConfigError, save_config
from .logging_utils import setup_logging

log = logging.getLogger('drl')


@dataclass
class RunContext:
    """Everything the engine needs besides the step: where, on what, and how to report."""
    out_dir: str
    device: torch.device
    dist: dist_utils.DistInfo
    seed: int = 0
    amp: str = 'off'
    print_freq: int = 20
    debug: bool = False
    max_bad_fraction: float = 0.01
    writer: Optional[Any] = None
    extra: dict = field(default_factory=dict)

    @property
    def is_main(self):
        return self.dist.is_main


def run_entry(main, args):
    """Run ``main(args)``; user errors become one line on stderr and exit status 2."""
    try:
        return main(args)
    except (UserError, FileNotFoundError) as e:
        print(f'error: {str(e).strip() or type(e).__name__}', file=sys.stderr)
        sys.exit(2)
    finally:
        dist_utils.cleanup()


def config_run_name(cfg_path):
    """``configs/k400/res3d18.yaml`` -> ``k400/res3d18`` (path without first component, no .yaml)."""
    parts = os.path.normpath(cfg_path).split(os.sep)
    rel = os.path.join(*parts[1:]) if len(parts) > 1 else parts[0]
    return os.path.splitext(rel)[0]


def default_output_dir(cfg_path, pretrain=None, debug=False):
    """The authors' checkpoint-dir rule (SEMANTICS §1)."""
    name = config_run_name(cfg_path)
    out = os.path.join(os.path.dirname(pretrain), name) if pretrain else os.path.join('checkpoints', name)
    return out + '_debug' if debug else out


def resolve_device(kind, gpu=None, local_rank=0):
    """``auto`` -> CUDA when available else CPU; ``cuda`` without a GPU is a user error."""
    if kind == 'auto':
        kind = 'cuda' if torch.cuda.is_available() else 'cpu'
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


def setup_run(args, cfg, out_dir, cfg_sp=None):
    """Distributed init -> device -> output folder -> logging -> seeds -> saved configs.

    Returns:
        :class:`RunContext`.
    """
    kind = args.device
    if kind == 'auto':
        kind = 'cuda' if torch.cuda.is_available() else 'cpu'
    dinfo = dist_utils.init_distributed(kind, args.dist_url, args.dist_backend)
    device = resolve_device(args.device, args.gpu, dinfo.local_rank)
    if args.amp != 'off' and device.type == 'cpu':
        log.warning('--amp %s on CPU: correct but usually slower than fp32', args.amp)
    if dinfo.is_main:
        os.makedirs(out_dir, exist_ok=True)
    dist_utils.barrier()
    setup_logging(out_dir, dinfo.rank)
    seed = args.seed if args.seed is not None else cfg.get('seed', 0)
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
    max_bad = cfg.get('dataset', {}).get('max_bad_fraction', 0.01)
    return RunContext(out_dir=out_dir, device=device, dist=dinfo, seed=seed, amp=args.amp,
                      print_freq=args.print_freq, debug=args.debug, max_bad_fraction=max_bad,
                      writer=writer)


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
