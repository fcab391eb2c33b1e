"""Depthwise convolution (groups == input channels): a direct sum over kernel offsets.

Each input channel g feeds its own m = K / C output channels. A matrix product per channel
would be a 1×(k·k) by (k·k)×P product — far too thin for BLAS — so instead each of the k·k
kernel taps is one broadcast multiply-add over the whole batch:

    y[n, g·m + j, i] = Σ_a w[g·m + j, 0, a] · x[n, g, i·s + a·d]
"""
import math
import sys

import numpy as np

from ... import tuning
from ..bias_numba import add_bias
from ..im2col import offset_views
from ..padding import crop

COMPILED_DIMS = 2  # ``depthwise_numba``'s kernels are 1-D and 2-D


def applies(geometry, pass_name):
    """One input channel per group, any stride, dilation and dims."""
    return geometry.batch > 0 and geometry.in_channels == geometry.groups


def wins(geometry, pass_name):
    """Depthwise layers, the single-channel layers the row correlation would take for the
    forward or input pass but cannot (an input gradient with unreached trailing cells), and
    the weight gradients of single-channel maps with few filters (``takes_weight``)."""
    g = geometry
    if pass_name == "weight":
        return g.groups > 1 or takes_weight(g)
    return g.groups > 1 or (g.is_float32 and g.unit_stride and g.unit_dilation)


def claims(geometry, pass_name):
    """Whether the depthwise kernels take this pass before the registry's order is asked
    (``registry.heuristic``): the stride-1 float32 input gradient of a groups-1 layer on a
    single-channel map, 1-D, or 2-D and dilated (``COMPILED_DIMS``; not a 1 × 1 kernel, which
    ``shift.claims``), dx = Σ_k dy_k ⋆ flip(w_k) summed tap by tap, where the order gave it to
    the row correlation (1-D) or the implicit GEMM's planar tiles (dilated), whose one input
    channel fills a row of their tile; for kernels up to ``depthwise_input_max_kernel`` long
    (longer 1-D ones ran as fast or faster on the row correlation). 2 threads, 1 → 8 to 128
    channels, kernels 3 to 9, dilation 1 and 2: 1-D geometric mean 0.47–0.50 of the old time
    on AVX-512 (52 layers, at most 1.17), 0.40 on AVX2; 2-D dilated 0.46 and 0.33 (20 layers,
    at most 0.95 and 0.50). 2-D at dilation 1 stays on the row correlation (0.81 and 0.63, but
    up to 1.60) (BENCHMARKS.md, "Input gradients of single-channel maps on the depthwise
    kernels")."""
    g = geometry
    return pass_name == "input" and g.in_channels == 1 and g.is_float32 and g.unit_stride and \
        g.taps > 1 and len(g.kernel) <= COMPILED_DIMS and \
        (len(g.kernel) == 1 or not g.unit_dilation) and \
        max(g.kernel) <= tuning.value("depthwise_input_max_kernel")


def sums_on_numpy(geometry):
    """Whether this float32 depthwise layer's sums would be NumPy's here, a pass per kernel
    tap over the whole batch (``_kernels``: the compiled kernels are 1-D and 2-D): 3-D layers.
    Other kernels take them instead (registry order): ``lanes`` most of them, from a block
    of channels on (``lanes.wins``); else the implicit GEMM's blocks the strided or dilated
    forward and input passes (``blocked``; at stride 1 without dilation ``rows`` keeps
    them), per group the weight gradient (``implicit``; a 3 × 3 × 3 kernel's of few outputs
    per channel is ``rows``': ``rows.takes_volume_weight``). 2 threads, 3 × 3 × 3 and 5 × 5 ×
    5 layers of 16 to 96 channels, AVX-512 and AVX2: 2.2 to 15 times as fast as NumPy's sums
    (BENCHMARKS.md, "3-D depthwise layers on the implicit GEMM")."""
    g = geometry
    return g.groups > 1 and g.in_channels == g.groups and len(g.kernel) > COMPILED_DIMS and \
        g.is_float32


def takes_weight(geometry):
    """Whether a groups-1 layer's weight gradient is the depthwise kernels' rather than the
    implicit GEMM's (which asks this first): a 2-D float32 layer on a one-channel input with
    few filters and terms (``depthwise_weight_max_*`` in ``cnnkit.tuning``), whose filters
    would leave the GEMM's register tile mostly idle. LeNet's first layer (6 filters of 5 × 5,
    64 images): 0.60 against 1.00 ms."""
    g = geometry
    return (g.groups == 1 and g.in_channels == 1 and len(g.kernel) == 2 and g.is_float32
            and g.out_channels <= tuning.value("depthwise_weight_max_filters")
            and g.out_channels * g.taps <= tuning.value("depthwise_weight_max_terms"))


COMPILED_DTYPES = (np.float32, np.float64)  # what Numba compiles ``depthwise_numba`` for


def _kernels(array_shape, kernel, work_positions, dtype):
    """The compiled 1-D and 2-D depthwise kernels (``depthwise_numba``) for float32 and
    float64; NumPy's sums (this module) for 3-D layers, other dtypes (NumPy's long double)
    and passes under ``depthwise_compiled_min_work`` (by default none: the compiled kernels
    won at every size timed, the smallest included)."""
    work = array_shape[0] * array_shape[1] * work_positions * math.prod(kernel)
    if len(kernel) <= COMPILED_DIMS and dtype in COMPILED_DTYPES and \
            work >= tuning.value("depthwise_compiled_min_work"):
        from .. import depthwise_numba
        return depthwise_numba
    return sys.modules[__name__]



def forward_pass(xp, w, g):
    return _kernels(xp.shape, g.kernel, math.prod(g.out), g.dtype).forward(
        xp, w, g.stride, g.dilation, g.out)


def forward_from(source, w, g, bias=None):
    """The forward pass plus the bias: the compiled kernels read the unpadded input (each task
    pads its own plane), NumPy's the padded one."""
    kernels = _kernels(source.data.shape, g.kernel, math.prod(g.out), g.dtype)
    if kernels is not sys.modules[__name__]:
        return kernels.forward_unpadded(source.data, w, g.pad_widths, g.stride, g.dilation, g.out,
                                        bias)
    y = forward(source.padded(), w, g.stride, g.dilation, g.out)
    if bias is not None:
        add_bias(y, bias)
    return y


def input_pass(dy, w, g):
    kernels = _kernels(dy.shape, g.kernel, math.prod(dy.shape[2:]), g.dtype)
    if kernels is not sys.modules[__name__]:
        return kernels.backward_input_unpadded(dy, w, g.groups, g.padded, g.pad_widths, g.stride,
                                               g.dilation)
    return crop(backward_input(dy, w, g.padded, g.stride, g.dilation, g.groups), g.pads)


def weight_from(source, dy, g, with_bias=False):
    """The weight gradient from a ``PaddedInput``: the compiled kernels read the unpadded
    input (and sum the bias gradient on the way, when ``with_bias``); NumPy's the padded one.
    Returns (dw, db or None)."""
    kernels = _kernels(dy.shape, g.kernel, math.prod(dy.shape[2:]), g.dtype)
    if kernels is not sys.modules[__name__]:
        return kernels.backward_weight_unpadded(source.data, dy, g.kernel, g.pad_widths, g.stride,
                                                g.dilation, with_bias)
    return weight_pass(source.padded(), dy, g), None


def weight_pass(xp, dy, g):
    return _kernels(dy.shape, g.kernel, math.prod(dy.shape[2:]), g.dtype).backward_weight(
        xp, dy, g.kernel, g.stride, g.dilation)

_SPATIAL_LETTERS = "xyzuvw"


def _by_group(array, groups):
    """(N, G·m, *s) -> (N, G, m, *s): output channel g·m + j belongs to input channel g."""
    return array.reshape(array.shape[:1] + (groups, array.shape[1] // groups) + array.shape[2:])


def _tap(w, offset, groups, n_spatial):
    """Kernel tap ``w[:, 0, *offset]`` shaped (G, m, 1, ..., 1) to broadcast over positions."""
    return w[(slice(None), 0) + offset].reshape((groups, -1) + (1,) * n_spatial)


def forward(xp, w, stride, dilation, out):
    """xp (N, C, *spatial) padded, w (K, 1, *kernel) -> y (N, K, *out)."""
    n, groups, kernel = xp.shape[0], xp.shape[1], w.shape[2:]
    y = np.zeros((n, groups, w.shape[0] // groups) + tuple(out), dtype=np.result_type(xp, w))
    for offset, view in offset_views(xp, kernel, stride, dilation, out):
        y += _tap(w, offset, groups, len(out)) * view[:, :, None]
    return y.reshape((n, w.shape[0]) + tuple(out))


def backward_input(dy, w, spatial, stride, dilation, groups):
    """dL/dx: each tap sends w·dy back to the positions it read."""
    dy_g = _by_group(dy, groups)
    dxp = np.zeros((dy.shape[0], groups) + tuple(spatial), dtype=np.result_type(dy, w))
    out = dy.shape[2:]
    for offset, view in offset_views(dxp, w.shape[2:], stride, dilation, out):
        view += (_tap(w, offset, groups, len(out)) * dy_g).sum(axis=2)
    return dxp


def backward_weight(xp, dy, kernel, stride, dilation):
    """dL/dw[g·m + j, 0, a] = Σ_n Σ_i dy[n, g·m + j, i] · x[n, g, i·s + a·d]."""
    groups = xp.shape[1]
    out = dy.shape[2:]
    dy_g = _by_group(dy, groups)
    positions = _SPATIAL_LETTERS[:len(out)]
    dw = np.empty((dy.shape[1], 1) + tuple(kernel), dtype=np.result_type(xp, dy))
    for offset, view in offset_views(xp, kernel, stride, dilation, out):
        dw[(slice(None), 0) + offset] = np.einsum(
            f"ngj{positions},ng{positions}->gj", dy_g, view).reshape(-1)
    return dw
