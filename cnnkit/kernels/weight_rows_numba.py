"""The weight gradient of a layer of few output channels, with them on the tile's rows.

The implicit GEMM's weight kernel (``implicit_gemm_numba.weight``) puts the output channels
on the tile's lanes: a layer of 16 of them on AVX-512 runs the one-vector tile, whose every
multiply-add waits on a broadcast load of its own (MR broadcasts and one load of B per MR
multiply-adds), and one of 8 idles half the lanes. Here the K output channels are the
tile's rows, broadcast from dy as it is (channels-first), and the lanes take the input's
channels at the kernel's columns, which lie side by side in x laid out channels-last and
padded, one image at a time in a buffer of the task's own:

    partial[r, k, a·C + c] += Σ_s dy[n, k, s] · x_cl[corner[s] + row_shift[r] + a·C + c]

for each kernel row r = (a_z, a_y) (``row_shift``: its start in x_cl), kernel column a
(dilation 1 along the rows) and channel c; ``corner[s]``: output position s's window corner
in one channels-last padded image. So the tile's MR output channels share each load of B's
NV vectors (16 channels at a 3 × 3 kernel's columns: the 8 × 48 tile on AVX-512), as in the
forward pass's wider tiles.
"""
import functools

import numba
import numpy as np

from . import aligned
from .bias_numba import plane_sum
from .microkernel import LANES, TILES, gathered_micro_kernel
from .task_call import PerTile, compiled_for_tile, run_tasks
from .transpose_numba import transpose8


@numba.njit(cache=True)
def weight_rows(tasks, x, pad, dy, row_shift, corner, partial, sums, block, rows, vectors):
    """partial[task, r, k, j] (shares, R, Kp, Jp): the task's images' sums above, Jp = kw·C
    padded to the tile width; the caller adds the shares (each task sums its images in
    order, ``block`` output positions at a time, and the shares are fixed by the shapes: the
    same bits on any thread count). x (N, C, D, H, W), zero-padded by pad = (front, top,
    left, Dp, Hp, Wp) as it is laid out (all zero: x is the padded input); dy (N, K, S); Kp
    a multiple of MR (``rows``); rows k ≥ K read dy's last channel and are dropped by the
    caller, as are columns j ≥ kw·C. Unless ``sums`` (shares, K) is empty, sums[task, k] =
    Σ over the task's images and positions of dy[n, k, s] (float64), the bias gradient's
    shares."""
    return run_tasks(tasks, partial.shape[0], (x, pad, dy, row_shift, corner, partial, sums,
                     block))


@functools.cache
def share_task(rows, vectors):
    """``weight_rows``' task ``task`` with the MR × NV tile ``rows`` × ``vectors``: its share
    of the images into partial[task] (``task_call`` says why a task of its own)."""
    def share(task, x, pad, dy, row_shift, corner, partial, sums, block):
        shares, n_images = partial.shape[0], x.shape[0]
        first, last = task * n_images // shares, (task + 1) * n_images // shares
        out = partial[task]
        width = LANES * vectors
        channels = x.shape[1]
        k, positions = dy.shape[1], dy.shape[2]
        kernel_rows, kp, jp = out.shape
        image = pad[3] * pad[4] * pad[5] * channels
        # the padded image channels-last, a tile's width of slack past it (the last position's
        # columns past kw·C), its padding cells zero once for all the task's images
        x_cl = aligned.floats_on_line(image + jp, True)
        out[:] = 0
        position = np.arange(positions)
        b_offset = np.empty((kernel_rows, positions), np.int64)
        for r in range(kernel_rows):
            b_offset[r] = corner + row_shift[r]
        base = np.empty(rows, np.int64)
        c_row = np.arange(rows) * jp
        summed = sums.size > 0
        for n in range(first, last):
            _channels_last(x[n], pad, x_cl)
            planes = dy[n]
            # ``block`` positions at a time through every tile, so that their columns of x_cl
            # and rows of dy are read from L1 by all but the first
            for s0 in range(0, positions, block):
                count = min(block, positions - s0)
                for r in range(kernel_rows):
                    for k0 in range(0, kp, rows):
                        for i in range(rows):
                            base[i] = min(k0 + i, k - 1) * positions
                        for j0 in range(0, jp, width):
                            gathered_micro_kernel(
                                count, planes.ctypes.data, base.ctypes.data,
                                position[s0:].ctypes.data, x_cl[j0:].ctypes.data,
                                b_offset[r, s0:].ctypes.data, out[r, k0:, j0:].ctypes.data,
                                c_row.ctypes.data, 1, rows, vectors)
            if summed:  # the bias gradient's share, from the planes read above (in cache)
                for kk in range(k):
                    sums[task, kk] += plane_sum(planes[kk])
    return compiled_for_tile(share, rows, vectors)


@numba.njit(cache=True)
def _channels_last(image, pad, out):
    """out[((d + front)·Hp + h + top)·Wp + w + left)·C + c] = image[c, d, h, w]: image (C,
    D, H, W) into its padded channels-last place, by 8 × 8 transposes (8 channels by 8
    columns) and the edges one by one; the padding cells are left as they are (zero)."""
    channels, depth, height, width = image.shape
    front, top, left, _, padded_height, padded_width = pad
    plane = depth * height * width  # one channel's values
    blocked_c = channels - channels % 8
    blocked_w = width - width % 8
    for d in range(depth):
        for h in range(height):
            row = (((d + front) * padded_height + h + top) * padded_width + left) * channels
            for c0 in range(0, blocked_c, 8):
                for w0 in range(0, blocked_w, 8):
                    transpose8(image[c0, d, h, w0:].ctypes.data, plane,
                               out[row + w0 * channels + c0:].ctypes.data, channels)
            for c in range(channels):
                cells = image[c, d, h]
                for w in range(blocked_w if c < blocked_c else 0, width):
                    out[row + w * channels + c] = cells[w]


_ROWS = TILES.gemm_rows  # MR by NV, the forward kernel's tiles
# WEIGHT_ROWS[nv]: ``weight_rows`` with the tile of NV vectors, called without its task table
# and tile
WEIGHT_ROWS = {nv: PerTile(weight_rows, share_task, None, 8, _ROWS[nv], nv)
               for nv in (1, 2, 3, 4)}
