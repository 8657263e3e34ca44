"""A file whose header promises more frames than it holds (a truncated faststart mp4): one
answer per file, the same in every epoch and in every process; never a promised frame filled in."""
import logging

import av
import pytest
import torch

from datasets import decode
from datasets.base import VideoDataset, VideoRecord
from datasets.decode import read_clips
from datasets.sampling import clip_positions, positions_to_indices
from datasets.transforms import build_transform
from tests.videos import frame_id, pts_seconds, truncate_video, write_vfr

N, FPS = 60, 25


@pytest.fixture(scope='module')
def short(tmp_path_factory):
    d = tmp_path_factory.mktemp('trunc')
    full = write_vfr(str(d / 'full.mp4'), [i / FPS for i in range(N)], faststart=True)
    path = truncate_video(full, str(d / 'short.mp4'), 12)
    with av.open(path) as c:
        assert c.streams.video[0].frames == N  # the header still promises every frame
    n_true = len(pts_seconds(path))
    assert 4 < n_true < 20
    return path, n_true


def ids(video):
    return [[frame_id(f.numpy()) for f in clip] for clip in video]


def test_clips_are_sampled_within_the_frames_the_file_holds(short, caplog):
    path, n_true = short
    decode._short_files.clear()
    with caplog.at_level(logging.WARNING, logger='datasets.decode'):
        video, info = read_clips(path, 2, 8, -1, 'uniform')
    assert info['n_src_frames'] == n_true and info['header_frames'] == N
    expected = positions_to_indices(clip_positions(n_true / FPS, FPS, n_true, 2, 8, -1, 'uniform'))
    assert info['indices'] == expected and ids(video) == expected
    assert max(max(c) for c in expected) <= n_true - 1
    assert [r.getMessage() for r in caplog.records if 'promises' in r.getMessage()] == [
        f'{path}: the header promises {N} frames but only {n_true} decode (truncated file?); '
        'its clips are sampled within the frames it holds, never padded']


def test_same_answer_every_epoch_and_in_every_process(short):
    path, n_true = short
    ds = VideoDataset([VideoRecord(path, 0, 'short')], ['a'], {'n_clips': 1, 'n_frames': 4, 'fps': 12},
                      build_transform({'resize': 32, 'crop': 28}, True), train=True, seed=3)
    raw = VideoDataset([VideoRecord(path, 0, 'short')], ['a'], {'n_clips': 1, 'n_frames': 4, 'fps': 12},
                       lambda v, g, cropped=False: v, train=True, seed=3)
    for epoch in range(12):
        ds.set_epoch(epoch)
        raw.set_epoch(epoch)
        decode._short_files.clear()  # a process that has not met the file yet (a new worker)
        fresh = ds[0]
        learnt = ds[0]  # this process knows the file's true length now
        assert 'error' not in fresh and 'error' not in learnt, (epoch, fresh.get('error'))
        assert torch.equal(fresh['video'], learnt['video']), epoch
        got = ids(raw[0]['video'])[0]
        assert max(got) <= n_true - 1 and got == sorted(got)
        # without padding: the clip's frames are the sampled ones of the frames the file holds
        g = raw.generator(0)
        want = positions_to_indices(clip_positions(N / FPS, FPS, N, 1, 4, 12, 'random', g))[0]
        if max(want) > n_true - 1:  # the header's placement reaches past the true end
            g = raw.generator(0)
            want = positions_to_indices(clip_positions(n_true / FPS, FPS, n_true, 1, 4, 12,
                                                       'random', g))[0]
        assert got == want, epoch


def test_check_dataset_reports_truncated_and_rotated(short, tmp_path):
    from tools.check_dataset import check_one
    path, n_true = short
    rotated = write_vfr(str(tmp_path / 'r.mp4'), [i / FPS for i in range(10)], rotation=90)
    assert check_one((path, 'video', False))[1:] == (None, {'truncated': (n_true, N)})
    assert check_one((rotated, 'video', True))[1:] == (None, {'rotation': 'rotated 90 degrees'})


def test_check_dataset_prints_the_counts(short):
    import io

    from tools.check_dataset import print_report
    path, n_true = short
    row = {'split': 'train', 'annotated': 3, 'found': 3, 'missing': [], 'undecodable': [],
           'rotated': ['/v/a.mp4: rotated 90 degrees'],
           'truncated': [f'{path}: {n_true} of the {N} frames its header promises']}
    buf = io.StringIO()
    print_report([row], 50, out=buf)
    out = buf.getvalue()
    assert 'train: 1 videos carry a rotation, 1 are truncated' in out
    assert '1 videos carry a rotation (display matrix); they are read upright' in out
    assert f'{path}: {n_true} of the {N} frames its header promises' in out


def test_a_whole_file_is_never_taken_for_a_truncated_one(tmp_path, caplog):
    # the last frame held for 1 s (variable frame rate): the clip's end shows it, no warning
    times = [i / FPS for i in range(20)] + [20 / FPS + 1.0]
    path = write_vfr(str(tmp_path / 'hold.mp4'), times)
    decode._short_files.clear()
    with caplog.at_level(logging.WARNING, logger='datasets.decode'):
        video, info = read_clips(path, 1, 30, -1, 'uniform')
    assert info['header_frames'] is None and not caplog.records
    got = ids(video)[0]
    assert got == sorted(got) and got[-1] == 20 and got.count(20) >= 1
