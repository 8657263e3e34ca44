"""Explicit name -> constructor registries (timm / torchvision style).

Registering the same name twice raises; looking up an unknown name raises a ``KeyError``
(:class:`core.errors.UnknownNameError`) that lists the closest registered names.
"""
import difflib

from .errors import UnknownNameError


class Registry:
    """A named table of constructors filled by the :meth:`register` decorator."""

    def __init__(self, kind):
        self.kind = kind
        self._table = {}

    def register(self, name=None):
        def deco(obj):
            key = name or obj.__name__
            if key in self._table:
                raise KeyError(f'{self.kind} {key!r} registered twice')
            self._table[key] = obj
            return obj
        return deco

    def get(self, name, key=None):
        """The entry called ``name``; ``key`` (e.g. ``'adversary.name'``) prefixes the error."""
        if name not in self._table:
            close = difflib.get_close_matches(str(name), self._table, n=3, cutoff=0.4)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ''
            where = f'{key}: ' if key else ''
            raise UnknownNameError(f'{where}unknown {self.kind} {name!r}{hint} (known: {", ".join(sorted(self._table))})')
        return self._table[name]

    def names(self):
        return sorted(self._table)

    def __contains__(self, name):
        return name in self._table
