"""Every dataset family builds from separate ``dataset.ann_root`` / ``dataset.video_root``
folders, anywhere on disk (the published code's ``_paths.py``), on fake official trees."""
import os
import shutil

import pytest

from datasets import build_dataset
from tests import fake_trees as ft

CLIP = {'n_clips': 1, 'n_frames': 4, 'fps': 8}
TRANSFORM = {'resize': 32, 'crop': 28}
pytestmark = pytest.mark.usefixtures('no_user_roots')  # tests/conftest.py

# family -> (fake tree builder, its splits, few-shot name or None)
FAMILIES = {
    'kinetics_400': (ft.make_kinetics, ('train', 'test'), None),
    'ucf101': (ft.make_ucf101, ('train', 'test'), None),
    'hmdb51': (ft.make_hmdb, ('train', 'test'), 'hmdb_fs'),
    'diving48': (ft.make_diving, ('train', 'test'), None),
    'something_v2': (ft.make_something_v2, ('train', 'test'), None),
    'something_v1': (ft.make_something_v1, ('train', 'test'), None),
    'jester': (ft.make_jester, ('train', 'test'), None),
}


def cfg(name, **dataset):
    return {'dataset': {'name': name, 'transform': TRANSFORM,
                        'args': {'train': dict(CLIP), 'test': dict(CLIP)}, **dataset}, 'seed': 0}


def summary(ds):
    return ds.classes, sorted((r.vid, r.label) for r in ds.records), len(ds.missing)


@pytest.mark.parametrize('family', list(FAMILIES))
@pytest.mark.parametrize('layout', ['project', 'published'])
def test_family_builds_from_separate_annotation_and_video_folders(tmp_path, family, layout):
    make, splits, _ = FAMILIES[family]
    root = tmp_path / 'official'
    make(root, layout=layout)
    want = {s: summary(build_dataset(cfg(family, root=str(root)), s)) for s in splits}
    ann_sub, video_sub = ft._folders(str(root), family, layout, _project_pair(family))
    ann_rel, video_rel = os.path.relpath(ann_sub, root), os.path.relpath(video_sub, root)
    # the two folders moved apart, each under an unrelated name
    ann, videos = tmp_path / 'elsewhere' / 'labels', tmp_path / 'disk2' / 'clips'
    ann.parent.mkdir()
    videos.parent.mkdir()
    if video_rel == '.':  # videos directly in the root: the root becomes the video folder
        shutil.move(str(root), str(videos))
        src = videos
    else:
        shutil.move(video_sub, str(videos))
        src = root
    if ann_rel == '.':  # annotation files directly in the root: they alone move
        ann.mkdir()
        for name in os.listdir(src):
            if os.path.isfile(src / name):
                shutil.move(str(src / name), str(ann / name))
    else:
        shutil.move(str(src / ann_rel), str(ann))
    if root.exists():
        shutil.rmtree(root)
    for s in splits:
        ds = build_dataset(cfg(family, ann_root=str(ann), video_root=str(videos)), s)
        got = summary(ds)
        assert got == want[s], (family, layout, s)
        assert all(r.path.startswith(str(videos)) for r in ds.records)
        assert len(ds) > 0 and 'video' in ds[0]


def _project_pair(family):
    """(annotation folder, video folder) of the project layout in tests/fake_trees.py."""
    return {'kinetics_400': ('', ''), 'ucf101': ('ucfTrainTestlist', 'UCF-101'),
            'hmdb51': ('testTrainMulti_7030_splits', ''), 'diving48': ('', 'rgb'),
            'something_v2': ('labels', '20bn-something-something-v2'),
            'something_v1': ('', '20bn-something-something-v1'), 'jester': ('', '20bn-jester-v1')}[family]


def test_only_one_folder_given_the_other_comes_from_the_root(tmp_path):
    root = tmp_path / 'ucf'
    ft.make_ucf101(root)
    want = summary(build_dataset(cfg('ucf101', root=str(root)), 'train'))
    shutil.move(str(root / 'UCF-101'), str(tmp_path / 'videos'))
    got = build_dataset(cfg('ucf101', root=str(root), video_root=str(tmp_path / 'videos')), 'train')
    assert summary(got) == want
    shutil.move(str(root / 'ucfTrainTestlist'), str(tmp_path / 'lists'))
    shutil.move(str(tmp_path / 'videos'), str(root / 'UCF-101'))
    got = build_dataset(cfg('ucf101', root=str(root), ann_root=str(tmp_path / 'lists')), 'train')
    assert summary(got) == want


def test_mini_kinetics_video_root_is_the_k400_videos(tmp_path):
    k400 = tmp_path / 'k400'
    ft.make_kinetics(k400, layout='published')
    mini = tmp_path / 'mini'
    classes = ft.make_mini_kinetics(str(k400), str(mini))
    for video_root in (k400, k400 / 'video'):  # the K400 root (published) or its video folder
        ds = build_dataset(cfg('mini_kinetics_200', root=str(mini), video_root=str(video_root)), 'train')
        assert ds.classes == classes and len(ds) > 0 and not ds.missing


def test_wrong_folders_are_one_line(tmp_path):
    root = tmp_path / 'd'
    ft.make_diving(root)
    with pytest.raises(FileNotFoundError, match=r'diving48: dataset.video_root .*/nope is not a folder'):
        build_dataset(cfg('diving48', root=str(root), video_root=str(tmp_path / 'nope')), 'train')
    with pytest.raises(FileNotFoundError, match=r'diving48: no Diving48_vocab.json in dataset.ann_root .*rgb'):
        build_dataset(cfg('diving48', ann_root=str(root / 'rgb'), video_root=str(root / 'rgb')), 'train')
