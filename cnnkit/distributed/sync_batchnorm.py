"""Batch norm whose statistics are those of the whole global batch, over all ranks.

With plain batch norm each rank normalises by its own shard's mean and variance; with
``SyncBatchNorm`` (``cnnkit train --sync-bn``) all ranks use the statistics of the global
batch, so N ranks × batch B compute what one process computes with batch N·B. Per channel,
over the n = Σ_r n_r values of all ranks (sums in float64, one Allreduce each way; N_r is
rank r's number of images):
    μ = Σx / n,   σ² = Σx² / n − μ²,   x̂ = (x − μ)/√(σ² + ε),   y = γ·x̂ + β
and backward (derived in cnnkit/functional/normalization.py), with g = dL_r/dy of this rank's loss:
    dL/dx = γ/(n·√(σ² + ε)) · (n·g − Σg − x̂·Σ(g·x̂)),
with Σg and Σ(g·x̂) summed over all ranks, rank s's terms weighted by N_s/N_r (its images over
this rank's): g on rank s is the gradient of its mean loss over N_s images. ``DataParallel``
then averages the parameter gradients weighted by N_r, which gives the gradient of the mean
loss over the global batch (with equal shards this is PyTorch's SyncBatchNorm). Running
statistics are updated with the global μ and the unbiased global variance σ²·n/(n − 1), as
``functional.batch_norm`` does. In eval mode, or with one rank, it is plain batch norm.
"""
from __future__ import annotations

import numpy as np

from ..functional.normalization import _update_running, normalize_affine
from ..nn.modules.normalization import _BatchNorm
from ..tensor import Tensor, as_tensor

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm", "sync_batch_norm"]


def sync_batch_norm(x, running_mean, running_var, weight, bias, momentum, eps, comm) -> Tensor:
    """Training-mode batch norm with global statistics (formulas in the module docstring).

    x : Tensor of shape (N_r, C, *spatial), this rank's shard; running_mean, running_var :
    ndarray (C,) or None, updated in place; weight, bias : Tensor (C,) or None.
    Returns a Tensor of x's shape and dtype. The per-channel passes are the compiled ones of
    plain batch norm (``kernels.batchnorm_numba``), fed the global statistics.
    """
    from ..kernels import batchnorm_numba as kernels
    x = as_tensor(x)
    channels = x.shape[1]
    x3 = np.ascontiguousarray(x.data).reshape(x.shape[0], channels, -1)
    local = x3.shape[0] * x3.shape[2]  # values per channel on this rank
    mean, var = np.empty(channels), np.empty(channels)
    kernels.channel_stats(x3, mean, var)
    # Σx, Σx² and the count over all ranks (float64: Σx²/n − μ² loses nothing that matters
    # unless |μ| exceeds σ a million-fold).
    sums = np.concatenate([local * mean, local * (var + mean * mean), [local]])
    comm.allreduce_(sums)
    count = sums[-1]
    if count <= 1:
        raise ValueError(f"sync_batch_norm: expected more than 1 value per channel over all "
                         f"ranks, got {int(count)}")
    mean = sums[:channels] / count
    var = np.maximum(sums[channels:2 * channels] / count - mean * mean, 0.0)
    _update_running(running_mean, running_var, mean, var, momentum, count)
    gamma = None if weight is None else as_tensor(weight)
    beta = None if bias is None else as_tensor(bias)
    inv_std, scale, out = normalize_affine(x3, mean, var, eps, gamma, beta)

    def backward(g):
        g3 = np.ascontiguousarray(g).reshape(x3.shape)
        sum_g_local, sum_g_xhat_local = np.empty(channels), np.empty(channels)
        kernels.grad_sums(x3, g3, mean, inv_std, sum_g_local, sum_g_xhat_local)
        # Rank s's g carries its loss's 1/N_s; weighting by N_s/N_r makes unequal shards exact.
        images = x.shape[0]
        sums = np.concatenate([sum_g_local, sum_g_xhat_local]) * images
        comm.allreduce_(sums)
        # grad_input divides by this rank's count of values; the formula wants the global one.
        sums *= local / (images * count)
        dx = np.empty_like(x3)
        kernels.grad_input(x3, g3, mean, inv_std, scale, sums[:channels], sums[channels:], dx)
        grads = (dx.reshape(x.shape),)
        if gamma is not None:  # this rank's share; DataParallel sums the shares
            grads += (sum_g_xhat_local,)
        if beta is not None:
            grads += (sum_g_local,)
        return grads
    parents = (x,) + tuple(p for p in (gamma, beta) if p is not None)
    return Tensor._make(out.reshape(x.shape), parents, backward, "sync_batch_norm")


class SyncBatchNorm(_BatchNorm):
    """``BatchNorm{1,2,3}d`` with statistics over all ranks of ``comm`` (same state_dict keys)."""

    _input_dims = (2, 3, 4, 5)

    def __init__(self, *args, comm=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.comm = comm

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        """input : Tensor of shape (N_r, num_features, *spatial) -> the same shape."""
        if not self.training or self.comm is None or self.comm.world_size == 1:
            return super().forward(input)
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: input has {input.shape[1]} channels, expected "
                             f"num_features={self.num_features}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        return sync_batch_norm(input, self.running_mean.data if self.track_running_stats
                               else None, self.running_var.data if self.track_running_stats
                               else None, self.weight, self.bias, factor, self.eps, self.comm)


def convert_sync_batchnorm(module, comm):
    """Replace every BatchNorm layer inside ``module`` by a ``SyncBatchNorm`` sharing its
    parameters and buffers (the state_dict is unchanged); returns the module."""
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        sync = SyncBatchNorm.__new__(SyncBatchNorm)
        sync.__dict__.update(module.__dict__)
        sync.comm = comm
        return sync
    for name, child in list(module.named_children()):
        converted = convert_sync_batchnorm(child, comm)
        if converted is not child:
            setattr(module, name, converted)
    return module
