"""The mean squared error, and binary cross-entropy on logits, of float32 arrays of one shape,
summed or averaged, compiled (Numba): one parallel pass forward and one backward.

NumPy's ``mse_loss`` made three passes forward (x − t, its square, the sum) and two backward,
each on one thread: 2.0 ms against PyTorch's 0.8 for 2 M values (BENCHMARKS.md, "The mean
squared error compiled"). Here each task takes a contiguous share of the values, writes
x − t (which the backward pass reuses) and sums its squares in float64, in ``LANES``
independent partial sums, which vectorise without reordering any one of them; then the
tasks' sums are added. float32 squares summed in float64 lose nothing to the sum's rounding
that NumPy's float32 pairwise sum would.
"""
import numba
import numpy as np

from . import vector_math_numba as vector_math

_JIT = dict(parallel=True, cache=True)
_VECTOR_JIT = dict(_JIT, fastmath=vector_math.FMA)
LANES = 8
_BLOCK = 512  # values a task computes before adding them up (a multiple of LANES)
# log1p(u) = 2·atanh(s), s = u/(2 + u) ≤ 1/3 for u ∈ [0, 1]: 2s·Σ s^(2k)/(2k + 1), k < 12, whose
# first term left out is under 3·10⁻¹² of the sum (relative)
_ATANH_SERIES = np.array([1.0 / (2 * k + 1) for k in range(12)])


@numba.njit(**_JIT)
def _squared_error(x, t, diff, partial):
    """diff = x − t; partial[task] = the task's Σ diff² in float64 (the tasks: ``partial.size``
    shares of the flat arrays)."""
    n, tasks = x.size, partial.size
    for task in numba.prange(tasks):
        first, end = task * n // tasks, (task + 1) * n // tasks
        lanes = np.zeros(LANES, np.float64)
        whole = first + (end - first) // LANES * LANES
        for start in range(first, whole, LANES):
            for lane in range(LANES):
                d = x[start + lane] - t[start + lane]
                diff[start + lane] = d
                lanes[lane] += np.float64(d) * np.float64(d)
        total = 0.0
        for i in range(whole, end):
            d = x[i] - t[i]
            diff[i] = d
            total += np.float64(d) * np.float64(d)
        for lane in range(LANES):
            total += lanes[lane]
        partial[task] = total


@numba.njit(**_JIT)
def _scaled(diff, scale, dx):
    """dx = diff · scale (a float32 scalar)."""
    for i in numba.prange(diff.size):
        dx[i] = diff[i] * scale


def squared_error(x, t):
    """(x − t, Σ (x − t)² in float64) for float32 arrays of one shape."""
    x, t = np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(t).reshape(-1)
    diff = np.empty(x.size, np.float32)
    partial = _partial_sums(x.size)
    _squared_error(x, t, diff, partial)
    return diff, float(partial.sum())


def _partial_sums(size):
    """Zeroed sums, one per task: a share of 4096 values at least, four per thread (a
    memory-bound pass, balanced)."""
    return np.zeros(max(1, min(size // 4096, numba.get_num_threads() * 4)))


def scaled(diff, scale):
    """diff · scale, one pass (the gradient of a reduced squared error)."""
    dx = np.empty(diff.shape, np.float32)
    _scaled(diff.reshape(-1), np.float32(scale), dx.reshape(-1))
    return dx


@numba.njit(inline="always", fastmath=vector_math.FMA)
def _exp_negative_magnitude(x):
    """e^(−|x|) for a float64 x: 0 where it underflows (x = ±inf: σ(∓inf) is then 0, not a
    tiny float that leaves a −0 in a gradient), NaN for NaN."""
    t = -abs(x)
    return 0.0 if t < vector_math.EXP_MIN else vector_math.exp(max(t, vector_math.EXP_MIN))


@numba.njit(inline="always", fastmath=vector_math.FMA)
def _softplus_negative(x):
    """(softplus(−x) = log(1 + e^(−|x|)) + max(−x, 0), e^(−|x|)) for a float64 x, with no
    call: log(1 + u) by ``_ATANH_SERIES`` in s = u/(2 + u)."""
    e = _exp_negative_magnitude(x)
    s = e / (2.0 + e)
    return 2.0 * s * vector_math._polynomial(_ATANH_SERIES, s * s) + max(-x, 0.0), e


@numba.njit(**_VECTOR_JIT)
def _logit_cross_entropy(x, t, partial):
    """partial[task] = Σ (1 − t)·x + softplus(−x) over the task's share, in float64: a block's
    terms written by one vector loop, then added into ``LANES`` partial sums (a sum in the
    loop that computes the terms kept it scalar: 2.2 ms for 409 600 values, against NumPy's
    1.8)."""
    n, tasks = x.size, partial.size
    for task in numba.prange(tasks):
        first, end = task * n // tasks, (task + 1) * n // tasks
        lanes = np.zeros(LANES, np.float64)
        terms = np.empty(_BLOCK, np.float64)
        for start in range(first, end, _BLOCK):
            count = min(_BLOCK, end - start)
            for j in range(count):
                vector_math.widest_vectors()
                value = np.float64(x[start + j])
                terms[j] = (1.0 - t[start + j]) * value + _softplus_negative(value)[0]
            terms[count:] = 0.0
            for k in range(0, _BLOCK, LANES):
                for lane in range(LANES):
                    lanes[lane] += terms[k + lane]
        partial[task] = lanes.sum()


@numba.njit(**_VECTOR_JIT)
def _logit_cross_entropy_backward(x, t, scale, dx):
    """dx = scale·((1 − t) − σ(−x)), σ(−x) = e/(1 + e) for x ≥ 0 and 1/(1 + e) below
    (e = e^(−|x|)): no overflow, no cancellation; in float64, stored as float32."""
    for i in numba.prange(x.size):
        vector_math.widest_vectors()
        value = np.float64(x[i])
        e = _exp_negative_magnitude(value)
        sigma_negative = (e if value >= 0 else 1.0) / (1.0 + e)
        dx[i] = scale * ((1.0 - t[i]) - sigma_negative)


def logit_cross_entropy(x, t):
    """Σ (1 − t)·x + softplus(−x) in float64 for float32 x and t of one shape."""
    x, t = np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(t).reshape(-1)
    partial = _partial_sums(x.size)
    _logit_cross_entropy(x, t, partial)
    return float(partial.sum())


def logit_cross_entropy_backward(x, t, scale):
    """dL/dx of the summed ``logit_cross_entropy``, times ``scale``."""
    dx = np.empty(x.shape, np.float32)
    _logit_cross_entropy_backward(np.ascontiguousarray(x).reshape(-1),
                                  np.ascontiguousarray(t).reshape(-1), np.float64(scale),
                                  dx.reshape(-1))
    return dx
