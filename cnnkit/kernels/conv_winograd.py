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
multiple of direct summation's (measured in tests/test_conv_winograd.py).
"""
import numba
import numpy as np

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
_JIT = dict(parallel=True, cache=True)


@numba.njit(**_JIT)
def _input_tiles(xp, th, tw, v):
    """v[ξ·4+ν, c, n·T + t] = (Bᵀ d B)[ξ, ν] for the 4×4 tile d at (2·ti, 2·tj)."""
    n_images, channels = xp.shape[0], xp.shape[1]
    tiles = th * tw
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        d = np.empty((4, 4), dtype=xp.dtype)
        t = np.empty((4, 4), dtype=xp.dtype)
        plane = xp[n, c]
        for ti in range(th):
            for tj in range(tw):
                for i in range(4):
                    for j in range(4):
                        d[i, j] = plane[2 * ti + i, 2 * tj + j]
                for j in range(4):  # Bᵀ d
                    t[0, j] = d[0, j] - d[2, j]
                    t[1, j] = d[1, j] + d[2, j]
                    t[2, j] = d[2, j] - d[1, j]
                    t[3, j] = d[1, j] - d[3, j]
                column = n * tiles + ti * tw + tj
                for i in range(4):  # (Bᵀ d) B
                    v[4 * i + 0, c, column] = t[i, 0] - t[i, 2]
                    v[4 * i + 1, c, column] = t[i, 1] + t[i, 2]
                    v[4 * i + 2, c, column] = t[i, 2] - t[i, 1]
                    v[4 * i + 3, c, column] = t[i, 1] - t[i, 3]


@numba.njit(**_JIT)
def _output_tiles(m, th, tw, out):
    """out[n, k, 2·ti + r, 2·tj + s] = (Aᵀ M A)[r, s] for each tile (clipped at the border)."""
    n_images, channels, oh, ow = out.shape
    tiles = th * tw
    for task in numba.prange(n_images * channels):
        n, k = task // channels, task % channels
        s0 = np.empty(4, dtype=m.dtype)
        s1 = np.empty(4, dtype=m.dtype)
        for ti in range(th):
            for tj in range(tw):
                column = n * tiles + ti * tw + tj
                for j in range(4):  # Aᵀ M
                    m0, m1 = m[j, k, column], m[4 + j, k, column]
                    m2, m3 = m[8 + j, k, column], m[12 + j, k, column]
                    s0[j] = m0 + m1 + m2
                    s1[j] = m1 - m2 - m3
                r, q = 2 * ti, 2 * tj
                out[n, k, r, q] = s0[0] + s0[1] + s0[2]
                if q + 1 < ow:
                    out[n, k, r, q + 1] = s0[1] - s0[2] - s0[3]
                if r + 1 < oh:
                    out[n, k, r + 1, q] = s1[0] + s1[1] + s1[2]
                    if q + 1 < ow:
                        out[n, k, r + 1, q + 1] = s1[1] - s1[2] - s1[3]


@numba.njit(**_JIT)
def _output_tiles_transposed(dy, th, tw, dm):
    """dm[ξ·4+ν, k, n·T + t] = (A dY Aᵀ)[ξ, ν]: the adjoint of ``_output_tiles``."""
    n_images, channels, oh, ow = dy.shape
    tiles = th * tw
    for task in numba.prange(n_images * channels):
        n, k = task // channels, task % channels
        a = np.empty((4, 2), dtype=dm.dtype)
        for ti in range(th):
            for tj in range(tw):
                r, q = 2 * ti, 2 * tj
                zero = dy[n, k, r, q] * 0
                g00 = dy[n, k, r, q]
                g01 = dy[n, k, r, q + 1] if q + 1 < ow else zero
                g10 = dy[n, k, r + 1, q] if r + 1 < oh else zero
                g11 = dy[n, k, r + 1, q + 1] if (r + 1 < oh and q + 1 < ow) else zero
                # A dY, with A (4×2) = rows (1, 0), (1, 1), (1, −1), (0, −1)
                a[0, 0], a[0, 1] = g00, g01
                a[1, 0], a[1, 1] = g00 + g10, g01 + g11
                a[2, 0], a[2, 1] = g00 - g10, g01 - g11
                a[3, 0], a[3, 1] = -g10, -g11
                column = n * tiles + ti * tw + tj
                for i in range(4):  # (A dY) Aᵀ
                    dm[4 * i + 0, k, column] = a[i, 0]
                    dm[4 * i + 1, k, column] = a[i, 0] + a[i, 1]
                    dm[4 * i + 2, k, column] = a[i, 0] - a[i, 1]
                    dm[4 * i + 3, k, column] = -a[i, 1]


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
    v = np.empty((16, xp.shape[1], xp.shape[0] * th * tw), dtype=xp.dtype)
    _input_tiles(_extend(xp, th, tw), th, tw, v)
    return v


def _transformed_kernel(w):
    """U[ξ·4+ν, k, c] = (G g Gᵀ)[ξ, ν] for the kernel g = w[k, c]."""
    u = np.einsum("xa,kcab,yb->xykc", G, w.astype(np.float64), G)
    return u.reshape(16, w.shape[0], w.shape[1]).astype(w.dtype)


def forward(xp, w, out):
    """xp (N, C, Hp, Wp) padded, w (K, C, 3, 3) -> y (N, K, *out), stride 1, no groups."""
    th, tw = _tiles(out)
    m = _transformed_kernel(w) @ _transformed_input(xp, out)  # (16, K, N·T)
    y = np.empty((xp.shape[0], w.shape[0]) + tuple(out), dtype=np.result_type(xp, w))
    _output_tiles(m, th, tw, y)
    return y


def backward_input(dy, w, spatial):
    """dL/dx: correlation of the zero-padded dy with the flipped, channel-transposed kernel."""
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    dy_full = np.pad(dy, ((0, 0), (0, 0), (2, 2), (2, 2)))
    return forward(dy_full, flipped, tuple(spatial))


def backward_weight(xp, dy):
    """dL/dw (K, C, 3, 3) = Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G, channel pairs by products."""
    out = dy.shape[2:]
    th, tw = _tiles(out)
    v = _transformed_input(xp, out)  # (16, C, N·T)
    dm = np.empty((16, dy.shape[1], dy.shape[0] * th * tw), dtype=dy.dtype)
    _output_tiles_transposed(np.ascontiguousarray(dy), th, tw, dm)
    du = dm @ np.swapaxes(v, 1, 2)  # (16, K, C)
    du = du.reshape(4, 4, dy.shape[1], xp.shape[1]).astype(np.float64)
    dw = np.einsum("xa,xykc,yb->kcab", G, du, G)
    return dw.astype(np.result_type(xp, dy))
