"""Config loading: YAML file (+ its ``_base_`` files) -> ``key=value`` overrides -> defaults ->
validation.

A config is a plain nested ``dict``. Validation is against a schema from
:mod:`core.config_schema`; an unknown key or a wrong type raises :class:`ConfigError` whose
message is one line naming the key, the file it came from and the closest valid key. Value
constraints (ranges, list shapes: the schema's ``Range`` / ``ListOf`` leaves) are checked once,
after the overrides, and fail the same way, naming the key, the value and the file (and the
override that set it). A YAML mapping with a duplicated key is refused when read. The schema's
defaults (:class:`~core.config_schema.Default`) are filled in after the overrides
(:func:`fill_defaults`; the rules are in :mod:`core.config_schema`), so a resolved config holds
every setting of the run.
"""
import copy
import difflib
import os
import re

import yaml

from core.errors import UserError

from .config_schema import ANY, CFG_SCHEMA, SP_SCHEMA, Constraint, Default, MapOf, Open, unwrap


class DuplicateKeyError(yaml.YAMLError):
    """A YAML mapping gives the same key twice (``key`` is dotted from the document's root)."""

    def __init__(self, key, line, first_line):
        super().__init__(f"duplicate key '{key}' at line {line} (first at line {first_line})")
        self.key, self.line, self.first_line = key, line, first_line


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``) and refuses
    a mapping that repeats a key (plain PyYAML keeps the last one silently)."""

    def construct_document(self, node):
        self._mapping_paths = {}   # id(mapping node) -> its dotted path, for error messages
        self._note_paths(node, '', set())
        return super().construct_document(node)

    def _note_paths(self, node, path, seen):
        if id(node) in seen:  # anchors / aliases may share (or loop back to) a node
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            self._mapping_paths[id(node)] = path
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else '?'
                self._note_paths(value_node, f'{path}.{name}' if path else str(name), seen)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._note_paths(item, f'{path}.{i}' if path else str(i), seen)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first = {}
            for key_node, _ in node.value:
                if key_node.tag == 'tag:yaml.org,2002:merge':  # ``<<: *base`` may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen_at = first.get(key)
                except TypeError:  # unhashable key: the base class reports it
                    continue
                line = key_node.start_mark.line + 1
                if seen_at is not None:
                    parent = getattr(self, '_mapping_paths', {}).get(id(node), '')
                    raise DuplicateKeyError(f'{parent}.{key}' if parent else str(key), line, seen_at)
                first[key] = line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'''^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$''', re.X),
    list('-+0123456789.'))


def yaml_load(text):
    return yaml.load(text, Loader=_Loader)


class ConfigError(UserError, ValueError):
    """A config problem; ``str(err)`` is a single line meant for the user."""


def _read_yaml(path):
    if os.path.isdir(path):
        found = sorted(n for n in os.listdir(path) if n.endswith(('.yaml', '.yml')))
        inside = f'; configs in it: {", ".join(found[:8])}' + (' …' if len(found) > 8 else '') if found else ''
        raise ConfigError(f'config {path} is a folder, not a YAML file{inside}')
    if not os.path.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    with open(path) as f:
        try:
            data = yaml_load(f)
        except DuplicateKeyError as e:
            raise ConfigError(f"duplicate config key '{e.key}' in {path} at line {e.line} "
                              f"(first given at line {e.first_line})") from None
        except yaml.YAMLError as e:
            line = getattr(getattr(e, 'problem_mark', None), 'line', None)
            where = f' (line {line + 1})' if line is not None else ''
            raise ConfigError(f'{path}{where}: invalid YAML: {getattr(e, "problem", e)}') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: top level must be a mapping, got {type(data).__name__}')
    return data


def deep_merge(base, update):
    """Return ``base`` updated recursively by ``update`` (dicts merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml_stack(path, _seen=()):
    """Read ``path`` and the ``_base_`` files it lists (relative to it), deep-merged, later wins."""
    path = os.path.normpath(path)
    if path in _seen:
        raise ConfigError(f'{path}: _base_ cycle through {" -> ".join(_seen)}')
    data = _read_yaml(path)
    bases = data.pop('_base_', [])
    if isinstance(bases, str):
        bases = [bases]
    merged = {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        merged = deep_merge(merged, load_yaml_stack(base_path, _seen + (path,)))
    return deep_merge(merged, data)


def _set_key(cfg, dotted, value):
    keys = dotted.split('.')
    node = cfg
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def parse_override(text):
    """``'optimizer.epochs=3'`` -> ``('optimizer.epochs', 3)`` (value parsed as YAML)."""
    if '=' not in text:
        raise ConfigError(f'override {text!r} is not of the form key=value')
    key, raw = text.split('=', 1)
    key = key.strip()
    if not key or any(not part for part in key.split('.')):
        raise ConfigError(f'override {text!r}: bad key {key!r}')
    try:
        value = yaml_load(raw) if raw.strip() else None
    except DuplicateKeyError as e:
        raise ConfigError(f"override {text!r}: duplicate key '{e.key}'") from None
    except yaml.YAMLError:
        value = raw
    return key, value


def _type_name(spec):
    if isinstance(spec, tuple):
        return ' or '.join('null' if t is type(None) else t.__name__ for t in spec)
    return spec.__name__


def _all_paths(schema, prefix=''):
    """Every dotted key path the schema knows (for suggestions)."""
    out = []
    schema = unwrap(schema)
    if isinstance(schema, MapOf):
        return _all_paths(schema.schema, prefix + '<name>.')
    if isinstance(schema, tuple):
        schema = next((s for s in schema if isinstance(s, (dict, MapOf, Open))), None)
    if isinstance(schema, MapOf):
        return _all_paths(schema.schema, prefix + '<name>.')
    if isinstance(schema, Open):
        schema = schema.schema
    if isinstance(schema, dict):
        for k, v in schema.items():
            out.append(prefix + k)
            out.extend(_all_paths(v, prefix + k + '.'))
    return out


def _check(value, schema, path, where, root_schema):
    """Keys and types (a :class:`Constraint` leaf's ``types`` only; its values come later)."""
    schema = unwrap(schema)
    if schema is ANY:
        return
    if isinstance(schema, tuple) and any(isinstance(s, (dict, MapOf, Open)) for s in schema):
        if value is None and type(None) in schema:
            return
        schema = next(s for s in schema if isinstance(s, (dict, MapOf, Open)))
    if isinstance(schema, Open):
        if value is None:
            return
        if not isinstance(value, dict):
            raise ConfigError(f'{path}: expected a mapping, got {value!r} in {where}')
        for k, v in value.items():
            if k in schema.schema:
                _check(v, schema.schema[k], f'{path}.{k}', where, root_schema)
        return
    if isinstance(schema, MapOf):
        if not isinstance(value, dict):
            raise ConfigError(f'{path}: expected a mapping, got {value!r} in {where}')
        for k, v in value.items():
            _check(v, schema.schema, f'{path}.{k}', where, root_schema)
        return
    if isinstance(schema, dict):
        if value is None:
            return  # a whole block may be null (e.g. ``model: null`` in DRL-dir configs)
        if not isinstance(value, dict):
            raise ConfigError(f'{path or "<top>"}: expected a mapping, got {value!r} in {where}')
        for k, v in value.items():
            key = f'{path}.{k}' if path else str(k)
            if k not in schema:
                candidates = _all_paths(root_schema)
                close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else ''
                raise ConfigError(f"unknown config key '{key}' in {where}{hint}")
            _check(v, schema[k], key, where, root_schema)
        return
    if isinstance(schema, Constraint):
        schema = schema.types if len(schema.types) > 1 else schema.types[0]
    types = schema if isinstance(schema, tuple) else (schema,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f"config key '{path}' in {where} must be {_type_name(schema)}, "
                          f"got {value!r} ({type(value).__name__})")


def _check_values(value, schema, path, where_of):
    """The :class:`Constraint` leaves' value rules, on a config whose keys and types passed."""
    schema = unwrap(schema)
    if isinstance(schema, Constraint):
        problem = schema.problem(value)
        if problem:
            raise ConfigError(f"config key '{path}' in {where_of(path)} {problem}, got {value!r}")
        return
    if isinstance(schema, tuple):
        schema = next((s for s in schema if isinstance(s, (dict, MapOf, Open))), None)
    if not isinstance(value, dict):
        return
    if isinstance(schema, MapOf):
        for k, v in value.items():
            _check_values(v, schema.schema, f'{path}.{k}', where_of)
    elif isinstance(schema, (dict, Open)):
        fields = schema.schema if isinstance(schema, Open) else schema
        for k, v in value.items():
            if k in fields:
                _check_values(v, fields[k], f'{path}.{k}' if path else str(k), where_of)


def validate(cfg, schema, where, values=True):
    """Raise :class:`ConfigError` unless ``cfg`` fits ``schema`` (keys, types and, unless
    ``values`` is false, the value constraints). ``where`` names the source in messages: a
    string, or a function of the dotted key returning one."""
    where_of = where if callable(where) else (lambda _path: where)
    _check(cfg, schema, '', where_of(''), root_schema=schema)
    if values:
        _check_values(cfg, schema, '', where_of)


def _fill(value, schema):
    """Fill ``value`` (in place) with the defaults of ``schema`` (see :func:`fill_defaults`)."""
    schema = unwrap(schema)
    if isinstance(schema, tuple):
        schema = next((s for s in schema if isinstance(s, (dict, MapOf, Open))), None)
    if not isinstance(value, dict):
        return
    if isinstance(schema, MapOf):
        for v in value.values():
            _fill(v, schema.schema)
        return
    if isinstance(schema, Open):
        schema = schema.schema
    if not isinstance(schema, dict):
        return
    for k, s in schema.items():
        if k not in value and isinstance(s, Default):
            value[k] = copy.deepcopy(s.value)
        if k in value:
            _fill(value[k], s)


def fill_defaults(cfg, schema=None):
    """A copy of ``cfg`` with the schema's defaults filled in (rules: :mod:`core.config_schema`).

    Keys already present are kept as they are (``null`` included); blocks that are absent stay
    absent unless the schema gives them a default. Idempotent. Also the way to complete a
    hand-built partial config (tests, tools) before handing it to a builder.

    Args:
        cfg: a config dict (not modified).
        schema: defaults to :data:`CFG_SCHEMA` (:data:`SP_SCHEMA` for the DRL config).
    """
    out = copy.deepcopy(cfg)
    _fill(out, CFG_SCHEMA if schema is None else schema)
    return out


def load_config(path, overrides=(), schema=None, prefix=''):
    """Load, stack, override, fill in the defaults and validate one config.

    Args:
        path: YAML file.
        overrides: ``key=value`` strings; only those starting with ``prefix`` apply, with the
            prefix removed (the DRL scripts pass ``prefix='sp.'`` for their second config).
        schema: defaults to :data:`CFG_SCHEMA`.
    Returns:
        The resolved config as a nested dict, defaults included.
    """
    schema = CFG_SCHEMA if schema is None else schema
    cfg = load_yaml_stack(path)
    validate(cfg, schema, path, values=False)
    applied = []  # (key, override text), in order
    for text in overrides:
        key, value = parse_override(text)
        if prefix:
            if not key.startswith(prefix):
                continue
            key = key[len(prefix):]
        elif key.startswith('sp.'):
            continue
        try:
            _set_key(cfg, key, value)
        except AttributeError:
            raise ConfigError(f"override '{text}' for {path}: a parent of '{key}' is not a mapping") from None
        validate(cfg, schema, f"{path} (override '{text}')", values=False)
        applied.append((key, text))

    def where_of(dotted):
        """The file, plus the last override that set ``dotted`` (or a mapping above it)."""
        for key, text in reversed(applied):
            if dotted == key or dotted.startswith(key + '.'):
                return f"{path} (override '{text}')"
        return path

    cfg = fill_defaults(cfg, schema)
    validate(cfg, schema, where_of)  # values: once, on the final config (defaults included)
    return cfg


def check_drl_config_order(path, sp_path, script='main-drl.py'):
    """The DRL scripts take the video model's config first and the DRL config second: a swap
    is named as such (not as an unknown key of the wrong file)."""
    first, second = load_yaml_stack(path), load_yaml_stack(sp_path)
    drl_only = ('adversary', 'sp_pretrain', 'freeze_sp', 'shuffle', 'criterion_feat', 'visualize')
    if 'dataset' in second and 'dataset' not in first and any(k in first for k in drl_only + ('optimizer',)):
        raise ConfigError(f'{script} takes the video model\'s config first and the DRL config second: '
                          f'{path} is a DRL config and {sp_path} a video model config; swap them')
    if 'dataset' in second:
        raise ConfigError(f'{sp_path}: the second config of {script} is a DRL config (spatial model, '
                          f'adversary, criterion); this one has a dataset block (a video model config?)')


def load_sp_config(path, overrides=()):
    """The DRL scripts' second config (its own namespace, overridden with ``sp.`` keys)."""
    return load_config(path, overrides, schema=SP_SCHEMA, prefix='sp.')


def check_overrides_prefixes(overrides, allow_sp):
    """Reject ``sp.`` overrides given to a script that has no second config."""
    for text in overrides:
        if text.split('=', 1)[0].startswith('sp.') and not allow_sp:
            raise ConfigError(f"override '{text}': 'sp.' keys only apply to main-drl.py / main-drl-dir.py")


def save_config(cfg, path):
    """Write a resolved config as YAML (atomically)."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    os.replace(tmp, path)
