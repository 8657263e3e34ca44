"""Video models: the ``MODELS`` registry and the config → model builder.

Every registered constructor takes keyword arguments only (the config's ``model.args``) and
returns a :class:`models.head.VideoModel`: input ``B × K × C × T × H × W``, output logits
``B × n_class`` (or a dict with ``ret_feat``). See docs/models.md.
"""
import difflib
import inspect
from collections.abc import Mapping
from typing import Any

# The families register their models in MODELS when imported: all of them, here, in this order.
# hf_video imports transformers only when its builder runs.
from core.errors import UserError

from . import hf_video, resnet2d, resnet3d, tsm, tv_video  # noqa: F401
from .head import VideoModel
from .registry import MODELS


class ModelConfigError(UserError, ValueError):
    """A combination of ``model.args`` that the model's constructor refuses (one line)."""


def list_models() -> list[str]:
    """Names of the registered models."""
    return MODELS.names()


def build_model_from_args(name: str, **kwargs: Any) -> VideoModel:
    """Build registered model ``name`` with keyword arguments; an unknown argument raises a
    ``TypeError`` naming it, the model and the closest valid argument."""
    fn = MODELS.get(name)
    valid = list(inspect.signature(fn).parameters)
    for key in kwargs:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ''
            raise TypeError(f'model {name!r} has no argument {key!r}{hint} (valid: {", ".join(valid)})')
    return fn(**kwargs)


def build_model(model_cfg: Mapping[str, Any], **overrides: Any) -> VideoModel:
    """Build the model described by a config's ``model`` block.

    Args:
        model_cfg: dict with ``name`` and optional ``args``; other keys of the block
            (``freeze_bn``, ``sync_bn``, ``ddp``, ``pretrain``) are applied by the caller.
        overrides: model args that win over ``args`` (e.g. ``n_class`` of the spatial model
            in DRL, which must match the video model).
    Returns:
        the ``nn.Module``.
    """
    args = dict(model_cfg.get('args') or {})
    args.update(overrides)
    try:
        return build_model_from_args(model_cfg['name'], **args)
    except UserError:   # already one line, naming its key
        raise
    except ValueError as e:   # a combination of model.args the constructor refuses: the user's to fix
        raise ModelConfigError(f"model {model_cfg['name']!r}: {e} (model.args)") from None
