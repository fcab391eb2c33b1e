"""Convolution as one large matrix product over im2col columns (any stride, dilation, groups).

The columns of all images sit side by side, so the whole batch is a single GEMM per group:

    forward  W[g][k, (c,a)] @ X[g][(c,a), (n,i)] -> Y[g][k, (n,i)]
    input    W[g]ᵀ @ dY[g] -> dX columns, folded back onto pixels by col2im
    weight   dY[g] @ X[g]ᵀ -> dW[g]

One large product keeps BLAS efficient even when a single image's product would be thin
(few channels, small maps). The price is the im2col copy of the input, k·k times its size, and
moving the batch axis beside the output positions and back; for 2-D layers of real size those
copies are compiled parallel passes (``im2col_numba``, 2-D and 3-D), otherwise NumPy views and
copies.
"""
import math

import numpy as np

from ... import tuning
from .. import implicit_gemm_numba as compiled
from ..im2col import col2im, windows
from ..padding import crop
from . import implicit


def applies(geometry, pass_name):
    """Any stride, dilation, groups, dtype and batch (also an empty one)."""
    return True


def wins(geometry, pass_name):
    """The fallback: asked last, always taken."""
    return True


def claims(geometry, pass_name):
    """Whether im2col's product takes this pass before the registry's order is asked
    (``registry.heuristic``): a deep stride-1 input gradient of few input channels whose
    planar tiles would idle lanes (``takes_input``)."""
    return pass_name == "input" and takes_input(geometry)


def takes_input(geometry):
    """A 3-D stride-1 float32 groups-1 input gradient of fewer input channels than a vector's
    lanes (the implicit GEMM's planar orientation), whose planar strips idle a share of their
    lanes and whose product is deep for its input channels (``idle_and_deep``), and whose
    columns (C·prod(kernel) × N·prod(out) float32) stay within
    ``implicit_input_gemm_max_column_bytes`` (the implicit GEMM needs none). The
    planar product computes the idle lanes' terms too, the row correlation and the depthwise
    sums read dy once per output channel, and the FFT's and shift's products are thin;
    im2col's product, Wᵀ (C·prod(kernel) × K) by dy (K × N·P), reads dy's positions only, and
    col2im's fold costs it 1/K of the product. 2 threads, ``python -m cnnkit.bench.planar_input
    --seed 1`` (160 layers of 1 to 8 input channels, 1-D to 3-D, 16 to 256 outputs): the
    passes it moves took 1876 ms in all on the implicit GEMM and 421 on im2col on AVX-512 (84
    layers; 1 → 256 channels, 7 × 7 × 7 at dilation 2 on 10³ maps: 90.5 against 4.0 ms), 2880
    and 378 on AVX2 (75); near the rule's boundary it loses as well (15 of the 84 slower, up
    to 2.9 times; on AVX2 10 of 75, up to 1.6). 1-D layers ran faster on the planar tiles,
    and 2-D ones gained less and lost on small maps (3 → 24 channels on 8 14 × 14 maps: 0.12
    against 0.25 ms), so both stay there
    (BENCHMARKS.md, "Deep input gradients of few channels on im2col")."""
    g = geometry
    if not (len(g.kernel) == 3 and g.unit_stride and g.groups == 1 and g.is_float32 and
            g.exact and g.in_channels < compiled.LANES):
        return False
    columns = 4 * g.in_channels * g.taps * g.batch * math.prod(g.out)
    return columns <= tuning.value("implicit_input_gemm_max_column_bytes") and idle_and_deep(
        g.in_channels, g.out_channels, implicit.input_lane_use(g),
        tuning.value("implicit_input_gemm_max_lane_use"),
        tuning.value("implicit_input_gemm_min_depth"))


def idle_and_deep(c, k, lane_use, max_lane_use, min_depth):
    """``takes_input``'s fitted part: the planar strips use ``max_lane_use`` of their lanes or
    less (``implicit_input_gemm_max_lane_use``) and K / (C · lane use) is ``min_depth`` or more
    (``implicit_input_gemm_min_depth``); ``python -m cnnkit.bench.planar_input`` fits both."""
    return lane_use <= max_lane_use and k >= min_depth * c * lane_use


def forward_pass(xp, w, g):
    return forward(xp, w, g.stride, g.dilation, g.out, g.groups)


def input_pass(dy, w, g):
    return crop(backward_input(dy, w, g.padded, g.stride, g.dilation, g.groups), g.pads)


def weight_pass(xp, dy, g):
    return backward_weight(xp, dy, g.kernel, g.stride, g.dilation, g.groups)


def _compiled(n_dims, size):
    if n_dims in (2, 3) and size >= tuning.value("compiled_min_size"):
        from .. import im2col_numba
        return im2col_numba
    return None


def _as_3d(x, cols, kernel, stride, dilation):
    """The compiled kernels' 3-D arguments for a 2-D or 3-D layer: a 2-D one gets a depth axis
    of size one (views, no copies) and a kernel, stride and dilation of 1 along it.
    x (N, C, *spatial), cols (C, *kernel, N, *out)."""
    if len(kernel) == 3:
        return x, cols, tuple(kernel), tuple(stride), tuple(dilation)
    c, n = cols.shape[0], cols.shape[3]
    cols = cols.reshape((c, 1) + tuple(kernel) + (n, 1) + cols.shape[4:])
    return (x[:, :, None], cols, (1,) + tuple(kernel), (1,) + tuple(stride),
            (1,) + tuple(dilation))


def _columns(xp, kernel, stride, dilation, out, groups):
    """(G, C/G·prod(kernel), N·prod(out)) im2col matrix: one column per output position."""
    n, c = xp.shape[:2]
    compiled = _compiled(len(kernel), n * c * math.prod(kernel) * math.prod(out))
    if compiled is not None:
        cols = np.empty((c,) + tuple(kernel) + (n,) + tuple(out), dtype=xp.dtype)
        x_3d, cols_3d, kernel_3d, stride_3d, dilation_3d = _as_3d(
            np.ascontiguousarray(xp), cols, kernel, stride, dilation)
        compiled.im2col3d(x_3d, *kernel_3d, *stride_3d, *dilation_3d, cols_3d)
        return cols.reshape(groups, (c // groups) * math.prod(kernel), n * math.prod(out))
    view = windows(xp, kernel, stride, dilation, out)  # (N, C, *k, *out)
    view = view.reshape((n, groups, c // groups) + view.shape[2:])
    nk = len(kernel)
    order = (1, 2) + tuple(range(3, 3 + nk)) + (0,) + tuple(range(3 + nk, 3 + 2 * nk))
    return view.transpose(order).reshape(groups, (c // groups) * math.prod(kernel),
                                         n * math.prod(out))


def _batch_last(a, groups):
    """(N, K, *out) -> (G, K/G, N·prod(out))."""
    n, k = a.shape[:2]
    positions = math.prod(a.shape[2:])
    compiled = _compiled(a.ndim - 2, a.size)
    if compiled is not None:
        swapped = np.empty((k, n, positions), dtype=a.dtype)
        compiled.swap_leading(np.ascontiguousarray(a).reshape(n, k, positions), swapped)
        return swapped.reshape(groups, k // groups, n * positions)
    a = a.reshape(n, groups, k // groups, positions)
    return a.transpose(1, 2, 0, 3).reshape(groups, k // groups, n * positions)


def _batch_first(a, n, out):
    """(G, K/G, N·prod(out)) -> (N, K, *out)."""
    g, kg = a.shape[:2]
    compiled = _compiled(len(out), a.size)
    if compiled is not None:
        y = np.empty((n, g * kg, math.prod(out)), dtype=a.dtype)
        compiled.swap_leading(a.reshape(g * kg, n, math.prod(out)), y)
        return y.reshape((n, g * kg) + tuple(out))
    a = a.reshape(g, kg, n, math.prod(out)).transpose(2, 0, 1, 3)
    return a.reshape((n, g * kg) + tuple(out))


def forward(xp, w, stride, dilation, out, groups):
    k, kernel = w.shape[0], w.shape[2:]
    cols = _columns(xp, kernel, stride, dilation, out, groups)
    y = w.reshape(groups, k // groups, cols.shape[1]) @ cols
    return _batch_first(y, xp.shape[0], out)


def backward_input(dy, w, spatial, stride, dilation, groups):
    n, k = dy.shape[:2]
    kernel, out = w.shape[2:], dy.shape[2:]
    c = w.shape[1] * groups
    taps = (c // groups) * math.prod(kernel)
    dcols = np.swapaxes(w.reshape(groups, k // groups, taps), 1, 2) @ _batch_last(dy, groups)
    compiled = _compiled(len(kernel), dcols.size)
    if compiled is not None:
        dx = np.empty((n, c) + tuple(spatial), dtype=dcols.dtype)
        dcols = dcols.reshape((c,) + tuple(kernel) + (n,) + tuple(out))
        dx_3d, dcols_3d, _, stride_3d, dilation_3d = _as_3d(dx, dcols, kernel, stride, dilation)
        compiled.col2im3d(dcols_3d, *stride_3d, *dilation_3d, dx_3d)
        return dx
    # (G, C/G, *k, N, *out) viewed as (N, C, *k, *out) for col2im
    dcols = dcols.reshape((groups, c // groups) + tuple(kernel) + (n,) + tuple(out))
    nk = len(kernel)
    order = (2 + nk, 0, 1) + tuple(range(2, 2 + nk)) + tuple(range(3 + nk, 3 + 2 * nk))
    dcols = dcols.transpose(order).reshape((n, c) + tuple(kernel) + tuple(out))
    return col2im(dcols, spatial, stride, dilation)


def backward_weight(xp, dy, kernel, stride, dilation, groups):
    k, out = dy.shape[1], dy.shape[2:]
    cols = _columns(xp, kernel, stride, dilation, out, groups)
    dw = _batch_last(dy, groups) @ np.swapaxes(cols, 1, 2)  # (G, K/G, C/G·prod(k))
    return dw.reshape((k, xp.shape[1] // groups) + tuple(kernel))
