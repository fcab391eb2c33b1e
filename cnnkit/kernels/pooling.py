"""Pooling kernels on plain ndarrays: max, average and adaptive, any number of spatial dims.

A pooling window slides like a convolution's receptive field, so windows and output sizes come
from the same places (``im2col.offset_views``, ``conv_arithmetic.output_size``). Every loop here
runs over *kernel offsets* — k·k passes, each over the whole batch — never over output pixels.
"""
import math

import numpy as np

from .im2col import offset_views
from .padding import pad_array


def _padded(x, pads, needed, value):
    """Pad the spatial dims by ``pads``, and further on the high side up to ``needed`` cells.

    ceil_mode lets the last window hang over the padded input; those cells are never counted.
    """
    widths = [(0, 0), (0, 0)]
    for n, (lo, hi), need in zip(x.shape[2:], pads, needed):
        widths.append((lo, max(hi, need - n - lo)))
    return pad_array(x, widths, value=value)


def _needed(out, kernel, stride, dilation):
    return tuple((o - 1) * s + d * (k - 1) + 1 for o, k, s, d in zip(out, kernel, stride, dilation))


def max_pool_forward(x, kernel, stride, pads, dilation, out):
    """Max over each window.

    x : ndarray of shape (N, C, *spatial);  pads : ((lo, hi), ...)
    Returns (y, winner): y of shape (N, C, *out) and, for the backward pass, the flat kernel
    offset of the element that won each window (the first maximum; a NaN always wins, as in
    PyTorch). A padding cell never wins, not even against an input of −inf: like PyTorch, a
    window of −inf picks its first real cell, so the index and the gradient stay in the input.
    """
    needed = _needed(out, kernel, stride, dilation)
    xp = _padded(x, pads, needed, -np.inf)
    is_real = _padded(np.ones((1, 1) + x.shape[2:], dtype=bool), pads, needed, False)
    views = zip(offset_views(xp, kernel, stride, dilation, out),
                offset_views(is_real, kernel, stride, dilation, out))
    (_, first), (_, first_real) = next(views)
    y = first.copy()
    winner = np.zeros(y.shape, dtype=np.int32)
    winner_real = np.broadcast_to(first_real, y.shape).copy()
    for flat, ((_, view), (_, real)) in enumerate(views, start=1):
        better = (view > y) | np.isnan(view) | (real & ~winner_real)
        np.copyto(y, view, where=better)
        winner[better] = flat
        winner_real |= better  # padding (−inf, never NaN) cannot be better than anything
    return y, winner


def max_pool_indices(winner, in_spatial, kernel, stride, pads, dilation):
    """PyTorch's ``return_indices``: each winner's flat index into its (unpadded) input plane."""
    offsets = np.unravel_index(winner, kernel)
    index = np.zeros(winner.shape, dtype=np.int64)
    for axis, (a, k, s, d, (lo, _), n) in enumerate(
            zip(offsets, kernel, stride, dilation, pads, in_spatial)):
        shape = [1] * winner.ndim
        shape[2 + axis] = winner.shape[2 + axis]
        position = np.arange(winner.shape[2 + axis]).reshape(shape) * s + a * d - lo
        index = index * n + position
    return index


def max_pool_backward(g, winner, in_shape, kernel, stride, pads, dilation):
    """Route each output gradient to the input element that won its window."""
    out = g.shape[2:]
    dxp = np.zeros(in_shape[:2] + _needed_full(in_shape[2:], pads, out, kernel, stride, dilation),
                   dtype=g.dtype)
    for flat, (_, view) in enumerate(offset_views(dxp, kernel, stride, dilation, out)):
        view += np.where(winner == flat, g, 0)
    return _crop(dxp, in_shape, pads)


def _needed_full(in_spatial, pads, out, kernel, stride, dilation):
    needed = _needed(out, kernel, stride, dilation)
    return tuple(max(n + lo + hi, need) for n, (lo, hi), need in zip(in_spatial, pads, needed))


def _crop(dxp, in_shape, pads):
    return np.ascontiguousarray(
        dxp[(slice(None), slice(None)) + tuple(slice(lo, lo + n) for n, (lo, _) in
                                               zip(in_shape[2:], pads))])


def avg_divisor(in_spatial, kernel, stride, pads, out, count_include_pad):
    """How many cells each window averages over, shape (*out): a product of per-dim counts.

    With ``count_include_pad`` padding cells count but the ceil_mode overhang beyond the padded
    input does not (PyTorch's rule); without it only real input cells count.
    """
    divisor = np.ones((), dtype=np.float64)
    for n, k, s, (lo, hi), o in zip(in_spatial, kernel, stride, pads, out):
        start = np.arange(o) * s - lo
        end = np.minimum(start + k, n + hi)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        divisor = np.multiply.outer(divisor, end - start)
    return divisor


def avg_pool_forward(x, kernel, stride, pads, out, divisor):
    """Window sums divided by ``divisor``. x : (N, C, *spatial) -> (N, C, *out)."""
    dilation = (1,) * len(kernel)
    xp = _padded(x, pads, _needed(out, kernel, stride, dilation), 0)
    total = np.zeros(x.shape[:2] + tuple(out), dtype=x.dtype)
    for _, view in offset_views(xp, kernel, stride, dilation, out):
        total += view
    return (total / divisor).astype(x.dtype, copy=False)


def avg_pool_backward(g, in_shape, kernel, stride, pads, divisor):
    """Each window's gradient, divided by its divisor, spread evenly over the window."""
    dilation = (1,) * len(kernel)
    out = g.shape[2:]
    share = (g / divisor).astype(g.dtype, copy=False)
    dxp = np.zeros(in_shape[:2] + _needed_full(in_shape[2:], pads, out, kernel, stride, dilation),
                   dtype=g.dtype)
    for _, view in offset_views(dxp, kernel, stride, dilation, out):
        view += share
    return _crop(dxp, in_shape, pads)


# -- adaptive pooling: window i covers [floor(i·in/out), ceil((i+1)·in/out)) -----------------

def adaptive_windows(size, out):
    start = (np.arange(out) * size) // out
    end = -((-(np.arange(1, out + 1) * size)) // out)
    return start, end


def window_sum(x, axis, start, end):
    """s[..., i, ...] = Σ_{start[i] <= j < end[i]} x[..., j, ...] along ``axis``.

    A loop over window offsets (at most the widest window), each one gather. Cells outside a
    window are left out, not multiplied by zero, so a NaN or ±Inf stays in the windows that
    contain it (a 0/1 matrix product would spread it: 0·NaN = NaN).
    """
    widths = end - start
    if len(start) and x.shape[axis] == len(start) * widths[0] and \
            (start == np.arange(len(start)) * widths[0]).all() and (widths == widths[0]).all():
        # Windows of one width that tile the axis (global pooling; every size divisible by
        # the output's): one reduction over a reshaped axis, not a gather per offset (one
        # 64 × 16 map pooled to 1: 97 against 9 µs for PyTorch's layer)
        tiles = x.shape[:axis] + (len(start), int(widths[0])) + x.shape[axis + 1:]
        return x.reshape(tiles).sum(axis=axis + 1)
    x = np.moveaxis(x, axis, -1)
    total = np.zeros(x.shape[:-1] + (len(start),), dtype=x.dtype)
    for offset in range(int((end - start).max(initial=0))):
        inside = start + offset < end
        total += np.where(inside, x[..., np.minimum(start + offset, x.shape[-1] - 1)], 0)
    return np.moveaxis(total, -1, axis)


def _global(x, out):
    """Whether pooling x to ``out`` is global (one window per plane) on floats."""
    return all(o == 1 for o in out) and x.dtype.kind == "f" and x.size > 0


def adaptive_avg_forward(x, out):
    """Mean over adaptive windows, one spatial axis at a time (average pooling is separable).

    x : ndarray of shape (N, C, *spatial)  ->  ndarray of shape (N, C, *out)
    """
    if _global(x, out):
        # Global pooling: each plane's sum is its product with ones, one BLAS gemv for all.
        # NumPy's reductions over short rows run an outer loop per row: 64 × 256 planes of
        # 7 × 7 took 2.7 ms axis by axis and 0.41 as one sum over the rows, against 0.04.
        planes = np.ascontiguousarray(x).reshape(-1, math.prod(x.shape[2:]))
        sums = planes @ np.ones(planes.shape[1], x.dtype)
        return (sums / x.dtype.type(planes.shape[1])).reshape(x.shape[:2] + tuple(out))
    for axis, (n, o) in enumerate(zip(x.shape[2:], out), start=2):
        start, end = adaptive_windows(n, o)
        x = window_sum(x, axis, start, end) / _along(end - start, axis, x.ndim).astype(x.dtype)
    return x


def adaptive_avg_backward(g, in_spatial):
    """dL/dx[j] = Σ_{i : start[i] <= j < end[i]} dL/dy[i] / |window i|, per axis.

    The windows holding cell j are the consecutive i in [lo_j, hi_j): starts and ends both grow
    with i, so this is again a windowed sum, over the output axis.
    """
    if _global(g, g.shape[2:]):  # every cell's share of its plane's gradient
        share = g / g.dtype.type(math.prod(in_spatial))
        return np.broadcast_to(share, g.shape[:2] + tuple(in_spatial)).copy()
    for axis, n in enumerate(in_spatial, start=2):
        start, end = adaptive_windows(n, g.shape[axis])
        cells = np.arange(n)
        lo, hi = np.searchsorted(end, cells, side="right"), np.searchsorted(start, cells, "right")
        g = window_sum(g / _along(end - start, axis, g.ndim).astype(g.dtype), axis, lo, hi)
    return g


def _along(values, axis, ndim):
    """A 1-D array shaped to broadcast along ``axis`` of an ``ndim``-d array."""
    return values.reshape((-1,) + (1,) * (ndim - 1 - axis))


def adaptive_max_forward(x, out):
    """Max over adaptive windows. Returns (y, index) with index the flat position in each input
    plane (PyTorch's ``return_indices``)."""
    n_dims = len(out)
    spatial = x.shape[2:]
    if _global(x, out):  # each plane is the window: no gather of its cells
        from .pooling_numba import plane_max
        shape = x.shape[:2] + tuple(out)
        y, index = np.empty(shape, x.dtype), np.empty(shape, np.int64)
        plane_max(np.ascontiguousarray(x).reshape(-1, math.prod(spatial)), y.reshape(-1),
                  index.reshape(-1))
        return y, index
    gathers = []
    for axis, (n, o) in enumerate(zip(spatial, out)):
        start, end = adaptive_windows(n, o)
        width = int((end - start).max())
        # Short windows repeat their last element: harmless for a maximum.
        idx = np.minimum(start[:, None] + np.arange(width), end[:, None] - 1)
        shape = [1] * (2 * n_dims)
        shape[2 * axis], shape[2 * axis + 1] = o, width
        gathers.append(idx.reshape(shape))
    flat_plane = 0
    for axis, idx in enumerate(gathers):
        flat_plane = flat_plane * spatial[axis] + idx
    planes = x.reshape(x.shape[:2] + (math.prod(spatial),))  # not -1: N may be 0
    # (N, C, o1, w1, o2, w2, ...) -> (N, C, o1, o2, ..., w1·w2·...)
    flat_plane = np.broadcast_to(flat_plane, np.broadcast_shapes(*(g.shape for g in gathers)))
    order = [2 * i for i in range(n_dims)] + [2 * i + 1 for i in range(n_dims)]
    flat_plane = flat_plane.transpose(order).reshape(tuple(out) + (-1,))
    values = planes[:, :, flat_plane]  # (N, C, *out, window)
    winner = _first_max(values)
    y = np.take_along_axis(values, winner[..., None], axis=-1)[..., 0]
    index = np.take_along_axis(np.broadcast_to(flat_plane, values.shape), winner[..., None],
                               axis=-1)[..., 0]
    return y, index.astype(np.int64)


def _first_max(values):
    """Argmax along the last axis; as in PyTorch's ``val > max || isnan(val)``, the first maximum
    wins, unless there is a NaN, when the last NaN does."""
    nan = np.isnan(values)
    last_nan = values.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1)
    return np.where(nan.any(axis=-1), last_nan, values.argmax(axis=-1))


def scatter_to_planes(g, index, in_shape):
    """Add ``g[n, c, i]`` into plane (n, c) at flat position ``index[n, c, i]`` (bincount, which
    sums repeated positions — overlapping windows can pick the same element)."""
    n, c = in_shape[:2]
    plane = math.prod(in_shape[2:])
    if math.prod(index.shape[2:]) == 1:  # one window per plane (global pooling): no sums
        dx = np.zeros((n * c, plane), g.dtype)
        np.put_along_axis(dx, index.reshape(-1, 1), g.reshape(-1, 1), axis=1)
        return dx.reshape(in_shape)
    flat = (np.arange(n * c).reshape(n, c, *([1] * (index.ndim - 2))) * plane + index).ravel()
    dx = np.bincount(flat, weights=g.ravel(), minlength=n * c * plane)
    return dx.astype(g.dtype).reshape(in_shape)
