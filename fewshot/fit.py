"""Fit the linear classifiers of many few-shot episodes at once (batched tensors).

The authors' CloserBaseline trains, per episode, a fresh ``nn.Linear`` with ``torch.optim.SGD``
(lr 0.01, momentum 0.9, dampening 0.9, weight decay 1e-3) for 100 epochs over minibatches of 4
support clips, reshuffled every epoch: 2,000 tiny steps per episode, dominated by Python and
kernel-launch overhead. Episodes are independent, so here all E classifiers are one ``E × n × D``
weight tensor and every step is a batched matmul over episodes. The loss is the *sum over
episodes* of each episode's mean cross-entropy, so each episode's gradient is exactly its own,
and the SGD update below is ``torch.optim.SGD``'s, element-wise: given the same initial weights
and minibatch order the result equals the per-episode loop (``tests/test_fewshot.py`` checks it).

Classifiers: ``softmax`` (``nn.Linear`` with bias), and two cosine classifiers (features
L2-normalised, no bias, a fixed scale): with a learnable gain per class, as the published
Baseline++ (``weight_norm``: ``w_c = g_c · v_c / ‖v_c‖``, ``g`` and ``v`` trained), or with unit
rows (``w_c / ‖w_c‖``, no gain).

Also here: the per-episode reference loop (``fit_linear_per_episode``, written the authors' way,
used by the benchmark) and the accuracy summary (mean, 95% confidence interval).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

RECIPE = dict(epochs=100, batch_size=4, lr=0.01, momentum=0.9, dampening=0.9, weight_decay=1e-3)


def linear_init(e, n_class, dim, bias=True, generator=None, device=None, dtype=torch.float32):
    """E independent draws of ``nn.Linear(dim, n_class)``'s default initialisation.

    ``nn.Linear`` uses kaiming-uniform with a=√5 for the weight and U(±1/√fan_in) for the bias;
    both reduce to U(-1/√dim, 1/√dim).

    Returns:
        ``(W: E × n_class × dim, b: E × n_class or None)``.
    """
    bound = 1.0 / math.sqrt(dim)
    w = (torch.rand(e, n_class, dim, generator=generator, dtype=dtype) * 2 - 1) * bound
    b = (torch.rand(e, n_class, generator=generator, dtype=dtype) * 2 - 1) * bound if bias else None
    return w.to(device), (b.to(device) if b is not None else None)


def cosine_scale(n_class):
    """Closer-look's cosine-classifier scale: 2, or 10 above 200 classes."""
    return 10.0 if n_class > 200 else 2.0


def normalize_rows(x, eps=1e-5):
    """``x / (‖x‖ + eps)`` along the last dimension (Closer-look's normalisation)."""
    return x / (x.norm(dim=-1, keepdim=True) + eps)


def weight_norm_rows(v, g):
    """Weight normalisation of classifier rows, as ``torch.nn.utils.weight_norm(dim=0)``:
    ``w_c = g_c · v_c / ‖v_c‖``.

    Args:
        v: ``E × n × D`` directions; g: ``E × n`` gains.
    """
    return v * (g / v.norm(dim=-1)).unsqueeze(-1)


def cosine_logits(x, w, scale):
    """``scale · x̂ · wᵀ`` with the features normalised and the rows ``w`` used as they are:
    ``E × M × D``, ``E × n × D`` -> ``E × M × n``."""
    return scale * torch.bmm(normalize_rows(x), w.transpose(1, 2))


def linear_logits(x, w, b=None, scale=None, gain=None):
    """Batched linear (or cosine, when ``scale`` is set) classifier.

    Args:
        x: ``E × M × D`` features; w: ``E × n × D``; b: ``E × n`` or None.
        scale: None for a plain linear layer; a float for a cosine classifier (features
            L2-normalised, no bias): ``scale · g_c · cos(x, w_c)`` with ``gain`` ``g: E × n``
            (weight normalisation, :func:`weight_norm_rows`), or ``scale · cos(x, w_c)`` (rows
            normalised) when ``gain`` is None.
    Returns:
        ``E × M × n`` logits.
    """
    if scale is not None:
        w = normalize_rows(w) if gain is None else weight_norm_rows(w, gain)
        return cosine_logits(x, w, scale)
    if b is None:
        return torch.bmm(x, w.transpose(1, 2))
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


def _sgd_update(params, grads, bufs, lr, momentum, dampening, weight_decay):
    """``torch.optim.SGD`` (no Nesterov) in place; the first step's buffer is the raw gradient."""
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            g = g.add(p, alpha=weight_decay) if weight_decay else g
            if bufs[i] is None:
                bufs[i] = g.clone()
            else:
                bufs[i].mul_(momentum).add_(g, alpha=1 - dampening)
            p.sub_(bufs[i], alpha=lr)


def _orders(orders, generator, e, n, device):
    """Minibatch orders per epoch: the given ``epochs × E × N`` tensor, or a fresh random
    permutation per episode per epoch (argsort of uniform noise) from ``generator``."""
    epoch = 0
    while True:
        if orders is not None:
            yield orders[epoch].to(device)
        else:
            yield torch.rand(e, n, generator=generator).argsort(dim=1).to(device)
        epoch += 1


def fit_linear_batched(x, y, n_class, *, scale=None, gain=False, init=None, orders=None,
                       generator=None, epochs=100, batch_size=4, lr=0.01, momentum=0.9,
                       dampening=0.9, weight_decay=1e-3):
    """Train E episodes' classifiers together with the authors' SGD recipe.

    Args:
        x: ``E × N × D`` support features (one row per support clip).
        y: ``E × N`` episode-local labels in ``[0, n_class)``.
        n_class: ways per episode.
        scale: None = linear softmax classifier with bias; float = cosine classifier.
        gain: with ``scale``: weight normalisation with a learnable gain per class, the
            published Baseline++ (``torch.nn.utils.weight_norm(dim=0)``: direction ``v`` and
            gain ``g`` are the trained parameters, ``g`` starts at ``‖v‖`` row by row, weight
            decay and momentum act on both); false: unit-norm rows, no gain.
        init: optional ``(W: E × n × D, b: E × n or None)``; default ``nn.Linear`` init drawn
            from ``generator``. With ``gain`` it is the initial ``v`` (and ``g = ‖v‖``).
        orders: optional ``epochs × E × N`` minibatch orders (tests); default a fresh random
            permutation per episode per epoch from ``generator``.
        generator: ``torch.Generator`` (CPU) for the initialisation and the shuffling.
    Returns:
        ``(W: E × n × D, b: E × n or None)``, detached. With ``gain`` ``W`` is the trained
        weight ``g · v / ‖v‖`` itself: score with :func:`cosine_logits` (rows used as they are);
        otherwise with :func:`linear_logits` and the same ``scale``.
    """
    if gain and scale is None:
        raise ValueError('gain applies to the cosine classifier: give a scale')
    e, n, d = x.shape
    if init is None:
        init = linear_init(e, n_class, d, bias=scale is None, generator=generator, device=x.device,
                           dtype=x.dtype)
    sgd = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay)
    order_iter = _orders(orders, generator, e, n, x.device)
    w0 = init[0].detach().to(x.device, x.dtype)
    b0 = init[1].detach().to(x.device, x.dtype) if init[1] is not None else None
    if scale is None and n < d:
        return _fit_linear_span(x, y, n_class, w0, b0, order_iter, epochs, batch_size, **sgd)
    return _fit_autograd(x, y, n_class, w0, b0, scale, order_iter, epochs, batch_size,
                         gain=gain, **sgd)


def _fit_autograd(x, y, n_class, w0, b0, scale, order_iter, epochs, batch_size, gain=False, **sgd):
    """Direct form: E × n × D weights, gradients by autograd (any classifier, e.g. cosine).
    With ``gain`` the parameters are ``v`` (from ``w0``) and ``g = ‖w0‖`` per row."""
    e = x.shape[0]
    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True) if b0 is not None else None
    g = w0.norm(dim=-1).requires_grad_(True) if gain else None
    params = [p for p in (w, b, g) if p is not None]
    bufs = [None] * len(params)
    rows = torch.arange(e, device=x.device).unsqueeze(1)
    for _ in range(epochs):
        order = next(order_iter)
        for s in range(0, x.shape[1], batch_size):
            idx = order[:, s:s + batch_size]                            # E × B
            logits = linear_logits(x[rows, idx], w, b, scale, gain=g)   # E × B × n
            # sum over episodes of each episode's mean CE: per-episode gradients stay separate
            loss = F.cross_entropy(logits.flatten(0, 1), y[rows, idx].flatten(),
                                   reduction='sum') / idx.shape[1]
            grads = torch.autograd.grad(loss, params)
            _sgd_update(params, grads, bufs, **sgd)
    if gain:
        with torch.no_grad():
            return weight_norm_rows(w, g), None
    return w.detach(), (b.detach() if b is not None else None)


def _fit_linear_span(x, y, n_class, w0, b0, order_iter, epochs, batch_size, lr, momentum,
                     dampening, weight_decay):
    """Linear classifier with few support samples (N < D), in the span of its data.

    Every SGD step adds to W a combination of support rows (the CE gradient ``dzᵀ x_batch``)
    and a multiple of W (weight decay); the momentum buffer likewise. So throughout
    ``W = c·W0 + Aᵀ·X`` with a scalar ``c`` (the same for all episodes: only weight decay moves
    it) and per-sample coefficients ``A: E × N × n``. A step costs ``N`` instead of ``D`` per
    class and reads the minibatch's rows of the Gram matrix ``X Xᵀ``. The softmax-CE gradient
    is written out (``(softmax(z) − onehot) / B``).

    Between gradients, SGD moves every coefficient pair ``(a, buf)`` by the same 2 × 2 map
    ``M`` (momentum + weight decay), so within an epoch we keep ``(a, buf) = T·(p, q)`` with a
    global ``T = M^t`` and touch only the rows a gradient reaches (``T⁻¹·injection``); ``(p, q)``
    are re-based to ``(a, buf)`` every epoch, so ``T⁻¹`` stays small (≈ 0.9^-steps).
    """
    e, n, _ = x.shape
    gram = torch.bmm(x, x.transpose(1, 2)).view(e * n, n)       # (E·N) × N
    # per sample: [x · W0 rows | onehot(y)], permuted with the Gram rows
    side = torch.cat([torch.bmm(x, w0.transpose(1, 2)), F.one_hot(y, n_class).to(x.dtype)],
                     -1).view(e * n, 2 * n_class)
    pq = x.new_zeros(e, n, 2 * n_class)                         # [p | q]; a = p, buf = q at T = I
    b = b0.clone() if b0 is not None else None
    buf_b = None
    c, buf_c, first = 1.0, 0.0, True
    offset = (torch.arange(e, device=x.device) * n).unsqueeze(1)
    k = (1 - dampening) * weight_decay
    step_map = torch.tensor([[1 - lr * k, -lr * momentum], [k, momentum]], dtype=torch.float64)
    inj = torch.tensor([-lr * (1 - dampening), 1 - dampening], dtype=torch.float64)
    for _ in range(epochs):
        order = next(order_iter)                                # E × N
        flat = order + offset                                   # rows of ``gram`` / ``side``
        t_map = torch.eye(2, dtype=torch.float64)
        for s in range(0, n, batch_size):
            sl = slice(s, s + batch_size)
            idx = order[:, sl]
            fl = flat[:, sl].reshape(-1)
            bsz = idx.shape[1]
            pqz = torch.bmm(gram.index_select(0, fl).view(e, bsz, n), pq)   # E × B × 2n
            srow = side.index_select(0, fl).view(e, bsz, 2 * n_class)
            t00, t01 = t_map[0].tolist()
            z = srow[..., :n_class] * c + pqz[..., :n_class] * t00 + pqz[..., n_class:] * t01
            if b is not None:
                z += b.unsqueeze(1)
            z -= z.amax(-1, keepdim=True)                       # softmax, then minus onehot
            z.exp_()
            z /= z.sum(-1, keepdim=True)
            z -= srow[..., n_class:]
            z /= bsz                                            # dz: dCE/dlogits (E × B × n)
            if b is not None:
                g_b = z.sum(1).add_(b, alpha=weight_decay)
                buf_b = g_b if first else buf_b.mul_(momentum).add_(g_b, alpha=1 - dampening)
                b.sub_(buf_b, alpha=lr)
            buf_c = weight_decay * c if first else momentum * buf_c + k * c
            c -= lr * buf_c
            if first:   # SGD's first step, buf = grad: from a = buf = 0 only the gradient counts
                u0, u1 = -lr, 1.0
            else:
                t_map = step_map @ t_map
                u0, u1 = torch.linalg.solve(t_map, inj).tolist()  # injection in (p, q) coords
            pq.scatter_add_(1, idx.unsqueeze(-1).expand(-1, -1, 2 * n_class),
                            torch.cat([z * u0, z * u1], -1))
            first = False
        (t00, t01), (t10, t11) = t_map.tolist()                 # re-base: (p, q) <- (a, buf)
        p, q = pq[..., :n_class].clone(), pq[..., n_class:]
        pq[..., :n_class].mul_(t00).add_(q, alpha=t01)
        q.mul_(t11).add_(p, alpha=t10)
    a = pq[..., :n_class]
    return torch.baddbmm(w0, a.transpose(1, 2), x, beta=c), b


def fit_linear_per_episode(x, y, n_class, *, scale=None, gain=False, generator=None, init=None,
                           orders=None, epochs=100, batch_size=4, lr=0.01, momentum=0.9,
                           dampening=0.9, weight_decay=1e-3):
    """The authors' way for one episode: a fresh ``nn.Linear`` + ``torch.optim.SGD``.

    Args:
        x: ``N × D`` support features; y: ``N`` labels.
        scale, gain: the classifier, as in :func:`fit_linear_batched`; ``gain`` wraps the layer
            in ``torch.nn.utils.parametrizations.weight_norm(dim=0)`` as the published
            Baseline++ does (its ``weight`` is then ``g · v / ‖v‖``).
        init: optional ``(W, b or None)`` replacing ``nn.Linear``'s draw; orders: optional
            ``epochs × N`` minibatch orders replacing ``torch.randperm`` (tests).
    Returns:
        the trained ``nn.Linear`` (for ``scale`` set: bias-free, used as a cosine classifier).
    """
    n, d = x.shape
    if generator is not None:  # nn.Linear draws from the global RNG: seed it from ours
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
    clf = nn.Linear(d, n_class, bias=scale is None).to(x.device)
    if init is not None:
        with torch.no_grad():
            clf.weight.copy_(init[0])
            if init[1] is not None:
                clf.bias.copy_(init[1])
    if gain:
        clf = nn.utils.parametrizations.weight_norm(clf, 'weight', dim=0)
    opt = torch.optim.SGD(clf.parameters(), lr=lr, momentum=momentum, dampening=dampening,
                          weight_decay=weight_decay)
    for epoch in range(epochs):
        perm = torch.randperm(n) if orders is None else orders[epoch]
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            if scale is None:
                out = clf(x[idx])
            elif gain:
                out = cosine_logits(x[idx][None], clf.weight[None], scale)[0]
            else:
                out = linear_logits(x[idx][None], clf.weight[None], None, scale)[0]
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return clf


def query_labels(e, n_way, n_query, device=None):
    """Episode-local labels of the query set (way-major): ``E × (n_way · n_query)``."""
    return torch.arange(n_way, device=device).repeat_interleave(n_query).expand(e, -1)


def summarize_accuracies(acc):
    """Mean and 95% confidence interval of per-episode accuracies.

    Args:
        acc: ``E`` accuracies in percent.
    Returns:
        dict ``Acc@1`` (mean), ``ci95`` (1.96 · std / √E, std with Bessel's correction),
        ``episodes`` (E).
    """
    acc = torch.as_tensor(acc, dtype=torch.float64)
    e = acc.numel()
    std = acc.std().item() if e > 1 else 0.0
    return {'Acc@1': acc.mean().item(), 'ci95': 1.96 * std / math.sqrt(e), 'episodes': e}


def evaluate_episodes(head, feats, support, query, rows=None, chunk=250, generator=None,
                      device=None):
    """Per-episode query accuracy of a few-shot head, episodes processed ``chunk`` at a time.

    Args:
        head: a :mod:`fewshot.heads` head, ``head(support, query, generator=...)``.
        feats: ``U × K × D`` per-clip features of the videos the episodes use.
        support: ``E × n_way × n_shot`` and query: ``E × n_way × n_query`` dataset indices.
        rows: long tensor mapping a dataset index to its row of ``feats`` (None: identity).
        chunk: episodes fitted together (bounds memory: ``chunk · n_way · n_shot · K · D``
            support floats plus the query features).
        generator: CPU generator for the heads' random init and shuffling.
        device: where the heads run (default: ``feats``' device).
    Returns:
        ``E`` accuracies in percent (float64, CPU).
    """
    device = device or feats.device
    e, n_way, n_query = query.shape
    accs = []
    for s in range(0, e, chunk):
        sup, qry = support[s:s + chunk], query[s:s + chunk]
        if rows is not None:
            sup, qry = rows[sup], rows[qry]
        logits = head(feats[sup].to(device), feats[qry].to(device), generator=generator)
        labels = query_labels(len(sup), n_way, n_query, device=logits.device)
        accs.append((logits.argmax(-1) == labels).double().mean(1).cpu() * 100)
    return torch.cat(accs)
