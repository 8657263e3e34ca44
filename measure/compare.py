"""Two bias cards of the same videos, compared measure by measure with paired CIs.

Two models scored on the same split differ less than their separate CIs suggest, because both
CIs carry the same luck of the draw of videos. Pairing removes it: for every video the two
cards hold, the difference of its values (``per_video`` of each measure,
:func:`measure.stats.per_video_values`), and a bootstrap over videos of the mean difference.

- temporality (contrasted accuracy), scene conflict (the clip's label winning) and the dynamic
  score are compared this way; the representation measure is a ratio over all videos, not a
  mean of per-video values, and is left out (compare its CIs).
- The dynamic score's paired CI is over videos only: the mimics' own spread comes on top. When
  both cards ran ``--mimic-seeds`` ≥ 2, ``ci95_mimic`` gives the difference's Welch interval over
  the two sets of mimic seeds.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import torch

from core.errors import UserError

from .stats import bootstrap_mean_ci, mean_ci, t975

SCHEMA = 'bias_card_compare/1'
PAIRED = ('dynamic', 'temporality', 'conflict')
# what must be equal for two cards to be of the same videos
SAME = ('dataset', 'subset', 'split', 'classes')


def load_card(path: str) -> dict[str, Any]:
    """A ``bias_card.json``, given itself or the folder holding it."""
    file = os.path.join(path, 'bias_card.json') if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise UserError(f'{path}: no bias card there (expected a bias_card.json written by tools/bias_card.py, '
                        'or its folder)')
    try:
        with open(file) as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f'{file}: not a bias card (unreadable JSON: {e})') from None
    if not isinstance(doc, dict) or not str(doc.get('schema', '')).startswith('bias_card/'):
        raise UserError(f'{file}: not a bias card (no "bias_card/…" schema)')
    return doc


def welch_ci(a: list[float], b: list[float]) -> list[float]:
    """95 % Welch interval of ``mean(b) − mean(a)`` (each list ≥ 2 values)."""
    (ma, sa, _), (mb, sb, _) = mean_ci(a), mean_ci(b)
    va, vb = sa ** 2 / len(a), sb ** 2 / len(b)   # squared standard errors
    se = math.sqrt(va + vb)
    if se == 0:
        return [mb - ma, mb - ma]
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t975(max(1, int(dof))) * se
    return [mb - ma - half, mb - ma + half]


def _paired(name: str, ma: Mapping[str, Any], mb: Mapping[str, Any], n_boot: int, seed: int) -> dict[str, Any]:
    """One measure's paired difference ``b − a``."""
    if ma.get('split') != mb.get('split'):
        raise UserError(f'{name}: the cards measured different splits ({ma.get("split")} vs {mb.get("split")})')
    va = dict(zip(ma['per_video']['index'], ma['per_video']['value']))
    vb = dict(zip(mb['per_video']['index'], mb['per_video']['value']))
    both = sorted(set(va) & set(vb))
    if not both:
        raise UserError(f'{name}: the two cards share no video')
    a = torch.tensor([va[i] for i in both], dtype=torch.float64)
    b = torch.tensor([vb[i] for i in both], dtype=torch.float64)
    out = {'headline': ma.get('headline', name), 'unit': ma.get('unit', ''), 'split': ma['split'], 'n': len(both),
           'only_a': len(va) - len(both), 'only_b': len(vb) - len(both),
           'a': float(a.mean()), 'b': float(b.mean()), 'diff': float((b - a).mean()),
           'ci95': list(bootstrap_mean_ci(b - a, n_boot=n_boot, seed=seed)),
           'ci95_unpaired': [float(x) for x in _unpaired(a, b, n_boot, seed)]}
    if name == 'dynamic':
        sa, sb = ma.get('per_seed') or [], mb.get('per_seed') or []
        out['ci95_mimic'] = welch_ci(sa, sb) if len(sa) >= 2 and len(sb) >= 2 else None
    return out


def _unpaired(a: torch.Tensor, b: torch.Tensor, n_boot: int, seed: int) -> tuple[float, float]:
    """The difference's interval if the two sets of videos were drawn independently (for
    contrast: what comparing the two cards' own CIs amounts to)."""
    lo_a, hi_a = bootstrap_mean_ci(a, n_boot=n_boot, seed=seed)
    lo_b, hi_b = bootstrap_mean_ci(b, n_boot=n_boot, seed=seed + 1)
    d = float(b.mean() - a.mean())
    half = math.hypot((hi_a - lo_a) / 2, (hi_b - lo_b) / 2)
    return d - half, d + half


def compare_cards(a: Mapping[str, Any], b: Mapping[str, Any], *, n_boot: int = 1000, seed: int = 0,
                  names: tuple[str, str] = ('A', 'B')) -> dict[str, Any]:
    """Paired differences ``b − a`` of every measure both cards hold (module docstring);
    ``names``: how the errors call the two cards (e.g. their paths).

    Raises:
        UserError: the cards are not of the same videos (dataset, subset, split or classes
            differ, or a measure shares no video).
    Returns:
        ``{'schema', 'a', 'b', 'measures': {name: {headline, unit, split, n, only_a, only_b, a, b,
        diff, ci95, ci95_unpaired[, ci95_mimic]}}, 'left_out': {name: why}}``.
    """
    for key in SAME:
        if a.get(key) != b.get(key):
            raise UserError(f'{names[0]} and {names[1]} are not cards of the same videos: {key} {a.get(key)!r} vs '
                            f'{b.get(key)!r}')
    out: dict[str, Any] = {'schema': SCHEMA, 'a': a.get('checkpoint'), 'b': b.get('checkpoint'),
                           'measures': {}, 'left_out': {}}
    for name in dict.fromkeys([*a['measures'], *b['measures']]):
        if name not in a['measures'] or name not in b['measures']:
            out['left_out'][name] = f'measured on {names[0] if name in a["measures"] else names[1]} only'
            continue
        ma, mb = a['measures'][name], b['measures'][name]
        if name not in PAIRED:
            out['left_out'][name] = 'not a mean of per-video values: compare the two cards\' CIs'
        elif 'per_video' not in ma or 'per_video' not in mb:
            old = names[0] if 'per_video' not in ma else names[1]
            out['left_out'][name] = (f'{old} holds no per-video values (a card written before 2026-12-08): run '
                                     'tools/bias_card.py on it again')
        else:
            out['measures'][name] = _paired(name, ma, mb, n_boot, seed)
    if not out['measures']:
        raise UserError('no measure to compare: ' + ('; '.join(f'{k}: {v}' for k, v in out['left_out'].items())
                                                      or 'the cards share no measure'))
    return out


def markdown(cmp: Mapping[str, Any]) -> str:
    """The comparison as a markdown table."""
    lines = ["# Bias cards compared: B − A", '', f"A `{cmp['a']}`, B `{cmp['b']}`.", '',
             '| measure | quantity | A | B | B − A | 95 % CI, paired over videos | 95 % CI, unpaired | '
             '95 % CI over mimic seeds | videos |', '|---|---|---|---|---|---|---|---|---|']
    for name, m in cmp['measures'].items():
        d = 3 if m['unit'] != '%' else 1
        mimic = m.get('ci95_mimic')
        lines.append(f"| {name} | {m['headline']} | {m['a']:.{d}f} | {m['b']:.{d}f} | {m['diff']:+.{d}f} | "
                     f"[{m['ci95'][0]:+.{d}f}, {m['ci95'][1]:+.{d}f}] | "
                     f"[{m['ci95_unpaired'][0]:+.{d}f}, {m['ci95_unpaired'][1]:+.{d}f}] | "
                     + (f"[{mimic[0]:+.{d}f}, {mimic[1]:+.{d}f}]" if mimic else '–') + f" | {m['n']} |")
    for name, why in cmp['left_out'].items():
        lines.append(f'\n{name}: left out ({why}).')
    lines += ['', 'Paired: a bootstrap over the videos both cards hold of the per-video difference. Unpaired: '
              'the two cards\' own CIs combined, as if their videos were drawn apart. The dynamic score\'s '
              'mimics add their own spread: the CI over mimic seeds (Welch) needs --mimic-seeds ≥ 2 on both cards.']
    return '\n'.join(lines) + '\n'
