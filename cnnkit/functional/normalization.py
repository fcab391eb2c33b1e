"""Batch normalisation (``torch.nn.functional.batch_norm``) with a closed-form backward.

Statistics are per channel (axis 1), over the batch and every spatial position:
    x̂ = (x − μ)/√(σ² + ε),   y = γ·x̂ + β.
In training mode μ, σ² are the batch mean and *biased* variance, and the running statistics are
updated in place with the *unbiased* variance (n/(n − 1)·σ²), as PyTorch does:
    running_mean ← (1 − momentum)·running_mean + momentum·μ
    running_var  ← (1 − momentum)·running_var  + momentum·σ²·n/(n − 1)
In evaluation mode μ, σ² are the running statistics, which are constants.

Backward with batch statistics (n values per channel, sums over those values):
    dL/dx = γ/(n·√(σ² + ε)) · (n·g − Σg − x̂·Σ(g·x̂)),   dL/dγ = Σ(g·x̂),   dL/dβ = Σg.
One op rather than a chain of means and divisions: a third of the memory traffic, and the
formula can be checked on sight.
"""
import math

import numpy as np

from .. import tuning
from ..tensor import Tensor, as_tensor
from .half import computes_float16_in_float32

__all__ = ["batch_norm"]


def _array_or_none(value, name, num_channels):
    if value is None:
        return None
    array = value.data if isinstance(value, Tensor) else value
    if not isinstance(array, np.ndarray):
        array = np.asarray(array)
    if array.shape != (num_channels,):
        raise ValueError(f"batch_norm: {name} must have shape ({num_channels},) to match the "
                         f"input's channels, got shape {array.shape}")
    return array


@computes_float16_in_float32
def batch_norm(input, running_mean, running_var, weight=None, bias=None,  # noqa: A002
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of ``input``.

    Parameters
    ----------
    input : Tensor of shape (N, C) or (N, C, *spatial)
    running_mean, running_var : ndarray or Tensor of shape (C,), or None.
        Updated in place when ``training``; required when not ``training``.
    weight, bias : Tensor of shape (C,) or None (γ = 1, β = 0)
    training : use batch statistics (and update the running ones) instead of the running ones
    momentum : weight of the new batch in the running averages
    eps : added to the variance before the square root

    Returns
    -------
    Tensor of the input's shape and dtype.
    """
    x = as_tensor(input)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must have shape (N, C, ...), got shape {x.shape}")
    channels = x.shape[1]
    mean_buf = _array_or_none(running_mean, "running_mean", channels)
    var_buf = _array_or_none(running_var, "running_var", channels)
    if not training and (mean_buf is None or var_buf is None):
        raise ValueError("batch_norm: running_mean and running_var must be given when "
                         "training=False")
    gamma = None if weight is None else as_tensor(weight)
    beta = None if bias is None else as_tensor(bias)
    for name, param in (("weight", gamma), ("bias", beta)):
        if param is not None and param.shape != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},), got shape "
                             f"{param.shape}")
    axes = (0,) + tuple(range(2, x.ndim))
    count = x.size // channels if channels else 0
    if training and not channels:
        raise ValueError(f"batch_norm: input has no channels to normalize when training, got "
                         f"input of shape {x.shape}")
    if training and count == 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {x.shape}")
    if training and count == 0:
        return _empty_batch(x, gamma, beta)
    bshape = (1, channels) + (1,) * (x.ndim - 2)  # (C,) -> broadcastable against x
    if x.ndim > 2 and x.dtype in _LOOP_DTYPES and x.data.size >= tuning.value(
            "compiled_min_size" if not training else "batchnorm_training_compiled_min_size"):
        return _compiled_batch_norm(x, mean_buf, var_buf, gamma, beta, training, momentum, eps)

    if not training:
        return _evaluated(x, mean_buf, var_buf, gamma, beta, eps, axes, bshape)
    mean = x.data.mean(axis=axes)
    centred = x.data - mean.reshape(bshape)
    var = np.mean(centred * centred, axis=axes)
    _update_running(mean_buf, var_buf, mean, var, momentum, count)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype, copy=False)
    x_hat = centred * inv_std.reshape(bshape)
    out = x_hat
    if gamma is not None:
        out = out * gamma.data.reshape(bshape)
    if beta is not None:
        out = out + beta.data.reshape(bshape)

    def backward(g):
        need_sum_g_xhat = (gamma is not None and gamma.requires_grad) or x.requires_grad
        sum_g_xhat = (g * x_hat).sum(axis=axes) if need_sum_g_xhat else None
        sum_g = g.sum(axis=axes)
        dx = None
        if x.requires_grad:
            scale = inv_std if gamma is None else inv_std * gamma.data
            dx = (scale / count).reshape(bshape) * (
                count * g - sum_g.reshape(bshape) - x_hat * sum_g_xhat.reshape(bshape))
        dgamma = sum_g_xhat if gamma is not None and gamma.requires_grad else None
        dbeta = sum_g if beta is not None and beta.requires_grad else None
        grads = (dx,)
        if gamma is not None:
            grads += (dgamma,)
        if beta is not None:
            grads += (dbeta,)
        return grads
    parents = (x,) + tuple(p for p in (gamma, beta) if p is not None)
    return Tensor._make(out.astype(x.dtype, copy=False), parents, backward, "batch_norm")


def _empty_batch(x, gamma, beta):
    """Training ``batch_norm`` of a batch with no values (no images, or an empty map): an
    empty result, whose gradients are empty for x and zero for γ and β, and running
    statistics left as they are, as PyTorch's."""
    def backward(g):
        grads = (np.zeros_like(x.data) if x.requires_grad else None,)
        for param in (gamma, beta):
            if param is not None:
                grads += (np.zeros_like(param.data) if param.requires_grad else None,)
        return grads
    parents = (x,) + tuple(p for p in (gamma, beta) if p is not None)
    return Tensor._make(x.data.copy(), parents, backward, "batch_norm")


def _update_running(mean_buf, var_buf, mean, var, momentum, count):
    """Running averages; the variance one uses the unbiased batch variance, as PyTorch."""
    if mean_buf is not None:
        mean_buf *= 1 - momentum
        mean_buf += (momentum * mean).astype(mean_buf.dtype, copy=False)
    if var_buf is not None:
        var_buf *= 1 - momentum
        var_buf += (momentum * var * (count / (count - 1))).astype(var_buf.dtype, copy=False)


# γ = 1 or β = 0 for ``batchnorm_numba.evaluate``, and the dtypes it takes
_NO_PARAMETER = np.empty(0, np.float32)
_LOOP_DTYPES = (np.float32, np.float64)


def _evaluated(x, mean_buf, var_buf, gamma, beta, eps, axes, bshape):
    """``batch_norm`` with the running statistics: y = scale·x + shift per channel
    (``scale_and_shift``), as PyTorch's CPU kernel computes it; x̂ only when the backward pass
    wants Σ g·x̂ (γ's gradient). Below ``compiled_min_size`` values (the price of waking the
    threads, which ``_compiled_batch_norm``'s parallel pass pays), a float32 or float64 map
    of one or more spatial dims runs on one compiled loop on the calling thread
    (``batchnorm_numba.evaluate``), the same floats as NumPy's two passes, where each of
    those passes and of the coefficients' operations cost a call: one 16 × 28 × 28 image,
    module call, AVX-512, 24.8 → 12.4 µs (PyTorch's 11.6; BENCHMARKS.md, "One image: batch
    norm on one loop"). A 2-D input (N, C), or one of another dtype, stays on NumPy's
    passes."""
    if x.ndim > 2 and x.dtype in _LOOP_DTYPES:
        from ..kernels import batchnorm_numba as kernels
        x3 = np.ascontiguousarray(x.data).reshape(_planes(x.shape))
        out = np.empty_like(x3)
        kernels.evaluate(x3, _loop_operand(mean_buf), _loop_operand(var_buf),
                         _NO_PARAMETER if gamma is None else _loop_operand(gamma.data),
                         _NO_PARAMETER if beta is None else _loop_operand(beta.data),
                         float(eps), out)
        out = out.reshape(x.shape)
    else:
        _, _, scale, shift = _coefficients(mean_buf, var_buf, eps, gamma, beta)
        out = x.data * scale.astype(x.dtype).reshape(bshape)
        out += shift.astype(x.dtype).reshape(bshape)

    statistics = (mean_buf, var_buf)

    def backward(g):
        mean, inv_std, scale, _ = _coefficients(*statistics, eps, gamma, beta)
        dx = g * scale.astype(x.dtype).reshape(bshape) if x.requires_grad else None
        grads = (dx,)
        if gamma is not None:
            x_hat = None
            if gamma.requires_grad:
                x_hat = (x.data - mean.astype(x.dtype).reshape(bshape)) * \
                    inv_std.astype(x.dtype).reshape(bshape)
            grads += (None if x_hat is None else (g * x_hat).sum(axis=axes),)
        if beta is not None:
            grads += (g.sum(axis=axes) if beta.requires_grad else None,)
        return grads
    parents = (x,) + tuple(p for p in (gamma, beta) if p is not None)
    result = Tensor._make(out, parents, backward, "batch_norm")
    if result.requires_grad:
        # the running statistics as this pass read them, whatever updates them in place
        # before the backward pass (γ and β are read then, as in training)
        statistics = (mean_buf.copy(), var_buf.copy())
    return result


def _planes(shape):
    """(N, C, L) for an (N, C, *spatial) shape, also when it holds no values."""
    return shape[0], shape[1], math.prod(shape[2:])


def _loop_operand(array):
    """A statistic or parameter as ``batchnorm_numba.evaluate`` takes it: float32 or float64
    as it is, another dtype (float16 buffers) in float64, exactly, as NumPy's path widens it."""
    return array if array.dtype in _LOOP_DTYPES else array.astype(np.float64)


def _coefficients(mean_buf, var_buf, eps, gamma, beta):
    """(μ, 1/√(σ² + ε), scale, shift) of the running statistics, in float64
    (``scale_and_shift``)."""
    mean = mean_buf.astype(np.float64)
    return (mean, *scale_and_shift(mean, var_buf.astype(np.float64), eps, gamma, beta))


def scale_and_shift(mean, var, eps, gamma, beta):
    """(1/√(σ² + ε), scale = γ/√(σ² + ε), shift = β − μ·scale): y = scale·x + shift, from
    per-channel float64 statistics; gamma and beta are Tensors or None."""
    inv_std = 1.0 / np.sqrt(var + eps)
    scale = inv_std * (1.0 if gamma is None else gamma.data)
    shift = (0.0 if beta is None else beta.data) - mean * scale
    return inv_std, scale, shift


def normalize_affine(x3, mean, var, eps, gamma, beta):
    """(1/√(σ² + ε), scale = γ/√(σ² + ε), y = scale·(x − μ) + β) for x3 (N, C, L), y by the
    fused affine kernel; per-channel float64 statistics; gamma and beta are Tensors or None."""
    from ..kernels import batchnorm_numba as kernels
    inv_std, scale, shift = scale_and_shift(mean, var, eps, gamma, beta)
    out = np.empty_like(x3)
    kernels.affine(x3, scale.astype(x3.dtype), shift.astype(x3.dtype), out)
    return inv_std, scale, out


def _compiled_batch_norm(x, mean_buf, var_buf, gamma, beta, training, momentum, eps):
    """``batch_norm`` through the fused kernels of ``kernels.batchnorm_numba`` (same formulas)."""
    from ..kernels import batchnorm_numba as kernels
    x3 = np.ascontiguousarray(x.data).reshape(_planes(x.shape))
    channels = x.shape[1]
    if training:
        mean, var = np.empty(channels), np.empty(channels)
        kernels.channel_stats(x3, mean, var)
        _update_running(mean_buf, var_buf, mean, var, momentum, x3.shape[0] * x3.shape[2])
    else:
        mean, var = mean_buf.astype(np.float64), var_buf.astype(np.float64)
    inv_std, scale, out = normalize_affine(x3, mean, var, eps, gamma, beta)

    def backward(g):
        g3 = np.ascontiguousarray(g).reshape(x3.shape)
        sum_g, sum_g_xhat = np.empty(channels), np.empty(channels)
        kernels.grad_sums(x3, g3, mean, inv_std, sum_g, sum_g_xhat)
        dx = None
        if x.requires_grad:
            if training:
                dx = np.empty_like(x3)
                kernels.grad_input(x3, g3, mean, inv_std, scale, sum_g, sum_g_xhat, dx)
            else:
                dx = g3 * scale.astype(x.dtype)[:, None]
            dx = dx.reshape(x.shape)
        grads = (dx,)
        if gamma is not None:
            grads += (sum_g_xhat.astype(x.dtype) if gamma.requires_grad else None,)
        if beta is not None:
            grads += (sum_g.astype(x.dtype) if beta.requires_grad else None,)
        return grads
    parents = (x,) + tuple(p for p in (gamma, beta) if p is not None)
    return Tensor._make(out.reshape(x.shape), parents, backward, "batch_norm")
