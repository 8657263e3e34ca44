"""SceneMotion: deterministic generation, bias semantics, class lists, caching, dataset building."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from core.config import load_config
from datasets import build_dataset
from datasets import scenemotion_gen as G
from datasets.scenemotion import cache_root, generation_params, prepare, read_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = os.path.join(ROOT, 'configs', 'scenemotion', 'res3d18.yaml')
TINY = {'size': 32, 'n_frames': 4, 'fps': 8, 'n_train': 16, 'n_val': 8, 'n_transfer_train': 8,
        'n_transfer_test': 8, 'n_novel': 12}


def tiny_cfg(cache, **kw):
    over = [f'dataset.scenemotion.{k}={v}' for k, v in {**TINY, **kw}.items()]
    over += [f'dataset.scenemotion.cache_dir={cache}', 'dataset.args.train.n_frames=4',
             'dataset.args.test.n_frames=4', 'dataset.transform.resize=32', 'dataset.transform.crop=28']
    return load_config(CFG, over)


def tree_digest(root):
    """sha1 of every file under root (relative path + bytes), in sorted order."""
    h = hashlib.sha1()
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            h.update(os.path.relpath(p, root).encode())
            with open(p, 'rb') as fh:
                h.update(fh.read())
    return h.hexdigest()


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp('sm')
    cfg = tiny_cfg(cache)
    return cfg, prepare(cfg)


def test_determinism_same_seed_identical_other_seed_differs(tiny, tmp_path):
    cfg, root = tiny
    params = generation_params(cfg)
    again = G.ensure_generated(tmp_path / 'again', params)
    assert tree_digest(again) == tree_digest(root)
    other = G.ensure_generated(tmp_path / 'other', {**params, 'seed': 1})
    assert tree_digest(other) != tree_digest(root)
    a = (root / 'pretrain' / 'train.csv').read_text().splitlines()
    b = (other / 'pretrain' / 'train.csv').read_text().splitlines()
    assert len(a) == len(b) == 17 and a != b


def test_layout_and_class_lists(tiny):
    _, root = tiny
    assert (root / 'DONE').is_file() and (root / 'params.json').is_file()
    pre, _, _ = read_split(root, 'pretrain', 'train')
    tra, _, _ = read_split(root, 'transfer', 'test')
    nov, recs, _ = read_split(root, 'novel', 'novel')
    assert pre == tra == list(G.PRETRAIN_CLASSES) and len(pre) == 8
    assert nov == list(G.NOVEL_CLASSES) and len(nov) >= 5
    assert not set(nov) & set(pre)
    assert len(recs) == 12 and sorted({r.label for r in recs}) == list(range(len(nov)))
    header = (root / 'pretrain' / 'val.csv').read_text().splitlines()[0]
    assert header == 'label,youtube_id,time_start,time_end,split,scene'
    for r in recs:
        assert os.path.getsize(r.path) > 0 and r.path.endswith('.mp4')


def test_bias_semantics():
    # P(own scene) = bias + (1 - bias) / n_scenes in pretrain; transfer/novel ignore the class
    n, s = 4000, len(G.SCENES)
    for bias in (0.0, 0.5, 0.9):
        rng = np.random.default_rng(0)
        own = np.mean([G.scene_of('pretrain', i % 8, bias, rng) == i % 8 for i in range(n)])
        assert abs(own - (bias + (1 - bias) / s)) < 0.03, (bias, own)
    rng = np.random.default_rng(1)
    scenes = np.array([G.scene_of('transfer', i % 8, 0.9, rng) for i in range(n)])
    labels = np.arange(n) % 8
    assert abs(np.mean(scenes == labels) - 1 / s) < 0.02
    table = np.histogram2d(labels, scenes, bins=[8, s])[0] / (n / 8)   # P(scene | class)
    assert np.abs(table - 1 / s).max() < 0.05


def test_bias_one_shows_own_scene_only_in_pretrain(tmp_path):
    root = prepare(tiny_cfg(tmp_path, bias=1.0))
    for phase in ('train', 'val'):
        _, recs, scenes = read_split(root, 'pretrain', phase)
        assert [G.SCENES.index(sc) for sc in scenes] == [r.label for r in recs]
    _, recs, scenes = read_split(root, 'transfer', 'test')
    assert any(G.SCENES.index(sc) != r.label for r, sc in zip(recs, scenes))


def test_start_pose_does_not_depend_on_class():
    for label in G.PRETRAIN_CLASSES + G.NOVEL_CLASSES:
        path = G.motion_path(label, 8, 64, np.random.default_rng(7))
        ref = G.motion_path('move_right', 8, 64, np.random.default_rng(7))
        np.testing.assert_allclose(path[0], ref[0])
        assert np.ptp(path, axis=0).max() > 0.3, label   # it does move


def _centroid_and_area(frame):
    ys, xs = np.nonzero(frame.sum(-1) > 0)
    return xs.mean(), ys.mean(), len(xs)


@pytest.mark.parametrize('label,check', [
    ('move_right', lambda a, b: b[0] - a[0] > 5), ('move_left', lambda a, b: a[0] - b[0] > 5),
    ('move_up', lambda a, b: a[1] - b[1] > 5), ('move_down', lambda a, b: b[1] - a[1] > 5),
    ('zoom_in', lambda a, b: b[2] > 1.5 * a[2]), ('zoom_out', lambda a, b: a[2] > 1.5 * b[2]),
])
def test_rendered_motion_direction(label, check):
    rng = np.random.default_rng(3)
    sprite = G.make_sprite(64, rng)
    sprite[..., :3] = np.maximum(sprite[..., :3], 1.0)   # no black pixels: mask = object
    frames = G.render(np.zeros((64, 64, 3), np.float32), sprite, G.motion_path(label, 8, 64, rng))
    assert frames.shape == (8, 64, 64, 3) and frames.dtype == np.uint8
    assert check(_centroid_and_area(frames[0]), _centroid_and_area(frames[-1]))


def test_rotation_sense():
    # cv2 turns positive angles counter-clockwise on screen: rotate_cw must decrease the angle
    cw = G.motion_path('rotate_cw', 8, 64, np.random.default_rng(0))[:, 2]
    ccw = G.motion_path('rotate_ccw', 8, 64, np.random.default_rng(0))[:, 2]
    assert np.all(np.diff(cw) < 0) and np.all(np.diff(ccw) > 0)


def test_build_dataset_shapes_and_split_mapping(tiny):
    cfg, root = tiny
    train, test = build_dataset(cfg, 'train'), build_dataset(cfg, 'test')
    assert len(train) == 16 and len(test) == 8 and train.classes == list(G.PRETRAIN_CLASSES)
    item = train[3]
    assert item['video'].shape == (1, 3, 4, 28, 28) and item['label'] == 3
    assert str(root) in train.records[0].path
    cfg['dataset']['subset'] = 'transfer'
    assert len(build_dataset(cfg, 'train')) == 8 and len(build_dataset(cfg, 'test_final')) == 8
    cfg['dataset']['subset'] = 'novel'
    cfg['dataset']['args']['novel'] = {'n_clips': 2, 'n_frames': 4, 'fps': -1}
    novel = build_dataset(cfg, 'novel')
    assert len(novel) == 12 and novel[0]['video'].shape == (2, 3, 4, 28, 28)
    cfg['dataset']['subset'] = 'nope'
    with pytest.raises(ValueError, match='nope'):
        build_dataset(cfg, 'train')


def test_cache_reuse_redo_and_location(tiny, tmp_path, monkeypatch):
    cfg, root = tiny
    stamp = os.path.getmtime(root / 'DONE')
    assert prepare(cfg) == root and os.path.getmtime(root / 'DONE') == stamp
    # an interrupted generation (no DONE) is redone
    params = generation_params(cfg)
    broken = tmp_path / 'broken'
    (broken / 'pretrain').mkdir(parents=True)
    (broken / 'pretrain' / 'junk.mp4').write_bytes(b'')
    G.ensure_generated(broken, params)
    assert (broken / 'DONE').is_file() and not (broken / 'pretrain' / 'junk.mp4').exists()
    # default location: $DRL_CACHE_DIR, named by the parameters' hash
    cfg2 = tiny_cfg(tmp_path)
    cfg2['dataset']['scenemotion']['cache_dir'] = None
    monkeypatch.setenv('DRL_CACHE_DIR', str(tmp_path / 'env'))
    assert cache_root(cfg2, params) == tmp_path / 'env' / 'scenemotion' / G.params_hash(params)
    assert G.params_hash({**params, 'bias': 0.5}) != G.params_hash(params)


def test_concurrent_generation(tmp_path):
    code = ('import sys; sys.path.insert(0, sys.argv[1]); from datasets import scenemotion_gen as G; '
            'import json; G.ensure_generated(sys.argv[2], json.loads(sys.argv[3]))')
    params = {**G.DEFAULTS, **TINY, 'n_train': 8, 'n_val': 8}
    import json
    procs = [subprocess.Popen([sys.executable, '-c', code, ROOT, str(tmp_path / 'gen'), json.dumps(params)])
             for _ in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert (tmp_path / 'gen' / 'DONE').is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.gen.lock', 'gen']   # no temp folders left
