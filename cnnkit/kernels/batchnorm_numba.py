"""Compiled batch normalisation over (N, C, L) arrays (Numba), fused passes per channel.

Forward (per channel c, over the N·L values of that channel):
    μ = mean(x),  σ² = mean((x − μ)²),  x̂ = (x − μ)/√(σ² + ε),  y = γ·x̂ + β  =  a·x + b
Backward (training), with g = dL/dy and M = N·L:
    dL/dx = (γ/√(σ² + ε)) / M · (M·g − Σg − x̂·Σ(g·x̂)),   dL/dγ = Σ(g·x̂),   dL/dβ = Σg
x̂ is recomputed from x in backward rather than stored: one array less held per layer.
Sums accumulate in float64 whatever the input precision.
"""
import numba

_JIT = dict(parallel=True, cache=True, fastmath={"contract", "reassoc"})


@numba.njit(**_JIT)
def channel_stats(x, mean, var):
    """mean[c], var[c] (biased) of x (N, C, L) over N and L; two passes for accuracy."""
    n_images, channels, length = x.shape
    count = n_images * length
    for c in numba.prange(channels):
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


@numba.njit(**_JIT)
def affine(x, scale, shift, out):
    """out[n, c, :] = scale[c]·x[n, c, :] + shift[c]."""
    n_images, channels, length = x.shape
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        a, b = scale[c], shift[c]
        row, dst = x[n, c], out[n, c]
        for i in range(length):
            dst[i] = a * row[i] + b


@numba.njit(**_JIT)
def grad_sums(x, g, mean, inv_std, sum_g, sum_g_xhat):
    """Σg and Σ(g·x̂) per channel."""
    n_images, channels, length = x.shape
    for c in numba.prange(channels):
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


@numba.njit(**_JIT)
def grad_input(x, g, mean, inv_std, scale, sum_g, sum_g_xhat, dx):
    """dx = scale/M · (M·g − Σg − x̂·Σ(g·x̂)),  x̂ = (x − μ)·inv_std."""
    n_images, channels, length = x.shape
    count = n_images * length
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        k = scale[c] / count
        mu, s, sg, sgx = mean[c], inv_std[c], sum_g[c], sum_g_xhat[c]
        row, grad, dst = x[n, c], g[n, c], dx[n, c]
        for i in range(length):
            dst[i] = k * (count * grad[i] - sg - (row[i] - mu) * s * sgx)
