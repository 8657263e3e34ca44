"""Kinetics-400 and Mini-Kinetics-200.

On-disk layout (root: see :mod:`datasets.paths`)::

    <root>/train.csv  validate.csv         label,youtube_id,time_start,time_end,split
    <root>/label_map.txt                   optional: one class name per line (class order)
    <root>/train/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4
    <root>/val/<label>/...                 (``validate/`` also accepted; or no split folder)

A ``<label>`` folder may use the csv name ("air drumming") or underscores ("air_drumming"),
or be absent (the CVDF release: ``<root>/train/<youtube_id>_<start>_<end>.mp4``, ``val.csv``).
Without ``label_map.txt`` the classes are the sorted labels of ``train.csv``.
Mini-Kinetics-200: its own ``train.csv`` / ``validate.csv`` / ``label_map.txt`` under the
``mini_kinetics_200`` root; the videos are those of the Kinetics-400 root (or of
``dataset.video_root``, which every family takes, with ``dataset.ann_root``: see
:func:`datasets.paths.explicit_layout`).

The published code's layout (:func:`datasets.paths.find_layout`) is also accepted::

    <root>/anno/kinetics400/{train,validate}.csv, label_map.txt     (or directly in <root>/anno/)
    <root>/anno/minikinetics200/{train,validate}.csv, label_map.txt (Mini-Kinetics-200)
    <root>/video/[train|validate/]<label>/<youtube_id>_<start:06d>_<end:06d>.mp4

One folder may serve both names there (point the ``mini_kinetics_200`` root at it too).
"""
import logging
import math

from .annotations import parse_rows
from .base import VideoRecord
from .paths import LayoutSpec, first_existing, layout_setting, require_file, resolve_root
from .registry import register_family

EXPECTS = '<root>/train.csv, validate.csv, [label_map.txt], train/<label>/<ytid>_<start>_<end>.mp4, val/...'
PHASES = {'train': 'train', 'val': 'val', 'validate': 'val', 'validation': 'val', 'test': 'val'}
CSV_NAMES = {'train': ('train.csv',), 'val': ('validate.csv', 'val.csv')}  # DeepMind, CVDF
SPLIT_DIRS = {'train': ('train',), 'val': ('val', 'validate', 'valid', 'validation')}
PUBLISHED_VIDEO_DIRS = ('video', 'videos')
LAYOUTS = {
    'kinetics_400': {'project': LayoutSpec(('',), root_videos=True),
                     'published': LayoutSpec(('anno/kinetics400', 'anno'), PUBLISHED_VIDEO_DIRS)},
    # Mini-Kinetics reads the Kinetics-400 videos unless its root has its own
    'mini_kinetics_200': {'project': LayoutSpec(('',), videos_required=False),
                          'published': LayoutSpec(('anno/minikinetics200', 'anno'), PUBLISHED_VIDEO_DIRS,
                                                  videos_required=False)},
}
MARKERS = ('train.csv', 'validate.csv', 'val.csv', 'label_map.txt')
COLUMNS = ('label', 'youtube_id', 'time_start', 'time_end')
CSV_FORMAT = 'csv with the header label,youtube_id,time_start,time_end[,split,...] and a row per video'
LABEL_MAP_FORMAT = 'one class name per line'

log = logging.getLogger(__name__)


def read_rows(csv_path):
    """Rows of a Kinetics csv as dicts (label, youtube_id, time_start, time_end, ...); the
    times are checked to be numbers."""
    def row(r):
        for key in ('time_start', 'time_end'):
            try:
                ok = math.isfinite(float(r[key]))
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f'{key} {r[key]!r} is not a number')
        return r

    return parse_rows(csv_path, row, CSV_FORMAT, form='header-csv', header=COLUMNS)


def read_classes(ann_dir):
    """Class names: ``label_map.txt`` if present, else the sorted labels of ``train.csv``."""
    label_map = ann_dir / 'label_map.txt'
    if label_map.is_file():
        return parse_rows(label_map, str, LABEL_MAP_FORMAT, form='names')
    train_csv = require_file(ann_dir, 'train.csv', 'kinetics', expects=EXPECTS)
    return sorted({r['label'] for r in read_rows(train_csv)})


def video_name(row):
    start, end = int(float(row['time_start'])), int(float(row['time_end']))
    return f"{row['youtube_id']}_{start:06d}_{end:06d}"


def parse(ann_dir, video_root, phase):
    """Parse one official split.

    Args:
        ann_dir: folder holding the csv files (and ``label_map.txt``).
        video_root: folder holding ``train/`` and ``val/`` (or the class folders directly).
        phase: ``'train'`` or ``'val'``.
    Returns:
        ``(classes, records)``; rows whose label is not a class are dropped.
    """
    csv_path = first_existing(ann_dir, CSV_NAMES[phase], 'file') or require_file(
        ann_dir, CSV_NAMES[phase][0], 'kinetics', expects=EXPECTS)
    classes = read_classes(ann_dir)
    index = {c: i for i, c in enumerate(classes)}
    base = first_existing(video_root, SPLIT_DIRS[phase]) or video_root
    label_dirs = {}
    records = []
    rows = read_rows(csv_path)
    for row in rows:
        label = row['label']
        if label not in index:
            continue
        if label not in label_dirs:  # csv name, underscore spelling, or no class folders (CVDF)
            label_dirs[label] = first_existing(base, (label, label.replace(' ', '_')), 'dir') or base
        vid = video_name(row)
        records.append(VideoRecord(str(label_dirs[label] / f'{vid}.mp4'), index[label], vid, 'video'))
    if len(records) < len(rows):
        unknown = next(r['label'] for r in rows if r['label'] not in index)
        log.warning('%s: %d of %d rows have a label that is not a class (dropped), e.g. %r',
                    csv_path, len(rows) - len(records), len(rows), unknown)
    return classes, records


def video_folder(cfg, root):
    """The folder holding ``train/`` / ``val/`` (or the class folders) in a Kinetics-400 root or
    a ``dataset.video_root``: the folder itself, or its ``video/`` folder (published layout)."""
    if layout_setting(cfg) == 'project' or first_existing(root, SPLIT_DIRS['train'] + SPLIT_DIRS['val']):
        return root
    return first_existing(root, PUBLISHED_VIDEO_DIRS) or root


def k400_videos(cfg):
    """Folder of the Kinetics-400 videos for Mini-Kinetics (without ``dataset.video_root``):
    the Kinetics-400 root from the environment or the paths file (:func:`video_folder`)."""
    return video_folder(cfg, resolve_root({'dataset': {}}, 'kinetics_400', expects=EXPECTS))


def read(cfg, layout, phase, clip_args):
    video_root = layout.video_dir
    if (cfg.get('dataset') or {}).get('video_root'):  # given: the K400 videos for Mini-Kinetics
        video_root = video_folder(cfg, layout.video_dir)
    elif video_root is None:  # Mini-Kinetics: own videos (project: a train/ folder) or the K400 ones
        video_root = layout.root if first_existing(layout.root, SPLIT_DIRS['train']) else k400_videos(cfg)
    return parse(layout.ann_dir, video_root, phase)


register_family('kinetics_400', read, expects=EXPECTS, layouts=LAYOUTS['kinetics_400'], markers=MARKERS,
                phases=PHASES)
register_family('mini_kinetics_200', read, expects=EXPECTS, layouts=LAYOUTS['mini_kinetics_200'],
                markers=MARKERS, phases=PHASES, fewshot_names=())
