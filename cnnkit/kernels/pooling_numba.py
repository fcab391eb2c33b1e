"""Compiled 2-D max pooling (Numba): one pass per image plane, value and index together.

The NumPy path (``kernels.pooling``) makes k·k vectorised passes with temporaries and a padded
copy; here each (image, channel) plane is one parallel task that scans each window once and
records the flat input position of its maximum — exactly PyTorch's ``return_indices``, which is
also all the backward pass needs: dL/dx[n, c, index[n, c, i, j]] += dL/dy[n, c, i, j].

Window rule, as PyTorch's CPU kernel: cells in the padding are skipped; the first maximum wins,
unless a NaN appears, when the (last) NaN wins: ``if val > best or isnan(val)``.
"""
import numba
import numpy as np

_JIT = dict(parallel=True, cache=True)


@numba.njit(**_JIT)
def _forward(x, kh, kw, sh, sw, ph, pw, dh, dw, out, index):
    n_images, channels, height, width = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        plane = x[n, c]
        for i in range(oh):
            top = i * sh - ph
            for j in range(ow):
                left = j * sw - pw
                best = -np.inf
                best_at = -1
                for a in range(kh):
                    r = top + a * dh
                    if r < 0 or r >= height:
                        continue
                    for b in range(kw):
                        q = left + b * dw
                        if q < 0 or q >= width:
                            continue
                        value = plane[r, q]
                        if best_at < 0 or value > best or np.isnan(value):
                            best = value
                            best_at = r * width + q
                out[n, c, i, j] = best
                index[n, c, i, j] = best_at


@numba.njit(**_JIT)
def _forward_2x2(x, out, index):
    """``_forward`` for the most common pooling, 2×2 windows at stride 2 inside the input.
    Window and stride as literals let LLVM unroll the window: ~3× faster than the general
    loops, whose trip counts and strides are only known at run time."""
    n_images, channels, height, width = x.shape
    oh, ow = out.shape[2], out.shape[3]
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        plane, best_plane, at_plane = x[n, c], out[n, c], index[n, c]
        for i in range(oh):
            for j in range(ow):
                best = plane[2 * i, 2 * j]
                best_at = 2 * i * width + 2 * j
                for a in range(2):
                    for b in range(2):
                        value = plane[2 * i + a, 2 * j + b]
                        if value > best or np.isnan(value):
                            best = value
                            best_at = (2 * i + a) * width + 2 * j + b
                best_plane[i, j] = best
                at_plane[i, j] = best_at


@numba.njit(**_JIT)
def _backward(grad, index, dx):
    n_images, channels = dx.shape[0], dx.shape[1]
    width = dx.shape[3]
    oh, ow = grad.shape[2], grad.shape[3]
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        dx[n, c] = 0
        for i in range(oh):
            for j in range(ow):
                at = index[n, c, i, j]
                dx[n, c, at // width, at % width] += grad[n, c, i, j]


def max_pool2d_forward(x, kernel, stride, pads, dilation, out):
    """x (N, C, H, W) -> (y (N, C, *out), index (N, C, *out) flat positions in H·W).

    The index is int32 (half the memory held for backward) unless a plane is too large for it.
    """
    y = np.empty(x.shape[:2] + tuple(out), dtype=x.dtype)
    index_type = np.int32 if x.shape[2] * x.shape[3] < 2 ** 31 else np.int64
    index = np.empty(x.shape[:2] + tuple(out), dtype=index_type)
    inside = all(lo == 0 and (o - 1) * s + d * (k - 1) < n for (lo, _), o, s, d, k, n in
                 zip(pads, out, stride, dilation, kernel, x.shape[2:]))
    if inside and tuple(kernel) == tuple(stride) == (2, 2) and tuple(dilation) == (1, 1):
        _forward_2x2(np.ascontiguousarray(x), y, index)
    else:
        _forward(np.ascontiguousarray(x), *kernel, *stride, pads[0][0], pads[1][0], *dilation,
                 y, index)
    return y, index


def max_pool2d_backward(grad, index, in_shape):
    dx = np.empty(in_shape, dtype=grad.dtype)
    _backward(np.ascontiguousarray(grad), index, dx)
    return dx
