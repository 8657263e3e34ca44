"""Explicit name -> constructor registries (timm / torchvision style).

Registering the same name twice raises; looking up an unknown name raises a ``KeyError``
(:class:`core.errors.UnknownNameError`) that lists the closest registered names.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, Optional, TypeVar

from .errors import UnknownNameError

T = TypeVar('T')


class Registry(Generic[T]):
    """A named table of constructors filled by the :meth:`register` decorator.

    Args:
        kind: what the entries are, for messages (``'model'``, ``'dataset'``, ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._table: dict[str, T] = {}

    def register(self, name: Optional[str] = None) -> Callable[[T], T]:
        """Decorator registering its object under ``name`` (default: the object's ``__name__``);
        a name registered twice raises ``KeyError``. Returns the object unchanged."""
        def deco(obj: T) -> T:
            key = name or obj.__name__
            if key in self._table:
                raise KeyError(f'{self.kind} {key!r} registered twice')
            self._table[key] = obj
            return obj
        return deco

    def get(self, name: str, key: Optional[str] = None) -> T:
        """The entry called ``name``; ``key`` (e.g. ``'adversary.name'``) prefixes the error."""
        if name not in self._table:
            close = difflib.get_close_matches(str(name), self._table, n=3, cutoff=0.4)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ''
            where = f'{key}: ' if key else ''
            raise UnknownNameError(f'{where}unknown {self.kind} {name!r}{hint} (known: {", ".join(sorted(self._table))})')
        return self._table[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table
