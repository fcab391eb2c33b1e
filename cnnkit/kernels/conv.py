"""Convolution kernels on plain ndarrays: forward and both gradients, any number of dims.

All three take an input that is *already padded*; ``cnnkit.functional.conv`` does the padding
and the autograd wiring. Notation (the source notes' forward formula, with batch and groups):

    y[n, k, i] = Σ_c Σ_a w[k, c, a] · x[n, c, i·s + a·d]          (i, a: spatial multi-indices)

Its two gradients are convolutions again:

    dL/dx[n, c, j] = Σ_k Σ_{a : j = i·s + a·d} dL/dy[n, k, i] · w[k, c, a]
        the *transposed* convolution of dL/dy with w: every output gradient is spread back over
        its receptive field, weighted by the kernel taps. For stride 1 this is the full
        correlation of dL/dy with the flipped kernel.
    dL/dw[k, c, a] = Σ_n Σ_i dL/dy[n, k, i] · x[n, c, i·s + a·d]
        the correlation of the input with dL/dy.

As matrix products (JAX's way of saying it), with X the im2col matrix [(c, a), i] of one image:
    forward  W[k, (c,a)] @ X[(c,a), i] -> Y[k, i]
    input    Wᵀ[(c,a), k] @ dY[k, i] -> dX[(c,a), i], then col2im folds columns onto pixels
    weight   dY[k, i] @ Xᵀ[i, (c,a)] -> dW[k, (c,a)], summed over the batch

Two algorithms, chosen by ``_algorithm``: ``'gemm'`` (im2col + matrix product, for ordinary
layers) and ``'depthwise'`` (one channel per group: a direct sum over kernel offsets, since a
1×(k·k) matrix product per channel would waste BLAS).
"""
import math

import numpy as np

from .im2col import col2im, offset_views, windows


def _output_spatial(spatial, kernel, stride, dilation):
    return tuple((n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(spatial, kernel, stride, dilation))


def _algorithm(in_channels, groups):
    return "depthwise" if in_channels == groups else "gemm"


def conv_forward(xp, w, stride, dilation, groups=1):
    """Cross-correlation of a padded input with a bank of kernels.

    xp : ndarray of shape (N, C, *spatial) — padded input
    w  : ndarray of shape (K, C // groups, *kernel)
    Returns y : ndarray of shape (N, K, *out), out = floor((spatial − d·(k−1) − 1)/s) + 1
    """
    n, c = xp.shape[:2]
    k, kernel = w.shape[0], w.shape[2:]
    out = _output_spatial(xp.shape[2:], kernel, stride, dilation)
    if _algorithm(c, groups) == "depthwise":
        return _depthwise_forward(xp, w, stride, dilation, out)
    taps, positions = (c // groups) * math.prod(kernel), math.prod(out)
    cols = windows(xp, kernel, stride, dilation, out).reshape(n, groups, taps, positions)
    y = w.reshape(groups, k // groups, taps) @ cols  # (N, G, K/G, P)
    return y.reshape((n, k) + out)


def conv_backward_input(dy, w, spatial, stride, dilation, groups=1):
    """dL/dx of ``conv_forward``: the transposed convolution of ``dy`` with ``w``.

    dy : ndarray of shape (N, K, *out);  w : ndarray of shape (K, C // groups, *kernel)
    spatial : the padded input's spatial shape.
    Returns ndarray of shape (N, C, *spatial).
    """
    n, k = dy.shape[:2]
    c, kernel, out = w.shape[1] * groups, w.shape[2:], dy.shape[2:]
    if _algorithm(c, groups) == "depthwise":
        return _depthwise_backward_input(dy, w, spatial, stride, dilation, groups)
    taps, positions = (c // groups) * math.prod(kernel), math.prod(out)
    w_t = np.swapaxes(w.reshape(groups, k // groups, taps), 1, 2)  # (G, taps, K/G)
    dcols = w_t @ dy.reshape(n, groups, k // groups, positions)  # (N, G, taps, P)
    return col2im(dcols.reshape((n, c) + tuple(kernel) + tuple(out)), spatial, stride, dilation)


def conv_backward_weight(xp, dy, kernel, stride, dilation, groups=1):
    """dL/dw of ``conv_forward``: the correlation of the input with ``dy``.

    xp : ndarray of shape (N, C, *spatial) — padded input;  dy : ndarray of shape (N, K, *out)
    Returns ndarray of shape (K, C // groups, *kernel).
    """
    n, c = xp.shape[:2]
    k, out = dy.shape[1], dy.shape[2:]
    kernel = tuple(kernel)
    if _algorithm(c, groups) == "depthwise":
        return _depthwise_backward_weight(xp, dy, kernel, stride, dilation)
    taps, positions = (c // groups) * math.prod(kernel), math.prod(out)
    cols = windows(xp, kernel, stride, dilation, out).reshape(n, groups, taps, positions)
    dy_g = dy.reshape(n, groups, k // groups, positions)
    dw = (dy_g @ np.swapaxes(cols, 2, 3)).sum(axis=0)  # (G, K/G, taps)
    return dw.reshape((k, c // groups) + kernel)


# -- depthwise: C == groups, each input channel feeds K/C output channels of its own ----------

def _by_group(array, groups):
    """(N, G·m, *s) -> (N, G, m, *s): output channel g·m + j belongs to input channel g."""
    return array.reshape(array.shape[:1] + (groups, array.shape[1] // groups) + array.shape[2:])


def _tap(w, offset, groups, n_spatial):
    """Kernel tap ``w[:, 0, *offset]`` shaped (G, m, 1, ..., 1) to broadcast over positions."""
    return w[(slice(None), 0) + offset].reshape((groups, -1) + (1,) * n_spatial)


def _depthwise_forward(xp, w, stride, dilation, out):
    n, groups, kernel = xp.shape[0], xp.shape[1], w.shape[2:]
    y = np.zeros((n, groups, w.shape[0] // groups) + out, dtype=np.result_type(xp, w))
    for offset, view in offset_views(xp, kernel, stride, dilation, out):
        y += _tap(w, offset, groups, len(out)) * view[:, :, None]
    return y.reshape((n, w.shape[0]) + out)


def _depthwise_backward_input(dy, w, spatial, stride, dilation, groups):
    dy_g = _by_group(dy, groups)
    dxp = np.zeros((dy.shape[0], groups) + tuple(spatial), dtype=np.result_type(dy, w))
    out = dy.shape[2:]
    for offset, view in offset_views(dxp, w.shape[2:], stride, dilation, out):
        view += (_tap(w, offset, groups, len(out)) * dy_g).sum(axis=2)
    return dxp


def _depthwise_backward_weight(xp, dy, kernel, stride, dilation):
    n, groups = xp.shape[:2]
    out = dy.shape[2:]
    dy_g = _by_group(dy, groups)
    positions = "xyzuvw"[:len(out)]
    dw = np.empty((dy.shape[1], 1) + kernel, dtype=np.result_type(xp, dy))
    for offset, view in offset_views(xp, kernel, stride, dilation, out):
        # Σ_n Σ_i dy[n, g·m + j, i] · x[n, g, i·s + a·d]
        dw[(slice(None), 0) + offset] = np.einsum(
            f"ngj{positions},ng{positions}->gj", dy_g, view).reshape(-1)
    return dw
