"""DRL by adversarial augmentation, or dynamic scoring (no ``adversary`` in the DRL config).

    python main-drl.py configs/k400/res3d18.yaml configs/drl/fgsm-e3-i5.yaml
    python main-drl.py configs/k400/res3d18.yaml configs/scoring/res2d18.yaml
    python main-drl.py configs/scenemotion/res3d18.yaml configs/drl/fgsm-e3-i5-scratch.yaml \
        sp.optimizer.epochs=1 --pretrain runs/base/checkpoint.pth.tar --output-dir runs/fgsm

The video model comes from checkpoints/<CFG>/checkpoint.pth.tar (or --pretrain / --ckp, or
--scratch); epochs, optimiser and schedule come from the DRL config. See docs/drl.md.
"""
import logging

from drl.attacks import build_attack
from drl.build import (build_data, build_drl_optimizer, build_spatial_model, drl_output_dir,
                       load_video_model, normalisation)
from drl.losses import build_criterion
from drl.steps import DRLAugStep, FeatureLoss
from utils.args import base_parser
from utils.build import prepare_model
from utils.config import load_config, load_sp_config
from utils.engine import Engine
from utils.errors import UserError
from utils.runner import apply_batch_flags, run_entry, setup_run

log = logging.getLogger('drl')


def get_args_parser():
    return base_parser('DRL by adversarial augmentation / dynamic scoring of a video model.',
                       two_configs=True)


def build_step(cfg, cfg_sp, ctx, args, classes):
    """Video model (loaded baseline), spatial model, losses, attack -> :class:`DRLAugStep`."""
    from models import build_model
    adversary = cfg_sp.get('adversary')
    scoring = not adversary
    feat_loss = FeatureLoss(cfg_sp['criterion_feat']) if cfg_sp.get('criterion_feat') else None
    keys = {'ret_feat': feat_loss.keys} if feat_loss else {}
    f = build_model(cfg['model'], **keys)
    load_video_model(f, args, need_head=scoring)
    if scoring:
        f.requires_grad_(False)  # scoring: the video model is measured, never changed
    f = prepare_model(f, cfg['model'], ctx, args, trainable=not scoring)
    g = build_spatial_model(cfg, cfg_sp, ctx, args, ret_feat=keys.get('ret_feat', ()))
    if g is None:
        raise UserError(f'{args.sp_config}: main-drl.py needs a spatial model (a model: block)')
    crit = cfg_sp.get('criterion') or {'name': 'KDLoss'}
    attack = build_attack(adversary['name'], **(adversary.get('args') or {})) if adversary else None
    log.info('mode: %s; attack: %s', 'dynamic scoring' if scoring else 'adversarial augmentation', attack)
    return DRLAugStep(f, g, build_criterion(crit['name'], **(crit.get('args') or {})), attack=attack,
                      freeze_bn=cfg['model'].get('freeze_bn', False),
                      freeze_sp=bool(cfg_sp.get('freeze_sp')), feat_loss=feat_loss, ctx=ctx,
                      classes=classes, visualize=cfg_sp.get('visualize'), norm=normalisation(cfg))


def main(args):
    cfg = apply_batch_flags(load_config(args.config, args.overrides), args)
    cfg_sp = load_sp_config(args.sp_config, args.overrides)
    if args.seed is None and 'seed' in cfg_sp:
        args.seed = cfg_sp['seed']
    ctx = setup_run(args, cfg, drl_output_dir(args), cfg_sp=cfg_sp)
    ctx.extra.update(config=cfg, config_sp=cfg_sp)

    data, loaders = build_data(cfg, ctx, args)
    step = build_step(cfg, cfg_sp, ctx, args, next(iter(data.values())).classes)
    optimizer, scheduler = build_drl_optimizer(cfg_sp, f=None if step.scoring else step.f,
                                               g=None if step.freeze_sp else step.g)
    engine = Engine(step, optimizer, scheduler, ctx, epochs=cfg_sp['optimizer']['epochs'])
    if args.evaluate:
        if not engine.resume(enabled=True):
            raise UserError(f'-e: no checkpoint of this DRL run in {ctx.out_dir}')
    else:
        engine.resume(enabled=not args.no_resume)
        engine.fit(loaders['train'], loaders.get('test'))
    if 'test_final' in loaders:
        # scoring wants the converged spatial model (last epoch), not the epoch with the best Acc@1
        engine.test(loaders['test_final'], use_best=not (step.scoring or args.evaluate))


if __name__ == '__main__':
    run_entry(main, get_args_parser().parse_intermixed_args())
