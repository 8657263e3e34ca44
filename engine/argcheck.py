"""The numbers of ``optimizer.args``, ``optimizer.schedule.args`` and ``criterion.args`` checked
against what torch's classes accept, and ``model.args`` against the model's signature, when the
run is set up (before any data is read).

Each argument is checked against the class's signature: a name the class does not take, or a
text where the class's default is a number (``lr: 1e-3x``), is refused naming the key; then the
optimiser is built on a one-element parameter and the scheduler on that optimiser, and the
criterion is built, so that torch's own value checks (``Invalid learning rate: -1``) speak
before the data is built. A refusal is a :class:`core.config.ConfigError` (one line, exit 2).
"""
import difflib
import inspect
import numbers
import warnings

import torch

from core.config import ConfigError

from .optim import CRITERIA, OPTIMIZERS, SCHEDULERS


def check_training_args(cfg, config_path=None, cfg_sp=None):
    """Check the ``optimizer`` / ``optimizer.schedule`` / ``criterion`` / ``criterion_feat``
    blocks of the main config and, for the DRL scripts, of the DRL config (keys ``sp.…``).

    Raises:
        ConfigError: one line naming the key, the value and the config file.
    """
    where = f' in {config_path}' if config_path else ''
    for prefix, c in (('', cfg), ('sp.', cfg_sp)):
        if not c:
            continue
        opt = c.get('optimizer')
        optimizer = None
        if opt:
            optimizer = _check(OPTIMIZERS, opt.get('name'), opt.get('args'), f'{prefix}optimizer',
                               where, lambda cls, a: cls([torch.nn.Parameter(torch.zeros(1))], **a))
            sched = opt.get('schedule')
            if sched and optimizer is not None:
                _check(SCHEDULERS, sched.get('name'), sched.get('args'), f'{prefix}optimizer.schedule',
                       where, lambda cls, a, o=optimizer: cls(o, **a), build=_all_scalars(sched.get('args')))
        for block in ('criterion', 'criterion_feat'):
            crit = c.get(block)
            if crit:
                _check(CRITERIA, crit.get('name'), crit.get('args'), f'{prefix}{block}', where,
                       lambda cls, a: cls(**a), build=_all_scalars(crit.get('args')))


def check_model_args(cfg, config_path=None, cfg_sp=None):
    """``model.args`` (and the DRL config's ``sp.model.args``) against the registered model's
    signature: an argument the model does not take, or a text where it takes a number, is one
    line naming the key (the constructor would raise a ``TypeError`` deep in the build)."""
    from models.registry import MODELS

    where = f' in {config_path}' if config_path else ''
    for prefix, c in (('', cfg), ('sp.', cfg_sp)):
        model = (c or {}).get('model')
        if model and model.get('name'):
            _check(MODELS, model['name'], model.get('args'), f'{prefix}model', where, None, build=False)


def _all_scalars(args):
    """Whether every argument is a plain number, bool, text or null (a list, e.g. per-group
    values or class weights, may be turned into what the class wants by the code that builds
    it: only its signature is checked)."""
    return all(v is None or isinstance(v, (numbers.Number, str)) for v in (args or {}).values())


def _check(registry, name, args, key, where, make, build=True):
    """Check ``args`` against class ``name`` of ``registry``; returns the object ``make`` built
    (or ``None`` when not built)."""
    cls = registry.get(name, f'{key}.name')  # an unknown name: one line with close matches
    args = dict(args or {})
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and n not in ('self', 'params', 'optimizer')]
    for k, v in args.items():
        if k not in params and not takes_any and params:
            close = difflib.get_close_matches(k, names, n=1)
            hint = f'; did you mean {close[0]!r}?' if close else ''
            raise ConfigError(f"config key '{key}.args.{k}'{where}: {name} takes no argument {k!r}{hint} "
                              f"(it takes {', '.join(names)})")
        p = params.get(k)
        if p is not None and p.default is not inspect.Parameter.empty:
            problem = _type_problem(p.default, v)
            if problem:
                raise ConfigError(f"config key '{key}.args.{k}'{where} must be {problem}, got {v!r} "
                                  f'({type(v).__name__}) ({name} takes {k}={p.default!r})')
    if not build:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return make(cls, args)
    except (TypeError, ValueError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"config key '{key}.args'{where}: {name} refuses {args}: {first}") from None


def _is_number(v):
    return isinstance(v, numbers.Number) and not isinstance(v, bool)


def _type_problem(default, value):
    """What ``value`` must be, given the class's default for it, or ``None`` when it fits."""
    if value is None or default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else 'true or false'
    if _is_number(default):
        return None if _is_number(value) else 'a number'
    if isinstance(default, tuple) and default and all(_is_number(d) for d in default):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default) and all(map(_is_number, value))
        return None if ok else f'a list of {len(default)} numbers'
    return None
