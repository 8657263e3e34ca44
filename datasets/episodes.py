"""Few-shot episode sampler (docs/fewshot.md).

An episode draws ``n_way`` distinct classes and, for each, ``n_shot + n_query`` distinct videos;
the first ``n_shot`` are the support set, the rest the query set. Only classes with at least
``min_videos`` videos (default ``max(5, n_shot + n_query)``) take part. Sampling uses its own
``torch.Generator``, so the same seed gives the same episodes whatever else consumed random
numbers. All episodes are drawn up front (:meth:`EpisodeSampler.draw`): the evaluation then
encodes only the videos they use, once each.
"""
from dataclasses import dataclass

import torch


@dataclass
class Episodes:
    """Index tensors into the dataset, episode-major.

    Attributes:
        support: ``E × n_way × n_shot`` dataset indices (long).
        query: ``E × n_way × n_query`` dataset indices (long).
        classes: ``E × n_way`` dataset labels of each episode's ways (way ``w`` of episode
            ``e`` is class ``classes[e, w]``; its episode-local label is ``w``).
    """
    support: torch.Tensor
    query: torch.Tensor
    classes: torch.Tensor

    def __len__(self):
        return self.support.shape[0]

    def unique_indices(self):
        """Sorted dataset indices used by any episode (``U`` long)."""
        return torch.unique(torch.cat([self.support.flatten(), self.query.flatten()]))

    def batches(self, ep_per_batch):
        """Yield consecutive slices of ``ep_per_batch`` episodes (the authors' batches)."""
        for s in range(0, len(self), ep_per_batch):
            yield Episodes(self.support[s:s + ep_per_batch], self.query[s:s + ep_per_batch],
                           self.classes[s:s + ep_per_batch])


class EpisodeSampler:
    """Draws ``n_batch × ep_per_batch`` few-shot episodes over a labelled pool of videos.

    Args:
        labels: the dataset's labels (sequence of int, index = dataset index).
        n_way, n_shot, n_query: classes per episode, support and query videos per class.
        n_batch: number of batches of episodes (the authors' ``n_batch``).
        ep_per_batch: episodes per batch; ``E = n_batch · ep_per_batch`` episodes in all.
        seed: seed of the sampler's private generator.
        min_videos: classes with fewer videos are left out; default ``max(5, n_shot + n_query)``.
    """

    def __init__(self, labels, n_way, n_shot, n_query, n_batch, ep_per_batch=1, seed=0,
                 min_videos=None):
        if min(n_way, n_shot, n_batch, ep_per_batch) < 1 or n_query < 0:
            raise ValueError(f'invalid episode shape: n_way={n_way} n_shot={n_shot} '
                             f'n_query={n_query} n_batch={n_batch} ep_per_batch={ep_per_batch}')
        self.n_way, self.n_shot, self.n_query = n_way, n_shot, n_query
        self.n_batch, self.ep_per_batch, self.seed = n_batch, ep_per_batch, seed
        need = max(5, n_shot + n_query)
        self.min_videos = max(need, min_videos or 0)
        labels = torch.as_tensor(list(labels), dtype=torch.long)
        # per class: its dataset indices (classes are the dataset labels actually present)
        self.class_ids = []
        self.class_items = []
        for c in torch.unique(labels).tolist():
            items = torch.nonzero(labels == c).flatten()
            if len(items) >= self.min_videos:
                self.class_ids.append(c)
                self.class_items.append(items)
        if len(self.class_ids) < n_way:
            raise ValueError(f'{n_way}-way episodes need {n_way} classes with >= {self.min_videos} '
                             f'videos; the pool has {len(self.class_ids)}')

    @property
    def n_episodes(self):
        return self.n_batch * self.ep_per_batch

    def __len__(self):
        return self.n_batch

    def draw(self):
        """All episodes, as :class:`Episodes` with ``E = n_batch · ep_per_batch``."""
        g = torch.Generator().manual_seed(self.seed)
        per = self.n_shot + self.n_query
        e = self.n_episodes
        support = torch.empty(e, self.n_way, self.n_shot, dtype=torch.long)
        query = torch.empty(e, self.n_way, self.n_query, dtype=torch.long)
        classes = torch.empty(e, self.n_way, dtype=torch.long)
        for i in range(e):
            ways = torch.randperm(len(self.class_ids), generator=g)[:self.n_way]
            for w, c in enumerate(ways.tolist()):
                items = self.class_items[c]
                pick = items[torch.randperm(len(items), generator=g)[:per]]
                support[i, w] = pick[:self.n_shot]
                query[i, w] = pick[self.n_shot:]
                classes[i, w] = self.class_ids[c]
        return Episodes(support, query, classes)

    def __iter__(self):
        """Batches of ``ep_per_batch`` episodes, as in the authors' ``CategoriesSampler``."""
        yield from self.draw().batches(self.ep_per_batch)
