"""Winograd F(2×2, 3×3) convolution for 3×3, stride-1 layers (Lavin & Gray, 2015).

A 2×2 block of outputs of a 3×3 correlation needs 36 multiplies done directly; Winograd's
minimal filtering gets it with 16, by moving to a transformed space where the correlation of a
4×4 input tile d with a 3×3 kernel g is an elementwise product:

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

    Bᵀ = [1  0 −1  0]    G = [ 1    0    0 ]    Aᵀ = [1  1  1  0]
         [0  1  1  0]        [ ½    ½    ½ ]         [0  1 −1 −1]
         [0 −1  1  0]        [ ½   −½    ½ ]
         [0  1  0 −1]        [ 0    0    1 ]

Summed over input channels, each of the 16 transformed positions (ξ, ν) is one matrix product
over all tiles of the batch:  M[ξν] = U[ξν] (K × C) @ V[ξν] (C × tiles) — 2.25× fewer
multiply-adds than im2col's product. The tile transforms are compiled (Numba) passes.

Gradients use the same machinery:
  * dL/dx: for stride 1 the full correlation of dL/dy with the flipped, channel-transposed
    kernel — another 3×3 stride-1 convolution, so Winograd again;
  * dL/dw: the transpose of the forward chain, dL/dU[ξν] = dM[ξν] @ V[ξν]ᵀ with
    dM = A dY Aᵀ per tile, then dL/dg = Gᵀ (dL/dU) G.
The transforms' coefficients are 0, ±1 and ±½, so the float32 error stays within a small
multiple of direct summation's (measured in tests/test_conv_algorithms.py).
"""
import math

import numba
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ... import tuning
from ..padding import crop, zero_pad

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
_JIT = dict(parallel=True, cache=True)


# Memory layout, measured: the 16 transformed matrices of a stack are the 16 streams each
# transform reads or writes at once. Packed back to back, their distance is a multiple of
# 4 KiB for the usual sizes (C·N·T·4 bytes), so all 16 map to the same L1 cache sets and evict
# each other: the input transform ran 4–6× slower than with each matrix shifted by one cache
# line (``_stack``). The tile code is scalar, one task per channel with the images inside, so
# each of the 16 rows v[ξ, c] or m[ξ, k] is walked front to back.
@numba.njit(**_JIT)
def _input_tiles(xp, th, tw, v):
    """v[ξ·4+ν, c, n·T + t] = (Bᵀ d B)[ξ, ν] for the 4×4 tile d at (2·ti, 2·tj)."""
    n_images, channels = xp.shape[0], xp.shape[1]
    tiles = th * tw
    for c in numba.prange(channels):
        for n in range(n_images):
            x = xp[n, c]
            for ti in range(th):
                r = 2 * ti
                for tj in range(tw):
                    q, col = 2 * tj, n * tiles + ti * tw + tj
                    # Bᵀ d: rows d0 − d2, d1 + d2, d2 − d1, d1 − d3, per tile column j
                    t00, t01 = x[r, q] - x[r + 2, q], x[r, q + 1] - x[r + 2, q + 1]
                    t02, t03 = x[r, q + 2] - x[r + 2, q + 2], x[r, q + 3] - x[r + 2, q + 3]
                    t10, t11 = x[r + 1, q] + x[r + 2, q], x[r + 1, q + 1] + x[r + 2, q + 1]
                    t12 = x[r + 1, q + 2] + x[r + 2, q + 2]
                    t13 = x[r + 1, q + 3] + x[r + 2, q + 3]
                    t20, t21 = x[r + 2, q] - x[r + 1, q], x[r + 2, q + 1] - x[r + 1, q + 1]
                    t22 = x[r + 2, q + 2] - x[r + 1, q + 2]
                    t23 = x[r + 2, q + 3] - x[r + 1, q + 3]
                    t30, t31 = x[r + 1, q] - x[r + 3, q], x[r + 1, q + 1] - x[r + 3, q + 1]
                    t32 = x[r + 1, q + 2] - x[r + 3, q + 2]
                    t33 = x[r + 1, q + 3] - x[r + 3, q + 3]
                    # (Bᵀ d) B: the same combination of columns, per row i
                    v[0, c, col], v[1, c, col] = t00 - t02, t01 + t02
                    v[2, c, col], v[3, c, col] = t02 - t01, t01 - t03
                    v[4, c, col], v[5, c, col] = t10 - t12, t11 + t12
                    v[6, c, col], v[7, c, col] = t12 - t11, t11 - t13
                    v[8, c, col], v[9, c, col] = t20 - t22, t21 + t22
                    v[10, c, col], v[11, c, col] = t22 - t21, t21 - t23
                    v[12, c, col], v[13, c, col] = t30 - t32, t31 + t32
                    v[14, c, col], v[15, c, col] = t32 - t31, t31 - t33


@numba.njit(**_JIT)
def _output_tiles(m, th, tw, out):
    """out[n, k, 2·ti + r, 2·tj + s] = (Aᵀ M A)[r, s] for each tile (clipped at the border)."""
    n_images, channels, oh, ow = out.shape
    tiles = th * tw
    for k in numba.prange(channels):
        for n in range(n_images):
            y = out[n, k]
            for ti in range(th):
                for tj in range(tw):
                    col = n * tiles + ti * tw + tj
                    # Aᵀ M: rows m0 + m1 + m2 and m1 − m2 − m3, per tile column j
                    s00 = m[0, k, col] + m[4, k, col] + m[8, k, col]
                    s01 = m[1, k, col] + m[5, k, col] + m[9, k, col]
                    s02 = m[2, k, col] + m[6, k, col] + m[10, k, col]
                    s03 = m[3, k, col] + m[7, k, col] + m[11, k, col]
                    s10 = m[4, k, col] - m[8, k, col] - m[12, k, col]
                    s11 = m[5, k, col] - m[9, k, col] - m[13, k, col]
                    s12 = m[6, k, col] - m[10, k, col] - m[14, k, col]
                    s13 = m[7, k, col] - m[11, k, col] - m[15, k, col]
                    r, q = 2 * ti, 2 * tj
                    y[r, q] = s00 + s01 + s02
                    if q + 1 < ow:
                        y[r, q + 1] = s01 - s02 - s03
                    if r + 1 < oh:
                        y[r + 1, q] = s10 + s11 + s12
                        if q + 1 < ow:
                            y[r + 1, q + 1] = s11 - s12 - s13


@numba.njit(**_JIT)
def _output_tiles_transposed(dy, th, tw, dm):
    """dm[ξ·4+ν, k, n·T + t] = (A dY Aᵀ)[ξ, ν]: the adjoint of ``_output_tiles``."""
    n_images, channels, oh, ow = dy.shape
    tiles = th * tw
    for k in numba.prange(channels):
        for n in range(n_images):
            g = dy[n, k]
            for ti in range(th):
                for tj in range(tw):
                    r, q = 2 * ti, 2 * tj
                    zero = g[r, q] * 0
                    g00 = g[r, q]
                    g01 = g[r, q + 1] if q + 1 < ow else zero
                    g10 = g[r + 1, q] if r + 1 < oh else zero
                    g11 = g[r + 1, q + 1] if (r + 1 < oh and q + 1 < ow) else zero
                    # A dY, with A (4×2) = rows (1, 0), (1, 1), (1, −1), (0, −1)
                    a00, a01 = g00, g01
                    a10, a11 = g00 + g10, g01 + g11
                    a20, a21 = g00 - g10, g01 - g11
                    a30, a31 = -g10, -g11
                    col = n * tiles + ti * tw + tj
                    # (A dY) Aᵀ
                    dm[0, k, col], dm[1, k, col] = a00, a00 + a01
                    dm[2, k, col], dm[3, k, col] = a00 - a01, -a01
                    dm[4, k, col], dm[5, k, col] = a10, a10 + a11
                    dm[6, k, col], dm[7, k, col] = a10 - a11, -a11
                    dm[8, k, col], dm[9, k, col] = a20, a20 + a21
                    dm[10, k, col], dm[11, k, col] = a20 - a21, -a21
                    dm[12, k, col], dm[13, k, col] = a30, a30 + a31
                    dm[14, k, col], dm[15, k, col] = a30 - a31, -a31


def _stack(rows, cols, dtype):
    """An empty (16, rows, cols) array whose 16 matrices start one cache line (64 bytes) past
    a multiple of each other's size, so their rows never alias in the cache (see above)."""
    itemsize = np.dtype(dtype).itemsize
    step = rows * cols + 64 // itemsize
    return as_strided(np.empty(16 * step, dtype=dtype), (16, rows, cols),
                      (step * itemsize, cols * itemsize, itemsize))


def _tiles(out):
    return (out[0] + 1) // 2, (out[1] + 1) // 2


def _extend(xp, th, tw):
    """Zero-extend the padded input so every 4×4 tile is inside (odd output sizes)."""
    need_h, need_w = 2 * th + 2, 2 * tw + 2
    if xp.shape[2] >= need_h and xp.shape[3] >= need_w:
        return np.ascontiguousarray(xp)
    return np.pad(xp, ((0, 0), (0, 0), (0, max(0, need_h - xp.shape[2])),
                       (0, max(0, need_w - xp.shape[3]))))


def _transformed_input(xp, out):
    th, tw = _tiles(out)
    v = _stack(xp.shape[1], xp.shape[0] * th * tw, xp.dtype)
    _input_tiles(_extend(xp, th, tw), th, tw, v)
    return v


def _transformed_kernel(w):
    """U[ξ·4+ν, k, c] = (G g Gᵀ)[ξ, ν] for the kernel g = w[k, c]."""
    # As two plain matrix products over all K·C kernels at once: einsum's generic loop (3 ms
    # for a 128×64 layer) and a broadcast matmul (K·C tiny products, 1.3 ms) were slower.
    k, c = w.shape[:2]
    right = w.astype(np.float64).reshape(k * c * 3, 3) @ G.T  # (g Gᵀ)[k, c, a, y]
    right = right.reshape(k * c, 3, 4).transpose(1, 0, 2).reshape(3, k * c * 4)
    u = (G @ right).reshape(4, k, c, 4)  # (G g Gᵀ)[x, k, c, y]
    return np.ascontiguousarray(u.transpose(0, 3, 1, 2).reshape(16, k, c), dtype=w.dtype)


def applies(geometry, pass_name):
    """3×3, stride 1, dilation 1, groups 1."""
    g = geometry
    return g.stride_one(pass_name) and g.kernel == (3, 3) and g.unit_dilation and g.groups == 1


def wins(geometry, pass_name):
    """Winograd's 16 products have C as their inner dimension (too thin below a few channels),
    and its 2×2 output tiles waste work on odd map sizes (a 7×7 map is computed as 8×8)."""
    g = geometry
    computed = math.prod(2 * ((o + 1) // 2) for o in g.out)
    return g.in_channels >= tuning.value("winograd_min_channels") and \
        computed <= tuning.value("winograd_max_waste") * math.prod(g.out)


def forward_pass(xp, w, g):
    return forward(xp, w, g.out)


def input_pass(dy, w, g):
    """Only the inside of pads of at most 2 (it pads dy less); wider pads are cropped."""
    if g.pads is None or all(0 <= lo <= 2 and 0 <= hi <= 2 for lo, hi in g.pads):
        return backward_input(dy, w, g.padded, g.pads)
    return crop(backward_input(dy, w, g.padded), g.pads)


def weight_pass(xp, dy, g):
    return backward_weight(xp, dy)


# Images are transformed and multiplied a group at a time, so that each (16, channels, tiles)
# stack stays well under glibc's 32 MiB mmap limit (``cnnkit._runtime``): larger arrays are
# fresh pages every call, and their page faults (with transparent huge pages, compaction
# stalls) made a 32×64×32×32 forward pass take 30–75 ms instead of 15 (the bound is
# ``winograd_stack_bytes`` in ``cnnkit.tuning``).
def _image_groups(n_images, channels, out, itemsize):
    th, tw = _tiles(out)
    per_image = 16 * channels * th * tw * itemsize
    step = max(1, min(n_images, tuning.value("winograd_stack_bytes") // per_image))
    return [slice(start, min(start + step, n_images)) for start in range(0, n_images, step)]


def forward(xp, w, out):
    """xp (N, C, Hp, Wp) padded, w (K, C, 3, 3) -> y (N, K, *out), stride 1, no groups."""
    th, tw = _tiles(out)
    u = _transformed_kernel(w)  # (16, K, C)
    dtype = np.result_type(xp, w)
    y = np.empty((xp.shape[0], w.shape[0]) + tuple(out), dtype=dtype)
    for images in _image_groups(xp.shape[0], max(w.shape[:2]), out, dtype.itemsize):
        v = _transformed_input(xp[images], out)  # (16, C, n·T)
        m = np.matmul(u, v, out=_stack(w.shape[0], v.shape[2], np.result_type(u, v)))
        _output_tiles(m, th, tw, y[images])
    return y


def backward_input(dy, w, spatial, pads=None):
    """dL/dx: correlation of the zero-padded dy with the flipped, channel-transposed kernel.

    dx[i] = Σ_a dy[i + lo − a]·w[a] for the input inside padding ``pads`` ((lo, hi) per dim,
    each ≤ 2; None: the whole padded ``spatial``), which is the correlation of dy, padded by
    2 − lo and 2 − hi, with the flipped kernel: no gradient is computed for padding cells.
    """
    pads = ((0, 0), (0, 0)) if pads is None else tuple(pads)
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    dy_full = zero_pad(dy, [(2 - lo, 2 - hi) for lo, hi in pads])
    inner = tuple(size - lo - hi for size, (lo, hi) in zip(spatial, pads))
    return forward(dy_full, flipped, inner)


def backward_weight(xp, dy):
    """dL/dw (K, C, 3, 3) = Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G, channel pairs by products."""
    out = dy.shape[2:]
    th, tw = _tiles(out)
    dtype = np.result_type(xp, dy)
    du = np.zeros((16, dy.shape[1], xp.shape[1]), dtype=dtype)
    for images in _image_groups(xp.shape[0], max(xp.shape[1], dy.shape[1]), out, dtype.itemsize):
        v = _transformed_input(xp[images], out)  # (16, C, n·T)
        dm = _stack(dy.shape[1], v.shape[2], dy.dtype)
        _output_tiles_transposed(np.ascontiguousarray(dy[images]), th, tw, dm)
        du += dm @ np.swapaxes(v, 1, 2)  # (16, K, C)
    # dL/dg = Gᵀ (dL/dU) G per (k, c), as two plain products like ``_transformed_kernel``
    k, c = dy.shape[1], xp.shape[1]
    left = G.T @ du.astype(np.float64).reshape(4, 4 * k * c)  # (3 a, 4 y · k · c)
    left = left.reshape(3, 4, k * c).transpose(2, 0, 1).reshape(k * c * 3, 4)
    return (left @ G).reshape(k, c, 3, 3).astype(dtype)
