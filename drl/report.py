"""Files a DRL run writes besides ``results.json``: the per-class dynamic-score table and chart,
and a picture of adversarial examples (clean frames, perturbed frames, amplified perturbation).
"""
import csv
import math
import os

import matplotlib
import torch
import torchvision

matplotlib.use('Agg')  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

CLASS_COLUMNS = ('class', 'name', 'n', 'Acc@1', 'Acc@1_sp', 'agreement', 'dynamic_score', 'kl',
                 'dynamic_score_sample')


def write_class_csv(rows, class_names, path):
    """One row per class (the dicts of :func:`measure.dynamic.per_class_scores`); empty cells for
    classes absent from the split."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=CLASS_COLUMNS)
        w.writeheader()
        for row in rows:
            name = class_names[row['class']] if class_names else str(row['class'])
            out = {k: ('' if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            w.writerow({**out, 'name': name})


def plot_class_scores(rows, class_names, path, key='dynamic_score', overall=None, max_classes=60):
    """Horizontal bar chart of ``key`` per class, highest first (at most ``max_classes`` bars,
    the highest and lowest halves when there are more)."""
    rows = [r for r in rows if r['n'] > 0]
    rows.sort(key=lambda r: r[key], reverse=True)
    if len(rows) > max_classes:
        rows = rows[:max_classes // 2] + rows[-(max_classes // 2):]
    names = [class_names[r['class']] if class_names else str(r['class']) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 1.5 + 0.22 * len(rows)))
    ax.barh(range(len(rows)), [r[key] for r in rows], color='tab:blue')
    ax.set_yticks(range(len(rows)), names, fontsize=7)
    ax.invert_yaxis()
    if overall is not None:
        ax.axvline(overall, color='tab:red', ls='--', label=f'all classes: {overall:.3f}')
        ax.legend(loc='lower right', fontsize=8)
    ax.set_xlabel(key.replace('_', ' '))
    ax.set_title(f'{key.replace("_", " ")} per class')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def adversarial_grid(x, x_adv, mean, std, eps, n_clips=4, n_frames=3):
    """Clean frames | perturbed frames | amplified perturbation, one row per clip.

    Args:
        x, x_adv: normalised ``B × K × C × T × H × W`` (first clip of each video is shown).
        mean, std: the normalisation (lists of C values).
        eps: the attack's budget in pixel units; the perturbation is shown as
            ``0.5 + 0.5 · δ / eps`` (grey = unchanged, full range = ±eps).
    Returns:
        ``3 × H' × W'`` float image in [0, 1] (for PNG files and TensorBoard).
    """
    x, x_adv = x[:n_clips, 0].detach().float().cpu(), x_adv[:n_clips, 0].detach().float().cpu()
    m = torch.tensor(mean).view(1, -1, 1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1, 1)
    clean, adv = x * s + m, x_adv * s + m  # pixel units, N × C × T × H × W
    pert = (0.5 + 0.5 * (adv - clean) / max(eps, 1e-12)).clamp(0, 1)
    t = x.shape[2]
    idx = torch.linspace(0, t - 1, min(n_frames, t)).round().long()
    tiles = []
    for i in range(x.shape[0]):
        for part in (clean.clamp(0, 1), adv.clamp(0, 1), pert):
            tiles.extend(part[i, :, j] for j in idx)
    return torchvision.utils.make_grid(torch.stack(tiles), nrow=3 * len(idx), padding=2,
                                       pad_value=1.0)


def save_image(img, path, title=None):
    """Write a ``3 × H × W`` [0, 1] image as a PNG (with an optional title)."""
    h, w = img.shape[1:]
    fig = plt.figure(figsize=(max(w / 100, 4), h / 100 + (0.4 if title else 0)), dpi=100)
    ax = fig.add_axes([0, 0, 1, h / (h + (40 if title else 0))])
    ax.imshow(img.permute(1, 2, 0).numpy())
    ax.axis('off')
    if title:
        fig.suptitle(title, fontsize=8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
