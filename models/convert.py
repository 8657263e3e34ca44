"""Checkpoint formats: detect where a weights file comes from and map its keys onto this
project's (docs/models.md, "Importing checkpoints").

Formats, in the order they are tried:

``tsm-official``  the TSM authors' code (mit-han-lab/temporal-shift-module): a dict with
                  ``state_dict``, keys ``[module.]base_model.<torchvision ResNet>`` with the shifted
                  convs wrapped as ``conv1.net``, classifier ``new_fc`` (or ``base_model.fc``).
``published``     the DRL authors' code: ``resnet2d`` / ``tsm`` wrap the torchvision ResNet as
                  ``net`` (``net.conv1.weight``; TSM ``net.layer1.0.conv1.net.weight``), classifier
                  ``head`` (``net.fc`` accepted). Their ``resnet3d`` keys are this project's.
``3d-resnets``    Hara et al.'s 3D-ResNets-PyTorch (``r3d18_K_200ep.pth``): ``state_dict`` with
                  ``[module.]conv1.weight`` (5-D) … ``fc.*``.
``torchvision``   a bare torchvision state dict: the video models of :mod:`models.tv_video`
                  (``stem.*``/``fc``, S3D ``features``/``classifier``, MViT ``conv_proj``/``head.1``,
                  Swin3D ``patch_embed``/``head``) or a 2D ResNet (``conv1.weight`` 4-D, ``fc``).
``hf``            a Hugging Face video classifier's weights (``model.safetensors`` of a
                  ``save_pretrained`` folder, or the folder itself): ``videomae.*``, ``timesformer.*``,
                  ``vivit.*``, ``vjepa2.*`` or ``vision_model.*`` (VideoPrism) keys, classifier
                  ``classifier``; mapped onto ``hf_video`` (``hf.<key>``; V-JEPA 2's predictor dropped).
``project``       this project's checkpoints (``state_dict`` with ``head.*``; also the published
                  ``resnet3d`` and any checkpoint whose keys are already the model's).

``module.`` / ``_orig_mod.`` prefixes are stripped first. The classifier always becomes ``head.*``.
"""
from .hf_video import module_keys
from .tv_video import from_torchvision

FORMATS = ('tsm-official', 'published', '3d-resnets', 'torchvision', 'hf', 'project')
WRAPPERS = ('module.', '_orig_mod.')
# a key that only a torchvision video family has -> an arch of that family (for from_torchvision)
TV_SIGNATURES = {'stem.0.weight': 'r3d_18', 'classifier.1.weight': 's3d',
                 'conv_proj.weight': 'mvit_v1_b', 'patch_embed.proj.weight': 'swin3d_t'}
# first trunk keys of the layouts this project knows (for files read without a model)
TRUNK_KEYS = ('conv1.weight', 'stem.0.weight', 'features.0.0.0.weight', 'conv_proj.weight',
              'patch_embed.proj.weight')
# key prefix of a transformers video classifier's encoder -> its model_type (models/hf_video.py)
HF_PREFIXES = {'videomae.': 'videomae', 'timesformer.': 'timesformer', 'vivit.': 'vivit', 'vjepa2.': 'vjepa2',
               'vision_model.': 'videoprism_vision_model'}
HF_DROPPED = ('vjepa2.predictor.',)  # pre-training only; hf_video has no predictor


class UnknownFormat(ValueError):
    """No known checkpoint format matches."""


def _is_state_dict(obj):
    return isinstance(obj, dict) and bool(obj) and all(hasattr(v, 'shape') for v in obj.values())


def _strip(state):
    out = {}
    for k, v in state.items():
        while k.startswith(WRAPPERS):
            k = k[len(next(p for p in WRAPPERS if k.startswith(p))):]
        out[k] = v
    return out


def _rename(state, prefixes):
    """Replace the first matching key prefix of ``prefixes`` (old → new) in every key."""
    out = {}
    for k, v in state.items():
        for old, new in prefixes:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def _unwrap_shift(state):
    """``layerX.Y.conv1.net.weight`` (TSM's shift wrapper around the conv) → ``layerX.Y.conv1.weight``."""
    return {k.replace('.conv1.net.', '.conv1.'): v for k, v in state.items()}


def _tsm_official(state):
    state = _rename(state, [('base_model.fc.', 'head.'), ('new_fc.', 'head.'), ('base_model.', '')])
    return _unwrap_shift(state)


def _published(state):
    return _unwrap_shift(_rename(state, [('net.fc.', 'head.'), ('fc.', 'head.'), ('net.', '')]))


def _hf_type(state):
    """The ``model_type`` of a transformers video classifier's state dict, or ``None``."""
    if any(k.startswith('hf.') for k in state):
        return None
    for prefix, kind in HF_PREFIXES.items():
        if any(k.startswith(prefix) for k in state):
            return kind
    return None


def from_hf(state, model_type):
    """A transformers video classifier's state dict with ``hf_video``'s keys: the file's names
    renamed as ``from_pretrained`` renames them (:func:`models.hf_video.module_keys`), then
    ``hf.<key>``, the final linear classifier ``classifier.*`` → ``head.*``, V-JEPA 2's predictor
    dropped."""
    out = {}
    for k, v in module_keys(state, model_type).items():
        if k.startswith(HF_DROPPED):
            continue
        out['head.' + k[len('classifier.'):] if k.startswith('classifier.') else 'hf.' + k] = v
    return out


def _torchvision_arch(state):
    """The torchvision family of a bare state dict (an arch of it), ``resnet2d`` for a 2D
    ResNet, or ``None``."""
    for key, arch in TV_SIGNATURES.items():
        if key in state:
            return arch
    w = state.get('conv1.weight')
    if w is not None and w.dim() == 4 and 'fc.weight' in state:
        return 'resnet2d'
    return None


def detect(ckpt, key='state_dict', model_keys=None):
    """Find the format of a loaded checkpoint and map its weights onto the project's keys.

    Args:
        ckpt: what ``torch.load`` returned (a checkpoint dict or a bare state dict).
        key: the checkpoint entry holding the weights (``state_dict``; ``state_dict_sp`` for the
            spatial model of DRL runs). A bare state dict is read as a whole.
        model_keys: the target model's ``state_dict()`` keys, when known: a wrapped checkpoint
            whose keys are already the model's is this project's format even if its layout is
            not one listed here.
    Returns:
        ``(format, state_dict)`` with project keys (classifier ``head.*``).
    Raises:
        UnknownFormat: nothing matched (the message lists the formats tried).
    """
    tried = f'tried: {", ".join(FORMATS)}'
    if not isinstance(ckpt, dict):
        raise UnknownFormat(f'not a dict of weights ({type(ckpt).__name__}; {tried})')
    if key in ckpt and _is_state_dict(ckpt[key]):
        state, bare = _strip(ckpt[key]), False
    elif _is_state_dict(ckpt):
        state, bare = _strip(ckpt), True
    else:
        raise UnknownFormat(f'no {key!r} entry and not a bare state dict (entries: '
                            f'{", ".join(map(str, list(ckpt)[:8]))}; {tried})')
    if any(k.startswith('base_model.') for k in state):
        return 'tsm-official', _tsm_official(state)
    if any(k.startswith('net.') for k in state):
        return 'published', _published(state)
    w = state.get('conv1.weight')
    if w is not None and w.dim() == 5 and 'fc.weight' in state:
        return '3d-resnets', _rename(state, [('fc.', 'head.')])
    arch = _torchvision_arch(state)
    has_tv_head = any(k.startswith(('fc.', 'classifier.1.', 'head.1.')) for k in state)
    if arch is not None and (bare or has_tv_head):
        if arch == 'resnet2d':
            return 'torchvision', _rename(state, [('fc.', 'head.')])
        return 'torchvision', from_torchvision(state, arch)
    kind = _hf_type(state)
    if kind is not None:
        return 'hf', from_hf(state, kind)
    known = any(k in state for k in TRUNK_KEYS) or any(k.startswith('hf.') for k in state)
    fits = model_keys is not None and set(state) <= set(model_keys)
    if known or (not bare and model_keys is not None) or fits:
        return 'project', state
    raise UnknownFormat(f'no known key layout (first keys: {", ".join(list(state)[:3])}; {tried})')


def model_hint(state):
    """A guess of ``model.name`` for project-format weights (for messages), or ``None``."""
    w = state.get('conv1.weight')
    if w is not None:
        return 'resnet3d' if w.dim() == 5 else 'resnet2d or tsm'
    if any(k.startswith('hf.') for k in state):
        return 'hf_video'
    if 'stem.0.weight' in state:
        conv = state.get('layer1.0.conv1.0.0.weight')
        return 'r2plus1d_18' if conv is not None else 'r3d_18 or mc3_18'
    if 'features.0.0.0.weight' in state:
        return 's3d'
    if 'conv_proj.weight' in state:
        return 'mvit_v2_s' if any('rel_pos' in k for k in state) else 'mvit_v1_b'
    if 'patch_embed.proj.weight' in state:
        dim = state['patch_embed.proj.weight'].shape[0]
        return {96: 'swin3d_t or swin3d_s', 128: 'swin3d_b'}.get(dim)
    return None

