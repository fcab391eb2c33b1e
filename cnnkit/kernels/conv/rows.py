"""Depthwise convolution (float32, stride 1, dilation 1) on the compiled row correlation.

Each plane of a depthwise layer is a single-channel correlation, so all three passes are
``correlate_rows.correlate_planes`` with index tables (m = K / C output channels per input
channel, ⋆ = valid correlation, summed over a plane's taps u):

    forward  y[n, k]  = x[n, k // m] ⋆ w[k]
    input    dx[n, c] = Σ_j dy[n, c·m + j] ⋆ flip(w[c·m + j])   dy padded by k − 1
                        (docs/concepts.md §13: the full correlation of dL/dy with the
                        flipped kernel)

The weight gradient, Σ_n x[n, k // m] ⋆ dy[n, k] with dy as the kernel, has a kernel-sized
output (3×3), which fills a 4-row, 16-lane tile poorly: it measured 7.7 against 5.4 ms for
``depthwise_numba``'s on dw3x3 and stays there.

For 3-D layers the planes are the last two axes and the first axis runs through the tables
(every depth of the output a plane, every depth of the kernel a tap); 1-D layers are one row.
"""
import math

import numpy as np

from ... import tuning
from . import implicit
from .shift import flat_pitches
from ..correlate_rows import as_planes, correlate_planes, flat_table
from ..padding import zero_pad


def applies(geometry, pass_name) -> bool:
    """float32, stride 1, dilation 1, one input channel per group; forward and input gradient
    (the weight gradient stays on ``depthwise``), the latter with the exact stride-1 geometry."""
    g = geometry
    return g.batch > 0 and g.is_float32 and g.unit_stride and g.unit_dilation and \
        g.in_channels == g.groups and (pass_name == "forward" or (
            pass_name == "input" and g.exact))


def wins(geometry, pass_name) -> bool:
    """Where it applies: every forward and input-gradient plane is a single-channel
    correlation, which the row correlation computes several times faster than a product with
    an inner dimension of one (lenet_c1: forward 0.8 against 2.5 ms by im2col; dw3x3: 1.5
    against 4.3 ms). Except a groups-1 forward with several filters and a large kernel: the
    implicit GEMM's planar tile shares each input vector across filters, where the row
    correlation reads the input once per filter (``rows_forward_*`` in ``cnnkit.tuning``)."""
    g = geometry
    return not (pass_name == "forward" and g.groups == 1 and
                g.out_channels >= tuning.value("rows_forward_min_filters") and
                g.taps > tuning.value("rows_forward_max_taps") and
                implicit.applies(g, pass_name))


def forward_pass(xp, w, g):
    return forward(xp, w, g.out)


def input_pass(dy, w, g):
    return backward_input(dy, w, g.padded, g.groups, g.pads)


def _images(n, channels_first, planes_per_image, plane):
    """plane_base part for (image, channel) pairs: (n·channels + c)·plane, flattened."""
    return (np.arange(n, dtype=np.int64)[:, None] * planes_per_image
            + np.asarray(channels_first, np.int64)[None, :]).reshape(-1) * plane


def forward(xp, w, out):
    """xp (N, C, *padded) float32, w (K, 1, *kernel) -> y (N, K, *out)."""
    n, c = xp.shape[:2]
    k = w.shape[0]
    spatial, kernel, out2 = as_planes(xp.shape[2:]), as_planes(w.shape[2:]), as_planes(out)
    pitch = flat_pitches(spatial)
    plane_base = np.add.outer(
        _images(n, np.arange(k) // (k // c), c, math.prod(spatial)),
        flat_table(out2[:-2], pitch[:-2])).reshape(-1)
    taps = math.prod(kernel[:-2])
    plane_kernel = np.repeat(np.tile(np.arange(k, dtype=np.int64) * taps, n), math.prod(out2[:-2]))
    y = correlate_planes(np.ascontiguousarray(xp), pitch[-2], w.reshape((k * taps,) + kernel[-2:]),
                         plane_base, plane_kernel, flat_table(kernel[:-2], pitch[:-2]), out2[-2:])
    return y.reshape((n, k) + tuple(out))


def backward_input(dy, w, spatial, groups, pads=None):
    """dL/dx inside the input's padding ``pads``: (N, C, *(spatial − lo − hi)); the whole
    padded input's when ``pads`` is None. ``spatial`` is the padded input's shape, C = groups."""
    pads = pads or [(0, 0)] * len(spatial)
    kernel = w.shape[2:]
    dy_pads = [(k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(kernel, pads)]
    crop = [(0, 0)] * len(spatial)
    if any(lo < 0 or hi < 0 for lo, hi in dy_pads):  # padding wider than the kernel's reach
        dy_pads, crop = [(k - 1, k - 1) for k in kernel], pads
    dyp = np.ascontiguousarray(zero_pad(dy, dy_pads))
    out = [s - lo - hi for s, (lo, hi) in zip(spatial, pads)] if crop == [(0, 0)] * len(
        spatial) else list(spatial)
    n, k, m = dy.shape[0], dy.shape[1], dy.shape[1] // groups
    padded, kernel2, out2 = as_planes(dyp.shape[2:]), as_planes(kernel), as_planes(out)
    pitch, plane = flat_pitches(padded), math.prod(padded)
    plane_base = np.add.outer(_images(n, np.arange(groups) * m, k, plane),
                              flat_table(out2[:-2], pitch[:-2])).reshape(-1)
    taps = math.prod(kernel2[:-2])
    plane_kernel = np.repeat(np.tile(np.arange(groups, dtype=np.int64) * (m * taps), n),
                             math.prod(out2[:-2]))
    tap_plane = np.add.outer(np.arange(m, dtype=np.int64) * plane,
                             flat_table(kernel2[:-2], pitch[:-2])).reshape(-1)
    flipped = w[(slice(None), 0) + (slice(None, None, -1),) * len(kernel)]
    dx = correlate_planes(dyp, pitch[-2], flipped.reshape((-1,) + kernel2[-2:]), plane_base,
                          plane_kernel, tap_plane, out2[-2:])
    dx = dx.reshape((n, groups) + tuple(out))
    index = tuple(slice(lo, dx.shape[2 + j] - hi) for j, (lo, hi) in enumerate(crop))
    return dx[(slice(None), slice(None)) + index]
