"""L2 distance between the video-model weights of checkpoints (how far training moved a model).

    python tools/weight_distance.py BASE.pth.tar A.pth.tar B.pth.tar ...

Prints the distance of every checkpoint from the first and between each pair, over the
floating-point parameters and buffers of ``state_dict`` (BatchNorm running statistics left out:
they follow the data, not the optimiser). Used in docs/results/scenemotion.md to tell how much of
what DRL-aug changes comes from its attack rather than from the extra epochs of training.
"""
import argparse
import itertools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from engine.checkpoint import load_checkpoint, strip_prefix  # noqa: E402


def weights(path, key='state_dict'):
    ckpt = load_checkpoint(path)
    state = strip_prefix(ckpt[key] if key in ckpt else ckpt)
    return {k: v.float() for k, v in state.items()
            if torch.is_tensor(v) and v.is_floating_point() and 'running_' not in k}


def distance(a, b):
    """L2 norm of ``a - b`` over the keys both have (the shapes must agree)."""
    keys = sorted(set(a) & set(b))
    if not keys:
        raise ValueError('the checkpoints share no weights')
    return float(torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in keys)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('checkpoints', nargs='+')
    ap.add_argument('--key', default='state_dict', help='checkpoint entry with the weights')
    a = ap.parse_args(argv)
    if len(a.checkpoints) < 2:
        ap.error('give at least two checkpoints')
    ws = [weights(p, a.key) for p in a.checkpoints]
    for (i, p), (j, q) in itertools.combinations(enumerate(a.checkpoints), 2):
        print(f'{distance(ws[i], ws[j]):.4f}  {p}  <->  {q}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
