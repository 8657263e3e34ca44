"""The last user mistakes that ended in a traceback: each is one line now (exit 2; 130 for
Ctrl-C), or a warning where the run may go on. Real runs of main.py on the tiny UCF101 tree."""
import logging
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import yaml

from datasets.base import VideoDataset, VideoRecord
from datasets.checks import LabelError, check_labels
from engine.runner import config_run_name, default_output_dir
from tests.test_main import ROOT, tiny_config, ucf_root  # noqa: F401  (ucf_root is a fixture)

ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


def run(args, cwd=ROOT, timeout=300):
    cmd = [sys.executable, os.path.join(ROOT, 'main.py'), *map(str, args), '-j', '0']
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV,
                          check=False)


def one_line(res, status, *needles):
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == status, res.stderr[-3000:]
    assert len(lines) == 1 and 'Traceback' not in res.stderr, res.stderr[-3000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_ctrl_c_is_one_line_and_the_same_command_resumes(tmp_path, ucf_root):  # noqa: F811
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root, epochs=40)
    out = tmp_path / 'run'
    cmd = [sys.executable, 'main.py', cfg, '--output-dir', str(out), '-j', '0']
    # SIGINT back to its default in the child: a suite started in the background by a
    # non-interactive shell inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpt = out / 'checkpoint.pth.tar'
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)  # into the next epoch
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    res = subprocess.CompletedProcess(cmd, proc.returncode, '', err)
    line = one_line(res, 130, 'interrupted ', f'the last checkpoint is {ckpt} (epoch ',
                    'the same command resumes')
    assert line.startswith('interrupted at epoch ') or line.startswith('interrupted in ')
    # the same command resumes (shortened with --resume-changed: 40 epochs are not needed here)
    again = run([cfg, '--output-dir', out, 'optimizer.epochs=2', '--resume-changed'])
    assert again.returncode == 0, again.stderr[-3000:]


class _Payload:
    """A pickle that would create ``marker`` when unpickled by plain ``pickle``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").close()',)


def test_pickle_payload_as_imagenet_weights_is_refused_in_one_line(tmp_path, ucf_root):  # noqa: F811
    marker, evil = tmp_path / 'pwned', tmp_path / 'resnet18-f37072fd.pth'
    with open(evil, 'wb') as f:
        pickle.dump({'conv1.weight': _Payload(str(marker))}, f)
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    data = yaml.safe_load(open(cfg))
    data['model'] = {'name': 'resnet2d', 'args': {'n_class': 3, 'model_depth': 18, 'pretrained': True,
                                                  'pretrained_path': str(evil)}}
    (tmp_path / 'r2d.yaml').write_text(yaml.safe_dump(data))
    res = run([tmp_path / 'r2d.yaml', '--output-dir', tmp_path / 'run'])
    one_line(res, 2, 'error: cannot read the resnet18 weights', str(evil), 'not a plain weights file')
    assert not marker.exists()


@pytest.mark.parametrize('override, needles', [
    ('optimizer.args.lr=1e-3x', ("config key 'optimizer.args.lr'", "must be a number, got '1e-3x'")),
    ('optimizer.args.lr=-1', ("config key 'optimizer.args'", 'Invalid learning rate: -1')),
    ('optimizer.args.momentun=0.9', ("'optimizer.args.momentun'", "SGD takes no argument 'momentun'")),
    ('optimizer.schedule.args.gamma=half', ("'optimizer.schedule.args.gamma'", 'must be a number')),
    ('criterion.args.label_smoothing=some', ("'criterion.args.label_smoothing'", 'must be a number')),
])
def test_training_numbers_are_checked_before_any_data(tmp_path, override, needles):
    # the dataset root does not exist: a data error would come first if data were touched
    cfg = tiny_config(tmp_path / 'tiny.yaml', tmp_path / 'no-such-root')
    res = run([cfg, '--output-dir', tmp_path / 'run', override])
    one_line(res, 2, *needles)
    assert not (tmp_path / 'run').exists()


def test_output_dir_that_is_a_file_or_under_one(tmp_path, ucf_root):  # noqa: F811
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    f = tmp_path / 'afile'
    f.write_text('x')
    one_line(run([cfg, '--output-dir', f]), 2, f'the run folder {f} is a file, not a folder')
    one_line(run([cfg, '--output-dir', f / 'sub' / 'run']), 2, f'{f} is a file, not a folder',
             '--output-dir')
    assert f.read_text() == 'x'


def test_n_class_smaller_than_the_classes_stops_before_training(tmp_path, ucf_root):  # noqa: F811
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    res = run([cfg, '--output-dir', tmp_path / 'run', 'model.args.n_class=2'])
    one_line(res, 2, 'model.args.n_class=2 but ucf101/train has 3 classes', 'set model.args.n_class: 3')
    assert not (tmp_path / 'run' / 'checkpoint.pth.tar').exists()


def _ds(labels, classes):
    return VideoDataset([VideoRecord(f'/v{i}.mp4', lab, f'v{i}') for i, lab in enumerate(labels)], classes,
                        {'n_frames': 4}, None, train=True)


def test_check_labels(caplog):
    classes = ['a', 'b', 'c', 'd']
    data = {'train': _ds([0, 0, 2], classes), 'test': _ds([1, 3], classes)}
    with caplog.at_level(logging.WARNING, logger='datasets.checks'):
        check_labels(data, 4)
    assert [r.getMessage() for r in caplog.records] == [
        "train: 2 of 4 classes have no training video: 'b', 'd'; the model never sees them in training"]
    with pytest.raises(LabelError, match=r"n_class=3 but train has 4 classes \(labels 0..3\); set "
                                         r"model.args.n_class: 4$"):
        check_labels(data, 3)
    with pytest.raises(LabelError, match=r"n_class=2 but test has 4 classes \(labels 0..3\); e.g. label 3 "
                                         r"\('d'\); set model.args.n_class: 4$"):
        check_labels({'train': _ds([0, 1], ['a', 'b']), 'test': data['test']}, 2)
    check_labels({'train': _ds([0, 1], ['a', 'b'])}, None)


def test_absolute_config_path_names_the_run_folder_by_the_rule(tmp_path, ucf_root):  # noqa: F811
    inside = os.path.join(ROOT, 'configs', 'scenemotion', 'res3d18.yaml')
    assert config_run_name(inside) == config_run_name('configs/scenemotion/res3d18.yaml') == 'scenemotion/res3d18'
    assert config_run_name('/data/exp/my.yaml') == 'my'
    assert default_output_dir(inside) == os.path.join('checkpoints', 'scenemotion', 'res3d18')
    assert default_output_dir('/data/exp/my.yaml', debug=True) == os.path.join('checkpoints', 'my_debug')
    # a real run from another folder with an absolute path outside configs/
    (tmp_path / 'exp').mkdir()
    cfg = tiny_config(tmp_path / 'exp' / 'tiny.yaml', ucf_root, epochs=1)
    work = tmp_path / 'work'
    work.mkdir()
    res = run([os.path.abspath(cfg)], cwd=work)
    assert res.returncode == 0, res.stderr[-3000:]
    out = work / 'checkpoints' / 'tiny'
    assert (out / 'results.json').is_file()
    assert ("default run folder checkpoints/tiny: named after the config file's name (the file is "
            "outside the repository's configs/)") in (out / 'log.txt').read_text()


def test_pretrain_naming_a_folder_says_so_and_lists_its_checkpoints(tmp_path, ucf_root):  # noqa: F811
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    folder = tmp_path / 'weights'
    folder.mkdir()
    one_line(run([cfg, '--output-dir', tmp_path / 'r1', '--pretrain', folder]), 2,
             f'{folder} is a folder, not a checkpoint file', 'it holds no checkpoint file')
    for name in ('checkpoint.pth.tar', 'model_best.pth.tar'):
        (folder / name).write_bytes(b'')
    one_line(run([cfg, '--output-dir', tmp_path / 'r2', '--pretrain', folder]), 2,
             'checkpoint files in it: checkpoint.pth.tar, model_best.pth.tar; give one of them')


def test_model_args_checked_against_the_models_signature():
    from core.config import ConfigError
    from engine.argcheck import check_model_args
    with pytest.raises(ConfigError, match=r"config key 'model.args.dropuot' in x.yaml: resnet3d takes no "
                                          r"argument 'dropuot'; did you mean 'dropout'\?"):
        check_model_args({'model': {'name': 'resnet3d', 'args': {'dropuot': 0.1}}}, 'x.yaml')
    with pytest.raises(ConfigError, match=r"'sp.model.args.dropout' in x.yaml must be a number, got 'lots'"):
        check_model_args({}, 'x.yaml', {'model': {'name': 'resnet2d', 'args': {'dropout': 'lots'}}})
    check_model_args({'model': {'name': 'resnet3d', 'args': {'ret_feat': ['pool'], 'n_class': 5}}}, 'x.yaml')


def test_config_folder_and_negative_workers(tmp_path, ucf_root):  # noqa: F811
    one_line(run([os.path.join(ROOT, 'configs', 'ucf')]), 2, 'is a folder, not a YAML file; configs in it: ')
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root)
    res = subprocess.run([sys.executable, 'main.py', cfg, '--output-dir', str(tmp_path / 'r'), '-j', '-1'],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV, check=False)
    one_line(res, 2, '-j/--workers must be >= 0, got -1')


def test_model_arg_combination_the_constructor_refuses_is_a_user_error():
    from core.errors import UserError
    from models import build_model
    with pytest.raises(UserError, match=r"^model 'resnet2d': .*widen_factor 1.*\(model.args\)$"):
        build_model({'name': 'resnet2d', 'args': {'n_class': 3, 'pretrained': True, 'widen_factor': 0.25}})


def test_pickle_payload_as_torchvision_video_weights_is_refused(tmp_path):
    from core.errors import UserError
    from models import build_model
    marker, evil = tmp_path / 'pwned', tmp_path / 'r3d_18-b3b3357e.pth'
    with open(evil, 'wb') as f:
        pickle.dump({'stem.0.weight': _Payload(str(marker))}, f)
    with pytest.raises(UserError, match='not a plain weights file'):
        build_model({'name': 'r3d_18', 'args': {'n_class': 400, 'pretrained': True, 'pretrained_path': str(evil)}})
    assert not marker.exists()
