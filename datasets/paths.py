"""Where dataset files are: data roots, annotation/video sub-folders, missing-file bookkeeping.

A dataset root is found, in order, from

1. ``cfg['dataset']['root']``;
2. ``$DRL_<NAME>_ROOT`` (e.g. ``DRL_KINETICS_400_ROOT``), then ``$DRL_DATA_ROOT/<dirname>``;
3. a user paths file, ``$DRL_PATHS_FILE`` or ``~/.config/drl/paths.yaml``, a YAML mapping
   ``dataset name -> path`` (``~`` and ``$VARS`` are expanded).

Nothing is ever written under the root or into the source tree.
"""
import logging
import os
import pathlib

import yaml

log = logging.getLogger(__name__)

DEFAULT_PATHS_FILE = '~/.config/drl/paths.yaml'


def env_name(name):
    """``'kinetics_400'`` -> ``'DRL_KINETICS_400_ROOT'``."""
    return 'DRL_' + ''.join(c if c.isalnum() else '_' for c in name).upper() + '_ROOT'


def _expand(path):
    return pathlib.Path(os.path.expandvars(os.path.expanduser(str(path))))


def paths_file():
    """The user paths file in use (it may not exist)."""
    return _expand(os.environ.get('DRL_PATHS_FILE') or DEFAULT_PATHS_FILE)


def _from_paths_file(name, default_dirname):
    path = paths_file()
    if not path.is_file():
        return None, path
    with open(path) as f:
        table = yaml.safe_load(f) or {}
    if not isinstance(table, dict):
        raise ValueError(f'{path}: expected a mapping "dataset name: path", got {type(table).__name__}')
    for key in (name, default_dirname):
        if table.get(key):
            return _expand(table[key]), path
    return None, path


def candidate_roots(cfg, name, default_dirname):
    """``[(where, path)]`` for every configured root, in priority order (first one wins)."""
    out = []
    root = (cfg.get('dataset') or {}).get('root')
    if root:
        out.append(('dataset.root', _expand(root)))
    var = env_name(name)
    if os.environ.get(var):
        out.append((var, _expand(os.environ[var])))
    if os.environ.get('DRL_DATA_ROOT'):
        out.append(('DRL_DATA_ROOT', _expand(os.environ['DRL_DATA_ROOT']) / default_dirname))
    path, file = _from_paths_file(name, default_dirname)
    if path is not None:
        out.append((str(file), path))
    return out


def resolve_root(cfg, default_dirname, name=None, expects=''):
    """Find the data root of a dataset.

    Args:
        cfg: the config dict (``cfg['dataset']['root']`` wins when set).
        default_dirname: folder name under ``$DRL_DATA_ROOT``; also the paths-file key.
        name: dataset name used for the environment variable (default: ``default_dirname``).
        expects: a short description of the expected layout for the error message.
    Returns:
        ``pathlib.Path`` of an existing folder.
    Raises:
        FileNotFoundError: one line naming the dataset, the options and the expected layout.
    """
    name = name or default_dirname
    var = env_name(name)
    hint = f' (expects {expects})' if expects else ''
    found = candidate_roots(cfg, name, default_dirname)
    if not found:
        raise FileNotFoundError(
            f'{name}: no data root; set dataset.root, {var} or DRL_DATA_ROOT '
            f'(-> $DRL_DATA_ROOT/{default_dirname}) or add "{name}: PATH" to {paths_file()}{hint}')
    where, path = found[0]
    if not path.is_dir():
        raise FileNotFoundError(f'{name}: data root {path} (from {where}) is not a folder{hint}')
    return path


def first_existing(root, candidates, kind='dir'):
    """First ``root / c`` that exists (folder or file); ``None`` when none does."""
    check = pathlib.Path.is_dir if kind == 'dir' else pathlib.Path.is_file
    for c in candidates:
        p = root / c if c else root
        if check(p):
            return p
    return None


def require_file(root, name, dataset, subdirs=('',), expects=''):
    """``root/<subdir>/name`` for the first subdir holding it, else FileNotFoundError."""
    path = first_existing(root, [os.path.join(s, name) if s else name for s in subdirs], 'file')
    if path is None:
        where = ' or '.join(str(root / s / name) if s else str(root / name) for s in subdirs)
        hint = f' (expects {expects})' if expects else ''
        raise FileNotFoundError(f'{dataset}: annotation file not found: {where}{hint}')
    return path


def split_existing(records, dataset, split):
    """Keep the records whose file (or frame folder) exists; warn once with the count.

    Args:
        records: list of ``VideoRecord``.
    Returns:
        ``(found, missing)``: the present records and the paths of the absent ones.
    Raises:
        FileNotFoundError: when the annotations list videos but none is on disk.
    """
    found, missing = [], []
    for r in records:
        ok = os.path.isdir(r.path) if r.kind == 'frames' else os.path.isfile(r.path)
        (found if ok else missing).append(r if ok else str(r.path))
    if missing:
        log.warning('%s/%s: %d of %d annotated videos not found (skipped), e.g. %s; '
                    'tools/check_dataset.py lists them all', dataset, split, len(missing),
                    len(records), missing[0])
    if records and not found:
        raise FileNotFoundError(f'{dataset}/{split}: none of the {len(records)} annotated videos '
                                f'exists, e.g. {missing[0]}')
    return found, missing


def annotation_phase(clip_args, split, aliases, default_train='train', default_eval='val'):
    """Which official annotation split a config split reads.

    ``clip_args['phase']`` wins (official names accepted through ``aliases``); otherwise
    training splits (``train``, ``base``) read ``default_train`` and the others ``default_eval``.
    """
    phase = clip_args.get('phase')
    if phase is None:
        return default_train if is_train(split) else default_eval
    phase = aliases.get(phase, phase)
    if phase not in set(aliases.values()):
        raise ValueError(f"phase {clip_args['phase']!r} unknown; use one of {sorted(aliases)}")
    return phase


def is_train(split):
    """Training splits get the train transform and random temporal sampling."""
    return split in ('train', 'base')


def finish(cfg, name, split, records, classes, clip_args, transform):
    """Drop missing files (counted warning) and build the ``VideoDataset``.

    The dataset also carries ``name``, ``split``, ``n_annotated`` and ``missing`` (paths) so
    that ``tools/check_dataset.py`` can report them.
    """
    from .base import VideoDataset  # late: base.py imports torch / the decoders

    found, missing = split_existing(records, name, split)
    ds = VideoDataset(found, classes, clip_args, transform, train=is_train(split),
                      seed=cfg.get('seed', 0))
    ds.name, ds.split, ds.n_annotated, ds.missing = name, split, len(records), missing
    return ds
