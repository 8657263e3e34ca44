"""torchvision weights (ImageNet ResNets, Kinetics-400 video models), found on disk (never
downloaded at run time).

The file is looked up under its standard torchvision name (the basename of the weights
enum's URL, e.g. ``resnet18-f37072fd.pth``, ``r3d_18-b3b3357e.pth``) in, in order:

1. ``pretrained_path`` (model arg): a file, or a folder holding the file;
2. ``$DRL_PRETRAINED_DIR``;
3. ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``, where torchvision
   itself caches downloads).
"""
import os
import pickle

import torch
import torch.hub
from torchvision.models import get_model_weights

from core.errors import UserError


class WeightsError(UserError, RuntimeError):
    """A weights file that cannot be read or does not fit the model (one line for the user)."""

# The published code used torchvision's `pretrained=True`, i.e. the first ImageNet weights.
WEIGHTS_TAG = 'IMAGENET1K_V1'


def weights_url(arch, tag=WEIGHTS_TAG):
    """Download URL of torchvision model ``arch``'s weights ``tag`` (e.g. ``KINETICS400_V1``)."""
    enum = get_model_weights(arch)
    if tag not in enum.__members__:
        raise ValueError(f'torchvision has no weights {tag!r} for {arch}; '
                         f'available: {", ".join(enum.__members__)}')
    return enum[tag].url


def candidate_paths(arch, pretrained_path=None, tag=WEIGHTS_TAG):
    """Paths where the weights file of ``arch`` is looked for, in search order."""
    name = os.path.basename(weights_url(arch, tag))
    paths = []
    if pretrained_path:
        p = os.path.expanduser(str(pretrained_path))
        # A file (any name) is used as is; anything else is taken as a folder.
        is_file = os.path.isfile(p) or p.endswith(('.pth', '.pt'))
        paths.append(p if is_file else os.path.join(p, name))
    env_dir = os.environ.get('DRL_PRETRAINED_DIR')
    if env_dir:
        paths.append(os.path.join(os.path.expanduser(env_dir), name))
    paths.append(os.path.join(torch.hub.get_dir(), 'checkpoints', name))
    return paths


def find_weights(arch, pretrained_path=None, tag=WEIGHTS_TAG):
    """Return the first existing weights file of ``arch`` (weights ``tag``).

    Raises:
        FileNotFoundError: one line naming the file, the folders searched and its URL.
    """
    paths = candidate_paths(arch, pretrained_path, tag)
    for p in paths:
        if os.path.isfile(p):
            return p
    url = weights_url(arch, tag)
    what = 'ImageNet' if tag == WEIGHTS_TAG else tag
    raise FileNotFoundError(
        f'{what} weights for {arch} not found: put {os.path.basename(url)} (download it from '
        f'{url} on a machine with internet) at one of: {", ".join(paths)} '
        f'(or set DRL_PRETRAINED_DIR or model.args.pretrained_path)')


def load_imagenet_weights(module, arch, pretrained_path=None, skip_prefixes=('fc.',)):
    """Load torchvision ImageNet weights of ``arch`` into ``module`` (same key names).

    The ImageNet classifier (``fc.*``) is dropped; every other key must match exactly, and the
    only keys of ``module`` left untouched must be its ``head.*`` classifier.

    Returns:
        the path that was loaded.
    """
    path = find_weights(arch, pretrained_path)
    state = read_weights_file(path, arch)
    state = {k: v for k, v in state.items() if not k.startswith(tuple(skip_prefixes))}
    return load_trunk(module, state, path, arch)


def read_weights_file(path, arch):
    """The state dict in a torchvision weights file, read with ``weights_only=True``.

    Raises:
        WeightsError: one line, when the file is not a plain state dict: a pickle that would
            run code (refused, never executed), a cut or foreign file.
    """
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise WeightsError(f'cannot read the {arch} weights {path} (model.args.pretrained_path, '
                           f'$DRL_PRETRAINED_DIR or the torch hub folder): not a plain weights file, '
                           f'refused: {first}') from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightsError(f'{path}: not a state dict of {arch} weights (a {type(state).__name__})')
    return state


def load_trunk(module, state, path, arch):
    """Load ``state`` into ``module`` non-strictly; every key but the head's must fit.

    Raises:
        WeightsError: naming ``path``, ``arch`` and the first missing / unexpected keys (or the
            first shape that differs).
    Returns:
        ``path``.
    """
    own = module.state_dict()
    for k, v in state.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise WeightsError(f'{path} does not fit {arch}: {k} is {tuple(v.shape)} in the file, '
                               f'{tuple(own[k].shape)} in the model')
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith('head.')]
    if missing or unexpected:
        raise WeightsError(f'{path} does not fit {arch}: missing keys {missing[:5]}, '
                           f'unexpected keys {unexpected[:5]}')
    return path
