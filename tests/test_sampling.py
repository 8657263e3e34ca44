"""Clip sampling (docs/data.md, "Clip sampling") pinned exactly."""
import pytest
import torch

from datasets.sampling import clip_indices, clip_starts, frame_indices, frame_times, resolve_fps, sparse_transpose


def test_uniform_starts_are_segment_middles():
    # clip_duration = (15 + 1) / 16 = 1 s, span [0, 9], 3 segments of 3 s
    assert clip_starts(10.0, 3, 15, 16, 'uniform') == pytest.approx([1.5, 4.5, 7.5], abs=1e-12)
    assert clip_starts(10.0, 1, 15, 16, 'uniform') == pytest.approx([4.5], abs=1e-12)


def test_random_starts_pinned_and_inside_segments():
    g = torch.Generator().manual_seed(0)
    starts = clip_starts(10.0, 3, 15, 16, 'random', g)
    # one torch.rand(3, float64) draw from the generator: u = [0.97005.., 0.70782.., 0.45938..]
    assert starts == pytest.approx([2.910159005419659, 5.123459593199364, 7.3781488293823525],
                                   abs=1e-12)
    for k in range(50):
        s = clip_starts(10.0, 3, 15, 16, 'random', torch.Generator().manual_seed(k))
        assert all(3 * i <= t <= 3 * (i + 1) for i, t in enumerate(s))
    again = clip_starts(10.0, 3, 15, 16, 'random', torch.Generator().manual_seed(0))
    assert again == starts


def test_short_video_starts_at_zero():
    # shorter than one clip: the span is empty, every clip starts at 0 (padding happens later)
    assert clip_starts(0.5, 2, 16, 16, 'uniform') == [0.0, 0.0]
    assert clip_starts(0.5, 2, 16, 16, 'random', torch.Generator().manual_seed(1)) == [0.0, 0.0]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='mode'):
        clip_starts(10, 1, 8, 8, 'middle')
    with pytest.raises(ValueError):
        clip_starts(10, 0, 8, 8, 'uniform')
    with pytest.raises(ValueError):
        frame_indices([0.0], 30, 0)


def test_frame_times():
    assert frame_times(1.0, 4, 8) == [1.0, 1.125, 1.25, 1.375]


def test_frame_indices_repeat_skip_and_pad():
    # source slower than the clip (10 fps source, 30 fps clip): frames repeat
    assert frame_indices(frame_times(0, 6, 30), 10, 100) == [0, 0, 0, 1, 1, 1]
    # source faster (30 fps source, 15 fps clip): every other frame
    assert frame_indices(frame_times(0, 4, 15), 30, 100) == [0, 2, 4, 6]
    # exact frame times land on their own frame despite float error (k / 30 * 30)
    assert frame_indices(frame_times(0, 30, 30), 30, 100) == list(range(30))
    # clip runs past the end: the last frame repeats
    assert frame_indices(frame_times(0.3, 5, 10), 10, 5) == [3, 4, 4, 4, 4]


def test_fps_minus_one_is_source_rate():
    assert resolve_fps(-1, 25) == 25.0 and resolve_fps(16, 25) == 16.0
    # 2 s at 25 fps, 4 frames: clip 0.2 s, span 1.8 s, middle start 0.9 s -> frame 22.5 -> 22
    assert clip_indices(2.0, 25, 50, 1, 4, -1, 'uniform') == [[22, 23, 24, 25]]


def test_clip_indices_short_video_padding():
    # 10 frames at 30 fps, 16 frames at 30 fps: starts at 0, pads with the last frame
    assert clip_indices(10 / 30, 30, 10, 1, 16, 30, 'uniform') == [list(range(10)) + [9] * 6]


def test_clip_indices_multi_clip_pinned():
    # 90 frames at 30 fps (3 s), 3 clips of 8 at 10 fps: clip 0.9 s, segments of 0.7 s
    assert clip_indices(3.0, 30, 90, 3, 8, 10, 'uniform') == [
        [10, 13, 16, 19, 22, 25, 28, 31], [31, 34, 37, 40, 43, 46, 49, 52],
        [52, 55, 58, 61, 64, 67, 70, 73]]


def test_sparse_transpose():
    k, c, t, h, w = 2, 3, 4, 1, 1
    clips = torch.arange(k * c * t, dtype=torch.float32).view(k, c, t, h, w)
    out = sparse_transpose(clips)
    assert out.shape == (t, c, k, h, w) and out.is_contiguous()
    for ti in range(t):
        for ki in range(k):
            assert torch.equal(out[ti, :, ki], clips[ki, :, ti])
    # pinned: output clip 1 is frame 1 of clip 0 then frame 1 of clip 1, channel 0
    assert out[1, 0, :, 0, 0].tolist() == [1.0, 13.0]
