"""Schemas of the two config namespaces.

Leaves are a type or a tuple of types (``NONE`` allows ``null``); ``ANY`` accepts anything
(used for keyword arguments handed verbatim to torch constructors); ``MapOf(s)`` is a mapping
with free key names whose values follow ``s``; ``Open(d)`` is a mapping whose keys listed in
``d`` follow their schema while any other key is accepted as is. Parts of the code that need a
new key add it here; the schema does not inject defaults (code uses ``.get(key, default)``).

Value constraints are leaves too: ``Range(types, lo, hi)`` is a number (or ``null`` when
``NONE`` is among ``types``) within bounds, ``ListOf(item, length)`` a list whose items follow
``item`` (a type or a ``Range``). The validator checks their types with every other type, and
their values once, after the overrides (see :func:`utils.config.load_config`).
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


CLIP_ARGS = {
    'n_clips': int,
    'n_frames': int,
    'fps': NUM,
    'sparse': bool,
    'split': (int, str),
    'phase': str,
    'base_cls': (int, list, str, NONE),
    'subset': str,
}

TRANSFORM = {
    'resize': (int, list),
    'crop': (int, list),
    'hflip': bool,
    # brightness, contrast, saturation, hue
    'color_jitter': ListOf(Range(NUM, lo=0), length=4, nullable=True),
    'normalize': {'mean': ListOf(Range(NUM), length=3),
                  'std': ListOf(Range(NUM, lo=0, lo_open=True), length=3)},
    'rnd_scale': (list, NONE),
    'rnd_ratio': (list, NONE),
    'device_augment': bool,  # uint8 clips; flip / jitter / normalise on the device (docs/gpu.md)
}

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
}

MODEL = {
    'name': str,
    'ddp': bool,
    'sync_bn': bool,
    'freeze_bn': bool,
    'pretrain': (str, NONE),
    'copy_head': bool,
    'linear_probe': bool,   # main.py: train the head only, backbone frozen in eval mode
    'args': MODEL_ARGS,
}

SCHEDULE = {'name': str, 'args': ANY}

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
    'root': (str, NONE),
    'video_root': (str, NONE),  # mini_kinetics_200: folder of the Kinetics-400 videos
    'layout': (str, NONE),  # auto | project | published: folder layout under the root (datasets/paths.py)
    'batch_size': Range(int, lo=1),
    'num_workers': Range(int, lo=0),
    'max_bad_fraction': Range(NUM, 0, 1),
    'decode_device': str,  # cpu | cuda: NVDEC through PyAV's hwaccel (docs/gpu.md)
    'transform': TRANSFORM,
    'args': MapOf(CLIP_ARGS),
    # few-shot episodes
    'n_way': Range(int, lo=1),
    'n_shot': Range(int, lo=1),
    'n_query': Range(int, lo=1),
    'n_batch': Range(int, lo=1),
    'ep_per_batch': Range(int, lo=1),
    'min_videos': int,
    # the embedded benchmark
    'subset': str,
    'scenemotion': SCENEMOTION,
}

CFG_SCHEMA = {
    'dataset': DATASET,
    'model': MODEL,
    'model_fs': {'name': str, 'args': ANY},
    'optimizer': {
        'name': str,
        'epochs': Range(int, lo=1),
        'args': ANY,
        'schedule': (SCHEDULE, NONE),
        'clip_grad': (NUM, NONE),
    },
    'criterion': {'name': str, 'args': ANY},
    'seed': int,
    'eval_period': int,  # validate every N epochs (and after the last); default 1
    # main.py: batch de-biasing augmentation (datasets/batch_mix.py)
    'augment': {'name': str, 'mix': ListOf(Range(NUM, 0, 1), length=2, ordered=True),
                'prob': Range(NUM, 0, 1), 'consistency': NUM},
    'fewshot': {'cache': bool, 'batch_size': int, 'seed': int, 'cache_dir': (str, NONE), 'chunk': int},
}

# The second config of main-drl.py / main-drl-dir.py: spatial model and DRL settings.
SP_SCHEMA = {
    'model': (MODEL, NONE),
    'sp_pretrain': (str, NONE),
    'freeze_sp': bool,
    # adversary.args go to the attack's constructor; the keys listed here are checked
    'adversary': ({'name': str, 'args': Open({'eps': Range(NUM, lo=0), 'iters': Range(int, lo=1)})},
                  NONE),
    'optimizer': {
        'name': str,
        'epochs': Range(int, lo=1),
        'model_sp': {'args': ANY},
        'model': {'args': ANY},
        'schedule': (SCHEDULE, NONE),
    },
    'criterion': {'name': str, 'args': ANY, 'lambda': Range(NUM, lo=0), 'scale': bool},
    'criterion_feat': ANY,
    'shuffle': bool,
    'seed': int,
    'eval_period': int,  # DRL runs: validate every N epochs (and after the last)
    'visualize': {'n_clips': int, 'every': int},
}
