"""Compiled 2-D depthwise convolution (Numba), one fused pass per image plane.

The NumPy depthwise path makes k·k passes over the whole batch, each allocating a temporary;
for a 3×3 layer that is memory traffic, not arithmetic, and PyTorch too runs such layers far
below its GEMM speed. Here each (image, channel) plane is one parallel task that applies all
k·k taps while the plane is in cache. Same formulas as ``conv_depthwise``:

    y[n, c·m + j, i, q]   = Σ_{a,b} w[c·m + j, 0, a, b] · x[n, c, i·s + a·d, q·s' + b·d']
    dx[n, c, i·s + a·d, …] += w[c·m + j, 0, a, b] · dy[n, c·m + j, i, q]
    dw[c·m + j, 0, a, b]  = Σ_n Σ_{i,q} dy[n, c·m + j, i, q] · x[n, c, i·s + a·d, q·s' + b·d']
"""
import numba
import numpy as np


# Each task takes its planes once (``plane = xp[n, c]``) and indexes them in 2-D: creating a
# row view per tap and output row, the first version, cost more than the arithmetic (a 3×3
# plane of 32×32 is only 9,216 multiply-adds). Input columns are indexed as unsigned, so
# Numba emits no negative-index wraparound and LLVM vectorises the loop over j.
_JIT = dict(parallel=True, cache=True, fastmath={"contract"})


@numba.njit(**_JIT)
def _forward(xp, w, sh, sw, dh, dw, out):
    n_images, channels = xp.shape[0], xp.shape[1]
    mult, kh, kw = w.shape[0] // channels, w.shape[2], w.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    for task in numba.prange(n_images * channels * mult):
        n, k = task // (channels * mult), task % (channels * mult)
        plane, y, taps = xp[n, k // mult], out[n, k], w[k, 0]
        for i in range(oh):
            for j in range(ow):
                y[i, j] = 0
            for a in range(kh):
                r = i * sh + a * dh
                for b in range(kw):
                    tap, left = taps[a, b], b * dw
                    for j in range(ow):
                        y[i, j] += tap * plane[r, numba.uint64(j * sw + left)]


@numba.njit(**_JIT)
def _backward_input(dy, w, sh, sw, dh, dw, dxp):
    n_images, channels = dxp.shape[0], dxp.shape[1]
    mult, kh, kw = w.shape[0] // channels, w.shape[2], w.shape[3]
    oh, ow = dy.shape[2], dy.shape[3]
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        dx = dxp[n, c]
        dx[:] = 0
        for m in range(mult):
            k = c * mult + m
            g, taps = dy[n, k], w[k, 0]
            for i in range(oh):
                for a in range(kh):
                    r = i * sh + a * dh
                    for b in range(kw):
                        tap, left = taps[a, b], b * dw
                        for j in range(ow):
                            dx[r, numba.uint64(j * sw + left)] += tap * g[i, j]


@numba.njit(**_JIT)
def _backward_weight(x, dy, top, left, padded_height, padded_width, sh, sw, dh, dw, dwt, db):
    """dwt[k, 0, a, b] = Σ_n Σ_{i,q} dy[n, k, i, q] · xp[n, k // m, i·sh + a·dh, q·sw + b·dw]
    from the unpadded input x: each task pads the planes it reads into a buffer of its own (in
    L1 cache) rather than reading a padded copy of the whole batch from memory. The padding
    zeros are real values there, so dy · 0 terms stay terms (docs/ieee.md). (Skipping the
    padding by loop bounds instead left loops of 31 or 32 iterations that LLVM did not
    vectorise: 9.3 against 4.4 ms for dw3x3, one core.) With ``db`` of size K, also
    db[k] = Σ_n Σ_i dy[n, k, i] in float64: the bias gradient, read on the way.

    Elementwise products are summed into one row per tap, reduced once at the end: the inner
    loop then has no loop-carried sum and vectorises without reordering float additions.
    Image by image, all taps at once: each plane is read from memory once and its rows reused
    from L1 by every tap (tap by tap over the whole batch re-read each channel's planes kh·kw
    times and did not scale past one thread)."""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = dwt.shape[2], dwt.shape[3]
    mult = dwt.shape[0] // channels
    oh, ow = dy.shape[2], dy.shape[3]
    with_bias = db.size > 0
    for k in numba.prange(channels * mult):
        c = k // mult
        acc = np.zeros((kh, kw, ow), dtype=dwt.dtype)
        sums = np.zeros(ow, np.float64)
        plane = np.zeros((padded_height, padded_width), dtype=x.dtype)
        for n in range(x.shape[0]):
            source, g = x[n, c], dy[n, k]
            for i in range(height):
                row = plane[top + i]
                for j in range(width):
                    row[numba.uint64(left + j)] = source[i, j]
            if with_bias:
                for i in range(oh):
                    for j in range(ow):
                        sums[j] += g[i, j]
            for i in range(oh):
                for a in range(kh):
                    r = i * sh + a * dh
                    for b in range(kw):
                        shift, row = b * dw, acc[a, b]
                        for j in range(ow):
                            row[j] += g[i, j] * plane[r, numba.uint64(j * sw + shift)]
        for a in range(kh):
            for b in range(kw):
                dwt[k, 0, a, b] = acc[a, b].sum()
        if with_bias:
            db[k] = sums.sum()


def forward(xp, w, stride, dilation, out):
    """xp (N, C, Hp, Wp) padded, w (C·m, 1, kh, kw) -> y (N, C·m, *out)."""
    y = np.empty((xp.shape[0], w.shape[0]) + tuple(out), dtype=np.result_type(xp, w))
    _forward(np.ascontiguousarray(xp), np.ascontiguousarray(w), *stride, *dilation, y)
    return y


def backward_input(dy, w, spatial, stride, dilation, groups):
    dxp = np.empty((dy.shape[0], groups) + tuple(spatial), dtype=np.result_type(dy, w))
    _backward_input(np.ascontiguousarray(dy), np.ascontiguousarray(w), *stride, *dilation, dxp)
    return dxp


def backward_weight(xp, dy, kernel, stride, dilation):
    return backward_weight_unpadded(xp, dy, kernel, ((0, 0), (0, 0)), stride, dilation)[0]


def backward_weight_unpadded(x, dy, kernel, pads, stride, dilation, with_bias=False):
    """dL/dw (and, with ``with_bias``, dL/db) from the unpadded x (N, C, H, W) and its zero
    padding ``pads`` ((top, bottom), (left, right)): no padded copy of the batch is made."""
    dy = np.ascontiguousarray(dy)
    dw = np.empty((dy.shape[1], 1) + tuple(kernel), dtype=np.result_type(x, dy))
    db = np.zeros(dy.shape[1] if with_bias else 0, np.float64)
    (top, bottom), (left, right) = pads
    _backward_weight(np.ascontiguousarray(x), dy, top, left, x.shape[2] + top + bottom,
                              x.shape[3] + left + right, *stride, *dilation, dw, db)
    return dw, (db.astype(dy.dtype) if with_bias else None)
