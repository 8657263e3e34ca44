"""Datasets: registry of dataset families and ``build_dataset``.

Families register ``fn(cfg, split, clip_args, transform) -> VideoDataset`` in ``DATASETS``
(:mod:`datasets.registry`), the annotated ones through ``register_family`` (which also registers
their few-shot variants); ``build_dataset`` picks the train transform for the ``train`` /
``base`` splits and the test transform otherwise.
"""
from typing import Any, Optional

# The family modules register their names in DATASETS when imported: all of them, here, in this order.
from . import diving48, hmdb51, jester, kinetics, scenemotion, something, ucf101  # noqa: F401
from .base import VideoDataset, VideoRecord  # noqa: F401
from .collate import BadVideoTracker, video_collate  # noqa: F401
from .decode import VideoDecodeError, read_clips  # noqa: F401
from .paths import TRAIN_SPLITS, is_train  # noqa: F401
from .registry import DATASETS
from .transforms import build_transform


def build_dataset(cfg: dict[str, Any], split: str, seed: Optional[int] = None) -> VideoDataset:
    """Build split ``split`` (a key of ``cfg['dataset']['args']``) of ``cfg['dataset']['name']``.

    ``seed`` (default ``cfg['seed']`` or 0) seeds every item's random draws;
    ``dataset.decode_device`` (``cpu`` | ``cuda``, default ``cpu``) picks the video decoder.
    """
    dcfg = cfg['dataset']
    args = dcfg.get('args') or {}
    if split not in args:
        raise KeyError(f'dataset.args has no split {split!r} (has: {", ".join(args)})')
    train = is_train(split)
    transform = build_transform(dcfg.get('transform'), train=train)
    ds = DATASETS.get(dcfg['name'])(cfg, split, args[split], transform)
    ds.seed = int(seed if seed is not None else cfg.get('seed') or 0)
    ds.set_decode_device(dcfg.get('decode_device') or 'cpu')
    return ds

