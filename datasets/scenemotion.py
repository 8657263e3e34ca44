"""SceneMotion, the embedded benchmark (dataset name ``scenemotion``; docs/scenemotion.md).

Generated on first use from ``dataset.scenemotion`` (defaults: ``scenemotion_gen.DEFAULTS``)
into ``<cache>/scenemotion/<hash of the parameters>/`` where ``<cache>`` is, in order,
``dataset.scenemotion.cache_dir``, ``$DRL_CACHE_DIR``, or ``<repo>/data``; then read like a
Kinetics-style dataset through :class:`datasets.base.VideoDataset`.

``dataset.subset`` picks the subset (``pretrain``, ``transfer``, ``novel``); a config split
reads the annotation phase

* ``pretrain``: ``train`` -> ``train``, any other split -> ``val``;
* ``transfer``: ``train`` -> ``train``, any other split -> ``test``;
* ``novel``: every split -> ``novel`` (the few-shot episodes are drawn from it);

``dataset.args.<split>.phase`` overrides the choice (e.g. ``phase: train`` to evaluate on the
training videos).
"""
import os
import pathlib

from .base import VideoRecord
from .kinetics import read_rows, video_name
from .paths import finish, is_train, require_file
from .registry import DATASETS
from .scenemotion_gen import DEFAULTS, SUBSETS, ensure_generated, params_hash

REPO = pathlib.Path(__file__).resolve().parent.parent
CACHE_KEYS = ('cache_dir',)


def generation_params(cfg):
    """The generation parameters: ``DEFAULTS`` updated by ``dataset.scenemotion``."""
    user = dict((cfg.get('dataset') or {}).get('scenemotion') or {})
    unknown = set(user) - set(DEFAULTS) - set(CACHE_KEYS)
    if unknown:
        raise KeyError(f'dataset.scenemotion: unknown keys {sorted(unknown)}')
    params = dict(DEFAULTS)
    params.update({k: v for k, v in user.items() if k not in CACHE_KEYS})
    if not 0.0 <= float(params['bias']) <= 1.0:
        raise ValueError(f"dataset.scenemotion.bias must be in [0, 1], got {params['bias']}")
    if params['size'] % 2:
        raise ValueError(f"dataset.scenemotion.size must be even (H.264), got {params['size']}")
    return params


def cache_root(cfg, params):
    """Folder of one generation: ``<cache>/scenemotion/<hash>`` (see the module docstring)."""
    user = ((cfg.get('dataset') or {}).get('scenemotion') or {}).get('cache_dir')
    base = user or os.environ.get('DRL_CACHE_DIR') or REPO / 'data'
    base = pathlib.Path(os.path.expandvars(os.path.expanduser(str(base))))
    return base / 'scenemotion' / params_hash(params)


def prepare(cfg):
    """Generate SceneMotion for ``cfg`` if needed; returns the generation folder."""
    params = generation_params(cfg)
    return ensure_generated(cache_root(cfg, params), params)


def phase_of(subset, split, clip_args):
    """Annotation phase a config split reads (module docstring)."""
    phases = [p for p, _ in SUBSETS[subset]]
    phase = clip_args.get('phase')
    if phase is None:
        phase = phases[0] if (is_train(split) or len(phases) == 1) else phases[1]
    if phase not in phases:
        raise ValueError(f'scenemotion/{subset}: phase {phase!r} unknown; use one of {phases}')
    return phase


def read_split(root, subset, phase):
    """``(classes, records, scenes)`` of one generated split (``scenes``: scene name per record)."""
    folder = root / subset
    with open(require_file(folder, 'label_map.txt', 'scenemotion')) as f:
        classes = [line.strip() for line in f if line.strip()]
    index = {c: i for i, c in enumerate(classes)}
    records, scenes = [], []
    for row in read_rows(require_file(folder, f'{phase}.csv', 'scenemotion')):
        vid = video_name(row)
        path = folder / phase / row['label'] / f'{vid}.mp4'
        records.append(VideoRecord(str(path), index[row['label']], vid, 'video'))
        scenes.append(row.get('scene'))
    return classes, records, scenes


@DATASETS.register('scenemotion')
def scenemotion(cfg, split, clip_args, transform):
    subset = (cfg.get('dataset') or {}).get('subset') or 'pretrain'
    if subset not in SUBSETS:
        raise ValueError(f'dataset.subset {subset!r} unknown for scenemotion; use one of {list(SUBSETS)}')
    root = prepare(cfg)
    classes, records, scenes = read_split(root, subset, phase_of(subset, split, clip_args))
    ds = finish(cfg, 'scenemotion', split, records, classes, clip_args, transform)
    ds.root, ds.scenes = root, scenes
    return ds
