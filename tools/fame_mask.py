"""Where FAME's foreground mask falls on SceneMotion: on the moving object, or on the scene?

FAME (debias/fame.py) keeps each clip's most-moving pixels and pastes them on another clip's
background. Whether that removes the scene cue depends on what the mask keeps. SceneMotion knows
the answer: its generator replays each video's object and trajectory (``render_on_scene``), so
the object's pixels in every frame are known. For videos of one split this prints, per video
and then averaged:

* ``object``: the share of the frame the object covers in at least one frame (its trail);
* ``recall``: the share of the object's trail inside the mask;
* ``precision``: the share of the mask on the object's trail;
* ``own_scene_kept``: the share of the frame where the mixed clip still shows the clip's own
  scene (mask minus the object's trail) — the scene cue FAME leaves in;
* the same for a random mask of the same size (the chance level).

The clips are the generator's frames (before H.264 encoding), centre-cropped as the test
transform does (``dataset.transform``: resize, crop), as the mask sees them in training up to
the random crop.

    python tools/fame_mask.py [CFG] [--videos 240] [--subset pretrain --phase train] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from core.config import load_config  # noqa: E402
from datasets import scenemotion_gen as G  # noqa: E402
from datasets.scenemotion import generation_params  # noqa: E402
from debias.fame import foreground_mask  # noqa: E402


def object_trail(params, subset, phase, index):
    """``T × S × S`` bool: where the video's object is in each frame (generator replay)."""
    classes = G.subset_classes(subset)
    size, n_frames = params['size'], params['n_frames']
    rng = G.item_rng(params['seed'], subset, phase, index)
    label = index % len(classes)
    own = G.scene_of(subset, label, params['bias'], rng)
    G.background(G.SCENES[own], size, rng)          # the same draws as the video, in order
    sprite = G.make_sprite(size, rng)
    path = G.motion_path(classes[label], n_frames, size, rng)
    white = sprite.copy()
    white[..., :3] = 255.0 * sprite[..., 3:4]
    alpha = G.render(np.zeros((size, size, 3), np.float32), white, path)[..., 0]
    return alpha > 127


def centre(x: torch.Tensor, resize: int, crop: int) -> torch.Tensor:
    """``N × C × H × W`` float -> resized (shorter side ``resize``) and centre-cropped."""
    x = F.interpolate(x, size=(resize, resize), mode='bilinear', align_corners=False)
    o = (resize - crop) // 2
    return x[..., o:o + crop, o:o + crop]


def measure(cfg, videos, subset, phase, fg_fraction, refine, seed=0):
    params = generation_params(cfg)
    tf = cfg['dataset'].get('transform') or {}
    resize, crop = int(tf.get('resize', params['size'])), int(tf.get('crop', params['size']))
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(videos):
        frames, _ = G.render_on_scene(params, subset, phase, i)
        clip = torch.from_numpy(frames).float().div(255).permute(0, 3, 1, 2)       # T × 3 × S × S
        clip = centre(clip, resize, crop).permute(1, 0, 2, 3).unsqueeze(0)         # 1 × 3 × T × c × c
        trail = torch.from_numpy(object_trail(params, subset, phase, i)).float().unsqueeze(1)
        trail = (centre(trail, resize, crop)[:, 0] > 0.5).any(0).float()           # c × c
        mask = foreground_mask(clip, fg_fraction, refine)[0]
        rand = torch.zeros(crop * crop)
        rand[torch.randperm(crop * crop, generator=gen)[:int(mask.sum())]] = 1
        rand = rand.view(crop, crop)
        row = {'index': i, 'object': trail.mean().item()}
        for name, m in (('', mask), ('random_', rand)):
            hit = (m * trail).sum().item()
            row[name + 'recall'] = hit / max(trail.sum().item(), 1)
            row[name + 'precision'] = hit / max(m.sum().item(), 1)
            row[name + 'own_scene_kept'] = (m * (1 - trail)).mean().item()
        rows.append(row)
    keys = [k for k in rows[0] if k != 'index']
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    return {'videos': videos, 'subset': subset, 'phase': phase, 'fg_fraction': fg_fraction,
            'refine': refine, 'crop': crop, 'mean': mean, 'per_video': rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('config', nargs='?', default='configs/scenemotion/res3d18-fame.yaml')
    ap.add_argument('--videos', type=int, default=240)
    ap.add_argument('--subset', default='pretrain')
    ap.add_argument('--phase', default='train')
    ap.add_argument('--json', default=None)
    a = ap.parse_args(argv)
    cfg = load_config(a.config)
    if cfg['dataset']['name'] != 'scenemotion':
        ap.error(f'{a.config}: the object masks come from the SceneMotion generator; '
                 f'dataset.name is {cfg["dataset"]["name"]!r}')
    fame = (cfg.get('augment') or {}).get('fame') or {}
    r = measure(cfg, a.videos, a.subset, a.phase, float(fame.get('fg_fraction', 0.5)),
                bool(fame.get('refine', True)))
    m = r['mean']
    print(f'{a.videos} {a.subset}/{a.phase} videos, {r["crop"]} px crops, fg_fraction {r["fg_fraction"]}, '
          f'refine {r["refine"]}: the object covers {100 * m["object"]:.1f} % of the frame (its trail)')
    print(f'  FAME mask:   recall {100 * m["recall"]:.1f} %, precision {100 * m["precision"]:.1f} %, '
          f'own scene kept {100 * m["own_scene_kept"]:.1f} % of the frame')
    print(f'  random mask: recall {100 * m["random_recall"]:.1f} %, precision {100 * m["random_precision"]:.1f} %, '
          f'own scene kept {100 * m["random_own_scene_kept"]:.1f} % of the frame')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(r, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
