"""The planar (channels-first) implicit GEMM with one task per image.

``implicit_gemm_numba.planar_tiles`` reads an input padded beforehand and writes y on the
padded map's flat grid, which the caller crops: two passes over memory around the product.
Here each task pads its own image into a buffer of its own, runs the planar tiles on it,
and copies the grid's rows into y[n] without their border columns, while both are still in
cache, as ``implicit_gemm_numba.by_image`` does for the channels-last product; and while its
tiles run, it has the next image's lines fetched (``prefetch``). ``conv.implicit.planar_images``
has the measurements.

For one image (C, Dp, Hp, Wp), padded, and the product's rows w_rows (Kp, T):

    grid[k, q] = Σ_t w_rows[k, t] · image_flat[q + offset[t]]      (q < Lp, whole strips)
    y[n, k, (d·Ho + h)·Wo + w] = grid[k, (d·Hp + h)·Wp + w] (+ bias[k])
"""
import functools

import numba
import numpy as np

from . import aligned
from .implicit_gemm_numba import _pad_into
from .microkernel import LANES, TILES, biased_micro_kernel, gathered_micro_kernel, prefetch
from .task_call import PerTile, compiled_for_tile, run_tasks

PLANAR_ROWS, PLANAR_VECTORS = TILES.planar


@numba.njit(cache=True)
def planar_images(tasks, x, pad, padded, w_rows, offset, y, out, length, tap_block, bias, rows,
                  vectors):
    """y[n, k, s] (N, K, S) = the planar product of image n of x with w_rows (Kp, T), Kp a
    multiple of ``rows`` (MR), on the strips of ``vectors`` (NV) vectors of positions that
    cover the first ``length`` positions of the padded map's flat grid, cropped to the
    output's cells ``out`` (Do, Ho, Wo), plus bias[k] unless ``bias`` is empty.

    x (N, C, D, H, W): padded by ``pad`` = (front, top, left, Dp, Hp, Wp) in each task, into
    its place in ``padded`` (N·C·Dp·Hp·Wp + a strip of slack, zeroed here) when that is not
    empty (the padded input kept for a weight gradient), else into a buffer of the task's
    own. With ``pad`` empty, x is the padded input already and is read in place (the last
    image through a copy, as its last strip reads up to a strip past the image).

    Each output's sum runs over the taps in order within one task, so the bits do not
    depend on the thread count."""
    width = LANES * vectors
    n_images, k_out = y.shape[0], y.shape[1]
    kp, taps = w_rows.shape
    channels = x.shape[1]
    if pad.size:
        depth, height, pitch = pad[3], pad[4], pad[5]
    else:
        depth, height, pitch = x.shape[2], x.shape[3], x.shape[4]
    image = channels * depth * height * pitch
    strips = (length + width - 1) // width
    lp = strips * width
    tap_index = np.arange(taps)
    c_row = np.empty(rows, np.int64)
    for i in range(rows):
        c_row[i] = i * lp
    biased = bias.size > 0
    row_bias = np.zeros(kp, np.float32)
    if biased:
        row_bias[:k_out] = bias
    image, lp = np.int64(image), np.int64(lp)
    height, pitch = np.int64(height), np.int64(pitch)
    return run_tasks(tasks, n_images, (x, pad, padded, image, w_rows, tap_index, c_row, offset, y,
                     out, lp, height, pitch, tap_block, biased, row_bias))


def _image_product_types(x, pad, padded, w_rows, offset, y, out, length, tap_block, bias, rows,
                         vectors):
    """The Numba types of the task's arguments in a ``planar_images`` call with these."""
    int64, vector = numba.int64, numba.int64[::1]
    return ((int64,) + tuple(map(numba.typeof, (x, pad, padded))) +
            (int64, numba.typeof(w_rows), vector, vector, numba.typeof(offset),
             numba.typeof(y), numba.typeof(out), int64, int64, int64, numba.typeof(tap_block),
             numba.boolean, numba.float32[::1]))


@functools.cache
def image_product(rows, vectors):
    """``planar_images``' task n with the MR × NV tile ``rows`` × ``vectors`` (``task_call``
    says why a task of its own; and in a prange body, Numba's array analysis keeps the shape
    of an array variable's first definition, and the source array here is one of three)."""
    def product(n, x, pad, padded, image, w_rows, tap_index, c_row, offset, y, out, lp, height,
                pitch, tap_block, biased, row_bias):
        width = LANES * vectors
        planes = y[n]
        n_images = x.shape[0]
        kp, taps = w_rows.shape
        # the image's padded values and a strip of slack past them (the last strip's reach)
        if pad.size and padded.size:
            padded[n * image:(n + 1) * image] = 0
            if n == n_images - 1:
                padded[n_images * image:] = 0
            _pad_into(x[n], pad, padded, n * image, False)
            source, start = padded, n * image
        elif pad.size:
            source, start = aligned.floats_on_line(image + width, True), 0
            _pad_into(x[n], pad, source, np.int64(0), False)
        elif n == n_images - 1:
            source, start = aligned.floats_on_line(image + width, True), 0
            source[:image] = x.reshape(-1)[n * image:(n + 1) * image]
        else:
            source, start = x.reshape(-1), n * image
        # each tile's first block stores without adding
        grid = aligned.floats_on_line(kp * lp, False)
        base = np.empty(rows, np.int64)
        w_address = w_rows.ctypes.data
        # the next image's lines, a few before each tile, fetched into cache for its task
        lines = (x[n].size * 4 + 63) // 64 if n + 1 < n_images else 0
        upcoming = x[n + 1:].ctypes.data if lines else 0
        calls = (lp // width) * ((taps + tap_block - 1) // tap_block) * (kp // rows)
        per_call, fetched = (lines + calls - 1) // calls, 0
        for p0 in range(0, lp, width):
            strip = source.ctypes.data + 4 * (start + p0)
            for t0 in range(0, taps, tap_block):
                block = min(tap_block, taps - t0)
                for k0 in range(0, kp, rows):
                    for i in range(rows):
                        base[i] = (k0 + i) * taps + t0
                    tile = grid.ctypes.data + 4 * (k0 * lp + p0)
                    for line in range(fetched, min(fetched + per_call, lines)):
                        prefetch(upcoming + line * 64)
                    fetched += per_call
                    if biased and t0 + block == taps:
                        biased_micro_kernel(block, w_address, base.ctypes.data,
                                            tap_index.ctypes.data, strip,
                                            offset[t0:].ctypes.data, tile, c_row.ctypes.data,
                                            1 if t0 else 0, row_bias[k0:].ctypes.data, rows,
                                            vectors)
                    else:
                        gathered_micro_kernel(block, w_address, base.ctypes.data,
                                              tap_index.ctypes.data, strip,
                                              offset[t0:].ctypes.data, tile, c_row.ctypes.data,
                                              1 if t0 else 0, rows, vectors)
        _crop(grid, lp, planes, out, height, pitch)
    return compiled_for_tile(product, rows, vectors)


@numba.njit(cache=True)
def _crop(grid, lp, planes, out, height, pitch):
    """planes[k, (d·Ho + h)·Wo + w] = grid[k·lp + (d·Hp + h)·Wp + w]: the output cells of one
    image's grid, without its border columns (Hp = ``height``, Wp = ``pitch``)."""
    out_depth, out_height, out_width = out[0], out[1], out[2]
    for k in range(planes.shape[0]):
        target = planes[k]
        for d in range(out_depth):
            for h in range(out_height):
                # unsigned: BENCHMARKS.md, "Copy loops on unsigned indices"
                at = numba.uint64(k * lp + (d * height + h) * pitch)
                row = numba.uint64((d * out_height + h) * out_width)
                for w in range(numba.uint64(out_width)):
                    target[row + w] = grid[at + w]


# ``planar_images`` with this target's planar tile, ``cpu.TILES``' (MR, NV), called without its
# task table and tile
planar_images_tiled = PerTile(planar_images, image_product, _image_product_types, 10,
                              PLANAR_ROWS, PLANAR_VECTORS)
