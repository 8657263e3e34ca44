"""benchmarks/gpu.py on CPU: the --toy run prints every figure, and its parts behave.

The end-to-end run uses the real models, the real clip pipeline on encoded videos and real
DataLoader workers (tiny sizes); it is slow on a busy 2-core machine (~30-60 s).
"""
import os
import subprocess
import sys

import av
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

import gpu  # noqa: E402


def parse_summary(text):
    """``key=value`` lines after ``== summary ==`` -> dict."""
    assert '== summary ==' in text, text
    block = text.split('== summary ==', 1)[1].strip().splitlines()
    return dict(line.split('=', 1) for line in block)


@pytest.fixture(scope='module')
def toy_run():
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    p = subprocess.run([sys.executable, os.path.join(ROOT, 'benchmarks', 'gpu.py'), '--toy',
                        '--device', 'cpu'], capture_output=True, text=True, timeout=240, env=env,
                       cwd=ROOT)
    return p


def test_toy_run_prints_positive_figures(toy_run):
    assert toy_run.returncode == 0, toy_run.stdout + toy_run.stderr
    s = parse_summary(toy_run.stdout)
    assert s['device'].startswith('cpu')
    assert s['torch']
    rates = ['loader_w0_clips_per_s', 'loader_w1_clips_per_s', 'train_fp32_clips_per_s',
             'train_bf16_clips_per_s', 'train_bf16_cl3d_clips_per_s',
             'drl_fgsm_fp32_clips_per_s', 'drl_fgsm_bf16_cl_clips_per_s', 'bf16_over_fp32']
    for k in rates:
        assert float(s[k]) > 0, (k, s[k])
    assert s['train_best_bf16'] in ('bf16', 'bf16_cl3d')
    best = float(s[f'train_{s["train_best_bf16"]}_clips_per_s'])
    # the ratio is printed with 2 decimals (on a CPU, bf16 runs without oneDNN, as the engine
    # runs it: ~0.2, where the rounding alone is up to 3 %)
    assert float(s['bf16_over_fp32']) == pytest.approx(best / float(s['train_fp32_clips_per_s']),
                                                       rel=0.02, abs=0.006)
    for k in ('workers_needed_train_bf16', 'workers_needed_drl_fgsm_bf16'):
        assert s[k] in ('0', '1', 'none<=1'), s[k]
    assert 'failed' not in s
    # the human-readable lines are there too
    for line in ('train R3D-18 fp32', 'DRL-FGSM step fp32', 'loader  1 workers', 'bf16 / fp32 ='):
        assert line in toy_run.stdout
    # every loader setting: CPU / GPU decode x float32 / uint8 + device augment; without a
    # GPU decoder the cuda rows measure the CPU fallback, and say so
    for decode, wire in gpu.COMBOS[1:]:
        for w in (0, 1):
            assert float(s[f'loader_{decode}_{wire}_w{w}_clips_per_s']) > 0
    assert float(s['device_augment_ms_per_batch']) > 0
    assert s['hw_decode'] == 'usable' or s['hw_decode'].startswith('fallback')
    for k in ('setting_needed_train_bf16', 'setting_needed_drl_fgsm_bf16'):
        assert s[k] == 'none' or s[k].split('/')[-1] in ('w0', 'w1'), s[k]
    assert ('smallest setting that keeps up' in toy_run.stdout
            or 'no setting keeps up' in toy_run.stdout)


def test_workers_needed():
    rates = {1: 50.0, 2: 90.0, 4: 160.0, 8: 300.0}
    assert gpu.workers_needed(rates, 100.0) == 4
    assert gpu.workers_needed(rates, 90.0) == 2
    assert gpu.workers_needed(rates, 10.0) == 1
    assert gpu.workers_needed(rates, 301.0) is None


def test_report_settings_picks_the_fewest_workers(capsys):
    rates = {('cpu', 'float32'): {4: 150.0, 8: 300.0, 16: 570.0},
             ('cpu', 'uint8'): {4: 200.0, 8: 420.0, 16: 800.0},
             ('cuda', 'float32'): {4: 320.0, 8: 600.0},
             ('cuda', 'uint8'): {4: 330.0, 8: 900.0}}
    got = gpu.report_settings(rates, {'a': 300.0, 'b': 850.0, 'c': 2000.0}, 32, augment=1.0)
    # 'a': 4 workers reach it with GPU decode (the float32 one listed first wins the tie)
    assert got == {'a': 'cuda/float32/w4', 'b': 'cuda/uint8/w8', 'c': None}
    out = capsys.readouterr().out
    assert 'best cuda/uint8 with 8 workers, 900.0 clips/s' in out
    assert 'with the device augment in the step' in out


def test_bench_video_is_short_gop_340x256(tmp_path):
    path = gpu.write_bench_video((str(tmp_path / 'v.mp4'), 0, 1.0))
    with av.open(path) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (340, 256)
        assert s.average_rate == 30
        frames = list(c.decode(s))
    assert len(frames) == 30
    keys = [i for i, f in enumerate(frames) if f.key_frame]
    assert keys == [0, 15]  # keyframe every 15 frames
    assert frames[0].to_ndarray(format='rgb24').std() > 10  # textured, not flat


def test_loader_rate_on_real_videos(tmp_path):
    sz = dict(gpu.TOY)
    paths = gpu.make_videos(str(tmp_path), 2, 1.0)
    r = gpu.loader_rate(paths, sz, workers=0, pin=False)
    assert r > 0
    ds = gpu.build_bench_dataset(paths, sz, 3)
    item = ds[2]
    assert 'error' not in item, item
    assert tuple(item['video'].shape) == (1, 3, sz['frames'], sz['size'], sz['size'])
    # uint8 + device augment: the same sample once finished, and a rate counted on the device
    dev = gpu.build_bench_dataset(paths, sz, 3, wire='uint8')
    raw = dev[2]
    assert raw['video'].dtype == torch.uint8
    batch = dev.finish_batch(gpu.video_collate([raw]), torch.device('cpu'))
    torch.testing.assert_close(batch['video'][0], item['video'], atol=1e-4, rtol=0)
    assert gpu.loader_rate(paths, sz, workers=0, pin=False, wire='uint8') > 0
