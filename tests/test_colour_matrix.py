"""The reader converts YUV with the file's own colour matrix and range (its tags), as FFmpeg's
libswscale does, untagged video included (BT.601, limited range unless marked full)."""
import av
import numpy as np
import pytest

from datasets.decode import _Converter, colour_standard, read_clips
from tests.videos import write_video

# saturated bars (the colours a wrong matrix moves most) and a few milder ones
BARS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255],
                 [255, 0, 255], [235, 235, 235], [16, 16, 16], [200, 60, 30], [40, 90, 180]],
                np.uint8)
BAR_W, H = 16, 32
TOL = 3      # levels: libswscale's fixed-point arithmetic against our float matrix
WRONG = 10   # a wrong matrix or range is off by more than this on these bars (~15-30)


def bars(i, h, w):
    return np.repeat(BARS, BAR_W, 0)[None].repeat(h, 0)[:, :w].copy()


def interior(a):
    """Pixels at least 3 columns from a bar edge (chroma upsampling and coding ringing at the
    edges differ between filters; the matrix is what is compared)."""
    keep = np.abs((np.arange(a.shape[-2]) + 0.5) % BAR_W - BAR_W / 2) <= BAR_W / 2 - 3
    return a[..., keep, :].astype(np.int16)


def decoded_frames(path):
    with av.open(path) as c:
        return list(c.decode(video=0))


def swscale(frames, colorspace, color_range):
    """libswscale's own RGB of the decoded frames, told the colour space and range."""
    return np.stack([f.to_ndarray(format='rgb24', src_colorspace=colorspace,
                                  src_color_range=color_range) for f in frames])


# (name, file kind, pix_fmt, colorspace tag, range tag, matrix, range of libswscale's reference,
#  the frames' colour standard as the reader sees it)
CASES = [
    ('untagged', 'mp4', None, None, None, 'ITU601', 'MPEG', ('bt601', False)),
    ('bt709-tv', 'mp4', None, 1, 1, 'ITU709', 'MPEG', ('bt709', False)),
    ('bt601-tv', 'mp4', None, 6, 1, 'SMPTE170M', 'MPEG', ('bt601', False)),
    ('bt2020-tv', 'mp4', None, 9, 1, 'BT2020', 'MPEG', ('bt2020', False)),
    ('pc-range', 'mp4', None, None, 2, 'ITU601', 'JPEG', ('bt601', True)),  # decodes as yuvj420p
    ('yuvj420p', 'mp4', 'yuvj420p', None, None, 'ITU601', 'JPEG', ('bt601', True)),
    ('bt709-pc', 'mp4', None, 1, 2, 'ITU709', 'JPEG', ('bt709', True)),
    ('vp9-bt709-pc', 'webm', None, 1, 2, 'ITU709', 'JPEG', ('bt709', True)),  # yuv420p + tag
    ('yuv444p-bt709', 'mp4', 'yuv444p', 1, 1, 'ITU709', 'MPEG', ('bt709', False)),  # libswscale
]


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp('colour')
    return {name: write_video(str(d / f'{name}.{kind}'), 4, size=(BAR_W * len(BARS), H),
                              frame_fn=bars, pix_fmt=pix, colorspace=cs, color_range=rng)
            for name, kind, pix, cs, rng, *_ in CASES}


@pytest.mark.parametrize('name,kind,pix,cs,rng,sws_cs,sws_range,standard', CASES,
                         ids=[c[0] for c in CASES])
def test_reader_uses_the_files_colour_matrix(videos, name, kind, pix, cs, rng, sws_cs, sws_range,
                                             standard):
    path = videos[name]
    frames = decoded_frames(path)
    # the tags written are the tags read back, and the reader's choice follows them
    assert (frames[0].colorspace, frames[0].color_range)[:1 + (rng is not None)] == \
        (cs if cs is not None else 2, rng)[:1 + (rng is not None)]
    assert colour_standard(frames[0]) == standard
    video, info = read_clips(path, 1, len(frames), -1, 'uniform')
    assert info['indices'] == [list(range(len(frames)))]
    ours = interior(video[0].numpy())
    ref = interior(swscale(frames, sws_cs, sws_range))
    assert np.abs(ours - ref).max() <= TOL
    # the picture is the one encoded (the helper wrote it with the same matrix and range)
    assert np.abs(ours - interior(np.stack([bars(0, H, BAR_W * len(BARS))] * len(frames)))).max() \
        <= 2 * TOL
    # libswscale with the frames' own tags (PyAV's default) agrees: it honours them too
    own = interior(np.stack([f.to_ndarray(format='rgb24') for f in frames]))
    assert np.abs(own - ref).max() <= 1


@pytest.mark.parametrize('name,wrong_cs,wrong_range', [
    ('bt709-tv', 'ITU601', 'MPEG'),   # the old behaviour: BT.601 for every file
    ('bt2020-tv', 'ITU709', 'MPEG'),
    ('pc-range', 'ITU601', 'MPEG'),   # full-range video read as limited
    ('untagged', 'ITU709', 'MPEG'),   # no guess of BT.709 from the picture size
])
def test_a_wrong_matrix_is_outside_the_tolerance(videos, name, wrong_cs, wrong_range):
    frames = decoded_frames(videos[name])
    video, _ = read_clips(videos[name], 1, len(frames), -1, 'uniform')
    # libswscale reads yuvj420p as full range whatever it is told: relabel the same bytes
    frames = [av.VideoFrame.from_ndarray(f.to_ndarray(), format='yuv420p')
              if f.format.name == 'yuvj420p' else f for f in frames]
    wrong = interior(swscale(frames, wrong_cs, wrong_range))
    assert np.abs(interior(video[0].numpy()) - wrong).max() > WRONG


def test_untagged_is_libswscale_default_bt601_limited(videos):
    frames = decoded_frames(videos['untagged'])
    assert (frames[0].colorspace, frames[0].color_range) == (2, 0)  # unspecified, unspecified
    default = np.stack([f.to_ndarray(format='rgb24') for f in frames])
    assert np.array_equal(default, swscale(frames, 'ITU601', 'MPEG'))


def test_resized_clip_keeps_the_matrix(videos):
    # the resize folded into the conversion scales the planes; the matrix is the same
    frames = decoded_frames(videos['bt709-tv'])
    small, _ = read_clips(videos['bt709-tv'], 1, len(frames), -1, 'uniform', short_side=H // 2)
    assert small.shape[2:4] == (H // 2, BAR_W * len(BARS) // 2)
    ref = swscale(frames, 'ITU709', 'MPEG').astype(np.float32)
    # per bar: mean of the middle columns, full size vs half size
    cols = np.arange(len(BARS))[:, None] * BAR_W + np.arange(5, BAR_W - 5)
    full = ref[:, :, cols].mean(axis=(0, 1, 3))
    half = small[0].numpy().astype(np.float32)[:, :, cols // 2].mean(axis=(0, 1, 3))
    assert np.abs(full - half).max() <= TOL
    wrong = swscale(frames, 'ITU601', 'MPEG').astype(np.float32)[:, :, cols].mean(axis=(0, 1, 3))
    assert np.abs(wrong - half).max() > WRONG


def blocks(n=8, b=16, seed=0):
    """A yuv420p picture of ``n × n`` flat blocks of random (Y, U, V); returns the planes as
    PyAV's ``from_ndarray`` takes them and the block-centre coordinates."""
    yuv = np.random.default_rng(seed).integers(16, 241, (n, n, 3)).astype(np.uint8)
    y = np.kron(yuv[..., 0], np.ones((b, b), np.uint8))
    u, v = (np.kron(yuv[..., k], np.ones((b // 2, b // 2), np.uint8)) for k in (1, 2))
    data = np.concatenate([y, u.reshape(-1, n * b), v.reshape(-1, n * b)])
    centres = np.arange(n) * b + b // 2
    return data, np.ix_(centres, centres)


@pytest.mark.parametrize('pix', ['yuv420p', 'yuvj420p'])
@pytest.mark.parametrize('colorspace', [0, 1, 2, 4, 5, 6, 7, 9])
@pytest.mark.parametrize('color_range', [0, 1, 2])
def test_every_tag_matches_libswscale(pix, colorspace, color_range):
    # every colour space and range libswscale converts, on flat blocks of random YUV values
    # (frames tagged here, not encoded): BT.601 for RGB (0), unspecified (2), BT.470 BG (5)
    # and SMPTE 170M (6); BT.709, FCC, SMPTE 240M, BT.2020; yuvj420p always full range
    data, centres = blocks()
    f = av.VideoFrame.from_ndarray(data, format=pix)
    f.colorspace, f.color_range = colorspace, color_range
    convert = _Converter(None, None, 1)
    ours = convert.finish([convert(f)])[0][centres].astype(np.int16)
    ref = f.to_ndarray(format='rgb24')[centres].astype(np.int16)
    assert np.abs(ours - ref).max() <= TOL


@pytest.mark.parametrize('name', ['untagged', 'bt709-tv', 'bt2020-tv', 'yuvj420p', 'vp9-bt709-pc'])
def test_prepared_videos_keep_their_colours(tmp_path, name):
    # tools/prepare_videos.py scales the planes without re-matrixing: the output must carry the
    # source's colour space tag and be brought to (and tagged) limited range, or the reader
    # would use the wrong matrix (~15-25 levels off on these bars)
    from tools.prepare_videos import transcode
    _, kind, pix, cs, rng, *_ = next(c for c in CASES if c[0] == name)
    size = (2 * BAR_W * len(BARS), 2 * H)
    src = write_video(str(tmp_path / f'src.{kind}'), 4, size=size, pix_fmt=pix, colorspace=cs,
                      color_range=rng, frame_fn=lambda i, h, w: np.repeat(bars(i, h, w // 2), 2, 1))
    dst = str(tmp_path / 'dst.mp4')
    transcode(src, dst, H)
    f = decoded_frames(dst)[0]
    assert f.format.name == 'yuv420p' and f.color_range in (0, 1)  # limited
    assert f.colorspace == (cs if cs is not None else 2)
    a, _ = read_clips(src, 1, 4, -1, 'uniform', short_side=H)
    b, _ = read_clips(dst, 1, 4, -1, 'uniform')
    assert a.shape == b.shape
    cols = np.arange(len(BARS))[:, None] * BAR_W + np.arange(4, BAR_W - 4)

    def bar_means(v):
        return v[0].numpy().astype(np.float32)[:, :, cols].mean(axis=(0, 1, 3))
    assert np.abs(bar_means(a) - bar_means(b)).max() <= 5  # x264 at crf 23 on tiny frames
