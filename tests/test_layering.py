"""The floors of the house (pyproject.toml ``[tool.importlinter]``, docs/DEVELOPING.md) and the
lint settings (``[tool.ruff]``), checked with the real tools.

import-linter and ruff are development tools (requirements-dev.txt); a test is skipped, saying
so, where the tool is not installed.
"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the packages the layers contract names (pyproject.toml [tool.importlinter] root_packages)
PACKAGES = ('core', 'datasets', 'models', 'engine', 'supervised', 'measure', 'debias', 'drl', 'fewshot')


def _tool(name, module):
    """Command running ``name``: this interpreter when it has ``module``, else the executable
    beside it, on PATH or in ~/.local/bin; None when none is installed."""
    probe = subprocess.run([sys.executable, '-c', f'import {module}'], capture_output=True)
    if probe.returncode == 0:
        if module == 'importlinter':
            return [sys.executable, '-c', 'from importlinter.cli import lint_imports_command; lint_imports_command()']
        return [sys.executable, '-m', module]
    for folder in (os.path.dirname(sys.executable), *os.environ.get('PATH', '').split(os.pathsep),
                   os.path.expanduser('~/.local/bin')):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return [path]
    return None


def _lint_imports(cwd):
    cmd = _tool('lint-imports', 'importlinter')
    if cmd is None:
        pytest.skip('import-linter is not installed (pip install -r requirements-dev.txt)')
    return subprocess.run([*cmd, '--no-cache'], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_floors_are_kept():
    res = _lint_imports(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert '1 kept, 0 broken' in res.stdout


def _copy_tree(dst):
    """The packages' Python files and pyproject.toml, copied to ``dst``."""
    def skip(folder, names):
        return [n for n in names if n == '__pycache__'
                or (os.path.isfile(os.path.join(folder, n)) and not n.endswith('.py'))]
    for pkg in PACKAGES:
        shutil.copytree(os.path.join(ROOT, pkg), dst / pkg, ignore=skip)
    shutil.copy(os.path.join(ROOT, 'pyproject.toml'), dst / 'pyproject.toml')


@pytest.mark.parametrize('module, line, edge', [
    # a module-level import from a floor above: the ground floor reaching for the engine's
    ('core/errors.py', 'from engine import dist  # noqa: F401\n', 'core.errors -> engine.dist'),
    # a function-level import counts too: datasets and models share a floor and stay apart
    ('datasets/collate.py', 'def _late():\n    from models import build_model  # noqa: F401\n',
     'datasets.collate -> models'),
])
def test_an_upward_import_breaks_the_contract(tmp_path, module, line, edge):
    _copy_tree(tmp_path)
    assert _lint_imports(tmp_path).returncode == 0   # the copy itself keeps the contract
    with open(tmp_path / module, 'a') as f:
        f.write('\n\n' + line)
    res = _lint_imports(tmp_path)
    assert res.returncode != 0
    assert 'BROKEN' in res.stdout and edge in res.stdout, res.stdout + res.stderr


def test_ruff_passes():
    cmd = _tool('ruff', 'ruff')
    if cmd is None:
        pytest.skip('ruff is not installed (pip install -r requirements-dev.txt)')
    res = subprocess.run([*cmd, 'check', '--no-cache', '.'], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
