"""SceneMotion generator: textured objects moving over real photographs, the class is the motion.

Every video shows one object (a bordered, textured rectangle of random size, aspect, colour,
texture and start pose) moving over a crop of one scene photograph shipped with scikit-image.
The label is the object's motion; the scene is drawn

* ``pretrain``: the class's own scene (``SCENES[label]``) with probability ``bias``, otherwise
  uniformly from all scenes (so ``bias: 0`` makes scene and class independent);
* ``transfer`` and ``novel``: uniformly from all scenes.

Appearance and start pose are drawn independently of the class and every video is exactly one
clip long, so the first frame of a ``transfer`` video carries no class information.

Everything is drawn from a generator seeded by ``(seed, subset, index)``: a video does not
depend on the order of generation, and the same parameters give byte-identical files
(libx264 runs single-threaded). Output layout of one generation (``root``)::

    params.json                           the generation parameters
    <subset>/label_map.txt                class names, one a line (index = label)
    <subset>/<phase>.csv                  label,youtube_id,time_start,time_end,split,scene
    <subset>/<phase>/<label>/<ytid>_000000_<end>.mp4
    DONE                                  written last
"""
import csv
import fractions
import functools
import hashlib
import json
import math
import os
import pathlib
import shutil
import tempfile

import av
import cv2
import numpy as np

GEN_VERSION = 3  # bump when the rendering or the split sizes change: a new cache folder is used
# 3: transfer enlarged to 480 + 480 videos (96 + 240 before) so that the static mimic of the
#    dynamic score and the transfer probe have enough data; videos 0..95 / 0..239 are unchanged

PRETRAIN_CLASSES = ('move_right', 'move_left', 'move_up', 'move_down',
                    'rotate_cw', 'rotate_ccw', 'zoom_in', 'zoom_out')
NOVEL_CLASSES = ('move_up_right', 'move_up_left', 'move_down_right', 'move_down_left',
                 'shake_horizontal', 'shake_vertical')
# scene i is "the own scene" of pretrain class i; the rest only appear as random scenes
SCENES = ('astronaut', 'coffee', 'chelsea', 'rocket', 'hubble_deep_field',
          'immunohistochemistry', 'retina', 'camera', 'coins', 'moon', 'grass', 'colorwheel')

# The benchmark's fixed parameters (docs/scenemotion.md: they are not to be retuned).
DEFAULTS = {
    'seed': 0,
    'bias': 0.9,
    'size': 64,          # frame side (px)
    'n_frames': 8,       # frames per video (= one clip)
    'fps': 8,
    'n_train': 480,      # pretrain train videos (balanced over the 8 classes)
    'n_val': 240,
    'n_transfer_train': 480,  # scoring (mimic training) and transfer split: scene independent of class
    'n_transfer_test': 480,
    'n_novel': 120,      # over the 6 novel classes
}
# How far objects move over one video, as a fraction of the frame / in degrees / as a factor.
MOTION = {
    'shift': (0.35, 0.5),     # translation, fraction of the frame side
    'angle': (110.0, 170.0),  # rotation, degrees
    'zoom': (1.8, 2.4),       # scale factor between first and last frame
    'shake': (0.08, 0.14),    # oscillation amplitude, fraction of the frame side
}
OBJECT = {'side': (0.25, 0.35), 'aspect': (1.5, 2.2), 'scale0': (0.75, 1.3)}

SUBSETS = {  # subset -> ((phase, count key), ...)
    'pretrain': (('train', 'n_train'), ('val', 'n_val')),
    'transfer': (('train', 'n_transfer_train'), ('test', 'n_transfer_test')),
    'novel': (('novel', 'n_novel'),),
}


def subset_classes(subset):
    """Class names of a subset (``transfer`` shares the pretrain classes)."""
    return list(NOVEL_CLASSES if subset == 'novel' else PRETRAIN_CLASSES)


def params_hash(params):
    """Short hash naming the cache folder of one set of generation parameters."""
    blob = json.dumps({**params, 'version': GEN_VERSION}, sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:10]


def item_rng(seed, subset, phase, index):
    """The private generator of one video, independent of generation order."""
    key = [int(seed), sorted(SUBSETS).index(subset), ['train', 'val', 'test', 'novel'].index(phase),
           int(index)]
    return np.random.default_rng(np.random.SeedSequence(key))


@functools.lru_cache(maxsize=None)
def scene_image(name, side):
    """RGB uint8 photograph ``name`` from ``skimage.data``, short side resized to ``side``."""
    import skimage.data  # late: only the generator needs it

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3]).astype(np.uint8)
    h, w = img.shape[:2]
    f = side / min(h, w)
    return cv2.resize(img, (max(side, round(w * f)), max(side, round(h * f))),
                      interpolation=cv2.INTER_AREA)


def background(scene, size, rng):
    """A random square crop (60-100 % of the short side) of a scene, ``size × size × 3``."""
    img = scene_image(scene, 2 * size)
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.6, 1.0))
    top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = img[top:top + side, left:left + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


def make_sprite(size, rng):
    """The object: RGBA float sprite ``h × w × 4`` (alpha in [0, 1]) at 2× frame resolution.

    A rectangle textured with a crop of a random scene, colour-tinted, with a solid border.
    Every draw here is independent of the class.
    """
    side = rng.uniform(*OBJECT['side']) * size * 2
    w, h = int(side * math.sqrt(rng.uniform(*OBJECT['aspect']))), int(side)
    w, h = max(w, 6), max(h, 4)
    tex = scene_image(SCENES[rng.integers(len(SCENES))], 4 * size)
    top, left = rng.integers(0, tex.shape[0] - h + 1), rng.integers(0, tex.shape[1] - w + 1)
    rgb = tex[top:top + h, left:left + w].astype(np.float32)
    tint = rng.uniform(0, 255, 3).astype(np.float32)
    rgb = 0.5 * rgb + 0.5 * tint
    border = max(2, h // 6)
    edge = 255.0 - tint if rng.random() < 0.5 else tint  # contrasting or matching border
    for sl in (np.s_[:border], np.s_[-border:], np.s_[:, :border], np.s_[:, -border:]):
        rgb[sl] = edge
    return np.concatenate([rgb, np.full((h, w, 1), 1.0, np.float32)], axis=2)


def motion_path(label, n_frames, size, rng):
    """Per-frame pose ``(cx, cy, angle_deg, scale)`` of the object for motion class ``label``.

    The start pose is drawn the same way for every class; only its change over time differs.
    Image coordinates: x to the right, y down; positive angles turn counter-clockwise on screen.
    """
    cx, cy = rng.uniform(0.3, 0.7, 2) * size
    a0, s0 = rng.uniform(0, 360), rng.uniform(*OBJECT['scale0'])
    t = np.arange(n_frames) / max(1, n_frames - 1)  # 0 .. 1
    x, y, a, s = np.full(n_frames, cx), np.full(n_frames, cy), np.full(n_frames, a0), np.full(n_frames, s0)
    moves = {'right': (1, 0), 'left': (-1, 0), 'up': (0, -1), 'down': (0, 1),
             'up_right': (1, -1), 'up_left': (-1, -1), 'down_right': (1, 1), 'down_left': (-1, 1)}
    if label.startswith('move_'):
        dx, dy = moves[label[5:]]
        d = rng.uniform(*MOTION['shift']) * size / math.hypot(dx, dy)
        x, y = cx + dx * d * t, cy + dy * d * t
    elif label.startswith('rotate_'):
        a = a0 + (-1 if label == 'rotate_cw' else 1) * rng.uniform(*MOTION['angle']) * t
    elif label.startswith('zoom_'):
        s = s0 * rng.uniform(*MOTION['zoom']) ** (t if label == 'zoom_in' else -t)
    elif label.startswith('shake_'):
        wave = rng.uniform(*MOTION['shake']) * size * np.sin(2 * math.pi * 2 * t)
        x, y = (cx + wave, y) if label == 'shake_horizontal' else (x, cy + wave)
    else:
        raise ValueError(f'unknown SceneMotion class {label!r}')
    return np.stack([x, y, a, s], axis=1)


def render(bg, sprite, path):
    """Frames ``n_frames × size × size × 3`` uint8: the sprite composited at each pose."""
    size = bg.shape[0]
    h, w = sprite.shape[:2]
    frames = []
    for cx, cy, ang, sc in path:
        # sprite pixels are at 2× resolution: scale 0.5 * sc, rotate about its centre
        m = cv2.getRotationMatrix2D((w / 2, h / 2), ang, 0.5 * sc)
        m[:, 2] += (cx - w / 2, cy - h / 2)
        warped = cv2.warpAffine(sprite, m, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha = warped[..., 3:4]
        frames.append(np.clip(bg * (1 - alpha) + warped[..., :3], 0, 255).astype(np.uint8))
    return np.stack(frames)


def write_video(frames, path, fps):
    """Encode ``T × H × W × 3`` uint8 RGB frames as H.264 (yuv420p) ``.mp4`` with PyAV."""
    with av.open(str(path), 'w') as out:
        stream = out.add_stream('libx264', rate=fractions.Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = 'yuv420p'
        # zerolatency (no lookahead / mb-tree) + one thread: byte-identical files run to run;
        # with the default lookahead libx264 output varies slightly between runs
        stream.options = {'crf': '18', 'preset': 'medium', 'tune': 'zerolatency', 'threads': '1'}
        stream.codec_context.thread_count = 1
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format='rgb24')):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def scene_of(subset, label, bias, rng):
    """Scene index of one video (see the module docstring)."""
    if subset == 'pretrain' and rng.random() < bias:
        return label
    return int(rng.integers(len(SCENES)))


def generate_split(root, params, subset, phase, count):
    """Write the ``count`` videos of one split and its CSV; classes are balanced (round robin)."""
    classes = subset_classes(subset)
    size, n_frames, fps = params['size'], params['n_frames'], params['fps']
    end = max(1, math.ceil(n_frames / fps))
    rows = []
    for i in range(count):
        rng = item_rng(params['seed'], subset, phase, i)
        label = i % len(classes)
        scene = scene_of(subset, label, params['bias'], rng)
        frames = render(background(SCENES[scene], size, rng), make_sprite(size, rng),
                        motion_path(classes[label], n_frames, size, rng))
        ytid = f'sm{params["seed"]}{subset[0]}{phase[0]}{i:05d}'
        folder = root / subset / phase / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        write_video(frames, folder / f'{ytid}_000000_{end:06d}.mp4', fps)
        rows.append({'label': classes[label], 'youtube_id': ytid, 'time_start': 0,
                     'time_end': end, 'split': phase, 'scene': SCENES[scene]})
    with open(root / subset / f'{phase}.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, ['label', 'youtube_id', 'time_start', 'time_end', 'split', 'scene'])
        writer.writeheader()
        writer.writerows(rows)


def generate(root, params):
    """Generate every subset of SceneMotion into the (new, empty) folder ``root``."""
    root = pathlib.Path(root)
    for subset, phases in SUBSETS.items():
        (root / subset).mkdir(parents=True, exist_ok=True)
        (root / subset / 'label_map.txt').write_text('\n'.join(subset_classes(subset)) + '\n')
        for phase, key in phases:
            generate_split(root, params, subset, phase, int(params[key]))
    (root / 'params.json').write_text(json.dumps(params, indent=1, sort_keys=True) + '\n')
    (root / 'DONE').write_text('ok\n')


def ensure_generated(root, params):
    """Generate into ``root`` unless a finished generation (``root/DONE``) is there.

    Safe when several processes call it at once: one generates under an exclusive file lock
    into a temporary sibling folder that is renamed into place when complete; the others wait
    for the lock and then find ``DONE``. An interrupted generation (no ``DONE``) is redone.

    Returns:
        ``root`` as a ``pathlib.Path``.
    """
    import fcntl  # POSIX; imported here so the module imports everywhere

    root = pathlib.Path(root)
    if (root / 'DONE').is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f'.{root.name}.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / 'DONE').is_file():  # another process finished while we waited
            return root
        if root.exists():  # left over from an interrupted run
            shutil.rmtree(root)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{root.name}.tmp', dir=root.parent))
        try:
            generate(tmp, params)
            os.rename(tmp, root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    return root


def render_on_scene(params, subset, phase, index, scene=None):
    """The frames of one generated video, optionally with its object and motion over another scene.

    Replays the video's private generator exactly as :func:`generate_split` draws it (scene,
    background crop, sprite, motion path), so the object, its texture and its trajectory are
    those of the generated video. With ``scene`` (an index into ``SCENES``) the background is
    a crop of that scene instead, drawn from a generator of its own (seeded by the video and
    the scene), so the replay of the video's own draws is unchanged. Used to build pairs with
    the same motion and another appearance (measure/representation.py); nothing is written.

    Returns:
        ``(frames, own_scene)``: ``n_frames × size × size × 3`` uint8 and the index of the
        scene the generated video shows.
    """
    classes = subset_classes(subset)
    size, n_frames = params['size'], params['n_frames']
    rng = item_rng(params['seed'], subset, phase, index)
    label = index % len(classes)
    own = scene_of(subset, label, params['bias'], rng)
    bg = background(SCENES[own], size, rng)
    sprite = make_sprite(size, rng)
    path = motion_path(classes[label], n_frames, size, rng)
    if scene is not None and int(scene) != own:
        other = np.random.default_rng(np.random.SeedSequence(
            [int(params['seed']), sorted(SUBSETS).index(subset), int(index), int(scene), 1]))
        bg = background(SCENES[int(scene)], size, other)
    return render(bg, sprite, path), own
