"""DRL by adversarial augmentation, or dynamic scoring (no ``adversary`` in the DRL config).

    python main-drl.py configs/k400/res3d18.yaml configs/drl/fgsm-e3-i5.yaml
    python main-drl.py configs/k400/res3d18.yaml configs/scoring/res2d18.yaml
    python main-drl.py configs/scenemotion/res3d18.yaml configs/drl/fgsm-e3-i5-scratch.yaml \
        sp.optimizer.epochs=1 --pretrain runs/base/checkpoint.pth.tar --output-dir runs/fgsm

The video model comes from checkpoints/<CFG>/checkpoint.pth.tar (or --pretrain / --ckp, or
--scratch); epochs, optimiser and schedule come from the DRL config. See docs/drl.md.
"""
import logging

from core.errors import UserError
from drl.attacks import build_attack
from drl.build import build_spatial_model, load_video_model, normalisation, run_drl
from drl.steps import DRLAugStep, FeatureLoss
from engine.args import base_parser
from engine.build import prepare_model
from engine.optim import build_criterion
from engine.runner import run_entry

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
    crit = cfg_sp['criterion']
    attack = build_attack(adversary['name'], **(adversary.get('args') or {})) if adversary else None
    log.info('mode: %s; attack: %s', 'dynamic scoring' if scoring else 'adversarial augmentation', attack)
    return DRLAugStep(f, g, build_criterion(crit), attack=attack,
                      freeze_bn=cfg['model']['freeze_bn'],
                      freeze_sp=cfg_sp['freeze_sp'], feat_loss=feat_loss, ctx=ctx,
                      classes=classes, visualize=cfg_sp['visualize'], norm=normalisation(cfg))


def main(args):
    run_drl(args, build_step)


if __name__ == '__main__':
    run_entry(main, get_args_parser().parse_intermixed_args())
