"""Training-step throughput: this project's step against the published way, in one run.

For each workload the same model weights, the same batch and the same device run two steps:

* **published**: the computation of the authors' code (docs/drl.md), re-implemented plainly:
  fp32, ``optimizer.zero_grad()`` / ``loss.backward()`` / ``optimizer.step()``; the attack runs
  the spatial model as it is (NCHW layout, BatchNorm layers kept, weights still requiring
  gradients) and takes ``torch.autograd.grad`` w.r.t. the perturbed clip; DRL-dir's static
  forward ``f(x_s)`` builds a graph and is detached afterwards.
* **ours**: the step objects the entry scripts use (``supervised.step.ClassifierStep``,
  ``drl.steps``, ``drl.attacks``) in the engine's sequence (forward, ``zero_grad(set_to_none=
  True)``, finiteness check, backward, update). Its speed-ups over the published way are
  exactly these: (a) numerically neutral: the spatial model's weights stop requiring
  gradients during the attack, and DRL-dir's static forward runs under ``no_grad`` (no graph
  kept); (b) changing rounding only: the spatial model is channels-last (``drl.build`` always
  converts it) and the attack runs on a copy with BatchNorm folded into the convolutions
  (``fuse_bn``). The baseline step has none unless ``--channels-last`` / ``--amp bf16`` are
  given, so its ratio shows the noise floor. Ours also pays for its diagnostics (metrics, and in DRL-aug one
  extra no-grad forward of the spatial model on the perturbed clips).

Before timing, two checks (a failure stops the run: timings of unequal work are not printed):

1. The algorithm: our step *without* its layout / BN-folding speed-ups and the published step
   run once from identical weights on the same batch, in fp32, and must agree on the loss,
   every gradient, every weight update and every BatchNorm statistic (norm-wise relative
   error ≤ ``--rtol``), and on the perturbed clip: at most a ``--flip-tol`` fraction of its
   entries may differ, by a sign step (the two sum the attack loss and the steps in a different
   order; the sign of a near-zero input gradient can flip). The published step then continues
   from our perturbed clip, so the rest of the step is compared tightly. The checked step also
   warms both up.
2. The speed-ups: our channels-last / BN-folded models give the same video-model logits and
   the same spatial-model logits (≤ ``--fn-rtol``) and attack input gradients (≤
   ``--grad-rtol``: where rounding decides a ReLU or max-pool near-tie, gradient takes
   another path) as the plain models. They are not compared through a whole step: on an untrained pair of models
   the distillation gradient ``softmax(g) − softmax(f)`` is a difference of near-equal numbers,
   and iterated sign steps amplify rounding, so fp32 rounding alone moves whole-step results
   by ~1 % (and flips a few % of the attack's signs) at full size. With ``--amp bf16`` the
   timed step runs in bf16 (rounding only; the checks run in fp32).

Timing: ``--repeats`` rounds, each one step of each variant, alternating the order (ABBA) so
load changes on a shared machine hit both; clips/s from the median step time; the ratio is the
median over rounds of (published step time / our step time) in the same round.

    python benchmarks/train_step.py                                  # baseline + DRL-FGSM
    python benchmarks/train_step.py --workload drl-fgsm drl-pgd drl-dir --repeats 6
    python benchmarks/train_step.py --device cuda --amp bf16 --channels-last
    python benchmarks/train_step.py --batch 2 --frames 4 --size 32 --repeats 1   # seconds

De-biasing workloads (``stillmix``, ``be``, ``fame``, ``albar``, ``mixup``, ``cutmix``): the
cost of a method, i.e. the training step of ``ClassifierStep`` with the method (built by
``debias.build_method`` at its config defaults; BE as in configs/scenemotion/res3d18-be.yaml)
against the plain step, same weights, batch and optimiser, timed in interleaved rounds; no
equivalence check (the work differs by design). The figure is the median over rounds of
(method step time / plain step time): 1.0 = free, 3.0 = three plain steps' time.

    python benchmarks/train_step.py --workload stillmix be fame albar mixup cutmix \
        --batch 8 --frames 8 --size 48 --width 0.25 --classes 8 --repeats 6   # SceneMotion-sized

Last lines: ``ratio <workload>=<ours/published>`` for the DRL workloads and the baseline,
``cost <workload>=<method/plain>`` for the de-biasing ones.
"""
import argparse
import contextlib
import copy
import os
import statistics
import sys
import time

import torch
from torch.nn import CrossEntropyLoss
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.config import fill_defaults
from debias import build_method
from drl.attacks import FGSM, PGD, eval_mode, fuse_conv_bn
from drl.build import build_drl_optimizer
from drl.steps import DRLAugStep, DRLDirStep
from engine.build import to_memory_format
from engine.losses import KDLoss
from engine.runner import engine_kernels
from models import build_model
from supervised.step import ClassifierStep

WORKLOADS = ('baseline', 'drl-fgsm', 'drl-pgd', 'drl-dir')
# de-biasing workloads: the ``augment`` block of each (the schema fills the other defaults)
DEBIAS = {'stillmix': {'name': 'stillmix'},
          'be': {'name': 'background_erasing', 'mix': [0.0, 0.5], 'consistency': 1.0},
          'fame': {'name': 'fame'}, 'albar': {'name': 'albar'},
          'mixup': {'name': 'mixup'}, 'cutmix': {'name': 'cutmix'}}
STD = [0.229, 0.224, 0.225]
# configs/drl/fgsm-e3-i5.yaml, pgd-e3-i7.yaml, kd0.5-freeze.yaml
ATTACK = {'drl-fgsm': {'eps': 0.03, 'iters': 5, 'momentum': 1.0},
          'drl-pgd': {'eps': 0.03, 'alpha': 0.008, 'iters': 7}}
LAMBDA = 0.5
SGD_F = {'lr': 0.01, 'momentum': 0.9, 'weight_decay': 1e-4}   # baseline (configs/k400)
SGD_G = {'lr': 0.01, 'momentum': 0.9, 'weight_decay': 1e-4}   # DRL: spatial model group
SGD_F_DRL = {'lr': 0.01}                                       # DRL: video model group


class NotEquivalent(AssertionError):
    """The two variants did not compute the same step."""


# ---------------------------------------------------------------- the published way
def published_fgsm(g, x, y_hat, eps, iters, momentum):
    """Iterative FGSM with momentum on the clip itself (docs/drl.md)."""
    std = torch.tensor(STD, device=x.device).view(1, 1, 3, 1, 1, 1)
    x_adv, g_prev = x.detach().clone(), None
    for _ in range(iters):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(g(x_adv), y_hat)
        grad, = torch.autograd.grad(loss, x_adv)
        if momentum and g_prev is not None:
            grad = grad + momentum * g_prev
        g_prev = grad
        x_adv = x_adv.detach() + eps / iters * grad.sign() / std
    return x_adv.detach()


def published_pgd(g, x, y_hat, eps, alpha, iters):
    """PGD with a uniform random start in the L∞ ball, projected after every step."""
    std = torch.tensor(STD, device=x.device).view(1, 1, 3, 1, 1, 1)
    bound = eps / std
    x_adv = x + (2 * torch.rand(x.shape, device=x.device) - 1) * bound
    for _ in range(iters):
        x_adv = x_adv.detach().requires_grad_(True)
        loss = F.cross_entropy(g(x_adv), y_hat)
        grad, = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + alpha * grad.sign() / std
        x_adv = torch.min(torch.max(x_adv, x - bound), x + bound)
    return x_adv.detach()


def published_kd(o_student, o_teacher, reduction='batchmean'):
    """``KL(softmax(teacher) ‖ softmax(student))``, T = 1."""
    kl = F.kl_div(F.log_softmax(o_student, 1), F.softmax(o_teacher, 1), reduction='none').sum(1)
    return kl.mean() if reduction == 'batchmean' else kl


class Published:
    """One training step of ``workload`` the way the authors' scripts compute it."""

    def __init__(self, workload, f, g, attack_args=None):
        self.workload, self.f, self.g = workload, f, g
        self.attack_args = attack_args or ATTACK.get(workload)
        if workload == 'baseline':
            self.optimizer = torch.optim.SGD(f.parameters(), **SGD_F)
        else:
            groups = ([{'params': g.parameters(), **SGD_G}] if g is not None else []) + \
                     [{'params': f.parameters(), **SGD_F_DRL}]
            self.optimizer = torch.optim.SGD(groups)
        self.last = {}
        self.inject = None   # the check: continue from this perturbed clip instead of our own

    def train(self):
        self.f.train()
        if self.g is not None:
            self.g.train()

    def __call__(self, batch):
        x, y = batch['video'], batch['label']
        if self.workload == 'baseline':
            loss = F.cross_entropy(self.f(x), y)
        elif self.workload == 'drl-dir':
            o = self.f(x)
            x_s = x[:, :, :, :1].repeat(1, 1, 1, x.shape[3], 1, 1)   # first frame, repeated
            o_s = self.f(x_s).detach()
            loss = F.cross_entropy(o, y) - LAMBDA * published_kd(o_s, o, 'none').mean()
        else:
            o, o_sp = self.f(x), self.g(x)
            loss_sp = published_kd(o_sp, o.detach())
            y_hat = o.detach().argmax(1)
            self.g.eval()
            attack = published_fgsm if self.workload == 'drl-fgsm' else published_pgd
            x_adv = attack(self.g, x, y_hat, **self.attack_args)
            self.g.train()
            self.last = {'x_adv': x_adv}
            if self.inject is not None:
                x_adv = self.inject
            loss_adv = F.cross_entropy(self.f(x_adv), y)
            loss = (F.cross_entropy(o, y) + loss_adv) / 2 + loss_sp
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach()


# ---------------------------------------------------------------- this project's step
class Ours:
    """The entry scripts' step object for ``workload``, driven as ``engine.engine`` drives it."""

    def __init__(self, workload, f, g, amp='off', fuse_bn=True, attack_args=None, method=None):
        self.workload, self.f, self.g, self.amp = workload, f, g, amp
        args = attack_args or ATTACK.get(workload)
        sp_opt = {'optimizer': {'name': 'SGD', 'model_sp': {'args': SGD_G}, 'model': {'args': SGD_F_DRL}}}
        if workload == 'baseline':   # with ``method``: a de-biasing workload
            self.step = ClassifierStep(f, CrossEntropyLoss(), method=method)
            self.optimizer = torch.optim.SGD(f.parameters(), **SGD_F)
        elif workload == 'drl-dir':
            self.step = DRLDirStep(f, None, KDLoss(reduction='none'), lam=LAMBDA, shuffle=False)
            self.optimizer = build_drl_optimizer(sp_opt, f=f)[0]
        else:
            cls = FGSM if workload == 'drl-fgsm' else PGD
            attack = cls(**args, scale=STD, dim=2, fuse_bn=fuse_bn)
            self.step = DRLAugStep(f, g, KDLoss(), attack=attack)
            self.optimizer = build_drl_optimizer(sp_opt, f=f, g=g)[0]
        self.last = {}
        if workload in ('drl-fgsm', 'drl-pgd'):
            self.step.attack = _Recording(self.step.attack, self.last)

    def train(self):
        self.step.train(True)

    def __call__(self, batch):
        ctx = (torch.autocast(batch['video'].device.type, dtype=torch.bfloat16)
               if self.amp == 'bf16' else contextlib.nullcontext())
        with engine_kernels(batch['video'].device, self.amp):
            with ctx:
                out = self.step.train_step(batch)
            self.optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(out.loss):
                raise FloatingPointError('non-finite loss')
            out.loss.backward()
            self.optimizer.step()
        return out.loss.detach()


class _Recording:
    """An attack that also keeps its last perturbed clip in ``store['x_adv']`` (for the check)."""

    def __init__(self, attack, store):
        self.attack, self.store = attack, store

    def __call__(self, model, x, y):
        self.store['x_adv'] = x_adv = self.attack(model, x, y)
        return x_adv

    def __getattr__(self, name):
        return getattr(self.attack, name)


# ---------------------------------------------------------------- models, batch
def build_models(workload, depth, n_class, width, device, seed):
    """``(f, g)`` with deterministic weights (``g`` is ``None`` for baseline / DRL-dir)."""
    torch.manual_seed(seed)
    f = build_model({'name': 'resnet3d', 'args': {'model_depth': depth, 'n_class': n_class,
                                                  'widen_factor': width}}).to(device)
    g = None
    if workload in ('drl-fgsm', 'drl-pgd'):
        g = build_model({'name': 'resnet2d', 'args': {'model_depth': 18, 'n_class': n_class,
                                                      'widen_factor': width}}).to(device)
    return f, g


PLAIN = {'channels_last': False, 'sp_channels_last': False, 'fuse_bn': False}


def make_ours(workload, f0, g0, amp='off', channels_last=False, sp_channels_last=True, fuse_bn=True):
    """Our step on copies of ``f0`` / ``g0``, with the given layout / fusion speed-ups."""
    f, g = copy.deepcopy(f0), copy.deepcopy(g0)
    if channels_last:                 # the scripts' --channels-last flag (engine.build.prepare_model)
        to_memory_format(f)
    if g is not None and (sp_channels_last or channels_last):
        to_memory_format(g)           # drl.build always lays the spatial model out channels-last
    return Ours(workload, f, g, amp=amp, fuse_bn=fuse_bn)


def make_pair(workload, f0, g0, published_args=None, **ours_opts):
    """``(published, ours)`` on independent copies of the same weights."""
    pub = Published(workload, copy.deepcopy(f0), copy.deepcopy(g0), attack_args=published_args)
    return pub, make_ours(workload, f0, g0, **ours_opts)


def uses_speedups(workload, opts):
    """Whether ``opts`` make our step differ from its plain form (layout / BN folding)."""
    if opts['channels_last']:
        return True
    return workload in ATTACK and (opts['sp_channels_last'] or opts['fuse_bn'])


def _rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


def check_same_function(f0, g0, ours, batch):
    """The speed-ups change rounding only: our (channels-last / BN-folded) models against the
    plain ones, in eval mode on ``batch``: video-model logits, and for the attacked spatial
    model its logits and the attack's input gradient. Call before ``ours`` trains.

    Returns:
        ``{'logits': err, 'input_grad': err}``, largest norm-wise relative errors.
    """
    x, out = batch['video'], {'logits': 0.0, 'input_grad': 0.0}
    with torch.no_grad(), eval_mode(f0), eval_mode(ours.f):
        out['logits'] = _rel(ours.f(x), f0(x))
    if g0 is not None:
        net = fuse_conv_bn(ours.g) if ours.step.attack.fuse_bn else ours.g
        with eval_mode(g0), eval_mode(ours.g), eval_mode(net):
            res = []
            for model in (net, g0):
                xi = x.detach().clone().requires_grad_(True)
                logits = model(xi)
                grad, = torch.autograd.grad(F.cross_entropy(logits, batch['label']), xi)
                res.append((logits.detach(), grad))
        out['logits'] = max(out['logits'], _rel(res[0][0], res[1][0]))
        out['input_grad'] = _rel(res[0][1], res[1][1])
    return out


def make_batch(batch, frames, size, n_class, device, seed):
    g = torch.Generator().manual_seed(seed)
    return {'video': torch.randn(batch, 1, 3, frames, size, size, generator=g).to(device),
            'label': torch.randint(0, n_class, (batch,), generator=g).to(device),
            'index': torch.arange(batch)}


# ---------------------------------------------------------------- the equivalence check
def _state(variant):
    """Named tensors of a variant after one step: loss/x_adv, gradients, updates, BN stats."""
    out = dict(variant.last)
    for tag, model in (('f', variant.f), ('g', variant.g)):
        if model is None:
            continue
        for name, p in model.named_parameters():
            if p.grad is not None:
                out[f'{tag}.grad.{name}'] = p.grad.detach().float().contiguous()
        for name, b in model.named_buffers():
            if b.is_floating_point():
                out[f'{tag}.buffer.{name}'] = b.detach().float().contiguous()
    return out


def one_step_state(variant, batch, seed):
    """Run one step; return ``{name: tensor}`` (loss, x_adv, grads, weight updates, BN stats)."""
    before = {f'{t}.update.{n}': p.detach().float().clone()
              for t, m in (('f', variant.f), ('g', variant.g)) if m is not None
              for n, p in m.named_parameters()}
    variant.train()
    torch.manual_seed(seed)           # the same random start for PGD
    loss = variant(batch)
    state = _state(variant)
    state['loss'] = loss.float().reshape(1)
    params = {f'{t}.update.{n}': p for t, m in (('f', variant.f), ('g', variant.g)) if m is not None
              for n, p in m.named_parameters()}
    for k, p0 in before.items():
        state[k] = params[k].detach().float() - p0
    return state


def check_pair(pub, ours, batch, seed=0, rtol=1e-3, flip_tol=0.01):
    """One step of each variant from the same weights on ``batch``; :func:`compare_states`.

    With an attack, both compute their perturbed clip and those are compared (sign-step
    tolerance); the published step then continues from ours, so that the rest of the step
    (video model on the perturbed clip, losses, gradients, update) is compared tightly
    rather than through the few entries that rounding flipped.
    """
    a = one_step_state(ours, batch, seed)
    pub.inject = a.get('x_adv')
    try:
        b = one_step_state(pub, batch, seed)
    finally:
        pub.inject = None
    return compare_states(a, b, rtol, flip_tol)


def compare_states(a, b, rtol=1e-3, flip_tol=0.01):
    """Compare two :func:`one_step_state` results.

    Every tensor must match in norm-wise relative error ``‖a − b‖ / ‖b‖ ≤ rtol``, except the
    perturbed clip ``x_adv``, whose entries may differ (by one sign step) in at most a
    ``flip_tol`` fraction. Returns ``{'worst': (name, err), 'flips': fraction}``.

    Raises:
        NotEquivalent: listing the tensors that differ.
    """
    problems, worst, flips = [], ('', 0.0), 0.0
    if set(a) != set(b):
        problems.append(f'different tensors: {sorted(set(a) ^ set(b))[:5]}')
    for k in sorted(set(a) & set(b), key=lambda k: (k not in ('loss', 'x_adv'), k)):
        ta, tb = a[k].detach().float().cpu(), b[k].detach().float().cpu()
        if ta.shape != tb.shape:
            problems.append(f'{k}: shape {tuple(ta.shape)} vs {tuple(tb.shape)}')
            continue
        if k == 'x_adv':
            flips = ((ta - tb).abs() > 1e-4 * (1 + tb.abs())).float().mean().item()
            if flips > flip_tol:
                problems.append(f'x_adv: {100 * flips:.3f} % of entries differ (allowed '
                                f'{100 * flip_tol:.3f} %)')
            continue
        err = ((ta - tb).norm() / tb.norm().clamp_min(1e-12)).item()
        if not err <= rtol:
            problems.append(f'{k}: relative error {err:.2e} > {rtol:.0e}')
        if err > worst[1]:
            worst = (k, err)
    if problems:
        raise NotEquivalent('; '.join(problems[:8]) + (' ...' if len(problems) > 8 else ''))
    return {'worst': worst, 'flips': flips}


# ---------------------------------------------------------------- timing
def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def timed(variant, batch, device):
    _sync(device)
    t0 = time.perf_counter()
    variant(batch)
    _sync(device)
    return time.perf_counter() - t0


def time_pair(pub, ours, batch, device, repeats, warmup=0, warm_ours=0):
    """Interleaved rounds (ABBA order) -> ``(published seconds, our seconds)`` lists, after
    ``warmup`` untimed rounds and ``warm_ours`` untimed steps of ours alone."""
    pub.train()
    ours.train()
    for _ in range(warmup):
        pub(batch)
        ours(batch)
    for _ in range(warm_ours):
        ours(batch)
    t_pub, t_our = [], []
    for r in range(repeats):
        if r % 2 == 0:
            t_pub.append(timed(pub, batch, device))
            t_our.append(timed(ours, batch, device))
        else:
            t_our.append(timed(ours, batch, device))
            t_pub.append(timed(pub, batch, device))
    return t_pub, t_our


def time_step(step, optimizer, batch, n_warmup, n_steps, amp, device):
    """Seconds per engine-equivalent step (forward, zero_grad, backward, update) of one step
    object, without a published counterpart (used by ``benchmarks/gpu.py``)."""
    step.train(True)
    ctx = (torch.autocast(device.type, dtype=torch.bfloat16) if amp == 'bf16'
           else contextlib.nullcontext())
    times = []
    for i in range(n_warmup + n_steps):
        _sync(device)
        t0 = time.perf_counter()
        with engine_kernels(device, amp):
            with ctx:
                out = step.train_step(batch)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
        _sync(device)
        if i >= n_warmup:
            times.append(time.perf_counter() - t0)
    return times


# ---------------------------------------------------------------- main
def run_workload(workload, args, device, batch):
    f0, g0 = build_models(workload, args.depth, args.classes, args.width, device, args.seed)
    fast = {'channels_last': args.channels_last, 'sp_channels_last': not args.no_sp_channels_last,
            'fuse_bn': not args.no_fuse_bn}
    # 1. the algorithm: our step without its layout / BN-folding speed-ups, fp32, against the
    #    published way, one step from the same weights on the same batch
    pub, ours = make_pair(workload, f0, g0, amp='off', **PLAIN)
    res = check_pair(pub, ours, batch, args.seed, rtol=args.rtol, flip_tol=args.flip_tol)
    name, err = res['worst']
    flips = f', x_adv entries differing by a sign step {100 * res["flips"]:.3f} %' \
        if workload in ATTACK else ''
    print(f'{workload:9s} check: same loss, gradients, updates and BN statistics after one step '
          f'(worst relative error {err:.1e} in {name or "-"}{flips})', flush=True)
    warm_ours = 0
    if uses_speedups(workload, fast):
        # 2. the speed-ups compute the same functions (they change rounding only)
        ours = make_ours(workload, f0, g0, **fast)
        err = check_same_function(f0, g0, ours, batch)
        for key, tol in (('logits', args.fn_rtol), ('input_grad', args.grad_rtol)):
            if not err[key] <= tol:
                raise NotEquivalent(f'speed-ups: {key} relative error {err[key]:.2e} > {tol:.0e}')
        print(f'{workload:9s} check: speed-ups {fast} give the same logits (relative error '
              f'{err["logits"]:.1e}) and attack input gradients ({err["input_grad"]:.1e})', flush=True)
        warm_ours = 1
    ours.amp = args.amp   # with bf16 the timed step differs from the checked one in rounding only
    t_pub, t_our = time_pair(pub, ours, batch, device, args.repeats, args.warmup, warm_ours)
    n = batch['label'].shape[0]
    r_pub, r_our = n / statistics.median(t_pub), n / statistics.median(t_our)
    paired = [a / b for a, b in zip(t_pub, t_our)]
    ratio = statistics.median(paired)
    print(f'{workload:9s} published {r_pub:8.3f} clips/s | ours {r_our:8.3f} clips/s | '
          f'ours/published {ratio:.2f}× (median of {len(paired)} paired rounds, '
          f'{min(paired):.2f}–{max(paired):.2f}) | s/step published '
          f'{" ".join(f"{t:.2f}" for t in t_pub)}, ours {" ".join(f"{t:.2f}" for t in t_our)}',
          flush=True)
    return ratio


def debias_method(workload, n_class, n_frames):
    """The de-biasing method of ``workload`` (:data:`DEBIAS`) at its config defaults."""
    cfg = fill_defaults({'augment': DEBIAS[workload], 'model': {'name': 'resnet3d', 'args': {'n_class': n_class}},
                         'dataset': {'args': {'train': {'n_frames': n_frames}}}})
    return build_method(cfg)


def run_debias_workload(workload, args, device, batch):
    """Time the plain classification step and the step with ``workload``'s method, interleaved,
    from the same weights; returns the median over rounds of method time / plain time."""
    f0, _ = build_models('baseline', args.depth, args.classes, args.width, device, args.seed)
    method = debias_method(workload, args.classes, args.frames)
    plain = Ours('baseline', copy.deepcopy(f0), None, amp=args.amp)
    with_method = Ours('baseline', copy.deepcopy(f0), None, amp=args.amp, method=method)
    t_plain, t_method = time_pair(plain, with_method, batch, device, args.repeats, max(1, args.warmup))
    n = batch['label'].shape[0]
    paired = [m / p for p, m in zip(t_plain, t_method)]
    cost = statistics.median(paired)
    print(f'{workload:9s} plain {n / statistics.median(t_plain):8.3f} clips/s | with {method!r} '
          f'{n / statistics.median(t_method):8.3f} clips/s | method/plain {cost:.2f}× (median of '
          f'{len(paired)} paired rounds, {min(paired):.2f}–{max(paired):.2f})', flush=True)
    return cost


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--workload', nargs='+', default=['baseline', 'drl-fgsm'], choices=WORKLOADS + tuple(DEBIAS),
                   help='DRL workloads (ours vs the published way) and de-biasing methods (vs the plain step)')
    p.add_argument('--device', default='auto', help='auto (cuda if available), cpu, cuda, cuda:N')
    p.add_argument('--threads', type=int, default=2, help='CPU threads (BENCHMARKS §3 uses 2)')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--frames', type=int, default=16)
    p.add_argument('--size', type=int, default=112)
    p.add_argument('--depth', type=int, default=18, help='R3D depth (the spatial model is ResNet-18)')
    p.add_argument('--width', type=float, default=1.0, help='widen_factor of both models (≤ 1)')
    p.add_argument('--classes', type=int, default=400)
    p.add_argument('--repeats', type=int, default=4,
                   help='timed rounds (one step of each variant; even: the ABBA order balances)')
    p.add_argument('--warmup', type=int, default=0,
                   help='extra untimed rounds (the checked step warms both up; a step with '
                        'speed-ups gets at least one)')
    p.add_argument('--amp', default='off', choices=['off', 'bf16'], help='ours only (engine autocast)')
    p.add_argument('--channels-last', action='store_true', help="ours: the scripts' --channels-last")
    p.add_argument('--no-sp-channels-last', action='store_true', help='ours: spatial model NCHW (ablation)')
    p.add_argument('--no-fuse-bn', action='store_true', help='ours: attack with BN layers (ablation)')
    p.add_argument('--rtol', type=float, default=1e-3, help='equivalence: norm-wise relative error')
    p.add_argument('--flip-tol', type=float, default=0.01,
                   help='equivalence: fraction of x_adv entries allowed to differ by a sign step')
    p.add_argument('--fn-rtol', type=float, default=1e-3, help='speed-up check: logits')
    p.add_argument('--grad-rtol', type=float, default=1e-2,
                   help='speed-up check: attack input gradients (ReLU / max-pool near-ties '
                        'route some gradient differently under other rounding)')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.repeats < 1:
        raise SystemExit('--repeats must be >= 1')
    torch.set_num_threads(args.threads)
    device = torch.device(('cuda' if torch.cuda.is_available() else 'cpu') if args.device == 'auto'
                          else args.device)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True   # process-wide: the same for both variants
    batch = make_batch(args.batch, args.frames, args.size, args.classes, device, args.seed)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    print(f'device {device} ({name}) | threads {torch.get_num_threads()} | torch {torch.__version__} | '
          f'batch {args.batch} × {args.frames}×{args.size}×{args.size} | R3D-{args.depth} width '
          f'{args.width} | ours: amp {args.amp}, channels-last {args.channels_last}, spatial '
          f'channels-last {not args.no_sp_channels_last}, attack fuse_bn {not args.no_fuse_bn}')
    if hasattr(os, 'getloadavg'):
        print('load average before: {:.2f} {:.2f} {:.2f}'.format(*os.getloadavg()), flush=True)
    ratios, costs = {}, {}
    for workload in args.workload:
        if workload in DEBIAS:
            costs[workload] = run_debias_workload(workload, args, device, batch)
            continue
        try:
            ratios[workload] = run_workload(workload, args, device, batch)
        except NotEquivalent as e:
            print(f'{workload:9s} check FAILED, not timed: {e}', flush=True)
            return 1
    if hasattr(os, 'getloadavg'):
        print('load average after: {:.2f} {:.2f} {:.2f}'.format(*os.getloadavg()))
    if ratios:
        print('== same-run ratios (ours/published, clips/s) ==')
    for workload, ratio in ratios.items():
        print(f'ratio {workload}={ratio:.3f}')
    if costs:
        print('== same-run step-time ratios of the de-biasing methods (method step / plain step) ==')
    for workload, cost in costs.items():
        print(f'cost {workload}={cost:.3f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
