"""Checkpoints and result files: atomic writes, safe loads, pretrained-weight loading."""
import errno
import json
import logging
import math
import os
import pickle
import random
import shutil

import numpy as np
import torch

from core.errors import UserError, WriteError
from models.convert import UnknownFormat, detect

log = logging.getLogger(__name__)

# Version of this project's checkpoint layout (``format_version`` in every checkpoint written).
# 1: adds format_version, script, seed, debug; the python RNG state as a list of ints.
# Files without the key (older ones, other projects') are read as before.
FORMAT_VERSION = 1


class CheckpointError(UserError, RuntimeError):
    """An unreadable checkpoint, or one whose weights do not fit the model."""


def _tmp_name(path):
    d = os.path.dirname(os.path.abspath(path))
    return os.path.join(d, f'.{os.path.basename(path)}.tmp{os.getpid()}')


def _atomic(path, write, copies=()):
    """Write through ``write(tmp_path)`` then rename, so ``path`` is never half-written.

    ``copies`` get the same bytes (each copied to its own temp file and renamed) *before*
    ``path`` is replaced. A failed write raises :class:`WriteError` (one line naming the file)
    when the cause is the disk or its permissions, and leaves no temporary file behind.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = _tmp_name(path)
    current = path
    try:
        write(tmp)
        for dst in copies:
            current = dst
            _atomic(dst, lambda t: shutil.copyfile(tmp, t))
        current = path
        os.replace(tmp, path)
    except WriteError:
        raise
    except (OSError, RuntimeError) as e:
        err = _write_error(e, current)
        if err is None:
            raise
        raise err from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_error(exc, path):
    """A :class:`WriteError` for a failure caused by the disk, or ``None`` (a bug: re-raise).

    ``torch.save`` reports a full disk as a ``RuntimeError`` from its zip writer
    (``[enforce fail at inline_container.cc ...] unexpected pos`` / ``file write failed``), without
    an errno; then the free space of the folder decides. Called while the temporary file still
    exists, so "full" means what this write met.
    """
    code = getattr(exc, 'errno', None)
    text = str(exc)
    if code is None and isinstance(exc, RuntimeError):
        if not any(w in text for w in ('inline_container', 'file write failed', 'unexpected pos',
                                       'No space left', 'PytorchStreamWriter')):
            return None
        if 'No space left' in text or _free_bytes(path) < (1 << 20):
            code = errno.ENOSPC
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = 'no space left on device' if code == errno.ENOSPC else 'disk quota exceeded'
        return WriteError(code, f'{what} while writing {path}')
    if code in (errno.EACCES, errno.EPERM):
        return WriteError(code, f'cannot write {path}: permission denied')
    if code == errno.EROFS:
        return WriteError(code, f'cannot write {path}: read-only file system')
    if code == errno.EFBIG:
        return WriteError(code, f'cannot write {path}: file too large for this file system or limit')
    if code is None and isinstance(exc, RuntimeError):
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return WriteError(errno.EIO, f'cannot write {path}: {first}')
    return None


def _free_bytes(path):
    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    except OSError:
        return 1 << 62


def save_checkpoint(state, path, copies=()):
    """``torch.save`` ``state`` to ``path`` atomically (temp file + ``os.replace``).

    Args:
        copies: other paths that get the same file (e.g. ``model_best.pth.tar``): the bytes
            just written are copied, not serialised again, and every copy is in place before
            ``path`` is replaced.
    Raises:
        WriteError: full disk / permission / read-only folder (one line naming the file).
    """
    _atomic(path, lambda tmp: torch.save(state, tmp), copies)


def finite_json(obj):
    """``obj`` with every NaN / ±inf float replaced by ``None`` (recursively in dicts, lists)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def save_json(obj, path):
    """Write JSON atomically (``results.json`` is the last file of a run).

    The file is always strict JSON: non-finite numbers (a diverged metric) become ``null``.
    """
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(finite_json(obj), f, indent=2, sort_keys=False, allow_nan=False)
            f.write('\n')
    _atomic(path, write)


def save_safetensors(state_dict, path, metadata=None):
    """Write a state dict as a ``.safetensors`` file (weights only), atomically.

    Tensors are stored contiguous on the CPU; tensors sharing memory are written as copies
    (safetensors refuses aliases). ``metadata``: str → str, stored in the file's header.
    """
    from safetensors.torch import save_file
    out, seen = {}, set()
    for k, v in state_dict.items():
        v = v.detach().cpu().contiguous()
        if v.numel() and v.untyped_storage().data_ptr() in seen:
            v = v.clone()
        elif v.numel():
            seen.add(v.untyped_storage().data_ptr())
        out[k] = v
    meta = {'format': 'pt', **{str(k): str(v) for k, v in (metadata or {}).items()}}
    _atomic(path, lambda tmp: save_file(out, tmp, metadata=meta))


def _load_safetensors(path):
    """The flat state dict of a ``.safetensors`` file (no code can run: the format holds tensors
    and a JSON header only)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(path, device='cpu')
    except (SafetensorError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f'cannot read checkpoint {path}: {first}') from None


def _is_safetensors(path):
    """``.safetensors`` by name, or by its header: an 8-byte little-endian length, then ``{``."""
    if str(path).endswith('.safetensors'):
        return True
    with open(path, 'rb') as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b'{' and int.from_bytes(head[:8], 'little') < os.path.getsize(path)


# weight files of a Hugging Face model folder (save_pretrained), in the order they are looked for
HF_WEIGHT_FILES = ('model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin')


def _load_folder(path):
    """The state dict of a Hugging Face model folder: ``model.safetensors`` (or its shards, listed
    in ``model.safetensors.index.json``), else ``pytorch_model.bin`` (``weights_only``)."""
    for name in HF_WEIGHT_FILES:
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            continue
        if name.endswith('.index.json'):
            try:
                with open(file) as f:
                    shards = sorted(set(json.load(f)['weight_map'].values()))
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise CheckpointError(f'cannot read {file}: {str(e).splitlines()[0] if str(e) else type(e).__name__}') from None
            state = {}
            for shard in shards:
                state.update(_load_safetensors(os.path.join(path, shard)))
            return state
        return _load_safetensors(file) if name.endswith('.safetensors') else load_checkpoint(file)
    found = sorted(n for n in os.listdir(path) if n.endswith(CHECKPOINT_SUFFIXES)
                   and os.path.isfile(os.path.join(path, n)))
    inside = (f'checkpoint files in it: {", ".join(found[:10])}{" …" if len(found) > 10 else ""}; '
              'give one of them' if found else 'it holds no checkpoint file')
    raise CheckpointError(f'{path} is a folder, not a checkpoint file (nor a model folder with one of '
                          f'{", ".join(HF_WEIGHT_FILES)}); {inside}')


CHECKPOINT_SUFFIXES = ('.pth', '.pth.tar', '.pt', '.tar', '.ckpt', '.bin', '.safetensors')


def load_checkpoint(path, map_location='cpu', mmap=False):
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code from pickles).

    A ``.safetensors`` file, or a Hugging Face model folder (``model.safetensors`` /
    ``pytorch_model.bin``), gives its bare state dict.

    Args:
        mmap: map the tensors instead of reading them (cheap look at the metadata).
    Raises:
        CheckpointError: unreadable, or written in a newer ``format_version`` than this code reads.
    """
    if os.path.isdir(path):
        return _load_folder(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if _is_safetensors(path):
        return _load_safetensors(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f'cannot read checkpoint {path}: {first}') from None
    version = ckpt.get('format_version') if isinstance(ckpt, dict) else None
    if version is not None and (not isinstance(version, int) or version > FORMAT_VERSION):
        raise CheckpointError(f'{path}: checkpoint format_version {version} is newer than this code '
                              f'reads (<= {FORMAT_VERSION}); update the code')
    return ckpt


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
    version, internal, gauss = random.getstate()
    # plain ints (and None / a float): what weights_only loading accepts
    state = {'torch': torch.get_rng_state(), 'numpy': np.random.get_state()[1].tolist(),
             'python': [version, list(internal), gauss]}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state['torch'])
    np_state = np.random.get_state()
    np.random.set_state((np_state[0], np.array(state['numpy'], dtype=np_state[1].dtype)) + np_state[2:])
    py = state['python']
    if isinstance(py, str):  # checkpoints before format_version 1 stored repr(random.getstate())
        py = _parse_py_state(py)
    version, internal, gauss = py
    random.setstate((int(version), tuple(int(x) for x in internal), gauss))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _parse_py_state(text):
    """The repr of a python RNG state (a tuple of ints) read without evaluating code."""
    import ast
    return ast.literal_eval(text)
