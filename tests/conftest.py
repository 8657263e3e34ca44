"""Tests run from the repository root with it on sys.path (entry scripts import utils, models, ...)."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture
def no_user_roots(monkeypatch, tmp_path):
    """The test never sees the developer's own data roots or paths file (``DRL_*`` variables)."""
    for k in list(os.environ):
        if k.startswith('DRL_'):
            monkeypatch.delenv(k)
    monkeypatch.setenv('DRL_PATHS_FILE', str(tmp_path / 'no-paths.yaml'))
