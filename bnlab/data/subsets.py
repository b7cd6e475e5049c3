"""Fixed, class-stratified subsets of a split: the images every curve point evaluates.

Curve points need a consistent yardstick more than a big one: every run of a
dataset evaluates the same images (the subset depends on the labels and a
fixed seed, never on the run), so two runs' curves differ only by what they
learnt. Stratifying keeps each class's share of the split, so a subset's
accuracy is not skewed by a lucky draw of easy classes.
"""

from __future__ import annotations

import torch

SUBSET_SEED = 0  # one subset per split for every run; the run's own seed never enters


def stratified_subset(labels: torch.Tensor, size: int, seed: int = SUBSET_SEED) -> torch.Tensor:
    """Sorted positions of `size` items of `labels`, each class in proportion to its share.

    size <= 0 or >= len(labels) gives every position. Each class gets the
    floor of its quota; the images left over go to the classes with the
    largest remainders (largest-remainder rounding), so the total is exact.
    Within a class the positions are a seeded random draw.
    """
    n = len(labels)
    if size <= 0 or size >= n:
        return torch.arange(n)
    labels = labels.cpu()
    classes, counts = torch.unique(labels, return_counts=True)
    quota = counts.double() * size / n
    take = quota.floor().long()
    left = size - int(take.sum())
    if left:
        # ties broken by class order, so the result never depends on sort stability
        order = sorted(range(len(classes)), key=lambda i: (-(quota[i] - take[i]).item(), i))
        for i in order[:left]:
            take[i] += 1
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for cls, k in zip(classes.tolist(), take.tolist()):
        where = (labels == cls).nonzero().flatten()
        chosen.append(where[torch.randperm(len(where), generator=gen)[:k]])
    return torch.cat(chosen).sort().values
