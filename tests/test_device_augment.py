"""uint8 clips on the wire, augmentation on the device (``dataset.transform.device_augment``).

The workers' uint8 clips plus their draws, finished by :class:`DeviceAugment`, must equal the
float path for the same seed: same crops and flips (exact), same jitter and normalisation up
to float rounding. Tolerance: 1e-4 after normalisation (the float path's fused OpenCV passes
and the device path's torchvision-style arithmetic each stay within ~1e-5 of torchvision's
ops; measured worst case ~1.5e-5). Runs on CPU tensors; the same code runs on CUDA.
"""
import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Subset

from datasets.base import VideoDataset, VideoRecord
from datasets.collate import video_collate
from datasets.device_augment import DeviceAugment, finish_clips, hue_shift, pack_params
from datasets.transforms import build_transform, library_color_jitter
from engine.dist import DistInfo
from engine.engine import Engine, batch_finisher, to_device
from engine.runner import RunContext
from engine.step import Step, StepOutput
from tests.test_transforms import CFG, MEAN, STD, video
from tests.videos import write_video

ATOL = 1e-4  # after normalisation, i.e. ~2.3e-5 in [0, 1] units (0.006 grey levels)
JITTERS = {'jitter': [0.4, 0.4, 0.4, 0.3], 'strong': [0.9, 0.9, 0.9, 0.5], 'none': None}
# the finisher runs where the model does; CUDA is added on a machine that has it
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def finish(items, sparse=False, device='cpu'):
    """Collate dataset-style items and finish the batch on ``device`` (result on the CPU)."""
    batch = video_collate(items)
    out = DeviceAugment(MEAN, STD, sparse)(batch, torch.device(device))
    return {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in out.items()}


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('train', [True, False])
@pytest.mark.parametrize('jitter', list(JITTERS))
def test_device_path_equals_float_path_for_the_same_seed(train, jitter, device):
    cfg = dict(CFG, color_jitter=JITTERS[jitter])
    flt = build_transform(cfg, train)
    dev = build_transform(dict(cfg, device_augment=True), train)
    worst = 0.0
    for seed in range(12):
        v = video(k=3, t=5, h=40, w=52, seed=seed)
        g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        ref = flt(v, g1)
        clips, params = dev(v, g2)
        assert clips.dtype == torch.uint8 and clips.shape == (3, 5, 28, 28, 3)
        assert params.shape == (3, 9) and params.dtype == torch.float64
        # the same random numbers were used, in the same order
        assert torch.equal(g1.get_state(), g2.get_state())
        out = finish([{'video': clips, 'aug': params, 'label': 0, 'index': 0, 'vid': 'a'}],
                     device=device)
        assert out['video'].shape == (1, *ref.shape) and out['video'].dtype == torch.float32
        worst = max(worst, (out['video'][0] - ref).abs().max().item())
    assert worst < ATOL
    if not train or jitter == 'none':  # no jitter: only the / 255 and the normalisation
        assert worst < 1e-5


@pytest.mark.parametrize('seed', range(4))
def test_device_path_equals_torchvision_ops(seed):
    # forced draws, every op order and hue on both sides of the red wrap-around
    g = torch.Generator().manual_seed(seed)
    v = video(k=4, t=3, h=20, w=24, seed=seed)
    rows, refs = [], []
    for k in range(4):
        order = torch.randperm(4, generator=g).tolist()
        vals = [0.5 + torch.rand((), generator=g).item() for _ in range(3)]
        vals.append((torch.rand((), generator=g).item() - 0.5))
        if k == 3:
            vals[1] = None  # an op off
        flip = bool(k % 2)
        rows.append(pack_params(flip, (order, vals)))
        x = TF.to_dtype(v[k].permute(0, 3, 1, 2), torch.float32, scale=True)  # T × C × H × W
        x = TF.horizontal_flip(x) if flip else x
        ref = TF.normalize(library_color_jitter(x, order, vals), MEAN, STD)
        refs.append(ref.permute(1, 0, 2, 3))
    out = finish_clips(v, torch.stack(rows), MEAN, STD)
    torch.testing.assert_close(out, torch.stack(refs), atol=2e-5, rtol=0)


def test_hue_shift_equals_torchvision_on_edge_colours():
    # greys (no chroma), primaries, ties between the largest channels, black and white
    cols = torch.tensor([[0.5, 0.5, 0.5], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1],
                         [1, 0, 1], [0.7, 0.7, 0.2], [0.2, 0.7, 0.7], [0, 0, 0], [1, 1, 1],
                         [0.3, 0.1, 0.1], [0.1, 0.3, 0.29999]])
    x = cols.T.reshape(1, 3, 1, 1, -1).contiguous()  # N × C × T × H × W, pixels along W
    for shift in (-0.5, -0.3, -0.01, 0.0, 0.2, 0.49):
        ours = hue_shift(x, torch.full((1, 1, 1, 1, 1), shift))
        ref = TF.adjust_hue(x[:, :, 0], shift)  # 1 × 3 × 1 × W image
        torch.testing.assert_close(ours[:, :, 0], ref, atol=2e-6, rtol=0)


def test_pack_params_layout():
    row = pack_params(True, ([2, 0, 3, 1], [1.1, None, 0.9, -0.2]))
    assert row[0] == 1 and row[1:5].tolist() == [2, 0, 3, 1]
    assert row[5] == 1.1 and math.isnan(row[6]) and row[7] == 0.9 and row[8] == -0.2
    plain = pack_params(False, None)
    assert plain[0] == 0 and torch.isnan(plain[5:]).all()


def test_transform_returns_the_geometry_only():
    # no jitter, no flip: the device transform's clips are the float path's pixels, in uint8
    cfg = dict(CFG, color_jitter=None, hflip=False, device_augment=True)
    v = video(k=2, t=4, h=40, w=52)
    clips, params = build_transform(cfg, train=False)(v, torch.Generator())
    ref = TF.center_crop(TF.resize(v.flatten(0, 1).permute(0, 3, 1, 2), 32, antialias=True),
                         [28, 28])
    assert torch.equal(clips.flatten(0, 1), ref.permute(0, 2, 3, 1))
    assert build_transform(cfg, False).finisher() is not None
    assert build_transform(dict(cfg, device_augment=False), False).finisher() is None


def _dataset(path, transform_cfg, train, clip_args, n=3):
    records = [VideoRecord(path, i % 2, f'v{i}') for i in range(n)]
    return VideoDataset(records, ['a', 'b'], clip_args, build_transform(transform_cfg, train),
                        train=train, seed=5)


@pytest.mark.parametrize('train,clip_args', [
    (True, {'n_clips': 1, 'n_frames': 4, 'fps': 10}),     # the decoder cuts the random crop
    (True, {'n_clips': 2, 'n_frames': 4, 'fps': 10}),     # per-clip crops in the worker
    (False, {'n_clips': 3, 'n_frames': 4, 'fps': 10}),    # test: centre crop by the decoder
    (True, {'n_clips': 3, 'n_frames': 2, 'fps': 10, 'sparse': True}),
])
def test_dataset_batches_equal_through_the_finisher(tmp_path, train, clip_args):
    path = write_video(str(tmp_path / 'v.mp4'), 40, fps=30, size=(88, 64))
    flt = _dataset(path, CFG, train, clip_args)
    dev = _dataset(path, dict(CFG, device_augment=True), train, clip_args)
    assert flt.finish_batch is None and dev.finish_batch is not None
    for epoch in (0, 1):
        flt.set_epoch(epoch)
        dev.set_epoch(epoch)
        ref = video_collate([flt[i] for i in range(len(flt))])
        raw = video_collate([dev[i] for i in range(len(dev))])
        assert raw['video'].dtype == torch.uint8 and raw['aug'].shape[:2] == raw['video'].shape[:2]
        out = dev.finish_batch(raw, torch.device('cpu'))
        assert 'aug' not in out
        assert out['video'].shape == ref['video'].shape
        torch.testing.assert_close(out['video'], ref['video'], atol=ATOL, rtol=0)
        assert torch.equal(out['label'], ref['label']) and out['vid'] == ref['vid']


def test_all_items_failed_batch_passes_through(tmp_path):
    ds = _dataset(str(tmp_path / 'missing.mp4'), dict(CFG, device_augment=True), True,
                  {'n_clips': 1, 'n_frames': 4, 'fps': 10}, n=2)
    batch = video_collate([ds[0], ds[1]])
    out = ds.finish_batch(batch, torch.device('cpu'))
    assert 'video' not in out and len(out['skipped']) == 2 and len(out['label']) == 0


class _Recorder(Step):
    """Eval step that keeps the batches it is given."""

    def __init__(self):
        self.seen = []

    def train_step(self, batch):
        raise NotImplementedError

    def eval_step(self, batch):
        self.seen.append(batch['video'])
        return StepOutput(n=len(batch['label']), metrics={'loss': 0.0})


def test_engine_applies_the_datasets_finisher(tmp_path):
    # the engine asks the loader's dataset (through wrappers such as Subset) how to bring
    # batches to the device: the step gets the float batch either way
    path = write_video(str(tmp_path / 'v.mp4'), 40, fps=30, size=(88, 64))
    args = {'n_clips': 2, 'n_frames': 4, 'fps': 10}
    ctx = RunContext(out_dir=str(tmp_path), device=torch.device('cpu'), dist=DistInfo(),
                     print_freq=0)
    seen = {}
    for name, cfg in (('float', CFG), ('device', dict(CFG, device_augment=True))):
        ds = _dataset(path, cfg, False, args, n=4)
        loader = DataLoader(Subset(ds, [0, 2, 3]), batch_size=2, collate_fn=video_collate)
        assert (batch_finisher(loader) is to_device) == (name == 'float')
        step = _Recorder()
        Engine(step, None, None, ctx).evaluate(loader, 'val')
        seen[name] = torch.cat(step.seen)
        assert seen[name].dtype == torch.float32 and seen[name].shape == (3, 2, 3, 4, 28, 28)
    torch.testing.assert_close(seen['device'], seen['float'], atol=ATOL, rtol=0)
    assert batch_finisher([]) is to_device  # a plain list of batches: moved only
