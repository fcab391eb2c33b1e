"""Compiled 2-D im2col, col2im and batch/channel swaps (Numba), for the im2col GEMM path.

The NumPy versions (``im2col``) are a strided view copied by ``reshape`` (one thread, and a
transpose to put the batch beside the output positions) and a col2im of k·k strided ``+=``
passes over the whole batch. Profiling a training step of the default model put those copies,
not the matrix products, at over half of the convolution time. Here each is one parallel pass
that writes its output in order, straight in the layout the product wants, and reads zero
padding without a padded copy of the input (cells outside it are zeros in ``cols`` and are
skipped by col2im, which so returns the gradient of the unpadded input):

    cols[c, a, b, n, i, j] = x[n, c, i·s + a·d − p, j·s' + b·d' − p']             (im2col)
    dx[n, c, i·s + a·d − p, j·s' + b·d' − p'] += dcols[c, a, b, n, i, j]          (col2im)

``cols`` viewed as (G, C/G·kh·kw, N·oh·ow) is the right operand of one GEMM per group. Each
col2im task owns one (n, c) plane, so the adds never race.
"""
import numba

_JIT = dict(parallel=True, cache=True)


@numba.njit(inline="always")
def inside(start, step, size, count):
    """The range [lo, hi) of j in [0, count) with 0 <= start + j·step < size (step > 0)."""
    lo = 0 if start >= 0 else (-start + step - 1) // step
    hi = 0 if start >= size else min(count, (size - 1 - start) // step + 1)
    return lo, max(lo, hi)


@numba.njit(**_JIT)
def im2col(x, kh, kw, sh, sw, dh, dw, ph, pw, cols):
    """x (N, C, H, W) unpadded, zero padding (ph, pw) before -> cols (C, kh, kw, N, oh, ow)."""
    n_images, channels, height, width = x.shape
    oh, ow = cols.shape[4], cols.shape[5]
    for task in numba.prange(channels * kh * kw):
        c, ab = task // (kh * kw), task % (kh * kw)
        a, b = ab // kw, ab % kw
        left = b * dw - pw
        j0, j1 = inside(left, sw, width, ow)
        for n in range(n_images):
            plane, dst = x[n, c], cols[c, a, b, n]
            for i in range(oh):
                r = i * sh + a * dh - ph
                if r < 0 or r >= height:
                    dst[i, :] = 0
                    continue
                dst[i, :j0] = 0
                for j in range(j0, j1):
                    dst[i, j] = plane[r, numba.uint64(j * sw + left)]
                dst[i, j1:] = 0


@numba.njit(**_JIT)
def col2im(dcols, sh, sw, dh, dw, ph, pw, dx):
    """dcols (C, kh, kw, N, oh, ow) -> dx (N, C, H, W) of the unpadded input, overwritten."""
    channels, kh, kw, n_images, oh, ow = dcols.shape
    height, width = dx.shape[2], dx.shape[3]
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        plane = dx[n, c]
        plane[:] = 0
        for a in range(kh):
            for b in range(kw):
                src = dcols[c, a, b, n]
                left = b * dw - pw
                j0, j1 = inside(left, sw, width, ow)
                for i in range(oh):
                    r = i * sh + a * dh - ph
                    if r < 0 or r >= height:
                        continue
                    for j in range(j0, j1):
                        plane[r, numba.uint64(j * sw + left)] += src[i, j]


@numba.njit(**_JIT)
def swap_leading(a, out):
    """out[j, i, :] = a[i, j, :] for a (I, J, P) and out (J, I, P): (K, N, P) <-> (N, K, P)."""
    rows, cols = a.shape[0], a.shape[1]
    for task in numba.prange(rows * cols):
        i, j = task // cols, task % cols
        out[j, i, :] = a[i, j, :]
