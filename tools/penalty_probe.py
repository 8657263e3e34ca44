"""Why does DRL-dir not act on my model? What one step along the penalty's gradient does to the penalty.

    python tools/penalty_probe.py configs/scenemotion/res3d18.yaml --pretrain CKPT [--shuffle] [--batches 8]

DRL-dir pushes ``f`` away from its own prediction on a static clip: it maximises
``KL(p_θ(x) ‖ p_θ(x_s))`` with the static side detached, i.e. it follows the gradient as if
``p(x_s)`` stayed where it is. Both sides are computed by the same weights, though: a step that
moves ``p(x)`` through features a static clip shares (scene, appearance) moves ``p(x_s)`` with
it, and the penalty does not grow. Per batch (model in eval mode, so batches do not interact),
with ``g`` = the gradient of the detached penalty and a step ``θ' = θ + lr·g``:

* ``predicted``: first-order gain ``lr·‖g‖²``;
* ``detached``: ``KL(p_θ'(x) ‖ p_θ(x_s)) − KL``, the gain if the static side stayed put;
* ``actual``: ``KL(p_θ'(x) ‖ p_θ'(x_s)) − KL``, the gain the training really gets.

``actual / detached`` near 1: the static side does not follow, the penalty can grow; near 0 or
negative: it chases its own tail. ``cos_penalty_ce``: the cosine between the parameter steps of
the two terms (ascent on the penalty, descent on the cross-entropy); negative = they pull against
each other. Prints one line and writes ``penalty_probe.json`` beside the checkpoint (or into
``--output-dir``).
"""
import argparse
import json
import os
import sys

import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.config import load_config  # noqa: E402
from drl.static import freeze_frames, shuffle_frames  # noqa: E402
from engine.build import build_loader  # noqa: E402
from engine.checkpoint import load_pretrained  # noqa: E402
from engine.runner import run_entry  # noqa: E402
from models.outputs import logits_of  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='the config the checkpoint was trained with')
    p.add_argument('overrides', nargs='*', default=[], help='config overrides KEY=VALUE')
    p.add_argument('--pretrain', required=True, help='checkpoint of the video model')
    p.add_argument('--shuffle', action='store_true', help='shuffled instead of frozen static clips')
    p.add_argument('--batches', type=int, default=8, help='training batches to probe')
    p.add_argument('--lr', type=float, default=0.05, help='step size along the gradient (λ·lr of a run)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--output-dir', default=None)
    return p


def kl(o, o_s):
    """Mean ``KL(softmax(o) ‖ softmax(o_s))`` over the batch (``B × n`` logits)."""
    return F.kl_div(F.log_softmax(o_s, 1), F.log_softmax(o, 1), reduction='batchmean', log_target=True)


def logits(model, x):
    out = model(x)
    return logits_of(out).float()


def probe_batch(model, x, x_s, y, lr):
    """The three gains of one step (see the module docstring) for one batch, and the cosine
    between the parameter gradients of the penalty (ascended) and of the cross-entropy
    (descended): negative = the two terms of DRL-dir pull against each other."""
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        o_s = logits(model, x_s)
    o = logits(model, x)
    base = kl(o, o_s)
    grads = torch.autograd.grad(base, params, retain_graph=True)
    ce_grads = torch.autograd.grad(F.cross_entropy(o, y), params)
    dot = sum((g * -c).sum() for g, c in zip(grads, ce_grads))
    norm = (sum(g.pow(2).sum() for g in grads) * sum(c.pow(2).sum() for c in ce_grads)).sqrt()
    cos = (dot / norm.clamp(min=1e-30)).item()
    predicted = lr * sum(g.pow(2).sum() for g in grads).item()
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.add_(g, alpha=lr)
        o_new, o_s_new = logits(model, x), logits(model, x_s)
        detached, actual = kl(o_new, o_s).item() - base.item(), kl(o_new, o_s_new).item() - base.item()
        for p, g in zip(params, grads):  # undo the step
            p.sub_(g, alpha=lr)
    return {'kl': base.item(), 'predicted': predicted, 'detached': detached, 'actual': actual, 'cos_penalty_ce': cos}


def main(args):
    from datasets import build_dataset
    from models import build_model
    torch.manual_seed(args.seed)
    cfg = load_config(args.config, args.overrides)
    data = build_dataset(cfg, 'train', seed=args.seed)
    ctx = argparse.Namespace(dist=argparse.Namespace(world_size=1, rank=0), seed=args.seed,
                             device=torch.device('cpu'))
    loader = build_loader(data, cfg, ctx, train=True, workers=0)
    model = build_model(cfg['model'])
    load_pretrained(model, args.pretrain, copy_head=True)
    model.eval()
    gen = torch.Generator().manual_seed(args.seed)
    rows = []
    for i, batch in enumerate(loader):
        if i >= args.batches:
            break
        x = batch['video']
        x_s = shuffle_frames(x, gen) if args.shuffle else freeze_frames(x)
        rows.append(probe_batch(model, x, x_s, batch['label'], args.lr))
    doc = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    doc.update(ratio_actual_detached=doc['actual'] / doc['detached'] if doc['detached'] else float('nan'),
               batches=len(rows), lr=args.lr, static='shuffled' if args.shuffle else 'frozen',
               checkpoint=args.pretrain)
    out = args.output_dir or os.path.dirname(os.path.abspath(args.pretrain))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'penalty_probe.json'), 'w') as f:
        json.dump(doc, f, indent=1)
    print(f"KL {doc['kl']:.4g} | gain of one step: predicted {doc['predicted']:.4g}, static side held "
          f"{doc['detached']:.4g}, actual {doc['actual']:.4g} (actual / held = {doc['ratio_actual_detached']:.3g}); "
          f"cosine(ascent on the penalty, descent on CE) {doc['cos_penalty_ce']:.3g}")
    return doc


if __name__ == '__main__':
    run_entry(main, get_args_parser().parse_args())
