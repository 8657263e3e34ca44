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
from .annotations import integer, parse_rows
from .base import VideoRecord
from .paths import LayoutSpec, require_file
from .registry import register_family

PHASES = {'train': 'train', 'validation': 'validation', 'val': 'validation', 'test': 'validation'}
V2_EXPECTS = ('<root>/labels/something-something-v2-{labels,train,validation}.json and '
              '<root>/20bn-something-something-v2/<id>.webm')
V2_LAYOUTS = {'project': LayoutSpec(('labels', 'annotations', ''), ('20bn-something-something-v2', 'videos'),
                                     root_videos=True),
              'published': LayoutSpec(('anno',), ('20bn-something-something-v2', 'video'))}
V2_MARKERS = ('something-something-v2-labels.json',)
V2_LABELS_FORMAT = 'a JSON object {"<class name>": "<index>", ...}'
V2_FORMAT = 'a JSON list of {"id": "<id>", "template": "<class with [brackets]>", ...}'


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
    table = parse_rows(labels_path, lambda kv: (kv[0], integer(kv[1], 'class index')), V2_LABELS_FORMAT,
                       form='json-object')
    classes = [name for name, _ in sorted(table, key=lambda kv: kv[1])]
    index = {name.lower(): i for name, i in table}
    ann = require_file(ann_dir, f'something-something-v2-{phase}.json', 'something_v2',
                       expects=V2_EXPECTS)

    def record(e):
        vid, name = str(e['id']), template_class(str(e['template'])).lower()
        if name not in index:
            raise ValueError(f'template {e["template"]!r} of video {vid} is not a class of {labels_path.name}')
        return VideoRecord(str(video_dir / f'{vid}.webm'), index[name], vid, 'video')

    return classes, parse_rows(ann, record, V2_FORMAT, form='json', kind=dict)


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
    classes = parse_rows(labels, str, 'one class name per line', form='names')
    index = {c: i for i, c in enumerate(classes)}
    ann = require_file(ann_dir, f'{prefix}-{phase}.csv', dataset, expects=expects)

    def record(row):
        if row[1] not in index:
            raise ValueError(f'class {row[1]!r} is not in {labels.name}')
        return VideoRecord(str(base / row[0]), index[row[1]], row[0], 'frames')

    return classes, parse_rows(ann, record, f'"<id>;<class in {labels.name}>" per line', form='csv', sep=';',
                               columns=(2, 2))


def register_frames_family(family, prefix, frames_dir):
    """Register an ``id;label`` csv family of frame folders (SSv1, Jester) and its ``_fs`` variant."""
    def read(cfg, layout, phase, clip_args):
        return parse_frames_csv(layout.ann_dir, layout.video_dir, phase, prefix, frames_dir, family)
    return register_family(family, read, expects=frames_expects(prefix, frames_dir),
                           layouts=frames_layouts(frames_dir), markers=(f'{prefix}-labels.csv',),
                           phases=PHASES, default_eval='validation')


def read_v2(cfg, layout, phase, clip_args):
    return parse_v2(layout.ann_dir, layout.video_dir, phase)


register_family('something_v2', read_v2, expects=V2_EXPECTS, layouts=V2_LAYOUTS, markers=V2_MARKERS,
                phases=PHASES, default_eval='validation')
register_frames_family('something_v1', 'something-something-v1', '20bn-something-something-v1')
