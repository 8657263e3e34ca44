"""Which frame the reader returns on variable-frame-rate files, and that constant-frame-rate
files give the very tensors they gave before the reader learnt about variable frame rates."""
import hashlib
import json

import numpy as np
import pytest
import torch

from datasets.decode import read_clips
from datasets.sampling import EPS, clip_positions, positions_to_indices
from tests.videos import frame_id, pts_seconds, write_vfr, write_video

# Computed with the reader before the frame-on-screen rule (commit d47fcd0): sha256 (first 16
# hex digits) of the decoded K × T × H × W × 3 tensor, and of the json of info['indices'].
CFR_FILES = [('a.mp4', 40, 30), ('b.avi', 33, 25), ('c.webm', 36, 30000 / 1001), ('d.mp4', 70, 24)]
CFR_READS = [(1, 8, -1, 'uniform', None), (2, 16, 8, 'random', 3), (3, 4, 16, 'uniform', None),
             (1, 16, 16, 'random', 7), (4, 8, 5, 'random', 11), (1, 32, -1, 'random', 5)]
CFR_PINNED = {
    'a.mp4:1,8,-1,uniform,None,None': ('031c3656815c4f07', '42c440e59bc1'),
    'a.mp4:1,8,-1,uniform,None,32': ('31614ab006dcf41d', '42c440e59bc1'),
    'a.mp4:2,16,8,random,3,None': ('5d7f71e1fd394c5d', 'dafb9ed0471d'),
    'a.mp4:2,16,8,random,3,32': ('7a3c2d4bac0f8445', 'dafb9ed0471d'),
    'a.mp4:3,4,16,uniform,None,None': ('3f312941980b2f88', 'dcc1cf5199f7'),
    'a.mp4:3,4,16,uniform,None,32': ('c89304b7f90b4e92', 'dcc1cf5199f7'),
    'a.mp4:1,16,16,random,7,None': ('c0a242f038a77b0a', 'e6a96b6b6381'),
    'a.mp4:1,16,16,random,7,32': ('afb8f0a1cfb45ce7', 'e6a96b6b6381'),
    'a.mp4:4,8,5,random,11,None': ('7904f3789d8d0eaa', 'e06bf422d781'),
    'a.mp4:4,8,5,random,11,32': ('89f80c64d21d9fe6', 'e06bf422d781'),
    'a.mp4:1,32,-1,random,5,None': ('7d217f31738e7da2', 'ec4a29f67467'),
    'a.mp4:1,32,-1,random,5,32': ('88db946b58194285', 'ec4a29f67467'),
    'b.avi:1,8,-1,uniform,None,None': ('4e6ae7823a9d7fbf', 'e9b5d2e1cd68'),
    'b.avi:1,8,-1,uniform,None,32': ('d0bf7f182d94597b', 'e9b5d2e1cd68'),
    'b.avi:2,16,8,random,3,None': ('9a8b54f30d28b241', '225c0cd2cf2e'),
    'b.avi:2,16,8,random,3,32': ('b5bea1da5c39a661', '225c0cd2cf2e'),
    'b.avi:3,4,16,uniform,None,None': ('b37a1a3f10d8affe', '12592ce252f1'),
    'b.avi:3,4,16,uniform,None,32': ('9f3ef499264aeff3', '12592ce252f1'),
    'b.avi:1,16,16,random,7,None': ('e45aecd89ce22a68', 'c143599ad65c'),
    'b.avi:1,16,16,random,7,32': ('8284ffad646d06a4', 'c143599ad65c'),
    'b.avi:4,8,5,random,11,None': ('08b289c6e4c52068', 'eaafcb6880cc'),
    'b.avi:4,8,5,random,11,32': ('a1431b42e4a5d9d6', 'eaafcb6880cc'),
    'b.avi:1,32,-1,random,5,None': ('84aaae75d349311b', 'c367e9db1f80'),
    'b.avi:1,32,-1,random,5,32': ('e6800c73431e7c1d', 'c367e9db1f80'),
    'c.webm:1,8,-1,uniform,None,None': ('7e1dff742db90403', '37f6f03f3cd4'),
    'c.webm:1,8,-1,uniform,None,32': ('2dad263138569af6', '37f6f03f3cd4'),
    'c.webm:2,16,8,random,3,None': ('4669da96f95584f1', '713e7fe51b47'),
    'c.webm:2,16,8,random,3,32': ('9c4826c7d4416d93', '713e7fe51b47'),
    'c.webm:3,4,16,uniform,None,None': ('c88deabbcc929119', '5df43a41b056'),
    'c.webm:3,4,16,uniform,None,32': ('4dcb451b4574e31e', '5df43a41b056'),
    'c.webm:1,16,16,random,7,None': ('6672af7e2a1732db', 'f95c81708559'),
    'c.webm:1,16,16,random,7,32': ('33ad8816ed6683d1', 'f95c81708559'),
    'c.webm:4,8,5,random,11,None': ('9552f04bb721b3f0', '747dfff446ca'),
    'c.webm:4,8,5,random,11,32': ('73a359032ed9ed45', '747dfff446ca'),
    'c.webm:1,32,-1,random,5,None': ('256cbf3c794a282b', 'd7d00183c902'),
    'c.webm:1,32,-1,random,5,32': ('95397545bcb1a24e', 'd7d00183c902'),
    'd.mp4:1,8,-1,uniform,None,None': ('8455eff3f5af03f5', '20611b21de75'),
    'd.mp4:1,8,-1,uniform,None,32': ('cda8ae756e41c314', '20611b21de75'),
    'd.mp4:2,16,8,random,3,None': ('fcbe69757801d401', '28661c641b8c'),
    'd.mp4:2,16,8,random,3,32': ('13ad645267e17030', '28661c641b8c'),
    'd.mp4:3,4,16,uniform,None,None': ('cf5694507d6acad1', '7be0079e12c9'),
    'd.mp4:3,4,16,uniform,None,32': ('4843b7d477a2ea89', '7be0079e12c9'),
    'd.mp4:1,16,16,random,7,None': ('4863776bf148acba', '84da2ef34720'),
    'd.mp4:1,16,16,random,7,32': ('717a8992ff4dfda5', '84da2ef34720'),
    'd.mp4:4,8,5,random,11,None': ('4326d9eefc26a66b', '935594b61122'),
    'd.mp4:4,8,5,random,11,32': ('fbea6b42bd58538a', '935594b61122'),
    'd.mp4:1,32,-1,random,5,None': ('ee71c73f64277f78', '81b9441e50c6'),
    'd.mp4:1,32,-1,random,5,32': ('c2a29667875870da', '81b9441e50c6'),
}


# The same, for files with one keyframe (SceneMotion's encoder default; write_vfr, gop 250)
LONG_GOP_FILES = [('e.mp4', 60, 8), ('f.mp4', 90, 25)]
LONG_GOP_PINNED = {
    'e.mp4:1,8,-1,uniform,None,None': ('9ff4f8192a3c5751', '14b77e770890'),
    'e.mp4:1,8,-1,uniform,None,32': ('5502998b1fe46543', '14b77e770890'),
    'e.mp4:2,16,8,random,3,None': ('55884ee9d8582c8f', '58163c0f2c83'),
    'e.mp4:2,16,8,random,3,32': ('c8c9ba93dc74c103', '58163c0f2c83'),
    'e.mp4:3,4,16,uniform,None,None': ('ee90951aee3ab8a5', '0bf90695422e'),
    'e.mp4:3,4,16,uniform,None,32': ('c24aeab819ac4066', '0bf90695422e'),
    'e.mp4:1,16,16,random,7,None': ('af5ade446f32c8c6', 'dfeb09b3a231'),
    'e.mp4:1,16,16,random,7,32': ('515a561ed0c1c78a', 'dfeb09b3a231'),
    'e.mp4:4,8,5,random,11,None': ('25528e47e3f60982', '52b7aae6b292'),
    'e.mp4:4,8,5,random,11,32': ('2f4c9afc3e80044f', '52b7aae6b292'),
    'e.mp4:1,32,-1,random,5,None': ('e53db479ef795e0e', 'b5b839e35e7c'),
    'e.mp4:1,32,-1,random,5,32': ('4d467439d8dfa693', 'b5b839e35e7c'),
    'f.mp4:1,8,-1,uniform,None,None': ('2eb4e441671ba1b5', '889eb3d4eb14'),
    'f.mp4:1,8,-1,uniform,None,32': ('4c9a00999b5b1c77', '889eb3d4eb14'),
    'f.mp4:2,16,8,random,3,None': ('24dd75db66df989f', 'c2798b7ee1c7'),
    'f.mp4:2,16,8,random,3,32': ('60d670473fe0bc34', 'c2798b7ee1c7'),
    'f.mp4:3,4,16,uniform,None,None': ('bba0308c219b3f81', '91c877f098bc'),
    'f.mp4:3,4,16,uniform,None,32': ('cd86d7df7999b426', '91c877f098bc'),
    'f.mp4:1,16,16,random,7,None': ('62921dfa71fcc09b', '031517950884'),
    'f.mp4:1,16,16,random,7,32': ('d4425538432877b7', '031517950884'),
    'f.mp4:4,8,5,random,11,None': ('80ba6efb9ad13dbb', 'cd7029bb2e58'),
    'f.mp4:4,8,5,random,11,32': ('6e55b9ff73306f6d', 'cd7029bb2e58'),
    'f.mp4:1,32,-1,random,5,None': ('7d9e63603e9d857f', 'cf7f267f11b1'),
    'f.mp4:1,32,-1,random,5,32': ('8aaa092fae30cd60', 'cf7f267f11b1'),
}


@pytest.mark.parametrize('name, n, fps', LONG_GOP_FILES)
def test_constant_frame_rate_long_gop_reads_are_unchanged(tmp_path, name, n, fps):
    path = write_vfr(str(tmp_path / name), [i / fps for i in range(n)], gop=250)
    for k, t, f, mode, seed in CFR_READS:
        for short_side in (None, 32):
            g = torch.Generator().manual_seed(seed) if seed is not None else None
            video, info = read_clips(path, k, t, f, mode, g, short_side=short_side)
            key = f'{name}:{k},{t},{f},{mode},{seed},{short_side}'
            got = (hashlib.sha256(video.numpy().tobytes()).hexdigest()[:16],
                   hashlib.sha256(json.dumps(info['indices']).encode()).hexdigest()[:12])
            assert got == LONG_GOP_PINNED[key], key


@pytest.fixture(scope='module')
def cfr_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('cfr')
    return {name: write_video(str(d / name), n, fps=fps, size=(64, 48)) for name, n, fps in CFR_FILES}


@pytest.mark.parametrize('name', [f[0] for f in CFR_FILES])
def test_constant_frame_rate_reads_are_unchanged(cfr_files, name):
    for k, t, fps, mode, seed in CFR_READS:
        for short_side in (None, 32):
            g = torch.Generator().manual_seed(seed) if seed is not None else None
            video, info = read_clips(cfr_files[name], k, t, fps, mode, g, short_side=short_side)
            key = f'{name}:{k},{t},{fps},{mode},{seed},{short_side}'
            got = (hashlib.sha256(video.numpy().tobytes()).hexdigest()[:16],
                   hashlib.sha256(json.dumps(info['indices']).encode()).hexdigest()[:12])
            assert got == CFR_PINNED[key], key


def on_screen(pts, t):
    """Index of the frame a player shows at time ``t``: the last one whose pts <= t."""
    shown = [i for i, p in enumerate(pts) if p <= t]
    return shown[-1] if shown else 0


def expected_frames(path, info, n_clips, n_frames, fps, mode, seed):
    """The frames a player shows at the times the reader samples, from PyAV's own pts."""
    pts = pts_seconds(path)
    src_fps, n = info['src_fps'], info['n_src_frames']
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    positions = clip_positions(n / src_fps, src_fps, n, n_clips, n_frames, fps, mode, g)
    # a time at or past the end of the video (positions are clamped to n - 1) shows the last frame
    return [[len(pts) - 1 if p >= n - 1 else on_screen(pts, (p + EPS) / src_fps) for p in clip]
            for clip in positions]


def ids(video):
    return [[frame_id(f.numpy()) for f in clip] for clip in video]


@pytest.fixture(scope='module')
def vfr_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('vfr')
    rng = np.random.default_rng(0)
    phone = np.concatenate([[0], np.cumsum(rng.uniform(0.025, 0.045, 89))]).tolist()
    # 30 fps with one frame held for 1 s in the middle
    held = [i / 30 for i in range(30)] + [1.0 + 1.0 + i / 30 for i in range(30)]
    coarse = [round(t, 3) for t in phone]  # millisecond time base, like Matroska or an iPhone
    return {'phone': write_vfr(str(d / 'phone.mp4'), phone),
            'held': write_vfr(str(d / 'held.mp4'), held),
            'coarse': write_vfr(str(d / 'coarse.mp4'), coarse, time_base=1000),
            'no_bframes': write_vfr(str(d / 'nob.mp4'), phone, bframes=0)}


@pytest.mark.parametrize('name', ['phone', 'held', 'coarse', 'no_bframes'])
@pytest.mark.parametrize('n_clips, n_frames, fps, mode, seed', [
    (1, 16, 12, 'random', 1), (3, 8, 30, 'random', 2), (2, 16, -1, 'uniform', None),
    (4, 8, -1, 'random', 4), (1, 32, 60, 'uniform', None), (10, 4, 8, 'random', 5)])
def test_variable_frame_rate_returns_the_frame_on_screen(vfr_files, name, n_clips, n_frames,
                                                          fps, mode, seed):
    path = vfr_files[name]
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    video, info = read_clips(path, n_clips, n_frames, fps, mode, g)
    assert ids(video) == expected_frames(path, info, n_clips, n_frames, fps, mode, seed)


def test_held_frame_is_shown_for_its_whole_time(vfr_files):
    # 30 fps, frame 29 held from 29/30 s to 2 s: at 1.5 s a player still shows frame 29
    path = vfr_files['held']
    video, info = read_clips(path, 1, 60, -1, 'uniform')
    got = ids(video)[0]
    times = [(p + EPS) / info['src_fps'] for p in clip_positions(
        info['duration'], info['src_fps'], info['n_src_frames'], 1, 60, -1, 'uniform')[0]]
    for t, i in zip(times, got):
        if 29 / 30 <= t < 2.0:
            assert i == 29, (t, i)
    assert got == sorted(got)  # never a frame before its time


def test_keyframe_far_before_the_clip_is_decoded_through(tmp_path):
    # one keyframe for the whole file (SceneMotion's encoder default): every seek lands more
    # than the seek gap before the clip, and the reader decodes forward to it
    path = write_vfr(str(tmp_path / 'gop.mp4'), [i / 8 for i in range(40)], gop=250)
    for seed in range(8):
        for clip in [(1, 16, 8, 'random'), (3, 4, 2, 'random'), (2, 8, -1, 'uniform')]:
            g = torch.Generator().manual_seed(seed)
            video, info = read_clips(path, *clip, g)
            assert ids(video) == info['indices'] == positions_to_indices(
                clip_positions(5.0, 8, 40, *clip, torch.Generator().manual_seed(seed)))
