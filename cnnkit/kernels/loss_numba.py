"""The mean squared error of float32 arrays of one shape, summed or averaged, compiled (Numba):
one parallel pass forward and one backward.

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

_JIT = dict(parallel=True, cache=True)
LANES = 8


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
    # a share of 4096 values at least, four per thread: a memory-bound pass, balanced
    partial = np.zeros(max(1, min(x.size // 4096, numba.get_num_threads() * 4)))
    _squared_error(x, t, diff, partial)
    return diff, float(partial.sum())


def scaled(diff, scale):
    """diff · scale, one pass (the gradient of a reduced squared error)."""
    dx = np.empty(diff.shape, np.float32)
    _scaled(diff.reshape(-1), np.float32(scale), dx.reshape(-1))
    return dx
