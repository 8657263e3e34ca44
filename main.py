"""Train or fine-tune a video model, then run the final multi-clip test.

    python main.py configs/k400/res3d18.yaml
    python main.py configs/hmdb/res3d18.yaml --pretrain checkpoints/k400/res3d18/checkpoint.pth.tar
    python main.py configs/scenemotion/res3d18.yaml -e
    python main.py configs/scenemotion/res3d18.yaml optimizer.epochs=1 dataset.batch_size=4 --output-dir runs/try
"""
import logging
import os

from core.config import check_overrides_prefixes, load_config
from core.errors import UserError
from debias.batch_mix import build_batch_mix
from engine.args import base_parser
from engine.build import build_loader, default_workers, prepare_model
from engine.checkpoint import load_pretrained
from engine.engine import Engine
from engine.optim import build_criterion, build_optimizer, build_scheduler
from engine.runner import apply_batch_flags, default_output_dir, run_entry, setup_run
from supervised.step import ClassifierStep

log = logging.getLogger('drl')


def get_args_parser():
    return base_parser('Supervised training / fine-tuning / evaluation of a video model.')


def evaluation_weights(args, out_dir):
    """``-e``: evaluate ``--pretrain`` (with its head) or the run folder's best/latest weights."""
    if args.pretrain:
        return args.pretrain
    for name in ('model_best.pth.tar', 'checkpoint.pth.tar'):
        path = os.path.join(out_dir, name)
        if os.path.isfile(path):
            return path
    raise UserError(f'-e: nothing to evaluate: no --pretrain and no checkpoint in {out_dir}')


def main(args):
    check_overrides_prefixes(args.overrides, allow_sp=False)
    cfg = apply_batch_flags(load_config(args.config, args.overrides), args)
    out_dir = args.output_dir or default_output_dir(args.config, args.pretrain, args.debug)
    ctx = setup_run(args, cfg, out_dir)

    from datasets import build_dataset
    from models import build_model
    splits = ['test_final'] if args.evaluate else ['train', 'test', 'test_final']
    workers = default_workers(cfg, args)
    data = {s: build_dataset(cfg, s, seed=ctx.seed) for s in splits if s in cfg['dataset']['args']}
    loaders = {s: build_loader(d, cfg, ctx, train=(s == 'train'), workers=workers) for s, d in data.items()}
    for s, d in data.items():
        log.info('%s: %d videos, %d classes', s, len(d), len(d.classes))

    model = build_model(cfg['model'])
    linear_probe = cfg['model']['linear_probe'] and not args.evaluate
    if linear_probe:  # only the head learns (before DDP wrapping, which reads requires_grad)
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith('head.'))
    if args.evaluate:
        load_pretrained(model, evaluation_weights(args, out_dir), copy_head=True)
        pretrain = None
    else:
        pretrain = args.pretrain or cfg['model']['pretrain']
    model = prepare_model(model, cfg['model'], ctx, args, pretrain=pretrain)
    classes = next(iter(data.values())).classes
    final = data.get('test_final')
    predictions = ((os.path.join(out_dir, 'predictions.csv'), [r.vid for r in final.records])
                   if final is not None and ctx.is_main else None)
    step = ClassifierStep(model, build_criterion(cfg['criterion']).to(ctx.device),
                          freeze_bn=cfg['model']['freeze_bn'], classes=classes,
                          predictions_to=predictions, augment=build_batch_mix(cfg), linear_probe=linear_probe)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(cfg['optimizer'], params) if not args.evaluate else None
    scheduler = build_scheduler(cfg['optimizer'], optimizer) if optimizer else None
    engine = Engine(step, optimizer, scheduler, ctx, epochs=cfg['optimizer']['epochs'],
                    eval_period=cfg['eval_period'], clip_grad=cfg['optimizer']['clip_grad'])
    if not args.evaluate:
        engine.resume(enabled=not args.no_resume)
        engine.fit(loaders['train'], loaders.get('test'))
    if 'test_final' in loaders:
        engine.test(loaders['test_final'], use_best=not args.evaluate)


if __name__ == '__main__':
    run_entry(main, get_args_parser().parse_intermixed_args())
