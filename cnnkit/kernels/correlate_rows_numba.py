"""Direct single-channel correlation on the register-tiled micro-kernel (Numba).

One output plane o (the outer axes, all but the last two, flattened) of a valid correlation:

    out[o, r, q] = Σ_u Σ_{a < KH, b < KW} k[u, a, b] · P[o + u, r + a, q + b]

u runs over the kernel's outer axes. A tile is MR rows × LANES·NV columns of ``out``. Its rows
share input vectors: output row r0 + i reads input row r0 + ρ with kernel row a = ρ − i, so one
pass over the tile's MR + KH − 1 input rows feeds all MR output rows. That is the micro-kernel

    C[i, j] (+)= Σ_t x[base_i + offset_t] · B[b_offset_t + j],      t = (ρ, b)

with B = P at the tile's corner (b_offset_t = ρ·pitch + b) and x = the kernel plane with MR − 1
zero rows above and below (base_i = (MR − 1 − i)·KW, offset_t = t): the zero rows stand in for
the (i, ρ) pairs outside the kernel, so the loop has no branch. Zero rows cost work:
MR·(MR + KH − 1) row pairs for MR·KH useful ones, 14 for 11 with an 11-row kernel and MR = 4.

Ragged tiles read past the last valid input row or column (into the next row, or the slack
the caller leaves after the buffer) and write into ``out``'s padding; the caller crops.
"""
import numba
import numpy as np

from .microkernel import LANES, TILES as _TARGET_TILES, gathered_micro_kernel


@numba.njit(cache=True)
def tile_tables(rows, kh, kw, pitch, c_pitch):
    """The micro-kernel's tables for an MR-row tile of a KH × KW kernel (module docstring):
    T = (MR + KH − 1)·KW terms t = (ρ, b), x offsets t, input offsets ρ·pitch + b, kernel rows
    base_i = (MR − 1 − i)·KW, output rows i·c_pitch. Returns (T, offset, b_offset, base, c_row).
    """
    taps = (rows + kh - 1) * kw
    offset = np.arange(taps)
    b_offset = np.empty(taps, np.int64)
    for t in range(taps):
        b_offset[t] = t // kw * pitch + t % kw
    base = np.empty(rows, np.int64)
    c_row = np.empty(rows, np.int64)
    for i in range(rows):
        base[i] = (rows - 1 - i) * kw
        c_row[i] = i * c_pitch
    return taps, offset, b_offset, base, c_row


@numba.njit(parallel=True, cache=True)
def correlate(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, col_chunks,
              rows, vectors):
    """out[o] (R, W) from the flat buffer ``p`` (rows ``pitch`` apart): plane o's corner is
    p[plane_base[o]]; outer tap u adds tap_plane[u] and uses kernels[plane_kernel[o] + u], a
    KH × KW plane with MR − 1 zero rows above and below. out (O, R, W), R and W multiples of
    MR and LANES·NV; a row tile's column tiles are split into ``col_chunks`` parallel tasks."""
    numba.literally(rows)
    numba.literally(vectors)
    width = LANES * vectors
    n_planes, out_rows, out_cols = out.shape
    kh, kw = kernels.shape[1] - 2 * (rows - 1), kernels.shape[2]
    kernel_size = kernels.shape[1] * kw
    row_tiles, col_tiles = out_rows // rows, out_cols // width
    p_flat, out_flat, k_flat = p.reshape(-1), out.reshape(-1), kernels.reshape(-1)
    taps, offset, b_offset, base, c_row = tile_tables(rows, kh, kw, pitch, out_cols)
    for task in numba.prange(n_planes * row_tiles * col_chunks):
        o = task // (row_tiles * col_chunks)
        r0 = task // col_chunks % row_tiles * rows
        chunk = task % col_chunks
        for tile in range(chunk * col_tiles // col_chunks, (chunk + 1) * col_tiles // col_chunks):
            q0 = tile * width
            corner = plane_base[o] + r0 * pitch + q0
            c = out_flat[(o * out_rows + r0) * out_cols + q0:]
            for u in range(tap_plane.size):
                kernel = k_flat[(plane_kernel[o] + u) * kernel_size:]
                gathered_micro_kernel(taps, kernel.ctypes.data, base.ctypes.data,
                                      offset.ctypes.data, p_flat[corner + tap_plane[u]:].ctypes.data,
                                      b_offset.ctypes.data, c.ctypes.data, c_row.ctypes.data,
                                      1 if u else 0, rows, vectors)


# (MR, NV) of the target (``cnnkit.cpu.TILES``): a one-row tile, then four-row tiles from
# narrow to wide. Module constants, so the entry points below pass them as literals.
TILES = _TARGET_TILES.rows
(_R0, _V0), (_R1, _V1), (_R2, _V2), (_R3, _V3) = TILES


# One entry point per tile, as ``correlate_bands_numba.BY_TILE``: a first call compiles only
# the tile it runs (``cnnkit.signal.correlate``'s first 11 × 11 correlation on a cold Numba
# cache, 2.5 s against 6.5–7.0 with one entry point for all four).
@numba.njit(cache=True)
def correlate_0(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, col_chunks):
    correlate(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, col_chunks, _R0, _V0)


@numba.njit(cache=True)
def correlate_1(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, col_chunks):
    correlate(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, col_chunks, _R1, _V1)


@numba.njit(cache=True)
def correlate_2(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, col_chunks):
    correlate(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, col_chunks, _R2, _V2)


@numba.njit(cache=True)
def correlate_3(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, col_chunks):
    correlate(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, col_chunks, _R3, _V3)


BY_TILE = (correlate_0, correlate_1, correlate_2, correlate_3)  # ``correlate`` with TILES[i]
