"""Convolution as an implicit GEMM: the product reads the padded input in place, no im2col.

float32, groups = 1, any number of spatial dims, stride and dilation (the input gradient is
stride 1 only: for larger strides ``conv.py`` uses im2col). The compiled kernels and their
index algebra are in ``implicit_gemm_numba``; here are the tables they read:

    offset[(c, a)] = c·plane + Σ_j a_j·d_j·pitch_j        where tap (c, a) reads, from a corner
    corner[(n, i)] = n·image + Σ_j i_j·s_j·pitch_j        where output position (n, i) starts

(flat element indices into the padded input: pitch = row lengths, plane = one channel's size).
"""
import math

import numpy as np

import numba

from . import implicit_gemm_numba as compiled
from .conv_shift import flat_pitches
from .padding import zero_pad


def applies(dtype, groups):
    return np.dtype(dtype) == np.float32 and groups == 1


def _offsets(x_shape, kernel, dilation):
    """offset per (c, a) tap, c-major then the kernel's dims in order (w's layout)."""
    channel, *pitch = flat_pitches(x_shape[1:])
    table = np.arange(x_shape[1], dtype=np.int64) * channel
    for k, d, p in zip(kernel, dilation, pitch):
        table = np.add.outer(table, np.arange(k, dtype=np.int64) * (d * p)).reshape(-1)
    return table


def _corners(x_shape, out, stride):
    """corner per output position (n, i), image-major then the output's dims in order."""
    image, pitch = math.prod(x_shape[1:]), flat_pitches(x_shape[2:])
    table = np.arange(x_shape[0], dtype=np.int64) * image
    for o, s, p in zip(out, stride, pitch):
        table = np.add.outer(table, np.arange(o, dtype=np.int64) * (s * p)).reshape(-1)
    return table


def forward(xp, w, stride, dilation, out):
    """xp (N, C, *padded) float32, w (K, C, *kernel) -> y (N, K, *out)."""
    n, k = xp.shape[0], w.shape[0]
    rows, vectors, k_padded = compiled.tile(k)
    taps = math.prod(w.shape[1:])
    wt = np.zeros((taps, k_padded), dtype=np.float32)
    wt[:, :k] = w.reshape(k, taps).T
    corner = _corners(xp.shape, out, stride)
    y_last = np.empty((corner.size + rows, k_padded), dtype=np.float32)
    compiled.ENTRY[vectors][0](np.ascontiguousarray(xp), wt,
                               _offsets(xp.shape, w.shape[2:], dilation), corner, y_last,
                               8 * numba.get_num_threads())
    y = np.empty((n, k, math.prod(out)), dtype=np.float32)
    compiled.channels_first(y_last, y)
    return y.reshape((n, k) + tuple(out))


def backward_input(dy, w, spatial, dilation, pads=None):
    """Stride 1: dL/dx is the forward kernel on dy padded by d·(k−1) (less the input's own
    padding, whose gradient is not wanted) with the flipped, channel-swapped kernel."""
    pads = pads or [(0, 0)] * len(spatial)
    kernel = w.shape[2:]
    reach = [d * (k - 1) for k, d in zip(kernel, dilation)]
    dy_pads = [(r - lo, r - hi) for r, (lo, hi) in zip(reach, pads)]
    crop = [(0, 0)] * len(spatial)
    if any(lo < 0 or hi < 0 for lo, hi in dy_pads):  # padding wider than the kernel's reach
        dy_pads, crop = [(r, r) for r in reach], pads
    dyp = zero_pad(dy, dy_pads)
    flipped = np.ascontiguousarray(
        np.swapaxes(w, 0, 1)[(slice(None), slice(None)) + (slice(None, None, -1),) * len(kernel)])
    interior = crop == [(0, 0)] * len(spatial)
    out = [s - lo - hi for s, (lo, hi) in zip(spatial, pads)] if interior else list(spatial)
    dx = forward(dyp, flipped, (1,) * len(kernel), dilation, out)
    index = tuple(slice(lo, dx.shape[2 + j] - hi) for j, (lo, hi) in enumerate(crop))
    return dx[(slice(None), slice(None)) + index]


def backward_weight(xp, dy, kernel, stride, dilation):
    """xp (N, C, *padded) float32, dy (N, K, *out) -> dw (K, C, *kernel)."""
    n, k = dy.shape[:2]
    rows, vectors, k_padded = compiled.tile(k)
    positions = math.prod(dy.shape[2:])
    dy_last = np.empty((n * positions, k_padded), dtype=np.float32)
    compiled.channels_last(np.ascontiguousarray(dy).reshape(n, k, positions), dy_last)
    offset = _offsets(xp.shape, kernel, dilation)
    partial = np.empty((numba.get_num_threads(), offset.size + rows, k_padded), np.float32)
    compiled.ENTRY[vectors][1](np.ascontiguousarray(xp), dy_last, offset,
                               _corners(xp.shape, dy.shape[2:], stride), partial)
    dwt = partial.sum(axis=0)[:offset.size, :k]
    return np.ascontiguousarray(dwt.T).reshape((k, xp.shape[1]) + tuple(kernel))
