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
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
from torch import nn

from .head import VideoModel
from .hf_folder import FAMILIES, WEIGHT_FILES, HFModelError, check_clip, clip_rule, family_of, read_folder_config
from .registry import MODELS

log = logging.getLogger(__name__)


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
