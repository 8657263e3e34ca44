"""KD / JSD losses against hand-computed values, the criterion registry, gradient reversal,
and the dynamic-score metrics on a hand-made example."""
import math

import pytest
import torch
from torch.nn import functional as F

from drl.grl import GradReverse, grad_reverse
from engine.losses import JSDLoss, KDLoss
from engine.optim import build_criterion
from measure.dynamic import dynamic_scores, per_class_scores

# softmax([0, 0]) = (1/2, 1/2); softmax([0, log 3]) = (1/4, 3/4)
UNIFORM = torch.tensor([[0.0, 0.0]])
SKEWED = torch.tensor([[0.0, math.log(3.0)]])


def test_kd_hand_value():
    # KD(input, target) = KL(p_target ‖ p_input) with p_target = (1/4, 3/4), p_input = (1/2, 1/2)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert KDLoss()(UNIFORM, SKEWED).item() == pytest.approx(expected, abs=1e-6)
    # the other direction is a different number: the loss is not symmetric
    reverse = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert KDLoss()(SKEWED, UNIFORM).item() == pytest.approx(reverse, abs=1e-6)


def test_kd_temperature_and_batch_mean():
    # T = 2 halves the logits: target (0, log 3)/2 -> p = (1, sqrt 3)/(1 + sqrt 3)
    s3 = math.sqrt(3.0)
    p = (1 / (1 + s3), s3 / (1 + s3))
    kl = p[0] * math.log(p[0] / 0.5) + p[1] * math.log(p[1] / 0.5)
    assert KDLoss(T=2)(UNIFORM, SKEWED).item() == pytest.approx(4 * kl, abs=1e-6)
    batch = KDLoss()(torch.cat([UNIFORM, UNIFORM]), torch.cat([SKEWED, UNIFORM]))
    one = KDLoss()(UNIFORM, SKEWED).item()
    assert batch.item() == pytest.approx(one / 2, abs=1e-6)  # mean over the 2 samples


def test_kd_gradient_reaches_input_only_through_input():
    x = torch.randn(4, 5, requires_grad=True)
    t = torch.randn(4, 5)
    KDLoss()(x, t).backward()
    # d/dx KL(p_t ‖ softmax(x)) = (softmax(x) - p_t) / B
    assert torch.allclose(x.grad, (x.softmax(1) - t.softmax(1)).detach() / 4, atol=1e-6)


def test_jsd_hand_value_and_symmetry():
    p, q, m = (0.5, 0.5), (0.25, 0.75), (0.375, 0.625)
    expected = 0.5 * sum(a * math.log(a / c) for a, c in zip(p, m)) \
        + 0.5 * sum(b * math.log(b / c) for b, c in zip(q, m))
    assert JSDLoss()(UNIFORM, SKEWED).item() == pytest.approx(expected, abs=1e-6)
    assert JSDLoss()(SKEWED, UNIFORM).item() == pytest.approx(expected, abs=1e-6)
    assert JSDLoss()(SKEWED, SKEWED).item() == pytest.approx(0.0, abs=1e-7)
    far = torch.tensor([[100.0, -100.0]])
    assert JSDLoss()(far, -far).item() == pytest.approx(math.log(2), abs=1e-5)


def test_registry_resolves_ours_and_torch():
    assert isinstance(build_criterion({'name': 'KDLoss', 'args': None}), KDLoss)
    assert isinstance(build_criterion({'name': 'JSDLoss', 'args': {'T': 2}}), JSDLoss)
    ce = build_criterion({'name': 'CrossEntropyLoss', 'args': {'label_smoothing': 0.1}})
    assert isinstance(ce, torch.nn.CrossEntropyLoss) and ce.label_smoothing == 0.1
    with pytest.raises(KeyError, match='KDLoss'):
        build_criterion({'name': 'KDLos', 'args': None})


def test_gradient_reversal_flips_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4)
    y = grad_reverse(x)
    assert torch.equal(y, x)  # identity forward
    (y * w).sum().backward()
    assert torch.equal(x.grad, -w)
    x.grad = None
    (GradReverse(0.5)(x) * w).sum().backward()
    assert torch.allclose(x.grad, -0.5 * w)


def test_dynamic_scores_hand_example():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 1.0]])
    logits_sp = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1, 1])
    out = dynamic_scores(logits, logits_sp, labels)
    assert out['dynamic_score'] == pytest.approx(0.5)  # samples 1 and 2 disagree
    assert out['agreement'] == pytest.approx(0.5)
    assert out['Acc@1'] == pytest.approx(75.0)  # video right on 0, 1, 3
    assert out['Acc@1_sp'] == pytest.approx(75.0)  # spatial right on 0, 2, 3
    kl = [KDLoss()(logits_sp[i:i + 1], logits[i:i + 1]).item() for i in range(4)]
    assert out['kl'] == pytest.approx(sum(kl) / 4, abs=1e-6)
    ce = F.cross_entropy(logits, labels, reduction='none')
    ce_sp = F.cross_entropy(logits_sp, labels, reduction='none')
    per = [1 - math.exp(-max(0.0, float(a - b))) for a, b in zip(ce_sp, ce)]
    assert per[2] == 0.0 and per[1] > 0  # the spatial model is better on sample 2
    assert out['dynamic_score_sample'] == pytest.approx(sum(per) / 4, abs=1e-6)
    rows = per_class_scores(logits, logits_sp, labels, n_class=3)
    assert [r['n'] for r in rows] == [1, 3, 0]
    assert rows[0]['dynamic_score'] == 0.0 and rows[1]['dynamic_score'] == pytest.approx(2 / 3)
    assert math.isnan(rows[2]['dynamic_score'])  # absent class: NaN, not a crash


def test_published_loss_arguments():
    """``temperature`` and ``reduction: batchmean`` as the published configs pass them."""
    x, t = torch.randn(5, 7), torch.randn(5, 7)
    for cls in (KDLoss, JSDLoss):
        assert cls(temperature=3.0, reduction='batchmean')(x, t).item() == pytest.approx(cls(T=3.0)(x, t).item())
        assert cls(T=3.0, temperature=3.0).T == 3.0
        with pytest.raises(ValueError):
            cls(T=2.0, temperature=3.0)
    # batchmean as torch defines it: KLDivLoss summed over classes, divided by the batch size
    torch_kd = F.kl_div(F.log_softmax(x, 1), F.log_softmax(t, 1), reduction='batchmean', log_target=True)
    assert KDLoss(reduction='batchmean')(x, t).item() == pytest.approx(torch_kd.item(), rel=1e-5)
    crit = build_criterion({'name': 'KDLoss', 'args': {'temperature': 1.0}}, reduction='batchmean')
    assert crit(x, t).item() == pytest.approx(KDLoss()(x, t).item())
