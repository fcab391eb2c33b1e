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


# Rows are sliced before the inner loop (``row = x[..., b·d:]``) so the inner index is a plain
# non-negative loop counter over a contiguous row: Numba then emits no negative-index check and
# LLVM vectorises the loop (several times faster than indexing ``x[..., q·s + b·d]``). A strided
# row (stride > 1) has another array type, so each branch calls the helper with its own type.
_JIT = dict(parallel=True, cache=True, fastmath={"contract"})


@numba.njit(inline="always", fastmath={"contract"})
def _axpy(y, a, x, n):
    for q in range(n):
        y[q] += a * x[q]


@numba.njit(inline="always", fastmath={"contract"})
def _multiply_into(acc, x, y, n):
    for q in range(n):
        acc[q] += x[q] * y[q]


@numba.njit(**_JIT)
def _forward(xp, w, sh, sw, dh, dw, out):
    n_images, channels = xp.shape[0], xp.shape[1]
    mult, kh, kw = w.shape[0] // channels, w.shape[2], w.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    for task in numba.prange(n_images * channels * mult):
        n, k = task // (channels * mult), task % (channels * mult)
        c = k // mult
        out[n, k] = 0
        for a in range(kh):
            for b in range(kw):
                tap = w[k, 0, a, b]
                for i in range(oh):
                    if sw == 1:
                        _axpy(out[n, k, i], tap, xp[n, c, i * sh + a * dh, b * dw:], ow)
                    else:
                        _axpy(out[n, k, i], tap, xp[n, c, i * sh + a * dh, b * dw::sw], ow)


@numba.njit(**_JIT)
def _backward_input(dy, w, sh, sw, dh, dw, dxp):
    n_images, channels = dxp.shape[0], dxp.shape[1]
    mult, kh, kw = w.shape[0] // channels, w.shape[2], w.shape[3]
    oh, ow = dy.shape[2], dy.shape[3]
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        dxp[n, c] = 0
        for j in range(mult):
            k = c * mult + j
            for a in range(kh):
                for b in range(kw):
                    tap = w[k, 0, a, b]
                    for i in range(oh):
                        if sw == 1:
                            _axpy(dxp[n, c, i * sh + a * dh, b * dw:], tap, dy[n, k, i], ow)
                        else:
                            _axpy(dxp[n, c, i * sh + a * dh, b * dw::sw], tap, dy[n, k, i], ow)


@numba.njit(**_JIT)
def _backward_weight(xp, dy, sh, sw, dh, dw, dwt):
    channels = xp.shape[1]
    kh, kw = dwt.shape[2], dwt.shape[3]
    mult = dwt.shape[0] // channels
    oh, ow = dy.shape[2], dy.shape[3]
    for k in numba.prange(channels * mult):
        c = k // mult
        # Elementwise products summed into one row, reduced once at the end: the inner loop
        # then has no loop-carried sum and vectorises without reordering float additions.
        acc = np.empty(ow, dtype=dwt.dtype)
        for a in range(kh):
            for b in range(kw):
                acc[:] = 0
                for n in range(xp.shape[0]):
                    for i in range(oh):
                        if sw == 1:
                            _multiply_into(acc, dy[n, k, i], xp[n, c, i * sh + a * dh, b * dw:],
                                           ow)
                        else:
                            _multiply_into(acc, dy[n, k, i],
                                           xp[n, c, i * sh + a * dh, b * dw::sw], ow)
                dwt[k, 0, a, b] = acc.sum()


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
    dw = np.empty((dy.shape[1], 1) + tuple(kernel), dtype=np.result_type(xp, dy))
    _backward_weight(np.ascontiguousarray(xp), np.ascontiguousarray(dy), *stride, *dilation, dw)
    return dw
