"""De-biasing training options of ``main.py``: batch transforms and loss terms chosen in the
config's ``augment`` block (interface: :mod:`debias.base`; table: docs/methods.md).

``build_method(cfg)`` returns the configured :class:`debias.base.Method` (or ``None``), which
:class:`supervised.step.ClassifierStep` receives as ``method=``.
"""
from .base import METHODS, Method, Mixed, Term
from .build import build_method

__all__ = ['METHODS', 'Method', 'Mixed', 'Term', 'build_method']
