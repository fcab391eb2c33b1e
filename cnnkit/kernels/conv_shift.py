"""Stride-1 convolution as a sum of shifted matrix products, with no im2col copy.

Flatten each padded image's spatial dims into one axis of length L. For stride 1, kernel
offset ``a`` reads the input at flat position ``p + off(a)`` for output flat position ``p``,
where ``off(a) = Σ_j a_j·d_j·pitch_j`` (pitch = the padded row length, plane size, ...). If the
output is computed on the padded grid too — a few extra "wrap-around" columns per row, thrown
away at the end — then every offset's input is one contiguous slice of the flat image:

    y_ext[n, k, p] = Σ_a Σ_c w[k, c, a] · x_flat[n, c, p + off(a)]
                   = Σ_a  (W_a @ x_flat[n, :, off(a) : off(a) + P])[k, p]

a (K, C) @ (C, P) product per offset that BLAS reads in place (rows of stride L). The wasted
columns cost (W + pad)/W extra work; skipping the im2col copy saves far more.

Both gradients use the same trick (``backward_input`` is the notes' formula: the full
correlation of dL/dy with the flipped kernel; ``backward_weight`` sums ``dy_ext @ x_sliceᵀ``).
"""
import itertools
import math

import numpy as np


def _pitches(spatial):
    """Flat-index step of each spatial dim: (prod(spatial[1:]), ..., 1)."""
    return tuple(math.prod(spatial[j + 1:]) for j in range(len(spatial)))


def _geometry(spatial, kernel, dilation, out):
    pitch = _pitches(spatial)
    # From the first to the last *valid* output position, on the padded grid.
    length = sum((o - 1) * p for o, p in zip(out, pitch)) + 1
    offsets = [sum(a * d * p for a, d, p in zip(offset, dilation, pitch))
               for offset in itertools.product(*(range(k) for k in kernel))]
    return pitch, length, offsets


def _to_grid(y_ext, spatial, out):
    """Keep the valid positions of an output computed on the padded grid."""
    n, k, length = y_ext.shape
    if tuple(out) == tuple(spatial):  # e.g. 1×1 kernels: the grid is the output, nothing to drop
        return y_ext.reshape((n, k) + tuple(out))
    full = np.zeros((n, k, out[0] * math.prod(spatial[1:])), dtype=y_ext.dtype)
    full[:, :, :length] = y_ext
    full = full.reshape((n, k, out[0]) + tuple(spatial[1:]))
    return np.ascontiguousarray(full[(slice(None), slice(None), slice(None)) +
                                     tuple(slice(0, o) for o in out[1:])])


def _from_grid(dy, spatial, length):
    """Place dy (N, K, *out) on the padded grid (zeros in the wrap-around columns), flattened."""
    n, k, out = dy.shape[0], dy.shape[1], dy.shape[2:]
    if tuple(out) == tuple(spatial):
        return dy.reshape(n, k, -1)
    grid = np.zeros((n, k, out[0]) + tuple(spatial[1:]), dtype=dy.dtype)
    grid[(slice(None), slice(None), slice(None)) + tuple(slice(0, o) for o in out[1:])] = dy
    return grid.reshape(n, k, -1)[:, :, :length]


def forward(xp, w, dilation, out, groups):
    """xp (N, C, *spatial) padded, w (K, C/G, *kernel) -> y (N, K, *out), stride 1."""
    n, c, spatial = xp.shape[0], xp.shape[1], xp.shape[2:]
    k, kernel = w.shape[0], w.shape[2:]
    _, length, offsets = _geometry(spatial, kernel, dilation, out)
    x_flat = np.ascontiguousarray(xp).reshape(n, groups, c // groups, -1)
    taps = w.reshape(groups, k // groups, c // groups, -1)  # (G, K/G, C/G, offsets)
    y = None
    for t, off in enumerate(offsets):
        term = np.matmul(taps[:, :, :, t], x_flat[:, :, :, off:off + length])
        if y is None:
            y = term
        else:
            y += term
    return _to_grid(y.reshape(n, k, length), spatial, out)


def backward_input(dy, w, spatial, dilation, groups):
    """dL/dx = full correlation of dL/dy with the flipped kernel (channels swapped), stride 1."""
    k, cg, kernel = w.shape[0], w.shape[1], w.shape[2:]
    flipped = w[(slice(None), slice(None)) + (slice(None, None, -1),) * len(kernel)]
    # (G, K/G, C/G, *k) -> (G, C/G, K/G, *k): the transposed convolution's weight.
    flipped = flipped.reshape((groups, k // groups, cg) + tuple(kernel)).swapaxes(1, 2)
    flipped = np.ascontiguousarray(flipped).reshape((groups * cg, k // groups) + tuple(kernel))
    reach = [(d * (kk - 1), d * (kk - 1)) for kk, d in zip(kernel, dilation)]
    dy_full = np.pad(dy, [(0, 0), (0, 0)] + reach) if any(r for r, _ in reach) else dy
    return forward(dy_full, flipped, dilation, tuple(spatial), groups)


def backward_weight(xp, dy, kernel, dilation, groups):
    """dL/dw[k, c, a] = Σ_n Σ_p dy_ext[n, k, p] · x_flat[n, c, p + off(a)], stride 1."""
    n, c, spatial = xp.shape[0], xp.shape[1], xp.shape[2:]
    k = dy.shape[1]
    _, length, offsets = _geometry(spatial, kernel, dilation, dy.shape[2:])
    x_flat = np.ascontiguousarray(xp).reshape(n, groups, c // groups, -1)
    dy_ext = _from_grid(dy, spatial, length).reshape(n, groups, k // groups, length)
    dw = np.empty((groups, k // groups, c // groups, len(offsets)), dtype=np.result_type(xp, dy))
    for t, off in enumerate(offsets):
        x_slice = x_flat[:, :, :, off:off + length]
        dw[:, :, :, t] = (dy_ext @ np.swapaxes(x_slice, 2, 3)).sum(axis=0)
    return dw.reshape((k, c // groups) + tuple(kernel))
