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
from .annotations import integer, parse_rows
from .base import VideoRecord
from .paths import LayoutSpec, require_file
from .registry import register_family

EXPECTS = '<root>/Diving48_V2_{train,test}.json, Diving48_vocab.json, rgb/<vid_name>.mp4'
PHASES = {'train': 'train', 'test': 'test', 'val': 'test', 'validation': 'test', 'all': 'all'}
LAYOUTS = {'project': LayoutSpec(('',), ('rgb', 'videos'), root_videos=True),
           'published': LayoutSpec(('anno',), ('rgb', 'video'))}
MARKERS = ('Diving48_vocab.json',)
VOCAB_FORMAT = 'a JSON list of class descriptions, e.g. [["Back", "15som", "05Twis", "FREE"], ...]'
FORMAT = 'a JSON list of {"vid_name": "<name>", "label": <class index>, ...}'


def read_vocab(path):
    return parse_rows(path, lambda v: ' '.join(map(str, v)) if isinstance(v, list) else str(v), VOCAB_FORMAT,
                      form='json')


def parse(ann_dir, video_dir, phase):
    """Parse ``Diving48_V2_<phase>.json`` (``phase``: train, test or all).

    Args:
        ann_dir: folder of the json files; video_dir: folder of the ``.mp4`` files.
    Returns:
        ``(classes, records)`` with ``vid`` = ``vid_name``.
    """
    classes = read_vocab(require_file(ann_dir, 'Diving48_vocab.json', 'diving48', expects=EXPECTS))

    def record(e):
        label, name = integer(e['label'], 'label'), str(e['vid_name'])
        if not 0 <= label < len(classes):
            raise ValueError(f'label {label} of {name} is outside the vocabulary (0..{len(classes) - 1})')
        return VideoRecord(str(video_dir / f'{name}.mp4'), label, name, 'video')

    records = []
    for part in (('train', 'test') if phase == 'all' else (phase,)):
        ann = require_file(ann_dir, f'Diving48_V2_{part}.json', 'diving48', expects=EXPECTS)
        records += parse_rows(ann, record, FORMAT, form='json', kind=dict)
    return classes, records


def read(cfg, layout, phase, clip_args):
    return parse(layout.ann_dir, layout.video_dir, phase)


register_family('diving48', read, expects=EXPECTS, layouts=LAYOUTS, markers=MARKERS, phases=PHASES,
                names=('diving', 'diving48'), fewshot_names=('diving_fs',), default_eval='test',
                fewshot_eval='all')
