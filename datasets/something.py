"""Something-Something v2 (webm + json) and v1 (jpg frame folders + csv), with few-shot variants.

SSv2 layout (root: see :mod:`datasets.paths`; annotation files in ``<root>/labels/`` or ``<root>``)::

    <root>/labels/something-something-v2-labels.json        {"Approaching something ...": "0", ...}
    <root>/labels/something-something-v2-train.json         [{"id": "78687", "template":
    <root>/labels/something-something-v2-validation.json      "Holding [something] next to [something]", ...}]
    <root>/20bn-something-something-v2/<id>.webm            (or <root>/videos/, or <root>)

The class of a video is its ``template`` with the brackets removed; the class order is the
index in the labels json.

SSv1 layout (Jester, :mod:`datasets.jester`, is the same with its own file names)::

    <root>/something-something-v1-labels.csv        one class name per line (class order)
    <root>/something-something-v1-{train,validation}.csv   "<id>;<class name>"
    <root>/20bn-something-something-v1/<id>/00001.jpg ...  (or <root>/<id>/)

The published code's layout (:func:`datasets.paths.find_layout`) is also accepted: the
annotation files (json or csv, names as above) in ``<root>/anno/``, the videos or frame folders
in the official folder (``20bn-something-something-v2/``, ``20bn-something-something-v1/``,
``20bn-jester-v1/``) or in ``<root>/video/`` (SSv2) / ``<root>/frames/`` (SSv1, Jester).

Few-shot variants: ``novel`` reads the validation set by default (the authors' protocol),
``base`` the training set; see :mod:`datasets.fewshot_splits` for the class subsets.
"""
import csv
import json

from . import DATASETS
from .base import VideoRecord
from .fewshot_splits import fewshot_view
from .paths import LayoutSpec, annotation_phase, find_layout, finish, require_file, resolve_root

PHASES = {'train': 'train', 'validation': 'validation', 'val': 'validation', 'test': 'validation'}
V2_EXPECTS = ('<root>/labels/something-something-v2-{labels,train,validation}.json and '
              '<root>/20bn-something-something-v2/<id>.webm')
V2_LAYOUTS = {'project': LayoutSpec(('labels', 'annotations', ''), ('20bn-something-something-v2', 'videos'),
                                     root_videos=True),
              'published': LayoutSpec(('anno',), ('20bn-something-something-v2', 'video'))}
V2_MARKERS = ('something-something-v2-labels.json',)


def template_class(template):
    """``'Putting [something] on [something]'`` -> ``'Putting something on something'``."""
    return template.replace('[', '').replace(']', '')


def parse_v2(ann_dir, video_dir, phase):
    """Parse ``something-something-v2-<phase>.json``.

    Args:
        ann_dir: folder of the json files; video_dir: folder of the ``.webm`` files.
    Returns:
        ``(classes, records)``: classes in labels-json index order, ``vid`` = the video id.
    """
    labels_path = require_file(ann_dir, 'something-something-v2-labels.json', 'something_v2',
                               expects=V2_EXPECTS)
    with open(labels_path) as f:
        table = json.load(f)
    classes = [name for name, _ in sorted(table.items(), key=lambda kv: int(kv[1]))]
    index = {name.lower(): int(i) for name, i in table.items()}
    ann = require_file(ann_dir, f'something-something-v2-{phase}.json', 'something_v2',
                       expects=V2_EXPECTS)
    records = []
    with open(ann) as f:
        entries = json.load(f)
    for e in entries:
        name = template_class(e['template']).lower()
        if name not in index:
            raise ValueError(f'{ann}: template {e["template"]!r} of video {e["id"]} is not a class')
        records.append(VideoRecord(str(video_dir / f"{e['id']}.webm"), index[name], str(e['id']), 'video'))
    return classes, records


def frames_expects(prefix, frames_dir):
    return f'<root>/{prefix}-{{labels,train,validation}}.csv and <root>/{frames_dir}/<id>/00001.jpg'


def frames_layouts(frames_dir):
    """The two layouts of an ``id;label`` csv dataset whose frame folders sit in ``frames_dir``."""
    return {'project': LayoutSpec(('',), (frames_dir,), root_videos=True),
            'published': LayoutSpec(('anno',), (frames_dir, 'frames'))}


def parse_frames_csv(ann_dir, base, phase, prefix, frames_dir, dataset):
    """Parse an ``id;label`` csv dataset (SSv1, Jester) for ``phase`` (train / validation).

    Args:
        ann_dir: folder of the csv files; base: folder of the ``<id>/`` frame folders.
    Returns:
        ``(classes, records)``: classes in labels-csv order, frame-folder records.
    """
    expects = frames_expects(prefix, frames_dir)
    labels = require_file(ann_dir, f'{prefix}-labels.csv', dataset, expects=expects)
    with open(labels) as f:
        classes = [line.strip() for line in f if line.strip()]
    index = {c: i for i, c in enumerate(classes)}
    ann = require_file(ann_dir, f'{prefix}-{phase}.csv', dataset, expects=expects)
    records = []
    with open(ann, newline='') as f:
        for row in csv.reader(f, delimiter=';'):
            if not row:
                continue
            if len(row) != 2 or row[1] not in index:
                raise ValueError(f'{ann}: line {row!r} is not "<id>;<class in {labels.name}>"')
            records.append(VideoRecord(str(base / row[0]), index[row[1]], row[0], 'frames'))
    return classes, records


def build_frames(cfg, split, clip_args, transform, name, family, prefix, frames_dir, fewshot):
    """Shared builder of SSv1 and Jester (and their ``_fs`` variants)."""
    root = resolve_root(cfg, family, expects=frames_expects(prefix, frames_dir))
    phase = annotation_phase(clip_args, split, PHASES, default_eval='validation')
    layout = find_layout(cfg, root, family, frames_layouts(frames_dir), (f'{prefix}-labels.csv',))
    classes, records = parse_frames_csv(layout.ann_dir, layout.video_dir, phase, prefix, frames_dir, family)
    if fewshot:
        classes, records = fewshot_view(family, classes, records, clip_args, split)
    return finish(cfg, name, split, records, classes, clip_args, transform)


def _build_v2(cfg, split, clip_args, transform, name, fewshot=False):
    root = resolve_root(cfg, 'something_v2', expects=V2_EXPECTS)
    layout = find_layout(cfg, root, 'something_v2', V2_LAYOUTS, V2_MARKERS)
    phase = annotation_phase(clip_args, split, PHASES, default_eval='validation')
    classes, records = parse_v2(layout.ann_dir, layout.video_dir, phase)
    if fewshot:
        classes, records = fewshot_view('something_v2', classes, records, clip_args, split)
    return finish(cfg, name, split, records, classes, clip_args, transform)


@DATASETS.register('something_v2')
def something_v2(cfg, split, clip_args, transform):
    return _build_v2(cfg, split, clip_args, transform, 'something_v2')


@DATASETS.register('something_v2_fs')
def something_v2_fs(cfg, split, clip_args, transform):
    return _build_v2(cfg, split, clip_args, transform, 'something_v2_fs', fewshot=True)


SSV1 = ('something_v1', 'something-something-v1', '20bn-something-something-v1')


@DATASETS.register('something_v1')
def something_v1(cfg, split, clip_args, transform):
    return build_frames(cfg, split, clip_args, transform, 'something_v1', *SSV1, fewshot=False)


@DATASETS.register('something_v1_fs')
def something_v1_fs(cfg, split, clip_args, transform):
    return build_frames(cfg, split, clip_args, transform, 'something_v1_fs', *SSV1, fewshot=True)
