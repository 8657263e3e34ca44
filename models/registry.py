"""The ``MODELS`` registry, in a module of its own: the family modules import it from here, so it
exists before any of them registers, whatever module is imported first."""
from core.registry import Registry

MODELS = Registry('model')
