"""Compiled im2col, col2im and batch/channel swaps (Numba), for the im2col GEMM path.

The NumPy versions (``im2col``) are a strided view copied by ``reshape`` (one thread, and a
transpose to put the batch beside the output positions) and a col2im of k·k strided ``+=``
passes over the whole batch. Profiling a training step of the default model put those copies,
not the matrix products, at over half of the convolution time. Here each is one parallel pass
that writes its output in order, straight in the layout the product wants:

    cols[c, a, b, n, i, j] = x[n, c, i·s + a·d, j·s' + b·d']             (im2col)
    dx[n, c, i·s + a·d, j·s' + b·d'] += dcols[c, a, b, n, i, j]          (col2im, its adjoint)

``cols`` viewed as (G, C/G·kh·kw, N·oh·ow) is the right operand of one GEMM per group. Each
col2im task owns one (n, c) volume, so the adds never race. The kernels are written for 3-D;
a 2-D layer is the same with a depth of one (``conv_gemm`` adds the axis as a view).
"""
import numba

_JIT = dict(parallel=True, cache=True)


@numba.njit(**_JIT)
def im2col3d(x, kd, kh, kw, sd, sh, sw, dd, dh, dw, cols):
    """x (N, C, D, H, W), already padded -> cols (C, kd, kh, kw, N, od, oh, ow), in place."""
    n_images, channels = x.shape[0], x.shape[1]
    od, oh, ow = cols.shape[5], cols.shape[6], cols.shape[7]
    taps = kd * kh * kw
    for task in numba.prange(channels * taps):
        c, t = task // taps, task % taps
        e, a, b = t // (kh * kw), (t // kw) % kh, t % kw
        for n in range(n_images):
            volume, dst = x[n, c], cols[c, e, a, b, n]
            for z in range(od):
                plane, out_plane = volume[z * sd + e * dd], dst[z]
                for i in range(oh):
                    row, out = plane[i * sh + a * dh], out_plane[i]
                    for j in range(ow):
                        out[j] = row[j * sw + b * dw]


@numba.njit(**_JIT)
def col2im3d(dcols, sd, sh, sw, dd, dh, dw, dx):
    """dcols (C, kd, kh, kw, N, od, oh, ow) -> dx (N, C, D, H, W) (padded size), overwritten."""
    channels, kd, kh, kw, n_images, od, oh, ow = dcols.shape
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        volume = dx[n, c]
        volume[:] = 0
        for e in range(kd):
            for a in range(kh):
                for b in range(kw):
                    src = dcols[c, e, a, b, n]
                    for z in range(od):
                        plane, src_plane = volume[z * sd + e * dd], src[z]
                        for i in range(oh):
                            row, grad = plane[i * sh + a * dh], src_plane[i]
                            for j in range(ow):
                                row[j * sw + b * dw] += grad[j]


@numba.njit(**_JIT)
def swap_leading(a, out):
    """out[j, i, :] = a[i, j, :] for a (I, J, P) and out (J, I, P): (K, N, P) <-> (N, K, P)."""
    rows, cols = a.shape[0], a.shape[1]
    for task in numba.prange(rows * cols):
        i, j = task // cols, task % cols
        out[j, i, :] = a[i, j, :]
