"""``build_method(cfg)``: the configured de-biasing method, checked against the run's clips."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from core.errors import UserError

from . import albar, batch_mix, fame, mix  # noqa: F401  (each registers its methods)
from .base import METHODS, Method

TRAINING_SPLITS = ('train', 'base')   # main.py trains on ``train``, main-fsl.py on ``base``


def build_method(cfg: Mapping[str, Any]) -> Optional[Method]:
    """The method of the config's ``augment`` block (``None`` when the block is absent or null).

    Everything a method needs from the run is checked here, before any training, and refused
    with a one-line :class:`core.errors.UserError`: an unknown ``augment.name`` (the message
    lists the known ones), a clip length the method cannot use (FAME and ALBAR need 2 frames;
    ALBAR's ``static_frame`` must lie inside the clip), mixup / CutMix without
    ``model.args.n_class`` or with a criterion other than cross-entropy. Knob ranges are
    checked earlier, with the config (``core/config_schema.py``).

    Args:
        cfg: the resolved config (schema defaults filled, e.g. by ``core.config.load_config``).
    """
    block = cfg.get('augment')
    if not block:
        return None
    try:
        method = METHODS.get(block['name'], key='augment.name')(block, cfg)
    except ValueError as e:   # BatchMix's own checks (reached only by hand-built configs)
        raise UserError(str(e)) from None
    for split in TRAINING_SPLITS:
        clip = cfg.get('dataset', {}).get('args', {}).get(split)
        if clip and clip.get('n_frames') is not None:
            method.check_clips(int(clip['n_frames']), f'dataset.args.{split} clips')
    return method
