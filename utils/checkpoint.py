"""Checkpoints and result files: atomic writes, safe loads, pretrained-weight loading."""
import json
import logging
import os
import pickle
import random

import numpy as np
import torch

from core.errors import UserError
from models.convert import UnknownFormat, detect

log = logging.getLogger(__name__)


class CheckpointError(UserError, RuntimeError):
    """An unreadable checkpoint, or one whose weights do not fit the model."""


def _atomic(path, write):
    """Write through ``write(tmp_path)`` then rename, so ``path`` is never half-written."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f'.{os.path.basename(path)}.tmp{os.getpid()}')
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(state, path):
    """``torch.save`` ``state`` to ``path`` atomically (temp file + ``os.replace``)."""
    _atomic(path, lambda tmp: torch.save(state, tmp))


def save_json(obj, path):
    """Write JSON atomically (``results.json`` is the last file of a run)."""
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write('\n')
    _atomic(path, write)


def load_checkpoint(path, map_location='cpu'):
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code from pickles)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f'cannot read checkpoint {path}: {first}') from None


def strip_prefix(state_dict, prefixes=('module.', '_orig_mod.')):
    """Remove DDP / torch.compile wrappers' key prefixes."""
    out = {}
    for k, v in state_dict.items():
        changed = True
        while changed:
            changed = False
            for p in prefixes:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        out[k] = v
    return out


def read_weights(path, model=None, key='state_dict', ckpt=None):
    """The weights of checkpoint ``path`` with this project's keys, whatever format it has.

    The format is detected by :func:`models.convert.detect` (this project's, the published
    code's, official TSM, 3D-ResNets-PyTorch, torchvision; docs/models.md).

    Args:
        model: the target module, when known (a wrapped checkpoint with its keys is accepted
            as this project's format).
        key: the checkpoint entry with the weights (``state_dict_sp`` for DRL spatial models).
        ckpt: the file's content when already loaded.
    Returns:
        ``(format, state_dict)``.
    Raises:
        CheckpointError: one line naming the file and the formats tried.
    """
    ckpt = load_checkpoint(path) if ckpt is None else ckpt
    keys = unwrap(model).state_dict().keys() if model is not None else None
    try:
        fmt, state = detect(ckpt, key=key, model_keys=keys)
    except UnknownFormat as e:
        raise CheckpointError(f'{path}: unknown checkpoint format: {e}') from None
    return fmt, state


def check_shapes(model, state, path):
    """Raise a one-line ``CheckpointError`` at the first key whose shape differs from the model's."""
    own = unwrap(model).state_dict()
    for k, v in state.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise CheckpointError(f'{path}: shape mismatch at {k}: {tuple(v.shape)} in the checkpoint, '
                                  f'{tuple(own[k].shape)} in the model')


def load_pretrained(model, path, copy_head=False, key='state_dict'):
    """Load weights from a checkpoint file into ``model``.

    Any format :func:`read_weights` detects is accepted. The classifier (``head.*``) is dropped
    unless ``copy_head``: fine-tuning to a new label set starts from a fresh head. Every other
    key must match (strict); the missing ``head.*`` keys are the only ones expected to be absent.

    Returns:
        The loaded checkpoint dict (for callers that want ``epoch`` etc.).
    """
    ckpt = load_checkpoint(path)
    fmt, state = read_weights(path, model, key, ckpt)
    if not copy_head:
        state = {k: v for k, v in state.items() if not k.startswith('head.')}
    target = unwrap(model)
    check_shapes(target, state, path)
    result = target.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if copy_head or not k.startswith('head.')]
    if missing or result.unexpected_keys:
        raise CheckpointError(f'{path}: weights do not fit the model (read as {fmt} format): missing {missing[:5]}, '
                           f'unexpected {result.unexpected_keys[:5]}')
    log.info('loaded %s from %s (%s format, %s)', key, path, fmt, 'with head' if copy_head else 'head reset')
    return ckpt


def unwrap(model):
    """The plain module inside DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, 'module'):
            model = model.module
        elif hasattr(model, '_orig_mod'):
            model = model._orig_mod
        else:
            return model


def rng_state():
    """Every RNG state a resumed run needs (torch, CUDA, numpy, python)."""
    state = {'torch': torch.get_rng_state(), 'numpy': np.random.get_state()[1].tolist(),
             'python': repr(random.getstate())}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state['torch'])
    np_state = np.random.get_state()
    np.random.set_state((np_state[0], np.array(state['numpy'], dtype=np_state[1].dtype)) + np_state[2:])
    # python's state is a tuple of ints: rebuild it from its repr without eval of arbitrary code
    version, internal, gauss = _parse_py_state(state['python'])
    random.setstate((version, internal, gauss))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _parse_py_state(text):
    import ast
    return ast.literal_eval(text)
