"""Convolution as an implicit GEMM: the product reads the padded input in place, no im2col.

float32, any number of spatial dims, stride and dilation (a strided input gradient splits into
stride-1 products, one per phase: ``strided_input``); grouped layers run one product per group,
which reads its channels of the input in place (``_offsets``' first channel). The compiled
kernels and their index algebra are in ``implicit_gemm_numba``; here are the tables they read:

    offset[(c, a)] = c·plane + Σ_j a_j·d_j·pitch_j        where tap (c, a) reads, from a corner
    corner[(n, i)] = n·image + Σ_j i_j·s_j·pitch_j        where output position (n, i) starts

(flat element indices into the padded input: pitch = row lengths, plane = one channel's size).
"""
import functools
import math

import numpy as np

import numba

from ... import tuning
from .. import aligned, implicit_gemm_numba as compiled, planar_images_numba, weight_rows_numba
from ..bias_numba import bias_grad
from ..finite import NotFinite, all_finite
from ..transpose_numba import planes_to_rows, shares_to_planes, weight_rows_to_panels
from . import depthwise, fft, shift, strided_input, window_fold
from .geometry import output_spatial
from .shift import flat_pitches
from ..padding import zero_pad


def applies(geometry, pass_name):
    """float32; a stride-1 input gradient needs the exact stride-1 geometry."""
    g = geometry
    return g.batch > 0 and g.is_float32 and math.prod(g.out) > 0 and (
        pass_name != "input" or not g.unit_stride or g.exact)


def wins(geometry, pass_name):
    """The implicit GEMM beat every other path on the benchmark's float32 layers, except
    where its product is thin: the register tile's row of LANES·NV output channels (one input
    channel for an input gradient wastes all lanes but one) or fewer than
    ``implicit_min_taps`` terms per output (each tile is then mostly stores).
    Few output channels idle the lanes of the channels-last tile, not those of the planar
    one (``planar_wins``). Large kernels stay on it unless the FFT's estimate beats it
    (``fft_beats``).
    A grouped layer is judged by one group's product, and with one input channel per group
    only where the depthwise sums would be NumPy's (``depthwise.sums_on_numpy``: 3-D layers;
    elsewhere ``rows``, ``lanes`` and ``depthwise`` sum them directly). A 1×1 layer on a few
    images leaves its forward pass and input gradient to shift's BLAS products
    (``_pointwise_few_images``), a single-channel map with few filters its weight gradient to
    the depthwise kernels (``depthwise.takes_weight``). Some input gradients of few input
    channels are claimed before this is asked (``registry.CLAIMING``: ``gemm.takes_input``,
    ``depthwise.claims``, ``shift.claims``)."""
    return not fft_beats(geometry, pass_name) and _wins(geometry, pass_name)


def _wins(geometry, pass_name):
    """``wins`` once the FFT has not taken the pass (asked of the whole layer)."""
    if geometry.groups > 1:
        g = geometry.per_group()
        return (g.in_channels > 1 or depthwise.sums_on_numpy(geometry)) and _wins(g, pass_name)
    g = geometry
    if pass_name != "weight" and _pointwise_few_images(g, pass_name):
        return False
    if pass_name == "weight" and depthwise.takes_weight(g):
        return False
    if pass_name == "forward":
        return g.in_channels * g.taps >= tuning.value("implicit_min_taps") or \
            _thin_but_large(g, pass_name, g.batch * g.out_channels * math.prod(g.out))
    if pass_name == "input":  # a product with C outputs and K·prod(kernel) terms
        taps = g.out_channels * g.taps
        if taps < tuning.value("implicit_min_taps"):  # strided: im2col (16, 128 → 8 1 × 1
            # layer at stride 2 on 56 × 56 maps, 1.69 against 1.96 ms)
            return g.unit_stride and _thin_but_large(
                g, pass_name, g.batch * g.in_channels * math.prod(g.padded))
        if not g.unit_stride:
            return _strided_input_wins(g)
        return g.in_channels >= compiled.LANES or planar_wins(g.in_channels, taps)
    # the weight gradient: a 1×1 layer with fewer input channels than
    # ``implicit_weight_1x1_min_channels`` (off by default) goes to shift, one thin product
    # per image on dy as it is
    return not (g.taps == 1 and g.unit_stride and
                g.in_channels < tuning.value("implicit_weight_1x1_min_channels"))


def _thin_but_large(g, pass_name, outputs):
    """Whether a product of fewer than ``implicit_min_taps`` terms per output (one group's:
    ``outputs`` counts its values) stays on the implicit GEMM: from
    ``implicit_thin_min_outputs`` output values on, unless it is a 1 × 1 layer that shift's
    rule takes (one BLAS product per image on the arrays as they are). Else im2col (a copy
    and a thin product) or Winograd (thin products) ran 1.5 to 12 times as long on such layers
    (2 threads, AVX-512 and AVX2: 1 × 1 layers of 1 to 4 input channels per group, strided
    single-channel ones, a 3 × 3 layer's input gradient to one map); below, their fixed costs
    are lower (BENCHMARKS.md, "Thin products on the implicit GEMM")."""
    return outputs >= tuning.value("implicit_thin_min_outputs") and not (
        g.taps == 1 and _shift_takes(g, pass_name))


def _shift_takes(g, pass_name):
    return shift.applies(g, pass_name) and shift.wins(g, pass_name)


def fft_beats(g, pass_name):
    """Whether the FFT takes this pass from the implicit GEMM: its estimate, against the
    implicit GEMM's multiply-adds, ``implicit_fft_cost_factor`` times as costly as against
    the direct sums it counts (``fft.beats``), asked of the whole layer. 2 threads, AVX-512,
    each pass of 2 to 8 images of 13 × 13 to 31 × 31 kernels ran up to 5.6 times as fast on
    the implicit GEMM as on the FFT (one pass alike), and strided ones (no FFT) 2.1–4.7 times
    as fast as on im2col; large batches of large kernels go to the FFT (BENCHMARKS.md, "Large
    kernels on the implicit GEMM")."""
    return fft.applies(g, pass_name) and fft.beats(g, tuning.value("implicit_fft_cost_factor"))


def input_lane_use(g):
    """The share of the planar tiles' lanes that compute dx's positions in a stride-1 input
    gradient: ``_planar_lane_use`` of ``input_padding``'s grid (dy padded, dx the padded
    input's interior; the input's padding ``g.pads``, none where it is not given)."""
    dy_pads, _, out = input_padding(g.padded, g.kernel, g.dilation, g.pads)
    return _planar_lane_use([o + lo + hi for o, (lo, hi) in zip(g.out, dy_pads)], out)


def _strided_input_wins(g):
    """``strided_input`` against im2col + col2im, for a strided input gradient: per phase
    (``by_phases``) for C of a vector or more, else the windows' columns folded
    (``window_fold``, where it wins: 1.5–3.8 times as fast as im2col + col2im on the layers
    of ``python -m cnnkit.bench.window_fold``, AVX-512) or one product over all phases
    (``subpixel``). 2 threads, best of 12 or more, ms, AVX-512 / AVX2 (emulated as the
    bench's ``--isa avx2``: OpenBLAS held to its Haswell kernels):

    * every phase reached by taps: per phase res3x3_s2 (C = 64) 4.8 against 7.0 / 7.2
      against 8.8; one product from ``implicit_subpixel_min_terms`` terms on, whose zero
      weights (the shifts a phase lacks) cost it below that, unless they are few
      (``implicit_subpixel_min_share`` of its terms are taps: 2-D kernels of 5 × 5 and more
      at stride 2) or the kernel is 3-D, whose columns cost im2col + col2im most
      (``python -m cnnkit.bench.subpixel``);
    * taps apart (``strided_input.taps_apart``: a kernel no wider than its stride), where
      the one product pads no shift with zero weights (k = s), or only whole phases (k < s):
      from ``implicit_min_taps`` terms on. dx of C channels from dy of K, on N maps:
      4 × 4 at stride 4, C = 3, K = 96, N = 32, 224 × 224: 5.07 against 17.48 / 7.65 against
      18.40; 2 × 2 at stride 2, C = 12, K = 48, N = 32, 56 × 56: 0.93 against 1.52 / 1.14
      against 1.63; 1 × 1 at stride 2, C = 8, K = 32, N = 64, 32 × 32: 0.31 against 0.50 /
      0.28 against 0.48 (per phase: 8 channels fill an AVX2 vector);
    * phases of zeros with taps apart (1 × 1 at stride 2), C of a vector or more: per phase,
      which writes those phases' zeros as it goes, up to ``implicit_empty_phases_max_terms``
      terms (K). K = 2·C from 32 to 1024 (N 128, 128, 32, 32, 16, 8 maps of 28², 14², 56²,
      28², 28², 14²), as a share of im2col + col2im's time: 0.74, 0.73, 0.84, 0.77, 0.88,
      1.20 / 0.68, 0.65, 0.98, 0.87, 1.04, 1.27. Inside resnet_small's training step (its
      1 × 1 shortcuts, K = 32 and 64, 128 images) the pass took 0.81–0.86 against 1.31–1.40
      and 0.40–0.43 against 0.96–1.00 ms (best of 30 steps): there the BLAS product of
      im2col + col2im shares the cores with the compiled kernels' threads around it.
      BENCHMARKS.md, "Strided input gradients whose taps lie apart";
    * phases of zeros left by a dilation sharing a factor with the stride
      (``strided_input.phases_left_by_dilation``), C of a vector or more: per phase, up to
      ``implicit_empty_phases_max_terms`` terms (K) as well, best of 5: 0.18–0.72 of im2col +
      col2im's time for 3 × 3 to 7 × 7 kernels at stride 2 and dilation 2, C = 16 to 256,
      K = 16 to 128; at K = 512 and 1024, 0.91–1.42 (BENCHMARKS.md, "Dilated strided input
      gradients per phase")."""
    apart = strided_input.taps_apart(g)
    if window_fold.wins(g):
        return True
    if g.in_channels >= compiled.LANES:
        return strided_input.every_phase_has_taps(g) or (
            apart or strided_input.phases_left_by_dilation(g)) and \
            g.out_channels <= tuning.value("implicit_empty_phases_max_terms")
    if apart:
        return strided_input.subpixel_terms(g) >= tuning.value("implicit_min_taps")
    return strided_input.every_phase_has_taps(g) and (
        strided_input.subpixel_terms(g) >= tuning.value("implicit_subpixel_min_terms") or
        len(g.kernel) == 3 or (len(g.kernel) == 2 and strided_input.subpixel_share(g) >=
                               tuning.value("implicit_subpixel_min_share")))


def _pointwise_few_images(g, pass_name):
    """A 1×1, stride-1 layer on fewer than ``implicit_pointwise_min_images`` images, where
    shift takes this pass (one BLAS product per image on the arrays as they are)."""
    return g.taps == 1 and g.unit_stride and \
        g.batch < tuning.value("implicit_pointwise_min_images") and _shift_takes(g, pass_name)


def forward_pass(xp, w, g):
    return _forward(xp, w, g)


def forward_from(source, w, g, bias=None):
    """The forward pass from a ``PaddedInput``, with the bias added as the channels-last
    kernel's rows are transposed to y (no separate pass over y: res3x3's is 8 MB).

    A channels-last product over enough images (``per_image_tasks``) runs per image. On an
    input not padded yet, each task pads its own image of x in cache: no pass pads the whole
    input first. When a weight gradient will read the padded input too (``source.shared``: a
    training step), each task writes its padded image into the copy it then reads, and the
    source keeps that copy. An input with nothing to pad (a 1×1 layer's, a valid one's) runs
    per image as well: each task's rows stay in a buffer of its own in cache until they are
    copied to y (the parallel products write every image's rows before copying any), and the
    next image's lines are fetched while a task runs (``implicit_gemm_numba.by_image``). 2
    threads, operands out of L2, per image against parallel products: AVX-512 pw1x1
    1.10–1.24 against 1.19–1.40 ms, 128 → 512 channels on 16 28 × 28 maps (1×1) 7.02–7.34
    against 9.37–9.61; AVX2 pw1x1 1.71–1.72 against 1.80–1.85; of the eight layers measured,
    one 2 % slower (256 → 128 channels on 28 × 28 maps, AVX2), the others faster or alike
    (BENCHMARKS.md, "Inputs with nothing to pad: forward passes per image, the next image
    fetched"). For inputs the tasks pad, 2 threads, against the padding pass and parallel
    products: under no_grad, AVX-512 res3x3 8.54 against 9.24 ms,
    res3x3_s2 4.55 against 5.24, vgg_c2 (N=128, 32 → 64 channels, 14 × 14) 3.70 against 3.97;
    AVX2 res3x3_s2 7.27 against 7.83, res3x3 13.75 against 13.86. Whole training steps, two
    in-process runs: AVX-512 res3x3 0.975 and 0.984 of the time, res3x3_s2 0.977 and 0.985,
    vgg_c2 0.984 and 0.981; AVX2 res3x3_s2 0.969, vgg_c2 0.980. (The weight gradient's kernel
    padding the images in its own tasks as well, with no copy kept, made the steps of
    res3x3_s2, alex_c1 and lenet_c1 1.04, 1.04 and 1.08 times slower: each pass copied the
    images, where one copy serves both.)"""
    planar = _groups_run_planar(g)
    if planar and _planar_per_image(g):
        return _planar_from(source, w, g, bias)
    if _per_image_forward(g, planar):
        x, pads, padded = source.data, source.pads, None
        if source.is_padded:  # already padded, or nothing to pad: the tables index it
            x, pads = source.padded(), None
        elif source.shared:
            padded = np.empty((g.batch, g.in_channels) + g.padded, np.float32)
        y = per_image_product(x, pads or ((0, 0),) * len(g.out),
                              group_panels(w, g.groups, _panels),
                              (g.out_channels // g.groups,) + w.shape[1:], g.dilation, g.out,
                              stride=g.stride, bias=bias, padded_copy=padded, groups=g.groups)
        if padded is not None:
            source.adopt(padded)
        return y
    return _forward(source.padded(), w, g, bias, planar)


def forward_plan(g):
    """``forward_from`` for this geometry, planned once (``dispatch.forward_plan``) where it
    runs one channels-last product over the batch (one group, neither planar nor per image):
    a ``ChannelsLastForward``; else None, and ``forward_from`` decides on each call."""
    if g.groups != 1 or g.dtype != np.float32:
        return None
    planar = _groups_run_planar(g)
    if planar or _per_image_forward(g, planar):
        return None
    return ChannelsLastForward(g)


class ChannelsLastForward:
    """``forward_from``'s channels-last product over the batch for one geometry, its product
    worked out once (``ChannelsLastProduct``): each call pads x (``source.padded``), lays out
    the weights' panels and runs the product, which adds the bias as it copies its rows into
    y. The decisions and tables around one small image's product cost as much as the product
    (BENCHMARKS.md, "One image: a plan per layer")."""
    __slots__ = ("product", "rows_shape", "y_shape")

    def __init__(self, g):
        self.product = channels_last_product(
            (g.batch, g.in_channels) + g.padded, (g.out_channels, g.in_channels) + g.kernel,
            g.stride, g.dilation, g.out)
        self.rows_shape = (g.batch, g.out_channels, math.prod(g.out))
        self.y_shape = (g.batch, g.out_channels) + g.out

    def __call__(self, source, w, bias=None):
        y = np.empty(self.rows_shape, np.float32)
        self.product(source.padded(), _panels(w), y, bias)
        return y.reshape(self.y_shape)


def _groups_run_planar(g):
    """Whether each group's forward product runs planar (``_runs_planar``): asked once per
    call and handed on (asking twice cost a small layer's call 4 µs)."""
    one = g.per_group()
    return _runs_planar(g.stride, one.out_channels, one.in_channels * g.taps, g.padded, g.out,
                        g.kernel, g.batch * g.groups, g.groups)


def _per_image_forward(g, planar=None):
    """Whether ``forward`` would run each group's product channels-last (``planar``: known
    already), and ``per_image_tasks`` as one task per image and group."""
    if planar is None:
        planar = _groups_run_planar(g)
    return not planar and per_image_tasks(g.batch * g.groups, math.prod(g.out),
                                          compiled.tile(g.per_group().out_channels)[2])


def _runs_planar(stride, out_channels, terms, padded, out, kernel, images=None, groups=1):
    """Whether a forward product over ``images`` (of ``groups`` groups) runs channels-first
    (``planar_wins``, stride 1 only)."""
    return all(s == 1 for s in stride) and planar_wins(out_channels, terms, padded, out, kernel,
                                                       images, groups)


def _forward(xp, w, g, bias=None, planar=None):
    """The forward pass on the padded input; ``planar``: whether each group's product runs
    planar, when known (``_groups_run_planar``)."""
    per_group = g.in_channels // g.groups
    if planar is None:
        planar = _groups_run_planar(g)
    if g.groups == 1:
        return forward(xp, w, g.stride, g.dilation, g.out, bias, planar=planar)
    if planar:
        return _forward_planar(xp, w, g.dilation, g.out, bias=bias, groups=g.groups)
    # Each group's product reads its channels of xp in place and writes its block of y.
    y = np.empty((g.batch, g.groups, g.out_channels // g.groups, math.prod(g.out)), np.float32)
    biases = [None] * g.groups if bias is None else np.split(bias, g.groups)
    for j, (w_j, b_j) in enumerate(zip(np.split(w, g.groups), biases)):
        forward(xp, w_j, g.stride, g.dilation, g.out, b_j, first_channel=j * per_group,
                y=y[:, j], planar=False)
    return y.reshape((g.batch, g.out_channels) + g.out)


def needs_finite(geometry, pass_name):
    """The input gradient reads dy zero-padded, and those zeros meet w, except for a 1×1
    kernel at stride 1 (dx = wᵀ dy, nothing to pad): w then may hold inf or NaN, and its
    check, a pass over all of w, is spared (4 MB for 2048 → 512 channels). A strided input
    gradient of few channels also needs dy finite on one product over all phases, which
    gives each phase zero weights for the shifts it lacks (``strided_input.subpixel``), and
    neither when it folds the windows' columns (``window_fold``: no zero meets anything)."""
    if pass_name != "input" or (geometry.taps == 1 and geometry.unit_stride):
        return frozenset()
    if not geometry.unit_stride:
        arrangement = _strided_arrangement(geometry)
        if arrangement is window_fold.input_gradient:
            return frozenset()
        if arrangement is strided_input.subpixel:
            return frozenset({"w", "dy"})
    return frozenset({"w"})


def checks_finite(geometry, pass_name):
    """The operands of ``needs_finite`` that the pass checks itself as it reads them, raising
    ``finite.NotFinite`` (the dispatcher makes no pass over them first): dy, in a strided
    input gradient of few channels (``strided_input.subpixel``); w, in the other input
    gradients that need it finite, as its panels are laid out (``_flipped_panels``,
    ``strided_input.by_phases``), where a pass of its own read all of w again (9.4 MB for
    512 → 512 channels, 3 × 3: BENCHMARKS.md, "The input gradient's weights checked as they
    are laid out")."""
    if pass_name != "input" or "w" not in needs_finite(geometry, pass_name):
        return frozenset()
    if not geometry.unit_stride and _strided_arrangement(geometry) is strided_input.subpixel:
        return frozenset({"dy"})
    return frozenset({"w"})


def _strided_arrangement(g):
    """The strided input gradient's arrangement: a product per phase for a vector of input
    channels or more (per group), else the windows' columns folded where that wins
    (``window_fold.wins``), else one product over all phases."""
    if g.in_channels // g.groups >= compiled.LANES:
        return strided_input.by_phases
    if window_fold.wins(g):
        return window_fold.input_gradient
    return strided_input.subpixel


def input_pass(dy, w, g, dy_finite=False):
    """``dy_finite``: the caller knows dy is finite (checked), so nothing checks it again.
    Checks w itself where ``checks_finite`` says so."""
    check_w = "w" in checks_finite(g, "input")
    if g.unit_stride:
        return backward_input(dy, w, g.padded, g.dilation, g.pads, g.groups, check_w=check_w)
    arrangement = _strided_arrangement(g)
    if arrangement is window_fold.input_gradient:
        return arrangement(dy, w, g.padded, g.stride, g.dilation, g.pads, groups=g.groups)
    if arrangement is strided_input.subpixel:
        return arrangement(dy, w, g.padded, g.stride, g.dilation, g.pads, groups=g.groups,
                           check_dy=not dy_finite)
    return arrangement(dy, w, g.padded, g.stride, g.dilation, g.pads, groups=g.groups,
                       check_w=check_w)


def weight_pass(xp, dy, g):
    return _weight(xp, dy, g, False)[0]


def weight_from(source, dy, g, with_bias=False):
    """The weight gradient from a ``PaddedInput``, with the bias gradient summed from dy as it
    is transposed to channels-last. Returns (dw, db or None)."""
    return _weight(source.padded(), dy, g, with_bias)


def _weight(xp, dy, g, with_bias):
    # Each product reads its channels of xp in place and its block of dy: one group's, or
    # ``lane_groups`` narrow groups' as one product whose blocks off the diagonal (one
    # group's dy against another's x) are computed and dropped.
    together = lane_groups(g)
    per_product = g.in_channels // g.groups * together
    blocks = np.split(dy, g.groups // together, axis=1) if g.groups > together else [dy]
    parts = [backward_weight(xp, dy_j, g.kernel, g.stride, g.dilation, with_bias,
                             channels=per_product, first_channel=j * per_product)
             for j, dy_j in enumerate(blocks)]
    db = None
    if with_bias:
        parts, db = [p[0] for p in parts], np.concatenate([p[1] for p in parts])
    if together == 1:
        return (np.concatenate(parts) if len(parts) > 1 else parts[0]), db
    k_group, c_group = g.out_channels // g.groups, g.in_channels // g.groups
    diagonal = [(slice(i * k_group, (i + 1) * k_group), slice(i * c_group, (i + 1) * c_group))
                for i in range(together)]
    return np.concatenate([dw[d] for dw in parts for d in diagonal]), db


def lane_groups(g):
    """How many groups the weight gradient computes as one product: as many narrow groups
    as one vector's lanes hold output channels of (a divisor of G), so that the tile's lanes
    are used, at the price of the products between one group's dy and another's x, which
    are dropped. The weight kernel puts the output channels on the lanes: 4 of a group's
    channels used a quarter of AVX-512's. 2 threads, 128 → 128 channels, 3 × 3, 16 28 × 28
    maps, per group against together, AVX-512: 32 groups of 4 (4 together) 7.47 against
    3.97 ms, at stride 2 4.30 against 2.17; 64 groups of 2 12.10 against 4.01; 16 groups of
    8 5.49 against 4.18; AVX2: 32 groups (2 together) 7.00 against 4.62, at stride 2 4.17
    against 2.75. 8 groups of 16, which fill a vector alone, two together: 3.89 against 4.85
    ms, so a group that fills a vector runs alone."""
    together = max(1, compiled.LANES // (g.out_channels // g.groups))
    while g.groups % together:
        together -= 1
    return together


def _offsets(x_shape, kernel, dilation, channels=None, first_channel=0):
    """offset per (c, a) tap, c-major then the kernel's dims in order (w's layout), for the
    input's channels from ``first_channel`` on (``channels`` of them; default: all)."""
    count = x_shape[1] - first_channel if channels is None else channels
    key = (int_key(x_shape[1:]), int_key(kernel), int_key(dilation), count, first_channel)
    return shared_table(_offset_table, key, count * math.prod(kernel))


def _offset_table(channel_shape, kernel, dilation, count, first_channel):
    channel, *pitch = flat_pitches(channel_shape)
    table = (first_channel + np.arange(count, dtype=np.int64)) * channel
    for k, d, p in zip(kernel, dilation, pitch):
        table = np.add.outer(table, np.arange(k, dtype=np.int64) * (d * p)).reshape(-1)
    return table


def _corners(x_shape, out, stride):
    """corner per output position (n, i), image-major then the output's dims in order."""
    return shared_table(_corner_table, (int_key(x_shape), int_key(out), int_key(stride)),
                  x_shape[0] * math.prod(out))


def _corner_table(x_shape, out, stride):
    image, pitch = math.prod(x_shape[1:]), flat_pitches(x_shape[2:])
    table = np.arange(x_shape[0], dtype=np.int64) * image
    for o, s, p in zip(out, stride, pitch):
        table = np.add.outer(table, np.arange(o, dtype=np.int64) * (s * p)).reshape(-1)
    return table


# Index tables of at most this many entries (128 KB) are built once per shape and shared by
# later calls (``_shared_table``): a layer on one image spent as long building its two
# tables as its product took (vgg_small's 32 → 64 channels on 14 × 14: 13.6 µs, against
# about 24 µs for the kernel). Larger tables are rebuilt, their products dwarfing that.
_SHARED_TABLE_ENTRIES = 16384


def shared_table(build, key, entries):
    """build(*key), shared between calls when it has few ``entries``. The kernels only read
    these tables, and so must every caller."""
    if entries > _SHARED_TABLE_ENTRIES:
        return build(*key)
    return _shared_table(build, key)


@functools.lru_cache(maxsize=256)
def _shared_table(build, key):
    return build(*key)


def int_key(values):
    """``values`` as a tuple of Python ints: a cache key of a shape, stride or pad pair
    whatever integer types the caller's values had."""
    return tuple(map(int, values))


@tuning.kept(threads=True)  # ``images``' rules ask ``per_image_tasks``, by the thread count
def planar_wins(out_channels, taps, padded=None, out=None, kernel=None, images=None, groups=1):
    """Whether the planar (channels-first) orientation beats the channels-last one, for a
    stride-1 product with ``taps`` = C·prod(kernel) terms per output. Channels-last puts the
    output channels on the lanes, so below one vector of them (LANES: 16 on AVX-512, 8 on
    AVX2) lanes idle, and it ends in a transpose of y, which outweighs a thin, wide product
    (at most ``implicit_planar_max_terms_per_output`` terms per output channel) unless the
    planar tiles idle more of their lanes: they run over the padded map (``padded``) in
    strips of a tile's width, ``_planar_lane_use`` of it the ``out`` positions. Measured on
    both ISAs by ``python -m cnnkit.bench.orientation`` (one core: AVX-512, 8 outputs of
    432 terms 0.96 against 1.58 ms; 256 of 64 terms 2.32 against 3.76, on AVX2 4.26 against
    5.08; dense products such as 32 outputs of 576 terms stay channels-last, 1.83 against
    2.56 ms; 1280 outputs of 320 terms on 7×7 maps, 77 % of the planar lanes used, 2.58
    channels-last against 2.98 ms).

    A 1×1 product (``kernel`` all ones) is planar whenever that uses more of its lanes than
    channels-last, however many terms: each term is then a whole plane read in aligned
    vectors, while channels-last broadcasts one value of each of its terms' planes per
    position (one stream per plane) and idles the lanes past its output channels in the last
    vector. A k × k kernel's planar loads are unaligned, and there the lanes alone do not
    decide it. Same command, channels-last against planar, AVX-512: 24 outputs of 144 terms on
    56 × 56 maps 10.23 against 5.07 ms, 20 of 256 on 16 × 16 1.35 against 0.81, 40 of 240 on
    28 × 28 3.12 against 2.45, but 24 outputs of a 3 × 3 kernel's 576 terms 7.03 against
    8.65; AVX2, whose 8-lane vectors those channel counts fill better: 20 of 256 1.40 against
    1.26, 40 of 240 5.87 against 4.17, and 24 of 144 (no lane idle either way) 7.51 against
    8.60, kept channels-last. A 1×1 product on large maps (``implicit_planar_1x1_min_positions``
    per image) is planar unless it is deep, on tiles as wide as the planar ones, over
    ``images`` enough for a task per image (``_deep_per_image``).

    Fewer output channels than a vector's lanes are planar unless the planar strips idle more
    of their lanes, which they do on maps of a few positions (a strip is per image). Same
    command, planar against channels-last, AVX-512: 10 outputs of 512 terms on 2 × 2 maps
    6.06 against 0.78 ms, 8 of a 3 × 3 kernel's 576 on 4 × 4 maps 1.18 against 0.67, 12 of
    256 on 4 × 4 0.26 against 0.14; 8 of 288 on 7 × 7, whose strips are 77 % used, 0.41
    against 0.52; AVX2, 4 outputs of 512 on 2 × 2 1.39 against 0.67.

    Where both use their lanes alike (a 1-D map fills the planar strips, and K fills the
    vectors), a kernel of more than one tap runs channels-last over ``images`` too few for a
    task per image (``per_image_tasks``) in one group: planar, the whole batch's grid is then
    written and cropped into y in a pass of its own, and the batch's last image copied aside
    for the strips that read past it. 2 threads, wall time, planar against channels-last
    (``python -m cnnkit.bench.orientation``, its 1-D table): one image of 32 → 256
    channels, 64 long (3 taps), 0.064 against 0.047 ms; 4 × 16 → 128, 2048 long, 0.966
    against 0.622; with a task per image planar stays, 16 × 8 → 64, 4096 long, 1.354
    against 1.607. Grouped layers (``groups`` > 1, ``images`` counting each group's) keep
    planar on a tie: their planar product runs every group in one launch, the channels-last
    one a launch per group, and neither was measured against the other here."""
    few = out_channels < compiled.LANES
    if few and padded is None:
        return True
    pointwise = kernel is not None and math.prod(kernel) == 1
    if pointwise and math.prod(out) >= tuning.value("implicit_planar_1x1_min_positions") and \
            not _deep_per_image(out_channels, taps, out, images):
        return True
    if padded is not None:
        planar_use = _planar_lane_use(padded, out)
        channels_last_use = out_channels / compiled.tile(out_channels)[2]
        if few:
            return planar_use >= channels_last_use
        if pointwise and planar_use > channels_last_use:
            return True
    if taps > tuning.value("implicit_planar_max_terms_per_output") * out_channels:
        return False
    if padded is None:
        return True
    if not pointwise and images is not None and groups == 1 and \
            not per_image_tasks(images, math.prod(out), out_channels):
        return planar_use > channels_last_use
    return planar_use >= channels_last_use


def _deep_per_image(out_channels, taps, out, images):
    """Whether a 1×1 product on a large map (``implicit_planar_1x1_min_positions``) escapes
    the large-map rule: a deep one (``implicit_large_map_min_terms_per_output`` terms per
    output channel or more), on a channels-last tile at least as wide as the planar tile,
    over enough ``images`` (None: not known) for one task per image (``per_image_tasks``).
    The lane rules then decide, as on smaller maps. 2 threads, one process, per image
    against planar, ms, AVX-512 / AVX2: 256 → 64 channels on 32 56 × 56 maps 13.40–14.71
    against 19.25–20.02 / 21.46–22.94 against 33.69–35.55; square products and AVX-512's
    narrower tiles ran either way or lost (BENCHMARKS.md, "1×1 products on large maps: deep
    ones channels-last")."""
    tile = compiled.tile(out_channels)
    return images is not None and tile[1] >= compiled.PLANAR_VECTORS and \
        taps >= tuning.value("implicit_large_map_min_terms_per_output") * out_channels and \
        per_image_tasks(images, math.prod(out), tile[2])


def planar_length(padded, out):
    """Positions of the padded map's flat grid from the first output to the last."""
    return sum((o - 1) * p for o, p in zip(out, flat_pitches(padded))) + 1


def planar_strip_width():
    """Positions per strip of the planar tile: its NV vectors' lanes."""
    return compiled.LANES * compiled.PLANAR_VECTORS


def _planar_lane_use(padded, out):
    """The share of the planar tiles' lanes that compute outputs, on one image."""
    width = planar_strip_width()
    return math.prod(out) / (-(-planar_length(padded, out) // width) * width)


def forward(xp, w, stride, dilation, out, bias=None, first_channel=0, y=None, flipped=False,
            planar=None, check_w=False):
    """xp (N, C, *padded) float32, w (K, C', *kernel) -> y (N, K, *out), plus ``bias`` (K,)
    when given, from the C' channels of xp from ``first_channel`` on (a group's: C' = C by
    default). With ``y`` (N, K, prod(out)), a view of a larger array allowed, into it.
    ``flipped``: w is (C', K, *kernel) and the product's weights are w with its first two axes
    swapped and its kernel flipped (the stride-1 input gradient's), laid out without a copy
    of that transpose for the channels-last kernel; with ``check_w`` too, NotFinite("w") is
    raised for a w that holds inf or NaN (``_flipped_panels``; the planar product's caller
    checks w itself). ``planar``: whether the product runs planar (``_runs_planar``), when the
    caller knows."""
    n = xp.shape[0]
    k, c = w.shape[1::-1] if flipped else w.shape[:2]
    if planar is None:
        planar = _runs_planar(stride, k, c * math.prod(w.shape[2:]), xp.shape[2:], out,
                              w.shape[2:], n)
    if planar:
        if flipped:
            w = _transposed(w)
        planar = _forward_planar(xp, w, dilation, out, first_channel, bias)
        if y is None:
            return planar
        y[...] = planar.reshape(y.shape)
        return y
    if flipped:
        wt = _flipped_panels(w, check_w)
    else:
        wt = _panels(w)
    y_rows = np.empty((n, k, math.prod(out)), dtype=np.float32) if y is None else y
    channels_last(xp, wt, (k, c) + w.shape[2:], stride, dilation, out, y_rows, bias,
                  first_channel)
    return y_rows.reshape((n, k) + tuple(out)) if y is None else y


def _transposed(w, groups=1):
    """The stride-1 input gradient's product weights, laid out: w (K, C', *kernel) ->
    (G·C', K/G, *kernel), each group's block with its two channel axes swapped and its
    kernel flipped, one group after another."""
    k, c, kernel = w.shape[0], w.shape[1], w.shape[2:]
    reverse = (slice(None),) * 3 + (slice(None, None, -1),) * len(kernel)
    swapped = np.swapaxes(w.reshape((groups, k // groups, c) + kernel), 1, 2)[reverse]
    return np.ascontiguousarray(swapped).reshape((groups * c, k // groups) + kernel)


def _flipped_panels(w, check=False):
    """The stride-1 input gradient's weights in panels: B[(c', a), k] = w[c', k, −a] for w
    (C', K, *kernel), w's rows being the product's taps: each row of B gathered from w by
    ``weight_rows_to_panels``, its taps in reverse order. A copy of w with its kernel
    reversed, then laid out, took 3 times as long (NumPy copies a 3 × 3 kernel's reversed
    view nine floats at a time): 2 threads, 512 → 512 channels 1.84 against 0.59 ms, 256 →
    256 0.66 against 0.14, 64 → 64 0.032 against 0.012. With ``check``, raises
    NotFinite("w") for a w that holds inf or NaN, found as it is laid out."""
    c, k = w.shape[:2]
    taps = math.prod(w.shape[2:])
    out = compiled.empty_panels(k, c * taps)
    finite = weight_rows_to_panels(np.ascontiguousarray(w, np.float32).reshape(c, k, taps),
                                   shared_table(_reversed_taps, (c, taps), c * taps), 1, out,
                                   check)
    if not finite:
        raise NotFinite("w")
    return out


def _reversed_taps(channels, taps):
    """Row c·T + (T − 1 − a) of w (C, T) for each row (c, a): every channel's taps reversed."""
    return (np.arange(channels, dtype=np.int64)[:, None] * taps +
            np.arange(taps - 1, -1, -1, dtype=np.int64)).reshape(-1)


def group_panels(w, groups, layout):
    """Each group's weights laid out by ``layout`` (a block of w's rows -> panels), one group
    after another along the panels' axis: ``per_image_product``'s weights for a grouped
    layer. Cache-line aligned, as ``compiled.panels``'s own."""
    parts = [layout(w_j) for w_j in np.split(w, groups)]
    if groups == 1:
        return parts[0]
    panels = aligned.empty((sum(p.shape[0] for p in parts),) + parts[0].shape[1:])
    np.concatenate(parts, out=panels)
    return panels


def _panels(w):
    """The forward product's weights in panels: w (K, C, *kernel) as K outputs of C·taps."""
    return compiled.panels(w.reshape(1, w.shape[0], -1))


def per_image_product(x, pads, wt, w_shape, dilation, out, source=None, y=None, stride=None,
                      bias=None, padded_copy=None, groups=1, finite=None, slide=None):
    """The channels-last product of ``channels_last`` (all of x's channels; stride 1 unless
    given) with one task per image, each padding its own image of x by ``pads``: y (N, K,
    *out), plus ``bias`` (K,) when given. With ``source``, each task instead gathers its
    image's cells into ``y`` (N, K', cells): y[n, k, s] = row n·P + source[s] // Kp, column
    source[s] % Kp + k of the product's rows (P = prod(out) positions per image, Kp = K
    padded to the tile; ``strided_input.subpixel``). With ``padded_copy`` (N, C, *padded),
    each task pads its image into its place there and reads it from there: x padded, kept.

    With ``groups`` > 1 (no ``source``), ``w_shape`` is one group's (K/G, C/G, *kernel) and
    ``wt`` the groups' panels in turn (``group_panels``): one task per image and group, which
    pads and reads only the group's C/G channels (``implicit_gemm_numba.by_image``).

    ``finite``: None, or an array of N·G bytes, set to whether each image (and group) of x is
    finite (each task finds it as it pads its image).

    ``slide``: the tiles along output rows where ``sliding_width`` takes them (None), never
    (False), or wherever they can run, whatever they waste (True; a ValueError naming
    ``slide`` where they cannot): ``cnnkit tune`` times both to measure their gain."""
    n = x.shape[0]
    if finite is not None and finite.shape != (n * groups,):  # the kernel writes finite[task]
        raise ValueError(f"finite must have one byte per task, {n * groups}, got shape "
                         f"{finite.shape}")
    x = x.reshape((n * groups, x.shape[1] // groups) + x.shape[2:])
    k = w_shape[0]
    padded = padded_shape(x.shape, pads)
    vectors = compiled.tile(k)[1]
    offset = _offsets(padded, w_shape[2:], dilation, w_shape[1])
    stride = stride or (1,) * len(out)
    corner = _corners((1,) + padded[1:], out, stride)  # one image's
    if y is None:
        y = np.empty((n, k * groups, math.prod(out)), np.float32)
    y_split = y if groups == 1 else y.reshape((n * groups, k) + y.shape[2:])
    sliding = 0 if slide is False else sliding_width(
        k, w_shape[2:], stride, dilation, out, padded[2:], source,
        math.inf if slide else None)
    if slide and not sliding:
        raise ValueError("slide=True: no tile along output rows runs this product (its "
                         "width of outputs, kernel width, stride or dilation along the rows, "
                         "or its rows shorter than a tile)")
    compiled.BY_IMAGE[vectors](*image_padding(x, pads),
                               compiled.NO_PADDED_COPY if padded_copy is None
                               else padded_copy.reshape(-1),
                               wt, offset,
                               np.array([0, offset.size], np.int64), corner, compiled.NO_ROWS,
                               np.array([0, corner.size], np.int64), math.prod(out), y_split,
                               compiled.NO_ROWS if source is None else source,
                               compiled.NO_BIAS if bias is None else
                               np.ascontiguousarray(bias, dtype=np.float32),
                               tap_block(padded[2:], w_shape[2:], k), groups, False,
                               compiled.NO_CHECK if finite is None else finite,
                               sliding, out[-1], tuning.value("implicit_image_chunk"))
    return y.reshape((n, k * groups) + tuple(out)) if source is None else y


def sliding_width(k, kernel, stride, dilation, out, padded, source=None, gain=None):
    """KW when ``per_image_product``'s tiles run along output rows
    (``microkernel.sliding_micro_kernel``), else 0, for K = ``k`` outputs, an input of
    ``padded`` spatial shape and ``out`` positions: a tile NV vectors wide that has a form along
    rows on this target (``implicit_gemm_numba.SLIDING_ROWS``: NV 1 everywhere, 2 on AVX-512;
    the plain tile loads a term for each multiply-add at NV 1 and for every second one at NV 2,
    the tile along rows one for KW·NV of them), a kernel KW = 3 or 5 wide (``SLIDING_WIDTHS``)
    at stride and dilation 1 along the rows, and rows that waste little of it: the outputs its
    tiles compute (``sliding_counts``: row by row, or a map's rows as one run over the padded
    grid, a volume's plane by plane) per output kept under ``gain``, by default its speed over
    the plain tile's (``implicit_gemm_numba.sliding_gain``; ``along_rows``, which the lane-wise
    kernels' broadcast tile asks too). One core, the products alone (``python -m
    cnnkit.bench.tiles --sliding``), AVX-512: 16 → 16 channels, 3 × 3, on 32 28 × 28 maps
    158.8–176.6 GFLOP/s along rows against 73.4–77.0 for the 8 × 16 tile; 6 → 16, 5 × 5, on
    14 × 14 maps 161.2–174.6 against 73.8–74.0; AVX2, 8 outputs: 76.9–77.4 against 68.2–69.2.
    resnet_small's 16 → 16 layer, 2 threads, AVX-512: forward pass 0.64, training step 0.74 of
    the time (BENCHMARKS.md, "One vector of outputs"); two vectors and rows as runs:
    BENCHMARKS.md, "Two vectors of outputs along rows"."""
    if source is not None:
        return 0
    maps = len(out) > 1  # each map's rows (a volume's planes') evenly spaced
    rows = compiled.along_rows(compiled.tile(k)[1], kernel[-1], stride[-1], dilation[-1],
                               math.prod(out) // out[-1], out[-1],
                               stride[-2] * padded[-1] if maps else 0, gain,
                               out[-2] if maps else 0)
    return int(kernel[-1]) if rows else 0


def channels_last(xp, wt, w_shape, stride, dilation, out, y=compiled.NO_Y, bias=None,
                  first_channel=0):
    """The channels-last product of weights of shape ``w_shape`` (K, C', *kernel), laid out in
    ``wt`` by ``compiled.panels``: its rows (N·S + MR, Kp), row n·S + s holding y[n, :, s]
    (S = prod(out), Kp = K padded to the tile's width, the last MR rows spare), from
    ``forward``'s channels of xp. Unless ``y`` is empty, its tasks also copy their rows into
    y (N, K, S) channels-first, plus ``bias``."""
    return channels_last_product(xp.shape, tuple(w_shape), tuple(stride), tuple(dilation),
                                 tuple(out), first_channel)(xp, wt, y, bias)


class ChannelsLastProduct:
    """``channels_last`` for one shape of input and weights: its tile, tables and tasks,
    worked out once (``channels_last_product``); called as product(xp, wt, y, bias)."""
    __slots__ = ("kernel", "rows", "k_padded", "positions", "corner", "offsets", "tasks",
                 "tap_block", "_table_arguments")

    def __init__(self, x_shape, w_shape, stride, dilation, out, first_channel=0):
        self.rows, vectors, self.k_padded = compiled.tile(w_shape[0])
        self.kernel = compiled.ENTRY[vectors][0]
        self.positions = x_shape[0] * math.prod(out)
        self._table_arguments = (x_shape, w_shape[2:], dilation, w_shape[1], first_channel,
                                 out, stride)
        # Small tables (a few images' worth) are kept here; larger ones are looked up by each
        # call (``shared_table``), whose product dwarfs that, so that the kept products hold
        # at most _KEPT_TABLE_ENTRIES entries per table.
        self.corner = self.offsets = None
        if self.positions <= _KEPT_TABLE_ENTRIES:
            self.corner = _corners(x_shape, out, stride)
        if w_shape[1] * math.prod(w_shape[2:]) <= _KEPT_TABLE_ENTRIES:
            self.offsets = _offsets(x_shape, w_shape[2:], dilation, w_shape[1], first_channel)
        self.tasks = task_split(self.positions, self.k_padded, compiled.LANES * vectors)
        self.tap_block = tap_block(x_shape[2:], w_shape[2:], w_shape[0])

    def __call__(self, xp, wt, y=compiled.NO_Y, bias=None):
        corner, offsets = self.corner, self.offsets
        if corner is None or offsets is None:  # a large table, looked up by this call
            x_shape, kernel, dilation, channels, first_channel, out, stride = \
                self._table_arguments
            if corner is None:
                corner = _corners(x_shape, out, stride)
            if offsets is None:
                offsets = _offsets(x_shape, kernel, dilation, channels, first_channel)
        y_last = aligned.empty((self.positions + self.rows, self.k_padded))
        self.kernel(np.ascontiguousarray(xp), wt, offsets, corner, y_last, y, *self.tasks,
                    self.tap_block, compiled.NO_ROWS,
                    compiled.NO_BIAS if bias is None else
                    np.ascontiguousarray(bias, dtype=np.float32))
        return y_last


# Entries of an index table a kept ``ChannelsLastProduct`` holds (32 KB), and how many
# products are kept: with the plans that hold them (``dispatch.forward_plan``), at most 32 MB
# of tables, as ``shared_table``'s own cache.
_KEPT_TABLE_ENTRIES = 4096
KEPT_PRODUCTS = 256


@tuning.kept(threads=True, maxsize=KEPT_PRODUCTS)
def channels_last_product(x_shape, w_shape, stride, dilation, out, first_channel=0):
    """The ``ChannelsLastProduct`` of these shapes (tuples), made once per shape, tuning state
    and thread count."""
    return ChannelsLastProduct(x_shape, w_shape, stride, dilation, out, first_channel)


@tuning.kept(threads=True)
def task_split(positions, channels, width):
    """(chunks, groups): the channels-last kernel's parallel tasks, as chunks of its
    ``positions`` (output rows) times groups of its weights' panels (``channels`` columns in
    panels ``width`` wide). Each task reads its chunk's inputs and its panels' weights for
    every term: over c chunks and g groups, the terms times g·P + c·Kp floats (P positions,
    Kp channels), least at g = √(tasks · Kp / P) for a given number of tasks.

    Numba's threads each take an equal run of the tasks, so tasks beyond one per thread
    balance nothing; what they buy is a task's output rows, (P / c) × (Kp / g) floats, small
    enough to stay in cache while its tiles add to them after each block of taps and copy
    them to y at its end (``implicit_image_chunk`` floats, as a per-image product's chunks).
    So the split is the fewest tasks, a multiple of the thread count, whose rows fit, divided
    into chunks and groups the way that reads least; a product too large for that at
    ``implicit_chunks_per_thread`` tasks per thread splits that many by the formula above. A
    large map (P ≫ Kp) is split by positions alone, as res3x3 (32 768 positions, 64
    channels: 16 tasks), and a deep layer on a small map, whose weights outweigh its inputs,
    by channels too. The formula's split of 16 tasks against 16 by positions alone (2
    threads, AVX-512): 320 → 1280 channels on 8 7 × 7 maps (1×1) 1.38 against 1.52 ms; 512 →
    512 on one 7 × 7 map (3×3) 2.21 against 2.91; 256 → 256 on 64 8 × 8 maps 15.5 against
    15.5 (g = 1 there). The fewest tasks against that formula's 16 (forward passes, 2
    threads, AVX-512, alternating in one process, best of 7 turns): 320 → 1280 on 8 7 × 7
    maps (1, 4 now) 1.275 against 1.393 ms; 512 → 512 on one 7 × 7 map 1.588 against 1.921;
    one image of 48 → 256 channels on 8 × 8 (7 × 7) 0.487 against 0.610; BENCHMARKS.md,
    "Tasks as few as keep their rows in cache", has the rest."""
    threads = numba.get_num_threads()
    most = tuning.value("implicit_chunks_per_thread") * threads
    panels = max(1, channels // width)
    budget = tuning.value("implicit_image_chunk")
    for tasks in range(threads, most + 1, threads):
        fits = [(g * positions + tasks // g * channels, tasks // g, g)
                for g in range(1, min(panels, tasks) + 1) if tasks % g == 0
                and -(-positions // (tasks // g)) * -(-panels // g) * width <= budget]
        if fits:
            return min(fits)[1:]
    groups = max(1, min(panels, round(math.sqrt(most * channels / max(positions, 1)))))
    return max(1, most // groups), groups


# Recent x86 cores' L1 data caches repeat their sets every 4 KB (one way: 32 KB of 8 ways, 48
# KB of 12), and their first-level data TLBs map 64 to 72 pages of 4 KB. (Many ARM cores' ways
# are 16 KB, where 1 KB planes still share a sixteenth of the sets; the rule was measured on
# x86 only.)
_L1_WAY_BYTES = 4096
_TLB_BYTES = 64 * 4096


@tuning.kept
def tap_block(padded, kernel, outputs):
    """Taps per pass of the channels-last kernels over their tiles, for an input of
    ``padded`` spatial shape and ``outputs`` output channels: ``implicit_tap_block``, or
    ``implicit_plane_tap_block`` for a 1×1 product whose planes crowd the caches; for a
    product that can run along rows (a tile with an entry in ``SLIDING_ROWS``, a kernel
    ``SLIDING_WIDTHS`` wide), whole rows of the kernel, rounded down. Each pass's sums are added to the rows
    after the pass, so the passes' bounds decide the rounding: with the same bounds, the
    tiles along rows (``sliding_width``, per image) and the plain tile (over the batch's
    positions, which ``per_image_tasks`` chooses by the thread count) give the same floats. Each of its taps is a plane of its own, one
    cache line of which each tile reads, and the next tile reads mostly the same lines: a
    block's lines have to stay in L1 until then. They do not when the planes lie a multiple
    of a quarter of L1's way apart (a 16 × 16 map's 1 KB: every plane's line falls on the same
    4 of L1's 64 sets, 32 to 48 lines for the whole block), nor when the block spans more
    pages than the TLB maps (a 28 × 28 map's 3 KB planes: 98 pages for 128 taps). Forward
    passes of 1×1 layers, 2 threads, 32 taps against 128 (ms, AVX2 / AVX-512): 256 → 64
    channels on 32 16 × 16 maps 1.88 against 2.12 / 1.06 against 1.16, 128 → 128 on 16 28 × 28
    maps 2.93 against 3.33 / 1.86 against 2.16. On 15 × 15 and 14 × 14 maps, where neither
    holds, 32 taps ran slower on AVX2, 1.58 against 1.46 ms and 1.38 against 1.28
    (``python -m cnnkit.bench.tiles --blocks`` prints both constants)."""
    block = tuning.value("implicit_tap_block")
    plane = 4 * math.prod(padded)
    along_rows = compiled.sliding_rows(compiled.tile(outputs)[1])
    if along_rows and kernel[-1] in compiled.SLIDING_WIDTHS:
        return max(kernel[-1], block - block % kernel[-1])
    if math.prod(kernel) != 1 or plane < aligned.LINE:
        return block
    if plane % (_L1_WAY_BYTES // 4) == 0 or block * plane > _TLB_BYTES:
        return min(block, tuning.value("implicit_plane_tap_block"))
    return block


def _forward_planar(xp, w, dilation, out, first_channel=0, bias=None, groups=1):
    """Stride 1, channels-first: y on the padded input's flat grid (border columns computed
    and dropped, as in ``conv_shift``), one strip of positions by a few channels per tile
    (``cpu.TILES``' planar: 64 × 4 on AVX-512, 16 × 6 on AVX2), plus ``bias`` (K,) when
    given, added by each strip's task. With ``groups``, w is (K, C/G, *kernel) and each
    group's K/G outputs read its C/G channels, all groups in one launch."""
    n, c, spatial = xp.shape[0], xp.shape[1], xp.shape[2:]
    k, taps = w.shape[0], math.prod(w.shape[1:])
    plane, width = math.prod(spatial), compiled.LANES * compiled.PLANAR_VECTORS
    length = planar_length(spatial, out)
    # each group's rows padded to whole row tiles
    k_group = k // groups
    rows_k = -(-k_group // compiled.PLANAR_ROWS) * compiled.PLANAR_ROWS
    w_rows = np.zeros((groups, rows_k, taps), np.float32)
    w_rows[:, :k_group] = w.reshape(groups, k_group, taps)
    w_rows = w_rows.reshape(groups * rows_k, taps)
    offset = _offsets(xp.shape, w.shape[2:], dilation, w.shape[1], first_channel)
    # y on the grid, K rows per image (the last row tile's extra rows go to ``spare``): for a
    # 1×1 layer whose map fills whole strips it is y itself, with nothing to crop or copy
    y_grid = aligned.empty((n, k, -(-plane // width) * width))
    spare = np.empty(width, np.float32)
    x_flat = np.ascontiguousarray(xp).reshape(-1)
    image = c * plane
    # The last image's last strip reads up to a tile width past the input, unless its map
    # fills whole strips (a 1×1 layer's 16 × 16): that image then reads from a copy with room
    # to spare, the others read straight through into the next image.
    reach = (groups - 1) * (image // groups) + offset[-1]  # the last group's last tap
    in_place = n if (n - 1) * image + y_grid.shape[2] + reach <= x_flat.size else n - 1
    tap_block = tuning.value("implicit_tap_block")
    bias = compiled.NO_BIAS if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
    pointwise = math.prod(w.shape[2:]) == 1

    def packs(source):
        return pointwise and _packs_planar(source, image, plane, groups,
                                           rows_k // compiled.PLANAR_ROWS)
    if in_place:  # a call with no images would still wake the thread pool (~40 µs)
        compiled.planar(x_flat, in_place, image, w_rows, offset, y_grid, spare, length,
                        tap_block, bias, groups, packs(x_flat))
    if in_place < n:
        last = np.zeros(image + y_grid.shape[2], np.float32)
        last[:image] = x_flat[in_place * image:]
        compiled.planar(last, 1, image, w_rows, offset, y_grid[in_place:], spare, length,
                        tap_block, bias, groups, packs(last))
    grid = y_grid[:, :, :plane].reshape((n, k) + tuple(spatial))
    return np.ascontiguousarray(grid[(slice(None), slice(None)) + tuple(slice(0, o) for o in out)])


def _planar_per_image(g):
    """Whether a planar product runs with one task per image (``planar_images``): for a
    kernel larger than 1×1 (whose grid has border columns to crop) over enough images
    (``per_image_tasks``), in one group."""
    return g.groups == 1 and g.taps > 1 and \
        per_image_tasks(g.batch, math.prod(g.out), g.out_channels)


def _planar_from(source, w, g, bias=None):
    """The forward pass of ``planar_images`` from a ``PaddedInput``: each task pads its
    image, and when a weight gradient will read the padded input (``source.shared``), pads
    it into its place in a copy that the source keeps."""
    if source.is_padded:
        return planar_images(source.padded(), None, w, g.dilation, g.out, bias)
    keep = None
    if source.shared:
        keep = np.empty(g.batch * g.in_channels * math.prod(g.padded) + _planar_slack(),
                        np.float32)
    y = planar_images(source.data, source.pads, w, g.dilation, g.out, bias, keep)
    if keep is not None:
        size = g.batch * g.in_channels * math.prod(g.padded)
        source.adopt(keep[:size].reshape((g.batch, g.in_channels) + g.padded))
    return y


def _planar_slack():
    """Floats read past the last image by the planar tiles' last strip: one strip."""
    return planar_strip_width()


def planar_images(x, pads, w, dilation, out, bias=None, padded_copy=None):
    """Stride 1, channels-first, one task per image (``planar_images_numba``): y (N, K,
    *out) from x (N, C, *spatial) zero-padded by ``pads`` in each task (None: x is padded
    already), w (K, C, *kernel), plus ``bias`` (K,) when given.

    Against the planar product over the whole batch (``_forward_planar``: the input padded
    by a pass of its own, y cropped by another), 2 threads, best of 30, two runs each, ms,
    forward pass / input gradient, AVX-512: 8 → 8 channels on 64 32 × 32 maps (3 × 3)
    0.53–0.71 / 0.56–0.68 against 0.85–0.86 / 0.88–0.90; 3 → 4 on 64 64 × 64 maps 0.60–0.67
    / 0.71–0.78 against 1.03–1.05 / 1.39–1.42; 16 → 8 on 32 56 × 56 maps, forward, 1.34–1.43
    against 1.80–1.82; LeNet-5's second layer (6 → 16, 5 × 5, 128 14 × 14 maps), input
    gradient (6 outputs) 0.80–0.87 against 1.16–1.20. AVX2 (``NUMBA_CPU_NAME=haswell``,
    where 8 channels fill a vector and run channels-last): 3 → 4 0.87–0.92 / 1.05–1.08
    against 2.09–2.65 / 2.19–4.69; LeNet-5's second layer's input gradient 0.86–0.87 against
    1.21–1.25. LeNet-5's first layer (1 → 6, 5 × 5, 28 × 28) ran alike either way (0.32–0.34
    against 0.32–0.33 on AVX-512). LeNet-5's training step (batch 128, alternating with
    PyTorch's in one process, best of 40): 5.49–5.74 against 5.96–6.24 ms on AVX-512,
    5.90–6.05 against 6.21–6.47 on AVX2."""
    n, c = x.shape[:2]
    k, kernel = w.shape[0], w.shape[2:]
    pads = pads or ((0, 0),) * len(kernel)
    images, pad = image_padding(x, pads)
    padded = padded_shape(x.shape, pads)
    taps = c * math.prod(kernel)
    rows = -(-k // compiled.PLANAR_ROWS) * compiled.PLANAR_ROWS
    w_rows = np.zeros((rows, taps), np.float32)
    w_rows[:k] = w.reshape(k, taps)
    y = np.empty((n, k, math.prod(out)), np.float32)
    cells = np.array((1,) * (3 - len(out)) + tuple(out), np.int64)
    planar_images_numba.planar_images_tiled(
        images, pad, compiled.NO_PADDED_COPY if padded_copy is None else padded_copy,
        w_rows, _offsets(padded, kernel, dilation, c), y, cells,
        planar_length(padded[2:], out), tuning.value("implicit_tap_block"),
        compiled.NO_BIAS if bias is None else np.ascontiguousarray(bias, dtype=np.float32))
    return y.reshape((n, k) + tuple(out))


def _packs_planar(x_flat, image, plane, groups, row_tiles):
    """Whether the planar kernel copies each task's strips into a buffer of its own first
    (``planar_tiles``' ``packed``), for a 1×1 product (its taps' strips do not overlap, so the
    copy reads each value once) whose strips (a) do not all start on vector boundaries, or
    are each several cache lines wide, (b) lie a multiple of 1 KB apart, tap after tap
    (``plane`` floats), and (c) are each read by at least
    ``implicit_planar_pack_min_row_tiles`` row tiles. NumPy aligns arrays to 16 bytes only
    (a large one starts 16 bytes past a page), so a misaligned input is the common case,
    and an AVX-512 load from there spans two cache lines. With (b), on 16 × 16 and 32 × 32
    maps, the taps' strips fall on a few of the L1 cache's sets, which repeat every 4 KB,
    and evict each other before the next row tile reads them again. In the buffer they
    lie side by side, on lines. 2 threads, thirty-two 16 × 16 maps, 64 terms for 256
    outputs (pw1x1's input gradient's product), input 16 bytes past a line: 1.30 against
    0.87 ms (AVX-512), 1.63 against 1.45 (AVX2), plain against packed. On an aligned input,
    AVX-512's strips (64 floats: 4 lines) still crowd those sets, and the copies saved time
    on two machines: 0.97 against 0.86 ms on that one, 1.079 against 0.957 on an Emerald
    Rapids (eight 32 × 32 maps, 256 outputs: 1.206 against 0.959). AVX2's one-line strips
    did not gain: 1.784 against 1.714 ms and, for 128 outputs, 0.886 against 0.941 on the
    Emerald Rapids, 1.40 against 1.51 on the first. (The constant's description has the
    rest.)"""
    lanes = compiled.LANES
    misaligned = x_flat.ctypes.data % (4 * lanes) or plane % lanes or (image // groups) % lanes
    wide = 4 * lanes * compiled.PLANAR_VECTORS > aligned.LINE  # a strip spans several lines
    return bool((misaligned or wide) and (4 * plane) % 1024 == 0 and
                row_tiles >= tuning.value("implicit_planar_pack_min_row_tiles"))


def padded_shape(shape, pads):
    """(N, C, *spatial) with (lo, hi) added to each spatial dim."""
    return tuple(shape[:2]) + tuple(s + lo + hi for s, (lo, hi) in zip(shape[2:], pads))


def image_padding(x, pads):
    """``implicit_gemm_numba.by_image``'s (x, pad): x's images as (N, C, D, H, W) and the zero
    padding each task gives its own image, (front, top, left) and the padded (D, H, W); none
    when ``pads`` are all zero (the tables then index x itself)."""
    missing = 5 - x.ndim
    images = np.ascontiguousarray(x).reshape(x.shape[:2] + (1,) * missing + x.shape[2:])
    if not any(lo or hi for lo, hi in pads):
        return images, compiled.NO_ROWS
    pads = [(0, 0)] * missing + list(pads)
    return images, np.array([lo for lo, _ in pads] + list(padded_shape(images.shape, pads)[2:]),
                            np.int64)


@tuning.kept(threads=True)
def per_image_tasks(n, positions, channels, per_image=None):
    """Whether a product over n images, with ``positions`` output rows per image and
    ``channels`` output columns (padded to the tile), runs as one task per image
    (``per_image``, or by default from 4 images per thread on, the tasks' imbalance then under
    25 %, and with at least as many positions per image as channels), where each task
    zero-pads its own image of the input and puts its image's outputs into the channels-first
    result while they are in cache (``implicit_gemm_numba.by_image``): that saves a pass over
    the whole input and one over the whole output, from memory. 2 threads, timed alternately
    with PyTorch's layer in between, two runs, per image against parallel products, AVX-512 /
    AVX2: res3x3_s2's input gradient 6.27–6.47 against 7.20–7.39 ms / 8.36–8.56 against
    10.06–10.33; at N=64 with half the channels 3.75–4.22 against 4.21–4.62 / 4.87–5.39
    against 5.67–6.74; alex_c1's 6.24–6.29 against 6.87–7.00 / 8.45–9.15 against 9.53–9.74;
    96 → 192 channels at N=16 5.15–5.31 against 5.26–5.44 / 7.30–7.68 against 7.76–7.97; a
    7 × 7 stem at stride 2 15.70–15.96 against 15.46–16.03 / 19.75–20.04 against 21.29–21.50.
    Stride-1 input gradients, likewise: res3x3's 9.11–9.31 against 9.53–9.98 / 13.06–13.28
    against 13.99–14.23; vgg_small's second conv (N=128, 64 → 32 channels, 14×14) 4.19–4.31
    against 4.79–4.95 / 5.57–5.90 against 6.51–6.58; its third (7×7) 4.17–4.18 against
    4.22–4.27 / 6.23–6.32 against 6.43–6.61; 5×5, 64 → 32 at 28×28 8.91–9.02 against
    9.29–9.34 / 13.31–13.91 against 14.22–14.45; 256 → 256 at 8×8, N=64, within 3 % either
    way.

    The positions: a task reads all of the weights for its image's positions, so images with
    fewer positions than channels reread more weights than they compute with, and
    ``task_split``'s chunks of positions times groups of channels read them fewer times. Per
    image against that, 2 threads, AVX-512 / AVX2: 1280 → 320 channels of 7 × 7 maps (1×1),
    N=8, 2.27 against 2.07 ms / 2.81 against 2.64; 512 → 512 on 7 × 7 (3×3), N=16, 17.92
    against 16.26 / 25.72 against 22.31; 256 → 256 on 8 × 8, N=64, 19.33 against 18.62 /
    27.88 against 26.14; vgg_small's third conv above (49 positions, 64 channels) 4.21 against
    4.06 / 6.08 against 5.79 in the same runs, so within 5 % either way; but 64 → 32 on
    14 × 14, N=128, 3.65 against 4.30 / 5.61 against 6.62, and 256 → 256 on 14 × 14 (196
    positions, 256 channels), N=16, within 4 % either way."""
    if per_image is not None:
        return per_image
    return n >= 4 * numba.get_num_threads() and positions >= channels


def backward_input(dy, w, spatial, dilation, pads=None, groups=1, per_image=None,
                   check_w=False):
    """Stride 1: dL/dx is the forward kernel on dy padded by d·(k−1) (less the input's own
    padding, whose gradient is not wanted) with the flipped, channel-swapped kernel; dy is
    padded once, and each group's product reads its channels of it. A channels-last product
    over enough images (``per_image_tasks``) runs per image (and group), each task padding
    its own image of dy (its group's channels of it). ``check_w``: raise NotFinite("w") for
    a w that holds inf or NaN, before any product (found as the channels-last products' panels
    are laid out; by a pass over w for a planar product)."""
    kernel = w.shape[2:]
    dy_pads, crop, out = input_padding(spatial, kernel, dilation, pads)
    interior = crop == [(0, 0)] * len(spatial)
    ones = (1,) * len(kernel)
    n, k, c = dy.shape[0], w.shape[0], w.shape[1]
    padded = padded_shape(dy.shape, dy_pads)
    k_group = k // groups
    planar = planar_wins(c, k_group * math.prod(kernel), padded[2:], out, kernel,
                         None if per_image is False else n * groups, groups)
    if check_w and planar and not all_finite(w):
        raise NotFinite("w")
    if interior and not planar and \
            per_image_tasks(n * groups, math.prod(out), compiled.tile(c)[2], per_image):
        return per_image_product(dy, dy_pads,
                                 group_panels(w, groups,
                                              functools.partial(_flipped_panels, check=check_w)),
                                 (c, k_group) + kernel, dilation, out, groups=groups)
    if interior and planar and groups == 1 and math.prod(kernel) > 1 and \
            per_image_tasks(n, math.prod(out), c, per_image):
        return planar_images(dy, dy_pads, _transposed(w), dilation, out)
    dyp = zero_pad(dy, dy_pads)
    if groups == 1:
        dx = forward(dyp, w, ones, dilation, out, flipped=True, planar=planar, check_w=check_w)
    elif planar:
        # every group's product (its C' outputs of K/G terms) in one planar launch
        dx = _forward_planar(dyp, _transposed(w, groups), dilation, out, groups=groups)
    else:
        per_group, c = w.shape[0] // groups, w.shape[1]
        dx = np.empty((dy.shape[0], groups, c, math.prod(out)), np.float32)
        for j, w_j in enumerate(np.split(w, groups)):
            forward(dyp, w_j, ones, dilation, out, first_channel=j * per_group, y=dx[:, j],
                    flipped=True, check_w=check_w)
        dx = dx.reshape((dy.shape[0], groups * c) + tuple(out))
    index = tuple(slice(lo, dx.shape[2 + j] - hi) for j, (lo, hi) in enumerate(crop))
    return dx[(slice(None), slice(None)) + index]


def input_padding(spatial, kernel, dilation, pads=None):
    """(dy_pads, crop, out) of a stride-1 input gradient as the forward kernel on padded dy:
    dy padded by d·(k−1) less the input's own padding ``pads`` (whose gradient is not wanted),
    and dx's ``out`` positions the padded input's interior; where the padding is wider than
    the kernel's reach, dy is padded by the whole reach and dx, the whole padded input, is
    cropped by ``crop`` afterwards."""
    pads = pads or [(0, 0)] * len(spatial)
    reach = [d * (k - 1) for k, d in zip(kernel, dilation)]
    dy_pads = [(r - lo, r - hi) for r, (lo, hi) in zip(reach, pads)]
    if any(lo < 0 or hi < 0 for lo, hi in dy_pads):  # padding wider than the kernel's reach
        return [(r, r) for r in reach], list(pads), list(spatial)
    return dy_pads, [(0, 0)] * len(spatial), [s - lo - hi for s, (lo, hi) in zip(spatial, pads)]


def weight_shares(positions, taps, k, k_padded):
    """(shares, groups): the weight gradient's parallel tasks as shares of its ``positions``
    (N·prod(out)) times groups of its ``taps``, for K output channels (``k_padded`` in the
    tile). Numbers fixed by the shapes, not by the thread count: the sums then come out the
    same, bit for bit, whatever the thread count (a run resumed on another machine, or by a
    process with other thread settings, continues exactly). Each share has a taps × channels
    block of partial sums to add afterwards, so a layer with few positions for its taps
    (deep, small maps) splits its taps instead, unless all the tasks' partial sums come to
    less than dy's values (few taps: 1×1 layers; ``implicit_weight_partials_per_dy``), which
    then cost less than the pass that lays dy out for groups of taps (``backward_weight``)."""
    tasks = tuning.value("implicit_weight_shares")
    shares = max(1, min(tasks, positions // tuning.value("implicit_weight_share_positions")))
    if shares < tasks and tasks * taps * k_padded <= \
            tuning.value("implicit_weight_partials_per_dy") * positions * k:
        shares = tasks
    return shares, -(-tasks // shares)


def weight_by_output_rows(positions, k, c, kernel, stride):
    """Whether a weight gradient of K output and C input channels over ``positions``
    (N·prod(out)) runs as a product whose rows are its output channels
    (``_weight_by_output_rows``): 1×1 at stride 1 with K > C, and at least
    ``implicit_weight_rows_min_weights_per_position`` weights (K·C) per position."""
    if k <= c or math.prod(kernel) != 1 or any(s != 1 for s in stride):
        return False
    least = tuning.value("implicit_weight_rows_min_weights_per_position")
    return least > 0 and k * c >= least * positions


def _weight_by_output_rows(xp, planes, c, first_channel, with_bias):
    """(dw, db or None) of a 1×1, stride-1 layer, dw[k, c] = Σ_{n,s} dy[n, k, s] · x[n, c, s],
    as the forward kernel's product with the K output channels as its rows and C on the
    lanes: dy read in place through the tables (row k from k·P, term (n, s) at n·K·P + s),
    x laid out channels-last in panels, a pass over C·N·P values where the usual arrangement
    lays out dy's K·N·P (for groups of taps), and dw comes out in rows, with no partial sums
    to add and transpose. Each sum runs over the positions in order within one task: the
    same bits on any thread count. planes: dy as (N, K, P); xp's C channels from
    ``first_channel`` on are the layer's input (P positions: 1×1 at stride 1)."""
    n, k, positions = planes.shape
    planes = np.ascontiguousarray(planes)  # a group's channels of dy: the tables index it flat
    rows, vectors, c_padded = compiled.tile(c)
    width = compiled.LANES * vectors
    x_rows = aligned.empty((c_padded // width, n * positions, width))
    planes_to_rows(xp[:, first_channel:first_channel + c].reshape(n, c, positions), x_rows)
    corner = np.arange(k, dtype=np.int64) * positions
    offset = np.add.outer(np.arange(n, dtype=np.int64) * (k * positions),
                          np.arange(positions, dtype=np.int64)).reshape(-1)
    out = aligned.empty((k + rows, c_padded))
    compiled.ENTRY[vectors][0](planes, x_rows, offset, corner, out, compiled.NO_Y,
                               *task_split(k, c_padded, width),
                               tuning.value("implicit_tap_block"), compiled.NO_ROWS,
                               compiled.NO_BIAS)
    dw = np.ascontiguousarray(out[:k, :c]).reshape((k, c) + (1,) * (xp.ndim - 2))
    return (dw, bias_grad(planes)) if with_bias else dw


def weight_by_channel_rows(k, c, kernel, dilation, positions):
    """Whether a weight gradient of K output and C input channels, ``positions`` output
    positions per image, runs with its output channels on the tile's rows and the input's
    channels at the kernel's columns on its lanes (``weight_rows_numba``), where the
    channels-last tile would run one vector wide (K at most a vector's lanes). It needs a
    kernel wider than one column with dilation 1 along the rows, at most
    ``implicit_weight_channel_rows_max_columns`` columns (kw·C: each row tile reads them
    again), at least ``implicit_weight_channel_rows_min_positions`` positions per image (each
    image's product is a few calls of the tile over its positions), and the tiles' rows and
    lanes used at least as fully as the channels-last tile's (its rows are the
    C·prod(kernel) taps, its lanes the K channels). ``python -m cnnkit.bench.orientation``
    compares both on both sides of each condition; the last one left out 1 → 16 channels
    (3 of 16 lanes used; 1.31–1.60 of the time, AVX-512), 3 → 16 (1.25–1.52), 6 → 16 with a
    5 × 5 kernel (1.27–1.34) and 8 → 16 (1.13–1.19), and took 16 → 16 on 128 28 × 28 maps
    (0.96–0.99: the channels-last tile is one vector wide there, the lanes full either way)."""
    if kernel[-1] == 1 or dilation[-1] != 1 or k > compiled.LANES:
        return False
    columns = kernel[-1] * c
    if columns > tuning.value("implicit_weight_channel_rows_max_columns") or \
            positions < tuning.value("implicit_weight_channel_rows_min_positions"):
        return False
    rows, _, columns_padded = compiled.tile(columns)
    used = k / (-(-k // rows) * rows) * columns / columns_padded
    rows_last, _, k_padded = compiled.tile(k)
    taps = c * math.prod(kernel)
    return used >= k / k_padded * taps / (-(-taps // rows_last) * rows_last)


def _weight_by_channel_rows(xp, planes, kernel, stride, dilation, with_bias):
    """(dw, db or None) by ``weight_rows_numba.weight_rows``: xp (N, C, *padded), planes dy
    as (N, K, S), S the positions of the output's spatial shape (``output_spatial``)."""
    n, k, positions = planes.shape
    c, dims = xp.shape[1], len(kernel)
    images, _ = image_padding(xp, ((0, 0),) * dims)  # (N, C, Dp, Hp, Wp): nothing to pad
    depth, height, pitch = images.shape[2:]
    missing = (1,) * (3 - dims)
    out = missing + output_spatial(xp.shape[2:], kernel, stride, dilation)
    step = missing + tuple(stride)
    reach = missing + tuple(dilation)
    window = missing + tuple(kernel)
    oz, oy, ox = np.meshgrid(*(np.arange(o, dtype=np.int64) for o in out), indexing="ij")
    corner = (((oz * step[0] * height + oy * step[1]) * pitch + ox * step[2]) * c).reshape(-1)
    az, ay = np.meshgrid(np.arange(window[0], dtype=np.int64),
                         np.arange(window[1], dtype=np.int64), indexing="ij")
    row_shift = ((az * reach[0] * height + ay * reach[1]) * pitch * c).reshape(-1)
    columns = window[2] * c
    rows, vectors, columns_padded = compiled.tile(columns)
    shares = max(1, min(tuning.value("implicit_weight_shares"), n))
    partial = np.empty((shares, row_shift.size, -(-k // rows) * rows, columns_padded),
                       np.float32)
    sums = np.zeros((shares, k) if with_bias else (0, 0), np.float64)
    pad = np.array((0, 0, 0, depth, height, pitch), np.int64)
    weight_rows_numba.WEIGHT_ROWS[vectors](images, pad, planes, row_shift, corner, partial,
                                           sums, tuning.value("implicit_position_block"))
    total = partial[0] if shares == 1 else partial.sum(axis=0)
    dw = total[:, :k, :columns].reshape(window[:2] + (k, window[2], c))
    dw = np.ascontiguousarray(dw.transpose(2, 4, 0, 1, 3)).reshape((k, c) + tuple(kernel))
    return (dw, sums.sum(axis=0).astype(np.float32)) if with_bias else dw


def backward_weight(xp, dy, kernel, stride, dilation, with_bias=False, channels=None,
                    first_channel=0):
    """xp (N, C, *padded) float32, dy (N, K, *out) -> dw (K, C', *kernel) for the C' =
    ``channels`` channels of xp from ``first_channel`` on (default: all); with ``with_bias``
    the pair (dw, db), db summed from dy as it is transposed. dy may be a view (a group's
    channels of a larger dy)."""
    n, k = dy.shape[:2]
    rows, vectors, k_padded = compiled.tile(k)
    positions = math.prod(dy.shape[2:])
    planes = np.reshape(dy, (n, k, positions))
    if planes.strides[1:] != (positions * 4, 4):  # the transposes need positions contiguous
        planes = np.ascontiguousarray(planes)
    c = xp.shape[1] - first_channel if channels is None else channels
    if weight_by_output_rows(n * positions, k, c, kernel, stride):
        return _weight_by_output_rows(xp, planes, c, first_channel, with_bias)
    if c == xp.shape[1] and weight_by_channel_rows(k, c, kernel, dilation, positions):
        return _weight_by_channel_rows(xp, planes, kernel, stride, dilation, with_bias)
    offset = _offsets(xp.shape, kernel, dilation, channels, first_channel)
    shares, groups = weight_shares(n * positions, offset.size, k, k_padded)
    partial = aligned.empty((shares, offset.size + rows, k_padded))
    # The kernel's tiles read dy channels-last. With one task per share, each task lays out
    # its own positions, in cache (2 threads, AVX-512, against a layout pass beforehand:
    # res3x3 8.77 against 9.53 ms, alex_c1 3.78 against 4.25); with several (groups of
    # taps), each would lay out the same positions again, so dy is laid out once beforehand
    # (pw_320_1280, 8 groups: 1.79 ms, against 2.35 laid out by every group).
    laid_out = groups > 1
    sums = np.empty((shares if with_bias and not laid_out else 0, k), np.float64)
    operand = planes
    if laid_out:
        width = compiled.LANES * vectors
        operand = aligned.empty((k_padded // width, n * positions, width))
        db = planes_to_rows(planes, operand, with_bias)
    compiled.ENTRY[vectors][1](np.ascontiguousarray(xp), operand, laid_out, offset,
                               _corners(xp.shape, dy.shape[2:], stride), partial, sums,
                               tuning.value("implicit_position_block"), groups)
    if not laid_out:
        db = sums.sum(axis=0) if with_bias else None
    # dw[k, (c, a)] = Σ_s partial[s, (c, a), k]; the rows past the taps (a ragged tile's
    # spill) are never read: they may hold anything, NaN included
    dw = np.empty((1, k, offset.size), np.float32)
    shares_to_planes(partial, dw)
    dw = dw.reshape((k, offset.size // math.prod(kernel)) + tuple(kernel))
    return (dw, db.astype(np.float32)) if with_bias else dw
