"""measure.compare: two bias cards of the same videos, paired differences with known answers."""
import json

import numpy as np
import pytest
import torch

from core.errors import UserError
from measure.compare import compare_cards, load_card, markdown, welch_ci
from measure.stats import per_video_values


def card(values, *, measure='temporality', index=None, per_seed=None, **top):
    """A minimal card whose one measure has the given per-video values."""
    v = torch.as_tensor(values, dtype=torch.float64)
    idx = list(range(len(v))) if index is None else index
    m = {'value': float(v.mean()), 'ci95': None, 'split': 'test', 'n': len(v), 'unit': '%',
         'headline': 'contrasted accuracy', 'per_video': per_video_values(idx, v)}
    if per_seed is not None:
        m['per_seed'] = per_seed
    doc = {'schema': 'bias_card/1', 'checkpoint': 'x', 'dataset': 'scenemotion', 'subset': 'pretrain',
           'split': 'test', 'classes': ['a', 'b'], 'measures': {measure: m}}
    doc.update(top)
    return doc


def test_a_constant_shift_is_found_exactly():
    rng = np.random.default_rng(0)
    a = rng.choice([0.0, 100.0], 200)
    r = compare_cards(card(a), card(a + 10.0), n_boot=200)['measures']['temporality']
    assert r['diff'] == pytest.approx(10.0) and r['ci95'] == pytest.approx([10.0, 10.0])
    assert r['n'] == 200 and r['a'] == pytest.approx(a.mean()) and r['b'] == pytest.approx(a.mean() + 10)
    # the unpaired interval carries the videos' luck twice: far wider than the paired one
    assert r['ci95_unpaired'][1] - r['ci95_unpaired'][0] > 10


def test_paired_ci_covers_the_true_difference():
    """B differs from A on 10 % of the videos (A right, B wrong): true difference −10 points."""
    rng = np.random.default_rng(1)
    hits, trials = 0, 100
    for t in range(trials):
        a = rng.choice([0.0, 100.0], 300)
        flip = (rng.random(300) < 0.1) & (a > 0)
        b = np.where(flip, 0.0, a)
        true = -100.0 * 0.1 * 0.5   # flips happen only where A is right (half of the videos)
        lo, hi = compare_cards(card(a), card(b), n_boot=300, seed=t)['measures']['temporality']['ci95']
        hits += lo <= true <= hi
    assert 0.88 <= hits / trials <= 1.0


def test_videos_are_matched_by_index():
    """Card B holds the videos in another order and misses one: pairs by index, counts the rest."""
    a = card([0.0, 100.0, 100.0, 0.0])
    b = card([100.0, 0.0, 100.0], index=[2, 0, 1])
    r = compare_cards(a, b, n_boot=50)['measures']['temporality']
    # video 0: 0 -> 0, video 1: 100 -> 100, video 2: 100 -> 100
    assert r['n'] == 3 and r['only_a'] == 1 and r['only_b'] == 0 and r['diff'] == pytest.approx(0.0)


def test_welch_ci_of_the_mimic_seeds():
    a, b = [0.60, 0.62, 0.64], [0.50, 0.53, 0.51, 0.54]
    lo, hi = welch_ci(a, b)
    assert (lo + hi) / 2 == pytest.approx(np.mean(b) - np.mean(a))
    assert hi < 0 and lo > -0.2
    dyn_a = card([0.6] * 5, measure='dynamic', per_seed=a)
    dyn_b = card([0.5] * 5, measure='dynamic', per_seed=b)
    assert compare_cards(dyn_a, dyn_b, n_boot=20)['measures']['dynamic']['ci95_mimic'] == pytest.approx([lo, hi])
    one = card([0.5] * 5, measure='dynamic', per_seed=[0.5])
    assert compare_cards(dyn_a, one, n_boot=20)['measures']['dynamic']['ci95_mimic'] is None


def test_cards_of_other_videos_are_refused():
    with pytest.raises(UserError, match=r'^a.json and b.json are not cards of the same videos: split'):
        compare_cards(card([1.0]), card([1.0], split='val'), names=('a.json', 'b.json'))
    with pytest.raises(UserError, match='share no video'):
        compare_cards(card([1.0, 2.0]), card([1.0], index=[7]))


def test_measures_without_per_video_values_are_left_out():
    a, b = card([0.0, 100.0]), card([100.0, 100.0])
    old = json.loads(json.dumps(b))
    del old['measures']['temporality']['per_video']
    with pytest.raises(UserError, match='B holds no per-video values .* run tools/bias_card.py on it again'):
        compare_cards(a, old)
    rep = {'value': 30.0, 'split': 'test'}
    a['measures']['representation'], b['measures']['representation'] = rep, rep
    b['measures']['conflict'] = b['measures']['temporality']
    r = compare_cards(a, b, n_boot=20)
    assert list(r['measures']) == ['temporality'] and 'representation' in r['left_out']
    assert r['left_out']['conflict'] == 'measured on B only'
    md = markdown(r)
    assert '| temporality | contrasted accuracy | 50.0 | 100.0 | +50.0 |' in md and 'representation: left out' in md


def test_load_card_errors(tmp_path):
    with pytest.raises(UserError, match='no bias card there'):
        load_card(str(tmp_path))
    (tmp_path / 'bias_card.json').write_text('{"schema": "other"}')
    with pytest.raises(UserError, match='not a bias card'):
        load_card(str(tmp_path))
    (tmp_path / 'bias_card.json').write_text('{nope')
    with pytest.raises(UserError, match='unreadable JSON'):
        load_card(str(tmp_path))
    (tmp_path / 'bias_card.json').write_text(json.dumps(card([1.0])))
    assert load_card(str(tmp_path))['measures']['temporality']['n'] == 1
