"""Compiled 2-D im2col, col2im and batch/channel swaps (Numba), for the im2col GEMM path.

The NumPy versions (``im2col``) are a strided view copied by ``reshape`` (one thread, and a
transpose to put the batch beside the output positions) and a col2im of k·k strided ``+=``
passes over the whole batch. Profiling a training step of the default model put those copies,
not the matrix products, at over half of the convolution time. Here each is one parallel pass
that writes its output in order, straight in the layout the product wants:

    cols[c, a, b, n, i, j] = x[n, c, i·s + a·d, j·s' + b·d']             (im2col)
    dx[n, c, i·s + a·d, j·s' + b·d'] += dcols[c, a, b, n, i, j]          (col2im, its adjoint)

``cols`` viewed as (G, C/G·kh·kw, N·oh·ow) is the right operand of one GEMM per group. Each
col2im task owns one (n, c) plane, so the adds never race.
"""
import numba

_JIT = dict(parallel=True, cache=True)


@numba.njit(**_JIT)
def im2col(x, kh, kw, sh, sw, dh, dw, cols):
    """x (N, C, H, W), already padded -> cols (C, kh, kw, N, oh, ow), filled in place."""
    n_images, channels = x.shape[0], x.shape[1]
    oh, ow = cols.shape[4], cols.shape[5]
    for task in numba.prange(channels * kh * kw):
        c, ab = task // (kh * kw), task % (kh * kw)
        a, b = ab // kw, ab % kw
        for n in range(n_images):
            plane, dst = x[n, c], cols[c, a, b, n]
            for i in range(oh):
                row, out = plane[i * sh + a * dh], dst[i]
                for j in range(ow):
                    out[j] = row[j * sw + b * dw]


@numba.njit(**_JIT)
def col2im(dcols, sh, sw, dh, dw, dx):
    """dcols (C, kh, kw, N, oh, ow) -> dx (N, C, H, W) (padded size), overwritten."""
    channels, kh, kw, n_images, oh, ow = dcols.shape
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        plane = dx[n, c]
        plane[:] = 0
        for a in range(kh):
            for b in range(kw):
                src = dcols[c, a, b, n]
                for i in range(oh):
                    row, grad = plane[i * sh + a * dh], src[i]
                    for j in range(ow):
                        row[j * sw + b * dw] += grad[j]


@numba.njit(**_JIT)
def swap_leading(a, out):
    """out[j, i, :] = a[i, j, :] for a (I, J, P) and out (J, I, P): (K, N, P) <-> (N, K, P)."""
    rows, cols = a.shape[0], a.shape[1]
    for task in numba.prange(rows * cols):
        i, j = task // cols, task % cols
        out[j, i, :] = a[i, j, :]
