"""Weighted metric averages (exact over ranks) and the per-epoch ``metrics.csv``."""
import csv
import os

from . import dist as dist_utils


class MetricMeter:
    """Sample-weighted running means of named metrics."""

    def __init__(self):
        self.sums, self.count = {}, 0

    def update(self, metrics, n):
        self.count += n
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v) * n

    def short(self):
        return ' '.join(f'{k} {v / max(self.count, 1):.3f}' for k, v in self.sums.items())

    def reduce(self, device):
        """Means over all ranks: sums and counts are added, then divided (no double counting)."""
        keys = sorted(self.sums)
        totals = dist_utils.all_reduce_sums([self.sums[k] for k in keys] + [self.count], device)
        count = totals[-1]
        return {k: (s / count if count else float('nan')) for k, s in zip(keys, totals[:-1])}


def write_metrics_csv(rows, path):
    """Rewrite ``metrics.csv`` (one row per epoch) atomically from the run's history."""
    cols = []
    for r in rows:
        cols += [k for k in r if k not in cols and not isinstance(r[k], (list, dict))]
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction='ignore')
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
