"""Depthwise convolution (float32, stride 1, dilation 1) on the compiled row correlation.

Each plane of a depthwise layer is a single-channel correlation, so all three passes are
``correlate_rows.correlate_planes`` with index tables (m = K / C output channels per input
channel, ⋆ = valid correlation, summed over a plane's taps u):

    forward  y[n, k]  = x[n, k // m] ⋆ w[k]
    input    dx[n, c] = Σ_j dy[n, c·m + j] ⋆ flip(w[c·m + j])   dy padded by k − 1 (the notes'
                        full correlation of dL/dy with the flipped kernel)
    weight   dw[k]    = Σ_n x[n, k // m] ⋆ dy[n, k]             dy plays the kernel

For 3-D layers the planes are the last two axes and the first axis runs through the tables
(every depth of the output a plane, every depth of the kernel a tap); 1-D layers are one row.
"""
import math

import numpy as np

from .conv_shift import flat_pitches
from .correlate_rows import _table, correlate_planes
from .padding import zero_pad


def applies(dtype, stride, dilation) -> bool:
    return np.dtype(dtype) == np.float32 and all(s == 1 for s in stride) and \
        all(d == 1 for d in dilation)


def _planar(shape):
    """Spatial shape as at least 2 axes: a 1-D layer is one row."""
    return (1,) * (2 - len(shape)) + tuple(shape)


def _images(n, channels_first, planes_per_image, plane):
    """plane_base part for (image, channel) pairs: (n·channels + c)·plane, flattened."""
    return (np.arange(n, dtype=np.int64)[:, None] * planes_per_image
            + np.asarray(channels_first, np.int64)[None, :]).reshape(-1) * plane


def forward(xp, w, out):
    """xp (N, C, *padded) float32, w (K, 1, *kernel) -> y (N, K, *out)."""
    n, c = xp.shape[:2]
    k = w.shape[0]
    spatial, kernel, out2 = _planar(xp.shape[2:]), _planar(w.shape[2:]), _planar(out)
    pitch = flat_pitches(spatial)
    plane_base = np.add.outer(
        _images(n, np.arange(k) // (k // c), c, math.prod(spatial)),
        _table(out2[:-2], pitch[:-2])).reshape(-1)
    taps = math.prod(kernel[:-2])
    plane_kernel = np.repeat(np.tile(np.arange(k, dtype=np.int64) * taps, n), math.prod(out2[:-2]))
    y = correlate_planes(np.ascontiguousarray(xp), pitch[-2], w.reshape((k * taps,) + kernel[-2:]),
                         plane_base, plane_kernel, _table(kernel[:-2], pitch[:-2]), out2[-2:])
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
    padded, kernel2, out2 = _planar(dyp.shape[2:]), _planar(kernel), _planar(out)
    pitch, plane = flat_pitches(padded), math.prod(padded)
    plane_base = np.add.outer(_images(n, np.arange(groups) * m, k, plane),
                              _table(out2[:-2], pitch[:-2])).reshape(-1)
    taps = math.prod(kernel2[:-2])
    plane_kernel = np.repeat(np.tile(np.arange(groups, dtype=np.int64) * (m * taps), n),
                             math.prod(out2[:-2]))
    tap_plane = np.add.outer(np.arange(m, dtype=np.int64) * plane,
                             _table(kernel2[:-2], pitch[:-2])).reshape(-1)
    flipped = w[(slice(None), 0) + (slice(None, None, -1),) * len(kernel)]
    dx = correlate_planes(dyp, pitch[-2], flipped.reshape((-1,) + kernel2[-2:]), plane_base,
                          plane_kernel, tap_plane, out2[-2:])
    dx = dx.reshape((n, groups) + tuple(out))
    index = tuple(slice(lo, dx.shape[2 + j] - hi) for j, (lo, hi) in enumerate(crop))
    return dx[(slice(None), slice(None)) + index]


def backward_weight(xp, dy, kernel):
    """dL/dw (K, 1, *kernel) = Σ_n x[n, k // m] ⋆ dy[n, k], xp the padded input."""
    n, c = xp.shape[:2]
    k = dy.shape[1]
    spatial, kernel2, out2 = _planar(xp.shape[2:]), _planar(kernel), _planar(dy.shape[2:])
    pitch, plane = flat_pitches(spatial), math.prod(spatial)
    depth_taps = _table(kernel2[:-2], pitch[:-2])
    plane_base = np.add.outer((np.arange(k, dtype=np.int64) // (k // c)) * plane,
                              depth_taps).reshape(-1)
    # dy plays the kernel: its stack runs over (k, n, output depth), each k's taps together.
    dy_stack = np.swapaxes(dy, 0, 1).reshape((k, n) + out2)
    per_k = n * math.prod(out2[:-2])
    plane_kernel = np.repeat(np.arange(k, dtype=np.int64) * per_k, depth_taps.size)
    tap_plane = np.add.outer(np.arange(n, dtype=np.int64) * (c * plane),
                             _table(out2[:-2], pitch[:-2])).reshape(-1)
    dw = correlate_planes(np.ascontiguousarray(xp), pitch[-2], dy_stack, plane_base, plane_kernel,
                          tap_plane, kernel2[-2:])
    return dw.reshape((k, 1) + tuple(kernel))
