"""Bad-video policy: every kind of broken file is skipped with a warning, counted, and stops
the run above ``dataset.max_bad_fraction``; good items are never replaced."""
import logging

import pytest
import torch

from datasets.base import VideoDataset, VideoRecord
from datasets.collate import BadVideoTracker, video_collate
from datasets.decode import VideoDecodeError, read_clips
from datasets.transforms import build_transform
from tests.videos import write_audio_only, write_corrupt, write_empty, write_frames, write_video

TCFG = {'resize': 24, 'crop': 20, 'hflip': True, 'color_jitter': [0.2, 0.2, 0.2, 0.1]}
CLIP = {'n_clips': 2, 'n_frames': 4, 'fps': 10}


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    d = tmp_path_factory.mktemp('bad')
    good = write_video(str(d / 'good.mp4'), 30, fps=15, size=(32, 24))
    return {
        'good': good,
        'corrupt': write_corrupt(str(d / 'corrupt.mp4'), src=good),
        'garbage': write_corrupt(str(d / 'garbage.avi')),
        'empty': write_empty(str(d / 'empty.mp4')),
        'audio': write_audio_only(str(d / 'audio.mp4')),
        'missing': str(d / 'missing.mp4'),
        'noframes': str(d / 'noframes'),
        'frames': write_frames(str(d / 'frames'), 12, size=(32, 24)),
    }


def dataset(tree, names, train=True):
    recs = [VideoRecord(tree[n], i % 2, n, 'frames' if n in ('frames', 'noframes') else 'video')
            for i, n in enumerate(names)]
    return VideoDataset(recs, ['a', 'b'], CLIP, build_transform(TCFG, train), train, seed=1)


@pytest.mark.parametrize('kind, reason', [
    ('corrupt', 'InvalidDataError'), ('garbage', 'InvalidDataError'),
    ('empty', 'zero-length'), ('audio', 'no video stream'), ('missing', 'not found')])
def test_each_bad_kind_is_an_error_item_with_a_warning(tree, kind, reason, caplog):
    ds = dataset(tree, ['good', kind])
    with caplog.at_level(logging.WARNING, logger='datasets.base'):
        item = ds[1]
    assert set(item) == {'index', 'vid', 'error'} and item['index'] == 1 and item['vid'] == kind
    assert item['error'].startswith(tree[kind] + ': ') and reason in item['error']
    assert any(tree[kind] in r.getMessage() for r in caplog.records)
    with pytest.raises(VideoDecodeError, match=reason):
        read_clips(tree[kind], 1, 4, 10, 'uniform')


def test_empty_frame_folder(tree, tmp_path):
    (tmp_path / 'noframes').mkdir()
    with pytest.raises(VideoDecodeError, match='no .jpg frames'):
        read_clips(str(tmp_path / 'noframes'), 1, 4, 10, 'uniform', kind='frames')


def test_good_items_and_seeding(tree):
    ds = dataset(tree, ['good', 'frames'])
    a, b = ds[0], ds[1]
    assert a['video'].shape == b['video'].shape == (2, 3, 4, 20, 20)
    assert (a['label'], a['index'], a['vid']) == (0, 0, 'good') and ds.labels == [0, 1]
    assert ds.n_class == 2 and len(ds) == 2
    # the same (seed, epoch, index) gives the same sample in any process; epochs differ
    assert torch.equal(dataset(tree, ['good', 'frames'])[0]['video'], a['video'])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]['video'], a['video'])
    test = dataset(tree, ['good'], train=False)
    test.set_epoch(3)
    assert torch.equal(test[0]['video'], dataset(tree, ['good'], train=False)[0]['video'])


def test_sparse_layout(tree):
    ds = VideoDataset([VideoRecord(tree['good'], 0, 'good')], ['a'], dict(CLIP, sparse=True),
                      build_transform(TCFG, False), False)
    dense = VideoDataset([VideoRecord(tree['good'], 0, 'good')], ['a'], CLIP,
                         build_transform(TCFG, False), False)
    s, d = ds[0]['video'], dense[0]['video']
    assert s.shape == (4, 3, 2, 20, 20) and torch.equal(s, d.permute(2, 1, 0, 3, 4))


def test_collate_skips_bad_items(tree):
    ds = dataset(tree, ['good', 'empty', 'frames', 'missing'])
    batch = video_collate([ds[i] for i in range(4)])
    assert batch['video'].shape == (2, 2, 3, 4, 20, 20)
    assert batch['label'].tolist() == [0, 0] and batch['index'].tolist() == [0, 2]
    assert batch['vid'] == ['good', 'frames']
    assert len(batch['skipped']) == 2 and tree['empty'] in batch['skipped'][0]
    allbad = video_collate([ds[1], ds[3]])
    assert 'video' not in allbad and allbad['label'].shape == (0,) and len(allbad['skipped']) == 2


def test_tracker_raises_above_fraction(tree):
    ds = dataset(tree, ['good', 'corrupt', 'audio'])
    tr = BadVideoTracker()
    tr.update(video_collate([ds[0], ds[1]])['skipped'])
    tr.check(n_seen=100, max_fraction=0.01)  # 1 % is allowed
    assert tr.count == 1 and '1' in tr.summary() and tree['corrupt'] in tr.summary()
    tr.update(video_collate([ds[2]])['skipped'])
    with pytest.raises(RuntimeError) as e:
        tr.check(n_seen=100, max_fraction=0.01)
    assert tree['corrupt'] in str(e.value) and tree['audio'] in str(e.value)
    assert '\n' not in str(e.value)  # one line (the engine adds where the full list is)
    tr.update(video_collate([ds[2]])['skipped'])  # the same file again counts once
    assert tr.count == 2
    assert BadVideoTracker().summary() == 'bad videos: 0'


def test_engine_stop_is_one_line_and_lists_every_file(tmp_path):
    """Above ``max_bad_fraction`` the engine stops with a one-line user error naming the first
    files and a file in the run folder that lists all of them."""
    from core.errors import UserError
    from engine.dist import DistInfo
    from engine.engine import Engine
    from engine.runner import RunContext

    class Idle:  # the engine only needs a step to be constructed; _check_bad never calls it
        modules = {}

    ctx = RunContext(out_dir=str(tmp_path), device=torch.device('cpu'), dist=DistInfo(), max_bad_fraction=0.01)
    engine = Engine(Idle(), None, None, ctx, {'epochs': 1})
    tracker = BadVideoTracker()
    files = [f'/data/v{i}.mp4: cannot decode' for i in range(7)]
    tracker.update(files)
    with pytest.raises(UserError) as e:
        engine._check_bad(tracker, n_good=10, tag='test/frozen')
    msg = str(e.value)
    assert '\n' not in msg and '7 of 17 videos could not be decoded' in msg and '(+4 more)' in msg
    listed = tmp_path / 'bad_videos_test_frozen.txt'
    assert str(listed) in msg and listed.read_text().splitlines() == files
