"""Clip transforms: shapes, per-clip parameters, and equality with torchvision's ops."""
import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from torchvision import tv_tensors

from datasets.colour import color_jitter, jitter_normalize
from datasets.transforms import build_transform, jitter_params, library_color_jitter, rrc_params

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CFG = {'resize': 32, 'crop': 28, 'hflip': True, 'color_jitter': [0.4, 0.4, 0.4, 0.3],
       'normalize': {'mean': MEAN, 'std': STD}}


def video(k=2, t=6, h=40, w=52, seed=0):
    """Random uint8 K × T × H × W × 3 with some structure (smooth + noise)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(k, t, 3, h // 4, w // 4, generator=g)
    up = torch.nn.functional.interpolate(base.flatten(0, 1), size=(h, w), mode='bilinear')
    x = (up.view(k, t, 3, h, w) * 200 + torch.rand(k, t, 3, h, w, generator=g) * 55)
    return x.to(torch.uint8).permute(0, 1, 3, 4, 2).contiguous()


def library_test_transform(v):
    """torchvision reference of the test transform: resize, centre crop, float, normalise."""
    x = v.permute(0, 1, 4, 2, 3)  # K × T × C × H × W
    out = []
    for clip in x:
        c = TF.resize(clip, 32, antialias=True)
        c = TF.center_crop(c, [28, 28])
        c = TF.normalize(TF.to_dtype(c, torch.float32, scale=True), MEAN, STD)
        out.append(c.permute(1, 0, 2, 3))  # C × T × H × W
    return torch.stack(out)


def test_shapes_train_and_test():
    v = video()
    for train in (True, False):
        out = build_transform(CFG, train)(v, torch.Generator().manual_seed(0))
        assert out.shape == (2, 3, 6, 28, 28) and out.dtype == torch.float32
        assert torch.isfinite(out).all()


def test_test_transform_equals_torchvision_and_is_deterministic():
    v = video()
    tf = build_transform(CFG, train=False)
    a = tf(v, torch.Generator().manual_seed(0))
    b = tf(v, torch.Generator().manual_seed(99))
    assert torch.equal(a, b)
    torch.testing.assert_close(a, library_test_transform(v), atol=1e-5, rtol=1e-5)


def test_train_params_shared_by_all_frames_of_a_clip():
    # every frame of a clip is the same picture: one crop / flip / jitter per clip keeps
    # them identical; clips of one video get their own parameters
    frame = video(1, 1, seed=3)[0, 0]
    v = frame.expand(8, 5, *frame.shape).contiguous()
    out = build_transform(CFG, train=True)(v, torch.Generator().manual_seed(1))
    # (equal up to float rounding: OpenCV's SIMD kernels treat row tails separately)
    torch.testing.assert_close(out, out[:, :, :1].expand_as(out), atol=1e-5, rtol=0)
    assert len({tuple(c[:, 0].flatten()[:50].tolist()) for c in out}) > 1


def test_flip_and_crop_match_library_ops():
    # without jitter the train transform is resize + random crop + flip: find the crop and
    # flip it chose and check against torchvision's ops
    cfg = dict(CFG, color_jitter=None)
    v = video(k=6)
    out = build_transform(cfg, train=True)(v, torch.Generator().manual_seed(5))
    flips = []
    for clip, o in zip(v.permute(0, 1, 4, 2, 3), out):
        r = TF.to_dtype(TF.resize(clip, 32, antialias=True), torch.float32, scale=True)
        r = TF.normalize(r, MEAN, STD).permute(1, 0, 2, 3)  # C × T × 32 × 41
        hits = [(i, j, f) for i in range(5) for j in range(r.shape[-1] - 27) for f in (0, 1)
                if torch.allclose((r[..., i:i + 28, j:j + 28].flip(-1) if f
                                   else r[..., i:i + 28, j:j + 28]), o, atol=1e-5)]
        assert len(hits) == 1
        flips.append(hits[0][2])
    assert 0 < sum(flips) < len(flips)  # both outcomes occur over six clips


@pytest.mark.parametrize('seed', range(8))
def test_color_jitter_equals_torchvision_ops(seed):
    g = torch.Generator().manual_seed(seed)
    order, vals = jitter_params([0.4, 0.4, 0.4, 0.5], g)
    x = torch.rand(4, 20, 24, 3, generator=g)
    x[0, :5] = 0.5  # grey pixels: hue undefined, must stay grey
    ref = library_color_jitter(x.permute(0, 3, 1, 2).contiguous(), order, vals)
    ours = color_jitter(x.clone(), order, vals).permute(0, 3, 1, 2)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=0)


def test_color_jitter_equals_torchvision_ColorJitter_with_forced_params():
    # torchvision's ColorJitter transform on a float video, its parameters replaced by ours
    g = torch.Generator().manual_seed(11)
    order, vals = jitter_params([0.3, 0.3, 0.3, 0.2], g)
    cj = T.ColorJitter(0.3, 0.3, 0.3, 0.2)
    params = dict(zip(('brightness_factor', 'contrast_factor', 'saturation_factor',
                       'hue_factor'), vals), fn_idx=torch.tensor(order))
    x = torch.rand(5, 3, 16, 16, generator=g)
    ref = cj.transform(tv_tensors.Video(x), params)
    ours = color_jitter(x.permute(0, 2, 3, 1).contiguous(), order, vals).permute(0, 3, 1, 2)
    torch.testing.assert_close(ours, ref.as_subclass(torch.Tensor), atol=2e-5, rtol=0)


def test_jitter_params_ranges():
    for s in range(30):
        g = torch.Generator().manual_seed(s)
        order, (b, c, sat, h) = jitter_params([0.2, 0.2, 0.2, 0.1], g)
        assert sorted(order) == [0, 1, 2, 3]
        assert 0.8 <= b <= 1.2 and 0.8 <= c <= 1.2 and 0.8 <= sat <= 1.2 and -0.1 <= h <= 0.1
    order, vals = jitter_params([0.2, 0, 0.2, 0], torch.Generator())
    assert vals[1] is None and vals[3] is None


def test_random_resized_crop():
    cfg = dict(CFG, rnd_scale=[0.2, 1.0], rnd_ratio=[0.75, 1.333])
    tf = build_transform(cfg, train=True)
    assert tf.short_side is None  # frames must reach the transform at full size
    out = tf(video(), torch.Generator().manual_seed(2))
    assert out.shape == (2, 3, 6, 28, 28)
    for s in range(20):
        top, left, h, w = rrc_params(40, 52, (0.2, 1.0), (0.75, 1.333),
                                     torch.Generator().manual_seed(s))
        assert 0 <= top <= 40 - h and 0 <= left <= 52 - w
        assert 0.2 * 40 * 52 * 0.8 <= h * w <= 40 * 52
    assert build_transform(cfg, train=False).short_side == 32


@pytest.mark.parametrize('seed', range(6))
def test_jitter_and_normalise_equal_torchvision_ops(seed):
    # the fused colour chain (pending affine maps, per-frame contrast offsets, clamps only
    # where a factor exceeds 1) against torchvision's ops applied one by one
    factors = [0.5, 0.5, 0.5, 0.3]
    tf = build_transform({'color_jitter': factors, 'normalize': {'mean': MEAN, 'std': STD}},
                         train=True)
    v = video(k=2, t=5, h=20, w=24, seed=seed)
    out = tf(v, torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    for clip, o in zip(v, out):
        order, vals = jitter_params(factors, g)
        x = TF.to_dtype(clip.permute(0, 3, 1, 2), torch.float32, scale=True)
        ref = TF.normalize(library_color_jitter(x, order, vals), MEAN, STD)
        torch.testing.assert_close(o, ref.permute(1, 0, 2, 3), atol=1e-4, rtol=0)


@pytest.mark.parametrize('order,vals', [
    ([3, 0, 1, 2], [1.3, 0.7, 1.2, 0.2]),    # hue on the scaled clip (the / 255 pending)
    ([0, 3, 2, 1], [0.8, 1.4, 0.6, -0.3]),   # hue after a pending brightness
    ([1, 3, 0, 2], [1.2, 0.6, 1.3, 0.1]),    # hue after contrast (per-frame offsets)
    ([2, 1, 0, 3], [1.5, 1.5, 1.5, -0.45]),  # every factor above 1: a clamp after each op
    ([1, 2, 0, 3], [0.5, 0.5, 0.5, 0.0]),    # all pending into the normalisation
])
def test_jitter_normalize_forced_orders(order, vals):
    v = video(k=1, t=6, h=20, w=24, seed=4)[0]
    ours = jitter_normalize(v, (order, vals), MEAN, STD, chunk=4)  # chunks of 4 and 2
    x = TF.to_dtype(v.permute(0, 3, 1, 2), torch.float32, scale=True)
    ref = TF.normalize(library_color_jitter(x, order, vals), MEAN, STD)
    torch.testing.assert_close(ours, ref.permute(1, 0, 2, 3), atol=1e-4, rtol=0)


@pytest.mark.parametrize('train,n_clips', [(True, 1), (False, 3), (True, 2)])
def test_load_clips_equals_decoding_then_transforming(tmp_path, train, n_clips):
    # load_clips lets the decoder do the crop (train with one clip, or the test centre crop);
    # output and generator use must equal decoding whole frames and transforming them
    from datasets.decode import read_clips
    from datasets.transforms import load_clips
    from tests.videos import write_video
    path = write_video(str(tmp_path / 'v.mp4'), 40, fps=30, size=(88, 64))
    tf = build_transform(CFG, train)
    mode = 'random' if train else 'uniform'
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    ours, info = load_clips(path, n_clips, 4, 10, mode, g1, tf)
    video, _ = read_clips(path, n_clips, 4, 10, mode, g2, short_side=tf.short_side)
    ref = tf(video, g2)
    assert (info['crop'] is not None) == (n_clips == 1 or not train)
    assert torch.equal(ours, ref)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_crop_larger_than_frame_pads_like_center_crop():
    # train frames smaller than the crop (no resize): the crop is centred and padded, as
    # torchvision's center_crop does, and the decoder is not asked to cut (the test
    # transform resizes the short side to the crop when no resize is given)
    cfg = dict(CFG, resize=None, crop=48, color_jitter=None, hflip=False)
    v = video(k=1, t=3, h=40, w=52)
    tf = build_transform(cfg, train=True)
    out = tf(v, torch.Generator().manual_seed(0))
    assert out.shape == (1, 3, 3, 48, 48)
    assert tf.decoder_crop(1, torch.Generator())(40, 52) is None
    x = TF.to_dtype(v[0].permute(0, 3, 1, 2), torch.float32, scale=True)
    ref = TF.normalize(TF.center_crop(x, [48, 48]), MEAN, STD).permute(1, 0, 2, 3)
    torch.testing.assert_close(out[0], ref, atol=1e-5, rtol=0)
