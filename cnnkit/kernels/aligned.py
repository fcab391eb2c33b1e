"""Arrays whose data starts on a cache-line boundary: the operands of the register tiles.

The micro-kernel (``microkernel``) loads whole vectors from its B rows and its C tile. NumPy
aligns an array's data to 16 bytes only, so a 64-byte AVX-512 vector of a row that starts 16
bytes into a line spans two lines and costs two loads. BLIS aligns its packed panels for the
same reason. ``python -m cnnkit.bench.tiles --align`` times the implicit GEMM's forward kernel
(one thread, a 3×3 layer) both ways; it printed, aligned against 16 bytes past a line,
AVX-512: 6 × 64 tile 157.1 against 143.2 GFLOP/s, 8 × 48 159.1 against 146.6, 10 × 32 149.2
against 145.8; AVX2 (``NUMBA_CPU_NAME=haswell``): 6 × 16 92.5 against 85.6, 4 × 24 102.5
against 92.0. The buffers cnnkit allocates for those operands (weight and dy panels, the
tiles' output rows) come from here; rows of a multiple of 16 floats then all start on a line.
"""
import math

import numba
import numpy as np

LINE = 64  # bytes: a cache line, and one AVX-512 vector


def empty(shape, dtype=np.float32):
    """``np.empty(shape, dtype)`` with its data ``LINE``-aligned (a C-contiguous view of a
    slightly larger buffer, which it keeps alive)."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    size = math.prod(shape) * dtype.itemsize
    raw = np.empty(size + LINE, np.uint8)
    start = _to_line(raw)
    return raw[start:start + size].view(dtype).reshape(shape)


@numba.njit(cache=True)
def _to_line(raw):
    """Bytes from ``raw``'s start to the next line: its address read in compiled code, where
    NumPy's ``ctypes.data`` cost more than the allocation (``empty((800, 16))``: 1.8 µs
    against 3.1)."""
    return -raw.ctypes.data % LINE


def zeros(shape, dtype=np.float32):
    """``np.zeros(shape, dtype)``, ``LINE``-aligned."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


@numba.njit(cache=True)
def floats_on_line(size, zeroed):
    """From compiled code: a float32 buffer of ``size`` values that starts on a line, zero
    when ``zeroed`` (else as allocated)."""
    raw = np.zeros(size + LINE // 4, np.float32) if zeroed else \
        np.empty(size + LINE // 4, np.float32)
    start = (-(raw.ctypes.data // 4)) % (LINE // 4)
    return raw[start:start + size]
