"""Direct single-channel N-D correlation, float32, on the register-tiled micro-kernel.

    out[q] = Σ_v k[v] · x[start + q + v]        q < sizes, v < k.shape, x read as 0 outside

(``start`` may be negative or reach past the end: that is the zero padding of 'full' and 'same'
modes). The kernel is ``correlate_rows_numba``; here are its tables and tile choice. A 1-D
signal is a single row; axes before the last two are the outer axes, looped over plane by plane.
``correlate_unpadded`` runs the convolution layers' many planes on ``correlate_bands_numba``,
which pads each band of rows in cache instead of taking a padded input.
"""
import math

import numba
import numpy as np

from .. import tuning
from . import aligned
from . import correlate_bands_numba as bands
from . import correlate_rows_numba as compiled
from .conv.shift import flat_pitches
from .microkernel import LANES

# The cost model's constants (``rows_*`` in ``cnnkit.tuning``, re-measured by ``cnnkit tune``):
# ns per lane multiply-add the kernel computes (zero rows included), one core, for MR = 1
# (every input vector reloaded for each output row) and MR = 4 (shared between four); ns per
# element of the padded input block and cropped output copied; ns per call.
LANE_MAC_CONSTANT = {1: "rows_ns_per_lane_mac_1row", 4: "rows_ns_per_lane_mac_4rows"}


def applies(dtype) -> bool:
    return np.dtype(dtype) == np.float32


def tile(kernel_rows: int, out_cols: int):
    """(MR, NV), one of the target's ``compiled.TILES``: four output rows share each input
    vector unless the kernel has one row (then three of every four rows would be zero taps:
    1-D signals, the long rows for which the one-row tile suits); the tile width is the
    narrowest that covers the output's width, or the widest."""
    if kernel_rows == 1:
        return compiled.TILES[0]
    four_rows = compiled.TILES[1:]
    return next((t for t in four_rows if out_cols <= LANES * t[1]), four_rows[-1])


def _plan(kernel_shape, sizes):
    """The 2-D-at-least geometry: (outer output sizes, R, W padded to whole tiles, MR, NV)."""
    rows, vectors = tile(kernel_shape[-2], sizes[-1])
    padded_rows = -(-sizes[-2] // rows) * rows
    padded_cols = -(-sizes[-1] // (LANES * vectors)) * (LANES * vectors)
    return rows, vectors, padded_rows, padded_cols


def as_planes(shape):
    """A shape as at least 2 axes (rows, columns): a 1-D signal is one row."""
    return (1,) * (2 - len(shape)) + tuple(shape)


def cost_terms(kernel_shape, sizes):
    """(MR, lane multiply-adds, elements copied) of ``correlate``: what ``cost_ns`` weighs
    (and ``cnnkit tune`` fits the weights to)."""
    kernel_shape, sizes = as_planes(kernel_shape), as_planes(sizes)
    rows, _, padded_rows, padded_cols = _plan(kernel_shape, sizes)
    kh, kw = kernel_shape[-2:]
    lane_macs = (math.prod(sizes[:-2]) * padded_rows * padded_cols
                 * math.prod(kernel_shape[:-2]) * (rows + kh - 1) * kw)
    copied = math.prod(s + k - 1 for s, k in zip(sizes, kernel_shape)) + math.prod(sizes)
    return rows, lane_macs, copied


def cost_ns(kernel_shape, sizes) -> float:
    """Estimated time (ns, one core) of ``correlate`` for this kernel and output size."""
    rows, lane_macs, copied = cost_terms(kernel_shape, sizes)
    return tuning.value("rows_overhead_ns") + tuning.value(LANE_MAC_CONSTANT[rows]) * lane_macs + \
        tuning.value("rows_ns_per_element_copied") * copied


def correlate(x: np.ndarray, k: np.ndarray, start, sizes) -> np.ndarray:
    """out[q] = Σ_v k[v] · x[start + q + v] (x zero outside its bounds), float32.

    Parameters
    ----------
    x : ndarray of shape (N_1, ..., N_d), float32
    k : ndarray of shape (K_1, ..., K_d), float32
    start : d ints, where out[0] reads x (may be negative)
    sizes : d ints >= 0, the output's shape

    Returns
    -------
    out : C-contiguous float32 ndarray of shape ``sizes``
    """
    if 0 in tuple(sizes):
        return np.zeros(sizes, np.float32)
    d = x.ndim
    x, k = x.reshape(as_planes(x.shape)), k.reshape(as_planes(k.shape))
    start = (0,) * (x.ndim - d) + tuple(start)
    full_sizes, sizes = tuple(sizes), as_planes(sizes)
    extent = tuple(s + n - 1 for s, n in zip(sizes, k.shape))
    pitch = flat_pitches(extent)
    plane_base = flat_table(sizes[:-2], pitch[:-2])
    tap_plane = flat_table(k.shape[:-2], pitch[:-2])
    # Room for the ragged tiles' reads past the block (see correlate_planes), made here where
    # the block is made rather than by a second copy there.
    size = max(math.prod(extent), int(plane_base[-1] + tap_plane[-1]) + 1 + _reach(
        k.shape[-2:], sizes[-2:], pitch[-2]))
    flat = np.zeros(size, np.float32)
    block = flat[:math.prod(extent)].reshape(extent)
    src = tuple(slice(max(s, 0), min(s + e, n)) for s, e, n in zip(start, extent, x.shape))
    if all(piece.start < piece.stop for piece in src):
        dst = tuple(slice(piece.start - s, piece.stop - s) for piece, s in zip(src, start))
        block[dst] = x[src]
    out = correlate_planes(flat, pitch[-2], k.reshape((-1,) + k.shape[-2:]), plane_base,
                           None, tap_plane, sizes[-2:])
    return out.reshape(full_sizes)


def _reach(kernel_hw, sizes, pitch):
    """How far past a plane's corner (plus its outer tap) the tiles read: ragged tiles run on
    to whole tiles, into the next rows or past the buffer."""
    _, _, padded_rows, padded_cols = _plan(kernel_hw, sizes)
    kh, kw = kernel_hw
    return (padded_rows + kh - 2) * pitch + padded_cols + kw - 2


def correlate_planes(p, pitch, kernels, plane_base, plane_kernel, tap_plane, sizes):
    """Many 2-D valid correlations summed over taps, one output plane o each:

        out[o, r, q] = Σ_u Σ_{a,b} kernels[plane_kernel[o] + u, a, b] ·
                                   p_flat[plane_base[o] + tap_plane[u] + (r + a)·pitch + q + b]

    Parameters
    ----------
    p : C-contiguous float32 ndarray, any shape (read flat); planes whose ragged tiles would
        read past its end are computed from a copy of the tail with room to spare
    pitch : int, the flat step between rows of p
    kernels : float32 ndarray of shape (..., KH, KW); the leading axes, flattened in C order,
        are the stack that ``plane_kernel[o] + u`` indexes
    plane_base, tap_plane : int64 arrays of shape (O,) and (U,)
    plane_kernel : int64 array of shape (O,), or None for all zeros
    sizes : (R, Q), the output plane's shape

    Returns
    -------
    out : C-contiguous float32 ndarray of shape (O, R, Q)
    """
    kh, kw = kernels.shape[-2:]
    rows, vectors, padded_rows, padded_cols = _plan((kh, kw), sizes)
    stack = kernels.shape[:-2]
    padded = np.zeros(stack + (kh + 2 * (rows - 1), kw), np.float32)
    padded[..., rows - 1:rows - 1 + kh, :] = kernels
    padded = padded.reshape((-1,) + padded.shape[-2:])
    if plane_kernel is None:
        plane_kernel = np.zeros(plane_base.size, np.int64)
    out = aligned.empty((plane_base.size, padded_rows, padded_cols))
    p = p.reshape(-1)
    # The planes up to the first whose ragged tiles would read past p's end run in place;
    # the rest (the last few) on a zero-extended copy of p from their lowest corner on.
    reach = int(tap_plane.max()) + _reach((kh, kw), sizes, pitch)
    overruns = plane_base + reach >= p.size
    in_place = int(np.argmax(overruns)) if overruns.any() else plane_base.size
    if in_place:
        _run(p, pitch, padded, plane_base[:in_place], plane_kernel[:in_place], tap_plane,
             out[:in_place], rows, vectors)
    if in_place < plane_base.size:
        start = int(plane_base[in_place:].min())
        tail = np.zeros(int(plane_base[in_place:].max()) - start + reach + 1, np.float32)
        tail[:p.size - start] = p[start:]
        _run(tail, pitch, padded, plane_base[in_place:] - start, plane_kernel[in_place:],
             tap_plane, out[in_place:], rows, vectors)
    if (padded_rows, padded_cols) == tuple(sizes):
        return out
    return np.ascontiguousarray(out[:, :sizes[0], :sizes[1]])


def _run(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, rows, vectors):
    tasks = plane_base.size * out.shape[1] // rows
    per_thread = tuning.value("rows_chunks_per_thread")
    col_chunks = min(out.shape[2] // (LANES * vectors), -(-per_thread * numba.get_num_threads()
                                                         // tasks))
    compiled.BY_TILE[compiled.TILES.index((rows, vectors))](
        p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, col_chunks)


def flat_table(shape, pitch):
    """Flat offset Σ i_a·pitch_a of every index i of ``shape`` (C order)."""
    table = np.zeros(1, np.int64)
    for n, p in zip(shape, pitch):
        table = np.add.outer(table, np.arange(n, dtype=np.int64) * p).reshape(-1)
    return table


# A band's buffer stays below this many floats (256 KiB, within the L2 cache of the x86 and ARM
# cores cnnkit targets); bands are whole planes unless the planes are too few or too large.
BAND_BUFFER_FLOATS = 1 << 16


def correlate_unpadded(x, top, left, kernels, src, plane_kernel, bias, sizes, padding_terms):
    """Many 2-D correlations of unpadded planes summed over taps, one output plane o each:

        out[o, r, q] = bias[o] + Σ_u Σ_{a,b} kernels[plane_kernel[o] + u, a, b] ·
                                             X(src[o, u], r + a − top, q + b − left)

    with X(s, i, j) = x[s, i, j] inside the plane and 0 outside it, and 0 for s = −1
    (``correlate_bands_numba``, exact for inf and NaN: ``padding_terms`` says whether the zeros
    outside a plane are terms of the sums, docs/ieee.md).

    Parameters
    ----------
    x : float32 ndarray of shape (S, H, W)
    top, left : where out[o, 0, 0] reads a plane (may be negative, or reach past it)
    kernels : float32 ndarray of shape (stack, KH, KW)
    src : int64 ndarray of shape (O, U), source planes (−1: zeros)
    plane_kernel : int64 ndarray of shape (O,)
    bias : float32 ndarray of shape (O,), or None
    sizes : (R, Q), the output plane's shape

    Returns
    -------
    out : C-contiguous float32 ndarray of shape (O, R, Q)
    """
    kh, kw = kernels.shape[-2:]
    rows, vectors = tile(kh, sizes[1])
    padded = np.zeros((kernels.shape[0], kh + 2 * (rows - 1), kw), np.float32)
    padded[:, rows - 1:rows - 1 + kh] = kernels
    out = np.empty((src.shape[0],) + tuple(sizes), np.float32)
    if out.size == 0:
        return out
    wanted = tuning.value("rows_chunks_per_thread") * numba.get_num_threads()
    row_tiles = -(-sizes[0] // rows)
    pitch = -(-sizes[1] // (LANES * vectors)) * LANES * vectors + kw - 1
    band_tiles = -(-row_tiles // min(row_tiles, -(-wanted // src.shape[0])))
    band_tiles = max(1, min(band_tiles, BAND_BUFFER_FLOATS // (rows * pitch)))
    band_rows = band_tiles * rows
    tasks = src.shape[0] * -(-sizes[0] // band_rows)
    bias = np.zeros(src.shape[0], np.float32) if bias is None else bias.astype(np.float32)
    bands.BY_TILE[bands.TILES.index((rows, vectors))](
        np.ascontiguousarray(x, np.float32), top, left, padded, np.ascontiguousarray(src),
        np.ascontiguousarray(plane_kernel), bias, out, band_rows, min(tasks, wanted),
        padding_terms, not np.isfinite(kernels).all())
    return out
