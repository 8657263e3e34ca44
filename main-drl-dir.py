"""DRL by direct optimisation: penalise the video model for agreeing with a static model.

    python main-drl-dir.py configs/k400/res3d18.yaml configs/drl/kd0.5-freeze.yaml
    python main-drl-dir.py configs/k400/res3d18.yaml configs/drl/kd0.5-shuffle.yaml
    python main-drl-dir.py configs/scenemotion/res3d18.yaml configs/drl/kd0.5-freeze.yaml \
        sp.optimizer.epochs=1 --pretrain runs/base/checkpoint.pth.tar --output-dir runs/dir

The static input is the clip frozen (first frame repeated) or shuffled, or a spatial model
(``model:`` in the DRL config) behind gradient reversal. See docs/drl.md.
"""
import logging

from core.errors import UserError
from drl.build import build_spatial_model, load_video_model, run_drl
from drl.steps import DRLDirStep
from engine.args import base_parser
from engine.build import prepare_model
from engine.optim import build_criterion
from engine.runner import run_entry

log = logging.getLogger('drl')


def get_args_parser():
    return base_parser('DRL by direct optimisation of a video model.', two_configs=True)


def build_step(cfg, cfg_sp, ctx, args, classes):
    from models import build_model
    f = build_model(cfg['model'])
    load_video_model(f, args, need_head=False)
    f = prepare_model(f, cfg['model'], ctx, args)
    g = build_spatial_model(cfg, cfg_sp, ctx, args)
    if g is not None and cfg_sp['freeze_sp']:
        raise UserError('main-drl-dir.py trains its spatial model through gradient reversal: '
                        'freeze_sp is not supported here')
    crit = cfg_sp['criterion']
    # per-sample values: the penalty may be weighted per sample (criterion.scale)
    criterion = build_criterion(crit, reduction='none')
    static = 'spatial model (gradient reversal)' if g is not None else \
        ('shuffled clips' if cfg_sp['shuffle'] else 'frozen clips')
    log.info('static input: %s; lambda %s; scale %s', static, crit['lambda'], crit['scale'])
    return DRLDirStep(f, g, criterion, lam=float(crit['lambda']),
                      scale=crit['scale'], shuffle=cfg_sp['shuffle'],
                      freeze_bn=cfg['model']['freeze_bn'], ctx=ctx, classes=classes,
                      seed=ctx.seed)


def main(args):
    run_drl(args, build_step)


if __name__ == '__main__':
    run_entry(main, get_args_parser().parse_intermixed_args())
