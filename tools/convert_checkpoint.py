"""Convert a checkpoint of another code base into this project's format.

    python tools/convert_checkpoint.py r3d18_K_200ep.pth checkpoints/imported/r3d18_K700.pth.tar
    python tools/convert_checkpoint.py TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth \
        out.pth.tar --config configs/k400/tsmres18.yaml model.args.arch=resnet50

Reads (``weights_only=True``) this project's checkpoints, the published DRL code's, official
TSM's, 3D-ResNets-PyTorch's and bare torchvision state dicts (docs/models.md, "Importing
checkpoints"), prints the detected format, and writes ``{'state_dict': ...}`` with the
project's keys (classifier ``head.*``, kept). ``--pretrain`` of every entry script reads all
these formats directly; converting once saves the detection and lets you check the fit: with
``--config`` the weights are loaded into that config's model (keys and shapes must fit, keys
the model does not have are dropped and listed).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.errors import UserError  # noqa: E402
from engine.checkpoint import CheckpointError, check_shapes, load_checkpoint, read_weights, save_checkpoint  # noqa: E402
from models.convert import model_hint  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('input', help='checkpoint or state dict to convert')
    p.add_argument('output', help='where to write the converted checkpoint')
    p.add_argument('overrides', nargs='*', default=[], help='overrides KEY=VALUE of --config')
    p.add_argument('--config', default=None, help='check the weights against this config\'s model')
    p.add_argument('--key', default='state_dict', help='checkpoint entry with the weights '
                   '(state_dict_sp: the spatial model of a DRL run)')
    return p


def convert(args):
    """Returns ``(format, state_dict, dropped keys)`` and writes ``args.output``."""
    ckpt = load_checkpoint(args.input)
    model = None
    if args.config:
        from core.config import load_config
        from models import build_model
        model = build_model(load_config(args.config, args.overrides)['model'])
    fmt, state = read_weights(args.input, model, args.key, ckpt)
    dropped = []
    if model is not None:
        own = model.state_dict()
        dropped = [k for k in state if k not in own]
        state = {k: v for k, v in state.items() if k in own}
        check_shapes(model, state, args.input)
        missing = [k for k in own if k not in state and not k.startswith('head.')]
        if missing:
            raise CheckpointError(f'{args.input} ({fmt}): the model of {args.config} also needs '
                                  f'{len(missing)} keys the file lacks, e.g. {missing[:3]}')
    out = {args.key: state, 'converted_from': os.path.abspath(args.input), 'format': fmt}
    if isinstance(ckpt.get('epoch'), int):
        out['source_epoch'] = ckpt['epoch']
    save_checkpoint(out, args.output)
    return fmt, state, dropped


def main(argv=None):
    args = get_args_parser().parse_intermixed_args(argv)
    try:
        fmt, state, dropped = convert(args)
    except (UserError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    hint = model_hint(state)
    head = state.get('head.weight')
    print(f'format: {fmt}')
    print(f'keys: {len(state)}' + (f', classifier: {head.shape[0]} classes' if head is not None else ', no classifier')
          + (f', model.name: {hint}' if hint else ''))
    print('dropped keys: ' + (', '.join(dropped) if dropped else 'none'))
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
