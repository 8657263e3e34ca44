"""HMDB51, splits 1-3 (``dataset.args.<split>.split``); registered as ``hmdb`` (the authors'
config name), ``hmdb51`` and ``hmdb_fs``.

On-disk layout (root: see :mod:`datasets.paths`)::

    <root>/testTrainMulti_7030_splits/<class>_test_split<N>.txt   "<video>.avi <tag>"
    <root>/<class>/<video>.avi

tag 1 = train, 2 = test, 0 = unused (the split files may also sit in ``<root>`` itself, and
the class folders in ``<root>/videos``). Classes are the 51 class names sorted.
"""
import pathlib

from . import DATASETS
from .base import VideoRecord
from .fewshot_splits import fewshot_view
from .paths import annotation_phase, finish, first_existing, resolve_root

EXPECTS = '<root>/testTrainMulti_7030_splits/<class>_test_split1.txt and <root>/<class>/<video>.avi'
ANN_DIRS = ('testTrainMulti_7030_splits', 'splits', '')
PHASES = {'train': 'train', 'test': 'test', 'val': 'test', 'validation': 'test', 'all': 'all'}
TAGS = {'train': {'1'}, 'test': {'2'}, 'all': {'0', '1', '2'}}
SUFFIX = '_test_split{}.txt'


def split_files(root, split):
    """``{class name: split file}`` for split ``split`` (1..3)."""
    if int(split) not in (1, 2, 3):
        raise ValueError(f'hmdb51: split must be 1, 2 or 3, got {split!r}')
    suffix = SUFFIX.format(int(split))
    for sub in ANN_DIRS:
        folder = root / sub if sub else root
        files = sorted(folder.glob(f'*{suffix}')) if folder.is_dir() else []
        if files:
            return {p.name[:-len(suffix)]: p for p in files}
    raise FileNotFoundError(f'hmdb51: no *{suffix} files in {root} (expects {EXPECTS})')


def parse(root, phase, split=1):
    """Parse the split files of one split.

    Args:
        phase: ``'train'`` (tag 1), ``'test'`` (tag 2) or ``'all'`` (every listed video).
    Returns:
        ``(classes, records)``; classes sorted by name, ``vid`` = file stem.
    """
    files = split_files(root, split)
    classes = sorted(files)
    video_dir = first_existing(root, ('videos', 'hmdb51_org')) or root
    records = []
    for label, cls in enumerate(classes):
        with open(files[cls]) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 2:
                    continue
                name, tag = parts
                if tag in TAGS[phase]:
                    records.append(VideoRecord(str(video_dir / cls / name), label,
                                               pathlib.Path(name).stem, 'video'))
    return classes, records


def _build(cfg, split, clip_args, transform, name, fewshot=False):
    root = resolve_root(cfg, 'hmdb51', expects=EXPECTS)
    # Few-shot novel classes use every listed video of the class (the authors' default).
    phase = annotation_phase(clip_args, split, PHASES, default_eval='all' if fewshot else 'test')
    classes, records = parse(root, phase, clip_args.get('split', 1))
    if fewshot:
        classes, records = fewshot_view('hmdb51', classes, records, clip_args, split)
    return finish(cfg, name, split, records, classes, clip_args, transform)


@DATASETS.register('hmdb')
def hmdb(cfg, split, clip_args, transform):
    return _build(cfg, split, clip_args, transform, 'hmdb')


@DATASETS.register('hmdb51')
def hmdb51(cfg, split, clip_args, transform):
    return _build(cfg, split, clip_args, transform, 'hmdb51')


@DATASETS.register('hmdb_fs')
def hmdb_fs(cfg, split, clip_args, transform):
    return _build(cfg, split, clip_args, transform, 'hmdb_fs', fewshot=True)
