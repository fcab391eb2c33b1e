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


# ufunc: (x ⊙ y for arrays of one shape, x ⊙ a scalar y, a scalar x ⊙ y as loop(y, x))
_LOOPS = {np.add: (_add, _add_scalar, _add_scalar),
          np.subtract: (_subtract, _subtract_scalar, _scalar_subtract),
          np.multiply: (_multiply, _multiply_scalar, _multiply_scalar),
          np.divide: (_divide, _divide_scalar, _scalar_divide)}
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def binary(ufunc, x, y):
    """``ufunc(x, y)`` (np.add, np.subtract, np.multiply or np.divide) with NumPy's values,
    by a compiled loop when x and y are float32 or float64 arrays of one dtype, of one shape
    or one of them 0-d (a Tensor's ``x * 2.0``; the gradient ``g * b`` of a scalar factor),
    the other C-contiguous with at least ``compiled_min_size`` values; otherwise NumPy's own
    call. inf and NaN propagate quietly, as in the callers."""
    loops = _LOOPS.get(ufunc)
    if loops is None or x.dtype != y.dtype or x.dtype not in _DTYPES:
        return ufunc(x, y)
    if x.shape == y.shape and y.flags.c_contiguous:
        loop, array, other = loops[0], x, y.reshape(-1)
    elif y.ndim == 0:
        loop, array, other = loops[1], x, y[()]
    elif x.ndim == 0:
        loop, array, other = loops[2], y, x[()]
    else:
        return ufunc(x, y)
    if array.size < tuning.value("compiled_min_size") or not array.flags.c_contiguous:
        return ufunc(x, y)
    out = np.empty(array.shape, array.dtype)
    loop(array.reshape(-1), other, out.reshape(-1))
    return out
