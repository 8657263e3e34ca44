"""Dataset families on fake trees in the official layouts (tests/fake_trees.py): parsing,
class order, split selection, few-shot subsets, data roots, output shapes, and the acceptance
check that the authors' configs build their datasets from a tree found through the environment."""
import json
import logging
import os

import pytest
import yaml

from core.config import fill_defaults, load_config
from datasets import DATASETS, build_dataset
from datasets.fewshot_splits import SHIPPED, base_classes, derive_base, read_class_ids, shipped_path
from datasets.paths import env_name, resolve_root
from tests import fake_trees as ft

CLIP = {'n_clips': 1, 'n_frames': 4, 'fps': 8}
TRANSFORM = {'resize': 32, 'crop': 28, 'hflip': True, 'color_jitter': [0.2, 0.2, 0.2, 0.2],
             'normalize': {'mean': [0.5, 0.5, 0.5], 'std': [0.25, 0.25, 0.25]}}


pytestmark = pytest.mark.usefixtures('no_user_roots')  # tests/conftest.py


def cfg_for(name, root, splits=None, **extra):
    splits = splits or {'train': dict(CLIP), 'test': dict(CLIP)}
    return {'dataset': {'name': name, 'root': None if root is None else str(root), 'transform': TRANSFORM, 'args': splits},
            'seed': 0, **extra}


def labels_by_class(ds):
    """{class name: n records}, checking each record's label against its class folder/name."""
    out = {}
    for r in ds.records:
        out[ds.classes[r.label]] = out.get(ds.classes[r.label], 0) + 1
    return out


# ---------------------------------------------------------------- roots

def test_resolve_root_order_and_errors(tmp_path, monkeypatch):
    dirs = {k: tmp_path / k for k in ('cfg', 'env', 'data', 'file')}
    for d in dirs.values():
        d.mkdir()
    (dirs['data'] / 'kinetics_400').mkdir()
    paths_file = tmp_path / 'paths.yaml'
    paths_file.write_text(yaml.safe_dump({'kinetics_400': str(dirs['file'])}))
    monkeypatch.setenv('DRL_PATHS_FILE', str(paths_file))
    empty = {'dataset': {'root': None}}
    assert resolve_root(empty, 'kinetics_400') == dirs['file']
    monkeypatch.setenv('DRL_DATA_ROOT', str(dirs['data']))
    assert resolve_root(empty, 'kinetics_400') == dirs['data'] / 'kinetics_400'
    monkeypatch.setenv('DRL_KINETICS_400_ROOT', str(dirs['env']))
    assert resolve_root(empty, 'kinetics_400') == dirs['env']
    assert resolve_root({'dataset': {'root': str(dirs['cfg'])}}, 'kinetics_400') == dirs['cfg']
    # an absent folder is an error naming where the path came from
    with pytest.raises(FileNotFoundError, match='DRL_KINETICS_400_ROOT'):
        monkeypatch.setenv('DRL_KINETICS_400_ROOT', str(tmp_path / 'nope'))
        resolve_root(empty, 'kinetics_400')


def test_no_root_error_is_one_line_naming_options(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        build_dataset(cfg_for('kinetics_400', None), 'train')
    msg = str(e.value)
    assert '\n' not in msg and msg.startswith('kinetics_400: no data root')
    for part in ('dataset.root', 'DRL_KINETICS_400_ROOT', 'DRL_DATA_ROOT', 'train.csv'):
        assert part in msg
    assert env_name('something_v2') == 'DRL_SOMETHING_V2_ROOT'


# ---------------------------------------------------------------- Kinetics

def test_kinetics_parse_missing_and_shapes(tmp_path, caplog):
    info = ft.make_kinetics(tmp_path / 'k', n_train=2, n_val=2, n_missing=1)
    cfg = cfg_for('kinetics_400', tmp_path / 'k', {
        'train': dict(CLIP), 'test': dict(CLIP), 'test_final': dict(CLIP, n_clips=3)})
    train = build_dataset(cfg, 'train')
    assert train.classes == ['abseiling', 'air drumming', 'zumba'] == info['classes']
    assert len(train) == 6 and labels_by_class(train) == {c: 2 for c in info['classes']}
    for r in train.records:  # label matches the class folder the video sits in
        assert os.path.basename(os.path.dirname(r.path)) == train.classes[r.label]
        assert r.vid == os.path.basename(r.path)[:-4] and '/train/' in r.path
    with caplog.at_level(logging.WARNING, logger='datasets.paths'):
        test = build_dataset(cfg, 'test')
    assert len(test) == 5 and test.n_annotated == 6 and test.missing == info['missing']
    assert '1 of 6 annotated videos not found' in caplog.text
    assert all('/val/' in r.path for r in test.records)
    item = train[0]
    assert item['video'].shape == (1, 3, 4, 28, 28) and item['label'] == train.labels[0]
    assert item['index'] == 0 and item['vid'] == train.records[0].vid
    assert build_dataset(cfg, 'test_final')[2]['video'].shape == (3, 3, 4, 28, 28)


def test_kinetics_label_map_and_layout_variants(tmp_path):
    root = tmp_path / 'k'
    ft.make_kinetics(root, classes=('zumba', 'air drumming'), n_train=1, n_val=1, label_map=True)
    # flat layout, underscore folder names, `validate/` folder: all accepted
    os.rename(root / 'val', root / 'validate')
    os.rename(root / 'train' / 'air drumming', root / 'train' / 'air_drumming')
    cfg = cfg_for('kinetics_400', root)
    train = build_dataset(cfg, 'train')
    assert train.classes == ['zumba', 'air drumming'] and len(train) == 2 and not train.missing
    assert len(build_dataset(cfg, 'test')) == 2
    # the CVDF release: val.csv and no class folders
    os.rename(root / 'validate.csv', root / 'val.csv')
    for label in ('zumba', 'air drumming'):
        for f in os.listdir(root / 'validate' / label):
            os.rename(root / 'validate' / label / f, root / 'validate' / f)
        os.rmdir(root / 'validate' / label)
    test = build_dataset(cfg, 'test')
    assert len(test) == 2 and sorted(test.labels) == [0, 1] and not test.missing


def test_mini_kinetics_reads_k400_videos(tmp_path, monkeypatch):
    ft.make_kinetics(tmp_path / 'k400', n_train=1, n_val=1)
    mini = tmp_path / 'mini'
    mini.mkdir()
    for name in ('train.csv', 'validate.csv'):  # a subset of the rows: two classes
        lines = (tmp_path / 'k400' / name).read_text().splitlines()
        (mini / name).write_text('\n'.join(l for l in lines if not l.startswith('zumba')) + '\n')
    (mini / 'label_map.txt').write_text('air drumming\nabseiling\n')
    monkeypatch.setenv('DRL_KINETICS_400_ROOT', str(tmp_path / 'k400'))
    ds = build_dataset(cfg_for('mini_kinetics_200', mini), 'train')
    assert ds.classes == ['air drumming', 'abseiling'] and len(ds) == 2 and not ds.missing


# ---------------------------------------------------------------- UCF101 / HMDB51 / Diving48

@pytest.mark.parametrize('split', [1, 2, '03'])
def test_ucf101_splits(tmp_path, split):
    info = ft.make_ucf101(tmp_path / 'u')
    cfg = cfg_for('ucf101', tmp_path / 'u', {'train': dict(CLIP, split=split), 'test': dict(CLIP, split=split)})
    train, test = build_dataset(cfg, 'train'), build_dataset(cfg, 'test')
    n = int(split)
    assert train.classes == info['classes']
    assert len(train) == info['counts'][f'train{n}'] == 12 and len(test) == info['counts'][f'test{n}'] == 6
    assert all(f'_g{n:02d}_' in r.vid for r in test.records)
    assert not any(f'_g{n:02d}_' in r.vid for r in train.records)
    assert labels_by_class(test) == {c: 2 for c in info['classes']}
    odd = [r for r in test.records if 'HandStand' in r.vid]  # official spelling mismatch
    assert odd and all(test.classes[r.label] == 'HandstandPushups' for r in odd)


def test_registered_names():
    """Every family and few-shot variant register_family (and SceneMotion) registers, exactly."""
    assert DATASETS.names() == [
        'diving', 'diving48', 'diving_fs', 'hmdb', 'hmdb51', 'hmdb_fs', 'jester', 'jester_fs',
        'kinetics_400', 'kinetics_400_fs', 'mini_kinetics_200', 'scenemotion', 'something_v1',
        'something_v1_fs', 'something_v2', 'something_v2_fs', 'ucf101', 'ucf101_fs']


def test_ucf101_bad_split(tmp_path):
    ft.make_ucf101(tmp_path / 'u')
    with pytest.raises(ValueError, match='split must be 1, 2 or 3'):
        build_dataset(cfg_for('ucf101', tmp_path / 'u', {'train': dict(CLIP, split=4)}), 'train')


def test_hmdb_tags_splits_and_names(tmp_path):
    info = ft.make_hmdb(tmp_path / 'h', classes=('jump', 'brush_hair', 'cartwheel'))
    assert 'hmdb' in DATASETS and 'hmdb51' in DATASETS
    seen = {}
    for split in (1, 2, 3):
        cfg = cfg_for('hmdb', tmp_path / 'h', {'train': dict(CLIP, split=split), 'test': dict(CLIP, split=split)})
        train, test = build_dataset(cfg, 'train'), build_dataset(cfg, 'test')
        assert train.classes == ['brush_hair', 'cartwheel', 'jump'] == info['classes']
        assert len(train) == info['counts']['train'] and len(test) == info['counts']['test']
        assert not {r.vid for r in train.records} & {r.vid for r in test.records}
        for r in train.records:
            assert os.path.basename(os.path.dirname(r.path)) == train.classes[r.label]
        seen[split] = sorted(r.vid for r in test.records)
    assert seen[1] != seen[2] != seen[3]
    fs = build_dataset(cfg_for('hmdb_fs', tmp_path / 'h', {'novel': dict(CLIP)}), 'novel')
    assert len(fs) == info['counts']['all']  # few-shot novel: every listed video


def test_diving_parse(tmp_path):
    info = ft.make_diving(tmp_path / 'd')
    cfg = cfg_for('diving', tmp_path / 'd')
    train, test = build_dataset(cfg, 'train'), build_dataset(cfg, 'test')
    assert train.classes == info['classes'] and train.classes[1] == 'Back 15som NoTwis PIKE'
    assert len(train) == 8 and len(test) == 4 and labels_by_class(test) == {c: 1 for c in info['classes']}
    assert all(r.vid.startswith('testVid') and r.path.endswith(f'/rgb/{r.vid}.mp4') for r in test.records)
    assert [r.label for r in train.records] == [0, 0, 1, 1, 2, 2, 3, 3]


# ---------------------------------------------------------------- Something / Jester

def test_something_v2_class_index_and_sparse(tmp_path):
    info = ft.make_something_v2(tmp_path / 's', n_classes=3, n_train=1, n_val=2)
    cfg = cfg_for('something_v2', tmp_path / 's', {
        'train': dict(CLIP), 'test': {'n_clips': 3, 'n_frames': 2, 'fps': 8, 'sparse': True}})
    train, test = build_dataset(cfg, 'train'), build_dataset(cfg, 'test')
    assert train.classes == info['classes'] == ['Dropping something into something', 'Closing something',
                                                'Approaching something with your camera']
    ann = json.loads((tmp_path / 's/labels/something-something-v2-validation.json').read_text())
    for r, e in zip(test.records, ann):  # the template without brackets gives the class
        assert r.vid == e['id'] and test.classes[r.label] == e['template'].replace('[', '').replace(']', '')
    assert len(train) == 3 and len(test) == 6 and train.records[0].path.endswith('.webm')
    assert train[0]['video'].shape == (1, 3, 4, 28, 28)
    assert test[0]['video'].shape == (2, 3, 3, 28, 28)  # sparse: n_frames clips of n_clips frames


@pytest.mark.parametrize('name,maker', [('jester', ft.make_jester), ('something_v1', ft.make_something_v1)])
def test_frame_folder_datasets(tmp_path, name, maker):
    info = maker(tmp_path / 'j', n_classes=4, n_train=1, n_val=2)
    cfg = cfg_for(name, tmp_path / 'j')
    train, test = build_dataset(cfg, 'train'), build_dataset(cfg, 'test')
    assert train.classes == info['classes'] and len(train) == 4 and len(test) == 8
    assert all(r.kind == 'frames' and os.path.isdir(r.path) for r in test.records)
    assert labels_by_class(test) == {c: 2 for c in info['classes']}
    assert test[0]['video'].shape == (1, 3, 4, 28, 28)


# ---------------------------------------------------------------- the published code's layout

# dataset name, tree builder, fake_trees.PUBLISHED family, split args (None: train and test),
# {split: info['counts'] key(s) giving its number of videos}
PUBLISHED_CASES = [
    ('kinetics_400', ft.make_kinetics, 'kinetics_400', None, {'train': 'train', 'test': 'val'}),
    ('ucf101', ft.make_ucf101, 'ucf101', None, {'train': 'train1', 'test': 'test1'}),
    ('hmdb', ft.make_hmdb, 'hmdb51', None, {'train': 'train', 'test': 'test'}),
    ('diving', ft.make_diving, 'diving48', None, {'train': 'train', 'test': 'test'}),
    ('something_v2', ft.make_something_v2, 'something_v2', None, {'train': 'train', 'test': 'validation'}),
    ('something_v1', ft.make_something_v1, 'something_v1', None, {'train': 'train', 'test': 'validation'}),
    ('jester', ft.make_jester, 'jester', None, {'train': 'train', 'test': 'validation'}),
    ('kinetics_400_fs', ft.make_kinetics, 'kinetics_400', {'novel': dict(CLIP)}, {'novel': 'val'}),
    ('ucf101_fs', ft.make_ucf101, 'ucf101', {'novel': dict(CLIP)}, {'novel': 'test1'}),
    ('hmdb_fs', ft.make_hmdb, 'hmdb51', {'novel': dict(CLIP)}, {'novel': 'all'}),
    ('diving_fs', ft.make_diving, 'diving48', {'novel': dict(CLIP)}, {'novel': ('train', 'test')}),
    ('something_v2_fs', ft.make_something_v2, 'something_v2', {'novel': dict(CLIP)}, {'novel': 'validation'}),
    ('something_v1_fs', ft.make_something_v1, 'something_v1', {'novel': dict(CLIP)}, {'novel': 'validation'}),
    ('jester_fs', ft.make_jester, 'jester', {'novel': dict(CLIP)}, {'novel': 'validation'}),
]


@pytest.mark.parametrize('name,maker,family,splits,counts', PUBLISHED_CASES,
                         ids=[c[0] for c in PUBLISHED_CASES])
def test_published_layout_builds_every_family(tmp_path, name, maker, family, splits, counts):
    """The published code's folders build the same datasets as the project's, detected
    automatically and when named in the config."""
    pub, proj = tmp_path / 'pub', tmp_path / 'proj'
    info = maker(pub, layout='published')
    assert maker(proj)['classes'] == info['classes']
    video_dir = pub / ft.PUBLISHED[family][1]
    for layout in (None, 'auto', 'published'):
        cfg = cfg_for(name, pub, splits)
        if layout:
            cfg['dataset']['layout'] = layout
        ref = cfg_for(name, proj, splits)
        for split, key in counts.items():
            ds, want = build_dataset(cfg, split), build_dataset(ref, split)
            n = sum(info['counts'][k] for k in ((key,) if isinstance(key, str) else key))
            assert ds.classes == want.classes == info['classes'] and len(ds) == n and not ds.missing
            assert [(r.vid, r.label) for r in ds.records] == [(r.vid, r.label) for r in want.records]
            assert all(r.path.startswith(str(video_dir) + os.sep) for r in ds.records)
    assert build_dataset(cfg, split)[0]['video'].shape == (1, 3, 4, 28, 28)


def test_published_layout_generic_folders(tmp_path):
    """``anno/`` beside ``video/`` (video families) or ``frames/`` (frame folders)."""
    ft.make_something_v2(tmp_path / 's', n_classes=2, n_val=1, layout='published')
    os.rename(tmp_path / 's/20bn-something-something-v2', tmp_path / 's/video')
    ds = build_dataset(cfg_for('something_v2', tmp_path / 's'), 'test')
    assert len(ds) == 2 and all('/s/video/' in r.path for r in ds.records)
    ft.make_jester(tmp_path / 'j', n_classes=2, n_val=1, layout='published')
    os.rename(tmp_path / 'j/20bn-jester-v1', tmp_path / 'j/frames')
    ds = build_dataset(cfg_for('jester', tmp_path / 'j'), 'test')
    assert len(ds) == 2 and all('/j/frames/' in r.path for r in ds.records)
    ft.make_hmdb(tmp_path / 'h', classes=('jump', 'wave'), layout='published')
    os.rename(tmp_path / 'h/testTrainMulti_7030_splits', tmp_path / 'h/anno')
    ds = build_dataset(cfg_for('hmdb', tmp_path / 'h'), 'train')
    assert ds.classes == ['jump', 'wave'] and len(ds) == 4 and not ds.missing


def test_published_layout_mini_kinetics_shares_the_kinetics_root(tmp_path, monkeypatch):
    """One published Kinetics folder holds anno/kinetics400, anno/minikinetics200 and video/."""
    root = tmp_path / 'kinetics'
    ft.make_kinetics(root, n_train=1, n_val=1, layout='published')
    classes = ft.make_mini_kinetics(root, root)
    ds = build_dataset(cfg_for('mini_kinetics_200', root), 'test')
    assert ds.classes == classes == ['air drumming', 'abseiling'] and len(ds) == 2 and not ds.missing
    assert all('/kinetics/video/validate/' in r.path for r in ds.records)
    # its own annotation folder, the videos from the Kinetics-400 root (found through the environment)
    mini = tmp_path / 'mini'
    ft.make_mini_kinetics(root, mini)
    monkeypatch.setenv('DRL_KINETICS_400_ROOT', str(root))
    ds = build_dataset(cfg_for('mini_kinetics_200', mini), 'train')
    assert len(ds) == 2 and not ds.missing and all('/kinetics/video/train/' in r.path for r in ds.records)
    assert len(build_dataset(cfg_for('kinetics_400', root), 'train')) == 3


def test_layout_errors_are_one_line(tmp_path):
    root = tmp_path / 'd'
    root.mkdir()
    cfg = cfg_for('diving', root)
    with pytest.raises(FileNotFoundError) as e:   # nothing there: both layouts named
        build_dataset(cfg, 'train')
    msg = str(e.value)
    assert '\n' not in msg and msg.startswith(f'diving48: no known layout in {root}')
    for part in (f'project layout: no Diving48_vocab.json in {root}/',
                 f'published layout: no Diving48_vocab.json in {root}/anno/', 'docs/datasets.md'):
        assert part in msg
    # published annotations without a video folder
    ft.make_diving(root, n_classes=2, layout='published')
    os.rename(root / 'rgb', root / 'clips')
    with pytest.raises(FileNotFoundError) as e:
        build_dataset(cfg, 'train')
    assert '\n' not in str(e.value)
    assert f'no video folder {root}/rgb/ or {root}/video/' in str(e.value)
    os.rename(root / 'clips', root / 'rgb')
    # the project's files beside the published ones: ambiguous until dataset.layout says
    ft.make_diving(root, n_classes=2)
    with pytest.raises(ValueError) as e:
        build_dataset(cfg, 'train')
    msg = str(e.value)
    assert '\n' not in msg and 'matches the project layout' in msg and 'and the published layout' in msg
    assert 'set dataset.layout: project or published' in msg
    for layout in ('project', 'published'):
        assert len(build_dataset(dict(cfg, dataset=dict(cfg['dataset'], layout=layout)), 'train')) == 4
    # a layout named in the config that is not there
    k = tmp_path / 'k'
    ft.make_kinetics(k, n_train=1, n_val=1)
    with pytest.raises(FileNotFoundError) as e:
        kcfg = cfg_for('kinetics_400', k)
        kcfg['dataset']['layout'] = 'published'
        build_dataset(kcfg, 'train')
    assert '\n' not in str(e.value) and f'{k} is not in the published layout (no train.csv/' in str(e.value)
    assert f'{k}/anno/kinetics400/ or {k}/anno/' in str(e.value) and 'project layout' not in str(e.value)
    with pytest.raises(ValueError, match='dataset.layout must be one of auto, project, published'):
        build_dataset({**cfg, 'dataset': dict(cfg['dataset'], layout='official')}, 'train')


def test_layout_same_annotations_two_video_folders(tmp_path):
    """UCF101's published layout keeps ucfTrainTestlist/: the video folder decides; both
    folders present is ambiguous."""
    root = tmp_path / 'u'
    ft.make_ucf101(root, layout='published')
    cfg = cfg_for('ucf101', root)
    assert all('/u/data/' in r.path for r in build_dataset(cfg, 'train').records)
    (root / 'UCF-101').mkdir()
    with pytest.raises(ValueError, match='matches the project layout .* and the published layout'):
        build_dataset(cfg, 'train')
    pub = dict(cfg, dataset=dict(cfg['dataset'], layout='published'))
    assert all('/u/data/' in r.path for r in build_dataset(pub, 'train').records)


# ---------------------------------------------------------------- few-shot subsets

def test_shipped_class_lists_follow_the_rule():
    for family, (n_classes, sizes) in SHIPPED.items():
        for n in sizes:
            ids = read_class_ids(shipped_path(family, n))
            assert ids == derive_base(n_classes, n) and len(set(ids)) == n
    assert set(derive_base(174, 64)) < set(derive_base(174, 100))  # nested
    assert base_classes('jester', 27, 13) == read_class_ids(shipped_path('jester', 13))
    assert base_classes('jester', 27, [3, 1]) == [1, 3]
    with pytest.raises(ValueError):
        base_classes('jester', 27, [27])


@pytest.mark.parametrize('name,maker', [('something_v2_fs', ft.make_something_v2), ('jester_fs', ft.make_jester)])
def test_fewshot_base_novel(tmp_path, name, maker):
    info = maker(tmp_path / 'r', n_classes=6, n_train=1, n_val=2)
    splits = {'base': dict(CLIP, base_cls=[0, 2, 5]), 'novel': dict(CLIP, base_cls=[0, 2, 5])}
    cfg = cfg_for(name, tmp_path / 'r', splits)
    base, novel = build_dataset(cfg, 'base'), build_dataset(cfg, 'novel')
    names = info['classes']
    assert base.classes == [names[i] for i in (0, 2, 5)]
    assert novel.classes == [names[i] for i in (1, 3, 4)]
    assert len(base) == 3 and len(novel) == 6  # base: train set, novel: validation set
    assert sorted(set(base.labels)) == [0, 1, 2] == sorted(set(novel.labels))
    assert not {r.vid for r in base.records} & {r.vid for r in novel.records}
    again = build_dataset(cfg, 'novel')
    assert [r.vid for r in again.records] == [r.vid for r in novel.records]
    # the authors' configs give no base_cls: novel is every class
    full = build_dataset(cfg_for(name, tmp_path / 'r', {'novel': dict(CLIP)}), 'novel')
    assert full.classes == names and len(full) == 12
    with pytest.raises(ValueError, match='base_cls'):
        build_dataset(cfg_for(name, tmp_path / 'r', {'base': dict(CLIP)}), 'base')


# ---------------------------------------------------------------- the authors' configs

@pytest.mark.parametrize('layout', ['project', 'published'])
@pytest.mark.parametrize('config', ['configs/k400/res3d18.yaml', 'configs/hmdb/res3d18.yaml',
                                    'configs/diving/res3d18.yaml', 'configs/sthv2-fs/res3d18-1shot.yaml'])
def test_configs_build_from_fake_tree(tmp_path, monkeypatch, config, layout):
    info = ft.fake_tree_for(config, tmp_path, monkeypatch, layout=layout)
    cfg = load_config(config)
    assert cfg['dataset'].get('root') is None  # the root comes from the environment
    for split, args in cfg['dataset']['args'].items():
        ds = build_dataset(cfg, split)
        assert ds.classes == info['classes'] and len(ds) > 0 and not ds.missing
        video = ds[0]['video']
        side = cfg['dataset']['transform']['crop']
        if args.get('sparse'):
            assert video.shape == (args['n_frames'], 3, args['n_clips'], side, side)
        else:
            assert video.shape == (args['n_clips'], 3, args['n_frames'], side, side)


def test_every_reference_config_has_a_copy():
    ref = '/work/shared/reference/configs'
    if not os.path.isdir(ref):
        pytest.skip('reference configs not available')
    for folder in ('k400', 'hmdb', 'ucf', 'diving', 'sthv2-fs', 'jester-fs'):
        for name in os.listdir(os.path.join(ref, folder)):
            with open(os.path.join(ref, folder, name)) as f:
                want = fill_defaults(yaml.safe_load(f))   # as loaded: the schema's defaults filled in
            got = load_config(os.path.join('configs', folder, name))
            assert got['dataset'].pop('root') is None
            want['dataset'].pop('root', None)
            assert got == want, f'configs/{folder}/{name} differs from the reference'
