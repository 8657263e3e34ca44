"""UCF101, splits 1-3 (``dataset.args.<split>.split``: 1, 2, 3 or the authors' ``'01'``).

On-disk layout (root: see :mod:`datasets.paths`)::

    <root>/ucfTrainTestlist/classInd.txt        "1 ApplyEyeMakeup" (1-based, class order)
    <root>/ucfTrainTestlist/trainlist0N.txt     "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    <root>/ucfTrainTestlist/testlist0N.txt      "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    <root>/UCF-101/<Class>/v_<Class>_gXX_cYY.avi

(the list files may also sit in ``<root>`` and the class folders directly under ``<root>``).
The published code's layout (:func:`datasets.paths.find_layout`) is also accepted: the list
files in ``<root>/ucfTrainTestlist/`` or ``<root>/anno/``, the class folders in ``<root>/data/``
(or ``<root>/video/``).
The label comes from the class folder of each listed path (case-insensitive match with
``classInd.txt``, since the official files spell e.g. ``HandStandPushups`` two ways).
"""
import pathlib

from .annotations import integer, parse_rows
from .base import VideoRecord
from .paths import LayoutSpec, require_file
from .registry import register_family

EXPECTS = '<root>/ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt and <root>/UCF-101/<Class>/*.avi'
LAYOUTS = {'project': LayoutSpec(('ucfTrainTestlist', ''), ('UCF-101', 'UCF101', 'videos'),
                                  root_videos=True),
           'published': LayoutSpec(('anno', 'ucfTrainTestlist'), ('data', 'video'))}
MARKERS = ('classInd.txt',)
PHASES = {'train': 'train', 'test': 'test', 'val': 'test', 'validation': 'test'}
CLASSIND_FORMAT = '"<index> <ClassName>" per line, index from 1'
LIST_FORMAT = {'train': '"<ClassName>/<video>.avi <index>" per line',
               'test': '"<ClassName>/<video>.avi" per line'}


def split_number(value):
    """``1``, ``'1'`` or ``'01'`` -> ``1`` (checked to be 1..3)."""
    n = int(value)
    if n not in (1, 2, 3):
        raise ValueError(f'ucf101: split must be 1, 2 or 3, got {value!r}')
    return n


def read_class_index(path):
    """``classInd.txt`` -> class names ordered by their 1-based index."""
    pairs = parse_rows(path, lambda f: (integer(f[0], 'index'), f[1]), CLASSIND_FORMAT, columns=(2, 2))
    return [name for _, name in sorted(pairs)]


def parse(ann_dir, video_dir, phase, split=1):
    """Parse ``<phase>list0<split>.txt``.

    Args:
        ann_dir: folder of the list files; video_dir: folder of the class folders.
    Returns:
        ``(classes, records)`` with ``vid`` the file stem (``v_ApplyEyeMakeup_g08_c01``).
    """
    classes = read_class_index(require_file(ann_dir, 'classInd.txt', 'ucf101', expects=EXPECTS))
    lower = {c.lower(): i for i, c in enumerate(classes)}
    listing = require_file(ann_dir, f'{phase}list{split:02d}.txt', 'ucf101', expects=EXPECTS)

    def record(fields):
        rel = fields[0]
        if len(fields) > 1:
            integer(fields[1], 'class index')
        cls = rel.split('/')[0].lower()
        if cls not in lower:
            raise ValueError(f'class folder {rel.split("/")[0]!r} of {rel!r} is not in classInd.txt')
        return VideoRecord(str(video_dir / rel), lower[cls], pathlib.Path(rel).stem, 'video')

    columns = (2, 2) if phase == 'train' else (1, 2)
    return classes, parse_rows(listing, record, LIST_FORMAT[phase], columns=columns)


def read(cfg, layout, phase, clip_args):
    return parse(layout.ann_dir, layout.video_dir, phase, split_number(clip_args.get('split', 1)))


register_family('ucf101', read, expects=EXPECTS, layouts=LAYOUTS, markers=MARKERS, phases=PHASES,
                default_eval='test')
