"""Sharding each epoch's batches over the ranks of a data-parallel run.

``ShardedLoader`` is a ``DataLoader`` whose batches are *global* batches of
``world_size × batch_size`` images, drawn exactly as a single process with that batch size draws
them (the same seeded permutation per epoch, on every rank), of which rank r keeps the r-th
contiguous part. So every image is seen once per epoch over all ranks, the union of the ranks'
batch b is the single process's batch b, and N ranks × batch B train on what one process with
batch N·B trains on. The loader's state (``state_dict``) is the same on every rank and
independent of N: a run can resume on another number of ranks with the same global batch.

A final global batch of m < N·B images is split as evenly as possible (``shard_bounds``).
Augmentation draws from ``default_rng([epoch_key, b, rank])`` on several ranks (each shard its
own draws), from ``[epoch_key, b]`` on one rank (as ``DataLoader``).
"""
from __future__ import annotations

import numbers

import numpy as np

from .loader import DataLoader

__all__ = ["ShardedLoader", "final_batch_too_small", "shard_bounds"]


def shard_bounds(count: int, world_size: int) -> np.ndarray:
    """Bounds (world_size + 1,) splitting ``count`` items into contiguous, nearly equal shards:
    rank r takes items ``bounds[r]:bounds[r + 1]`` (sizes differ by at most one)."""
    return np.arange(world_size + 1) * count // world_size


def final_batch_too_small(num_samples: int, global_batch: int, world_size: int) -> bool:
    """Whether the final, partial global batch would leave some rank fewer than 2 images (batch
    norm needs two values per channel): such a batch is better dropped. With one rank this is
    a final batch of exactly one image."""
    remainder = num_samples % global_batch
    return 0 < remainder and remainder // world_size < 2


class ShardedLoader(DataLoader):
    """Rank ``rank``'s shards of the global batches (see the module docstring).

    Parameters are ``DataLoader``'s, with ``batch_size`` the per-rank batch B, plus
    rank : int in [0, world_size)
    world_size : int >= 1, the number of ranks

    Yields this rank's part of each global batch: (images (B_r, C, H, W), labels (B_r,)) with
    B_r = B except, possibly, in the last batch. ``len()`` is the number of global batches.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 transform=None, *, rank=0, world_size=1):
        for name, value in (("world_size", world_size), ("rank", rank)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"ShardedLoader: {name} must be an int, got {value!r}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"ShardedLoader: need 0 <= rank < world_size, got rank={rank}, "
                             f"world_size={world_size}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"ShardedLoader: batch_size must be a positive int, got "
                             f"{batch_size!r}")
        super().__init__(dataset, int(batch_size) * int(world_size), shuffle, drop_last, seed,
                         transform)
        self.rank, self.world_size = int(rank), int(world_size)
        self.local_batch_size = int(batch_size)

    def _batch_indices(self, order, b):
        batch = super()._batch_indices(order, b)
        bounds = shard_bounds(len(batch), self.world_size)
        return batch[bounds[self.rank]:bounds[self.rank + 1]]

    def _batch_rng(self, epoch_key, b):
        if self.world_size == 1:
            return super()._batch_rng(epoch_key, b)
        return np.random.default_rng([epoch_key, b, self.rank])
