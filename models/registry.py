"""The ``MODELS`` registry, in a module of its own: the family modules import it from here, so it
exists before any of them registers, whatever module is imported first."""
from collections.abc import Callable

import torch.nn as nn

from core.registry import Registry

# name -> constructor taking keyword arguments only (the config's model.args)
MODELS: Registry[Callable[..., nn.Module]] = Registry('model')
