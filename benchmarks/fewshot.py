"""Few-shot classifier fitting: the authors' per-episode loop vs all episodes fitted together.

Both methods see the same features and the same episodes (5-way 1-shot, 5 queries per class,
16 clips per video by default). Features are synthetic unless ``--features`` is given:
class-conditional Gaussians of dimension 512 (class mean + video offset + clip noise), which is
all the classifier fit sees of a real encoder. The per-episode loop is written the authors' way
(a fresh ``nn.Linear`` and ``torch.optim.SGD`` per episode, 100 epochs × minibatches of 4) and is
timed on a subset of episodes (``--slow-episodes``, ≥ 50) then scaled to all episodes; the
batched fit (``fewshot.heads.CloserBaseline``) runs on all of them. Both run on one thread.

Last line: ``speedup=<float>`` (per-episode time scaled to all episodes / batched time).

    .venv/bin/python benchmarks/fewshot.py                 # ~1-2 min on 2 CPU cores
    .venv/bin/python benchmarks/fewshot.py --features runs/fs/feature_cache/<key>.pt
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.episodes import EpisodeSampler  # noqa: E402
from fewshot.fit import evaluate_episodes, fit_linear_per_episode, linear_logits, summarize_accuracies  # noqa: E402
from fewshot.heads import CloserBaseline  # noqa: E402


def synthetic_features(n_class, per_class, clips, dim, seed):
    """Class-conditional Gaussian clip features.

    Returns:
        ``(feats: V × clips × dim, labels: V)`` with ``V = n_class · per_class``.
    """
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_class, 1, 1, dim, generator=g) * 0.5
    video = torch.randn(n_class, per_class, 1, dim, generator=g) * 1.0
    clip = torch.randn(n_class, per_class, clips, dim, generator=g) * 0.5
    # non-negative like pooled ReLU features, with a shared offset
    feats = (means + video + clip + 1.0).clamp_min(0).flatten(0, 1)
    return feats, torch.arange(n_class).repeat_interleave(per_class)


def load_features(path):
    """A feature cache written by ``fewshot.features`` (``feat``: V × K × D, ``label``: V)."""
    blob = torch.load(path, map_location='cpu', weights_only=True)
    return blob['feat'].float(), blob['label']


def per_episode(feats, support, query, seed):
    """The authors' loop: per episode a fresh classifier, trained then scored alone.

    Returns:
        ``E`` accuracies in percent.
    """
    g = torch.Generator().manual_seed(seed)
    accs = []
    for sup, qry in zip(support, query):
        n_way, n_shot = sup.shape
        k, d = feats.shape[1:]
        x = feats[sup].reshape(-1, d)                               # (n_way·n_shot·K) × D
        y = torch.arange(n_way).repeat_interleave(n_shot * k)
        clf = fit_linear_per_episode(x, y, n_way, generator=g)
        with torch.no_grad():
            q = feats[qry].reshape(-1, k, d)                        # Q × K × D
            scores = linear_logits(q.reshape(1, -1, d), clf.weight[None], clf.bias[None])
            pred = scores.reshape(-1, k, n_way).mean(1).argmax(-1)
        labels = torch.arange(n_way).repeat_interleave(qry.shape[1])
        accs.append((pred == labels).double().mean().item() * 100)
    return torch.tensor(accs, dtype=torch.float64)


def fmt(summary):
    return f'{summary["Acc@1"]:.2f} ± {summary["ci95"]:.2f} % ({summary["episodes"]} episodes)'


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--episodes', type=int, default=1000)
    p.add_argument('--slow-episodes', type=int, default=100, help='episodes timed with the per-episode loop (>= 50)')
    p.add_argument('--n-way', type=int, default=5)
    p.add_argument('--n-shot', type=int, default=1)
    p.add_argument('--n-query', type=int, default=5)
    p.add_argument('--clips', type=int, default=16)
    p.add_argument('--dim', type=int, default=512)
    p.add_argument('--classes', type=int, default=64, help='synthetic novel classes')
    p.add_argument('--per-class', type=int, default=20, help='synthetic videos per class')
    p.add_argument('--chunk', type=int, default=1000, help='episodes fitted together')
    p.add_argument('--features', default=None, help='a feature cache .pt (real encoder features)')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args()
    if args.slow_episodes < 50:
        p.error('--slow-episodes must be >= 50')
    torch.set_num_threads(1)
    if args.features:
        feats, labels = load_features(args.features)
        source = f'real features from {args.features}'
    else:
        feats, labels = synthetic_features(args.classes, args.per_class, args.clips, args.dim, args.seed)
        source = (f'synthetic class-conditional Gaussian features ({args.classes} classes × '
                  f'{args.per_class} videos)')
    print(f'features: {source}: {feats.shape[0]} videos × {feats.shape[1]} clips × {feats.shape[2]} dims')
    sampler = EpisodeSampler(labels.tolist(), args.n_way, args.n_shot, args.n_query, args.episodes,
                             seed=args.seed)
    ep = sampler.draw()
    print(f'{args.episodes} episodes, {args.n_way}-way {args.n_shot}-shot, {args.n_query} queries per '
          f'class; classifier: SGD lr 0.01 mom 0.9 damp 0.9 wd 1e-3, 100 epochs, batch 4; '
          f'torch threads: 1 for both methods')

    n_slow = min(args.slow_episodes, args.episodes)
    t0 = time.perf_counter()
    acc_slow = per_episode(feats, ep.support[:n_slow], ep.query[:n_slow], args.seed)
    t_slow = (time.perf_counter() - t0) * args.episodes / n_slow
    print(f'per-episode (authors\' loop): timed on {n_slow} episodes, scaled to {args.episodes}: '
          f'{t_slow:.1f} s, {args.episodes / t_slow:.2f} episodes/s')

    head = CloserBaseline(method='softmax')
    g = torch.Generator().manual_seed(args.seed + 1)
    t0 = time.perf_counter()
    acc_fast = evaluate_episodes(head, feats, ep.support, ep.query, chunk=args.chunk, generator=g)
    t_fast = time.perf_counter() - t0
    print(f'batched (all {args.episodes} episodes, {min(args.chunk, args.episodes)} at a time): {t_fast:.1f} s, '
          f'{args.episodes / t_fast:.1f} episodes/s')

    s_slow, s_fast = summarize_accuracies(acc_slow), summarize_accuracies(acc_fast)
    s_same = summarize_accuracies(acc_fast[:n_slow])
    lo, hi = s_slow['Acc@1'] - s_slow['ci95'], s_slow['Acc@1'] + s_slow['ci95']
    inside = lo <= s_fast['Acc@1'] <= hi
    print(f'accuracy per-episode: {fmt(s_slow)}')
    print(f'accuracy batched:     {fmt(s_fast)}  -> {"inside" if inside else "OUTSIDE"} the '
          f'per-episode 95% CI [{lo:.2f}, {hi:.2f}]')
    print(f'accuracy batched on the same {n_slow} episodes: {fmt(s_same)} '
          f'(different random init and shuffling than the per-episode run)')
    print(f'speedup={t_slow / t_fast:.1f}')


if __name__ == '__main__':
    main()
