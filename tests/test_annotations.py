"""Malformed annotation files end in one line naming the file and the row (docs/bad-input.md,
"Annotations"): every family's reader, each kind of malformation, written into a fake tree in
the official format (tests/fake_trees.py), and one end-to-end run of main.py."""
import logging
import os
import re
import subprocess
import sys

import pytest

from core.errors import AnnotationError, UserError
from datasets import build_dataset
from tests import fake_trees as ft
from tests.test_main import ROOT, tiny_config

CLIP = {'n_clips': 1, 'n_frames': 4, 'fps': 8}
TRANSFORM = {'resize': 32, 'crop': 28}

# family -> (builder, its keyword arguments): small trees, built once for the module
TREES = {
    'ucf101': (ft.make_ucf101, {}),
    'hmdb51': (ft.make_hmdb, {'classes': ('jump', 'run'), 'n_per_tag': 1}),
    'kinetics_400': (ft.make_kinetics, {'n_train': 1, 'n_val': 1}),
    'something_v2': (ft.make_something_v2, {'n_classes': 2, 'n_train': 1, 'n_val': 1}),
    'something_v1': (ft.make_something_v1, {'n_classes': 2, 'n_train': 1, 'n_val': 1}),
    'jester': (ft.make_jester, {'n_classes': 2, 'n_train': 1, 'n_val': 1}),
    'diving48': (ft.make_diving, {'n_classes': 2, 'n_train': 1, 'n_test': 1}),
}
UCF, SS1, JES = 'ucfTrainTestlist/', 'something-something-v1-', 'jester-v1-'
SS2 = 'labels/something-something-v2-'
ENTRY = '{"id": "%s", "template": "%s"}'
DIVE = '{"vid_name": "v%d", "label": %s}'

# (case id, dataset name, split read, file (relative to the root), content, where the message points)
CASES = [
    ('ucf-classind-too-few-columns', 'ucf101', 'train', UCF + 'classInd.txt',
     '1 ApplyEyeMakeup\n2\n3 HandstandPushups\n', ':2:'),
    ('ucf-classind-bad-integer', 'ucf101', 'train', UCF + 'classInd.txt',
     '1 ApplyEyeMakeup\nII Archery\n3 HandstandPushups\n', ':2:'),
    ('ucf-classind-empty', 'ucf101', 'train', UCF + 'classInd.txt', '\n', ':1:'),
    ('ucf-classind-encoding', 'ucf101', 'train', UCF + 'classInd.txt',
     b'1 ApplyEyeMakeup\n2 Arch\xe9ry\n', ':2:'),
    ('ucf-trainlist-too-few-columns', 'ucf101', 'train', UCF + 'trainlist01.txt',
     'Archery/v_Archery_g02_c01.avi 2\n\nArchery/v_Archery_g02_c02.avi\n', ':3:'),
    ('ucf-trainlist-bad-integer', 'ucf101', 'train', UCF + 'trainlist01.txt',
     'Archery/v_Archery_g02_c01.avi 2\nArchery/v_Archery_g02_c02.avi two\n', ':2:'),
    ('ucf-trainlist-unknown-class', 'ucf101', 'train', UCF + 'trainlist01.txt',
     'Archery/v_Archery_g02_c01.avi 2\nBowling/v_Bowling_g02_c01.avi 2\n', ':2:'),
    ('ucf-testlist-empty', 'ucf101', 'test', UCF + 'testlist01.txt', '', ':1:'),
    ('hmdb-too-few-columns', 'hmdb51', 'train', 'testTrainMulti_7030_splits/jump_test_split1.txt',
     'a.avi 1\nb.avi\n', ':2:'),
    ('hmdb-bad-integer', 'hmdb51', 'train', 'testTrainMulti_7030_splits/jump_test_split1.txt',
     'a.avi 1\nb.avi one\n', ':2:'),
    ('hmdb-unknown-tag', 'hmdb51', 'test', 'testTrainMulti_7030_splits/run_test_split1.txt',
     'a.avi 1 \nb.avi 2 \nc.avi 7 \n', ':3:'),
    ('hmdb-empty', 'hmdb51', 'test', 'testTrainMulti_7030_splits/run_test_split1.txt', '', ':1:'),
    ('kinetics-too-few-columns', 'kinetics_400', 'train', 'train.csv',
     'label,youtube_id,time_start,time_end,split\nzumba,ytA,0,10,train\nzumba,ytB\n', ':3:'),
    ('kinetics-bad-integer', 'kinetics_400', 'train', 'train.csv',
     'label,youtube_id,time_start,time_end,split\nzumba,ytA,0,10,train\nzumba,ytB,ten,20,train\n', ':3:'),
    ('kinetics-bad-header', 'kinetics_400', 'train', 'train.csv',
     'label,id,start,end\nzumba,ytA,0,10\n', ':1:'),
    ('kinetics-empty', 'kinetics_400', 'train', 'train.csv', '', ':1:'),
    ('kinetics-header-only', 'kinetics_400', 'test', 'validate.csv',
     'label,youtube_id,time_start,time_end,split\n', ':1:'),
    ('kinetics-label-map-empty', 'kinetics_400', 'train', 'label_map.txt', '\n\n', ':1:'),
    ('ssv2-labels-json-syntax', 'something_v2', 'train', SS2 + 'labels.json',
     '{"Closing something": "0",\n "Opening something" "1"}', ':2:'),
    ('ssv2-labels-bad-integer', 'something_v2', 'train', SS2 + 'labels.json',
     '{"Approaching something with your camera": "0", "Closing something": "one"}', 'entry 2'),
    ('ssv2-labels-not-an-object', 'something_v2', 'train', SS2 + 'labels.json',
     '["Closing something"]', ':1:'),
    ('ssv2-entry-too-few-columns', 'something_v2', 'train', SS2 + 'train.json',
     '[' + ENTRY % (1, 'Closing [something]') + ', {"id": "2"}]', 'entry 2'),
    ('ssv2-entry-unknown-class', 'something_v2', 'train', SS2 + 'train.json',
     '[' + ENTRY % (1, 'Closing [something]') + ', ' + ENTRY % (2, 'Juggling [something]') + ']', 'entry 2'),
    ('ssv2-entry-not-an-object', 'something_v2', 'train', SS2 + 'train.json',
     '[' + ENTRY % (1, 'Closing [something]') + ', "2"]', 'entry 2'),
    ('ssv2-train-json-syntax', 'something_v2', 'train', SS2 + 'train.json',
     '[\n' + ENTRY % (1, 'Closing [something]') + ',\n', ':3:'),
    ('ssv2-validation-empty', 'something_v2', 'test', SS2 + 'validation.json', '', ':1:'),
    ('ssv2-validation-empty-list', 'something_v2', 'test', SS2 + 'validation.json', '[]', ':1:'),
    ('ssv2-validation-not-a-list', 'something_v2', 'test', SS2 + 'validation.json', '{"id": "3"}', ':1:'),
    ('ssv1-too-few-columns', 'something_v1', 'train', SS1 + 'train.csv', '1;Closing something\n2\n', ':2:'),
    ('ssv1-unknown-class', 'something_v1', 'train', SS1 + 'train.csv',
     '1;Closing something\n2;Juggling something\n', ':2:'),
    ('ssv1-labels-empty', 'something_v1', 'train', SS1 + 'labels.csv', '', ':1:'),
    ('jester-too-many-columns', 'jester', 'test', JES + 'validation.csv', '1;No gesture;x\n', ':1:'),
    ('jester-unknown-class', 'jester', 'test', JES + 'validation.csv', '1;Drumming Fingers\n\n2;Waving\n', ':3:'),
    ('jester-empty', 'jester', 'test', JES + 'validation.csv', '', ':1:'),
    ('jester-encoding', 'jester', 'test', JES + 'validation.csv', b'1;Drumming Fingers\n2;Dr\xfcmming\n', ':2:'),
    ('diving-too-few-columns', 'diving48', 'train', 'Diving48_V2_train.json',
     '[' + DIVE % (1, 0) + ', {"vid_name": "v2"}]', 'entry 2'),
    ('diving-bad-integer', 'diving48', 'train', 'Diving48_V2_train.json',
     '[' + DIVE % (1, 0) + ', ' + DIVE % (2, '"one"') + ']', 'entry 2'),
    ('diving-unknown-class', 'diving48', 'test', 'Diving48_V2_test.json',
     '[' + DIVE % (1, 0) + ', ' + DIVE % (2, 48) + ']', 'entry 2'),
    ('diving-vocab-json-syntax', 'diving48', 'train', 'Diving48_vocab.json',
     '[["Back", "15som"],\n ["Back" "25som"]]', ':2:'),
    ('diving-vocab-not-a-list', 'diving48', 'train', 'Diving48_vocab.json', '{"Back": 0}', ':1:'),
    ('diving-train-empty', 'diving48', 'train', 'Diving48_V2_train.json', ' \n', ':1:'),
]


pytestmark = pytest.mark.usefixtures('no_user_roots')  # tests/conftest.py


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    """{family: root} of small fake trees (built lazily, once)."""
    base, built = tmp_path_factory.mktemp('ann'), {}

    def get(family):
        if family not in built:
            builder, kwargs = TREES[family]
            builder(str(base / family), **kwargs)
            built[family] = base / family
        return built[family]
    return get


def cfg_for(name, root, **split_args):
    return {'dataset': {'name': name, 'root': str(root), 'transform': TRANSFORM,
                        'args': {s: dict(CLIP, **split_args) for s in ('train', 'test')}}, 'seed': 0}


def replaced(path, content):
    """Write ``content`` into ``path``; returns a function restoring the file as it was."""
    old = path.read_bytes() if path.exists() else None
    path.write_bytes(content.encode() if isinstance(content, str) else content)

    def restore():
        if old is None:
            path.unlink()
        else:
            path.write_bytes(old)
    return restore


def check_message(err, path, where):
    msg = str(err)
    assert isinstance(err, AnnotationError) and isinstance(err, UserError)
    at = where if where.startswith(':') else f': {where}:'   # <file>:<line>: or <file>: entry <n>:
    assert '\n' not in msg and msg.startswith(f'{path}{at}') and '(expected ' in msg, msg
    return msg


@pytest.mark.parametrize('case,name,split,rel,content,where', CASES, ids=[c[0] for c in CASES])
def test_malformed_annotation_is_one_line(roots, case, name, split, rel, content, where):
    root = roots(name)
    restore = replaced(root / rel, content)
    try:
        with pytest.raises(AnnotationError) as e:
            build_dataset(cfg_for(name, root), split)
    finally:
        restore()
    msg = check_message(e.value, root / rel, where)
    if 'json-syntax' in case:  # line and column of the JSONDecodeError
        assert re.search(re.escape(where) + r'\d+: invalid JSON: ', msg), msg
    assert build_dataset(cfg_for(name, root), split).records  # the restored file parses again


def test_json_syntax_error_names_line_and_column(roots):
    root = roots('something_v2')
    path = root / (SS2 + 'labels.json')
    restore = replaced(path, '{"Closing something": "0",\n   "Opening something" "1"}')
    try:
        with pytest.raises(AnnotationError) as e:
            build_dataset(cfg_for('something_v2', root), 'train')
    finally:
        restore()
    assert f'{path}:2:24: invalid JSON: Expecting \':\' delimiter' in str(e.value)


def test_kinetics_unknown_label_is_dropped_with_a_counted_warning(roots, caplog):
    """Kinetics keeps its documented rule (rows whose label is not a class are dropped, e.g.
    with a partial label_map.txt), now with a counted warning naming the file and a label."""
    root = roots('kinetics_400')
    restore = replaced(root / 'label_map.txt', 'zumba\nair drumming\n')
    try:
        with caplog.at_level(logging.WARNING, logger='datasets.kinetics'):
            ds = build_dataset(cfg_for('kinetics_400', root), 'train')
    finally:
        restore()
    assert ds.classes == ['zumba', 'air drumming'] and len(ds) == 2
    assert f"{root / 'train.csv'}: 1 of 3 rows have a label that is not a class (dropped), e.g. 'abseiling'" \
        in caplog.text


def test_fewshot_class_id_file(roots, tmp_path):
    root = roots('ucf101')
    ids = tmp_path / 'base.txt'
    for content, where in (('# base classes\n0\nx\n', ':3:'), ('# nothing\n', ':1:')):
        ids.write_text(content)
        cfg = cfg_for('ucf101_fs', root, base_cls=str(ids))
        with pytest.raises(AnnotationError) as e:
            build_dataset(cfg, 'train')
        check_message(e.value, ids, where)
    ids.write_text('# base classes\n0\n2\n')
    assert build_dataset(cfg_for('ucf101_fs', root, base_cls=str(ids), subset='base'), 'train').classes == \
        ['ApplyEyeMakeup', 'HandstandPushups']


def test_main_reports_a_malformed_file_in_one_line(roots, tmp_path):
    root = roots('ucf101')
    path = root / UCF / 'classInd.txt'
    restore = replaced(path, '1 ApplyEyeMakeup\n2\n3 HandstandPushups\n')
    try:
        cfg = tiny_config(tmp_path / 'tiny.yaml', root)
        res = subprocess.run([sys.executable, 'main.py', cfg, '--output-dir', str(tmp_path / 'run'), '-j', '0'],
                             cwd=ROOT, capture_output=True, text=True, timeout=300,
                             env={**os.environ, 'OMP_NUM_THREADS': '1'})
    finally:
        restore()
    assert res.returncode == 2, res.stderr[-3000:]
    assert 'Traceback' not in res.stderr
    errors = [l for l in res.stderr.splitlines() if l.startswith('error:')]
    assert len(errors) == 1 and f'{path}:2: ' in errors[0], res.stderr[-3000:]
