"""Stride-1 convolution as a sum of shifted matrix products, with no im2col copy.

Flatten each padded image's spatial dims into one axis of length L. For stride 1, kernel
offset ``a`` reads the input at flat position ``p + off(a)`` for output flat position ``p``,
where ``off(a) = Σ_j a_j·d_j·pitch_j`` (pitch = the padded row length, plane size, ...). If the
output is computed on the padded grid too — a few extra "wrap-around" columns per row, thrown
away at the end — then every offset's input is one contiguous slice of the flat image:

    y_ext[n, k, p] = Σ_a Σ_c w[k, c, a] · x_flat[n, c, p + off(a)]
                   = Σ_a  (W_a @ x_flat[n, :, off(a) : off(a) + P])[k, p]

a (K, C) @ (C, P) product per offset. Laying the whole batch out channel-major, (C, N·L), makes
each offset ONE large product over every image at once (outputs straddling two images are
dropped like the wrap-around columns): few, large BLAS calls instead of one per image and
offset. The wasted columns cost (W + pad)/W extra work; skipping the im2col copy saves more.

Both gradients use the same trick (``backward_input`` is docs/concepts.md §13's formula: the full
correlation of dL/dy with the flipped kernel; ``backward_weight`` sums ``dy_ext @ x_sliceᵀ``).
"""
import itertools
import math

import numpy as np

from ... import tuning
from ..padding import crop, zero_pad


def applies(geometry, pass_name):
    return geometry.stride_one(pass_name)


def claims(geometry, pass_name):
    """Whether shift takes this pass before the registry's order is asked
    (``registry.heuristic``): the input gradient of a 1×1 float32 layer on a single-channel map
    (groups 1), dx[n] = wᵀ·dy[n], one (1 × K) by (K × P) product per image on dy as it is,
    where the row correlation, which the order asks first, reads dy once per output channel.
    2 threads, 20 layers of 1 → 16 and 256 channels (1-D to 3-D, 2 and 32 images): 0.18 to
    0.83 of the row correlation's time on AVX-512 in two runs (32 × 1 → 256 on 56 × 56 maps:
    8.40 → 2.81 ms), 0.14 to 0.54 on AVX2 (BENCHMARKS.md, "1×1 input gradients of
    single-channel maps on shift")."""
    g = geometry
    return pass_name == "input" and g.taps == 1 and g.in_channels == 1 and g.is_float32


def wins(geometry, pass_name):
    """The shift products have C/G as their inner dimension: too thin for BLAS below a few
    channels, where the im2col columns (C/G · prod(kernel) rows) make a better product. On
    small maps the products' wasted border columns and accumulate passes cost more than
    im2col's copy (autotune picked gemm for 14×14 and 7×7 layers, shift for 32×32). 1×1
    kernels need no shifting at all: the shift path is then one product per image."""
    g = geometry
    large_map = math.prod(g.out) >= tuning.value("shift_min_map") or g.taps == 1
    return g.in_channels // g.groups >= tuning.value("shift_min_group_channels") and large_map


def forward_pass(xp, w, g):
    return forward(xp, w, g.dilation, g.out, g.groups)


def input_pass(dy, w, g):
    return crop(backward_input(dy, w, g.padded, g.dilation, g.groups), g.pads)


def weight_pass(xp, dy, g):
    return backward_weight(xp, dy, g.kernel, g.dilation, g.groups)


def flat_pitches(spatial):
    """Flat-index step of each spatial dim: (prod(spatial[1:]), ..., 1)."""
    return tuple(math.prod(spatial[j + 1:]) for j in range(len(spatial)))


def _geometry(spatial, kernel, dilation, out):
    pitch = flat_pitches(spatial)
    # From the first to the last *valid* output position, on the padded grid.
    length = sum((o - 1) * p for o, p in zip(out, pitch)) + 1
    offsets = [sum(a * d * p for a, d, p in zip(offset, dilation, pitch))
               for offset in itertools.product(*(range(k) for k in kernel))]
    return pitch, length, offsets


def _is_pointwise(kernel, spatial, out):
    return math.prod(kernel) == 1 and tuple(spatial) == tuple(out)


def _channels_major(xp, groups, tail):
    """(N, C, *spatial) -> (G, C/G, N·L + tail): every image's flattened plane side by side per
    channel, then ``tail`` zeros so the last image's shifted slices stay in bounds."""
    n, c = xp.shape[:2]
    size = math.prod(xp.shape[2:])
    flat = np.empty((c, n * size + tail), dtype=xp.dtype)
    flat[:, :n * size].reshape(c, n, size)[...] = xp.reshape(n, c, size).transpose(1, 0, 2)
    flat[:, n * size:] = 0
    return flat.reshape(groups, c // groups, -1)


def _operands(xp, kernel, dilation, out, groups):
    """The input matrix and the offsets the products run over.

    Returns (x_mat (G, R, N·L + tail), offsets, fold) where R = C/G·fold and each row (c, b)
    of x_mat is channel c shifted by b·dilation[-1]: kernel offsets (…, b) then share one
    product, and ``offsets`` lists only the remaining (outer) ones.
    """
    spatial = xp.shape[2:]
    _, _, offsets = _geometry(spatial, kernel, dilation, out)
    cg, last = xp.shape[1] // groups, kernel[-1]
    # Few channels per group make each product thin and leave many accumulate passes; below
    # shift_fold_max_rows (channels × last kernel size) rows, the last kernel dim's offsets are
    # folded into the channel axis (a k-fold partial im2col): k× fewer, k× deeper products.
    fold = last if 1 < last and cg * last <= tuning.value("shift_fold_max_rows") else 1
    x_flat = _channels_major(xp, groups, max(offsets))
    if fold == 1:
        return x_flat, offsets, 1
    outer, step = offsets[::fold], dilation[-1]  # the last kernel dim varies fastest
    width = x_flat.shape[-1] - (fold - 1) * step
    x_mat = np.empty((groups, cg, fold, width), dtype=xp.dtype)
    for b in range(fold):
        x_mat[:, :, b] = x_flat[:, :, b * step:b * step + width]
    return x_mat.reshape(groups, cg * fold, width), outer, fold


def _batch_first(y, n, spatial, out):
    """(K, N·L) outputs on the padded grids -> (N, K, *out), keeping the valid positions."""
    k = y.shape[0]
    grid = y.reshape((k, n) + tuple(spatial))
    valid = grid[(slice(None), slice(None)) + tuple(slice(0, o) for o in out)]
    return np.ascontiguousarray(valid.transpose((1, 0) + tuple(range(2, grid.ndim))))


def forward(xp, w, dilation, out, groups):
    """xp (N, C, *spatial) padded, w (K, C/G, *kernel) -> y (N, K, *out), stride 1.

    The whole batch is one row of planes, so each kernel offset is a single large product
    W_a (K, C) @ X[:, off(a) : off(a) + N·L]: outputs that straddle two images are computed
    and dropped, like the wrap-around columns of each row.
    """
    n, c, spatial = xp.shape[0], xp.shape[1], xp.shape[2:]
    k, kernel = w.shape[0], w.shape[2:]
    if _is_pointwise(kernel, spatial, out):  # 1×1: one product per image, no layout change
        y = w.reshape(groups, k // groups, c // groups) @ xp.reshape(n, groups, c // groups, -1)
        return y.reshape((n, k) + tuple(out))
    total = n * math.prod(spatial)
    x_mat, offsets, fold = _operands(xp, kernel, dilation, out, groups)
    # (K, C/G, …outer, fold) -> (G, K/G, C/G·fold, outer): rows match x_mat's (c, b) rows
    taps = w.reshape(groups, k // groups, c // groups, len(offsets), fold).transpose(0, 1, 2, 4, 3)
    taps = np.ascontiguousarray(taps).reshape(groups, k // groups, -1, len(offsets))
    y = np.matmul(taps[:, :, :, 0], x_mat[:, :, offsets[0]:offsets[0] + total])
    term = np.empty_like(y)
    for t in range(1, len(offsets)):
        off = offsets[t]
        np.matmul(taps[:, :, :, t], x_mat[:, :, off:off + total], out=term)
        y += term
    return _batch_first(y.reshape(k, total), n, spatial, out)


def backward_input(dy, w, spatial, dilation, groups):
    """dL/dx = full correlation of dL/dy with the flipped kernel (channels swapped), stride 1."""
    k, cg, kernel = w.shape[0], w.shape[1], w.shape[2:]
    if _is_pointwise(kernel, spatial, dy.shape[2:]):  # 1×1: wᵀ per image, no copies
        n = dy.shape[0]
        dx = np.swapaxes(w.reshape(groups, k // groups, cg), 1, 2) @ \
            dy.reshape(n, groups, k // groups, -1)
        return dx.reshape((n, groups * cg) + tuple(spatial))
    flipped = w[(slice(None), slice(None)) + (slice(None, None, -1),) * len(kernel)]
    # (G, K/G, C/G, *k) -> (G, C/G, K/G, *k): the transposed convolution's weight.
    flipped = flipped.reshape((groups, k // groups, cg) + tuple(kernel)).swapaxes(1, 2)
    flipped = np.ascontiguousarray(flipped).reshape((groups * cg, k // groups) + tuple(kernel))
    reach = [(d * (kk - 1), d * (kk - 1)) for kk, d in zip(kernel, dilation)]
    dy_full = zero_pad(dy, reach)
    return forward(dy_full, flipped, dilation, tuple(spatial), groups)


def backward_weight(xp, dy, kernel, dilation, groups):
    """dL/dw[k, c, a] = Σ over the batch's grid positions p of dy_ext[k, p] ·
    x_flat[c, p + off(a)]."""
    n, c, spatial = xp.shape[0], xp.shape[1], xp.shape[2:]
    k, out = dy.shape[1], dy.shape[2:]
    if _is_pointwise(kernel, spatial, out):
        return _pointwise_weight(xp, dy, groups).reshape((k, c // groups) + tuple(kernel))
    total = n * math.prod(spatial)
    x_mat, offsets, fold = _operands(xp, kernel, dilation, out, groups)
    # dy on the padded grids, channel-major, zeros at the dropped positions
    grid = np.zeros((k, n) + tuple(spatial), dtype=dy.dtype)
    grid[(slice(None), slice(None)) + tuple(slice(0, o) for o in out)] = \
        dy.transpose((1, 0) + tuple(range(2, dy.ndim)))
    dy_ext = grid.reshape(groups, k // groups, total)
    dw = np.empty((groups, k // groups, x_mat.shape[1], len(offsets)),
                  dtype=np.result_type(xp, dy))
    for t, off in enumerate(offsets):
        dw[:, :, :, t] = dy_ext @ np.swapaxes(x_mat[:, :, off:off + total], 1, 2)
    # (G, K/G, C/G·fold, outer) -> (K, C/G, *kernel) with the folded dim last again
    dw = dw.reshape(groups, k // groups, c // groups, fold, len(offsets)).transpose(0, 1, 2, 4, 3)
    return np.ascontiguousarray(dw).reshape((k, c // groups) + tuple(kernel))


def _pointwise_weight(xp, dy, groups):
    """A 1×1 layer's dw (G, K/G, C/G) = Σ_n dy[n] xp[n]ᵀ per group: N products of a
    (K/G, P) by a (P, C/G) block and a sum of their N partial results, or, where those
    partials outweigh the images themselves (K·C > P·(K + C) per group: deep layers on small
    maps), one product over the images laid side by side channel-major, which costs a copy
    of dy and x instead (320 → 1280 channels on eight 7 × 7 maps, AVX-512: 1.58 against 2.76
    ms; 256 → 64 on thirty-two 16 × 16, which the rule keeps batched: 2.76 against 2.14)."""
    n, c = xp.shape[:2]
    k = dy.shape[1]
    positions = math.prod(dy.shape[2:])
    cg, kg = c // groups, k // groups
    if kg * cg <= positions * (kg + cg):
        x_g = xp.reshape(n, groups, cg, positions)
        return (dy.reshape(n, groups, kg, positions) @ np.swapaxes(x_g, 2, 3)).sum(axis=0)
    dy_major = _channels_major(dy.reshape(n, k, positions), groups, 0)
    x_major = _channels_major(xp.reshape(n, c, positions), groups, 0)
    return dy_major @ np.swapaxes(x_major, 1, 2)
