"""Phone videos: a stream with a display matrix (rotation, mirror) is read upright, in the CPU
and the GPU decode paths and in tools/prepare_videos.py."""
import av
import numpy as np
import pytest
import torch

from datasets import decode
from datasets.decode import _Converter, display_orientation, mov_display_matrix, read_clips, upright
from datasets.transforms import build_transform, load_clips
from tests.videos import frame_id, index_frame, write_vfr

SIZE = (64, 48)  # stored landscape: 64 wide, 48 high
TIMES = [i / 25 for i in range(20)]
# (degrees counter-clockwise, mirror left-right after it): the eight orientations
ORIENTATIONS = [(0, False), (90, False), (180, False), (270, False),
                (0, True), (90, True), (180, True), (270, True)]


def shown(frames, degrees, hflip):
    """What a player shows: the stored ``N × H × W × 3`` frames turned ``degrees``
    counter-clockwise, then mirrored left-right (PyAV's set_display_rotation)."""
    out = np.rot90(frames, degrees // 90, axes=(1, 2))
    return np.ascontiguousarray(out[:, :, ::-1] if hflip else out)


def textured(i, h, w):
    """The frame id blocks on top, and an asymmetric gradient below them (any flip shows)."""
    f = index_frame(i, h, w)
    y, x = np.mgrid[0:h, 0:w]
    f[h // 2:, :, 0] = (40 + 3 * x + y)[h // 2:] % 220
    f[h // 2:, :, 2] = (60 + 5 * y)[h // 2:] % 220
    return f


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('rot')
    out = {'plain': write_vfr(str(d / 'plain.mp4'), TIMES, size=SIZE, frame_fn=textured)}
    for deg, hflip in ORIENTATIONS:
        out[deg, hflip] = write_vfr(str(d / f'r{deg}{"m" if hflip else ""}.mp4'), TIMES, size=SIZE,
                                    frame_fn=textured, rotation=deg, hflip=hflip)
    return out


@pytest.mark.parametrize('deg, hflip', ORIENTATIONS)
@pytest.mark.parametrize('short_side', [None, 32])
def test_same_stream_with_a_display_matrix_gives_exactly_the_rotated_tensors(files, deg, hflip,
                                                                             short_side):
    stored, info = read_clips(files['plain'], 2, 6, 10, 'uniform', short_side=short_side)
    video, info_r = read_clips(files[deg, hflip], 2, 6, 10, 'uniform', short_side=short_side)
    assert info_r['indices'] == info['indices']
    want = torch.stack([torch.from_numpy(shown(c.numpy(), deg, hflip)) for c in stored])
    assert video.shape == want.shape and torch.equal(video, want)
    assert (info_r['orientation'] is None) == (deg == 0 and not hflip)


@pytest.mark.parametrize('deg, hflip', [(90, False), (270, False), (180, True)])
def test_upright_encode_of_the_same_pixels_matches(files, tmp_path, deg, hflip):
    # what the player shows, encoded upright without a matrix: the same picture up to coding
    upright_file = write_vfr(str(tmp_path / 'u.mp4'), TIMES, size=SIZE[::-1] if deg % 180 else SIZE,
                             frame_fn=lambda i, h, w: shown(textured(i, *SIZE[::-1])[None], deg, hflip)[0])
    a, _ = read_clips(files[deg, hflip], 1, 8, 10, 'uniform')
    b, _ = read_clips(upright_file, 1, 8, 10, 'uniform')
    assert a.shape == b.shape
    assert [frame_id(f.numpy()) for f in a[0]] == [frame_id(f.numpy()) for f in b[0]]
    diff = (a.float() - b.float()).abs()
    # lossy coding, and 4:2:0 chroma sampled on the turned grid: a few levels, more at edges
    assert diff.mean() < 3.0 and diff.quantile(0.99) < 32
    wrong = torch.flip(b, dims=(2, 3))  # the other way up: far outside that tolerance
    assert (a.float() - wrong.float()).abs().mean() > 10 * diff.mean()


def test_transform_crops_the_upright_frames(files):
    # the decoder's crop is planned in upright coordinates: a rotated file is cropped after turning
    tf = build_transform({'resize': 32, 'crop': 28, 'hflip': True}, train=True)
    for key in ('plain', (90, False)):
        clips, _ = load_clips(files[key], 1, 4, 10, 'random', torch.Generator().manual_seed(2), tf)
        assert clips.shape == (1, 3, 4, 28, 28)
    raw = build_transform({'resize': 32, 'crop': 28}, train=False)
    a, _ = load_clips(files[90, False], 1, 4, 10, 'uniform', torch.Generator(), raw)
    b, _ = load_clips(files['plain'], 1, 4, 10, 'uniform', torch.Generator(), raw)
    assert torch.equal(a, torch.rot90(b, 1, dims=(3, 4)))  # square centre crop of a square turn


def test_matrix_read_from_the_file_equals_ffmpegs_side_data(files):
    # the reader's quick probe drops the stream's side data, so the tkhd matrix is read instead
    for key, path in files.items():
        with av.open(path) as c:
            frame = next(c.decode(video=0))
        side = [bytes(sd) for sd in frame.side_data if sd.type.name == 'DISPLAYMATRIX']
        ours = mov_display_matrix(path)
        if side:
            assert np.array_equal(np.frombuffer(side[0], np.int32), ours), key
        assert display_orientation(frame, ours) == display_orientation(frame), key


def test_non_right_angle_is_read_as_stored_with_a_warning(tmp_path, caplog):
    path = write_vfr(str(tmp_path / 'r45.mp4'), TIMES, size=SIZE, rotation=45)
    decode._warned.discard(('rotation', 45))
    with caplog.at_level('WARNING', logger='datasets.decode'):
        video, info = read_clips(path, 1, 4, 10, 'uniform')
    assert video.shape[2:4] == (48, 64) and info['orientation'] is None
    assert any('rotating by 45 degrees' in r.getMessage() for r in caplog.records)


def test_gpu_path_frames_are_turned_the_same(files):
    # the hardware decoder hands back NV12 frames carrying the same stream: same pixels, upright
    path = files[90, True]
    with av.open(path) as c:
        frames = [f for f in c.decode(video=0)][:4]
    matrix = mov_display_matrix(path)
    outs = []
    for fmt in ('yuv420p', 'nv12'):
        conv = _Converter(None, None, 4, matrix)
        keys = [conv(f if fmt == 'yuv420p' else f.reformat(format='nv12')) for f in frames]
        outs.append(conv.finish(keys))
    assert np.array_equal(outs[0], outs[1]) and outs[0].shape == (4, 64, 48, 3)
    if decode.hw_decoder('cuda') is None:
        pytest.skip('no usable hardware decoder here: the NV12 route is checked above')
    a, _ = read_clips(path, 1, 4, 10, 'uniform', decode_device='cuda')
    b, _ = read_clips(path, 1, 4, 10, 'uniform')
    assert torch.equal(a, b)


def test_upright_steps():
    x = np.arange(2 * 3 * 4 * 1).reshape(2, 3, 4, 1)
    assert np.array_equal(upright(x, (True, True, False)), np.rot90(x, 1, axes=(1, 2)))
    assert np.array_equal(upright(x, (False, True, True)), np.rot90(x, 2, axes=(1, 2)))
    assert upright(x, None) is x


def test_prepare_videos_writes_upright_files(files, tmp_path):
    from tools.prepare_videos import transcode
    out = str(tmp_path / 'p.mp4')
    transcode(files[90, False], out, short_side=32)
    with av.open(out) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (32, 42) and frame.rotation == 0
    assert mov_display_matrix(out) is None or display_orientation(frame, mov_display_matrix(out))[0] is None
    a, _ = read_clips(out, 1, 6, 10, 'uniform')
    b, _ = read_clips(files[90, False], 1, 6, 10, 'uniform', short_side=32)
    assert a.shape == b.shape == (1, 6, 42, 32, 3)
    assert [frame_id(f.numpy()) for f in a[0]] == [frame_id(f.numpy()) for f in b[0]]
    diff = (a.float() - b.float()).abs().mean()  # a second lossy encode (crf 23) of 32 × 42
    assert diff < 6 and (a.float() - torch.flip(b, dims=(2, 3)).float()).abs().mean() > 5 * diff
