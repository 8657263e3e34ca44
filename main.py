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
from debias import build_method
from engine.args import base_parser
from engine.build import build_run
from engine.runner import apply_batch_flags, default_output_dir, run_entry
from supervised.build import build_classifier_step

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

    def make_step(ctx, data):
        final = data.get('test_final')
        predictions = ((os.path.join(out_dir, 'predictions.csv'), [r.vid for r in final.records])
                       if final is not None and ctx.is_main else None)
        return build_classifier_step(
            cfg, ctx, args, classes=next(iter(data.values())).classes,
            pretrain=None if args.evaluate else args.pretrain or cfg['model']['pretrain'],
            evaluate_weights=evaluation_weights(args, out_dir) if args.evaluate else None,
            predictions_to=predictions, method=build_method(cfg))

    splits = ['test_final'] if args.evaluate else ['train', 'test', 'test_final']
    run = build_run(args, cfg, out_dir, make_step, splits=splits,
                    train_cfg=None if args.evaluate else cfg['optimizer'], eval_period=cfg['eval_period'])
    if not args.evaluate:
        run.engine.resume(enabled=not args.no_resume)
        run.engine.fit(run.loaders['train'], run.loaders.get('test'))
    if 'test_final' in run.loaders:
        run.engine.test(run.loaders['test_final'], use_best=not args.evaluate)


if __name__ == '__main__':
    run_entry(main, get_args_parser().parse_intermixed_args())
