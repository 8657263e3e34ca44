"""``dataset.decode_device: cuda`` (PyAV hwaccel) on a machine without a usable GPU decoder:
a clean fallback to the CPU reader with one warning per process and the very same frames;
and the parts of the hardware path that run on any machine (NV12 conversion, retry on CPU)."""
import logging

import av
import numpy as np
import pytest
import torch

from datasets import decode
from datasets.base import VideoDataset, VideoRecord
from datasets.decode import VideoDecodeError, _Converter, read_clips
from datasets.transforms import build_transform
from tests.videos import write_frames, write_video


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch):
    """Each test sees a process that has not probed or warned yet."""
    monkeypatch.setattr(decode, '_hw', {})
    monkeypatch.setattr(decode, '_hw_why', {})
    monkeypatch.setattr(decode, '_warned', set())
    monkeypatch.setattr(decode, '_hw_keep', [])


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('hw')
    out = {ext: write_video(str(d / f'v.{ext}'), 60, fps=30, size=(88, 64))
           for ext in ('mp4', 'avi', 'webm')}
    out['frames'] = write_frames(str(d / 'frames'), 24, size=(88, 64))
    return out


def warnings_of(caplog):
    return [r for r in caplog.records
            if r.name == 'datasets.decode' and r.levelno >= logging.WARNING]


def read_both(path, kind='video', device='cuda', seed=3, **kw):
    """The same read on the CPU and with ``decode_device=device``: (cpu, other, generators)."""
    g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    a, ia = read_clips(path, 2, 5, 10, 'random', g1, kind=kind, **kw)
    b, ib = read_clips(path, 2, 5, 10, 'random', g2, kind=kind, decode_device=device, **kw)
    assert ia['indices'] == ib['indices']
    assert torch.equal(g1.get_state(), g2.get_state())
    return a, b


def hardware_usable():
    return decode._hw.get('cuda') is not None


def test_cuda_falls_back_with_one_warning_and_the_same_frames(files, caplog):
    # (on a machine with a GPU decoder the same test compares its frames with the CPU's:
    # H.264 and VP9 decoding is bit-exact, MPEG-4 part 2's IDCT only to a tolerance)
    caplog.set_level(logging.INFO, logger='datasets.decode')
    for _ in range(2):  # every clip of every file: one warning in all
        for name in ('mp4', 'avi', 'webm', 'frames'):
            kind = 'frames' if name == 'frames' else 'video'
            a, b = read_both(files[name], kind, short_side=48)
            if name == 'avi' and hardware_usable():
                assert (a.float() - b.float()).abs().mean() < 1.0, name
            else:
                assert torch.equal(a, b), name
    if not hardware_usable():
        assert len(warnings_of(caplog)) == 1, [r.getMessage() for r in caplog.records]
        assert 'decoding on the CPU' in warnings_of(caplog)[0].getMessage()


def test_probe_failure_falls_back_once(files, caplog, monkeypatch):
    # past the cheap checks, the probe creates an H.264 decoder context on the GPU; without
    # a GPU, or in a container without access to it, that raises: one warning, CPU frames
    monkeypatch.setattr(decode, '_hw_unusable_without_context', lambda device: None)
    for seed in range(3):
        a, b = read_both(files['mp4'], seed=seed, crop=lambda h, w: (4, 6, 40, 50))
        assert torch.equal(a, b)
    if not hardware_usable():
        assert len(warnings_of(caplog)) == 1


def test_forked_worker_of_a_cuda_process_falls_back(files, caplog, monkeypatch):
    monkeypatch.setattr(decode, '_hw_unusable_without_context', lambda device: None)
    monkeypatch.setattr(torch.cuda, '_is_in_bad_fork', lambda: True)
    a, b = read_both(files['mp4'])
    assert torch.equal(a, b)
    (w,) = warnings_of(caplog)
    assert 'spawn' in w.getMessage()
    assert decode.hw_decoder('cuda') is None


def test_hardware_failure_on_a_file_retries_on_the_cpu(files, tmp_path, caplog, monkeypatch):
    # a hardware decoder that fails on a file: the read is redone on the CPU from the same
    # generator state (same clips, same crop); a file the CPU cannot read either is bad
    real_open = decode.open_video
    opened = []

    def open_video(path, hwaccel=None):
        opened.append(hwaccel)
        if hwaccel is not None:
            raise av.error.InvalidDataError(1094995529, 'fake hardware failure')
        return real_open(path)

    monkeypatch.setattr(decode, '_hw', {'cuda': object()})  # "usable" hardware decoder
    monkeypatch.setattr(decode, 'open_video', open_video)
    for seed in range(3):
        a, b = read_both(files['mp4'], seed=seed, short_side=48, crop=lambda h, w: (2, 3, 40, 50))
        assert torch.equal(a, b)
    assert len(warnings_of(caplog)) == 1 and 'hardware decoder failed' in caplog.text
    bad = tmp_path / 'bad.mp4'
    bad.write_bytes(b'\x00' * 2000)
    with pytest.raises(VideoDecodeError):
        read_clips(str(bad), 1, 4, 10, 'uniform', decode_device='cuda')
    assert opened[-2] is not None and opened[-1] is None  # hardware first, then the CPU


@pytest.mark.parametrize('short_side,crop', [(None, None), (48, None), (32, None),
                                             (48, lambda h, w: (3, 5, 30, 40))])
def test_nv12_frames_convert_to_the_same_pixels(files, short_side, crop):
    # a hardware decoder hands back NV12 (U and V interleaved); it must give exactly the
    # pixels of the same frames in yuv420p
    with av.open(files['mp4']) as c:
        frames = [f for _, f in zip(range(6), c.decode(video=0))]
    a, b = _Converter(short_side, crop, 6), _Converter(short_side, crop, 6)
    x = a.finish([a(f) for f in frames])
    y = b.finish([b(f.reformat(format='nv12')) for f in frames])
    assert b.pix == 'nv12' and a.pix == 'yuv420p'
    assert np.array_equal(x, y)


def test_dataset_decode_device(files, caplog):
    tf = build_transform({'resize': 48, 'crop': 40}, train=True)
    records = [VideoRecord(files['mp4'], 0, 'a'), VideoRecord(files['webm'], 1, 'b')]
    args = {'n_clips': 1, 'n_frames': 4, 'fps': 10}
    cpu = VideoDataset(records, ['x', 'y'], args, tf, train=True, seed=1)
    gpu = VideoDataset(records, ['x', 'y'], args, tf, train=True, seed=1, decode_device='cuda')
    assert gpu.decode_device == 'cuda'
    for i in range(2):
        assert torch.equal(cpu[i]['video'], gpu[i]['video'])
    if not hardware_usable():
        assert len(warnings_of(caplog)) == 1
    with pytest.raises(ValueError, match='decode_device'):
        cpu.set_decode_device('gpu')


def test_build_dataset_reads_decode_device(monkeypatch):
    from datasets import DATASETS, build_dataset

    def family(cfg, split, clip_args, transform):
        return VideoDataset([], [], clip_args, transform, train=False)

    cfg = {'dataset': {'name': 'scenemotion', 'args': {'test': {'n_frames': 2}}}}
    monkeypatch.setattr(DATASETS, 'get', lambda name: family)
    assert build_dataset(cfg, 'test').decode_device == 'cpu'
    cfg['dataset']['decode_device'] = 'cuda'
    assert build_dataset(cfg, 'test').decode_device == 'cuda'
    cfg['dataset']['decode_device'] = 'nvdec'
    with pytest.raises(ValueError):
        build_dataset(cfg, 'test')
