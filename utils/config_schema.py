"""Schemas of the two config namespaces.

Leaves are a type or a tuple of types (``NONE`` allows ``null``); ``ANY`` accepts anything
(used for keyword arguments handed verbatim to torch constructors); ``MapOf(s)`` is a mapping
with free key names whose values follow ``s``. Parts of the code that need a new key add it
here; the schema does not inject defaults (code uses ``.get(key, default)``).
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
    'color_jitter': (list, NONE),
    'normalize': {'mean': list, 'std': list},
    'rnd_scale': (list, NONE),
    'rnd_ratio': (list, NONE),
}

MODEL_ARGS = {
    'n_class': int,
    'model_depth': int,
    'dropout': NUM,
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
    'bias': NUM,
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
    'batch_size': int,
    'num_workers': int,
    'max_bad_fraction': NUM,
    'transform': TRANSFORM,
    'args': MapOf(CLIP_ARGS),
    # few-shot episodes
    'n_way': int,
    'n_shot': int,
    'n_query': int,
    'n_batch': int,
    'ep_per_batch': int,
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
        'epochs': int,
        'args': ANY,
        'schedule': (SCHEDULE, NONE),
        'clip_grad': (NUM, NONE),
    },
    'criterion': {'name': str, 'args': ANY},
    'seed': int,
    # main.py: batch de-biasing augmentation (datasets/batch_mix.py)
    'augment': {'name': str, 'mix': list, 'prob': NUM, 'consistency': NUM},
    'fewshot': {'cache': bool, 'batch_size': int, 'seed': int, 'cache_dir': (str, NONE), 'chunk': int},
}

# The second config of main-drl.py / main-drl-dir.py: spatial model and DRL settings.
SP_SCHEMA = {
    'model': (MODEL, NONE),
    'sp_pretrain': (str, NONE),
    'freeze_sp': bool,
    'adversary': ({'name': str, 'args': ANY}, NONE),
    'optimizer': {
        'name': str,
        'epochs': int,
        'model_sp': {'args': ANY},
        'model': {'args': ANY},
        'schedule': (SCHEDULE, NONE),
    },
    'criterion': {'name': str, 'args': ANY, 'lambda': NUM, 'scale': bool},
    'criterion_feat': ANY,
    'shuffle': bool,
    'seed': int,
    'visualize': {'n_clips': int, 'every': int},
}
