"""A Tensor's + − × ÷ on large float arrays, of one shape or by a scalar (Numba): one parallel
pass.

NumPy's ufuncs run on one thread. These loops run on Numba's OpenMP threads, the pool of
the convolution, batch norm and ReLU kernels around them: a residual connection's sum, or
the gradient of a tensor with two consumers, summed in ``Tensor.backward``. They replace a
piece per thread of cnnkit's own Python pool (``threads.elementwise``), which ran slower:
a + b on 2 M float32 values, 2 threads, AVX-512, best of 30 in one process (``BENCHMARKS.md``, "Residual sums on the compiled threads"): 0.48 ms
warm and 0.64 after a 64 MB pass, against 0.73 and 0.87 in pieces, NumPy's 0.85 and 0.95
on one thread and PyTorch's 0.57 and 1.03.

The loops use IEEE arithmetic with no fast-math flag, so the values are NumPy's to the bit,
inf and NaN included, and ``error_model="numpy"`` makes x/0 inf or NaN, as NumPy's, with no
exception and no warning.
"""
import math

import numba
import numpy as np

from .. import tuning

_JIT = dict(parallel=True, cache=True, error_model="numpy")


@numba.njit(**_JIT)
def _add(x, y, out):
    for i in numba.prange(x.size):
        out[i] = x[i] + y[i]


@numba.njit(**_JIT)
def _subtract(x, y, out):
    for i in numba.prange(x.size):
        out[i] = x[i] - y[i]


@numba.njit(**_JIT)
def _multiply(x, y, out):
    for i in numba.prange(x.size):
        out[i] = x[i] * y[i]


@numba.njit(**_JIT)
def _divide(x, y, out):
    for i in numba.prange(x.size):
        out[i] = x[i] / y[i]


@numba.njit(**_JIT)
def _add_scalar(x, y, out):
    for i in numba.prange(x.size):
        out[i] = x[i] + y


@numba.njit(**_JIT)
def _subtract_scalar(x, y, out):
    for i in numba.prange(x.size):
        out[i] = x[i] - y


@numba.njit(**_JIT)
def _scalar_subtract(x, y, out):
    """y − x (not −(x − y): y − y is +0, −(y − y) is −0)."""
    for i in numba.prange(x.size):
        out[i] = y - x[i]


@numba.njit(**_JIT)
def _multiply_scalar(x, y, out):
    for i in numba.prange(x.size):
        out[i] = x[i] * y


@numba.njit(**_JIT)
def _divide_scalar(x, y, out):
    for i in numba.prange(x.size):
        out[i] = x[i] / y


@numba.njit(**_JIT)
def _scalar_divide(x, y, out):
    for i in numba.prange(x.size):
        out[i] = y / x[i]


@numba.njit(**_JIT)
def _by_rows(x, y, out, operation):
    """out[r] = x[r] ⊙ y[r] for rows r of x (R, L) and one value y[r] per row; ``operation``
    (``_ROW_OPERATIONS``) picks ⊙ once a row, outside the loop that vectorises."""
    for r in numba.prange(x.shape[0]):
        row, value, result = x[r], y[r], out[r]
        if operation == 0:
            for j in range(row.size):
                result[j] = row[j] + value
        elif operation == 1:
            for j in range(row.size):
                result[j] = row[j] - value
        elif operation == 2:
            for j in range(row.size):
                result[j] = value - row[j]
        elif operation == 3:
            for j in range(row.size):
                result[j] = row[j] * value
        elif operation == 4:
            for j in range(row.size):
                result[j] = row[j] / value
        else:
            for j in range(row.size):
                result[j] = value / row[j]


# ufunc: (x ⊙ y for arrays of one shape, x ⊙ a scalar y, a scalar x ⊙ y as loop(y, x))
_LOOPS = {np.add: (_add, _add_scalar, _add_scalar),
          np.subtract: (_subtract, _subtract_scalar, _scalar_subtract),
          np.multiply: (_multiply, _multiply_scalar, _multiply_scalar),
          np.divide: (_divide, _divide_scalar, _scalar_divide)}
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# ufunc: (``_by_rows``' operation for x ⊙ y[row], for x[row] ⊙ y)
_ROW_OPERATIONS = {np.add: (0, 0), np.subtract: (1, 2), np.multiply: (3, 3), np.divide: (4, 5)}


def _rows(full, part):
    """How many rows of ``full`` take one value of ``part`` each: ``part``'s shape is
    ``full``'s leading axes then ones (a channel's scale (N, C, 1, 1) on maps (N, C, H, W)),
    else None."""
    if part.ndim != full.ndim or part.ndim == 0:
        return None
    kept = part.ndim
    while kept and part.shape[kept - 1] == 1:
        kept -= 1
    if part.shape[:kept] != full.shape[:kept] or kept in (0, full.ndim):  # 0: one value,
        return None                                                        # a scalar's loop
    return math.prod(full.shape[:kept])


def binary(ufunc, x, y):
    """``ufunc(x, y)`` (np.add, np.subtract, np.multiply or np.divide) with NumPy's values,
    by a compiled loop when x and y are float32 or float64 arrays of one dtype, of one shape,
    one of them 0-d (a Tensor's ``x * 2.0``; the gradient ``g * b`` of a scalar factor), or
    one of them a value per row of the other (``_rows``: a channel's scale or mask),
    the other C-contiguous with at least ``compiled_min_size`` values; otherwise NumPy's own
    call. inf and NaN propagate quietly, as in the callers."""
    loops = _LOOPS.get(ufunc)
    if loops is None or x.dtype != y.dtype or x.dtype not in _DTYPES:
        return ufunc(x, y)
    if x.shape == y.shape and y.flags.c_contiguous:
        loop, array, other = loops[0], x, y.reshape(-1)
    elif (rows := _rows(x, y)) is not None or (rows := _rows(y, x)) is not None:
        return _binary_by_rows(ufunc, x, y, rows)
    elif y.size == 1 and y.ndim <= x.ndim:  # 0-d, or ones that broadcast: (1, 1, 1, 1)
        loop, array, other = loops[1], x, y.reshape(())[()]
    elif x.size == 1 and x.ndim <= y.ndim:
        loop, array, other = loops[2], y, x.reshape(())[()]
    else:
        return ufunc(x, y)
    if array.size < tuning.value("compiled_min_size") or not array.flags.c_contiguous:
        return ufunc(x, y)
    out = np.empty(array.shape, array.dtype)
    loop(array.reshape(-1), other, out.reshape(-1))
    return out


def _binary_by_rows(ufunc, x, y, rows):
    """``binary`` where one operand holds a value per row of the other (``_rows``)."""
    full, part, operation = (x, y, 0) if x.size >= y.size else (y, x, 1)
    if full.size < tuning.value("compiled_min_size") or not full.flags.c_contiguous:
        return ufunc(x, y)
    out = np.empty(full.shape, full.dtype)
    _by_rows(full.reshape(rows, -1), np.ascontiguousarray(part).reshape(-1),
             out.reshape(rows, -1), _ROW_OPERATIONS[ufunc][operation])
    return out
