"""Depthwise convolution (float32, stride 1, dilation 1) on the compiled row correlation.

Each plane of a depthwise layer is a single-channel correlation, so both passes are
``correlate_rows.correlate_unpadded`` with index tables (m = K / C output channels per input
channel, ⋆ = correlation with zeros read outside the plane, summed over a plane's taps u):

    forward  y[n, k]  = x[n, k // m] ⋆ w[k] + b[k]      x read unpadded, its padding as offsets
    input    dx[n, c] = Σ_j dy[n, c·m + j] ⋆ flip(w[c·m + j])   dy read k − 1 − lo before dx
                        (docs/concepts.md §13: the full correlation of dL/dy with the
                        flipped kernel)

Neither input is padded in memory: each task pads its band of rows in a buffer of its own
(``correlate_bands_numba``), and adds the bias as it writes the output. dw3x3, 2 threads: the
forward pass with its bias 1.6 ms, where padding the input first (1.3 ms), the correlation
(1.0 ms) and the bias (0.5 ms) took 2.8.

A 2-D forward pass with a 3 × 3 kernel is instead one stencil per plane, its nine taps in
registers (``depthwise3x3_numba``): the row correlation's 4-row tile multiplies half its terms
by its kernels' zero rows there. dw3x3's forward pass in the bench, against PyTorch's: 0.67–0.77
on both ISAs, where the row correlation read 1.28–2.25 on AVX2. The input gradient of such a
layer, one output channel per input channel, is the same stencil on dy with the kernel
flipped, where w is finite (``_stencil_reads_dy``). A 3-D layer with a 3 × 3 × 3 kernel runs
the same way, each output row the sum of three planes' stencils (``forward_volume``), where
the row correlation's tables make every depth of the kernel a tap, a 3 × 3 plane kernel for
its 4-row tile.

The weight gradient, Σ_n x[n, k // m] ⋆ dy[n, k] with dy as the kernel, has a kernel-sized
output (3×3), which fills a 4-row, 16-lane tile poorly: it measured 7.7 against 5.4 ms for
``depthwise_numba``'s on dw3x3 and stays there. A 3 × 3 × 3 kernel's is 27 sums over each
output plane as one flat run, nine at a time (``weight_volume``).

For 3-D layers the planes are the last two axes and the first axis runs through the tables
(every depth of the output a plane, every depth of the kernel a tap, −1 for a depth that falls
in the padding); 1-D layers are one row.
"""
import math

import numba
import numpy as np

from ... import tuning
from . import implicit
from .. import depthwise3x3_numba as depthwise3x3
from ..correlate_rows import as_planes, correlate_unpadded
from ..finite import NotFinite, all_finite


def applies(geometry, pass_name) -> bool:
    """float32, stride 1, dilation 1, one input channel per group; forward and input gradient,
    the latter with the exact stride-1 geometry; the weight gradient of a 3-D 3 × 3 × 3 kernel
    with the exact geometry too (``takes_volume_weight``; other weight gradients go to
    ``lanes``, ``depthwise`` or the implicit GEMM)."""
    g = geometry
    return g.batch > 0 and g.is_float32 and g.unit_stride and g.unit_dilation and \
        g.in_channels == g.groups and (pass_name == "forward" or (
            pass_name == "input" and g.exact) or (
            pass_name == "weight" and g.exact and takes_volume_weight(g)))


def takes_volume_weight(geometry):
    """Whether the weight gradient is the volume stencil's (``depthwise3x3_numba.
    weight_volume_sums``): a 3 × 3 × 3 kernel with from 1 to
    ``depthwise_volume_weight_max_multiplier`` outputs per input channel (the implicit GEMM,
    which took them all before, shares x among a group's outputs)."""
    g = geometry
    return tuple(g.kernel) == (3, 3, 3) and \
        0 < g.out_channels // g.groups <= tuning.value("depthwise_volume_weight_max_multiplier")


def needs_finite(geometry, pass_name):
    """The volume stencil's weight gradient multiplies x by the zero cells that pad dy's rows
    (``depthwise3x3_numba.weight_volume_sums``), and checks x as it pads it
    (``checks_finite``); nothing else here needs an operand finite."""
    if pass_name == "weight" and applies(geometry, pass_name):
        return frozenset({"x"})
    return frozenset()


checks_finite = needs_finite


def wins(geometry, pass_name) -> bool:
    """Where it applies: every forward and input-gradient plane is a single-channel
    correlation, which the row correlation computes several times faster than a product with
    an inner dimension of one (lenet_c1: forward 0.8 against 2.5 ms by im2col; dw3x3: 1.5
    against 4.3 ms). Except a groups-1 forward with several filters and a large kernel: the
    implicit GEMM's planar tile shares each input vector across filters, where the row
    correlation reads the input once per filter (``rows_forward_*`` in ``cnnkit.tuning``).
    Single-channel maps' 1-D, dilated and 1 × 1 input gradients are claimed before this is
    asked (``depthwise.claims``, ``shift.claims``)."""
    g = geometry
    return not (pass_name == "forward" and g.groups == 1 and
                g.out_channels * g.taps >= tuning.value("rows_forward_min_terms") and
                g.taps > tuning.value("rows_forward_max_taps") and
                implicit.applies(g, pass_name))


def forward_pass(xp, w, g):
    return forward(xp, w, g.out, ((0, 0),) * len(g.kernel))


def forward_from(source, w, g, bias=None):
    """The forward pass with the bias added, from the unpadded input (``dispatch.Input``)."""
    return forward(source.data, w, g.out, g.pad_widths, bias)


def forward_plan(g):
    """``forward_from`` planned once (``dispatch.forward_plan``) where it runs the stencil (a
    3 × 3 or 3 × 3 × 3 kernel): a ``StencilForward``; else None (the row correlation keeps
    its tables per shape itself)."""
    if not _stencil_kernel(g.kernel):
        return None
    return StencilForward(g)


class StencilForward:
    """``forward_from``'s stencil for one geometry (``stencil``, its tasks split once): the
    input read unpadded, plus the bias."""
    __slots__ = ("stencil",)

    def __init__(self, g):
        self.stencil = stencil(g.batch, g.in_channels, g.out_channels,
                               tuple(lo for lo, _ in g.pad_widths), g.out)

    def __call__(self, source, w, bias=None):
        return self.stencil(source.data, w, bias)


def input_pass(dy, w, g):
    return backward_input(dy, w, g.padded, g.groups, g.pads)


def weight_pass(xp, dy, g):
    return weight_volume(xp, dy, ((0, 0),) * 3)


def weight_from(source, dy, g, with_bias=False):
    """The weight gradient of a 3 × 3 × 3 kernel from the unpadded input
    (``weight_volume``): (dw, None), the bias gradient left to the caller."""
    return weight_volume(source.data, dy, g.pad_widths), None


def weight_volume(x, dy, pads):
    """dw (K, 1, 3, 3, 3) of a 3-D depthwise layer with K = m·C outputs: x (N, C, *spatial)
    unpadded, its padding ``pads`` ((lo, hi) per dim), dy (N, K, *out), float32, out the
    exact output of that padding. The images are split into chunks per output channel
    (``_parts``), their sums added here. Raises ``NotFinite("x")`` where x holds an inf or
    NaN."""
    n, k = dy.shape[:2]
    chunks = _parts(k, n)
    sums = np.empty((k * chunks, 27))
    if not depthwise3x3.weight_volume_sums(np.ascontiguousarray(x), np.ascontiguousarray(dy),
                                           *[lo for lo, _ in pads], sums, chunks):
        raise NotFinite("x")
    return sums.reshape(k, chunks, 27).sum(axis=1).astype(np.float32).reshape(k, 1, 3, 3, 3)


def _parts(items, most):
    """How many parts to split each of ``items`` units of work into (1 to ``most``) for about
    four tasks per thread: a plane's output channels (``Stencil``), an output channel's
    images (``weight_volume``)."""
    return max(1, min(most, -(-4 * numba.get_num_threads() // max(1, items))))


def _outer_sources(out_outer, kernel_outer, source_outer, first):
    """(E, V): the flat index in ``source_outer`` of the outer cell e + v + first (e an output
    plane's outer index, v an outer tap's, per axis), −1 where that falls outside."""
    index, inside = np.zeros((1, 1), np.int64), np.ones((1, 1), bool)
    for n_out, n_kernel, n_source, f in zip(out_outer, kernel_outer, source_outer, first):
        cell = np.arange(n_out)[:, None] + np.arange(n_kernel)[None, :] + f
        shape = (index.shape[0] * n_out, index.shape[1] * n_kernel)
        index = (index[:, None, :, None] * n_source + cell[None, :, None, :]).reshape(shape)
        inside = (inside[:, None, :, None] & ((cell >= 0) & (cell < n_source))[None, :, None, :]
                  ).reshape(shape)
    return np.where(inside, index, -1)


def forward(x, w, out, pads, bias=None):
    """x (N, C, *spatial) unpadded float32, w (K, 1, *kernel), zero padding ``pads`` ((lo, hi)
    per dim) -> y (N, K, *out), plus ``bias`` (K,) if given. A 3 × 3 or 3 × 3 × 3 kernel runs
    as a fused stencil (``depthwise3x3_numba``), every other on the row correlation."""
    n, c = x.shape[:2]
    if _stencil_kernel(w.shape[2:]):
        return _stencil(x, w, bias, [lo for lo, _ in pads], out)
    k = w.shape[0]
    spatial, kernel, out2 = as_planes(x.shape[2:]), as_planes(w.shape[2:]), as_planes(out)
    pads2 = ((0, 0),) * (len(spatial) - len(pads)) + tuple(pads)
    src, plane_kernel = implicit.shared_table(
        _forward_tables, (n, c, k, spatial, kernel, out2, tuple(tuple(p) for p in pads2)),
        n * k * math.prod(out2[:-2]) * math.prod(kernel[:-2]))
    planes_per_image = src.shape[0] // (n * k)
    plane_bias = None if bias is None else np.repeat(np.tile(bias, n), planes_per_image)
    y = correlate_unpadded(x.reshape((-1,) + spatial[-2:]), pads2[-2][0], pads2[-1][0],
                           w.reshape((-1,) + kernel[-2:]), src, plane_kernel, plane_bias,
                           out2[-2:], padding_terms=True)
    return y.reshape((n, k) + tuple(out))


def _stencil_kernel(kernel):
    """Whether a kernel is the stencil's: 3 × 3, or 3 × 3 × 3 (``depthwise3x3_numba``)."""
    return tuple(kernel) in ((3, 3), (3, 3, 3))


def _stencil(x, w, bias, starts, out):
    """``depthwise3x3_numba.forward`` (2-D) or ``forward_volume`` (3-D): y (N, K, *out) from
    x (N, C, *spatial) read from −``starts`` (one per dim) with zeros around it, w (K, 1,
    3, 3) or (K, 1, 3, 3, 3), plus ``bias`` (K,) if given."""
    return stencil(x.shape[0], x.shape[1], w.shape[0], tuple(starts), tuple(out))(x, w, bias)


class Stencil:
    """``_stencil`` for one shape: N images of C channels, K outputs, read from −``starts``,
    ``out`` positions; called as stencil(x, w, bias) -> y."""
    __slots__ = ("y_shape", "starts", "tasks", "zero_bias", "volume")

    def __init__(self, n, c, k, starts, out):
        self.y_shape = (n, k) + out
        self.zero_bias = np.zeros(k, np.float32)  # read only
        # a plane's m output channels split into tasks when there are fewer planes than a
        # few tasks per thread (one image of one channel: vgg_small's first layer)
        self.starts = tuple(starts)
        self.tasks = (_parts(n * c, k // c),
                      tuning.value("depthwise_runs_per_thread") * numba.get_num_threads())
        self.volume = (depthwise3x3.flat_planes(out[-1]),) if len(out) == 3 else None

    def __call__(self, x, w, bias=None):
        y = np.empty(self.y_shape, np.float32)
        arguments = (np.ascontiguousarray(x), np.ascontiguousarray(w),
                     self.zero_bias if bias is None else
                     np.ascontiguousarray(bias, dtype=np.float32),
                     *self.starts, y, *self.tasks)
        if self.volume is None:
            depthwise3x3.forward(*arguments)
        else:
            depthwise3x3.forward_volume(*arguments, *self.volume)
        return y


@tuning.kept(threads=True, maxsize=implicit.KEPT_PRODUCTS)
def stencil(n, c, k, starts, out):
    """The ``Stencil`` of these shapes, made once per shape, tuning state and thread count."""
    return Stencil(n, c, k, starts, out)


def _forward_tables(n, c, k, spatial, kernel, out2, pads2):
    """The forward pass's (src, plane_kernel) for ``correlate_unpadded``: which input plane
    each output plane reads per outer tap, and where its kernels start. Built from the shapes
    alone, and kept between calls (``implicit.shared_table``): building them cost a
    one-signal 1 → 16 channel layer a third of its call."""
    m = k // c
    outer = _outer_sources(out2[:-2], kernel[:-2], spatial[:-2], [-lo for lo, _ in pads2[:-2]])
    taps = outer.shape[1]
    channel_plane = (np.arange(n)[:, None] * c + np.arange(k)[None, :] // m) * math.prod(
        spatial[:-2])                                                        # (N, K)
    src = np.where(outer[None, None] < 0, -1, channel_plane[:, :, None, None] + outer[None, None])
    plane_kernel = np.repeat(np.tile(np.arange(k, dtype=np.int64) * taps, n), outer.shape[0])
    return np.ascontiguousarray(src.reshape(-1, taps)), plane_kernel


def backward_input(dy, w, spatial, groups, pads=None):
    """dL/dx inside the input's padding ``pads``: (N, C, *(spatial − lo − hi)); the whole
    padded input's when ``pads`` is None. ``spatial`` is the padded input's shape, C = groups.

    The full correlation of dy with the flipped kernel: dx[j] reads dy[j + a − (k − 1 − lo)].
    A 3 × 3 or 3 × 3 × 3 layer with one output channel per input channel runs the forward
    pass's stencil on dy (``_stencil_reads_dy``)."""
    pads = pads or [(0, 0)] * len(spatial)
    inner = tuple(s - lo - hi for s, (lo, hi) in zip(spatial, pads))
    if _stencil_reads_dy(dy, w, groups, pads):
        flipped = w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)]
        return _stencil(dy, flipped, None, [2 - lo for lo, _ in pads], inner)
    return correlated_input(dy, w, groups, pads, inner)


def correlated_input(dy, w, groups, pads, inner):
    """``backward_input`` on the row correlation, whatever the kernel: dx (N, C, *inner), the
    gradient inside ``pads`` (one (lo, hi) pair per dim). (``cnnkit tune`` times it against
    the lanes' input gradient: ``depthwise_lanes_max_width``.)"""
    n, k, m = dy.shape[0], dy.shape[1], dy.shape[1] // groups
    kernel, dy_spatial, out2 = as_planes(w.shape[2:]), as_planes(dy.shape[2:]), as_planes(inner)
    pads2 = ((0, 0),) * (len(out2) - len(pads)) + tuple(pads)
    first = [lo - (kn - 1) for kn, (lo, _) in zip(kernel, pads2)]
    outer = _outer_sources(out2[:-2], kernel[:-2], dy_spatial[:-2], first[:-2])   # (E, V)
    taps = outer.shape[1]
    channel_plane = (np.arange(n)[:, None, None] * k + np.arange(groups)[None, :, None] * m
                     + np.arange(m)[None, None, :]) * math.prod(dy_spatial[:-2])   # (N, C, m)
    src = np.where(outer[None, None, :, None, :] < 0, -1,
                   channel_plane[:, :, None, :, None] + outer[None, None, :, None, :])
    plane_kernel = np.repeat(np.tile(np.arange(groups, dtype=np.int64) * (m * taps), n),
                             outer.shape[0])
    flipped = w[(slice(None), 0) + (slice(None, None, -1),) * len(w.shape[2:])]
    dx = correlate_unpadded(dy.reshape((-1,) + dy_spatial[-2:]), -first[-2], -first[-1],
                            flipped.reshape((-1,) + kernel[-2:]), src.reshape(-1, m * taps),
                            plane_kernel, None, out2[-2:], padding_terms=False)
    return dx.reshape((n, groups) + inner)


def stencil_runs(geometry, pass_name):
    """Whether ``rows`` runs this pass of a layer it applies to as the stencil
    (``depthwise3x3_numba``): a forward pass with a 3 × 3 or 3 × 3 × 3 kernel; the input
    gradient of one with one output channel per input channel, padded by at most 2 on each
    side (``_stencil_reads_dy``, which also needs w finite, known only at run time)."""
    g = geometry
    if not _stencil_kernel(g.kernel):
        return False
    return pass_name == "forward" or pass_name == "input" and \
        _stencil_input_shape(g.out_channels, g.groups, g.pad_widths)


def _stencil_input_shape(out_channels, groups, pads):
    """One output channel per input channel, and at most 2 of padding on each side."""
    return out_channels == groups and all(lo <= 2 and hi <= 2 for lo, hi in pads)


def _stencil_reads_dy(dy, w, groups, pads):
    """Whether the input gradient is the stencil of the forward pass on dy, with the
    flipped kernel: 3 × 3 or 3 × 3 × 3, one output channel per input channel (dx[c] reads
    dy[c] alone),
    padding of at most 2 on each side (dy then lies inside the stencil's zero border, read
    from 2 − lo before dx), and w finite. The stencil adds the terms that fall on its border,
    0 · w, which the input gradient does not have: with an inf or NaN in w they would be NaN.
    2 threads, dw3x3's input gradient, ms, against the row correlation: BENCHMARKS.md, "The
    depthwise 3 × 3 input gradient on the stencil"."""
    return _stencil_kernel(w.shape[2:]) and \
        _stencil_input_shape(dy.shape[1], groups, pads) and all_finite(w)
