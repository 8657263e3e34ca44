"""UCF101, splits 1-3 (``dataset.args.<split>.split``: 1, 2, 3 or the authors' ``'01'``).

On-disk layout (root: see :mod:`datasets.paths`)::

    <root>/ucfTrainTestlist/classInd.txt        "1 ApplyEyeMakeup" (1-based, class order)
    <root>/ucfTrainTestlist/trainlist0N.txt     "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    <root>/ucfTrainTestlist/testlist0N.txt      "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    <root>/UCF-101/<Class>/v_<Class>_gXX_cYY.avi

(the list files may also sit in ``<root>`` and the class folders directly under ``<root>``).
The label comes from the class folder of each listed path (case-insensitive match with
``classInd.txt``, since the official files spell e.g. ``HandStandPushups`` two ways).
"""
import pathlib

from . import DATASETS
from .base import VideoRecord
from .fewshot_splits import fewshot_view
from .paths import annotation_phase, finish, first_existing, require_file, resolve_root

EXPECTS = '<root>/ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt and <root>/UCF-101/<Class>/*.avi'
ANN_DIRS = ('ucfTrainTestlist', '')
PHASES = {'train': 'train', 'test': 'test', 'val': 'test', 'validation': 'test'}


def split_number(value):
    """``1``, ``'1'`` or ``'01'`` -> ``1`` (checked to be 1..3)."""
    n = int(value)
    if n not in (1, 2, 3):
        raise ValueError(f'ucf101: split must be 1, 2 or 3, got {value!r}')
    return n


def read_class_index(path):
    """``classInd.txt`` -> class names ordered by their 1-based index."""
    pairs = []
    with open(path) as f:
        for line in f:
            if line.strip():
                idx, name = line.split()
                pairs.append((int(idx), name))
    return [name for _, name in sorted(pairs)]


def parse(root, phase, split=1):
    """Parse ``<phase>list0<split>.txt``.

    Returns:
        ``(classes, records)`` with ``vid`` the file stem (``v_ApplyEyeMakeup_g08_c01``).
    """
    classes = read_class_index(require_file(root, 'classInd.txt', 'ucf101', ANN_DIRS, EXPECTS))
    lower = {c.lower(): i for i, c in enumerate(classes)}
    listing = require_file(root, f'{phase}list{split:02d}.txt', 'ucf101', ANN_DIRS, EXPECTS)
    video_dir = first_existing(root, ('UCF-101', 'UCF101', 'videos')) or root
    records = []
    with open(listing) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            rel = parts[0]
            cls = rel.split('/')[0].lower()
            if cls not in lower:
                raise ValueError(f'{listing}: class folder of {rel!r} is not in classInd.txt')
            records.append(VideoRecord(str(video_dir / rel), lower[cls], pathlib.Path(rel).stem, 'video'))
    return classes, records


def _build(cfg, split, clip_args, transform, name, fewshot=False):
    root = resolve_root(cfg, 'ucf101', expects=EXPECTS)
    phase = annotation_phase(clip_args, split, PHASES, default_eval='test')
    classes, records = parse(root, phase, split_number(clip_args.get('split', 1)))
    if fewshot:
        classes, records = fewshot_view('ucf101', classes, records, clip_args, split)
    return finish(cfg, name, split, records, classes, clip_args, transform)


@DATASETS.register('ucf101')
def ucf101(cfg, split, clip_args, transform):
    return _build(cfg, split, clip_args, transform, 'ucf101')


@DATASETS.register('ucf101_fs')
def ucf101_fs(cfg, split, clip_args, transform):
    return _build(cfg, split, clip_args, transform, 'ucf101_fs', fewshot=True)
