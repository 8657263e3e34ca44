"""Hugging Face model folders and configs read as JSON, without importing ``transformers``.

Which families ``hf_video`` supports, a folder's ``config.json`` (refused when it needs
``trust_remote_code``), the clips a config's position table / token grid takes, what the folder's
preprocessor config recommends, and the comparison of a run config with all that
(:func:`check_data_config`). Used by :mod:`models.hf_video`, ``tools/convert_checkpoint.py --info``
and the run set-up. docs/models.md, "Hugging Face video transformers".
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any, Optional

from core.errors import UserError

log = logging.getLogger(__name__)

# model_type -> (transformers classifier class, config class, base-model attribute)
FAMILIES = {
    'videomae': ('VideoMAEForVideoClassification', 'VideoMAEConfig', 'videomae'),
    'timesformer': ('TimesformerForVideoClassification', 'TimesformerConfig', 'timesformer'),
    'vivit': ('VivitForVideoClassification', 'VivitConfig', 'vivit'),
    'vjepa2': ('VJEPA2ForVideoClassification', 'VJEPA2Config', 'vjepa2'),
    'videoprism_vision_model': ('VideoPrismForVideoClassification', 'VideoPrismVisionConfig', 'vision_model'),
}
ALIASES = {'videoprism': 'videoprism_vision_model'}
SUPPORTED = ', '.join(list(FAMILIES) + [f'{a} (= {t})' for a, t in ALIASES.items()])
PREPROCESSOR_FILES = ('preprocessor_config.json', 'video_preprocessor_config.json')
WEIGHT_FILES = ('model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin')
CLIP_KEYS = 'dataset.args.<split>.n_frames'
CROP_KEY = 'dataset.transform.crop'


class HFModelError(UserError, ValueError):
    """A folder or inline config that cannot give a supported video classifier."""


class ClipSizeError(UserError, ValueError):
    """Clips whose length or size do not fit the model's position table / token grid."""


def _pair(v):
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def family_of(model_type: Optional[str], where: str) -> str:
    """The canonical ``model_type`` of a supported family, or a one-line :class:`HFModelError`."""
    kind = ALIASES.get(model_type, model_type)
    if kind not in FAMILIES:
        raise HFModelError(f'{where}: model_type {model_type!r} is not a supported video classifier; '
                           f'hf_video supports: {SUPPORTED}')
    return kind


def read_folder_config(path: str) -> dict[str, Any]:
    """``config.json`` of a model folder, checked without importing ``transformers``.

    Raises:
        HFModelError: no such folder, no ``config.json``, unreadable JSON, a folder that needs
            ``trust_remote_code`` (``auto_map``), or a model type that is not a supported video
            classifier; each one line.
    """
    path = os.path.expanduser(str(path))
    if not os.path.isdir(path):
        raise HFModelError(f'model.args.path: {path} is not a folder (expected a save_pretrained folder '
                           'with config.json and model.safetensors)')
    cfg_file = os.path.join(path, 'config.json')
    if not os.path.isfile(cfg_file):
        raise HFModelError(f'{path}: no config.json (a Hugging Face model folder holds config.json and '
                           'model.safetensors, as save_pretrained writes them)')
    try:
        with open(cfg_file) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise HFModelError(f'{cfg_file}: cannot read it: {str(e).splitlines()[0]}') from None
    if not isinstance(cfg, dict):
        raise HFModelError(f'{cfg_file}: not a JSON object')
    if cfg.get('auto_map'):
        raise HFModelError(f'{path}: the model needs its own code (trust_remote_code: auto_map in config.json); '
                           'code from a checkpoint folder never runs here')
    if cfg.get('model_type') == 'videoprism':  # the video-text model: its vision_config is the classifier's
        cfg = {**(cfg.get('vision_config') or {}), '_clip_model': True}
        cfg.setdefault('model_type', 'videoprism_vision_model')
    cfg['model_type'] = family_of(cfg.get('model_type'), cfg_file)
    return cfg


def clip_rule(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What clips a model config takes: ``frames`` (exact length, or ``None`` for any multiple of
    ``tubelet``), ``size`` (H, W), ``tubelet`` (frames per token) and ``patch`` (H, W per token)."""
    kind = ALIASES.get(cfg['model_type'], cfg['model_type'])
    if kind == 'vjepa2':  # 3D RoPE: positions follow the frame index, the grid is crop_size / patch_size
        return {'frames': None, 'size': _pair(cfg.get('crop_size', 256)), 'tubelet': int(cfg.get('tubelet_size', 2)),
                'patch': _pair(cfg.get('patch_size', 16)), 'frames_key': 'frames_per_clip', 'size_key': 'crop_size'}
    if kind in ('vivit', 'videoprism_vision_model'):
        default = [2, 16, 16] if kind == 'vivit' else [1, 18, 18]
        t, ph, pw = cfg.get('tubelet_size', default)
        tubelet, patch = int(t), (int(ph), int(pw))
    else:
        tubelet = int(cfg.get('tubelet_size', 2)) if kind == 'videomae' else 1
        patch = _pair(cfg.get('patch_size', 16))
    frames = {'videomae': 16, 'timesformer': 8, 'vivit': 32}.get(kind, 16)
    size = {'videoprism_vision_model': 288}.get(kind, 224)
    return {'frames': int(cfg.get('num_frames', frames)), 'size': _pair(cfg.get('image_size', size)),
            'tubelet': tubelet, 'patch': patch, 'frames_key': 'num_frames', 'size_key': 'image_size'}


def check_clip(rule: Mapping[str, Any], t: int, h: int, w: int, what: str) -> None:
    """Raise a one-line :class:`ClipSizeError` when ``T × H × W`` clips do not fit ``rule``."""
    frames, size, tubelet = rule['frames'], rule['size'], rule['tubelet']
    bad_t = (t != frames) if frames is not None else (t % tubelet != 0)
    bad_hw = (h, w) != size
    if not (bad_t or bad_hw):
        return
    want_t = f'{frames}-frame' if frames is not None else f'{tubelet}k-frame (a multiple of {tubelet})'
    fix = []
    if bad_t:
        fix.append(f'{CLIP_KEYS}={frames if frames is not None else tubelet * max(1, round(t / tubelet))} '
                   'for every split')
    if bad_hw:
        fix.append(f'{CROP_KEY}={size[0] if size[0] == size[1] else list(size)}')
    raise ClipSizeError(
        f'{what} takes {want_t} {size[0]}x{size[1]} clips (config.json {rule["frames_key"]} / {rule["size_key"]}), '
        f'got {t}-frame {h}x{w} clips: set {" and ".join(fix)}; position tables are never resized')


def read_preprocessor(path: str) -> dict[str, Any]:
    """What a folder's preprocessor config recommends: ``mean``, ``std`` (the normalisation that
    follows the 1/255 rescale; ``[0, 0, 0]`` / ``[1, 1, 1]`` when it does not normalise),
    ``resize`` (short side), ``crop`` (H, W) and ``file``; ``{}`` when the folder has none."""
    for name in PREPROCESSOR_FILES:
        file = os.path.join(path, name)
        if os.path.isfile(file):
            break
    else:
        return {}
    try:
        with open(file) as f:
            pre = json.load(f)
    except (OSError, ValueError) as e:
        log.warning('%s: cannot read it (%s); its recommendations are ignored', file, str(e).splitlines()[0])
        return {}
    out: dict[str, Any] = {'file': file}
    if pre.get('do_normalize', True) and 'image_mean' in pre:
        out['mean'] = [float(v) for v in pre['image_mean']]
        out['std'] = [float(v) for v in pre.get('image_std', [1.0, 1.0, 1.0])]
    elif not pre.get('do_normalize', True):
        out['mean'], out['std'] = [0.0] * 3, [1.0] * 3
    if pre.get('do_rescale', True) and abs(float(pre.get('rescale_factor', 1 / 255)) - 1 / 255) > 1e-9:
        out['rescale_factor'] = float(pre['rescale_factor'])
    size = pre.get('size')
    if isinstance(size, dict):
        size = size.get('shortest_edge', size.get('height'))
    if isinstance(size, (int, float)):
        out['resize'] = int(size)
    crop = pre.get('crop_size')
    if isinstance(crop, dict) and 'height' in crop:
        out['crop'] = (int(crop['height']), int(crop.get('width', crop['height'])))
    elif isinstance(crop, (int, float)):
        out['crop'] = (int(crop), int(crop))
    return out


def recommended(path: str) -> dict[str, Any]:
    """Everything a folder recommends for the data (``tools/convert_checkpoint.py --info``):
    its config's family, clip rule, classes, and its preprocessor's values."""
    cfg = read_folder_config(path)
    rule = clip_rule(cfg)
    n_class = len(cfg['id2label']) if isinstance(cfg.get('id2label'), dict) else cfg.get('num_labels')
    weights = [f for f in WEIGHT_FILES if os.path.isfile(os.path.join(path, f))]
    return {'model_type': cfg['model_type'], 'class': FAMILIES[cfg['model_type']][0], 'n_class': n_class,
            'architectures': cfg.get('architectures'), 'weights': weights, **rule,
            'preprocessor': read_preprocessor(path)}


def check_data_config(cfg: Mapping[str, Any]) -> None:
    """Compare a resolved run config's data with its ``hf_video`` model folder, before any data.

    The config's ``dataset.transform.normalize`` is what runs; a folder preprocessor that says
    otherwise is one warning naming both. A clip length / crop size the position table cannot take
    is a one-line :class:`ClipSizeError` naming both values and the keys to change. Other models,
    and inline configs' normalisation, pass silently.
    """
    model = cfg.get('model') or {}
    if model.get('name') != 'hf_video':
        return
    args = model.get('args') or {}
    data = cfg.get('dataset') or {}
    transform = data.get('transform') or {}
    if args.get('path'):
        folder_cfg = read_folder_config(args['path'])
        pre = read_preprocessor(os.path.expanduser(str(args['path'])))
        norm = transform.get('normalize') or {}
        if 'mean' in pre and norm:
            ours = [list(map(float, norm.get('mean', []))), list(map(float, norm.get('std', [])))]
            theirs = [pre['mean'], pre['std']]
            if any(abs(a - b) > 1e-4 for x, y in zip(ours, theirs) for a, b in zip(x, y)):
                log.warning('dataset.transform.normalize mean %s std %s differs from %s (mean %s std %s); '
                            'the config\'s values are used', ours[0], ours[1], pre['file'], theirs[0], theirs[1])
    elif isinstance(args.get('config'), Mapping):
        folder_cfg = {**args['config'], 'model_type': family_of(args['config'].get('model_type'), 'model.args.config')}
    else:
        return
    crop = transform.get('crop')
    for split, clip in (data.get('args') or {}).items():
        if not isinstance(clip, Mapping) or 'n_frames' not in clip or crop is None:
            continue
        h, w = _pair(crop)
        check_clip(clip_rule(folder_cfg), int(clip['n_frames']), h, w,
                   f'hf_video ({folder_cfg["model_type"]}, dataset.args.{split})')
