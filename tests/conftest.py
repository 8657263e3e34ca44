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


@pytest.fixture(autouse=True)
def _drop_run_log_handlers():
    """A test that runs an entry script in-process leaves ``setup_logging``'s handlers on the
    root logger, writing to that test's captured (then closed) stdout and to its tmp folder:
    remove them after each test so that the next test's log records do not hit a closed stream."""
    yield
    import logging
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, '_drl', False):
            root.removeHandler(h)
            h.close()
