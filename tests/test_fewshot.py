"""Few-shot evaluation: episode sampler, batched classifier fit, heads, end-to-end main-fsl.py."""
import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from datasets.episodes import EpisodeSampler
from fewshot.fit import (
    evaluate_episodes,
    fit_linear_batched,
    fit_linear_per_episode,
    linear_init,
    linear_logits,
    summarize_accuracies,
)
from fewshot.heads import FEWSHOT_MODELS, CloserBaseline, MetaBaseline, build_fewshot_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 8 classes, class c has 4 + c videos: class 0 is below the minimum of 5 videos
LABELS = [c for c in range(8) for _ in range(4 + c)]


# ---------------------------------------------------------------- sampler
def test_sampler_shapes_classes_and_disjoint_sets():
    s = EpisodeSampler(LABELS, n_way=3, n_shot=2, n_query=3, n_batch=20, ep_per_batch=2, seed=1)
    ep = s.draw()
    assert ep.support.shape == (40, 3, 2) and ep.query.shape == (40, 3, 3) and len(ep) == 40
    labels = torch.tensor(LABELS)
    # classes with fewer than max(5, 2 + 3) = 5 videos (class 0: 4 videos) never appear
    assert s.class_ids == list(range(1, 8))
    assert not (ep.classes == 0).any()
    for e in range(len(ep)):
        assert len(set(ep.classes[e].tolist())) == 3                       # distinct ways
        for w in range(3):
            sup, qry = ep.support[e, w].tolist(), ep.query[e, w].tolist()
            assert len(set(sup + qry)) == 5                                # no repeats, disjoint
            assert (labels[sup + qry] == ep.classes[e, w]).all()          # right class
    batches = list(s)
    assert len(batches) == 20 and all(len(b) == 2 for b in batches)
    assert torch.equal(batches[3].support, ep.support[6:8])


def test_sampler_seed_reproducible_and_min_videos():
    a = EpisodeSampler(LABELS, 2, 1, 4, 10, seed=7).draw()
    torch.rand(100)   # global RNG use must not matter
    b = EpisodeSampler(LABELS, 2, 1, 4, 10, seed=7).draw()
    c = EpisodeSampler(LABELS, 2, 1, 4, 10, seed=8).draw()
    assert torch.equal(a.support, b.support) and torch.equal(a.query, b.query)
    assert not torch.equal(a.query, c.query)
    u = a.unique_indices()
    assert torch.equal(u, torch.unique(torch.cat([a.support.flatten(), a.query.flatten()])))
    s = EpisodeSampler(LABELS, 2, 1, 4, 10, min_videos=10)
    assert s.class_ids == [6, 7]
    with pytest.raises(ValueError, match='need 3 classes'):
        EpisodeSampler(LABELS, 3, 1, 4, 10, min_videos=10)


# ---------------------------------------------------------------- batched fit
def _plain_sgd(x, y, n_class, w0, b0, orders, scale=None, epochs=6, gain=False):
    """The authors' loop for one episode with a given init and minibatch order; ``gain``: the
    published Baseline++ layer (torch's weight_norm on the rows, features over ‖x‖ + 1e-5)."""
    clf = nn.Linear(x.shape[1], n_class, bias=b0 is not None)
    with torch.no_grad():
        clf.weight.copy_(w0)
        if b0 is not None:
            clf.bias.copy_(b0)
    if gain:
        clf = nn.utils.parametrizations.weight_norm(clf, 'weight', dim=0)
    opt = torch.optim.SGD(clf.parameters(), lr=0.01, momentum=0.9, dampening=0.9, weight_decay=1e-3)
    for ep in range(epochs):
        for s in range(0, x.shape[0], 4):
            idx = orders[ep, s:s + 4]
            if scale is None:
                out = clf(x[idx])
            elif gain:
                xb = x[idx]
                out = scale * (xb / (xb.norm(dim=1, keepdim=True) + 1e-5)) @ clf.weight.T
            else:
                out = scale * F.normalize(x[idx], dim=-1) @ F.normalize(clf.weight, dim=-1).T
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return clf


@pytest.mark.parametrize('n,d,bias,scale,gain', [(10, 16, True, None, False),    # N < D: span form
                                                 (10, 16, False, None, False),
                                                 (14, 6, True, None, False),     # N > D: direct form
                                                 (10, 16, False, 2.0, False),    # cosine, unit rows
                                                 (10, 16, False, 2.0, True),     # cosine, learnable gain
                                                 (14, 6, False, 10.0, True)])
def test_batched_fit_equals_per_episode_sgd(n, d, bias, scale, gain):
    g = torch.Generator().manual_seed(0)
    e, n_class, epochs = 3, 3, 6
    x = torch.randn(e, n, d, generator=g) * 2
    y = torch.randint(0, n_class, (e, n), generator=g)
    w0, b0 = linear_init(e, n_class, d, bias=bias, generator=g)
    orders = torch.rand(epochs, e, n, generator=g).argsort(-1)
    w, b = fit_linear_batched(x, y, n_class, scale=scale, gain=gain, init=(w0, b0), orders=orders,
                              epochs=epochs)
    for i in range(e):
        ref = _plain_sgd(x[i], y[i], n_class, w0[i], b0[i] if bias else None, orders[:, i], scale,
                         epochs, gain)
        assert (ref.weight - w0[i]).abs().max() > 1e-2          # it did train
        torch.testing.assert_close(w[i], ref.weight.detach(), atol=1e-5, rtol=1e-4)
        if gain:   # the gain moved away from its init ‖v‖: it is learnt, not a fixed norm
            g_ref = ref.parametrizations.weight.original0.detach().squeeze(1)
            torch.testing.assert_close(w[i].norm(dim=-1), g_ref.abs(), atol=1e-5, rtol=1e-4)
            assert (g_ref - w0[i].norm(dim=-1)).abs().max() > 1e-3
        if bias == (scale is None):   # the benchmark's per-episode loop (the authors' two layers)
            mine = fit_linear_per_episode(x[i], y[i], n_class, scale=scale, gain=gain, epochs=epochs,
                                          init=(w0[i], b0[i] if bias else None), orders=orders[:, i])
            torch.testing.assert_close(mine.weight.detach(), ref.weight.detach(), atol=1e-5, rtol=1e-4)
        if bias:
            torch.testing.assert_close(b[i], ref.bias.detach(), atol=1e-5, rtol=1e-4)
        else:
            assert b is None


def test_closer_baseline_learns_separable_episodes():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(10, 32, generator=g) * 3
    feats = means.repeat_interleave(6, 0)[:, None] + torch.randn(60, 4, 32, generator=g) * 0.5
    labels = torch.arange(10).repeat_interleave(6).tolist()
    ep = EpisodeSampler(labels, 5, 1, 3, 12, seed=0).draw()
    for args in ({'method': 'softmax'}, {'method': 'dist'}, {'method': 'dist', 'learnable_gain': False}):
        acc = evaluate_episodes(CloserBaseline(epochs=20, **args), feats, ep.support, ep.query,
                                chunk=5, generator=torch.Generator().manual_seed(1))
        assert acc.shape == (12,) and acc.mean() > 90, (args, acc)


def test_cosine_classifier_logits_by_hand():
    """x = (3, 4); rows v = (1, 0), (0, 2); scale 2. Learnable gain g = (2, 0.5): rows
    g·v/‖v‖ = (2, 0), (0, 0.5), logits 2·x̂·w = (2.4, 0.8). Unit rows: 2·cos = (1.2, 1.6)."""
    x = torch.tensor([[[3.0, 4.0]]])
    v = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    k = 5 / (5 + 1e-5)                                   # features over ‖x‖ + 1e-5
    gain = linear_logits(x, v, None, 2.0, gain=torch.tensor([[2.0, 0.5]]))
    torch.testing.assert_close(gain, torch.tensor([[[2.4 * k, 0.8 * k]]]))
    unit = linear_logits(x, v, None, 2.0)                # rows over ‖v‖ + 1e-5
    torch.testing.assert_close(unit, torch.tensor([[[1.2 * k / (1 + 1e-5), 1.6 * k * 2 / (2 + 1e-5)]]]))


def test_learnable_gain_sgd_step_by_hand():
    """One sample, one SGD step, gradients written out: z_c = s·g_c·c_c with c_c = x̂·v_c/‖v_c‖,
    ∂L/∂g_c = δ_c·s·c_c, ∂L/∂v_c = δ_c·s·g_c·(x̂ − c_c·v_c/‖v_c‖)/‖v_c‖ (δ = softmax(z) − onehot);
    SGD's first step p − lr·(∂L/∂p + wd·p) for p = g (init ‖v‖ = (1, 2)) and v."""
    x = torch.tensor([3.0, 4.0])
    v = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    s, lr, wd = 2.0, 0.01, 1e-3
    g = v.norm(dim=1)
    xh = x / (x.norm() + 1e-5)
    vn = v.norm(dim=1, keepdim=True)
    c = (v / vn) @ xh                                    # (0.6, 0.8) · k
    delta = torch.softmax(s * g * c, 0) - torch.tensor([1.0, 0.0])
    grad_g = delta * s * c
    grad_v = (delta * s * g)[:, None] * (xh[None] - c[:, None] * v / vn) / vn
    g1, v1 = g - lr * (grad_g + wd * g), v - lr * (grad_v + wd * v)
    want = g1[:, None] * v1 / v1.norm(dim=1, keepdim=True)
    one = dict(init=(v[None], None), orders=torch.zeros(1, 1, 1, dtype=torch.long), epochs=1, batch_size=1)
    w, b = fit_linear_batched(x[None, None], torch.tensor([[0]]), 2, scale=s, gain=True, **one)
    torch.testing.assert_close(w[0], want, atol=1e-7, rtol=1e-6)
    assert b is None and w[0, 0].norm() > 1 and w[0, 1].norm() < 2  # the gains moved: 1 → 1.01, 2 → 1.99
    # unit rows: the norms stay out of the scores (rows normalised), no gain parameter
    w_unit, _ = fit_linear_batched(x[None, None], torch.tensor([[0]]), 2, scale=s, **one)
    assert not torch.allclose(w_unit[0], want, atol=1e-4)


def test_closer_baseline_scores_by_hand():
    """Without training (epochs=0) the classifier is its init v0 (drawn as the head draws it):
    dist scores a query clip by 2·‖v0_c‖·cos (learnable gain, g = ‖v0‖) or 2·cos (unit rows),
    and a query video by the mean over its clips."""
    gen = torch.Generator().manual_seed(0)
    sup = torch.randn(2, 3, 1, 2, 5, generator=gen)
    qry = torch.randn(2, 3, 2, 2, 5, generator=gen)
    v0, _ = linear_init(2, 3, 5, bias=False, generator=torch.Generator().manual_seed(7))
    qn = qry / (qry.norm(dim=-1, keepdim=True) + 1e-5)
    for gain in (True, False):
        head = CloserBaseline(method='dist', learnable_gain=gain, epochs=0)
        out = head(sup, qry, generator=torch.Generator().manual_seed(7))
        rows = v0 if gain else v0 / (v0.norm(dim=-1, keepdim=True) + 1e-5)
        for e in range(2):
            for w in range(3):
                for qi in range(2):
                    clips = 2 * qn[e, w, qi] @ rows[e].T                # K × n_way
                    torch.testing.assert_close(out[e, w * 2 + qi], clips.mean(0))


# ---------------------------------------------------------------- MetaBaseline, summary
def test_meta_baseline_against_hand_computed_prototypes():
    g = torch.Generator().manual_seed(0)
    sup = torch.randn(2, 3, 2, 4, 8, generator=g)         # E × n_way × n_shot × K × D
    qry = torch.randn(2, 3, 1, 4, 8, generator=g)
    for method in ('cos', 'sqr'):
        for per_clip in (False, True):
            out = MetaBaseline(method=method, per_clip=per_clip)(sup, qry)
            assert out.shape == (2, 3, 3)
            for e in range(2):
                for qi in range(3):
                    for w in range(3):
                        proto = sup[e, w].reshape(-1, 8).mean(0)
                        # per clip: score each clip, average; else score the clips' mean feature
                        clips = qry[e, qi, 0] if per_clip else qry[e, qi, 0].mean(0, keepdim=True)
                        if method == 'cos':
                            s = 10 * torch.stack([torch.dot(c / c.norm(), proto / proto.norm()) for c in clips])
                        else:
                            s = -torch.stack([((c - proto) ** 2).sum() for c in clips])
                        torch.testing.assert_close(out[e, qi, w], s.mean(), atol=1e-4, rtol=1e-4)
    assert isinstance(MetaBaseline().temp, nn.Parameter) and MetaBaseline().temp.item() == 10.0
    assert MetaBaseline().per_clip is False   # the published default: clip-averaged features


def test_meta_baseline_clip_average_vs_per_clip_by_hand():
    """Prototypes (1, 0) and (0, 1); one query video with clips (10, 1) and (0, 1).
    Clip mean (5, 1): cos = (5, 1)/√26 -> way 0. Per clip: ((10/√101 + 0)/2, (1/√101 + 1)/2)
    = (0.4975, 0.5498) -> way 1. sqr: -‖(5, 1) − p‖² = (-17, -25); per clip the mean of
    -‖clip − p‖² = (-42, -50), the same minus the clips' spread (25): same prediction."""
    sup = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]], [[[0.0, 1.0], [0.0, 1.0]]]])[None]  # 1×2×1×2×2
    qry = torch.tensor([[[[10.0, 1.0], [0.0, 1.0]]], [[[10.0, 1.0], [0.0, 1.0]]]])[None]
    r26, r101 = 26 ** 0.5, 101 ** 0.5
    cos_avg = MetaBaseline('cos')(sup, qry)[0, 0]
    cos_clip = MetaBaseline('cos', per_clip=True)(sup, qry)[0, 0]
    torch.testing.assert_close(cos_avg, torch.tensor([50 / r26, 10 / r26]))
    torch.testing.assert_close(cos_clip, torch.tensor([50 / r101, 5 / r101 + 5]))
    assert cos_avg.argmax() == 0 and cos_clip.argmax() == 1
    torch.testing.assert_close(MetaBaseline('sqr')(sup, qry)[0, 0], torch.tensor([-17.0, -25.0]))
    torch.testing.assert_close(MetaBaseline('sqr', per_clip=True)(sup, qry)[0, 0], torch.tensor([-42.0, -50.0]))


def test_registry_and_summary():
    assert FEWSHOT_MODELS.names() == ['CloserBaseline', 'MetaBaseline']
    assert isinstance(build_fewshot_model({'name': 'MetaBaseline', 'args': {'method': 'sqr'}}), MetaBaseline)
    with pytest.raises(KeyError, match='CloserBaseline'):
        build_fewshot_model({'name': 'CloserBaselin'})
    with pytest.raises(ValueError):
        CloserBaseline(method='cos')
    with pytest.raises(ValueError, match='learnable_gain'):
        CloserBaseline(method='dist', learnable_gain='yes')
    with pytest.raises(ValueError, match='per_clip'):
        MetaBaseline(per_clip=1)
    assert CloserBaseline(method='dist').gain and not CloserBaseline(method='dist', learnable_gain=False).gain
    assert not CloserBaseline().gain          # softmax: a plain linear layer
    s = summarize_accuracies([40.0, 60.0, 50.0, 50.0])
    assert s['Acc@1'] == 50.0 and s['episodes'] == 4
    assert abs(s['ci95'] - 1.96 * (200 / 3) ** 0.5 / 2) < 1e-9   # sample std, Bessel


# ---------------------------------------------------------------- end to end (real videos, real model)
def _tiny_scenemotion(tmp_path):
    import yaml
    norm = {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}
    cfg = {
        'dataset': {
            'name': 'scenemotion', 'subset': 'novel', 'num_workers': 0,
            'n_way': 3, 'n_shot': 1, 'n_query': 2, 'n_batch': 6, 'ep_per_batch': 2,
            'scenemotion': {'size': 32, 'n_train': 8, 'n_val': 8, 'n_transfer_train': 6,
                            'n_transfer_test': 6, 'n_novel': 30, 'cache_dir': str(tmp_path / 'data')},
            'transform': {'resize': 32, 'crop': 28, 'hflip': False, 'normalize': norm},
            'args': {'novel': {'n_clips': 2, 'n_frames': 4, 'fps': 8}},
        },
        'model': {'name': 'resnet3d', 'freeze_bn': True,
                  'args': {'n_class': 8, 'model_depth': 10, 'widen_factor': 0.25, 'ret_feat': ['pool']}},
        'model_fs': {'name': 'CloserBaseline', 'args': {'method': 'softmax'}},
        'fewshot': {'cache': True, 'batch_size': 3},
    }
    path = tmp_path / 'fs.yaml'
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg


def _run_fsl(*args):
    res = subprocess.run([sys.executable, 'main-fsl.py', *map(str, args), '-j', '0'], cwd=ROOT,
                         capture_output=True, text=True, timeout=240,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_main_fsl_end_to_end(tmp_path):
    from datasets import build_dataset
    from engine.checkpoint import save_checkpoint
    from fewshot.features import encode_videos
    from models import build_model
    cfg_path, cfg = _tiny_scenemotion(tmp_path)
    torch.manual_seed(0)
    model = build_model(cfg['model'])
    ckpt = tmp_path / 'baseline.pth.tar'
    save_checkpoint({'state_dict': model.state_dict(), 'epoch': 1}, ckpt)

    # encoding several videos per pass == the model's own per-clip pool features
    novel = build_dataset(cfg, 'novel')
    assert len(novel) == 30 and len(novel.classes) == 6
    feats = encode_videos(model, novel, [4, 0, 7], batch_size=2)
    model.eval()
    with torch.no_grad():
        ref = model(torch.stack([novel[i]['video'] for i in (4, 0, 7)]))['pool']
    torch.testing.assert_close(feats, ref, atol=1e-5, rtol=1e-4)

    out = tmp_path / 'run'
    _run_fsl(cfg_path, '--pretrain', ckpt, '--output-dir', out)
    res = json.loads((out / 'results.json').read_text())
    assert res['episodes'] == 12 and 0 <= res['Acc@1'] <= 100 and res['ci95'] >= 0
    rows = (out / 'episodes.csv').read_text().strip().splitlines()
    assert len(rows) == 13 and rows[0] == 'episode,Acc@1,classes'
    accs = [float(r.split(',')[1]) for r in rows[1:]]
    assert abs(sum(accs) / 12 - res['Acc@1']) < 1e-3
    caches = os.listdir(out / 'feature_cache')
    assert len(caches) == 1 and caches[0].endswith('.pt')

    # second run: every video comes from the cache, same episodes, same result
    log = _run_fsl(cfg_path, '--pretrain', ckpt, '--output-dir', out).stderr
    assert 'found in the feature cache' in open(out / 'log.txt').read() + log
    assert json.loads((out / 'results.json').read_text()) == res

    out2 = tmp_path / 'meta'
    _run_fsl(cfg_path, '--pretrain', ckpt, '--output-dir', out2, 'model_fs.name=MetaBaseline',
             'model_fs.args={method: sqr}', 'fewshot.cache=false')
    res2 = json.loads((out2 / 'results.json').read_text())
    assert res2['model_fs'] == 'MetaBaseline' and res2['episodes'] == 12
    assert not (out2 / 'feature_cache').exists()


def test_cache_key_tracks_checkpoint_and_config_not_episodes(tmp_path):
    from engine.checkpoint import save_checkpoint
    from fewshot.features import cache_key
    _, cfg = _tiny_scenemotion(tmp_path)
    ckpt = tmp_path / 'a.pth.tar'
    save_checkpoint({'state_dict': {'w': torch.zeros(3)}}, ckpt)
    key = cache_key(cfg, ckpt)
    assert cache_key(cfg, ckpt) == key
    cfg5 = json.loads(json.dumps(cfg))
    cfg5['dataset'].update(n_shot=5, n_batch=99)                  # episodes do not change features
    assert cache_key(cfg5, ckpt) == key
    cfg5['dataset']['transform']['crop'] = 24
    assert cache_key(cfg5, ckpt) != key
    assert cache_key(cfg, None, seed=0) != cache_key(cfg, None, seed=1) != key
    save_checkpoint({'state_dict': {'w': torch.ones(3)}}, ckpt)   # new weights, same path
    assert cache_key(cfg, ckpt) != key


def test_main_fsl_config_errors_are_one_line(tmp_path):
    cfg_path, _ = _tiny_scenemotion(tmp_path)
    for override, words in (('model_fs={}', 'needs a model_fs block'),
                            ('model_fs.name=MetaBaseline', "'cos' or 'sqr'"),  # args still softmax
                            ('dataset.args={novel: null}', 'dataset.args'),
                            ('dataset.n_way=7', 'need 7 classes')):        # the pool has 6
        res = subprocess.run([sys.executable, 'main-fsl.py', str(cfg_path), override, '--output-dir',
                              str(tmp_path / 'x')], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr[-2000:]
        assert res.stderr.strip().startswith('error:') and words in res.stderr
