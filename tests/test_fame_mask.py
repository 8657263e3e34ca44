"""tools/fame_mask.py: the object's trail comes from the generator's replay, and FAME's mask is
scored against it (the diagnosis of FAME on SceneMotion, docs/results/scenemotion.md)."""
import numpy as np

from core.config import load_config
from datasets import scenemotion_gen as G
from datasets.scenemotion import generation_params
from tools import fame_mask as T

CFG = 'configs/scenemotion/res3d18-fame.yaml'


def test_trail_holds_every_pixel_the_object_changes():
    params = generation_params(load_config(CFG))
    for i in range(3):
        frames, own = G.render_on_scene(params, 'pretrain', 'train', i)
        # the same video on a black scene: where the frames differ from it is the scene, and the
        # object hides the scene exactly on its trail
        other = 11 if own != 11 else 10
        moved, _ = G.render_on_scene(params, 'pretrain', 'train', i, scene=other)
        trail = T.object_trail(params, 'pretrain', 'train', i)
        same = np.all(frames == moved, axis=-1)          # pixels the scene does not show
        assert trail.shape == frames.shape[:3]
        assert 0 < trail.mean() < 0.5
        # inside the object's solid interior both renders agree; outside the trail they differ
        # almost everywhere (two different scenes)
        assert same[trail].mean() > 0.9
        assert same[~trail].mean() < 0.1


def test_fame_mask_finds_the_object_better_than_chance():
    r = T.measure(load_config(CFG), 6, 'pretrain', 'train', 0.5, True)
    m = r['mean']
    assert 0 < m['object'] < 1
    assert m['recall'] > m['random_recall'] + 0.2
    assert m['precision'] > m['random_precision']
    # the mask holds half the frame: what is not object is the clip's own scene, kept by FAME
    assert abs(m['own_scene_kept'] + m['precision'] * 0.5 - 0.5) < 0.02
    assert len(r['per_video']) == 6
