"""Diving48 (V2 annotations); registered as ``diving`` (the authors' name), ``diving48`` and
``diving_fs``.

On-disk layout (root: see :mod:`datasets.paths`)::

    <root>/Diving48_V2_train.json   [{"vid_name": "-mmq0PT-u8k_00155", "label": 0,
    <root>/Diving48_V2_test.json      "start_frame": 0, "end_frame": 43}, ...]
    <root>/Diving48_vocab.json      [["Back", "15som", "05Twis", "FREE"], ...]  (index = label)
    <root>/rgb/<vid_name>.mp4       (the official Diving48_rgb.tar.gz; or directly in <root>)

Class names are the four vocabulary fields joined by spaces. Phase ``all`` (the few-shot
default) reads train and test together.
"""
import json

from . import DATASETS
from .base import VideoRecord
from .fewshot_splits import fewshot_view
from .paths import annotation_phase, finish, first_existing, require_file, resolve_root

EXPECTS = '<root>/Diving48_V2_{train,test}.json, Diving48_vocab.json, rgb/<vid_name>.mp4'
PHASES = {'train': 'train', 'test': 'test', 'val': 'test', 'validation': 'test', 'all': 'all'}


def read_vocab(path):
    with open(path) as f:
        vocab = json.load(f)
    return [' '.join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for v in vocab]


def parse(root, phase):
    """Parse ``Diving48_V2_<phase>.json`` (``phase``: train, test or all).

    Returns:
        ``(classes, records)`` with ``vid`` = ``vid_name``.
    """
    classes = read_vocab(require_file(root, 'Diving48_vocab.json', 'diving48', expects=EXPECTS))
    video_dir = first_existing(root, ('rgb', 'videos')) or root
    records = []
    for part in (('train', 'test') if phase == 'all' else (phase,)):
        ann = require_file(root, f'Diving48_V2_{part}.json', 'diving48', expects=EXPECTS)
        with open(ann) as f:
            entries = json.load(f)
        for e in entries:
            label = int(e['label'])
            if not 0 <= label < len(classes):
                raise ValueError(f'{ann}: label {label} of {e["vid_name"]} outside the vocabulary')
            records.append(VideoRecord(str(video_dir / f"{e['vid_name']}.mp4"), label,
                                       e['vid_name'], 'video'))
    return classes, records


def _build(cfg, split, clip_args, transform, name, fewshot=False):
    root = resolve_root(cfg, 'diving48', expects=EXPECTS)
    phase = annotation_phase(clip_args, split, PHASES, default_eval='all' if fewshot else 'test')
    classes, records = parse(root, phase)
    if fewshot:
        classes, records = fewshot_view('diving48', classes, records, clip_args, split)
    return finish(cfg, name, split, records, classes, clip_args, transform)


@DATASETS.register('diving')
def diving(cfg, split, clip_args, transform):
    return _build(cfg, split, clip_args, transform, 'diving')


@DATASETS.register('diving48')
def diving48(cfg, split, clip_args, transform):
    return _build(cfg, split, clip_args, transform, 'diving48')


@DATASETS.register('diving_fs')
def diving_fs(cfg, split, clip_args, transform):
    return _build(cfg, split, clip_args, transform, 'diving_fs', fewshot=True)
