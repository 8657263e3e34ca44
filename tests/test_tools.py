"""tools/check_dataset.py and tools/prepare_videos.py, run as users run them (subprocess)."""
import os
import subprocess
import sys

import av

from datasets import build_dataset
from tests import fake_trees as ft
from tests.videos import write_corrupt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_tool(*args):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env = {k: v for k, v in env.items() if not k.startswith('DRL_')}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_check_dataset_reports_missing_and_corrupt(tmp_path):
    info = ft.make_kinetics(tmp_path / 'k', n_train=2, n_val=2, n_missing=1)
    corrupt = info['videos'][1]
    write_corrupt(corrupt, src=info['videos'][0])
    out = run_tool('tools/check_dataset.py', 'configs/k400/res3d18.yaml', f'dataset.root={tmp_path / "k"}',
                   '-j', '2')
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    table = {l.split()[0]: l.split()[1:] for l in lines[1:4]}
    assert table['train'] == ['6', '6', '0', '1']  # annotated, found, missing, undecodable
    assert table['test'] == ['6', '5', '1', '0'] and table['test_final'] == ['6', '5', '1', '0']
    assert info['missing'][0] in out.stdout and corrupt in out.stdout
    assert 'problems found' in out.stdout


def test_check_dataset_clean_tree_and_config_error(tmp_path):
    ft.make_diving(tmp_path / 'd', n_classes=2, n_train=1, n_test=1)
    out = run_tool('tools/check_dataset.py', 'configs/diving/res3d18.yaml', f'dataset.root={tmp_path / "d"}',
                   '-j', '1', '--splits', 'train', 'test')
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'all videos found and decodable' in out.stdout
    bad = run_tool('tools/check_dataset.py', 'configs/diving/res3d18.yaml', 'dataset.rot=/x')
    assert bad.returncode == 2 and 'dataset.root' in bad.stderr


def _stream_facts(path):
    with av.open(path) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        keys = [i for i, f in enumerate(frames) if f.key_frame]
        return {'codec': s.codec_context.name, 'size': (s.width, s.height), 'n': len(frames),
                'max_gap': max(b - a for a, b in zip(keys, keys[1:] + [len(frames)])),
                'b_frames': sum(int(f.pict_type) == 3 for f in frames)}  # AV_PICTURE_TYPE_B


def test_prepare_videos_transcodes_keeps_layout_and_resumes(tmp_path):
    src, dst = tmp_path / 'src', tmp_path / 'dst'
    ft.make_ucf101(src, classes=('Archery', 'HandstandPushups'), n_groups=1)
    webm = ft.video(str(src / 'extra' / '1001.webm'))
    frames = ft.frames(str(src / 'frames' / '7'), n_frames=3)
    out = run_tool('tools/prepare_videos.py', str(src), str(dst), '--short-side', '16', '--gop', '8', '-j', '2')
    assert out.returncode == 0, out.stdout + out.stderr
    assert '5 videos: 5 transcoded, 0 already done, 0 failed; 7 annotation files copied' in out.stdout
    rel = sorted(os.path.relpath(os.path.join(d, f), dst) for d, _, fs in os.walk(dst) for f in fs)
    want = sorted(os.path.relpath(os.path.join(d, f), src) for d, _, fs in os.walk(src) for f in fs
                  if not d.startswith(frames))
    assert rel == want  # same layout, names kept, frame folders untouched (not copied)
    for name in ('UCF-101/Archery/v_Archery_g01_c01.avi', 'extra/1001.webm'):
        facts = _stream_facts(str(dst / name))
        assert facts['codec'] == 'h264' and facts['size'] == (22, 16) and facts['n'] == ft.N_FRAMES
        assert facts['max_gap'] <= 8 and facts['b_frames'] == 0
    assert _stream_facts(webm)['codec'] == 'vp9'  # the source is untouched
    # the prepared tree is a valid dataset root
    cfg = {'dataset': {'name': 'ucf101', 'root': str(dst), 'transform': {'resize': 16, 'crop': 16},
                       'args': {'test': {'n_clips': 1, 'n_frames': 4, 'fps': 8}}}}
    ds = build_dataset(cfg, 'test')
    assert len(ds) == 4 and not ds.missing and ds[0]['video'].shape == (1, 3, 4, 16, 16)
    # resume: finished files are skipped; a deleted output and a stale partial one are redone
    os.remove(dst / 'extra' / '1001.webm')
    (dst / 'extra' / '1001.webm.part').write_bytes(b'half-written')
    again = run_tool('tools/prepare_videos.py', str(src), str(dst), '--short-side', '16', '--gop', '8', '-j', '2')
    assert again.returncode == 0 and '1 transcoded, 4 already done' in again.stdout
    assert not (dst / 'extra' / '1001.webm.part').exists()
    assert _stream_facts(str(dst / 'extra' / '1001.webm'))['codec'] == 'h264'


def test_prepare_videos_reports_failures(tmp_path):
    src = tmp_path / 'src'
    good = ft.video(str(src / 'a' / 'good.mp4'))
    write_corrupt(str(src / 'a' / 'bad.mp4'))
    out = run_tool('tools/prepare_videos.py', str(src), str(tmp_path / 'dst'), '--short-side', '16', '-j', '1')
    assert out.returncode == 1 and 'bad.mp4' in out.stdout and '1 transcoded' in out.stdout
    assert not os.path.exists(tmp_path / 'dst' / 'a' / 'bad.mp4')
    assert not os.path.exists(tmp_path / 'dst' / 'a' / 'bad.mp4.part')
    assert os.path.isfile(good)
    inside = run_tool('tools/prepare_videos.py', str(src), str(src / 'out'), '--short-side', '16')
    assert inside.returncode == 2 and 'inside' in inside.stderr
