"""Diving48 (V2 annotations); registered as ``diving`` (the authors' name), ``diving48`` and
``diving_fs``.

On-disk layout (root: see :mod:`datasets.paths`)::

    <root>/Diving48_V2_train.json   [{"vid_name": "-mmq0PT-u8k_00155", "label": 0,
    <root>/Diving48_V2_test.json      "start_frame": 0, "end_frame": 43}, ...]
    <root>/Diving48_vocab.json      [["Back", "15som", "05Twis", "FREE"], ...]  (index = label)
    <root>/rgb/<vid_name>.mp4       (the official Diving48_rgb.tar.gz; or directly in <root>)

The published code's layout (:func:`datasets.paths.find_layout`) is also accepted::

    <root>/anno/Diving48_V2_{train,test}.json  <root>/anno/Diving48_vocab.json
    <root>/rgb/<vid_name>.mp4       (or <root>/video/)

Class names are the four vocabulary fields joined by spaces. Phase ``all`` (the few-shot
default) reads train and test together.
"""
import json

from .base import VideoRecord
from .paths import LayoutSpec, require_file
from .registry import register_family

EXPECTS = '<root>/Diving48_V2_{train,test}.json, Diving48_vocab.json, rgb/<vid_name>.mp4'
PHASES = {'train': 'train', 'test': 'test', 'val': 'test', 'validation': 'test', 'all': 'all'}
LAYOUTS = {'project': LayoutSpec(('',), ('rgb', 'videos'), root_videos=True),
           'published': LayoutSpec(('anno',), ('rgb', 'video'))}
MARKERS = ('Diving48_vocab.json',)


def read_vocab(path):
    with open(path) as f:
        vocab = json.load(f)
    return [' '.join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for v in vocab]


def parse(ann_dir, video_dir, phase):
    """Parse ``Diving48_V2_<phase>.json`` (``phase``: train, test or all).

    Args:
        ann_dir: folder of the json files; video_dir: folder of the ``.mp4`` files.
    Returns:
        ``(classes, records)`` with ``vid`` = ``vid_name``.
    """
    classes = read_vocab(require_file(ann_dir, 'Diving48_vocab.json', 'diving48', expects=EXPECTS))
    records = []
    for part in (('train', 'test') if phase == 'all' else (phase,)):
        ann = require_file(ann_dir, f'Diving48_V2_{part}.json', 'diving48', expects=EXPECTS)
        with open(ann) as f:
            entries = json.load(f)
        for e in entries:
            label = int(e['label'])
            if not 0 <= label < len(classes):
                raise ValueError(f'{ann}: label {label} of {e["vid_name"]} outside the vocabulary')
            records.append(VideoRecord(str(video_dir / f"{e['vid_name']}.mp4"), label,
                                       e['vid_name'], 'video'))
    return classes, records


def read(cfg, layout, phase, clip_args):
    return parse(layout.ann_dir, layout.video_dir, phase)


register_family('diving48', read, expects=EXPECTS, layouts=LAYOUTS, markers=MARKERS, phases=PHASES,
                names=('diving', 'diving48'), fewshot_names=('diving_fs',), default_eval='test',
                fewshot_eval='all')
