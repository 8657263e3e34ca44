"""Hugging Face video transformers under the shared head (``model.name: hf_video``).

Two ways to build one (``model.args``):

- ``path: DIR``: a local folder written by ``save_pretrained`` (``config.json`` + ``model.safetensors``
  or ``pytorch_model.bin``), read with ``from_pretrained(DIR, local_files_only=True)``: nothing is
  downloaded, and a folder whose ``config.json`` asks for its own code (``auto_map``, i.e.
  ``trust_remote_code``) is refused: code from a checkpoint folder never runs;
- ``config: {model_type: videomae, ...}``: an inline ``transformers`` config, random weights.

Families (``model_type``): ``videomae``, ``timesformer``, ``vivit``, ``vjepa2`` and
``videoprism_vision_model`` (alias ``videoprism``), i.e. the ``*ForVideoClassification`` class of
each. The HF model is kept whole as ``hf`` (so its keys are ``hf.<transformers key>``) except its
final linear classifier, which becomes the shared ``head`` (dropout → linear → clip consensus):
``forward_features`` returns what enters that classifier (VideoMAE's mean-pooled + ``fc_norm``
tokens, TimeSformer's / ViViT's class token, V-JEPA 2's attentive pooler output, VideoPrism's
attention-pooled, layer-normed feature), so ``copy_head``, ``reset_head`` and the linear probe
replace only the linear layer. V-JEPA 2's predictor (pre-training only, never run by its
classifier) is dropped.

Input adaptation happens here and only here: the project's clips are ``N × C × T × H × W``, these
models take ``N × T × C × H × W``; normalisation is the config's (``dataset.transform.normalize``),
never the folder's preprocessor. Models with a fixed position table (all but V-JEPA 2) take exactly
the clip length and crop size of their config: another size is one line naming both and the keys
to change (nothing is resized or interpolated). ``tubelet_size`` is the frames per token (2 for
VideoMAE, ViViT, V-JEPA 2): shuffling frames then also mixes frames inside a token.

``transformers`` is imported only when such a model is built (start-up time of everything else).
"""
from __future__ import annotations

import contextlib
import difflib
import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
from torch import nn

from core.errors import UserError

from .head import VideoModel
from .registry import MODELS

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


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' own multi-line loading reports are replaced by this module's messages."""
    from transformers.utils import logging as hf_logging
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _inline_config(spec: Mapping[str, Any]):
    """A ``transformers`` config object from ``model.args.config``; unknown keys raise (HF itself
    would keep a typo as an attribute and ignore it)."""
    import transformers
    spec = dict(spec)
    kind = family_of(spec.pop('model_type', None), 'model.args.config')
    config_cls = getattr(transformers, FAMILIES[kind][1])
    valid = set(config_cls().to_dict()) | {'num_labels', 'id2label', 'label2id', 'attn_implementation'}
    for key in spec:
        if key not in valid:
            close = difflib.get_close_matches(key, sorted(valid), n=1)
            hint = f'; did you mean {close[0]!r}?' if close else ''
            raise HFModelError(f'model.args.config: {kind} has no config key {key!r}{hint}')
    return config_cls(**spec)


def _load_folder(path: str, cfg: Mapping[str, Any]) -> tuple[nn.Module, bool]:
    """``from_pretrained`` of the folder's classifier class, local files only, float32.

    Returns:
        ``(model, classifier_loaded)``. Missing encoder weights are an error; missing weights
        of the pooling / classifier (a pre-training checkpoint) start fresh, with a warning.
    """
    import transformers
    from safetensors import SafetensorError
    kind = cfg['model_type']
    cls_name, _, base = FAMILIES[kind]
    if not any(os.path.isfile(os.path.join(path, f)) for f in WEIGHT_FILES):
        raise HFModelError(f'{path}: no weights file (expected one of {", ".join(WEIGHT_FILES)})')
    cls = getattr(transformers, cls_name)
    extra = {}
    if cfg.get('_clip_model'):  # a VideoPrism video-text folder: its video encoder only
        extra['key_mapping'] = {r'^video_model\.vision_model\.': 'vision_model.'}
    try:
        with _quiet_transformers():
            net, info = cls.from_pretrained(path, local_files_only=True, trust_remote_code=False, weights_only=True,
                                            dtype=torch.float32, output_loading_info=True, **extra)
    except (OSError, ValueError, SafetensorError) as e:  # a damaged or foreign weights file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HFModelError(f'{path}: cannot load it as {cls_name}: {first}') from None
    missing = list(info.get('missing_keys') or [])
    mismatched = [k[0] if isinstance(k, (tuple, list)) else k for k in info.get('mismatched_keys') or []]
    trunk = [k for k in missing + mismatched if k.startswith(base + '.') and '.predictor.' not in f'.{k}']
    if trunk:
        raise HFModelError(f'{path}: the weights do not fit {cls_name}: {len(trunk)} encoder keys missing '
                           f'or of another shape, e.g. {trunk[:3]}')
    fresh = [k for k in missing + mismatched if not k.startswith(base + '.') and not k.startswith('classifier.')]
    if fresh:
        log.warning('%s: %d weights outside the encoder are not in the folder and start fresh, e.g. %s',
                    path, len(fresh), fresh[:3])
    loaded = not any(k.startswith('classifier.') for k in missing + mismatched)
    return net, loaded


@functools.lru_cache(maxsize=None)
def _key_mapping(model_type: str):
    """transformers' load-time key transforms of ``model_type``'s classifier, its base-model
    prefix and its module keys (from a model built on the meta device: names only)."""
    import transformers
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightRenaming
    cls_name, cfg_name, _ = FAMILIES[model_type]
    with torch.device('meta'), _quiet_transformers():
        net = getattr(transformers, cls_name)(getattr(transformers, cfg_name)())
    transforms = get_model_conversion_mapping(net)
    renames = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if not isinstance(t, WeightRenaming)]
    return renames, converters, net.base_model_prefix, dict.fromkeys(net.state_dict(), True)


def module_keys(state: Mapping[str, torch.Tensor], model_type: str) -> dict[str, torch.Tensor]:
    """A transformers checkpoint's keys renamed as ``from_pretrained`` renames them for
    ``model_type``'s classifier (transformers' own conversion mapping: ``save_pretrained`` writes
    some families' original names, e.g. VideoMAE's ``q_bias``, ViViT's ``encoder.layer``).

    Raises:
        HFModelError: a key needs a tensor conversion, not a rename (load the folder through
            ``model.args.path`` instead).
    """
    from transformers.core_model_loading import rename_source_key
    renames, converters, prefix, meta = _key_mapping(model_type)
    out = {}
    for k, v in state.items():
        new, converted = rename_source_key(k, renames, converters, prefix, meta)
        if converted is not None:
            raise HFModelError(f'{model_type} weight {k!r} needs a conversion transformers does on loading; '
                               'load the folder with model.args.path instead')
        out[new] = v
    return out


class HFVideo(VideoModel):
    """A ``transformers`` video classifier under the shared head (see the module docstring).

    Args:
        net: the ``*ForVideoClassification`` module; its ``classifier`` is taken out.
        model_type: canonical family name (``FAMILIES``).
        n_class: classes; ``None``: the classifier's own size.
        keep_classifier: copy the HF classifier into ``head`` when it has ``n_class`` outputs.
        source: folder or ``'inline config'`` (for messages).
    """

    def __init__(self, net: nn.Module, model_type: str, n_class: Optional[int] = None, dropout: float = 0.0,
                 consensus: str = 'avg', ret_feat: Sequence[str] = (), keep_classifier: bool = True,
                 source: str = 'inline config') -> None:
        if any(n != 'pool' for n in (ret_feat or ())):
            raise ValueError(f'hf_video returns only the pool feature (ret_feat: [pool]), got {list(ret_feat)}')
        classifier = net.classifier
        net.classifier = nn.Identity()
        own = classifier.out_features if isinstance(classifier, nn.Linear) else 0
        n_class = own if n_class is None else n_class
        super().__init__(int(net.config.hidden_size), n_class, dropout, consensus, ret_feat)
        if model_type == 'vjepa2':  # pre-training only: VJEPA2ForVideoClassification never runs it
            del net.vjepa2.predictor
        self.hf = net
        self.model_type = model_type
        self.source = source
        self.rule = clip_rule({**net.config.to_dict(), 'model_type': model_type})
        self.tubelet_size = self.rule['tubelet']
        if keep_classifier and own and own == n_class:
            self.head.load_state_dict(classifier.state_dict())
        elif keep_classifier and own:
            log.info('hf_video %s: its %d-class classifier is replaced by a fresh %d-class head', source, own, n_class)

    def forward_features(self, x: torch.Tensor, feats: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """Clips ``N × C × T × H × W`` → the features entering the linear classifier, ``N × D``."""
        if x.dim() != 5:
            raise ValueError(f'expected N×C×T×H×W clips, got shape {tuple(x.shape)}')
        t, h, w = x.shape[2:]
        check_clip(self.rule, t, h, w, f'hf_video ({self.model_type}, {self.source})')
        out = self.hf(x.transpose(1, 2))  # the one layout change: N × T × C × H × W
        feat = out.logits if hasattr(out, 'logits') else out[0]
        return feat.flatten(1) if feat.dim() == 3 else feat  # VideoPrism's pooler keeps its 1-query axis


@MODELS.register('hf_video')
def hf_video(path: Optional[str] = None, config: Optional[Mapping[str, Any]] = None, n_class: Optional[int] = None,
             dropout: float = 0.0, consensus: str = 'avg', ret_feat: Sequence[str] = ()) -> HFVideo:
    """A Hugging Face video transformer from a local folder (``path``) or an inline config
    (``config``, random weights); see the module docstring. ``n_class`` other than the folder's
    classifier gives a fresh head; ``None`` keeps the folder's (inline: ``num_labels``)."""
    if (path is None) == (config is None):
        raise HFModelError('hf_video needs exactly one of model.args.path (a local model folder) and '
                           'model.args.config (an inline transformers config with model_type)')
    if path is not None:
        path = os.path.expanduser(str(path))
        cfg = read_folder_config(path)
        net, loaded = _load_folder(path, cfg)
        return HFVideo(net, cfg['model_type'], n_class, dropout, consensus, ret_feat, keep_classifier=loaded,
                       source=path)
    if not isinstance(config, Mapping):
        raise HFModelError(f'model.args.config must be a mapping with model_type, got {type(config).__name__}')
    import transformers
    hf_cfg = _inline_config(config)
    kind = family_of(hf_cfg.model_type, 'model.args.config')
    net = getattr(transformers, FAMILIES[kind][0])(hf_cfg)
    return HFVideo(net, kind, n_class, dropout, consensus, ret_feat, keep_classifier=n_class is None)
