"""tools/bias_card.py end to end (a tiny SceneMotion resnet3d with every measure, a torchvision
r3d_18 with random weights) and each bad input: one line on stderr, exit status 2."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torchvision
import yaml

from core.config import load_config
from engine.checkpoint import save_checkpoint
from models import build_model
from tests.test_main import tiny_config, ucf_root  # noqa: F401 (fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
import bias_card  # noqa: E402

CFG = 'configs/scenemotion/res3d18.yaml'
TV = 'configs/scenemotion/tv-r3d18.yaml'
HF = 'configs/scenemotion/hf-videomae.yaml'
TINY = ['dataset.scenemotion.size=32', 'dataset.scenemotion.n_frames=4', 'dataset.scenemotion.n_train=8',
        'dataset.scenemotion.n_val=16', 'dataset.scenemotion.n_transfer_train=8',
        'dataset.scenemotion.n_transfer_test=8', 'dataset.scenemotion.n_novel=6', 'dataset.args.train.n_frames=4',
        'dataset.args.test.n_frames=4', 'dataset.args.test_final.n_frames=4', 'dataset.transform.resize=32',
        'dataset.transform.crop=32', 'dataset.num_workers=0', 'dataset.batch_size=8']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """Overrides of a tiny SceneMotion (generated once for the module) and a random resnet3d checkpoint."""
    base = tmp_path_factory.mktemp('card')
    over = TINY + [f'dataset.scenemotion.cache_dir={base / "cache"}']
    cfg = load_config(os.path.join(ROOT, CFG), over)
    torch.manual_seed(0)
    ckpt = base / 'r3d' / 'checkpoint.pth.tar'
    save_checkpoint({'state_dict': build_model(cfg['model']).state_dict(), 'epoch': 1, 'config': cfg}, str(ckpt))
    return over, ckpt


def card(args, **kw):
    return subprocess.run([sys.executable, 'tools/bias_card.py', *args, '--device', 'cpu'], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env=ENV, **kw)


def check_doc(out, measures):
    doc = json.loads((out / 'bias_card.json').read_text())
    assert doc['schema'] == 'bias_card/1' and list(doc['measures']) == list(measures)
    for name, m in doc['measures'].items():
        assert isinstance(m['value'], float) and 'per_class' in m and m['split'], name
        assert m['ci95'] is None or len(m['ci95']) == 2, name
    assert (out / 'bias_card.png').stat().st_size > 5000
    md = (out / 'bias_card.md').read_text()
    assert '| measure | quantity | value | 95 % CI | floor |' in md and '## Per class' in md and '## Reading' in md
    return doc


def test_card_scenemotion_every_measure(tiny, tmp_path):
    over, ckpt = tiny
    out = tmp_path / 'card'
    r = card([CFG, *over, '--pretrain', str(ckpt), '--output-dir', str(out),
              '--static-reference', str(ckpt), '--mimic-epochs', '1'])
    assert r.returncode == 0, r.stderr[-3000:]
    doc = check_doc(out, ('dynamic', 'temporality', 'conflict', 'representation'))
    m = doc['measures']
    assert m['temporality']['n'] == 16 and m['temporality']['split'] == 'test'
    assert len(m['temporality']['per_class']) == 8 and len(m['temporality']['frozen_curve']) == 4
    assert m['conflict']['weight'] == 0.5
    assert m['representation']['approximation'] is False           # SceneMotion: re-rendered scenes
    assert 0.0 <= m['dynamic']['value'] <= 1.0 and 'floor' in m['dynamic']
    assert 'transfer' in m['dynamic']['split']                      # docs/drl.md, "Where to score"
    assert set(doc['per_class']) == set(doc['classes'])
    assert 'contrasted accuracy' in r.stdout


def test_card_torchvision_r3d18_random_weights(tiny, tmp_path):
    over, _ = tiny
    torch.manual_seed(0)
    ckpt = tmp_path / 'r3d_18.pth'
    torch.save(torchvision.models.video.r3d_18(num_classes=8).state_dict(), ckpt)
    out = tmp_path / 'card'
    r = card([TV, *over, '--pretrain', str(ckpt), '--output-dir', str(out), '--measures', 'temporality',
              'conflict', 'representation', '--feature-layer', 'layer3', '--blend', '0.3'])
    assert r.returncode == 0, r.stderr[-3000:]
    doc = check_doc(out, ('temporality', 'conflict', 'representation'))
    assert doc['model'] == 'r3d_18' and doc['measures']['representation']['layer'] == 'layer3'
    assert doc['measures']['representation']['dim'] == 256            # layer3 channels of r3d_18
    assert doc['measures']['conflict']['weight'] == 0.3


def test_card_hugging_face_videomae_random_weights(tiny, tmp_path):
    """A Hugging Face video transformer (``hf_video``, an inline VideoMAE config, random weights):
    every measure; its 2-frame tubelets are noted beside the shuffled-clip figures."""
    over, _ = tiny
    over = over + ['model.args.config.image_size=32', 'model.args.config.num_frames=4',
                   'model.args.config.hidden_size=32', 'model.args.config.num_hidden_layers=1',
                   'model.args.config.intermediate_size=64']
    cfg = load_config(os.path.join(ROOT, HF), over)
    torch.manual_seed(0)
    ckpt = tmp_path / 'videomae' / 'checkpoint.pth.tar'
    save_checkpoint({'state_dict': build_model(cfg['model']).state_dict(), 'epoch': 1, 'config': cfg}, str(ckpt))
    out = tmp_path / 'card'
    r = card([HF, *over, '--pretrain', str(ckpt), '--output-dir', str(out), '--mimic-epochs', '1'])
    assert r.returncode == 0, r.stderr[-3000:]
    doc = check_doc(out, ('dynamic', 'temporality', 'conflict', 'representation'))
    assert doc['model'] == 'hf_video' and doc['tubelet_size'] == 2
    assert doc['measures']['representation']['dim'] == 32               # the transformer's hidden size
    assert any('2-frame tubelets' in n for n in doc['notes'])
    assert '†' in (out / 'bias_card.md').read_text()


def test_card_tsm_on_ucf101(tmp_path, ucf_root):  # noqa: F811
    """Another model family (TSM, random weights) on another dataset family (a UCF101 tree in its
    official layout): the dynamic score trains its mimic on the config's train split and scores
    test_final; the representation measure's dynamic pairs are the documented approximation."""
    cfg = yaml.safe_load(open(tiny_config(tmp_path / 'tiny.yaml', ucf_root)))
    cfg['model'] = {'name': 'tsm', 'args': {'n_class': 3, 'arch': 'resnet18', 'pretrained': False,
                                            'num_segments': 4, 'shift_div': 8, 'dropout': 0.0}}
    (tmp_path / 'tiny.yaml').write_text(yaml.safe_dump(cfg))
    torch.manual_seed(0)
    ckpt = tmp_path / 'tsm.pth.tar'
    resolved = load_config(str(tmp_path / 'tiny.yaml'))
    save_checkpoint({'state_dict': build_model(resolved['model']).state_dict(), 'epoch': 1, 'config': resolved},
                    str(ckpt))
    out = tmp_path / 'card'
    r = card([str(tmp_path / 'tiny.yaml'), '--pretrain', str(ckpt), '--output-dir', str(out), '--mimic-epochs', '1'])
    assert r.returncode == 0, r.stderr[-3000:]
    doc = check_doc(out, ('dynamic', 'temporality', 'conflict', 'representation'))
    m = doc['measures']
    assert doc['model'] == 'tsm' and doc['classes'] == ['ApplyEyeMakeup', 'Archery', 'HandstandPushups']
    assert m['dynamic']['split'] == 'test_final' and m['dynamic']['train_splits'] == ['train']
    assert m['representation']['approximation'] is True and m['temporality']['split'] == 'test'


def test_card_strong_mimic_recipe(tiny, tmp_path):
    """--mimic-recipe strong trains the mimic on random crops and blends labelled online; with
    --mimic-epochs 1 its all-frame end is cut to that one epoch; the card notes the recipe. Two
    mimic seeds: the table gets their CI, the json the spread's two parts."""
    over, ckpt = tiny
    out = tmp_path / 'card'
    r = card([CFG, *over, '--pretrain', str(ckpt), '--output-dir', str(out), '--measures', 'dynamic',
              '--mimic-recipe', 'strong', '--mimic-epochs', '1', '--mimic-seeds', '2'])
    assert r.returncode == 0, r.stderr[-3000:]
    doc = check_doc(out, ('dynamic',))
    d = doc['measures']['dynamic']
    assert len(d['per_seed']) == 2 and d['sd_mimic_videos'] is not None and d['sd_mimic_shared'] is not None
    assert '| CI over its 2 mimic seeds |' in (out / 'bias_card.md').read_text()
    assert (d['recipe']['crop'], d['recipe']['mix'], d['recipe']['epochs'], d['recipe']['full_epochs']) == \
        ('random', 0.5, 1, 1)
    assert d['recipe_overrides'] == {'crop': 'random', 'mix': 0.5, 'epochs': 1, 'full_epochs': 1}
    assert any('differs from the calibrated one' in n for n in doc['notes'])


def test_mimic_overrides_of_the_flags():
    p = bias_card.get_args_parser()
    parse = lambda *a: bias_card.mimic_overrides(p.parse_args([CFG, '--pretrain', 'x', *a]))  # noqa: E731
    assert parse() is None
    assert parse('--mimic-epochs', '5') == {'epochs': 5}
    assert parse('--mimic-recipe', 'strong') == {'crop': 'random', 'mix': 0.5, 'epochs': 48, 'full_epochs': 4}
    assert parse('--mimic-recipe', 'strong', '--mimic-epochs', '2')['epochs'] == 2


def bad(capsys, argv):
    """Run the tool in this process; returns its stderr line (exit status 2 checked)."""
    args = bias_card.get_args_parser().parse_intermixed_args(argv + ['--device', 'cpu'])
    with pytest.raises(SystemExit) as e:
        bias_card.run_entry(bias_card.main, args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: '), err
    return err[0]


def test_bad_blend_weight(tiny, tmp_path, capsys):
    over, ckpt = tiny
    for w in ('0', '1.5'):
        line = bad(capsys, [CFG, *over, '--pretrain', str(ckpt), '--output-dir', str(tmp_path), '--blend', w])
        assert f'--blend {float(w)}' in line and '(0, 1)' in line


def test_bad_mimic_seeds(tiny, tmp_path, capsys):
    over, ckpt = tiny
    line = bad(capsys, [CFG, *over, '--pretrain', str(ckpt), '--output-dir', str(tmp_path), '--mimic-seeds', '0'])
    assert '--mimic-seeds 0' in line


def test_bad_checkpoint_for_the_config(tiny, tmp_path, capsys):
    over, _ = tiny
    ckpt = tmp_path / 'r3d_18.pth'
    torch.save(torchvision.models.video.r3d_18(num_classes=8).state_dict(), ckpt)
    line = bad(capsys, [CFG, *over, '--pretrain', str(ckpt), '--output-dir', str(tmp_path / 'o'),
                        '--measures', 'temporality'])
    assert str(ckpt) in line


def test_bad_feature_layer_lists_the_layers(tiny, tmp_path, capsys):
    over, ckpt = tiny
    line = bad(capsys, [CFG, *over, '--pretrain', str(ckpt), '--output-dir', str(tmp_path / 'o'),
                        '--measures', 'representation', '--feature-layer', 'layer9'])
    assert "'layer9'" in line and 'pool' in line and 'layer4' in line


def test_bad_split_with_one_class(tiny, tmp_path, capsys):
    over, _ = tiny
    over = [o for o in over if 'cache_dir' not in o and 'n_val' not in o]
    over += [f'dataset.scenemotion.cache_dir={tmp_path / "cache"}', 'dataset.scenemotion.n_val=1']
    cfg = load_config(os.path.join(ROOT, CFG), over)
    ckpt = tmp_path / 'c.pth.tar'
    save_checkpoint({'state_dict': build_model(cfg['model']).state_dict(), 'epoch': 1}, str(ckpt))
    line = bad(capsys, [CFG, *over, '--pretrain', str(ckpt), '--output-dir', str(tmp_path / 'o'),
                        '--measures', 'temporality'])
    assert '--split test' in line and '1 class' in line and 'move_right' in line


def test_compare_two_cards_end_to_end(tiny, tmp_path):
    """Two models' cards of the same videos, then tools/compare_cards.py: B − A per measure with
    paired CIs, files written; the representation measure is left out (a ratio estimator). A
    card compared with itself differs by exactly 0. Bad input: one line, exit status 2."""
    over, ckpt_a = tiny
    cfg = load_config(os.path.join(ROOT, CFG), over)
    torch.manual_seed(1)
    ckpt_b = tmp_path / 'b' / 'checkpoint.pth.tar'
    save_checkpoint({'state_dict': build_model(cfg['model']).state_dict(), 'epoch': 1, 'config': cfg}, str(ckpt_b))
    for name, ckpt in (('a', ckpt_a), ('b', ckpt_b)):
        r = card([CFG, *over, '--pretrain', str(ckpt), '--output-dir', str(tmp_path / f'card-{name}'),
                  '--measures', 'temporality', 'conflict', 'representation'])
        assert r.returncode == 0, r.stderr[-3000:]

    def compare(*args):
        return subprocess.run([sys.executable, 'tools/compare_cards.py', *map(str, args), '--n-boot', '200'],
                              cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    r = compare(tmp_path / 'card-a', tmp_path / 'card-b' / 'bias_card.json', '--output-dir', tmp_path / 'cmp')
    assert r.returncode == 0, r.stderr[-3000:]
    cmp = json.loads((tmp_path / 'cmp' / 'compare.json').read_text())
    assert list(cmp['measures']) == ['temporality', 'conflict'] and 'representation' in cmp['left_out']
    a = json.loads((tmp_path / 'card-a' / 'bias_card.json').read_text())['measures']
    b = json.loads((tmp_path / 'card-b' / 'bias_card.json').read_text())['measures']
    for name, m in cmp['measures'].items():
        assert m['n'] == 16 and m['diff'] == pytest.approx(b[name]['value'] - a[name]['value'])
        assert m['ci95'][0] <= m['diff'] + 1e-9 <= m['ci95'][1] + 2e-9
    assert '| temporality | contrasted accuracy |' in r.stdout
    assert (tmp_path / 'cmp' / 'compare.md').read_text() == r.stdout
    same = compare(tmp_path / 'card-a', tmp_path / 'card-a')
    assert same.returncode == 0 and '| +0.0 | [+0.0, +0.0] |' in same.stdout
    for args, culprit in (((tmp_path / 'nowhere', tmp_path / 'card-a'), 'nowhere'),
                          ((tmp_path / 'card-a', tmp_path / 'cmp' / 'compare.json'), 'compare.json')):
        r = compare(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and culprit in lines[0] and 'Traceback' not in r.stderr
