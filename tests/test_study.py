"""The SceneMotion scoring protocol end to end (score on the scene-independent transfer split),
the study's job graph and its report (statistics pinned on hand-made result files)."""
import json
import os
import subprocess
import sys

import pytest

from tools import study_page
from tools.jobs import ROOT, Graph

TINY = ['dataset.scenemotion.size=32', 'dataset.scenemotion.n_frames=4', 'dataset.scenemotion.n_train=8',
        'dataset.scenemotion.n_val=8', 'dataset.scenemotion.n_transfer_train=16',
        'dataset.scenemotion.n_transfer_test=12', 'dataset.scenemotion.n_novel=6',
        'dataset.args.train.n_frames=4', 'dataset.args.test.n_frames=4', 'dataset.args.test_final.n_frames=4',
        'dataset.transform.resize=32', 'dataset.transform.crop=28', 'dataset.num_workers=0',
        'dataset.batch_size=4']


def run(args, cache):
    r = subprocess.run([sys.executable, *args, *TINY, f'dataset.scenemotion.cache_dir={cache}', '--device', 'cpu'],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_scoring_on_the_transfer_split(tmp_path):
    cache, base, score = tmp_path / 'cache', tmp_path / 'base', tmp_path / 'score'
    run(['main.py', 'configs/scenemotion/res3d18.yaml', 'optimizer.epochs=1', '--output-dir', str(base)], cache)
    # the published code's loss arguments (temperature, batchmean) run unchanged
    run(['main-drl.py', 'configs/scenemotion-transfer/res3d18.yaml', 'configs/scoring/scenemotion.yaml',
         'sp.optimizer.epochs=1', 'sp.criterion.args={temperature: 1.0, reduction: batchmean}',
         '--pretrain', str(base / 'checkpoint.pth.tar'), '--output-dir', str(score)], cache)
    res = json.loads((score / 'results.json').read_text())
    assert res['n_videos'] == 12  # transfer-test, not pretrain-val (8)
    assert 0.0 <= res['dynamic_score'] <= 1.0
    assert abs(res['dynamic_score'] + res['agreement'] - 1) < 1e-9
    sp = (score / 'config_sp.yaml').read_text()
    assert 'widen_factor: 0.25' in sp and 'batchmean' in sp


def test_graph_order_skip_and_resume(tmp_path):
    rel = os.path.relpath(tmp_path, ROOT)
    ok = "import pathlib,sys; pathlib.Path(sys.argv[1]).write_text('{}')"
    log = []
    g = Graph(jobs=2, log=log.append)
    g.add('a', ['-c', ok, f'{tmp_path}/a.json'], f'{rel}/a.json')
    g.add('b', ['-c', 'import sys; sys.exit(3)'], f'{rel}/b.json', ['a'])
    g.add('c', ['-c', ok, f'{tmp_path}/c.json'], f'{rel}/c.json', ['b'])
    g.add('d', ['-c', ok, f'{tmp_path}/d.json'], f'{rel}/d.json', ['a'])
    g.run()
    assert [g.items[k].state for k in 'abcd'] == ['done', 'failed', 'skipped', 'done']
    with pytest.raises(KeyError):
        g.add('e', ['-c', ''], f'{rel}/e.json', ['nope'])
    again = Graph(jobs=1, log=log.append)
    assert again.add('a', ['-c', 'import sys; sys.exit(1)'], f'{rel}/a.json').state == 'done'  # result exists


def _write(path, doc):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(doc, f)


def _card(score=None, normal=90.0, frozen=80.0, contrasted=10.0, wins=50.0, dims=30.0):
    """A bias_card.json with the fields the study reads (docs/bias-card.md, "JSON schema")."""
    ms = {}
    if score is not None:
        ms['dynamic'] = {'value': score, 'Acc@1': 50.0, 'ci95': None}
    else:
        ms['temporality'] = {'value': contrasted, 'frozen_curve': {'0': frozen + 1},
                             'acc': {'normal': {'value': normal}, 'frozen_mean': {'value': frozen},
                                     'frozen_min': {'value': frozen - 2, 'frame': 3},
                                     'frozen_max': {'value': frozen + 2, 'frame': 0},
                                     'shuffled': {'value': normal - 1}, 'reversed': {'value': normal - 2}}}
        ms['conflict'] = {'value': wins, 'acc_clip': {'value': wins - 5}, 'acc_frame': {'value': 100 - wins}}
        ms['representation'] = {'value': dims, 'static': {'value': 60 - dims}}
    return {'schema': 'bias_card/1', 'measures': ms, 'seconds': {m: 1.0 for m in ms}}


def _study(tmp_path, scores, seeds=(0, 1, 2)):
    """Result files of the study's layout for ``{model: [dynamic score per seed]}`` (None: the
    seed's card is missing)."""
    paths = {}
    for name, vals in scores.items():
        for seed, v in zip(seeds, vals):
            d = tmp_path / name / str(seed)
            p = {'dir': str(d), 'train': str(d / 'results.json'), 'card': str(d / 'card.json'),
                 'dynamic': str(d / 'dyn.json'), 'probe': str(d / 'p.json')}
            paths[('main', name, seed)] = p
            if v is None:
                continue
            _write(p['train'], {})
            _write(p['dynamic'], _card(score=v))
            _write(p['card'], _card(frozen=80.0 - 10 * v, contrasted=100 * v, wins=40 + 50 * v, dims=10 + 40 * v))
            _write(p['probe'], {'Acc@1': 40.0 + seed})
    return paths


def test_report_statistics(tmp_path):
    """Mean, Student-t CI and per-seed paired differences, read from bias-card files written here."""
    paths = _study(tmp_path, {'resnet3d': [0.1, 0.2, 0.3], 'resnet3d-x': [0.5, 0.7, 0.6]})
    table = study_page.collect(paths)['main']
    assert table['resnet3d'][0]['frozen_acc1'] == pytest.approx(79.0)  # the card's frozen_mean
    assert table['resnet3d'][0]['frozen_first'] == pytest.approx(80.0)  # frozen_curve['0']
    models = study_page.summary(table)
    mean, ci = models['resnet3d']['dynamic_score']
    assert mean == pytest.approx(0.2) and ci == pytest.approx(4.303 * 0.1 / 3 ** 0.5)
    assert models['resnet3d']['probe_acc1_std'] == pytest.approx(1.0)
    d_mean, d_sd, d_ci, n = models['resnet3d-x']['paired']['dynamic_score']
    assert d_mean == pytest.approx(0.4) and d_sd == pytest.approx(0.1) and n == 3  # diffs 0.4, 0.5, 0.3
    assert d_ci == pytest.approx(4.303 * 0.1 / 3 ** 0.5)
    assert 'paired' not in models['resnet3d']
    line = [x for x in study_page.paired_lines(models) if x.startswith('| resnet3d-x')][0]
    assert '+0.4' in line and '**clear**' in line
    v = models['resnet3d-x']['verdict']
    assert v['baseline'] == 'resnet3d' and v['debiases'] == 'yes' and 'frozen_acc1' in v['towards']


def test_pages_render_partial_results(tmp_path):
    """An interrupted study still writes both pages and says what is missing: a model with one
    card, a method without its 24-epoch baseline, the separation of the controls per measure."""
    from tools import study
    rel = os.path.relpath(tmp_path, ROOT)
    paths = _study(tmp_path, {'resnet2d': [0.05, 0.04, 0.06], 'resnet3d': [0.06, 0.05, 0.07],
                              'resnet3d-bias0': [0.6, 0.62, 0.58], 'resnet3d-fame': [0.3, None, None],
                              'resnet3d-24ep': [None, None, None]})
    paths = {k: {m: os.path.relpath(v, ROOT) for m, v in p.items()} for k, p in paths.items()}
    g = Graph(jobs=1)
    for (_, name, seed), p in paths.items():
        g.add(f'{seed}/{name}', ['main.py'], p['train'])
        for m in ('card', 'dynamic', 'probe'):
            g.add(f'{seed}/{name}/{m}', ['tools/bias_card.py'], p[m], [f'{seed}/{name}'])
    g.select(lambda key: study.selected(key, models=['resnet2d', 'resnet3d']))
    page = tmp_path / 'scenemotion.md'
    study_page.write(paths, [0, 1, 2], g, str(page), 'python tools/study.py --models resnet2d')
    text, card = page.read_text(), (tmp_path / 'bias-card.md').read_text()
    assert '**Partial results**' in text and '**Partial results.**' in card
    assert '| resnet3d-fame | `resnet3d-24ep` | not decided (0 paired seeds)' in text
    assert '1/3 (held: 1, 2)' in text  # fame: seed 0 only, the others held
    doc = json.loads((tmp_path / 'bias-card.json').read_text())
    assert doc['complete'] is False and doc['models']['resnet3d-fame']['seeds'] == [0]
    assert doc['separation']['dynamic_score']['apart'] is True
    assert doc['separation']['frozen_acc1']['apart'] is True  # static controls keep their frozen accuracy
    assert doc['separation']['pretrain_acc1']['apart'] is None  # not a bias measure
    assert json.loads((tmp_path / 'scenemotion.json').read_text())['models']['resnet3d-bias0']['paired'][
        'dynamic_score'][0] == pytest.approx(0.54)
    assert f'{rel}/resnet3d-fame/1/card.json' not in text  # commands are shown, not paths of missing files


def test_selected_filters():
    from tools import study
    assert study.selected('0/resnet2d', ['resnet2d'], None)
    assert not study.selected('0/resnet2d/probe', ['resnet2d'], ['train', 'card'])
    assert study.selected('2/resnet2d/card', None, ['card'])
    assert not study.selected('1/resnet3d', ['resnet2d'], None)


def test_penalty_probe_step_and_restore():
    """tools/penalty_probe.py: first-order gain lr·‖g‖², parameters restored after the probe, and
    a model that sees only the first frame (static by construction) has nothing to gain."""
    import torch

    from tools.penalty_probe import kl, probe_batch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 4, 5))
    x = torch.randn(6, 2, 3, 4)  # B × C × T × W stands in for a clip; time is dim 2
    x_s = x[:, :, :1].expand_as(x).contiguous()
    y = torch.randint(0, 5, (6,))
    before = [p.detach().clone() for p in model.parameters()]
    r = probe_batch(model, x, x_s, y, lr=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    base = kl(model(x), model(x_s).detach())
    g = torch.autograd.grad(base, list(model.parameters()))
    assert r['predicted'] == pytest.approx(1e-4 * sum(t.pow(2).sum() for t in g).item(), rel=1e-5)
    assert r['detached'] == pytest.approx(r['predicted'], rel=0.05)  # small step: first order holds
    assert -1 <= r['cos_penalty_ce'] <= 1

    class FirstFrame(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2 * 4, 5)

        def forward(self, v):
            return self.fc(v[:, :, 0].flatten(1))

    r = probe_batch(FirstFrame(), x, x_s, y, lr=1e-2)
    assert r['kl'] == pytest.approx(0, abs=1e-7) and r['actual'] == pytest.approx(0, abs=1e-7)


@pytest.mark.parametrize('drl', [None, 'freeze', 'shuffle', 'fgsm', 'pgd'])
def test_demo_and_study_graphs_name_existing_configs(tmp_path, drl):
    """Every command of `make demo` (each --drl) and of `make study` names a script and config
    files that exist (a model dropped from the study must not break the demo)."""
    from tools import demo, study
    graphs = [demo.build(str(tmp_path / 'demo'), drl=drl)[0]]
    if drl is None:
        graphs.append(study.build([0, 1, 2], str(tmp_path / 'study'), True, 2, lambda m: None,
                                  str(tmp_path / 'page.md'), extra=True)[0])
    for g in graphs:
        assert g.items
        for job in g.items.values():
            assert os.path.isfile(os.path.join(ROOT, job.cmd[0])), job.cmd
            for arg in job.cmd[1:]:
                if arg.endswith('.yaml'):
                    assert os.path.isfile(os.path.join(ROOT, arg)), (job.key, arg)


def test_weight_distance(tmp_path, capsys):
    """The distance is the L2 norm of the weight difference, running statistics left out."""
    import torch

    from engine.checkpoint import save_checkpoint
    from tools import weight_distance
    a = {'conv.weight': torch.zeros(2, 3), 'bn.running_mean': torch.zeros(2), 'bn.num_batches_tracked': torch.tensor(1)}
    b = {'conv.weight': torch.full((2, 3), 2.0), 'bn.running_mean': torch.full((2,), 9.0),
         'bn.num_batches_tracked': torch.tensor(5)}
    save_checkpoint({'state_dict': a}, str(tmp_path / 'a.pth.tar'))
    save_checkpoint({'state_dict': {f'module.{k}': v for k, v in b.items()}}, str(tmp_path / 'b.pth.tar'))
    assert weight_distance.main([str(tmp_path / 'a.pth.tar'), str(tmp_path / 'b.pth.tar')]) == 0
    assert capsys.readouterr().out.startswith(f'{(6 * 4.0) ** 0.5:.4f}  ')


def test_demo_prints_the_card_headlines(tmp_path):
    """`make demo`'s table reads the card's files; a missing file prints nan, not an error."""
    from tools import demo
    paths = _study(tmp_path, {'resnet2d': [0.04], 'resnet3d-bias0': [0.6], 'resnet3d': [None]}, seeds=(0,))
    out = demo.table({n: paths[('main', n, 0)] for n in ('resnet2d', 'resnet3d', 'resnet3d-bias0')})
    rows = {line.split(' | ')[0]: line.split(' | ') for line in out.splitlines() if ' | ' in line}
    assert rows['resnet3d-bias0'][2:] == ['90.0', '74.0', '60.0', '70.0', '34.0', '0.600', '40.0']
    assert rows['resnet3d'][-2] == 'nan' and '(0.040 here' in out


def test_study_graph_cuts(tmp_path):
    """`make study`'s graph: every model gets the two card commands (no separate score or
    temporality); the budget cuts (sweep points, DRL-aug linear probe) come back with --extra-sweep."""
    from tools import study

    def graph(**kw):
        return study.build([0, 1, 2], str(tmp_path / 'study'), True, 2, lambda m: None, str(tmp_path / 'p.md'), **kw)[0]
    g, full = graph(), graph(extra=True)
    steps = {k.split('/')[2] for k in g.items if k.count('/') == 2}
    assert {'card', 'dynamic'} <= steps and not steps & {'score', 'temporality'}
    for name in ('resnet3d-24ep', 'resnet3d-fame', 'resnet3d-albar', 'resnet3d-mixup', 'resnet3d-cutmix'):
        assert all(f'{s}/{name}/{m}' in g.items for s in (0, 1, 2) for m in study.FULL)
    assert '0/resnet3d-drl-fgsm/probe' not in g.items and '0/resnet3d-drl-fgsm/probe' in full.items
    assert '0/dir-freeze λ=2' not in g.items and '0/dir-freeze λ=2' in full.items
    assert '0/resnet2d/score_pretrain' in g.items  # the protocol comparison stays
    card = g.items['1/resnet3d-bias0/card'].cmd
    assert card[:2] == ['tools/bias_card.py', 'configs/scenemotion/res3d18.yaml'] and '--split' not in card


def test_estimate_simulates_the_two_lane_schedule():
    """tools/study_estimate.simulate runs the graph as tools/jobs.Graph would: the first ready
    job in insertion order takes the first free lane."""
    from tools import study_estimate
    from tools.jobs import Graph
    g = Graph(jobs=2, log=lambda m: None)
    # kind() of a key with a measure part is that part
    g.add('0/a', ['x'], '/nonexistent/a')
    g.add('0/a/long', ['x'], '/nonexistent/b', ['0/a'])
    g.add('0/b', ['x'], '/nonexistent/c')
    g.add('0/b/short', ['x'], '/nonexistent/d', ['0/b'])
    price = {'long': 10.0, 'short': 1.0, 'r3d': 2.0}
    # lanes: a (0-2) then long (2-12); b (0-2) then short (2-3): wall 12
    assert study_estimate.simulate(g, price, lanes=2) == 12.0
    # one lane: 2 + 10 + 2 + 1 in insertion order of readiness
    assert study_estimate.simulate(g, price, lanes=1) == 15.0


def test_estimate_reads_the_demo_times(tmp_path):
    from tools import study_estimate
    for key, secs in (('0/resnet2d', 80), ('0/resnet3d', 70), ('0/resnet3d-bias0', 90), ('0/resnet3d/card', 20),
                      ('0/resnet3d-stillmix', 60)):
        d = tmp_path / 'seed0' / key.split('/', 1)[1]
        d.mkdir(parents=True)
        (d / 'job_time.json').write_text(json.dumps({'start': 100, 'end': 100 + secs, 'key': key}))
    t = study_estimate.demo_times(str(tmp_path))
    assert t == {'r2d': 80, 'r3d': 90, 'card': 20, 'stillmix12': 60}   # median of 70 and 90: the upper
