"""Nothing lost, nothing silent: real runs of main.py into run folders that already hold something.

Every refusal is checked the same way: exit status 2, stderr exactly one non-empty line that
starts with ``error:`` (no traceback), and the files of the earlier run byte for byte unchanged.
The runs use the tiny UCF101-format tree and config of ``tests/test_main.py``.
"""
import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.test_main import ROOT, tiny_config, ucf_root  # noqa: F401  (ucf_root is a fixture)

ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}
KEPT = ('results.json', 'checkpoint.pth.tar', 'model_best.pth.tar', 'config.yaml', 'metrics.csv')


def run(args, prefix=(), timeout=300):
    cmd = [*prefix, sys.executable, 'main.py', *map(str, args), '-j', '0']
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=ENV,
                          check=False)


def one_error_line(res, *needles):
    """The run stopped with exit status 2 and one ``error:`` line holding every needle."""
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2, res.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith('error:'), res.stderr[-3000:]
    assert 'Traceback' not in res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def digest(folder):
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in KEPT if (folder / n).exists()}


@pytest.fixture(scope='module')
def finished(tmp_path_factory, ucf_root):  # noqa: F811
    """A finished one-epoch run; tests copy it before touching it."""
    tmp = tmp_path_factory.mktemp('safety')
    cfg = tiny_config(tmp / 'tiny.yaml', ucf_root, epochs=1)
    out = tmp / 'done'
    res = run([cfg, '--output-dir', out])
    assert res.returncode == 0, res.stderr[-3000:]
    return cfg, out


def copy_run(finished, tmp_path, name='run'):
    cfg, out = finished
    dst = tmp_path / name
    shutil.copytree(out, dst)
    return cfg, dst


def hold_lock(folder):
    """A live process holding ``folder``'s lock with the real locking code (``engine.runlock``)."""
    code = ('import sys, time; from engine.runlock import lock_folder; lock_folder(sys.argv[1]); '
            'print("locked", flush=True); time.sleep(600)')
    proc = subprocess.Popen([sys.executable, '-c', code, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'locked'
    return proc


def test_live_folder_refused_then_stale_lock_taken_over(finished, tmp_path):
    cfg, out = copy_run(finished, tmp_path)
    before = digest(out)
    holder = hold_lock(out)
    try:
        line = one_error_line(run([cfg, '--output-dir', out, 'optimizer.epochs=2', '--resume-changed']),
                              f'pid {holder.pid}', str(out), 'in use by a live run')
        assert digest(out) == before, line
    finally:
        holder.send_signal(signal.SIGKILL)   # dies holding it: the .lock file stays behind
        holder.wait()
    assert (out / '.lock').is_file()
    # the dead holder's lock is taken over; --resume-changed with one more epoch and another lr
    # continues from the saved epoch: epoch 1 as it was, epoch 2 at the new schedule's lr
    res = run([cfg, '--output-dir', out, 'optimizer.epochs=2', 'optimizer.args.lr=0.1', '--resume-changed'])
    assert res.returncode == 0, res.stderr[-3000:]
    assert f'took over the lock of a run that is gone (pid {holder.pid}' in res.stdout
    assert 'resumed from' in res.stdout and 'at epoch 1' in res.stdout
    assert not (out / '.lock').exists()
    old = list(csv.DictReader((finished[1] / 'metrics.csv').read_text().splitlines()))
    rows = list(csv.DictReader((out / 'metrics.csv').read_text().splitlines()))
    assert [r['epoch'] for r in rows] == ['1', '2'] and rows[0] == old[0]
    assert float(rows[1]['train_lr']) == pytest.approx(0.1 * 0.5)  # StepLR(step 1, gamma 0.5) at epoch 1


def test_live_folder_under_torchrun_stops_every_rank(finished, tmp_path):
    """Only rank 0 takes the lock; the other rank learns the outcome from it and stops too
    (no rank waits for the others), so the launch ends at once without writing anything."""
    cfg, out = copy_run(finished, tmp_path)
    before = digest(out)
    holder = hold_lock(out)
    try:
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port',
               str(30500 + os.getpid() % 1000), 'main.py', cfg, '--output-dir', str(out), '-j', '0']
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV, check=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert res.returncode != 0
    assert f'error: {out} is in use by a live run (pid {holder.pid}' in res.stderr, res.stderr[-3000:]
    assert digest(out) == before


def test_changed_settings_are_refused(finished, tmp_path, ucf_root):  # noqa: F811
    cfg, out = copy_run(finished, tmp_path)
    before = digest(out)
    other = tiny_config(tmp_path / 'other.yaml', ucf_root, epochs=1, conv1_t_size=3)
    cases = [
        ([cfg, 'optimizer.args.lr=0.1', 'optimizer.schedule.args.gamma=0.1'],
         ['optimizer.args.lr 0.05 → 0.1', 'optimizer.schedule.args.gamma 0.5 → 0.1']),
        ([cfg, 'optimizer.epochs=3'], ['optimizer.epochs 1 → 3']),
        ([other], ['model.args.conv1_t_size (unset) → 3']),            # another config file
    ]
    for args, needles in cases:
        line = one_error_line(run([*args, '--output-dir', out]), str(out), *needles,
                              '--resume-changed', '--no-resume', '--output-dir')
        assert digest(out) == before, line


def test_finished_folder_and_debug(finished, tmp_path):
    cfg, out = copy_run(finished, tmp_path)
    before = digest(out)
    res = run([cfg, '--output-dir', out])
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'finished' in lines[0] and 'nothing to do' in lines[0]
    assert digest(out) == before
    one_error_line(run([cfg, '--output-dir', out, '--debug']), '--debug', str(out), 'not a debug run')
    one_error_line(run([cfg, '--output-dir', out, '--debug', '--no-resume']), 'not a debug run')
    assert digest(out) == before


def test_stale_temporaries_removed_and_evaluate_still_works(finished, tmp_path):
    cfg, out = copy_run(finished, tmp_path)
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    stale = out / f'.checkpoint.pth.tar.tmp{dead.pid}'
    live = out / f'.model_best.pth.tar.tmp{os.getpid()}'   # a live process's: not touched
    stale.write_bytes(b'half a checkpoint')
    live.write_bytes(b'being written')
    acc = json.loads((out / 'results.json').read_text())['Acc@1']
    res = run([cfg, '--output-dir', out, '-e'])
    assert res.returncode == 0, res.stderr[-3000:]
    assert not stale.exists() and live.exists()
    assert f'removed temporary files of a killed run: {stale.name}' in (out / 'log.txt').read_text()
    assert json.loads((out / 'results.json').read_text())['Acc@1'] == pytest.approx(acc)


def test_non_finite_loss_names_the_last_good_checkpoint(tmp_path, ucf_root):  # noqa: F811
    # a real divergence: epoch 1 trains at lr 0.05, then StepLR multiplies the lr by 1e30
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root, epochs=2)
    out = tmp_path / 'run'
    res = run([cfg, '--output-dir', out, 'optimizer.schedule.args.gamma=1.0e+30'])
    ckpt = out / 'checkpoint.pth.tar'
    one_error_line(res, 'training diverged', 'at epoch 2', f'{ckpt} (epoch 1)', 'lower the learning rate',
                   '--amp off')
    assert not (out / 'results.json').exists()
    from engine.checkpoint import load_checkpoint
    assert load_checkpoint(str(ckpt))['epoch'] == 1


def _can_mount_tmpfs(tmp_path):
    probe = tmp_path / 'probe'
    probe.mkdir()
    try:
        r = subprocess.run(['unshare', '--user', '--map-root-user', '--mount', 'mount', '-t', 'tmpfs',
                            '-o', 'size=1m', 'tmpfs', str(probe)], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def test_full_disk_is_one_line(tmp_path, ucf_root):  # noqa: F811
    """A real full disk: the run folder is a 2 MiB tmpfs, mounted in a private user + mount
    namespace (``unshare``; no root needed, nothing mounted outside the child). config.yaml and
    log.txt fit, the first checkpoint (about 7 MiB) does not, so ``torch.save`` meets ENOSPC in
    the real save path. RLIMIT_FSIZE would give EFBIG and /dev/full cannot be a folder, so
    neither would exercise the same path."""
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip('cannot mount a tmpfs in a user namespace here (unshare)')
    cfg = tiny_config(tmp_path / 'tiny.yaml', ucf_root, epochs=1)
    out = tmp_path / 'full'
    out.mkdir()
    script = 'mount -t tmpfs -o size=2m tmpfs "$0" && exec "$@"'
    cmd = ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', script, str(out),
           sys.executable, 'main.py', cfg, '--output-dir', str(out), '-j', '0']
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV, check=False)
    one_error_line(res, 'no space left on device while writing', str(out / 'checkpoint.pth.tar'))


def test_results_json_is_strict_json(tmp_path):
    from engine.checkpoint import save_json
    path = tmp_path / 'results.json'
    save_json({'Acc@1': float('nan'), 'loss': float('inf'), 'per_class': [1.0, float('-inf')],
               'nested': {'kl': float('nan'), 'n': 3}}, str(path))
    def refuse(name):
        raise ValueError(f'bare {name} in results.json')
    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data == {'Acc@1': None, 'loss': None, 'per_class': [1.0, None], 'nested': {'kl': None, 'n': 3}}


def test_full_disk_while_logging_is_one_line(tmp_path, capsys):
    """log.txt on a full device (a symlink to /dev/full, whose writes fail with ENOSPC): the
    run stops with one line instead of logging's traceback per record."""
    import logging

    from engine.logging_utils import setup_logging
    from engine.runner import run_entry
    os.symlink('/dev/full', tmp_path / 'log.txt')

    def main(args):
        setup_logging(str(tmp_path))
        logging.getLogger('drl').info('epoch 1 done')

    try:
        with pytest.raises(SystemExit) as stop:
            run_entry(main, None)
    finally:
        setup_logging(None)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == f'error: no space left on device while writing {tmp_path / "log.txt"}', err


def test_compared_keys_and_message():
    from engine.resume_check import describe, differences, run_identity
    cfg = {'dataset': {'num_workers': 4, 'root': '/a', 'batch_size': 8}, 'seed': 1,
           'optimizer': {'epochs': 2, 'args': {'lr': 0.1}}}
    old = run_identity(cfg, None, 'main.py', 1, False)
    moved = dict(cfg, dataset={'num_workers': 0, 'root': '/b', 'batch_size': 8})
    assert differences(old, run_identity(moved, None, 'main.py', 1, False)) == []   # locations, workers
    new = run_identity(dict(cfg, optimizer={'epochs': 3, 'args': {'lr': 0.1, 'wd': 1e-4}}), {'shuffle': True},
                       'main-drl-dir.py', 5, True)
    diffs = differences(old, new)
    assert [k for k, _, _ in diffs] == ['debug', 'optimizer.args.wd', 'optimizer.epochs', 'script', 'seed']
    # a checkpoint without a DRL config (main.py) is not compared on sp.* keys
    text = describe(diffs + [('x', 1, 2)])
    assert text.startswith('debug False → True, optimizer.args.wd (unset) → 0.0001, optimizer.epochs 2 → 3, '
                           "script 'main.py' → 'main-drl-dir.py', seed 1 → 5") and text.endswith('… (+1 more)')
