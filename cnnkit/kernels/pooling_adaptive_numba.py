"""Adaptive pooling over windows of varying size, compiled (Numba): averages and maxima of 1-D
to 3-D maps, both directions.

Window i of an axis of n cells pooled to o is [⌊i·n/o⌋, ⌈(i + 1)·n/o⌉) (``pooling.
adaptive_windows``); where o does not divide n the windows differ in size and overlap
(10 → 7: 2, 2, 3, 2, 3, 2 and 2 cells), so they are not plain pooling. NumPy's passes gathered them
axis by axis: 10² maps pooled to 7² took 3.6–4.1 times PyTorch's time (BENCHMARKS.md, "Adaptive
pooling over uneven windows compiled"). Here each (image, channel) plane, seen as a volume
(D, H, W), is one task, and each output cell sums or compares its window's cells in order
(depth, row, column), as PyTorch's CPU kernels do: an average is its window's float sum
divided by each axis's window size in turn; the maximum is the first one, unless there is a
NaN, when the last NaN wins; the backward passes add each output's share (or gradient) into
its cells in the outputs' order, so a plane's dL/dx is one task's and the sums are PyTorch's.
"""
import functools

import numba
import numpy as np

from .pooling import adaptive_windows
from .pooling_numba import max_pool_backward

_JIT = dict(parallel=True, cache=True)


@numba.njit(**_JIT)
def _average(x, y, windows, sizes):
    """y[p, i, j, k] = Σ x[p] over window (i, j, k) / its depth / height / width. ``windows``
    (3, 2, o_max): each axis's starts and ends; ``sizes`` (3, o_max) their sizes in x's
    dtype."""
    zero = sizes[0, 0] - sizes[0, 0]
    for p in numba.prange(x.shape[0]):
        volume, out = x[p], y[p]
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                for k in range(out.shape[2]):
                    total = zero
                    for d in range(windows[0, 0, i], windows[0, 1, i]):
                        for h in range(windows[1, 0, j], windows[1, 1, j]):
                            row = volume[d, h]
                            for w in range(windows[2, 0, k], windows[2, 1, k]):
                                total += row[w]
                    out[i, j, k] = total / sizes[0, i] / sizes[1, j] / sizes[2, k]


@numba.njit(**_JIT)
def _average_backward(g, dx, windows, sizes):
    """dx[p] = 0, then each output's gradient / its window's depth / height / width added to
    every cell of its window, outputs in order."""
    for p in numba.prange(g.shape[0]):
        grad, volume = g[p], dx[p]
        volume[:] = 0
        for i in range(grad.shape[0]):
            for j in range(grad.shape[1]):
                for k in range(grad.shape[2]):
                    share = grad[i, j, k] / sizes[0, i] / sizes[1, j] / sizes[2, k]
                    for d in range(windows[0, 0, i], windows[0, 1, i]):
                        for h in range(windows[1, 0, j], windows[1, 1, j]):
                            row = volume[d, h]
                            for w in range(windows[2, 0, k], windows[2, 1, k]):
                                row[w] += share


@numba.njit(**_JIT)
def _maximum(x, y, index, windows, lowest):
    """y[p, i, j, k] = the maximum of x[p] over window (i, j, k); index: its flat position in
    the volume. PyTorch's rule (from −inf at the window's first cell, a cell replaces the
    maximum if it is greater or NaN) in two selects per cell: the first greatest cell, and
    the last NaN, which wins if there is one. One select with "greater or NaN" compiled to a
    branch on AVX2, which has no masked scalar move: 13² maps to 6² took 14.0–15.5 ms
    there against 5.7–6.5 (AVX-512 6.7–7.1 against 5.7–6.1)."""
    height, width = x.shape[2], x.shape[3]
    for p in numba.prange(x.shape[0]):
        volume, out, at = x[p], y[p], index[p]
        cells = volume.reshape(-1)
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                for k in range(out.shape[2]):
                    d0, h0, w0 = windows[0, 0, i], windows[1, 0, j], windows[2, 0, k]
                    best, where, nan_at = lowest, (d0 * height + h0) * width + w0, -1
                    for d in range(d0, windows[0, 1, i]):
                        for h in range(h0, windows[1, 1, j]):
                            row, first = volume[d, h], (d * height + h) * width
                            for w in range(w0, windows[2, 1, k]):
                                value = row[w]
                                where = first + w if value > best else where
                                best = value if value > best else best
                                nan_at = first + w if value != value else nan_at
                    if nan_at >= 0:
                        best, where = cells[nan_at], nan_at
                    out[i, j, k], at[i, j, k] = best, where


@functools.lru_cache(maxsize=256)
def _tables(spatial, out, dtype):
    """(windows, sizes) for pooling a volume ``spatial`` (D, H, W) to ``out``, kept per call
    shape (read-only)."""
    longest = max(out)
    windows = np.zeros((3, 2, longest), np.int64)
    sizes = np.ones((3, longest), dtype)
    for axis, (n, o) in enumerate(zip(spatial, out)):
        start, end = adaptive_windows(n, o)
        windows[axis, 0, :o], windows[axis, 1, :o], sizes[axis, :o] = start, end, end - start
    windows.flags.writeable = sizes.flags.writeable = False
    return windows, sizes


def _as_volume(shape):
    """(N, C, *spatial) of 1 to 3 spatial axes -> (N·C, D, H, W)."""
    spatial = tuple(shape[2:])
    return (shape[0] * shape[1],) + (1,) * (3 - len(spatial)) + spatial


def adaptive_avg_forward(x, out):
    """``pooling.adaptive_avg_forward`` for float x of 1-3 spatial axes, out all > 0."""
    volume, out_volume = _as_volume(x.shape), _as_volume(x.shape[:2] + tuple(out))
    y = np.empty(x.shape[:2] + tuple(out), x.dtype)
    _average(np.ascontiguousarray(x).reshape(volume), y.reshape(out_volume),
             *_tables(volume[1:], out_volume[1:], x.dtype))
    return y


def adaptive_avg_backward(g, in_spatial):
    """``pooling.adaptive_avg_backward`` for ``adaptive_avg_forward``."""
    in_shape = g.shape[:2] + tuple(in_spatial)
    volume, out_volume = _as_volume(in_shape), _as_volume(g.shape)
    dx = np.empty(in_shape, g.dtype)
    _average_backward(np.ascontiguousarray(g).reshape(out_volume), dx.reshape(volume),
                      *_tables(volume[1:], out_volume[1:], g.dtype))
    return dx


def adaptive_max_forward(x, out):
    """``pooling.adaptive_max_forward``: (y, the flat index of each maximum in its plane)."""
    volume, out_volume = _as_volume(x.shape), _as_volume(x.shape[:2] + tuple(out))
    y = np.empty(x.shape[:2] + tuple(out), x.dtype)
    index = np.empty(y.shape, np.int64)
    windows, _ = _tables(volume[1:], out_volume[1:], x.dtype)
    _maximum(np.ascontiguousarray(x).reshape(volume), y.reshape(out_volume),
             index.reshape(out_volume), windows, x.dtype.type(-np.inf))
    return y, index


def scatter_to_planes(g, index, in_shape):
    """``pooling.scatter_to_planes``: each gradient added at its index, outputs in order."""
    return max_pool_backward(g, index, in_shape)
