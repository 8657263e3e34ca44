"""Clip sampling as pure functions (docs/data.md, "Clip sampling"), so tests can pin them exactly.

Times are in seconds. A clip of ``n_frames`` frames at ``fps`` lasts
``clip_duration = (n_frames + 1) / fps``; the span ``[0, max(0, duration - clip_duration)]``
is cut into ``n_clips`` equal segments; ``random`` draws one start uniformly inside each
segment, ``uniform`` takes each segment's middle. Frame ``k`` of a clip is shown at
``start + k / fps`` and maps onto the source frame ``floor(t * src_fps + eps)``: source frames
repeat when the source is slower than ``fps``, are skipped when faster, and the last source
frame repeats when the clip runs past the end (last-frame padding).

The decoder works with the same times, measured in source frames (:func:`clip_positions`,
``t * src_fps`` clamped to ``[0, n_src_frames - 1]``): it returns the frame on screen at each
position, the last frame whose pts is at or before it. On a constant-frame-rate file frame
``i`` sits at position ``i``, so that frame is ``floor(position + eps)``, the index above.
"""
import math

import torch

EPS = 1e-6  # absorbs float error in t * src_fps so exact frame times floor onto their own frame


def resolve_fps(fps, src_fps):
    """``fps: -1`` (or ``None``) means "the source rate"; anything else is taken as given."""
    if fps is None or fps <= 0:
        return float(src_fps)
    return float(fps)


def clip_starts(duration, n_clips, n_frames, fps, mode, rng=None):
    """Start time (s) of each of ``n_clips`` clips.

    Args:
        duration: video length in seconds.
        n_clips, n_frames: clips per video and frames per clip.
        fps: sampling rate of the clip (already resolved, > 0).
        mode: ``'random'`` (one ``torch.rand(n_clips, generator=rng)`` draw, start uniform in
            each segment) or ``'uniform'`` (segment middles, no randomness).
        rng: ``torch.Generator`` for ``random``; ``None`` uses torch's global generator.
    Returns:
        list of ``n_clips`` floats, non-decreasing, inside
        ``[0, max(0, duration - clip_duration)]``.
    """
    if n_clips < 1 or n_frames < 1 or fps <= 0:
        raise ValueError(f'need n_clips, n_frames >= 1 and fps > 0, '
                         f'got {n_clips}, {n_frames}, {fps}')
    span = max(0.0, float(duration) - (n_frames + 1) / fps)
    seg = span / n_clips
    if mode == 'uniform':
        offsets = [0.5] * n_clips
    elif mode == 'random':
        offsets = torch.rand(n_clips, generator=rng, dtype=torch.float64).tolist()
    else:
        raise ValueError(f"unknown sampling mode {mode!r} (expected 'random' or 'uniform')")
    return [(i + u) * seg for i, u in enumerate(offsets)]


def frame_times(start, n_frames, fps):
    """Times (s) of the ``n_frames`` frames of a clip starting at ``start``: ``start + k / fps``."""
    return [start + k / fps for k in range(n_frames)]


def frame_indices(times, src_fps, n_src_frames):
    """Source frame index shown at each time: ``floor(t * src_fps + eps)``, clamped to
    ``[0, n_src_frames - 1]`` (clamping at the top is the last-frame padding)."""
    if n_src_frames < 1:
        raise ValueError('video has no frames')
    last = n_src_frames - 1
    return [min(last, max(0, math.floor(t * src_fps + EPS))) for t in times]


def clip_indices(duration, src_fps, n_src_frames, n_clips, n_frames, fps, mode, rng=None):
    """All of the above for one video: ``n_clips`` lists of ``n_frames`` source indices.

    ``fps`` may be ``-1`` (source rate).
    """
    fps = resolve_fps(fps, src_fps)
    starts = clip_starts(duration, n_clips, n_frames, fps, mode, rng)
    return [frame_indices(frame_times(s, n_frames, fps), src_fps, n_src_frames) for s in starts]


def clip_positions(duration, src_fps, n_src_frames, n_clips, n_frames, fps, mode, rng=None):
    """Like :func:`clip_indices` (same draws from ``rng``), but each sampled time as a position
    in source frames, ``t * src_fps`` clamped to ``[0, n_src_frames - 1]``, not rounded.

    ``positions_to_indices`` of the result equals :func:`clip_indices`' result.
    """
    if n_src_frames < 1:
        raise ValueError('video has no frames')
    fps = resolve_fps(fps, src_fps)
    last = n_src_frames - 1
    starts = clip_starts(duration, n_clips, n_frames, fps, mode, rng)
    return [[min(last, max(0.0, t * src_fps)) for t in frame_times(s, n_frames, fps)]
            for s in starts]


def positions_to_indices(positions):
    """Positions (:func:`clip_positions`) -> source frame indices, ``floor(p + eps)``."""
    return [[math.floor(p + EPS) for p in clip] for clip in positions]


def sparse_transpose(clips):
    """``sparse: true``: K clips of T frames become T clips of K frames.

    Args:
        clips: tensor ``K × C × T × H × W``.
    Returns:
        tensor ``T × C × K × H × W`` where output clip ``t`` holds frame ``t`` of every input
        clip, i.e. ``out[t, :, k] == clips[k, :, t]`` (K frames spread over the whole video).
    """
    return clips.permute(2, 1, 0, 3, 4).contiguous()
