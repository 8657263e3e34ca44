"""Convert a checkpoint of another code base into this project's format, or into safetensors.

    python tools/convert_checkpoint.py r3d18_K_200ep.pth checkpoints/imported/r3d18_K700.pth.tar
    python tools/convert_checkpoint.py TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth \
        out.pth.tar --config configs/k400/tsmres18.yaml model.args.arch=resnet50
    python tools/convert_checkpoint.py runs/r3d/model_best.pth.tar r3d.safetensors
    python tools/convert_checkpoint.py --info models/videomae-base-finetuned-kinetics

Reads (``weights_only=True``, or safetensors) this project's checkpoints, the published DRL code's,
official TSM's, 3D-ResNets-PyTorch's, bare torchvision state dicts, ``.safetensors`` files and
Hugging Face video-classifier folders (``config.json`` + ``model.safetensors``; docs/models.md,
"Importing checkpoints"), prints the detected format, and writes the project's keys (classifier
``head.*``, kept): ``{'state_dict': ...}`` (``.pth.tar`` / ``.pth``), or, when OUTPUT ends in
``.safetensors``, the weights only, with the source and format in the file's metadata.
``--pretrain`` of every entry script reads all these formats directly; converting once saves the
detection and lets you check the fit: with ``--config`` the weights are loaded into that config's
model (keys and shapes must fit, keys the model does not have are dropped and listed).
``--info DIR`` prints what a Hugging Face folder recommends for the data (normalisation, clip
length, crop and resize) and the config keys that set them.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.errors import UserError  # noqa: E402
from engine.checkpoint import (  # noqa: E402
    CheckpointError,
    check_shapes,
    load_checkpoint,
    read_weights,
    save_checkpoint,
    save_safetensors,
)
from models.convert import model_hint  # noqa: E402
from models.hf_folder import read_folder_config, recommended  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('input', help='checkpoint, state dict, .safetensors file or Hugging Face model folder')
    p.add_argument('output', nargs='?', default=None, help='where to write the converted checkpoint '
                   '(*.safetensors: weights only; otherwise the project format)')
    p.add_argument('overrides', nargs='*', default=[], help='overrides KEY=VALUE of --config')
    p.add_argument('--config', default=None, help='check the weights against this config\'s model')
    p.add_argument('--info', action='store_true', help='INPUT is a Hugging Face model folder: print what it '
                   'recommends for the data (normalisation, clip length, crop) and write nothing')
    p.add_argument('--key', default='state_dict', help='checkpoint entry with the weights '
                   '(state_dict_sp: the spatial model of a DRL run)')
    return p


def convert(args):
    """Returns ``(format, state_dict, dropped keys)`` and writes ``args.output``."""
    if os.path.isdir(args.input):  # a Hugging Face folder: checked (no remote code) before reading
        read_folder_config(args.input)
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
    if args.output.endswith('.safetensors'):
        save_safetensors(state, args.output, {'converted_from': os.path.abspath(args.input), 'source_format': fmt})
        return fmt, state, dropped
    out = {args.key: state, 'converted_from': os.path.abspath(args.input), 'format': fmt}
    if isinstance(ckpt.get('epoch'), int):
        out['source_epoch'] = ckpt['epoch']
    save_checkpoint(out, args.output)
    return fmt, state, dropped


def _fmt(values, sep=', '):
    return '[' + sep.join(f'{v:g}' for v in values) + ']'


def info_lines(path):
    """What the Hugging Face folder ``path`` recommends, as printable lines."""
    rec = recommended(path)
    pre = rec['preprocessor']
    frames = rec['frames'] if rec['frames'] is not None else f'any multiple of {rec["tubelet"]}'
    lines = [f'folder: {path}',
             f'model: {rec["class"]} (model_type {rec["model_type"]}); model.name: hf_video, model.args.path: {path}',
             f'classes: {rec["n_class"]} (model.args.n_class; another value gives a fresh head)',
             f'weights: {", ".join(rec["weights"]) or "none found"}',
             f'clip length: {frames} frames ({rec["tubelet"]} per token) -> dataset.args.<split>.n_frames',
             f'crop size: {rec["size"][0]}x{rec["size"][1]} -> dataset.transform.crop']
    if pre:
        lines.append(f'preprocessor: {pre["file"]}')
        if 'mean' in pre:
            lines.append(f'normalisation: mean {_fmt(pre["mean"])} std {_fmt(pre["std"])} -> '
                         f'dataset.transform.normalize.mean={_fmt(pre["mean"], ",")} '
                         f'dataset.transform.normalize.std={_fmt(pre["std"], ",")}')  # one shell word each
        if 'resize' in pre:
            lines.append(f'resize (short side): {pre["resize"]} -> dataset.transform.resize')
        if 'crop' in pre:
            lines.append(f'preprocessor crop: {pre["crop"][0]}x{pre["crop"][1]}')
        if 'rescale_factor' in pre:
            lines.append(f'note: pixels are rescaled by {pre["rescale_factor"]:g}, not 1/255')
    else:
        lines.append('preprocessor: none (no preprocessor_config.json / video_preprocessor_config.json)')
    return lines


def main(argv=None):
    parser = get_args_parser()
    args = parser.parse_intermixed_args(argv)
    try:
        if args.info:
            print('\n'.join(info_lines(args.input)))
            return 0
        if args.output is None:
            parser.error('OUTPUT is needed (or --info)')
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
