"""The row correlation on unpadded planes: each task pads a band of rows in its own buffer.

    out[o, r, q] = bias[o] + Σ_u Σ_{a < KH, b < KW} k_{o,u}[a, b] · X(src[o, u], r + a − top,
                                                                           q + b − left)

X(s, i, j) is x[s, i, j] inside plane s and 0 outside it (the zero padding), and every cell of
a plane s = −1 (a padding plane of a 3-D layer). k_{o,u} = kernels[plane_kernel[o] + u].

``correlate_rows_numba`` runs the same micro-kernel on an input padded beforehand: a copy of the
whole batch written to memory and read back (dw3x3: 16 MB each way), and for the input
gradient a second one of dy. Here a task copies its band of MR-row tiles' input rows, a few KB,
into a buffer with zero borders that stays in L1, runs the micro-kernel there, and writes the
band's outputs with the bias added: the input is read once and the output written once.
Tasks run band by band across the planes, so consecutive output planes that read the same
source (the filters of a one-channel layer) reuse the band already in the buffer.

The micro-kernel's zero kernel rows and the padding zeros are terms of its sums that the
literal sums do not have (docs/ieee.md), so it is exact only while they meet finite values.
The copy checks the band's values as it goes (the largest exponent field of their bits is all
ones only if one is inf or NaN), and a band
that holds one, or any band when a kernel does (``exact_only``), is computed by the literal
sums instead: padding cells are terms (0 · k) when ``padding_terms``, as in a forward pass, and
are not when it is False, as in an input gradient. So the pass needs no finiteness check.
"""
import functools

import numba
import numpy as np

from .correlate_rows_numba import tile_tables
from .microkernel import LANES, TILES as _TARGET_TILES, gathered_micro_kernel
from .pad_numba import FLOAT32_EXPONENT
from .task_call import PerTile, compiled_for_tile, run_tasks




@numba.njit(cache=True)
def _copy_band(x_bits, start, height, width, row0, col_lo, col_hi, left, buf, pitch, buf_rows):
    """buf[ρ·pitch + c] = plane[row0 + ρ, c − left] for columns col_lo ≤ c < col_hi (zeros for
    rows outside the plane), the plane (height × width) starting at x_bits[start]; returns
    whether a value copied is inf or NaN.

    The floats are copied as their bits, and the largest exponent field seen is kept: an
    integer maximum vectorises with the copy, where a float sum of v − v (0 unless v is inf or
    NaN) carried from one value to the next did not (2.1 against 1.0 ms for dw3x3's input,
    one core). Flat unsigned indices: a view per row cost more than copying the row."""
    exponent = np.uint32(0)
    for rho in range(buf_rows):
        i = row0 + rho
        at = numba.uint64(rho * pitch)
        if 0 <= i < height:
            source = numba.uint64(start + i * width + col_lo - left)
            for c in range(col_hi - col_lo):
                value = x_bits[source + numba.uint64(c)]
                buf[at + numba.uint64(col_lo + c)] = value
                exponent = max(exponent, value & FLOAT32_EXPONENT)
        else:
            for c in range(col_lo, col_hi):
                buf[at + numba.uint64(c)] = 0
    return exponent == FLOAT32_EXPONENT


@numba.njit(cache=True)
def _literal_band(x, top, left, kernels, src, first_kernel, bias, out, o, r0, r1,
                  padding_terms, rows):
    """out[o, r0:r1] by the literal sums (kernels carry MR − 1 zero rows above and below)."""
    kh, kw = kernels.shape[1] - 2 * (rows - 1), kernels.shape[2]
    height, width = x.shape[1], x.shape[2]
    for r in range(r0, r1):
        for q in range(out.shape[2]):
            total = np.float32(0)
            for u in range(src.shape[1]):
                s, kernel = src[o, u], kernels[first_kernel + u]
                for a in range(kh):
                    i = r + a - top
                    for b in range(kw):
                        j = q + b - left
                        tap = kernel[rows - 1 + a, b]
                        if s >= 0 and 0 <= i < height and 0 <= j < width:
                            total += tap * x[s, i, j]
                        elif padding_terms:
                            total += tap * np.float32(0)
            out[o, r, q] = total + bias[o]


@numba.njit(cache=True)
def correlate_bands(tasks, x, top, left, kernels, src, plane_kernel, bias, out, band_rows,
                    chunks, padding_terms, exact_only, rows, vectors):
    """The module's sum for every output plane o of out (O, R, Q), float32.

    x (S, H, W); kernels (stack, KH + 2(MR − 1), KW) with MR − 1 zero rows above and below;
    src (O, U) int64 source planes (−1: a padding plane); plane_kernel (O,) int64; bias (O,).
    Bands of ``band_rows`` output rows (a multiple of MR) are the tasks, split into ``chunks``
    parallel runs that each own one buffer.
    """
    return run_tasks(tasks, chunks, (x, top, left, kernels, src, plane_kernel, bias, out,
                     band_rows, chunks, padding_terms, exact_only))


@functools.cache
def chunk_task(rows, vectors):
    """``correlate_bands``' task ``chunk`` with the MR × NV tile ``rows`` × ``vectors``
    (``task_call`` says why a task of its own)."""
    def run(chunk, x, top, left, kernels, src, plane_kernel, bias, out, band_rows, chunks,
            padding_terms, exact_only):
        width = LANES * vectors
        n_planes, out_rows, out_cols = out.shape
        kh, kw = kernels.shape[1] - 2 * (rows - 1), kernels.shape[2]
        kernel_size = kernels.shape[1] * kw
        padded_cols = -(-out_cols // width) * width
        pitch = padded_cols + kw - 1
        buf_rows = band_rows + kh - 1
        col_lo, col_hi = max(0, left), min(pitch, left + x.shape[2])
        taps, offset, b_offset, base, c_row = tile_tables(rows, kh, kw, pitch, padded_cols)
        bands = -(-out_rows // band_rows)
        tasks = n_planes * bands
        k_flat, x_bits = kernels.reshape(-1), x.reshape(-1).view(np.uint32)
        plane_size = x.shape[1] * x.shape[2]
        # + width: the last tile's vectors may run past the last row's pitch
        buf = np.zeros(buf_rows * pitch + width, np.uint32)  # float32 bits (_copy_band)
        tile = np.empty(band_rows * padded_cols, np.float32)
        # The band in the buffer (source plane, first row) and whether it holds inf or NaN:
        # tasks run band by band, plane after plane, so the output planes that read the same
        # source (the filters of a one-channel layer) copy it once.
        held_source, held_row, held_nonfinite = -1, -1, False
        for task in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            o, r0 = task % n_planes, task // n_planes * band_rows
            r1 = min(r0 + band_rows, out_rows)
            row_tiles = -(-(r1 - r0) // rows)
            exact = exact_only
            started = False
            for u in range(src.shape[1]):
                s = src[o, u]
                if exact or s < 0:
                    continue  # a padding plane adds only zeros (kernels finite here)
                if s != held_source or r0 != held_row:
                    held_source, held_row = s, r0
                    held_nonfinite = _copy_band(x_bits, s * plane_size, x.shape[1], x.shape[2],
                                                r0 - top, col_lo, col_hi, left, buf, pitch,
                                                row_tiles * rows + kh - 1)
                if held_nonfinite:
                    exact = True
                    continue
                kernel = k_flat[(plane_kernel[o] + u) * kernel_size:]
                for tr in range(row_tiles):
                    for q0 in range(0, padded_cols, width):
                        gathered_micro_kernel(
                            taps, kernel.ctypes.data, base.ctypes.data, offset.ctypes.data,
                            buf[tr * rows * pitch + q0:].ctypes.data, b_offset.ctypes.data,
                            tile[tr * rows * padded_cols + q0:].ctypes.data, c_row.ctypes.data,
                            1 if started else 0, rows, vectors)
                started = True
            if exact:
                _literal_band(x, top, left, kernels, src, plane_kernel[o], bias, out, o, r0, r1,
                              padding_terms, rows)
                continue
            value = bias[o]
            for r in range(r0, r1):
                y = out[o, r]
                if started:
                    row = tile[(r - r0) * padded_cols:]
                    for q in range(out_cols):
                        y[q] = row[q] + value
                else:
                    for q in range(out_cols):
                        y[q] = value
    return compiled_for_tile(run, rows, vectors)


# (MR, NV) of the target's row-correlation tiles (``cnnkit.cpu.TILES``).
TILES = _TARGET_TILES.rows
# ``correlate_bands`` with TILES[i], called without its task table and tile: a first call
# compiles only the tile it runs (a LeNet-5 first layer's first forward pass on a cold Numba
# cache took 6.8–6.9 s with an entry point per tile, against 19.1–20.1 with one for all four:
# BENCHMARKS.md, "``cnnkit tune`` on a cold Numba cache").
BY_TILE = tuple(PerTile(correlate_bands, chunk_task, None, 12, rows, vectors)
                for rows, vectors in TILES)
