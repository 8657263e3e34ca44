import os
import random

import numpy as np
import pytest
import torch
import torch.nn as nn

from engine.checkpoint import (
    load_checkpoint,
    load_pretrained,
    rng_state,
    save_checkpoint,
    save_json,
    set_rng_state,
    strip_prefix,
)


class Tiny(nn.Module):
    def __init__(self, n_class=3):
        super().__init__()
        self.body = nn.Linear(4, 5)
        self.head = nn.Linear(5, n_class)


def test_round_trip_and_no_temp_left(tmp_path):
    m = Tiny()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m.head(m.body(torch.randn(2, 4))).sum().backward()
    opt.step()
    path = tmp_path / 'checkpoint.pth.tar'
    save_checkpoint({'state_dict': m.state_dict(), 'optimizer': opt.state_dict(), 'epoch': 3}, str(path))
    assert os.listdir(tmp_path) == ['checkpoint.pth.tar']
    ck = load_checkpoint(str(path))
    m2 = Tiny()
    m2.load_state_dict(ck['state_dict'])
    for a, b in zip(m.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    assert ck['epoch'] == 3 and ck['optimizer']['state']


def test_failed_write_keeps_old_file(tmp_path):
    path = str(tmp_path / 'c.pth.tar')
    save_checkpoint({'epoch': 1}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError('disk full')

    with pytest.raises(RuntimeError):
        save_checkpoint({'epoch': 2, 'bad': Boom()}, path)
    assert load_checkpoint(path)['epoch'] == 1
    assert os.listdir(tmp_path) == ['c.pth.tar']


def test_weights_only_refuses_arbitrary_objects(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'obj': Tiny()}, path)  # a pickled module is not plain weights
    with pytest.raises(RuntimeError, match='cannot read checkpoint'):
        load_checkpoint(path)


def test_truncated_checkpoint_is_reported(tmp_path):
    path = str(tmp_path / 'ck.pth.tar')
    save_checkpoint({'state_dict': Tiny().state_dict()}, path)
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match='ck.pth.tar'):
        load_checkpoint(path)


def test_load_pretrained_resets_head_unless_copy_head(tmp_path):
    src = Tiny(n_class=3)
    path = str(tmp_path / 'p.pth.tar')
    state = {f'module.{k}': v for k, v in src.state_dict().items()}
    save_checkpoint({'state_dict': state}, path)
    dst = Tiny(n_class=7)
    head_before = dst.head.weight.clone()
    load_pretrained(dst, path)
    assert torch.equal(dst.body.weight, src.body.weight)
    assert torch.equal(dst.head.weight, head_before)
    same = Tiny(n_class=3)
    load_pretrained(same, path, copy_head=True)
    assert torch.equal(same.head.weight, src.head.weight)
    with pytest.raises(RuntimeError, match='do not fit'):
        load_pretrained(nn.Sequential(nn.Linear(4, 4)), path)


def test_strip_prefix():
    assert list(strip_prefix({'module._orig_mod.a': 1, 'b': 2})) == ['a', 'b']


def test_rng_state_round_trip():
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_save_json_atomic(tmp_path):
    p = str(tmp_path / 'results.json')
    save_json({'Acc@1': 50.0}, p)
    assert open(p).read().strip().startswith('{')
    assert os.listdir(tmp_path) == ['results.json']


def test_python_rng_state_is_plain_and_old_repr_still_read(tmp_path):
    random.seed(3)
    state = rng_state()
    assert isinstance(state['python'], list) and all(isinstance(x, int) for x in state['python'][1])
    path = str(tmp_path / 'rng.pth.tar')
    save_checkpoint({'rng': state}, path)
    loaded = load_checkpoint(path)['rng']          # weights_only=True accepts it
    a = random.random()
    random.seed(99)
    set_rng_state(loaded)
    assert random.random() == a
    random.seed(3)
    old = dict(state, python=repr(random.getstate()))  # checkpoints before format_version 1
    random.seed(99)
    set_rng_state(old)
    assert random.random() == a


def test_newer_format_version_is_refused(tmp_path):
    from engine.checkpoint import FORMAT_VERSION
    path = str(tmp_path / 'new.pth.tar')
    save_checkpoint({'format_version': FORMAT_VERSION, 'epoch': 1}, path)
    assert load_checkpoint(path)['epoch'] == 1
    save_checkpoint({'format_version': FORMAT_VERSION + 1, 'epoch': 1}, path)
    with pytest.raises(RuntimeError, match=f'format_version {FORMAT_VERSION + 1} is newer'):
        load_checkpoint(path)


def test_copies_are_the_bytes_written_and_in_place_first(tmp_path):
    path, best = str(tmp_path / 'checkpoint.pth.tar'), str(tmp_path / 'model_best.pth.tar')
    save_checkpoint({'epoch': 1, 'w': torch.arange(4)}, path, copies=[best])
    assert open(path, 'rb').read() == open(best, 'rb').read()
    save_checkpoint({'epoch': 2}, path)                       # not best: model_best stays at 1
    assert load_checkpoint(best)['epoch'] == 1 and load_checkpoint(path)['epoch'] == 2
    assert sorted(os.listdir(tmp_path)) == ['checkpoint.pth.tar', 'model_best.pth.tar']
