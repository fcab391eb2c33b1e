"""Depthwise and narrow grouped layers with their channels on the vector lanes
(``depthwise_lanes_numba``).

2-D or 3-D, float32, K = C in groups of G channels, G = 1 (depthwise) up to the lanes of a
vector, or wider where the target has a broadcast tile of the group's vectors (AVX2's 16, SSE's
8; ``GROUP_WIDTHS``): a task transposes CB channels of one image (a map or a volume) into a
channels-last buffer and
computes CB channels of a pixel per vector, each lane summing its group's G channels from
permutations of one loaded vector, where the other depthwise kernels vectorise along a
plane's rows and the implicit GEMM's narrow-group tiles fill most lanes with zeros. All three
passes; a strided input gradient multiplies the zeros between dy's cells too (s^d times the
terms of the sums, d the dims: cheap beside the transposes on small maps).

Where it wins (``wins``), measured on a Zen 4 (AVX-512), 2 threads, ms, against what ran
before on the same call (BENCHMARKS.md, "Depthwise layers with their channels on the lanes"):
depthwise layers on small maps, whose rows are shorter than a vector or two (16 images × 960
channels of 7 × 7, 3 × 3: forward 0.46 against 1.11 on the 3 × 3 stencil, input gradient
0.47 against 1.31 on the row correlation, weight gradient 0.41 against 2.21 on
``depthwise``'s stride phases), and every depthwise weight gradient tried, up to 112 × 112
maps; grouped layers at every map size tried (a ResNeXt block's 32 groups of 4 channels, 16
images of 56 × 56: forward 6.1 against 11.7 on the implicit GEMM, weight gradient 7.9 against
15.5; 32 groups of 16 on 7 × 7: weight gradient 1.17 against 2.75). Not depthwise forward passes
and input gradients of large maps (8 × 32 of 112 × 112: forward 2.25 against 1.04), nor a 3 × 3
stride-1 forward pass or input gradient that the stencil takes from 16 × 16 maps up (the
stencil's rows are long enough there), nor layers of fewer channels than a block's CB lanes,
which it fills with zeros. Stride-1 kernels of more than 9 taps (5 × 5, 7 × 7) have a
crossover with the row correlation of their own (``wide_kernel_max_width``): every map tried
on AVX2, up to 48 columns on AVX-512 (BENCHMARKS.md, "Depthwise layers with kernels over
3 × 3 on the lanes").

3-D layers take the same rules, by their rows' length (the padded volume's last dim). 2
threads, AVX-512, ms, against what ran before (``python -m cnnkit.bench.depthwise
--volumes``; BENCHMARKS.md, "3-D depthwise and grouped layers on the lanes"): 16 images of 16
channels on 12³ (7 × 7 × 7), forward 2.95 against 4.02 on the row correlation, input
gradient 3.00 against 3.85, weight gradient 3.55 against 19.20 on the implicit GEMM; 4 images
of 128 on 12³ at stride 2 (7 × 7 × 7), forward 1.30 against 6.47 on ``blocked``; 32 groups of
4 on 8 16³ maps (3 × 3 × 3), forward 7.35 against 19.29, weight gradient 6.45 against 21.13.
Not a strided input gradient in groups (``_zeros_outweigh``), nor a forward pass or input
gradient of fewer images × channel blocks than threads (``_volume_too_few_tasks``); the
3 × 3 × 3 stride-1 passes of the volume stencil up to the stencil's width, as a map's
(``_volume_stencil_alternative``).
"""
import numba

from ... import tuning
from ...cpu import host
from . import rows
from .. import depthwise_lanes_numba as lanes


def _group_width(g):
    """Channels per group (of input and output alike), or 0 where they differ or there is
    one group (a dense layer is the implicit GEMM's)."""
    return g.in_channels // g.groups if g.in_channels == g.out_channels and g.groups > 1 else 0


def applies(geometry, pass_name):
    """2-D or 3-D, float32, K = C in G > 1 groups of ``GROUP_WIDTHS`` channels (1:
    depthwise), a non-empty output."""
    g = geometry
    width = _group_width(g)
    return (g.batch > 0 and g.is_float32 and len(g.kernel) in (2, 3) and
            width in lanes.GROUP_WIDTHS and min(g.out) > 0)


def _stencil_alternative(g, pass_name):
    """Whether the alternative to this stride-1 pass is the 3 × 3 stencil
    (``rows.stencil_runs``)."""
    return g.unit_stride and g.unit_dilation and rows.stencil_runs(g, pass_name)


def wins(geometry, pass_name):
    """At least a block of channels, except a strided 3-D input gradient in groups
    (``_zeros_outweigh``) and a 3-D forward pass or input gradient of fewer tasks than threads
    (``_volume_too_few_tasks``); a 3 × 3 × 3 pass the volume stencil runs up to
    ``depthwise_lanes_stencil_max_width`` (``_volume_stencil_alternative``); every grouped
    layer's pass and depthwise weight gradient;
    depthwise forward passes and input gradients of maps up to
    ``depthwise_lanes_max_width`` columns (padded), up to
    ``depthwise_lanes_stencil_max_width`` where the 3 × 3 stencil is the alternative, up
    to ``depthwise_lanes_strided_forward_max_width`` for a strided forward pass and up to
    ``wide_kernel_max_width`` for a stride-1 kernel of more than 9 taps."""
    g = geometry
    if g.in_channels < lanes.BLOCK or _zeros_outweigh(g, pass_name) or \
            _volume_too_few_tasks(g, pass_name):
        return False
    if _volume_stencil_alternative(g, pass_name):
        return g.padded[-1] <= tuning.value("depthwise_lanes_stencil_max_width")
    if pass_name == "weight" or _group_width(g) > 1:
        return True
    if _stencil_alternative(g, pass_name):
        limit = tuning.value("depthwise_lanes_stencil_max_width")
    elif pass_name == "forward" and not g.unit_stride:
        limit = tuning.value("depthwise_lanes_strided_forward_max_width")
    elif g.unit_stride and g.unit_dilation and g.taps > 9:
        limit = wide_kernel_max_width()
    else:
        limit = tuning.value("depthwise_lanes_max_width")
    return g.padded[-1] <= limit


def _volume_stencil_alternative(g, pass_name):
    """A 3 × 3 × 3 stride-1 depthwise pass that ``rows`` runs as the volume stencil (its
    forward pass and input gradient, ``rows.stencil_runs``; its weight gradient,
    ``rows.applies``): the lanes take it up to ``depthwise_lanes_stencil_max_width`` padded
    columns, as a 2-D map's. 2 threads, ms, lanes against the stencil, forward / weight
    gradient: 8 × 96 channels of 12³ (14 columns) 1.44 / 1.65 against 1.74 / 2.31 on
    AVX-512, 1.44 / 1.46 against 2.64 / 2.69 on AVX2; 2 × 16 of 32³ (34) 1.57 / 2.56 against
    0.99 / 1.78 on AVX-512 (BENCHMARKS.md, "3-D depthwise and grouped layers on the lanes")."""
    if len(g.kernel) != 3 or not rows.applies(g, pass_name):
        return False
    return pass_name == "weight" or _stencil_alternative(g, pass_name)


def _volume_too_few_tasks(g, pass_name):
    """A 3-D forward pass or input gradient of fewer tasks (images × blocks of CB channels)
    than threads: a task transposes and computes a whole volume, and the other threads idle,
    where the row correlation and ``blocked`` share a volume's planes. 2 threads, AVX-512,
    ms, one image of 16 channels (one task) against the alternative: 64³, 7 × 7 × 7 forward
    39.20 against 18.95 on the row correlation; 48³ at stride 2 (3 × 3 × 3) 2.00 against 1.76
    on ``blocked``; two tasks (2 × 16 of 48³, 5 × 5 × 5) 9.89 against 9.90 (BENCHMARKS.md,
    "3-D depthwise and grouped layers on the lanes")."""
    return len(g.kernel) == 3 and pass_name != "weight" and \
        g.batch * -(-g.in_channels // lanes._channels(_group_width(g) or 1)) < \
        numba.get_num_threads()


def _zeros_outweigh(g, pass_name):
    """A strided 3-D input gradient in groups of more than one channel: its sums take the
    zeros between dy's cells as terms, s³ times the real ones, and each term G times (one
    per member). 2 threads, ms, against ``blocked``, 3 × 3 × 3 at stride 2 on 4 16³ maps of
    64 channels in groups of 4: AVX-512 1.80 against 0.98, AVX2 1.95 against 0.88; depthwise
    layers ran faster on the lanes (8 × 64 × 16³ at stride 2: 1.72 against 1.82 and 1.50
    against 1.72; BENCHMARKS.md, "3-D depthwise and grouped layers on the lanes")."""
    return pass_name == "input" and len(g.kernel) == 3 and not g.unit_stride and \
        _group_width(g) > 1


def wide_kernel_max_width():
    """``depthwise_lanes_wide_max_width``, or where it is 0, the CPU table's entry."""
    return tuning.value("depthwise_lanes_wide_max_width") or host().tiles.lanes_wide_width


def forward_pass(xp, w, g):
    return lanes.forward(xp, w, ((0, 0),) * len(g.kernel), g.stride, g.dilation, g.out)


def forward_from(source, w, g, bias=None):
    """From the unpadded input: each task pads its planes as it transposes them."""
    return lanes.forward(source.data, w, g.pad_widths, g.stride, g.dilation, g.out, bias)


def input_pass(dy, w, g):
    pads = g.pad_widths
    inner = tuple(n - lo - hi for n, (lo, hi) in zip(g.padded, pads))
    return lanes.backward_input(dy, w, inner, pads, g.stride, g.dilation)


def weight_from(source, dy, g, with_bias=False):
    """From the unpadded input, the bias gradient summed from dy's transposed copies."""
    result = lanes.backward_weight(source.data, dy, g.kernel, g.pad_widths, g.stride,
                                   g.dilation, _group_width(g), with_bias)
    return result if with_bias else (result, None)


def weight_pass(xp, dy, g):
    return lanes.backward_weight(xp, dy, g.kernel, ((0, 0),) * len(g.kernel), g.stride,
                                 g.dilation, _group_width(g))
