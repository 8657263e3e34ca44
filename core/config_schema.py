"""Schemas of the two config namespaces, with their defaults.

Leaves are a type or a tuple of types (``NONE`` allows ``null``); ``ANY`` accepts anything
(used for keyword arguments handed verbatim to torch constructors); ``MapOf(s)`` is a mapping
with free key names whose values follow ``s``; ``Open(d)`` is a mapping whose keys listed in
``d`` follow their schema while any other key is accepted as is. Parts of the code that need a
new key add it here.

Value constraints are leaves too: ``Range(types, lo, hi)`` is a number (or ``null`` when
``NONE`` is among ``types``) within bounds, ``ListOf(item, length)`` a list whose items follow
``item`` (a type or a ``Range``). The validator checks their types with every other type, and
their values once, after the overrides (see :func:`core.config.load_config`).

Defaults live here and nowhere else: ``Default(value, s)`` is a key following ``s`` that
:func:`core.config.fill_defaults` sets to ``value`` when it is absent. ``load_config`` fills
them after the ``_base_`` merge and the overrides, before the value checks, so the resolved
config (the run folder's ``config.yaml``) shows every setting that ran. The rules:

- a default is filled only where its parent mapping is present (``dataset.max_bad_fraction``
  whenever there is a ``dataset`` mapping; nothing under a block that is absent or ``null``);
- a block is created when absent only when it is itself a ``Default`` (``Default({}, {...})``,
  e.g. ``dataset.transform``, ``criterion``, ``fewshot``), then filled like a present one;
- a block without a ``Default`` is never created: absent (or ``null``) means "not used" or
  "off" (``augment``, ``adversary``, ``criterion_feat``, ``optimizer``, the DRL config's
  ``model``); when present, its own defaults are filled; a nullable block may default to
  ``null`` (``optimizer.schedule: null``, a constant learning rate);
- ``MapOf`` entries get their per-entry defaults (each ``dataset.args.<split>``);
- a default of ``null`` that means "inherit" is documented at its key (``sp.seed``,
  ``sp.eval_period``, ``fewshot.seed``);
- keys only a model constructor or one dataset family reads (``model.args.*``,
  ``dataset.scenemotion.*``, ``dataset.subset``, ``dataset.args.<split>.split``) have no default
  here: the constructor or family module owns it.

Code reads a key with a default by indexing (``cfg['dataset']['max_bad_fraction']``) and keeps
``.get`` only for blocks that may be absent. The building blocks below ``utils`` (``datasets``,
``models``) cannot import this module; their builders still accept partial dicts (tools, tests)
and their keyword defaults equal the ones here (checked by ``tests/test_config_defaults.py``).
"""


class _Any:
    def __repr__(self):
        return 'ANY'


ANY = _Any()
NONE = type(None)
NUM = (int, float)


class MapOf:
    """A mapping whose keys are free names, each value following ``schema``."""

    def __init__(self, schema):
        self.schema = schema


class Open:
    """A mapping whose keys in ``schema`` follow it; other keys are accepted unchecked."""

    def __init__(self, schema):
        self.schema = schema


class Default:
    """A key following ``schema`` that is set to ``value`` (a deep copy) when absent from a present
    parent mapping; a mapping ``schema`` is then filled in turn (module docstring)."""

    def __init__(self, value, schema):
        self.value, self.schema = value, schema

    def __repr__(self):
        return f'Default({self.value!r}, {self.schema!r})'


def unwrap(schema):
    """The schema under a :class:`Default` (any other schema unchanged)."""
    return schema.schema if isinstance(schema, Default) else schema


class Constraint:
    """A schema leaf that checks a value beyond its type.

    Subclasses set ``types`` (checked with the other leaves' types, on every validation) and
    implement :meth:`problem` (checked once the overrides are applied).
    """
    types = ()

    def problem(self, value):
        """``None`` when ``value`` is fine, else the rule it breaks (``'must be >= 1'``)."""
        raise NotImplementedError

    def __repr__(self):
        return f'{type(self).__name__}({self.describe()})'


class Range(Constraint):
    """A number of ``types`` within ``[lo, hi]``; ``lo_open`` / ``hi_open`` exclude the bound.

    ``None`` bounds are unlimited; NaN is always out of range; ``null`` is accepted (unchecked)
    when ``NONE`` is among ``types``.
    """

    def __init__(self, types, lo=None, hi=None, lo_open=False, hi_open=False):
        self.types = types if isinstance(types, tuple) else (types,)
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def describe(self):
        if self.lo is not None and self.hi is not None:
            return (f"in {'(' if self.lo_open else '['}{self.lo}, "
                    f"{self.hi}{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {self.hi}"
        return 'a number'

    def accepts(self, value):
        """Of a number type in ``types`` (an int counts as a float) and within the bounds."""
        numeric = tuple(t for t in self.types if t is not NONE)
        if isinstance(value, bool) or not (isinstance(value, numeric)
                                           or (float in numeric and isinstance(value, int))):
            return False
        if self.lo is not None and not (value > self.lo if self.lo_open else value >= self.lo):
            return False
        if self.hi is not None and not (value < self.hi if self.hi_open else value <= self.hi):
            return False
        return value == value  # NaN

    def problem(self, value):
        if value is None and NONE in self.types:
            return None
        return None if self.accepts(value) else f'must be {self.describe()}'


class ListOf(Constraint):
    """A list of ``length`` items (any length when ``None``), each an instance of ``item`` (a
    type or tuple of types) or accepted by it (a :class:`Range`). ``ordered`` requires
    non-decreasing items; ``nullable`` also accepts ``null``.
    """

    def __init__(self, item, length=None, ordered=False, nullable=False):
        self.item, self.length, self.ordered = item, length, ordered
        self.types = (list, NONE) if nullable else (list,)

    def _item_ok(self, x):
        if isinstance(self.item, Range):
            return self.item.accepts(x)
        types = self.item if isinstance(self.item, tuple) else (self.item,)
        return isinstance(x, types) and not (isinstance(x, bool) and bool not in types)

    def describe(self):
        if isinstance(self.item, Range):
            what = 'numbers' + ('' if (self.item.lo, self.item.hi) == (None, None)
                                else f' {self.item.describe()}')
        else:
            types = self.item if isinstance(self.item, tuple) else (self.item,)
            what = ' or '.join(t.__name__ for t in types) + ' items'
        count = f'{self.length} ' if self.length is not None else ''
        text = f'a list of {count}{what}'
        if self.ordered:
            text += ' in non-decreasing order'
        return text + (' (or null)' if NONE in self.types else '')

    def problem(self, value):
        if value is None and NONE in self.types:
            return None
        ok = (isinstance(value, list) and (self.length is None or len(value) == self.length)
              and all(self._item_ok(x) for x in value)
              and (not self.ordered or all(a <= b for a, b in zip(value, value[1:]))))
        return None if ok else f'must be {self.describe()}'


IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

CLIP_ARGS = {
    'n_clips': Default(1, int),
    'n_frames': int,
    'fps': Default(-1, NUM),  # -1: the source rate
    'sparse': Default(False, bool),
    'split': (int, str),      # hmdb51 / ucf101 split number (the family's default: 1)
    'phase': str,
    'base_cls': (int, list, str, NONE),
    'subset': str,
}

TRANSFORM = {
    'resize': Default(None, (int, list, NONE)),  # short side (null: no resize)
    'crop': Default(None, (int, list, NONE)),
    'hflip': Default(False, bool),
    # brightness, contrast, saturation, hue
    'color_jitter': Default(None, ListOf(Range(NUM, lo=0), length=4, nullable=True)),
    'normalize': Default({}, {'mean': Default(IMAGENET_MEAN, ListOf(Range(NUM), length=3)),
                              'std': Default(IMAGENET_STD, ListOf(Range(NUM, lo=0, lo_open=True), length=3))}),
    'rnd_scale': Default(None, (list, NONE)),
    'rnd_ratio': Default(None, (list, NONE)),
    # uint8 clips; flip / jitter / normalise on the device (docs/gpu.md)
    'device_augment': Default(False, bool),
}

# keyword arguments of the model constructors: their defaults stay with the constructors
MODEL_ARGS = {
    'n_class': int,
    'model_depth': int,
    'dropout': Range(NUM, 0, 1, hi_open=True),
    'pretrained': bool,
    'pretrained_path': (str, NONE),
    'arch': str,
    'num_segments': int,
    'shift_div': int,
    'ret_feat': (list, NONE),
    'consensus': str,
    'conv1_t_size': int,
    'conv1_t_stride': int,
    'no_max_pool': bool,
    'shortcut_type': str,
    'widen_factor': NUM,
    'n_input_channels': int,
    'weights': (str, NONE),           # torchvision video models: weights tag (default KINETICS400_V1)
    'temporal_size': (int, NONE),     # mvit_*: clip length the model is built for (default 16)
    'spatial_size': (list, NONE),     # mvit_*: [H, W] the model is built for (default [224, 224])
    'path': (str, NONE),              # hf_video: a local Hugging Face model folder (docs/models.md)
    'config': (dict, NONE),           # hf_video: an inline transformers config with model_type (random init)
}

MODEL = {
    'name': str,
    # the authors' key, kept so their configs load; a no-op: a run is distributed when torchrun
    # starts several processes (README "Multi-GPU and multi-node"), whatever this says
    'ddp': bool,
    'sync_bn': Default(False, bool),
    'freeze_bn': Default(False, bool),
    'pretrain': Default(None, (str, NONE)),
    'copy_head': Default(False, bool),
    'linear_probe': Default(False, bool),   # main.py: train the head only, backbone frozen in eval mode
    'args': MODEL_ARGS,
}

SCHEDULE = {'name': str, 'args': Default({}, ANY)}

# generation parameters; their defaults: datasets.scenemotion_gen.DEFAULTS (part of the cache hash)
SCENEMOTION = {
    'seed': int,
    'bias': Range(NUM, 0, 1),
    'size': int,
    'n_frames': int,
    'fps': NUM,
    'n_train': int,
    'n_val': int,
    'n_transfer_train': int,
    'n_transfer_test': int,
    'n_novel': int,
    'cache_dir': (str, NONE),
}

DATASET = {
    'name': str,
    'root': Default(None, (str, NONE)),  # null: the environment / paths file (datasets/paths.py)
    # the video / annotation folder, anywhere on disk (datasets/paths.py explicit_layout); a
    # root is then needed only for the one not given. mini_kinetics_200: the K400 videos
    'video_root': (str, NONE),
    'ann_root': (str, NONE),
    # auto | project | published: folder layout under the root (datasets/paths.py)
    'layout': Default('auto', (str, NONE)),
    'batch_size': Range(int, lo=1),
    'num_workers': Default(None, Range((int, NONE), lo=0)),  # null: min(4, CPU count); -j wins
    'max_bad_fraction': Default(0.01, Range(NUM, 0, 1)),
    'decode_device': Default('cpu', str),  # cpu | cuda: NVDEC through PyAV's hwaccel (docs/gpu.md)
    'transform': Default({}, TRANSFORM),
    'args': MapOf(CLIP_ARGS),
    # few-shot episodes (main-fsl.py)
    'n_way': Default(5, Range(int, lo=1)),
    'n_shot': Default(1, Range(int, lo=1)),
    'n_query': Default(5, Range(int, lo=1)),
    'n_batch': Default(1000, Range(int, lo=1)),
    'ep_per_batch': Default(1, Range(int, lo=1)),
    'min_videos': Default(None, (int, NONE)),  # null: max(5, n_shot + n_query)
    # the embedded benchmark
    'subset': str,
    'scenemotion': SCENEMOTION,
}

# an optimiser's gradient-norm clipping: null = off (engine.engine.Engine, ``grad_norm`` metric)
CLIP_GRAD = Default(None, Range((int, float, NONE), lo=0, lo_open=True))

CFG_SCHEMA = {
    'dataset': DATASET,
    'model': MODEL,
    'model_fs': {'name': str, 'args': Default({}, ANY)},
    # absent: the run does not train (e.g. a few-shot config without base training)
    'optimizer': {
        'name': str,
        'epochs': Range(int, lo=1),
        'args': Default({}, ANY),
        'schedule': Default(None, (SCHEDULE, NONE)),  # null: constant learning rate
        'clip_grad': CLIP_GRAD,
    },
    'criterion': Default({}, {'name': Default('CrossEntropyLoss', str), 'args': Default({}, ANY)}),
    'seed': Default(0, int),
    'eval_period': Default(1, Range(int, lo=1)),  # validate every N epochs (and after the last)
    # main.py / main-fsl.py's base training: the de-biasing method (debias/, docs/methods.md);
    # absent: off. name: stillmix | background_erasing | fame | albar | mixup | cutmix; each
    # method reads its own keys (StillMix / BE: mix, prob, consistency; the others their block)
    'augment': {'name': str,
                'mix': Default([0.3, 0.7], ListOf(Range(NUM, 0, 1), length=2, ordered=True)),
                'prob': Default(1.0, Range(NUM, 0, 1)), 'consistency': Default(0.0, Range(NUM, lo=0)),
                # foreground share β; the authors' colour-histogram refinement of the mask
                'fame': Default({}, {'fg_fraction': Default(0.5, Range(NUM, 0, 1, lo_open=True, hi_open=True)),
                                     'refine': Default(True, bool)}),
                # −α·CE + β·neg. entropy + γ·grad penalty on the static clip; null frame: T // 2
                'albar': Default({}, {'alpha': Default(1.0, Range(NUM, lo=0)),
                                      'beta': Default(4.25, Range(NUM, lo=0)),
                                      'gamma': Default(10.0, Range(NUM, lo=0)),
                                      'static_frame': Default(None, Range((int, NONE), lo=0)),
                                      # BatchNorm on the static forward: its own batch statistics
                                      # (the authors') or the running ones (debias/albar.py)
                                      'static_bn': Default('batch', str)}),
                'mixup': Default({}, {'alpha': Default(0.8, Range(NUM, lo=0, lo_open=True))}),
                'cutmix': Default({}, {'alpha': Default(1.0, Range(NUM, lo=0, lo_open=True))})},
    # main-fsl.py: feature encoding and episode fitting
    'fewshot': Default({}, {
        'cache': Default(False, bool),
        'batch_size': Default(4, int),
        'seed': Default(None, (int, NONE)),  # null: the run's seed
        'cache_dir': Default(None, (str, NONE)),  # null: <run folder>/feature_cache
        'chunk': Default(250, int),
    }),
}

# The second config of main-drl.py / main-drl-dir.py: spatial model and DRL settings.
SP_SCHEMA = {
    'model': (MODEL, NONE),  # absent / null: no spatial model
    'sp_pretrain': Default(None, (str, NONE)),
    'freeze_sp': Default(False, bool),
    # adversary.args go to the attack's constructor; the keys listed here are checked; absent /
    # null: no attack (dynamic scoring)
    'adversary': ({'name': str, 'args': Open({'eps': Range(NUM, lo=0), 'iters': Range(int, lo=1)})},
                  NONE),
    'optimizer': {
        'name': str,
        'epochs': Range(int, lo=1),
        'model_sp': {'args': Default({}, ANY)},   # absent: the spatial model is not trained
        'model': {'args': Default({}, ANY)},      # absent: the video model is not trained
        'schedule': Default(None, (SCHEDULE, NONE)),
        'clip_grad': CLIP_GRAD,
    },
    'criterion': Default({}, {'name': Default('KDLoss', str), 'args': Default({}, ANY),
                              'lambda': Default(0.5, Range(NUM, lo=0)),  # main-drl-dir.py
                              'scale': Default(False, bool)}),             # main-drl-dir.py
    # feature distillation into the spatial model (drl.steps.FeatureLoss); absent / null: off
    'criterion_feat': ({'keys': Default([], ListOf(str)), 'name': Default('MSELoss', str),
                        'args': Default({}, ANY), 'weight': Default(1.0, NUM)}, NONE),
    'shuffle': Default(False, bool),
    'seed': Default(None, (int, NONE)),  # null: the main config's
    # validate every N epochs (and after the last); null: the main config's eval_period
    'eval_period': Default(None, Range((int, NONE), lo=1)),
    # adversarial-example pictures of the first training batch every ``every`` epochs (0: none)
    'visualize': Default({}, {'n_clips': Default(4, int), 'every': Default(1, Range(int, lo=0))}),
}
