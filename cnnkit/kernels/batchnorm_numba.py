"""Compiled batch normalisation over (N, C, L) arrays (Numba), fused passes per channel.

Forward (per channel c, over the N·L values of that channel):
    μ = mean(x),  σ² = mean((x − μ)²),  x̂ = (x − μ)/√(σ² + ε),  y = γ·x̂ + β  =  a·x + b
Backward (training), with g = dL/dy and M = N·L:
    dL/dx = (γ/√(σ² + ε)) / M · (M·g − Σg − x̂·Σ(g·x̂)),   dL/dγ = Σ(g·x̂),   dL/dβ = Σg
x̂ is recomputed from x in backward rather than stored: one array less held per layer.
Sums accumulate in float64 whatever the input precision. Each kernel is a task per channel, or
per image and channel, on the one parallel loop (``task_call.Loop``).
"""
import numba
import numpy as np

from .task_call import Loop

_JIT = dict(cache=True, fastmath={"contract", "reassoc"})


def _channels(x, *rest):
    return x.shape[1]


def _planes(x, *rest):
    return x.shape[0] * x.shape[1]


@numba.njit(**_JIT)
def _channel_stats(c, x, mean, var):
    """mean[c], var[c] (biased) of x (N, C, L) over N and L, two passes for accuracy: task c
    of ``channel_stats``."""
    n_images, channels, length = x.shape
    count = n_images * length
    total = 0.0
    for n in range(n_images):
        row = x[n, c]
        for i in range(length):
            total += row[i]
    mu = total / count
    spread = 0.0
    for n in range(n_images):
        row = x[n, c]
        for i in range(length):
            d = row[i] - mu
            spread += d * d
    mean[c] = mu
    var[c] = spread / count


channel_stats = Loop(_channel_stats, _channels)  # (x, mean, var)


@numba.njit(**_JIT)
def _affine(task, x, scale, shift, out):
    """out[n, c, :] = scale[c]·x[n, c, :] + shift[c], task n·C + c of ``affine``."""
    channels, length = x.shape[1], x.shape[2]
    n, c = task // channels, task % channels
    a, b = scale[c], shift[c]
    row, dst = x[n, c], out[n, c]
    for i in range(length):
        dst[i] = a * row[i] + b


affine = Loop(_affine, _planes)  # (x, scale, shift, out)


@numba.njit(cache=True)
def _coefficients(mean, var, gamma, beta, eps, scale, shift):
    """scale[c] = γ/√(σ² + ε) and shift[c] = β − μ·scale[c] of the running statistics,
    computed in float64 and rounded once to scale's and shift's dtype (as
    ``functional.normalization.scale_and_shift`` does with NumPy); gamma, beta empty for
    γ = 1, β = 0."""
    for c in range(scale.size):
        inv_std = 1.0 / np.sqrt(np.float64(var[c]) + eps)
        a = inv_std * gamma[c] if gamma.size else inv_std
        scale[c] = a
        shift[c] = (beta[c] if beta.size else 0.0) - np.float64(mean[c]) * a


@numba.njit(cache=True)
def evaluate(x, mean, var, gamma, beta, eps, out):
    """Evaluation mode on the calling thread: out[n, c, :] = scale[c]·x[n, c, :] + shift[c]
    for x (N, C, L), the coefficients of the running statistics (``_coefficients``) in x's
    dtype, the product rounded before the sum, as NumPy's two passes (no fused multiply-add:
    the same floats as they gave). For a small input, where the parallel ``affine`` pays
    more to wake the threads than it saves, and NumPy's passes each cost a call."""
    n_images, channels, length = x.shape
    scale = np.empty(channels, x.dtype)
    shift = np.empty(channels, x.dtype)
    _coefficients(mean, var, gamma, beta, eps, scale, shift)
    for n in range(n_images):
        for c in range(channels):
            a, b = scale[c], shift[c]
            row, dst = x[n, c], out[n, c]
            for i in range(length):
                dst[i] = a * row[i] + b


@numba.njit(**_JIT)
def _grad_sums(c, x, g, mean, inv_std, sum_g, sum_g_xhat):
    """Σg and Σ(g·x̂) of channel c, task c of ``grad_sums``."""
    n_images, channels, length = x.shape
    total_g = 0.0
    total_gx = 0.0
    mu = mean[c]
    for n in range(n_images):
        row, grad = x[n, c], g[n, c]
        for i in range(length):
            total_g += grad[i]
            total_gx += grad[i] * (row[i] - mu)
    sum_g[c] = total_g
    sum_g_xhat[c] = total_gx * inv_std[c]


grad_sums = Loop(_grad_sums, _channels)  # (x, g, mean, inv_std, sum_g, sum_g_xhat)


@numba.njit(**_JIT)
def _grad_input(task, x, g, mean, inv_std, scale, sum_g, sum_g_xhat, dx):
    """dx = scale/M · (M·g − Σg − x̂·Σ(g·x̂)), x̂ = (x − μ)·inv_std, on plane (n, c), task n·C + c
    of ``grad_input``."""
    n_images, channels, length = x.shape
    count = n_images * length
    n, c = task // channels, task % channels
    k = scale[c] / count
    mu, s, sg, sgx = mean[c], inv_std[c], sum_g[c], sum_g_xhat[c]
    row, grad, dst = x[n, c], g[n, c], dx[n, c]
    for i in range(length):
        dst[i] = k * (count * grad[i] - sg - (row[i] - mu) * s * sgx)


grad_input = Loop(_grad_input, _planes)  # (x, g, mean, inv_std, scale, sum_g, sum_g_xhat, dx)
