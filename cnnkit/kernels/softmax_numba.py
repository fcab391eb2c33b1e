"""Compiled softmax and log-softmax over one axis of float32 arrays (Numba), forward and
backward, each a parallel pass over the rows the axis runs along.

NumPy's softmax is five passes with temporaries (the maximum, the shift, e^x, the sum, the
division), each on one thread; over 4096 rows of 1000 classes they took 10.2 ms against
PyTorch's 2.0 (BENCHMARKS.md, "Softmax, log-softmax and cross-entropy compiled"). Here a row
is read once for its maximum and once for e^(x − max) and its sum, which it writes, then
scaled in place.

The array is taken as (outer, C, inner), softmax along C: rows of C consecutive values when
inner = 1 (``_rows``), else C planes of ``inner`` values, each position its own softmax,
computed for all positions of a plane at once (``_planes``). The arithmetic is float32:
e^t by ``vector_math_numba.exp_nonpositive_f32`` (within 2 units of the last place) on
t = x − max ≤ 0, the sum accumulated in float32 lanes, then ``e / sum`` (softmax) or
``t − log(sum)`` (log-softmax, the logarithm in float64, rounded once). NaN and ±inf give
PyTorch's results: a NaN in a row makes its every output NaN (its e^t is NaN, and so is the
sum), +inf gives NaN (inf − inf), and a row of −inf is NaN.
"""
import math

import numba
import numpy as np

from . import vector_math_numba as vector_math

_JIT = dict(parallel=True, cache=True, fastmath=vector_math.FMA)
LANES = 16  # partial maxima and sums per row: independent lanes that vectorise without
# reordering any one lane's sum


@numba.njit(cache=True, inline="always", fastmath=vector_math.FMA)
def _exp_shifted(t):
    """e^t for a float32 t ≤ 0, and NaN for NaN, kept by a select rather than left to the
    power of 2 that a NaN would be converted to (an undefined conversion)."""
    e = vector_math.exp_nonpositive_f32(vector_math.EXP_F32_MIN if t < vector_math.EXP_F32_MIN
                                        else t)
    return t if t != t else e


@numba.njit(cache=True, inline="always", fastmath=vector_math.FMA)
def _row_max(row):
    """The largest of the row's values that are not NaN (−inf if none): ``LANES`` running
    maxima, then the largest of them."""
    lanes = np.full(LANES, -np.inf, np.float32)
    whole = row.size - row.size % LANES
    for start in range(0, whole, LANES):
        for lane in range(LANES):
            value = row[start + lane]
            lanes[lane] = value if value > lanes[lane] else lanes[lane]
    best = np.float32(-np.inf)
    for lane in range(LANES):
        best = lanes[lane] if lanes[lane] > best else best
    for i in range(whole, row.size):
        best = row[i] if row[i] > best else best
    return best


@numba.njit(cache=True, inline="always", fastmath=vector_math.FMA)
def _exp_row(row, peak, out):
    """out = e^(row − peak) (``_exp_shifted``); returns their sum, in ``LANES`` partial sums."""
    lanes = np.zeros(LANES, np.float32)
    whole = row.size - row.size % LANES
    for start in range(0, whole, LANES):
        for lane in range(LANES):
            e = _exp_shifted(row[start + lane] - peak)
            out[start + lane] = e
            lanes[lane] += e
    total = np.float32(0)
    for i in range(whole, row.size):
        e = _exp_shifted(row[i] - peak)
        out[i] = e
        total += e
    for lane in range(LANES):
        total += lanes[lane]
    return total


@numba.njit(**_JIT)
def _rows(x, out, log):
    """Softmax (or log-softmax, ``log``) of each row of x (R, C) into out, C-contiguous."""
    for r in numba.prange(x.shape[0]):
        row, target = x[r], out[r]
        peak = _row_max(row)
        total = _exp_row(row, peak, target)
        if log:
            log_total = np.float32(math.log(np.float64(total)))
            for i in range(row.size):
                target[i] = (row[i] - peak) - log_total
        else:
            for i in range(row.size):
                target[i] = target[i] / total


@numba.njit(**_JIT)
def _planes(x, out, log):
    """Softmax (or log-softmax) along axis 1 of x (O, C, I), I > 1, into out: for each o, the
    maxima, sums and outputs of all I positions at once, plane by plane of C."""
    outer, channels, inner = x.shape
    for o in numba.prange(outer):
        peak = np.full(inner, -np.inf, np.float32)
        total = np.zeros(inner, np.float32)
        for c in range(channels):
            plane = x[o, c]
            for i in range(inner):
                peak[i] = plane[i] if plane[i] > peak[i] else peak[i]
        for c in range(channels):
            plane, target = x[o, c], out[o, c]
            for i in range(inner):
                e = _exp_shifted(plane[i] - peak[i])
                total[i] += e
                if not log:
                    target[i] = e
        if log:
            for i in range(inner):
                total[i] = np.float32(math.log(np.float64(total[i])))
        for c in range(channels):
            plane, target = x[o, c], out[o, c]
            for i in range(inner):
                target[i] = (plane[i] - peak[i]) - total[i] if log else target[i] / total[i]


@numba.njit(cache=True, inline="always", fastmath=vector_math.FMA)
def _row_dot(a, b):
    """Σ a·b over a row, in ``LANES`` partial sums (b may be a itself: Σ a² then)."""
    lanes = np.zeros(LANES, np.float32)
    whole = a.size - a.size % LANES
    for start in range(0, whole, LANES):
        for lane in range(LANES):
            lanes[lane] += a[start + lane] * b[start + lane]
    total = np.float32(0)
    for i in range(whole, a.size):
        total += a[i] * b[i]
    for lane in range(LANES):
        total += lanes[lane]
    return total


@numba.njit(cache=True, inline="always", fastmath=vector_math.FMA)
def _row_sum(a):
    """Σ a over a row, in ``LANES`` partial sums."""
    lanes = np.zeros(LANES, np.float32)
    whole = a.size - a.size % LANES
    for start in range(0, whole, LANES):
        for lane in range(LANES):
            lanes[lane] += a[start + lane]
    total = np.float32(0)
    for i in range(whole, a.size):
        total += a[i]
    for lane in range(LANES):
        total += lanes[lane]
    return total


@numba.njit(**_JIT)
def _rows_backward(y, g, dx, log):
    """dx of each row from the forward's output y and the gradient g (R, C): softmax's
    y·(g − Σ g·y), log-softmax's g − e^y·Σ g (y ≤ 0 there)."""
    for r in numba.prange(y.shape[0]):
        out, grad, target = y[r], g[r], dx[r]
        if log:
            total = _row_sum(grad)
            for i in range(out.size):
                target[i] = grad[i] - _exp_shifted(out[i]) * total
        else:
            total = _row_dot(grad, out)
            for i in range(out.size):
                target[i] = out[i] * (grad[i] - total)


@numba.njit(**_JIT)
def _planes_backward(y, g, dx, log):
    """``_rows_backward`` along axis 1 of (O, C, I) arrays, I > 1, all I positions at once."""
    outer, channels, inner = y.shape
    for o in numba.prange(outer):
        total = np.zeros(inner, np.float32)
        for c in range(channels):
            out, grad = y[o, c], g[o, c]
            for i in range(inner):
                total[i] += grad[i] if log else grad[i] * out[i]
        for c in range(channels):
            out, grad, target = y[o, c], g[o, c], dx[o, c]
            for i in range(inner):
                target[i] = grad[i] - _exp_shifted(out[i]) * total[i] if log else \
                    out[i] * (grad[i] - total[i])


@numba.njit(**_JIT)
def _exp_times(log_p, scale, out):
    """out[o, c, i] = e^(log_p[o, c, i])·scale[o, i] on (O, C, I) arrays, log_p ≤ 0."""
    outer, channels, inner = log_p.shape
    for o in numba.prange(outer):
        factor = scale[o]
        for c in range(channels):
            source, target = log_p[o, c], out[o, c]
            for i in range(inner):
                target[i] = _exp_shifted(source[i]) * factor[i]


@numba.njit(**_JIT)
def _exp_times_rows(log_p, scale, out):
    """``_exp_times`` for I = 1, rows (O, C) and scale (O,): each row a vector loop (the
    loop over I = 1 left every value to scalar code, 7 against 2 ms for 4096 rows of 1000)."""
    for o in numba.prange(log_p.shape[0]):
        source, target, factor = log_p[o], out[o], scale[o]
        for c in range(source.size):
            target[c] = _exp_shifted(source[c]) * factor


def _blocks(shape, axis):
    """(outer, C, inner) of an array of ``shape`` taken along ``axis``."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def softmax_backward(y, g, axis, log=False):
    """dL/dx of ``softmax`` (or log-softmax) from its float32 output y and the gradient g."""
    y, g = np.ascontiguousarray(y), np.ascontiguousarray(g, dtype=np.float32)
    blocks = _blocks(y.shape, axis)
    dx = np.empty(y.shape, np.float32)
    if blocks[2] == 1:
        _rows_backward(y.reshape(blocks[:2]), g.reshape(blocks[:2]), dx.reshape(blocks[:2]),
                       log)
    else:
        _planes_backward(y.reshape(blocks), g.reshape(blocks), dx.reshape(blocks), log)
    return dx


def exp_times(log_p, scale, axis):
    """e^log_p · scale for a float32 log-softmax output ``log_p`` and ``scale`` of log_p's
    shape without ``axis`` (broadcast along it): the softmax, scaled, that a cross-entropy's
    gradient starts from."""
    log_p = np.ascontiguousarray(log_p)
    outer, channels, inner = _blocks(log_p.shape, axis)
    out = np.empty(log_p.shape, np.float32)
    scale = np.ascontiguousarray(scale, dtype=np.float32)
    if inner == 1:
        _exp_times_rows(log_p.reshape(outer, channels), scale.reshape(outer),
                        out.reshape(outer, channels))
    else:
        _exp_times(log_p.reshape(outer, channels, inner), scale.reshape(outer, inner),
                   out.reshape(outer, channels, inner))
    return out


def softmax(x, axis, log=False):
    """Softmax (or log-softmax) of the float32 array x along ``axis``, as a new array."""
    x = np.ascontiguousarray(x)
    blocks = _blocks(x.shape, axis)
    out = np.empty(x.shape, np.float32)
    if blocks[2] == 1:
        _rows(x.reshape(blocks[:2]), out.reshape(blocks[:2]), log)
    else:
        _planes(x.reshape(blocks), out.reshape(blocks), log)
    return out
