"""The factored configs (``configs/_base_/{datasets,models,schedules}``) resolve to exactly what
they resolved to before the factoring (issue 20).

``tests/fixtures/merged_configs.json`` holds the raw ``_base_``-merged dict of every config,
taken at the commit before any refactor. Dropping a key equal to its schema default is allowed
(it is filled in at load), so both sides are compared after :func:`fill_defaults`.
"""
import json
import os

import pytest

from core.config import fill_defaults, load_config, load_sp_config, load_yaml_stack, yaml_load
from core.config_schema import CFG_SCHEMA, SP_SCHEMA

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, 'tests', 'fixtures', 'merged_configs.json')
with open(FIXTURE) as _f:
    BEFORE = json.load(_f)['configs']

# Configs that did not validate standalone before the factoring (checked at the fixture's
# commit with utils.config.load_config / load_sp_config): none did fail.
NOT_STANDALONE = set()


def is_sp(path):
    """The DRL scripts' second config (DRL / scoring), loaded with the SP schema."""
    return path.startswith(('configs/drl/', 'configs/scoring/'))


def first_difference(want, got, prefix=''):
    """The first dotted key where ``want`` and ``got`` differ (``None`` when equal)."""
    if isinstance(want, dict) and isinstance(got, dict):
        for key in sorted(set(want) | set(got), key=str):
            dotted = f'{prefix}.{key}' if prefix else str(key)
            if key not in got:
                return f'{dotted} (missing now; was {want[key]!r})'
            if key not in want:
                return f'{dotted} (new: {got[key]!r})'
            diff = first_difference(want[key], got[key], dotted)
            if diff:
                return diff
        return None
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (w, g) in enumerate(zip(want, got)):
            diff = first_difference(w, g, f'{prefix}.{i}')
            if diff:
                return diff
        return None
    # the types too: 1 == 1.0 == True in Python, not in a config
    if want != got or type(want) is not type(got):
        return f'{prefix or "<top>"} (was {want!r}, now {got!r})'
    return None


def test_fixture_covers_the_configs():
    assert len(BEFORE) == 59
    for path in BEFORE:
        assert os.path.isfile(os.path.join(ROOT, path)), f'{path} no longer exists (users type it)'


@pytest.mark.parametrize('path', sorted(BEFORE))
def test_config_resolves_as_before(path):
    schema = SP_SCHEMA if is_sp(path) else CFG_SCHEMA
    want = fill_defaults(BEFORE[path], schema)
    got = fill_defaults(load_yaml_stack(os.path.join(ROOT, path)), schema)
    diff = first_difference(want, got)
    assert diff is None, f'{path} resolves differently at {diff}'
    assert got == want


@pytest.mark.parametrize('path', sorted(set(BEFORE) - NOT_STANDALONE))
def test_config_still_loads(path):
    (load_sp_config if is_sp(path) else load_config)(os.path.join(ROOT, path))


def base_files():
    base = os.path.join(ROOT, 'configs', '_base_')
    return sorted(os.path.relpath(os.path.join(d, f), ROOT)
                  for d, _, files in os.walk(base) for f in files if f.endswith('.yaml'))


def test_base_layout():
    """Bases sit in datasets / models / schedules, each opening with a comment saying what it
    is; none is an experiment of the fixture, and every one is used by some config."""
    bases = base_files()
    assert bases
    used = set()
    for path in BEFORE:
        stack = [os.path.join(ROOT, path)]
        while stack:
            p = os.path.normpath(stack.pop())
            used.add(os.path.relpath(p, ROOT))
            with open(p) as f:
                listed = (yaml_load(f) or {}).get('_base_', [])
            stack += [os.path.join(os.path.dirname(p), b) for b in ([listed] if isinstance(listed, str) else listed)]
    for path in bases:
        assert path.split(os.sep)[2] in ('datasets', 'models', 'schedules'), path
        with open(os.path.join(ROOT, path)) as f:
            assert f.readline().startswith('# '), f'{path}: no one-line comment at the top'
        assert path in used, f'{path} is used by no config'
        assert path not in BEFORE
