"""Before a run touches its folder: is there a run there, and is it this one?

A run folder's ``checkpoint.pth.tar`` records what shaped it: the resolved config (and the DRL
scripts' second config), the entry script, the seed and whether it was a ``--debug`` run. A new
command into that folder is compared with it on every config key except the few that only say
where things are or how fast they go (:data:`IGNORED`); command-line switches that are not config
keys (``--amp``, ``-j``, ``-p``, ``--compile``, ...) are not compared. Then:

- same settings, unfinished: resume;
- same settings, finished (``results.json`` written and the checkpoint at the last epoch):
  nothing to do, say so and exit 0 (:class:`~core.errors.RunFinished`);
- other settings: stop with the differing keys, unless ``--resume-changed``, which continues the
  run with the new values (:meth:`engine.engine.Engine.resume`) and writes ``results.json`` anew;
- ``--debug`` never writes into the folder of a run that was not a debug run (even with
  ``--no-resume`` or ``-e``).

A new command's configs hold the schema's defaults (:func:`core.config.fill_defaults`); a
checkpoint written before a key had a default (or before defaults were filled at all) lacks it.
The recorded configs are therefore filled with today's defaults before the comparison: a key
the old run left to its default compares equal to the same default now, while a key present on
one side only because of a block switched on or off (``augment``, ``adversary``, ...) is still a
difference.
"""
import os

from core.config import fill_defaults
from core.config_schema import CFG_SCHEMA, SP_SCHEMA
from core.errors import RunFinished, UserError

from .checkpoint import load_checkpoint

# Keys that do not change what a run computes: data locations, loader workers, feature-cache
# switches, pictures. ``sp.`` marks keys of the DRL scripts' second config.
IGNORED = frozenset({
    'dataset.num_workers', 'dataset.root', 'dataset.video_root', 'dataset.layout',
    'dataset.scenemotion.cache_dir',
    'fewshot.cache', 'fewshot.cache_dir', 'fewshot.batch_size', 'fewshot.chunk',
    'sp.visualize',
})
_MISSING = object()
# recorded next to the configs; the config's own ``seed`` key is folded into the resolved seed
_META = ('script', 'seed', 'debug')
MAX_SHOWN = 5


def flatten(tree, prefix=''):
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}``; lists and other values are leaves."""
    out = {}
    for k, v in (tree or {}).items():
        key = f'{prefix}{k}'
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + '.'))
        else:
            out[key] = v
    return out


def run_identity(cfg, cfg_sp, script, seed, debug):
    """The compared settings of a run as a flat dict (``sp.`` prefix for the second config)."""
    ident = {k: v for k, v in flatten(cfg).items() if k not in _META}
    ident.update(script=script, seed=seed, debug=bool(debug))
    if cfg_sp is not None:
        ident.update(flatten(cfg_sp, 'sp.'))
    return {k: v for k, v in ident.items() if not _ignored(k)}


def _ignored(key):
    return any(key == i or key.startswith(i + '.') for i in IGNORED)


def saved_identity(ckpt):
    """What a checkpoint recorded, in the form of :func:`run_identity`, its configs completed
    with the schema's defaults (module docstring). Keys a checkpoint of an older format did not
    record (``script``, ``seed``, ``debug``, the configs) are absent."""
    ident = {}
    if isinstance(ckpt.get('config'), dict):
        config = fill_defaults(ckpt['config'], CFG_SCHEMA)
        ident.update((k, v) for k, v in flatten(config).items() if k not in _META)
    ident.update((k, ckpt[k]) for k in _META if ckpt.get(k) is not None)
    if isinstance(ckpt.get('config_sp'), dict):
        ident.update(flatten(fill_defaults(ckpt['config_sp'], SP_SCHEMA), 'sp.'))
    return {k: v for k, v in ident.items() if not _ignored(k)}


def differences(old, new):
    """``[(key, old value, new value)]`` over the keys ``old`` recorded, in key order.

    A part the checkpoint did not record at all (no ``config`` / ``script`` / ...) is skipped.
    """
    parts = {_part(k) for k in old}
    keys = sorted(k for k in set(old) | set(new) if _part(k) in parts)
    diffs = []
    for k in keys:
        a, b = old.get(k, _MISSING), new.get(k, _MISSING)
        if a != b:
            diffs.append((k, a, b))
    return diffs


def _part(key):
    """Which recorded item a key belongs to: ``script``, ``seed``, ``debug``, ``sp`` or ``config``."""
    if key in _META:
        return key
    return 'sp' if key.startswith('sp.') else 'config'


def _short(v):
    if v is _MISSING:
        return '(unset)'
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 40 else text[:37] + '...'


def describe(diffs):
    """``'optimizer.args.lr 0.05 → 0.1, optimizer.epochs 2 → 3, … (+4 more)'``."""
    shown = ', '.join(f'{k} {_short(a)} → {_short(b)}' for k, a, b in diffs[:MAX_SHOWN])
    return shown + (f', … (+{len(diffs) - MAX_SHOWN} more)' if len(diffs) > MAX_SHOWN else '')


def check_run_folder(out_dir, identity, epochs, *, debug, evaluate, no_resume, resume_changed):
    """Decide what a new command may do with the run folder ``out_dir`` (see module docstring).

    Args:
        identity: :func:`run_identity` of the new command.
        epochs: the new config's ``optimizer.epochs`` (``None`` when the run does not train).
    Returns:
        ``True`` when the run resumes with changed settings (``--resume-changed`` applied),
        else ``False``.
    Raises:
        UserError: one line: the differing keys and the choices, or the ``--debug`` rule.
        RunFinished: the same run, finished (exit status 0).
    """
    ckpt_path = os.path.join(out_dir, 'checkpoint.pth.tar')
    if not os.path.isfile(ckpt_path):
        return False
    ckpt = load_checkpoint(ckpt_path, mmap=True)
    if not isinstance(ckpt, dict):
        return False
    saved_epoch = ckpt.get('epoch', 0)
    if debug and ckpt.get('debug') is not True:
        raise UserError(f'--debug: {out_dir} holds a run that is not a debug run (checkpoint at epoch '
                        f'{saved_epoch}); a debug run never writes there: leave out --output-dir '
                        f'(debug runs go to a folder ending in _debug) or choose another folder')
    if evaluate or no_resume:
        return False
    diffs = differences(saved_identity(ckpt), identity)
    if diffs and not resume_changed:
        raise UserError(f'{out_dir} holds a run with other settings (checkpoint at epoch {saved_epoch}): '
                        f'{describe(diffs)}; to continue it with the new values use --resume-changed, '
                        f'to start over --no-resume, or choose another --output-dir')
    finished = os.path.isfile(os.path.join(out_dir, 'results.json')) and \
        epochs is not None and saved_epoch >= epochs
    if finished and not diffs:
        raise RunFinished(f'{out_dir} holds this run, finished (epoch {saved_epoch} of {epochs}, '
                          f'results.json written); nothing to do: -e tests it again, --no-resume '
                          f'trains it again, another --output-dir starts a new run')
    return bool(diffs)
