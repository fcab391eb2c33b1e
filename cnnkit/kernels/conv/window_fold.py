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
before (``python -m cnnkit.bench.window_fold``; BENCHMARKS.md, "Strided input gradients of
few channels: the windows folded"):

* AlexNet's first layer (8 images, 3 → 64, 224², 11 × 11 at stride 4; gain 1.23): 5.06
  against 5.24 (``subpixel``);
* ResNet's stem (4 images, 3 → 64, 224², 7 × 7 at stride 2; 1.67): 4.64 against 8.33;
* 3 × 3 at stride 2, 3 → 32 channels, 16 images of 224² (1.81): 4.60 against 11.46 (im2col);
* 4 × 4 at stride 4 (taps apart, 1.00): 7.94 against 7.23, which it leaves to ``subpixel``.
"""
import math

import numba
import numpy as np

from ... import tuning
from .. import aligned, implicit_gemm_numba as compiled
from ..window_fold_numba import PLANAR_ROWS, PLANAR_VECTORS, fold_windows_tiled
from . import strided_input


def applies(geometry):
    """A strided (not unit-stride) 1-D or 2-D float32 layer."""
    return len(geometry.kernel) in (1, 2) and not geometry.unit_stride and geometry.is_float32


def wins(geometry):
    """Fewer input channels per group than a vector's lanes (``strided_input.by_phases``
    fills the lanes from there on, and computes no zero terms), and ``gain`` at least
    ``implicit_fold_min_gain``."""
    g = geometry.per_group() if geometry.groups > 1 else geometry
    return (applies(g) and g.in_channels < compiled.LANES and
            gain(g) >= tuning.value("implicit_fold_min_gain"))


def gain(geometry):
    """``strided_input.subpixel``'s multiply-adds over the fold's, for one group: its
    outputs rounded up to the tile's lanes, times its terms and positions, against the
    fold's rows (C · the kernel's taps, each channel's rounded up to MR) times K terms
    times dy's positions rounded up to strips of the tile's NR."""
    g = geometry
    grid = strided_input.subpixel_grid(g)
    lanes = compiled.LANES * compiled.tile(grid.outputs)[1]
    phases = -(-grid.outputs // lanes) * lanes * grid.terms * math.prod(grid.out)
    width = compiled.LANES * PLANAR_VECTORS
    rows = -(-g.taps // PLANAR_ROWS) * PLANAR_ROWS
    fold = g.in_channels * rows * g.out_channels * -(-math.prod(g.out) // width) * width
    return phases / fold


def input_gradient(dy, w, spatial, stride, dilation, pads=None, groups=1):
    """dL/dx (N, C, *spatial less pads) of a strided 1-D or 2-D convolution: dy (N, K, *out),
    w (K, C/G, *kernel), ``spatial`` the padded input's shape. A grouped layer's groups one
    after another. Each task (an image, or with fewer images than twice the threads, an
    image's share of the channels) runs the product a chunk of positions at a time,
    ``implicit_fold_chunk_bytes`` of columns and dy's strips, and folds the chunk."""
    pads = [tuple(p) for p in pads] if pads else [(0, 0)] * len(spatial)
    if groups > 1:
        return strided_input.group_by_group(input_gradient, dy, w, spatial, stride, dilation,
                                            pads, groups)
    if dy.ndim == 3:  # 1-D: a map of one row
        dx = input_gradient(dy[:, :, None], w[:, :, None], (1,) + tuple(spatial),
                            (1,) + tuple(stride), (1,) + tuple(dilation), [(0, 0)] + pads)
        return dx[:, :, 0]
    k, c, kh, kw = w.shape
    n, (out_height, out_width) = dy.shape[0], dy.shape[2:]
    inside = (spatial[0] - sum(pads[0]), spatial[1] - sum(pads[1]))
    if n == 0 or out_height * out_width == 0 or k == 0:
        return np.zeros((n, c) + inside, np.float32)
    rows = -(-kh * kw // PLANAR_ROWS) * PLANAR_ROWS
    w_rows = aligned.zeros((c, rows, k))
    w_rows[:, :kh * kw] = np.asarray(w, np.float32).reshape(k, c, kh * kw).transpose(1, 2, 0)
    sy, sx = stride
    # each phase row of the plane: every q = ox + e of the fold, and every cell of the row
    phase_length = max(out_width + (kw - 1) * dilation[1] // sx, -(-spatial[1] // sx))
    geometry = np.array([sy, sx, dilation[0], dilation[1], kh, kw, pads[0][0], pads[1][0],
                         spatial[0], phase_length], np.int64)
    dx = np.empty((n, c) + inside, np.float32)
    width = compiled.LANES * PLANAR_VECTORS
    strip_bytes = 4 * width * (rows + k)  # a strip's columns and its packed dy
    chunk = max(1, min(tuning.value("implicit_fold_chunk_bytes") // strip_bytes,
                       -(-out_height * out_width // width)))
    shares = max(1, min(c, -(-2 * numba.get_num_threads() // n)))
    fold_windows_tiled(np.ascontiguousarray(dy, np.float32), w_rows, geometry, dx, chunk,
                       tuning.value("implicit_tap_block"), shares)
    return dx
