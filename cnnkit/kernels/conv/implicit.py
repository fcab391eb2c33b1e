"""Convolution as an implicit GEMM: the product reads the padded input in place, no im2col.

float32, groups = 1, any number of spatial dims, stride and dilation (a strided input gradient
splits into stride-1 ones, one per phase: ``backward_input_strided``). The compiled kernels and
their index algebra are in ``implicit_gemm_numba``; here are the tables they read:

    offset[(c, a)] = c·plane + Σ_j a_j·d_j·pitch_j        where tap (c, a) reads, from a corner
    corner[(n, i)] = n·image + Σ_j i_j·s_j·pitch_j        where output position (n, i) starts

(flat element indices into the padded input: pitch = row lengths, plane = one channel's size).
"""
import itertools
import math

import numpy as np

import numba

from ... import tuning
from .. import implicit_gemm_numba as compiled
from ..transpose_numba import planes_to_rows
from .shift import flat_pitches
from ..padding import crop, zero_pad


def applies(geometry, pass_name):
    """float32, groups 1; a stride-1 input gradient needs the exact stride-1 geometry."""
    g = geometry
    return g.batch > 0 and g.is_float32 and g.groups == 1 and math.prod(g.out) > 0 and (
        pass_name != "input" or not g.unit_stride or g.exact)


def wins(geometry, pass_name):
    """The implicit GEMM beat every other path on the benchmark's float32, groups-1 layers,
    except where its product is thin: the register tile's row of LANES·NV output channels
    (one input channel for an input gradient wastes all lanes but one) or fewer than
    ``implicit_min_taps`` terms per output (each tile is then mostly stores).
    Few output channels idle the lanes of the channels-last tile, not those of the planar
    one (``planar_wins``). Above ``implicit_max_kernel_taps`` an FFT may beat any direct sum."""
    g = geometry
    if g.taps > tuning.value("implicit_max_kernel_taps"):
        return False
    if pass_name == "forward":
        return g.in_channels * g.taps >= tuning.value("implicit_min_taps")
    if pass_name == "input":  # a product with C outputs and K·prod(kernel) terms
        # Strided: one product per phase, each with its own padded dy and a scatter into
        # every s-th cell, measured slower than im2col + col2im (res3x3_s2, one core: 21.4
        # against 18.9 ms on AVX2, 15.7 against 13.7 on AVX-512); autotune may still pick it.
        taps = g.out_channels * g.taps
        return g.unit_stride and taps >= tuning.value("implicit_min_taps") and (
            g.in_channels >= compiled.LANES or
            planar_wins(g.in_channels, taps))
    return True


def forward_pass(xp, w, g):
    return forward(xp, w, g.stride, g.dilation, g.out)


def input_pass(dy, w, g):
    if g.unit_stride:
        return backward_input(dy, w, g.padded, g.dilation, g.pads)
    return crop(backward_input_strided(dy, w, g.padded, g.stride, g.dilation), g.pads)


def weight_pass(xp, dy, g):
    return backward_weight(xp, dy, g.kernel, g.stride, g.dilation)


def weight_from(source, dy, g, with_bias=False):
    """The weight gradient from a ``PaddedInput``, with the bias gradient summed from dy as it
    is transposed to channels-last. Returns (dw, db or None)."""
    result = backward_weight(source.padded(), dy, g.kernel, g.stride, g.dilation, with_bias)
    return result if with_bias else (result, None)


def _offsets(x_shape, kernel, dilation):
    """offset per (c, a) tap, c-major then the kernel's dims in order (w's layout)."""
    channel, *pitch = flat_pitches(x_shape[1:])
    table = np.arange(x_shape[1], dtype=np.int64) * channel
    for k, d, p in zip(kernel, dilation, pitch):
        table = np.add.outer(table, np.arange(k, dtype=np.int64) * (d * p)).reshape(-1)
    return table


def _corners(x_shape, out, stride):
    """corner per output position (n, i), image-major then the output's dims in order."""
    image, pitch = math.prod(x_shape[1:]), flat_pitches(x_shape[2:])
    table = np.arange(x_shape[0], dtype=np.int64) * image
    for o, s, p in zip(out, stride, pitch):
        table = np.add.outer(table, np.arange(o, dtype=np.int64) * (s * p)).reshape(-1)
    return table


def planar_wins(out_channels, taps):
    """Whether the planar (channels-first) orientation beats the channels-last one, for a
    stride-1 product with ``taps`` = C·prod(kernel) terms per output. Channels-last puts the
    output channels on the lanes, so below one vector of them (LANES: 16 on AVX-512, 8 on
    AVX2) lanes idle, and it ends in a transpose of y, which outweighs a thin, wide product
    (at most ``implicit_planar_max_terms_per_output`` terms per output channel). Measured on
    both ISAs by ``python -m cnnkit.bench.orientation`` (one core: AVX-512, 8 outputs of
    432 terms 0.96 against 1.58 ms; 256 of 64 terms 2.32 against 3.76, on AVX2 4.26 against
    5.08; dense products such as 32 outputs of 576 terms stay channels-last, 1.83 against
    2.56 ms)."""
    return out_channels < compiled.LANES or \
        taps <= tuning.value("implicit_planar_max_terms_per_output") * out_channels


def forward(xp, w, stride, dilation, out):
    """xp (N, C, *padded) float32, w (K, C, *kernel) -> y (N, K, *out)."""
    n, k = xp.shape[0], w.shape[0]
    if all(s == 1 for s in stride) and planar_wins(k, math.prod(w.shape[1:])):
        return _forward_planar(xp, w, dilation, out)
    rows, vectors, k_padded = compiled.tile(k)
    taps = math.prod(w.shape[1:])
    wt = np.zeros((taps, k_padded), dtype=np.float32)
    wt[:, :k] = w.reshape(k, taps).T
    corner = _corners(xp.shape, out, stride)
    y_last = np.empty((corner.size + rows, k_padded), dtype=np.float32)
    y = np.empty((n, k, math.prod(out)), dtype=np.float32)
    compiled.ENTRY[vectors][0](np.ascontiguousarray(xp), wt,
                               _offsets(xp.shape, w.shape[2:], dilation), corner, y_last, y,
                               tuning.value("implicit_chunks_per_thread") *
                               numba.get_num_threads(), tuning.value("implicit_tap_block"))
    return y.reshape((n, k) + tuple(out))


def _forward_planar(xp, w, dilation, out):
    """Stride 1, channels-first: y on the padded input's flat grid (border columns computed
    and dropped, as in ``conv_shift``), one 64-position strip of 4 channels per tile."""
    n, c, spatial = xp.shape[0], xp.shape[1], xp.shape[2:]
    k, taps = w.shape[0], math.prod(w.shape[1:])
    plane, width = math.prod(spatial), compiled.LANES * compiled.PLANAR_VECTORS
    length = sum((o - 1) * p for o, p in zip(out, flat_pitches(spatial))) + 1
    rows_k = -(-k // compiled.PLANAR_ROWS) * compiled.PLANAR_ROWS
    w_rows = np.zeros((rows_k, taps), np.float32)
    w_rows[:k] = w.reshape(k, taps)
    offset = _offsets(xp.shape, w.shape[2:], dilation)
    y_grid = np.empty((n, rows_k, -(-plane // width) * width), np.float32)
    x_flat = np.ascontiguousarray(xp).reshape(-1)
    image = c * plane
    # The last image's last strip reads up to a tile width past the input: that image reads
    # from a copy with room to spare, the others read straight through into the next image.
    in_place = n if (n - 1) * image + y_grid.shape[2] + offset[-1] < x_flat.size else n - 1
    tap_block = tuning.value("implicit_tap_block")
    compiled.planar(x_flat, in_place, image, w_rows, offset, y_grid, length, tap_block)
    if in_place < n:
        last = np.zeros(image + y_grid.shape[2], np.float32)
        last[:image] = x_flat[in_place * image:]
        compiled.planar(last, 1, image, w_rows, offset, y_grid[in_place:], length, tap_block)
    grid = y_grid[:, :k, :plane].reshape((n, k) + tuple(spatial))
    return np.ascontiguousarray(grid[(slice(None), slice(None)) + tuple(slice(0, o) for o in out)])


def backward_input(dy, w, spatial, dilation, pads=None):
    """Stride 1: dL/dx is the forward kernel on dy padded by d·(k−1) (less the input's own
    padding, whose gradient is not wanted) with the flipped, channel-swapped kernel."""
    pads = pads or [(0, 0)] * len(spatial)
    kernel = w.shape[2:]
    reach = [d * (k - 1) for k, d in zip(kernel, dilation)]
    dy_pads = [(r - lo, r - hi) for r, (lo, hi) in zip(reach, pads)]
    crop = [(0, 0)] * len(spatial)
    if any(lo < 0 or hi < 0 for lo, hi in dy_pads):  # padding wider than the kernel's reach
        dy_pads, crop = [(r, r) for r in reach], pads
    dyp = zero_pad(dy, dy_pads)
    flipped = np.ascontiguousarray(
        np.swapaxes(w, 0, 1)[(slice(None), slice(None)) + (slice(None, None, -1),) * len(kernel)])
    interior = crop == [(0, 0)] * len(spatial)
    out = [s - lo - hi for s, (lo, hi) in zip(spatial, pads)] if interior else list(spatial)
    dx = forward(dyp, flipped, (1,) * len(kernel), dilation, out)
    index = tuple(slice(lo, dx.shape[2 + j] - hi) for j, (lo, hi) in enumerate(crop))
    return dx[(slice(None), slice(None)) + index]


def _phase(n, k, s, d, r):
    """One dim of phase r of a stride-s gradient: input cells j = q·s + r receive the taps a
    with a·d ≡ r (mod s), from dy[q − e_a], e_a = (a·d − r)/s. Those taps are every
    (s/g)-th from the first a₀ (g = gcd(d, s)), with e spaced d/g apart: a stride-1 gradient
    with the sub-kernel w[a₀::s/g] at dilation d/g, shifted by e₀. Returns (taps slice,
    sub-dilation, e₀, cells q), or None when no tap reaches the phase."""
    g = math.gcd(d, s)
    first = next((a for a in range(k) if a * d % s == r), None)
    if first is None:
        return None
    return slice(first, k, s // g), d // g, (first * d - r) // s, -(-(n - r) // s)


def backward_input_strided(dy, w, spatial, stride, dilation):
    """dL/dx of a strided convolution, (N, C, *spatial) with ``spatial`` the padded input's:

        dx[j = q·s + r] = Σ_k Σ_{a: a·d ≡ r (mod s)} dy[q − e_a] · w[k, :, a]

    per phase r (a residue per dim), a stride-1 input gradient with a sub-kernel (``_phase``),
    computed by ``backward_input`` and written into every s-th cell. The phases together
    make as many multiply-adds as the direct sum, all on the compiled kernel (im2col's GEMM
    writes prod(kernel) columns per output and col2im adds them back)."""
    n, c = dy.shape[0], w.shape[1]
    dx = np.zeros((n, c) + tuple(spatial), np.float32)
    phases = [[(r, _phase(length, k, s, d, r)) for r in range(s)]
              for length, k, s, d in zip(spatial, w.shape[2:], stride, dilation)]
    for combination in itertools.product(*phases):
        if any(p is None for _, p in combination):
            continue  # no tap reaches these cells: their gradient stays zero
        taps = tuple(p[0] for _, p in combination)
        sub = np.ascontiguousarray(w[(slice(None), slice(None)) + taps])
        sub_dilation = tuple(p[1] for _, p in combination)
        full = tuple(o + d * (k - 1) for o, d, k in zip(dy.shape[2:], sub_dilation,
                                                         sub.shape[2:]))
        part = backward_input(dy, sub, full, sub_dilation)
        target, source = [slice(None)] * 2, [slice(None)] * 2
        for (r, (_, _, e0, cells)), s, length in zip(combination, stride, full):
            count = max(0, min(length, cells - e0))  # cells q = e0 + t, t < len(part)
            target.append(slice(r + e0 * s, r + (e0 + count) * s, s))
            source.append(slice(0, count))
        dx[tuple(target)] = part[tuple(source)]
    return dx


def backward_weight(xp, dy, kernel, stride, dilation, with_bias=False):
    """xp (N, C, *padded) float32, dy (N, K, *out) -> dw (K, C, *kernel); with ``with_bias``
    the pair (dw, db), db summed from dy as it is transposed."""
    n, k = dy.shape[:2]
    rows, vectors, k_padded = compiled.tile(k)
    positions = math.prod(dy.shape[2:])
    dy_last = np.empty((n * positions, k_padded), dtype=np.float32)
    db = planes_to_rows(np.ascontiguousarray(dy).reshape(n, k, positions), dy_last, with_bias)
    offset = _offsets(xp.shape, kernel, dilation)
    # A fixed number of position shares, not one per thread: the sums then come out the same,
    # bit for bit, whatever the thread count (a run resumed on another machine, or by a
    # process with other thread settings, continues exactly).
    shares = max(1, min(tuning.value("implicit_weight_shares"), -(-dy_last.shape[0] // 128)))
    partial = np.empty((shares, offset.size + rows, k_padded), np.float32)
    compiled.ENTRY[vectors][1](np.ascontiguousarray(xp), dy_last, offset,
                               _corners(xp.shape, dy.shape[2:], stride), partial,
                               tuning.value("implicit_position_block"))
    dwt = partial.sum(axis=0)[:offset.size, :k]
    dw = np.ascontiguousarray(dwt.T).reshape((k, xp.shape[1]) + tuple(kernel))
    return (dw, db.astype(np.float32)) if with_bias else dw
