"""Small fake dataset trees laid out exactly like the official downloads (docs/datasets.md).

Each ``make_<family>(root, ...)`` writes the official annotation files and real encoded videos
(tiny: 32×24, 30 frames at 15 fps; one video per format is encoded, the others are copies)
and returns a dict: ``classes`` (official class order), ``counts`` ({phase: n annotated}),
``missing`` (annotated paths deliberately not written), ``videos`` (written paths).

Every builder takes ``layout='project'`` (the layouts above) or ``layout='published'``: the
published code's folders (annotations under ``anno/`` beside the video or frame folder; UCF101
and HMDB51 keep their official annotation folder, videos in ``data/`` / ``videos/``), see
``PUBLISHED``.

``fake_tree_for(config_path, tmp_path, monkeypatch)`` builds the tree a config under
``configs/<folder>/`` reads and points the dataset's environment variable at it, so an
end-to-end test can run the config unchanged.
"""
import csv
import json
import os
import shutil

from datasets.paths import env_name
from tests.videos import write_frames, write_video

SIZE, N_FRAMES, FPS = (32, 24), 30, 15
_templates = {}


def video(path, n_frames=N_FRAMES):
    """A real tiny video at ``path`` (format from the extension), copied from a cached encode."""
    ext = os.path.splitext(path)[1].lstrip('.')
    key = (ext, n_frames)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    src = _templates.get(key)
    if src and os.path.isfile(src):
        shutil.copyfile(src, path)
    else:
        write_video(path, n_frames, fps=FPS, size=SIZE)
        _templates[key] = path
    return path


def frames(folder, n_frames=N_FRAMES):
    """A ``00001.jpg…`` frame folder (SSv1 / Jester)."""
    return write_frames(folder, n_frames, size=SIZE)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', newline='') as f:
        f.write(text)


def _result(classes, counts, missing, videos):
    return {'classes': classes, 'counts': counts, 'missing': missing, 'videos': videos}


# family -> (annotation folder, video folder) of the published code's layout, relative to the root
PUBLISHED = {
    'kinetics_400': ('anno/kinetics400', 'video'),
    'ucf101': ('ucfTrainTestlist', 'data'),
    'hmdb51': ('testTrainMulti_7030_splits', 'videos'),
    'diving48': ('anno', 'rgb'),
    'something_v2': ('anno', '20bn-something-something-v2'),
    'something_v1': ('anno', '20bn-something-something-v1'),
    'jester': ('anno', '20bn-jester-v1'),
}


def _folders(root, family, layout, project):
    """``(annotation folder, video folder)`` of ``family`` under ``root`` in ``layout``;
    ``project`` gives the project layout's pair (relative, ``''`` = root)."""
    if layout not in ('project', 'published'):
        raise ValueError(f'layout must be project or published, got {layout!r}')
    ann, vid = PUBLISHED[family] if layout == 'published' else project
    return (os.path.join(root, ann) if ann else root), (os.path.join(root, vid) if vid else root)


def make_kinetics(root, classes=('air drumming', 'abseiling', 'zumba'), n_train=2, n_val=2,
                  n_missing=0, label_map=False, layout='project'):
    """Kinetics-400: ``train.csv`` / ``validate.csv``, ``train/<label>/`` and ``val/<label>/``
    (published: ``anno/kinetics400/*.csv``, ``video/train/`` and ``video/validate/``).

    The last ``n_missing`` validation rows have no video. Without ``label_map`` the class
    order is the sorted labels (``abseiling, air drumming, zumba``).
    """
    ann, vids = _folders(root, 'kinetics_400', layout, ('', ''))
    os.makedirs(ann, exist_ok=True)
    val_dir = 'validate' if layout == 'published' else 'val'
    counts, missing, videos = {}, [], []
    for phase, csv_name, folder, n in (('train', 'train.csv', 'train', n_train),
                                       ('val', 'validate.csv', val_dir, n_val)):
        rows = [('label', 'youtube_id', 'time_start', 'time_end', 'split')]
        for c, label in enumerate(classes):
            for k in range(n):
                rows.append((label, f'yt{phase}{c}x{k}-_A', 10 * k, 10 * k + 10, phase))
        for i, (label, yid, s, e, _) in enumerate(rows[1:]):
            path = os.path.join(vids, folder, label, f'{yid}_{s:06d}_{e:06d}.mp4')
            if phase == 'val' and i >= len(rows) - 1 - n_missing:
                missing.append(path)
            else:
                videos.append(video(path))
        with open(os.path.join(ann, csv_name), 'w', newline='') as f:
            csv.writer(f).writerows(rows)
        counts[phase] = len(rows) - 1
    if label_map:
        _write(os.path.join(ann, 'label_map.txt'), ''.join(f'{c}\n' for c in classes))
    order = list(classes) if label_map else sorted(classes)
    return _result(order, counts, missing, videos)


def make_ucf101(root, classes=('ApplyEyeMakeup', 'Archery', 'HandstandPushups'), n_groups=3,
                layout='project'):
    """UCF101: ``ucfTrainTestlist/`` (classInd, trainlist01-03, testlist01-03), ``UCF-101/``
    (published: ``data/``).

    Split N tests on group N and trains on the others (2 clips per group and class).
    The file names of ``HandstandPushups`` use the official odd spelling ``HandStandPushups``.
    """
    ann, vids = _folders(root, 'ucf101', layout, ('ucfTrainTestlist', 'UCF-101'))
    _write(os.path.join(ann, 'classInd.txt'), ''.join(f'{i + 1} {c}\n' for i, c in enumerate(classes)))
    videos, counts = [], {}
    for split in (1, 2, 3):
        train, test = [], []
        for i, c in enumerate(classes):
            stem_cls = 'HandStandPushups' if c == 'HandstandPushups' else c
            for g in range(1, n_groups + 1):
                for clip in (1, 2):
                    rel = f'{c}/v_{stem_cls}_g{g:02d}_c{clip:02d}.avi'
                    (test if g == split else train).append((rel, i + 1))
        _write(os.path.join(ann, f'trainlist{split:02d}.txt'), ''.join(f'{r} {l}\n' for r, l in train))
        _write(os.path.join(ann, f'testlist{split:02d}.txt'), ''.join(f'{r}\n' for r, _ in test))
        counts[f'train{split}'], counts[f'test{split}'] = len(train), len(test)
        if split == 1:
            videos = [video(os.path.join(vids, r)) for r, _ in train + test]
    return _result(list(classes), counts, [], videos)


def make_hmdb(root, classes=('brush_hair', 'cartwheel', 'climb_stairs', 'jump'), n_per_tag=2,
              layout='project'):
    """HMDB51: ``testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt`` and ``<class>/*.avi``
    (published: ``videos/<class>/*.avi``).

    Per class and split: ``n_per_tag`` videos tagged 1 (train), 2 (test) and 0 (unused); the
    tags rotate with the split number.
    """
    ann, vids = _folders(root, 'hmdb51', layout, ('testTrainMulti_7030_splits', ''))
    videos, counts = [], {}
    names = {c: [f'{c}_video#{k}_f_cm_np1_ri_med_{k}.avi' for k in range(3 * n_per_tag)] for c in classes}
    for split in (1, 2, 3):
        for c in classes:
            lines = [f'{n} {((k // n_per_tag) + split) % 3} \n' for k, n in enumerate(names[c])]
            _write(os.path.join(ann, f'{c}_test_split{split}.txt'), ''.join(lines))
    for c in classes:
        videos += [video(os.path.join(vids, c, n)) for n in names[c]]
    counts = {'train': n_per_tag * len(classes), 'test': n_per_tag * len(classes),
              'all': 3 * n_per_tag * len(classes)}
    return _result(sorted(classes), counts, [], videos)


def make_diving(root, n_classes=4, n_train=2, n_test=1, layout='project'):
    """Diving48: ``Diving48_V2_{train,test}.json``, ``Diving48_vocab.json``, ``rgb/*.mp4``
    (published: the json files in ``anno/``)."""
    ann, vids = _folders(root, 'diving48', layout, ('', 'rgb'))
    vocab = [['Back', f'{k}5som', 'NoTwis', 'PIKE' if k % 2 else 'TUCK'] for k in range(n_classes)]
    _write(os.path.join(ann, 'Diving48_vocab.json'), json.dumps(vocab))
    videos, counts = [], {}
    for phase, n in (('train', n_train), ('test', n_test)):
        entries = [{'vid_name': f'{phase}Vid{c}_{k:05d}', 'label': c, 'start_frame': 0, 'end_frame': 29}
                   for c in range(n_classes) for k in range(n)]
        _write(os.path.join(ann, f'Diving48_V2_{phase}.json'), json.dumps(entries))
        videos += [video(os.path.join(vids, e['vid_name'] + '.mp4')) for e in entries]
        counts[phase] = len(entries)
    return _result([' '.join(v) for v in vocab], counts, [], videos)


SSV2_TEMPLATES = ['Approaching [something] with your camera', 'Closing [something]',
                  'Dropping [something] into [something]', 'Holding [something] next to [something]',
                  'Moving [something] up', 'Opening [something]', 'Pushing [something] from left to right',
                  'Taking [one of many similar things on the table]']


def make_something_v2(root, n_classes=6, n_train=1, n_val=6, layout='project'):
    """SSv2: ``labels/something-something-v2-{labels,train,validation}.json`` (published:
    ``anno/``) and ``20bn-something-something-v2/<id>.webm``. Class index order is the reverse
    of the template list order (so the official index, not the file order, must be used)."""
    templates = SSV2_TEMPLATES[:n_classes]
    names = [t.replace('[', '').replace(']', '') for t in templates]
    table = {n: str(n_classes - 1 - i) for i, n in enumerate(names)}
    ann, vids = _folders(root, 'something_v2', layout, ('labels', '20bn-something-something-v2'))
    _write(os.path.join(ann, 'something-something-v2-labels.json'), json.dumps(table))
    videos, counts, vid = [], {}, 1000
    for phase, n in (('train', n_train), ('validation', n_val)):
        entries = []
        for t in templates:
            for _ in range(n):
                vid += 1
                entries.append({'id': str(vid), 'label': t.lower(), 'template': t, 'placeholders': []})
        _write(os.path.join(ann, f'something-something-v2-{phase}.json'), json.dumps(entries))
        videos += [video(os.path.join(vids, e['id'] + '.webm')) for e in entries]
        counts[phase] = len(entries)
    classes = [n for n, _ in sorted(table.items(), key=lambda kv: int(kv[1]))]
    return _result(classes, counts, [], videos)


JESTER_CLASSES = ['Doing other things', 'Drumming Fingers', 'No gesture', 'Pulling Hand In',
                  'Rolling Hand Forward', 'Shaking Hand', 'Swiping Down', 'Thumb Up']


def _make_frames_csv(root, family, prefix, frames_dir, classes, n_train, n_val, layout):
    ann, vids = _folders(root, family, layout, ('', frames_dir))
    _write(os.path.join(ann, f'{prefix}-labels.csv'), ''.join(f'{c}\n' for c in classes))
    videos, counts, vid = [], {}, 1
    for phase, n in (('train', n_train), ('validation', n_val)):
        rows = []
        for c in classes:
            for _ in range(n):
                rows.append(f'{vid};{c}\n')
                videos.append(frames(os.path.join(vids, str(vid))))
                vid += 1
        _write(os.path.join(ann, f'{prefix}-{phase}.csv'), ''.join(rows))
        counts[phase] = len(rows)
    return _result(list(classes), counts, [], videos)


def make_jester(root, n_classes=6, n_train=1, n_val=6, layout='project'):
    """Jester: ``jester-v1-{labels,train,validation}.csv`` (published: in ``anno/``) and
    ``20bn-jester-v1/<id>/00001.jpg``."""
    return _make_frames_csv(root, 'jester', 'jester-v1', '20bn-jester-v1', JESTER_CLASSES[:n_classes],
                            n_train, n_val, layout)


def make_something_v1(root, n_classes=4, n_train=1, n_val=2, layout='project'):
    """SSv1: ``something-something-v1-*.csv`` (published: in ``anno/``) and
    ``20bn-something-something-v1/<id>/``."""
    classes = [t.replace('[', '').replace(']', '') for t in SSV2_TEMPLATES[:n_classes]]
    return _make_frames_csv(root, 'something_v1', 'something-something-v1', '20bn-something-something-v1',
                            classes, n_train, n_val, layout)


def make_mini_kinetics(k400_root, root, drop=('zumba',)):
    """Mini-Kinetics annotations in ``root`` made from a Kinetics-400 tree at ``k400_root`` (its
    csv rows without the classes in ``drop``; ``label_map.txt`` in reverse order). ``root`` may
    be the Kinetics-400 root itself in the published layout (``anno/minikinetics200/``); in
    the project layout it is its own folder. Returns the class order."""
    published = os.path.isdir(os.path.join(k400_root, 'anno'))
    src = os.path.join(k400_root, PUBLISHED['kinetics_400'][0]) if published else k400_root
    ann = os.path.join(root, 'anno', 'minikinetics200') if published else root
    os.makedirs(ann, exist_ok=True)
    for name in ('train.csv', 'validate.csv'):
        with open(os.path.join(src, name)) as f:
            lines = [l for l in f.read().splitlines() if not l.startswith(tuple(drop))]
        _write(os.path.join(ann, name), '\n'.join(lines) + '\n')
    classes = sorted({l.split(',')[0] for l in lines[1:]}, reverse=True)
    _write(os.path.join(ann, 'label_map.txt'), ''.join(f'{c}\n' for c in classes))
    return classes


# configs/<folder>/ -> (dataset family whose environment variable names the root, builder)
TREES = {
    'k400': ('kinetics_400', make_kinetics),
    'ucf': ('ucf101', make_ucf101),
    'hmdb': ('hmdb51', make_hmdb),
    'diving': ('diving48', make_diving),
    'sthv2-fs': ('something_v2', make_something_v2),
    'jester-fs': ('jester', make_jester),
}


def fake_tree_for(config_path, tmp_path, monkeypatch, **kwargs):
    """Build the fake tree read by ``configs/<folder>/<file>.yaml`` under ``tmp_path`` and set
    its ``DRL_<NAME>_ROOT`` with ``monkeypatch``. Returns the builder's dict plus ``root``."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(config_path)))
    family, builder = TREES[folder]
    root = os.path.join(str(tmp_path), family)
    info = builder(root, **kwargs)
    monkeypatch.setenv(env_name(family), root)
    return dict(info, root=root)
