"""What ``cnnkit train`` does differently on several ranks, kept out of the command's code.

The run's ``batch_size`` setting is the per-rank batch of the number of ranks the run started
on (``world_size``, saved with it); their product, the global batch, is what the run is: it
fixes the data order, the steps per epoch and the schedule. A resumed run keeps the global
batch whatever the number of ranks it resumes on, so it continues as it would have.
"""
from __future__ import annotations

import numpy as np

from ..data import Subset
from ..data.sampler import final_batch_too_small, shard_bounds

__all__ = ["data_parallel_model", "drop_final_batch", "evaluation_shard", "per_rank_batch"]


def per_rank_batch(batch_size: int, run_world_size: int, world_size: int) -> int:
    """The per-rank batch on ``world_size`` ranks of a run whose global batch is
    ``batch_size × run_world_size``; ValueError if it does not split evenly."""
    global_batch = batch_size * run_world_size
    if global_batch % world_size:
        raise ValueError(f"the run's global batch of {global_batch} images ({batch_size} × "
                         f"{run_world_size} ranks) does not split over {world_size} ranks")
    return global_batch // world_size


def drop_final_batch(num_samples: int, global_batch: int, run_world_size: int,
                     world_size: int) -> bool:
    """Whether the run drops its final, partial global batch: decided by the ranks it started
    on, so that a resumed run keeps its steps per epoch. ValueError if the final batch is kept
    but would leave one of ``world_size`` ranks fewer than 2 images (batch norm needs two)."""
    drop = final_batch_too_small(num_samples, global_batch, run_world_size)
    if not drop and final_batch_too_small(num_samples, global_batch, world_size):
        raise ValueError(f"the final batch of {num_samples % global_batch} images would leave "
                         f"one of {world_size} ranks fewer than 2")
    return drop


def evaluation_shard(dataset, rank: int, world_size: int):
    """Rank ``rank``'s contiguous part of ``dataset`` (the ranks' parts cover it once)."""
    if world_size == 1:
        return dataset
    bounds = shard_bounds(len(dataset), world_size)
    return Subset(dataset, np.arange(bounds[rank], bounds[rank + 1]))


def data_parallel_model(model, comm, data_signature, sync_bn: bool = False):
    """``(model, DataParallel)`` for training on ``comm``'s ranks; the model's batch norms are
    made ``SyncBatchNorm`` if ``sync_bn``."""
    from .data_parallel import DataParallel
    from .sync_batchnorm import convert_sync_batchnorm
    if sync_bn:
        model = convert_sync_batchnorm(model, comm)
    return model, DataParallel(model, comm, data_signature)
