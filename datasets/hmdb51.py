"""HMDB51, splits 1-3 (``dataset.args.<split>.split``); registered as ``hmdb`` (the authors'
config name), ``hmdb51`` and ``hmdb_fs``.

On-disk layout (root: see :mod:`datasets.paths`)::

    <root>/testTrainMulti_7030_splits/<class>_test_split<N>.txt   "<video>.avi <tag>"
    <root>/<class>/<video>.avi

tag 1 = train, 2 = test, 0 = unused (the split files may also sit in ``<root>`` itself, and
the class folders in ``<root>/videos``). Classes are the 51 class names sorted.
The published code's layout (:func:`datasets.paths.find_layout`) is also accepted: the split
files in ``<root>/testTrainMulti_7030_splits/`` or ``<root>/anno/``, the class folders in
``<root>/videos/`` (or ``<root>/video/``).
"""
import pathlib

from .annotations import integer, parse_rows
from .base import VideoRecord
from .paths import LayoutSpec
from .registry import register_family

EXPECTS = '<root>/testTrainMulti_7030_splits/<class>_test_split1.txt and <root>/<class>/<video>.avi'
LAYOUTS = {'project': LayoutSpec(('testTrainMulti_7030_splits', 'splits', ''),
                                  ('videos', 'hmdb51_org'), root_videos=True),
           'published': LayoutSpec(('anno', 'testTrainMulti_7030_splits'), ('videos', 'video'))}
MARKERS = ('*_test_split[123].txt',)
PHASES = {'train': 'train', 'test': 'test', 'val': 'test', 'validation': 'test', 'all': 'all'}
TAGS = {'train': {'1'}, 'test': {'2'}, 'all': {'0', '1', '2'}}
SUFFIX = '_test_split{}.txt'
SPLIT_FORMAT = '"<video>.avi <tag>" per line, tag 0 (unused), 1 (train) or 2 (test)'


def split_files(ann_dir, split):
    """``{class name: split file}`` for split ``split`` (1..3) in ``ann_dir``."""
    if int(split) not in (1, 2, 3):
        raise ValueError(f'hmdb51: split must be 1, 2 or 3, got {split!r}')
    suffix = SUFFIX.format(int(split))
    files = sorted(ann_dir.glob(f'*{suffix}')) if ann_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(f'hmdb51: no *{suffix} files in {ann_dir} (expects {EXPECTS})')
    return {p.name[:-len(suffix)]: p for p in files}


def parse(ann_dir, video_dir, phase, split=1):
    """Parse the split files of one split.

    Args:
        ann_dir: folder of the split files; video_dir: folder of the class folders.
        phase: ``'train'`` (tag 1), ``'test'`` (tag 2) or ``'all'`` (every listed video).
    Returns:
        ``(classes, records)``; classes sorted by name, ``vid`` = file stem.
    """
    files = split_files(ann_dir, split)
    classes = sorted(files)
    records = []
    for label, cls in enumerate(classes):
        def record(fields, label=label, cls=cls):
            name, tag = fields[0], integer(fields[1], 'tag')
            if tag not in (0, 1, 2):
                raise ValueError(f'tag {tag} is not 0, 1 or 2')
            if str(tag) in TAGS[phase]:
                return VideoRecord(str(video_dir / cls / name), label, pathlib.Path(name).stem, 'video')
            return None
        records += parse_rows(files[cls], record, SPLIT_FORMAT, columns=(2, 2))
    return classes, records


def read(cfg, layout, phase, clip_args):
    return parse(layout.ann_dir, layout.video_dir, phase, clip_args.get('split', 1))


# Few-shot novel classes use every listed video of the class (the authors' default).
register_family('hmdb51', read, expects=EXPECTS, layouts=LAYOUTS, markers=MARKERS, phases=PHASES,
                names=('hmdb', 'hmdb51'), fewshot_names=('hmdb_fs',), default_eval='test',
                fewshot_eval='all')
