"""Where dataset files are: data roots, annotation/video sub-folders, missing-file bookkeeping.

A dataset root is found, in order, from

1. ``cfg['dataset']['root']``;
2. ``$DRL_<NAME>_ROOT`` (e.g. ``DRL_KINETICS_400_ROOT``), then ``$DRL_DATA_ROOT/<dirname>``;
3. a user paths file, ``$DRL_PATHS_FILE`` or ``~/.config/drl/paths.yaml``, a YAML mapping
   ``dataset name -> path`` (``~`` and ``$VARS`` are expanded).

Under a root, a family's files follow one of two folder layouts (:func:`find_layout`): this
project's (the official archives as they extract) or the published code's (annotations under
``anno/`` beside the video or frame folder); ``dataset.layout: auto | project | published``.
``dataset.ann_root`` / ``dataset.video_root`` name the annotation and the video folder
directly, anywhere on disk (:func:`explicit_layout`); a root is then needed only for the one
not given.

Nothing is ever written under the root or into the source tree.
"""
import dataclasses
import logging
import os
import pathlib
from dataclasses import dataclass
from typing import Optional

import yaml

from .base import VideoDataset

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


TRAIN_SPLITS = ('train', 'base')


def is_train(split):
    """Training splits (:data:`TRAIN_SPLITS`) get the train transform and random temporal
    sampling, and are loaded shuffled with the last partial batch dropped."""
    return split in TRAIN_SPLITS


def finish(cfg, name, split, records, classes, clip_args, transform):
    """Drop missing files (counted warning) and build the ``VideoDataset``.

    The dataset also carries ``name``, ``split``, ``n_annotated`` and ``missing`` (paths) so
    that ``tools/check_dataset.py`` can report them.
    """
    found, missing = split_existing(records, name, split)
    ds = VideoDataset(found, classes, clip_args, transform, train=is_train(split),
                      seed=cfg.get('seed', 0))
    ds.name, ds.split, ds.n_annotated, ds.missing = name, split, len(records), missing
    return ds


# ---------------------------------------------------------------- folder layouts

LAYOUT_NAMES = ('auto', 'project', 'published')


@dataclass(frozen=True)
class LayoutSpec:
    """Where one layout keeps a family's files, relative to the dataset root.

    Attributes:
        ann_dirs: folders that may hold the annotation files, in order (``''`` = the root).
        video_dirs: folders that may hold the videos (or frame folders), in order.
        root_videos: the videos may also sit directly in the root (used when no folder of
            ``video_dirs`` exists).
        videos_required: without a video folder the layout does not match; when false the
            caller supplies the videos (Mini-Kinetics reads the Kinetics-400 ones).
    """
    ann_dirs: tuple
    video_dirs: tuple = ()
    root_videos: bool = False
    videos_required: bool = True


@dataclass(frozen=True)
class Layout:
    """A layout found under a root: ``name`` (``project`` | ``published``), the folder holding
    the annotations (``ann_dir``), the folder holding the videos (``video_dir``; ``None``: the
    caller decides), the annotation file that identified it (``marker``) and whether the
    videos sit in a named folder rather than in the root itself (``explicit_videos``)."""
    name: str
    root: pathlib.Path
    ann_dir: pathlib.Path
    video_dir: Optional[pathlib.Path]
    marker: pathlib.Path
    explicit_videos: bool


def explicit_layout(cfg, dataset, specs, markers, expects=''):
    """The layout given by ``dataset.ann_root`` / ``dataset.video_root``, or ``None`` when
    neither is set (then :func:`find_layout` looks under the root).

    ``dataset.ann_root``: the folder holding the annotation files (or one of the layouts'
    annotation sub-folders inside it, e.g. ``anno/kinetics400``); ``dataset.video_root``: the
    folder holding the videos or frame folders, as the annotations name them. The two may sit
    anywhere on disk, as the published code's ``_paths.py`` allowed. With only one of them set,
    the other is found under the dataset root as usual.

    Raises:
        FileNotFoundError: one line naming the key, the folder and what was looked for.
    """
    ds = cfg.get('dataset') or {}
    ann_root, video_root = ds.get('ann_root'), ds.get('video_root')
    if not ann_root and not video_root:
        return None
    hint = f' (expects {expects})' if expects else ''
    video = None
    if video_root:
        video = _expand(video_root)
        if not video.is_dir():
            raise FileNotFoundError(f'{dataset}: dataset.video_root {video} is not a folder{hint}')
    if ann_root:
        ann = _expand(ann_root)
        if not ann.is_dir():
            raise FileNotFoundError(f'{dataset}: dataset.ann_root {ann} is not a folder{hint}')
        subs = [''] + [d for spec in specs.values() for d in spec.ann_dirs if d]
        for sub in dict.fromkeys(subs):
            marker = _marker_in(ann / sub if sub else ann, markers)
            if marker is not None:
                break
        else:
            raise FileNotFoundError(f'{dataset}: no {"/".join(markers)} in dataset.ann_root {ann} '
                                    f'(nor in its {", ".join(s + "/" for s in subs if s)}){hint}')
        if video is None:  # the videos under the dataset root, as its layouts place them
            root = resolve_root(cfg, dataset, expects=expects)
            video = first_existing(root, [d for spec in specs.values() for d in spec.video_dirs]) or root
        return Layout('given', video, marker.parent, video, marker, True)
    root = resolve_root(cfg, dataset, expects=expects)
    relaxed = {name: dataclasses.replace(spec, videos_required=False) for name, spec in specs.items()}
    found = find_layout(cfg, root, dataset, relaxed, markers)
    return Layout(found.name, found.root, found.ann_dir, video, found.marker, True)


def layout_setting(cfg):
    """``dataset.layout`` of a config: ``auto`` (default), ``project`` or ``published``."""
    value = (cfg.get('dataset') or {}).get('layout') or 'auto'
    if value not in LAYOUT_NAMES:
        raise ValueError(f'dataset.layout must be one of {", ".join(LAYOUT_NAMES)}, got {value!r}')
    return value


def _marker_in(folder, markers):
    """First file in ``folder`` matching one of ``markers`` (names or glob patterns)."""
    if not folder.is_dir():
        return None
    for m in markers:
        if any(c in m for c in '*?['):
            hits = sorted(p for p in folder.glob(m) if p.is_file())
            if hits:
                return hits[0]
        elif (folder / m).is_file():
            return folder / m
    return None


def _match(root, name, spec, markers):
    """``(Layout or None, what was missing)`` for one layout spec under ``root``."""
    for sub in spec.ann_dirs:
        folder = root / sub if sub else root
        marker = _marker_in(folder, markers)
        if marker is not None:
            break
    else:
        return None, 'no ' + '/'.join(markers) + ' in ' + _dirs(root, spec.ann_dirs)
    video = first_existing(root, spec.video_dirs) if spec.video_dirs else None
    explicit = video is not None
    if video is None and spec.root_videos:
        video = root
    if video is None and spec.videos_required:
        return None, f'annotations in {folder} but no video folder {_dirs(root, spec.video_dirs)}'
    return Layout(name, root, folder, video, marker, explicit), ''


def _dirs(root, subs):
    return ' or '.join(f'{root}/{s}/' if s else f'{root}/' for s in subs)


def _describe(layout):
    videos = f', videos in {layout.video_dir}' if layout.video_dir is not None else ''
    return f'the {layout.name} layout ({layout.marker}{videos})'


def find_layout(cfg, root, dataset, specs, markers):
    """Which folder layout a dataset root follows: this project's or the published code's.

    ``dataset.layout`` (``auto`` | ``project`` | ``published``) names it; ``auto`` (default)
    tries each layout of ``specs`` and keeps the one whose annotation files (``markers``:
    file names or glob patterns, any of them) and video folder are found. Two layouts reading
    the same annotation file are one match: the one whose videos sit in a named folder wins
    over one falling back to the root; layouts that read different annotation files, or the
    same file with videos in two different named folders, are ambiguous.

    Args:
        cfg: the config (``dataset.layout``).
        root: the dataset root (:func:`resolve_root`).
        dataset: name for messages.
        specs: ``{'project': LayoutSpec, 'published': LayoutSpec}``.
        markers: annotation files whose presence identifies a layout.
    Returns:
        :class:`Layout`.
    Raises:
        FileNotFoundError: one line naming what was looked for, when no layout matches.
        ValueError: one line naming both matches, when ``auto`` finds two.
    """
    want = layout_setting(cfg)
    names = list(specs) if want == 'auto' else [want]
    found, missing = [], []
    for name in names:
        layout, why = _match(root, name, specs[name], markers)
        if layout is None:
            missing.append(f'{name} layout: {why}' if want == 'auto' else f'{name} layout ({why})')
        else:
            found.append(layout)
    if not found:
        if want != 'auto':
            raise FileNotFoundError(f'{dataset}: {root} is not in the {missing[0]}; dataset.layout: auto '
                                    'tries both layouts (docs/datasets.md)')
        raise FileNotFoundError(f'{dataset}: no known layout in {root} ({"; ".join(missing)}); '
                                'see docs/datasets.md for both layouts')
    if len({l.marker for l in found}) == 1 and len(found) > 1:
        named = [l for l in found if l.explicit_videos]
        if len({l.video_dir for l in found}) == 1 or not named:
            found = found[:1]
        elif len({l.video_dir for l in named}) == 1:
            found = named[:1]
    if len(found) > 1:
        raise ValueError(f'{dataset}: {root} matches ' + ' and '.join(_describe(l) for l in found)
                         + '; set dataset.layout: project or published')
    log.debug('%s: %s', dataset, _describe(found[0]))
    return found[0]
