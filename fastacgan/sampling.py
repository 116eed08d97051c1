"""The order a loader serves the real images in: a pure function of (N, seed, epoch), so that a run resumed at
step s sees the batches the interrupted one would have; rank r of W takes every W-th image of it. By default a
permutation (each image once an epoch); with --balance-classes, N draws with replacement, each image's chance
1 / its class's count, so that every class comes equally often (as G's classes do).
"""

from __future__ import annotations

import torch


def epoch_order(
    n: int, seed: int, epoch: int, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The permutation and the per-image flip flags of one epoch, a pure function of (n, seed, epoch); with
    `weights` (--balance-classes: class_weights), n draws with replacement in their proportions instead."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g) if weights is None else torch.multinomial(weights, n, True, generator=g)
    return order, torch.rand(n, generator=g) < 0.5


def class_weights(labels: torch.Tensor) -> torch.Tensor:
    """Each image's chance to be drawn so that every class comes equally often: 1 / its class's count."""
    labels = torch.as_tensor(labels).cpu()
    return 1.0 / torch.bincount(labels).double()[labels]


def epoch_indices(n: int, seed: int, epoch: int, shard: tuple[int, int] = (0, 1),
                  weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """This rank's image indices for one epoch, in order, and their flip flags. Rank r of W takes perm[r::W]
    (the same length on every rank), so step s's W per-rank batches together are the 1-process batch s."""
    rank, world = shard
    perm, flips = epoch_order(n, seed, epoch, weights)
    idx = perm[rank::world][: n // world]
    return idx, flips[idx] if weights is None else flips[rank::world][: n // world]  # (a draw each its own flip)
