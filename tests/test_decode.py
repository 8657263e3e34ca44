"""PyAV / frame-folder readers on real encoded files: shapes and *which* frames come back."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from datasets.decode import read_clips, resized_hw
from datasets.sampling import clip_indices
from tests.videos import frame_id, write_frames, write_video

N, FPS, SIZE = 90, 30, (64, 48)  # 3 s at 30 fps, 64 wide × 48 high


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('dec')
    out = {ext: write_video(str(d / f'v.{ext}'), N, fps=FPS, size=SIZE)
           for ext in ('mp4', 'avi', 'webm')}
    out['frames'] = write_frames(str(d / 'frames'), 36, size=SIZE)  # 3 s at 12 fps
    # long GOP with B-frames: seeks land far before the clip; non-reference frames get skipped
    out['longgop'] = str(d / 'longgop.mp4')
    write_video(out['longgop'], 240, fps=FPS, size=SIZE)
    return out


def ids(video):
    """K × T × H × W × 3 uint8 -> K lists of T frame ids."""
    return [[frame_id(f.numpy()) for f in clip] for clip in video]


@pytest.mark.parametrize('ext', ['mp4', 'avi', 'webm'])
@pytest.mark.parametrize('fps', [10, 30, 60, -1])
def test_uniform_clips_return_the_sampled_frames(files, ext, fps):
    video, info = read_clips(files[ext], 3, 8, fps, 'uniform')
    assert video.shape == (3, 8, 48, 64, 3) and video.dtype == torch.uint8
    expected = clip_indices(N / FPS, FPS, N, 3, 8, fps, 'uniform')
    assert info['indices'] == expected
    assert ids(video) == expected
    assert info['src_fps'] == pytest.approx(FPS) and info['n_src_frames'] == N


def test_fps_repeat_and_skip(files):
    # 60 fps clip from a 30 fps source repeats every frame; 10 fps takes every third
    video, info = read_clips(files['mp4'], 1, 8, 60, 'uniform')
    got = ids(video)[0]
    assert got == info['indices'][0]
    steps = [b - a for a, b in zip(got, got[1:])]
    assert set(steps) == {0, 1} and steps.count(1) in (3, 4)  # each frame shown twice
    video, _ = read_clips(files['mp4'], 1, 4, 10, 'uniform')
    got = ids(video)[0]
    assert [b - a for a, b in zip(got, got[1:])] == [3, 3, 3]


@pytest.mark.parametrize('ext', ['mp4', 'webm'])
def test_random_clips_follow_the_generator(files, ext):
    a, ia = read_clips(files[ext], 2, 8, 15, 'random', torch.Generator().manual_seed(3))
    b, ib = read_clips(files[ext], 2, 8, 15, 'random', torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and ia['indices'] == ib['indices']
    assert ids(a) == clip_indices(N / FPS, FPS, N, 2, 8, 15, 'random',
                                  torch.Generator().manual_seed(3))
    seen = {tuple(read_clips(files[ext], 1, 4, 15, 'random', torch.Generator().manual_seed(s))[1]
                  ['indices'][0]) for s in range(6)}
    assert len(seen) > 1


def test_long_gop_ten_clips_from_one_container(files):
    video, info = read_clips(files['longgop'], 10, 16, 16, 'uniform')
    assert video.shape[:2] == (10, 16)
    assert ids(video) == info['indices'] == clip_indices(8.0, 30, 240, 10, 16, 16, 'uniform')


@pytest.mark.parametrize('ext', ['mp4', 'avi', 'webm'])
def test_short_video_pads_with_last_frame(tmp_path, ext):
    path = write_video(str(tmp_path / f's.{ext}'), 10, fps=30, size=SIZE)
    video, _ = read_clips(path, 2, 16, 30, 'uniform')
    assert ids(video) == [list(range(10)) + [9] * 6] * 2


def test_frame_folder(files):
    video, info = read_clips(files['frames'], 2, 6, -1, 'uniform', kind='frames')
    assert video.shape == (2, 6, 48, 64, 3) and info['src_fps'] == 12
    assert ids(video) == info['indices'] == clip_indices(3.0, 12, 36, 2, 6, 12, 'uniform')
    video, info = read_clips(files['frames'], 1, 4, 24, 'uniform', kind='frames', frames_fps=24)
    assert ids(video) == info['indices'] == clip_indices(1.5, 24, 36, 1, 4, 24, 'uniform')
    small, _ = read_clips(files['frames'], 1, 4, 6, 'uniform', kind='frames', short_side=24)
    assert small.shape == (1, 4, 24, 32, 3)
    assert ids(small) == clip_indices(3.0, 12, 36, 1, 4, 6, 'uniform')


def texture(i, h, w):
    """Smooth coloured texture that moves with i (for resize comparisons)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    f = np.stack([np.sin((x + 3 * i) / 9), np.cos(y / 8 + i / 7), np.sin((x + y) / 12)], -1)
    return ((f + 1) * 110 + 10).astype(np.uint8)


@pytest.mark.parametrize('ext', ['mp4', 'webm'])
def test_short_side_resize_in_swscale_close_to_torchvision(tmp_path, ext):
    path = write_video(str(tmp_path / f't.{ext}'), 20, fps=30, size=(96, 72), frame_fn=texture)
    full, info = read_clips(path, 1, 4, 10, 'uniform')
    small, info2 = read_clips(path, 1, 4, 10, 'uniform', short_side=36)
    assert info['indices'] == info2['indices']
    assert small.shape == (1, 4, 36, 48, 3) and resized_hw(72, 96, 36) == (36, 48)
    ref = TF.resize(full[0].permute(0, 3, 1, 2), [36, 48], antialias=True).permute(0, 2, 3, 1)
    diff = (small[0].float() - ref.float()).abs()
    # planes scaled before the YUV -> RGB matrix (chroma at its own resolution) vs torchvision's
    # antialiased bilinear on the full-size RGB frame: same picture, a few levels (~2 on
    # natural video, ~4 on this saturated texture) of
    # filter / chroma-siting difference; a wrong frame or misplaced resize gives tens
    assert diff.mean() < 5.0, diff.mean()
    other, _ = read_clips(path, 1, 4, 5, 'uniform', short_side=36)
    assert (other[0].float() - ref.float()).abs().mean() > 10


def test_resized_hw_matches_torchvision_rounding():
    assert resized_hw(256, 340, 128) == (128, 170)
    assert resized_hw(340, 256, 128) == (170, 128)
    assert resized_hw(240, 320, 240) == (240, 320)
    x = torch.zeros(1, 3, 101, 333, dtype=torch.uint8)
    assert tuple(TF.resize(x, 64).shape[-2:]) == resized_hw(101, 333, 64)


def test_other_pixel_formats_go_through_swscale(tmp_path):
    path = write_video(str(tmp_path / 'p444.mp4'), 30, fps=30, size=SIZE, pix_fmt='yuv444p')
    video, info = read_clips(path, 2, 4, 10, 'uniform')
    assert video.shape == (2, 4, 48, 64, 3) and ids(video) == info['indices']
    small, info = read_clips(path, 1, 4, 10, 'uniform', short_side=24)
    assert small.shape == (1, 4, 24, 32, 3) and ids(small) == info['indices']


@pytest.mark.parametrize('kind,short_side', [('mp4', 36), ('mp4', None), ('p444', 36),
                                             ('frames', 30)])
def test_decoder_crop_equals_cropping_the_converted_frames(tmp_path, kind, short_side):
    # the decoder cuts the box before the colour conversion; the pixels must be exactly
    # those of converting whole frames and cropping afterwards
    if kind == 'frames':
        path = write_frames(str(tmp_path / 'f'), 12, size=(96, 72), frame_fn=texture)
        kw = {'kind': 'frames'}
    else:
        path = write_video(str(tmp_path / f'{kind}.mp4'), 20, fps=30, size=(96, 72),
                           frame_fn=texture, pix_fmt='yuv444p' if kind == 'p444' else None)
        kw = {}
    whole, info = read_clips(path, 2, 4, 10, 'uniform', short_side=short_side, **kw)
    seen = []

    def crop(h, w):
        seen.append((h, w))
        return 5, 7, h - 9, w - 20
    cut, info2 = read_clips(path, 2, 4, 10, 'uniform', short_side=short_side, crop=crop, **kw)
    h, w = seen[0]
    assert len(seen) == 1 and (h, w) == tuple(whole.shape[2:4]) and info['crop'] is None
    assert info2['crop'] == (5, 7, h - 9, w - 20) and info2['indices'] == info['indices']
    assert torch.equal(cut, whole[:, :, 5:h - 4, 7:w - 13])
    # a box outside the frame is not applied (the transform then crops or pads itself)
    same, info3 = read_clips(path, 2, 4, 10, 'uniform', short_side=short_side,
                             crop=lambda h, w: (0, 0, h + 1, w), **kw)
    assert info3['crop'] is None and torch.equal(same, whole)


def flat(i, h, w):
    """A flat colour that changes slowly (no chroma edges: conversion error only)."""
    return np.broadcast_to(np.array([200 - i, 120, 40 + i], np.uint8), (h, w, 3)).copy()


@pytest.mark.parametrize('pix_fmt', ['yuv420p', 'yuvj420p'])
def test_colour_range_taken_from_the_frames(tmp_path, pix_fmt):
    # the quick stream probe leaves the header's pixel format unset, so the reader takes
    # the pixel format and colour range from the decoded frames; a full-range (JPEG)
    # video read with the limited-range matrix would be off by ~10-30 levels
    path = write_video(str(tmp_path / 'v.mp4'), 10, fps=30, size=SIZE, frame_fn=flat,
                       pix_fmt=pix_fmt)
    video, info = read_clips(path, 1, 4, 10, 'uniform')
    ref = torch.stack([torch.from_numpy(flat(i, SIZE[1], SIZE[0])) for i in info['indices'][0]])
    assert (video[0].float() - ref.float()).abs().max() <= 3


@pytest.mark.parametrize('name', ['mp4', 'avi', 'webm', 'longgop'])
def test_quick_probe_keeps_the_stream_facts(files, name):
    # open_video's probe decodes nothing; rates, counts and durations must be unchanged
    import av

    from datasets.decode import _stream_info, open_video
    with open_video(files[name]) as a, av.open(files[name]) as b:
        sa, sb = a.streams.video[0], b.streams.video[0]
        assert (sa.width, sa.height) == (sb.width, sb.height)
        assert _stream_info(a, sa, 'a') == _stream_info(b, sb, 'b')
