"""The input gradient of a strided 1-D or 2-D convolution of few input channels as its windows'
columns, folded into dx (``kernels/window_fold_numba.py``).

A strided layer's input gradient per phase of the stride (``strided_input``) computes zeros
where it should not: ``subpixel``, for fewer input channels than a vector's lanes, puts the
S·C (phase, channel) pairs on the lanes, idling those past S·C, and gives every phase every
shift of the union of the phases' shifts, zero weights for those it lacks (an 11 × 11 kernel
at stride 4: 9 shifts per phase for an average of 121/16). The columns of each window,
col[(c, tap), p] = Σ_k w[k, c, tap] · dy[k, p], are exactly the gradient's terms, and their
sum over the windows that cover a cell is dx: each input cell takes its share of every
output whose window covered it (docs/concepts.md, section 13), as im2col + col2im computes it,
here a chunk of windows at a time in cache instead of all the columns written out.

``gain`` counts both ways' multiply-adds and ``wins`` takes the fold from
``implicit_fold_min_gain`` times fewer on: 2 threads, AVX-512, ms, folded against what ran
before, both through the dispatcher, the product on its own tile (``cpu.Tiles.fold``, 5 × 80)
(``python -m cnnkit.bench.window_fold``; BENCHMARKS.md, "Strided input gradients of few
channels: the windows folded" and "The windows' fold on a tile of its own"):

* AlexNet's first layer (8 images, 3 → 64, 224², 11 × 11 at stride 4; gain 1.23): 4.55
  against 4.74 (``subpixel``);
* ResNet's stem (4 images, 3 → 64, 224², 7 × 7 at stride 2; 1.34): 4.79 against 8.53;
* 3 × 3 at stride 2, 3 → 32 channels, 16 images of 224² (1.65): 3.83 against 9.93 (im2col);
* 4 × 4 at stride 4 (taps apart, 0.78: 16 taps take 20 rows of the tile): 7.42 against
  5.94, which it leaves to ``subpixel``.
"""
import functools
import math

import numba
import numpy as np

from ... import tuning
from .. import aligned, implicit_gemm_numba as compiled
from ..window_fold_numba import FOLD_ROWS, FOLD_VECTORS, fold_windows_with
from . import implicit, strided_input
from .geometry import ConvGeometry

# ``implicit_fold_min_gain`` that no layer reaches: the fold off (its range's top)
NEVER = float(1 << 20)


def applies(geometry):
    """A strided (not unit-stride) 1-D or 2-D float32 layer."""
    return len(geometry.kernel) in (1, 2) and not geometry.unit_stride and geometry.is_float32


def wins(geometry):
    """Fewer input channels per group than a vector's lanes (``strided_input.by_phases``
    fills the lanes from there on, and computes no zero terms), and ``gain`` at least
    ``implicit_fold_min_gain``."""
    g = geometry.per_group() if geometry.groups > 1 else geometry
    return _wins(g, g.pad_widths)  # kept per padding too, which geometries compare without


@tuning.kept
def _wins(g, pads):
    return (applies(g) and 0 < g.in_channels < compiled.LANES and g.out_channels > 0 and
            math.prod(g.out) > 0 and gain(g) >= tuning.value("implicit_fold_min_gain"))


def gain(geometry):
    """For one group: the multiply-adds of ``strided_input.subpixel``'s product over the
    fold's, each as its kernel runs them. The product: its S·C outputs rounded up to the
    channels-last tile's lanes times its positions, or, where it runs planar
    (``implicit.planar_wins``), rounded up to the planar tile's rows times the padded map's
    flat positions in whole strips of the planar tile. The fold: C times the kernel's taps
    rounded up to the rows of the fold's tile (``cpu.Tiles.fold``; ``fold_rows``), times K,
    times dy's positions in whole strips of that tile (``strip_width``). An estimate of the
    work each does: the threshold it is compared with was measured on layers (``python -m
    cnnkit.bench.window_fold``)."""
    g = geometry
    grid = strided_input.subpixel_grid(g)
    if implicit.planar_wins(grid.outputs, grid.terms, grid.padded, grid.out):
        rows = _rounded(grid.outputs, compiled.PLANAR_ROWS)
        positions = _rounded(implicit.planar_length(grid.padded, grid.out),
                             implicit.planar_strip_width())
    else:
        rows = _rounded(grid.outputs, compiled.LANES * compiled.tile(grid.outputs)[1])
        positions = math.prod(grid.out)
    fold = (g.in_channels * fold_rows(g.taps) * g.out_channels *
            _rounded(math.prod(g.out), strip_width()))
    return rows * grid.terms * positions / fold


def fold_rows(taps, tile_rows=FOLD_ROWS):
    """The product's rows per input channel: the kernel's taps rounded up to the tile's MR."""
    return _rounded(taps, tile_rows)


def strip_width(tile_vectors=FOLD_VECTORS):
    """dy's positions per strip of the product: the tile's NR."""
    return compiled.LANES * tile_vectors


def _rounded(count, step):
    return -(-count // step) * step


def input_gradient(dy, w, spatial, stride, dilation, pads=None, groups=1,
                   tile=(FOLD_ROWS, FOLD_VECTORS)):
    """dL/dx (N, C, *spatial less pads) of a strided 1-D or 2-D convolution: dy (N, K, *out),
    w (K, C/G, *kernel), ``spatial`` the padded input's shape. A grouped layer's groups one
    after another. Each task (an image, or with fewer images than twice the threads, an
    image's share of the channels) runs the product a chunk of positions at a time,
    ``implicit_fold_chunk_bytes`` of columns and dy's strips, and folds the chunk. ``tile``:
    the product's MR × NV, by default the table's (``cpu.Tiles.fold``; the bench's ``--tiles``
    times others).

    The shapes are checked first (the kernel reads and writes through addresses): ValueError
    naming dy or w when they do not fit each other and ``spatial``, TypeError or ValueError
    naming ``tile`` unless it is two positive integers."""
    pads = [tuple(p) for p in pads] if pads else [(0, 0)] * len(spatial)
    _check_tile(tile)
    _check(dy, w, spatial, stride, dilation, groups)
    if groups > 1:
        return strided_input.group_by_group(functools.partial(input_gradient, tile=tile), dy,
                                            w, spatial, stride, dilation, pads, groups)
    if dy.ndim == 3:  # 1-D: a map of one row
        dx = input_gradient(dy[:, :, None], w[:, :, None], (1,) + tuple(spatial),
                            (1,) + tuple(stride), (1,) + tuple(dilation), [(0, 0)] + pads,
                            tile=tile)
        return dx[:, :, 0]
    k, c, kh, kw = w.shape
    n, (out_height, out_width) = dy.shape[0], dy.shape[2:]
    inside = (spatial[0] - sum(pads[0]), spatial[1] - sum(pads[1]))
    if n * c * k * out_height * out_width == 0:
        return np.zeros((n, c) + inside, np.float32)
    rows = fold_rows(kh * kw, tile[0])
    w_rows = aligned.zeros((c, rows, k))
    w_rows[:, :kh * kw] = np.asarray(w, np.float32).reshape(k, c, kh * kw).transpose(1, 2, 0)
    sy, sx = stride
    # each phase row of the plane: every q = ox + e of the fold, and every cell of the row
    phase_length = max(out_width + (kw - 1) * dilation[1] // sx, -(-spatial[1] // sx))
    geometry = np.array([sy, sx, dilation[0], dilation[1], kh, kw, pads[0][0], pads[1][0],
                         spatial[0], phase_length], np.int64)
    dx = np.empty((n, c) + inside, np.float32)
    width = strip_width(tile[1])
    strip_bytes = 4 * width * (rows + k)  # a strip's columns and its packed dy
    chunk = max(1, min(tuning.value("implicit_fold_chunk_bytes") // strip_bytes,
                       _rounded(out_height * out_width, width) // width))
    shares = max(1, min(c, -(-2 * numba.get_num_threads() // n)))
    fold_windows_with(*tile)(np.ascontiguousarray(dy, np.float32), w_rows, geometry, dx, chunk,
                             tuning.value("implicit_tap_block"), shares)
    return dx


def _check_tile(tile):
    if not (isinstance(tile, tuple) and len(tile) == 2 and
            all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in tile)):
        raise TypeError(f"tile must be a pair of integers (MR, NV), got {tile!r}")
    if min(tile) < 1:
        raise ValueError(f"tile must be positive (MR, NV), got {tile!r}")


def _check(dy, w, spatial, stride, dilation, groups):
    """ValueError naming dy or w unless they make a 1-D or 2-D layer's gradient: the
    channels here, the rest by ``ConvGeometry``'s own checks (dy's positions as its ``out``)."""
    if dy.ndim != w.ndim or not 3 <= dy.ndim <= 4:
        raise ValueError(f"dy {dy.shape} and w {w.shape} must be (N, K, *out) and (K, C/G, "
                         f"*kernel) of a 1-D or 2-D layer")
    if dy.shape[1] != w.shape[0]:
        raise ValueError(f"dy {dy.shape} must have w's K = {w.shape[0]} channels")
    ConvGeometry.of((dy.shape[0], w.shape[1] * groups) + tuple(spatial), w.shape, stride,
                    dilation, groups, np.float32, out=dy.shape[2:])
