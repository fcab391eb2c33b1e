"""The input gradient of a strided convolution on the implicit GEMM, in two arrangements (a
third, for few input channels, folds the windows' columns instead: ``window_fold``).

A stride-s layer's padded input cell j = q·s + r (a residue r per dim: its *phase*) receives

    dx[q·s + r] = Σ_k Σ_{a: a·d ≡ r (mod s)} dy[k, q − e_a] · w[k, :, a],   e_a = (a·d − r)/s

so each phase is a stride-1 product on dy with the taps of that phase (docs/concepts.md,
backpropagation). Both arrangements read dy zero-padded (as a whole, or image by image), whose
zeros meet w, as in the stride-1 input gradient (``registry.NEEDS_FINITE``); ``subpixel``'s
zero weights also meet dy (``implicit.needs_finite``), which it checks as it reads it
(``implicit.checks_finite``):

* ``by_phases``: one product per phase, its C input channels on the register tile's lanes,
  each writing its cells into one channels-last dx. For C of at least one vector.
* ``subpixel``: one product for all phases, its outputs the S·C pairs (phase, channel)
  (S = prod(stride)), its taps the union of the phases' shifts e (a tap a phase lacks has a
  zero weight), then the phases interleaved into dx (a "pixel shuffle"). For few channels,
  which would leave most lanes of a per-phase product idle: AlexNet's first layer (C = 3,
  11 × 11 at stride 4) becomes one product with 48 outputs of 64·3·3 terms.

With enough images both run as one parallel task per image, which also pads its image of dy
and moves its cells into dx (``implicit.per_image_tasks``); else as parallel products on dy
padded first, followed by one pass over dx.
"""
import functools
import itertools
import math
from typing import NamedTuple

import numpy as np

from ... import tuning
from .. import aligned, implicit_gemm_numba as compiled
from ..finite import NotFinite, all_finite
from ..padding import zero_pad, zero_pad_finite
from ..transpose_numba import (gather_or_zero, gather_planes, shares_to_planes,
                              weight_rows_to_panels)
from . import implicit
from .shift import flat_pitches



def every_phase_has_taps(geometry):
    """Whether each phase is reached by a tap (else its cells are zeros that a product would
    spend its time writing): k ≥ s and d, s coprime in every dim."""
    return all(k >= s and math.gcd(d, s) == 1
               for k, s, d in zip(geometry.kernel, geometry.stride, geometry.dilation))


def phases_left_by_dilation(geometry):
    """Whether phases no tap reaches are left only by a dilation sharing a factor with the
    stride (k ≥ s in every dim, gcd(d, s) > 1 in one), not by a kernel narrower than its
    stride."""
    return not every_phase_has_taps(geometry) and all(
        k >= s for k, s in zip(geometry.kernel, geometry.stride))


def taps_apart(geometry):
    """Whether no two taps of a position of dy reach one cell of dx, nor taps of two
    positions: (k − 1)·d < s in every dim (a kernel no wider than its stride). ``subpixel``'s
    one product then needs no shift of dy: each phase has one tap or none."""
    return all((k - 1) * d < s
               for k, s, d in zip(geometry.kernel, geometry.stride, geometry.dilation))


def subpixel_terms(geometry):
    """Terms per output of ``subpixel``'s product: K · the union of the shifts, per dim."""
    terms = geometry.out_channels
    for k, s, d in zip(geometry.kernel, geometry.stride, geometry.dilation):
        shifts = [e for _, e in _shifts(k, s, d).values()]
        terms *= max(shifts) - min(shifts) + 1
    return terms


def subpixel_share(geometry):
    """The share of ``subpixel``'s terms that are the kernel's taps, the rest zero weights
    (the shifts a phase lacks): per dim, k over the union of the shifts times the stride."""
    share = 1.0
    for k, s, d in zip(geometry.kernel, geometry.stride, geometry.dilation):
        shifts = [e for _, e in _shifts(k, s, d).values()]
        share *= k / ((max(shifts) - min(shifts) + 1) * s)
    return share


def _shifts(k, s, d):
    """{tap a: (phase r, shift e)} of one dim: a·d = e·s + r."""
    return {a: (a * d % s, a * d // s) for a in range(k)}


def _cells(lo, size, s, r):
    """The q of phase r whose cells q·s + r lie in dx, [lo, lo + size) of the padded input."""
    return -(-(lo - r) // s), (lo + size - 1 - r) // s


def _dy_pads(reads, length):
    """dy's zero padding (lo, hi) for the index range [first, last] that a product reads."""
    first, last = reads
    return max(0, -first), max(0, last - (length - 1))


def by_phases(dy, w, spatial, stride, dilation, pads=None, per_image=None, groups=1,
              check_w=False):
    """dL/dx (N, C, *spatial less pads) of a strided convolution, one product per phase.
    Every phase reads one padded dy (offset[(k, a)] = k·plane − Σ e_a·pitch) and writes its
    cells into one channels-last dx (the kernel's ``row`` table), transposed to dx.

    ``per_image``: one parallel task per image, which pads its image of dy, computes the
    image's cells of every phase and transposes them while they are in cache
    (``implicit_gemm_numba.by_image``); else one parallel product per phase on dy padded
    first, and one transposing pass over all of dx at the end.
    By default per image from 4 images per thread on (``implicit.per_image_tasks``).

    ``groups``: w (K, C/G, *kernel) of a grouped layer, dx (N, C, ...). Per image, one task
    per image and group (dy and dx split by group as views, as ``implicit.per_image_product``
    does); else the groups one after another.

    ``check_w``: raise NotFinite("w") for a w that holds inf or NaN, before any product (the
    zeros that pad dy meet it): found as its taps are laid out, or by a pass over w where
    some phase has no cells and its taps are not laid out.

    The tables are made once per shape (``_phase_plan``) and the weights laid out by one
    compiled pass (``_phase_weights``): built with NumPy on every call, they took 0.53 of
    res3x3_s2's 4.30 ms (32 images, a 64 → 128-channel layer, 2 threads), 0.18 of 3.51
    now, and 0.33 ms beside a 0.11 ms kernel for a 16 → 32-channel layer on 16 × 16 maps;
    NumPy's calls run slowly right after a product has filled the caches."""
    pads = pads or [(0, 0)] * len(spatial)
    n, k, c = dy.shape[0], w.shape[0] // groups, w.shape[1]
    plan = _phase_plan((k, c) + implicit.int_key(w.shape[2:]),
                       *_shape_key(dy, spatial, stride, dilation, pads))
    cells = math.prod(plan.size)
    by_image = implicit.per_image_tasks(n * groups, cells, compiled.tile(c)[2], per_image)
    if groups > 1 and not by_image:
        return group_by_group(by_phases, dy, w, spatial, stride, dilation, pads, groups,
                              per_image=False, check_w=check_w)
    dy = dy.reshape((n * groups, k) + dy.shape[2:])  # image n·G + j: group j's channels
    n *= groups
    rows, vectors, c_padded = compiled.tile(c)
    every_tap = plan.weight_rows.size == w.size // (groups * c)  # else: taps no product reads
    wt, finite = _phase_weights(w, plan.weight_rows, groups, check=check_w and every_tap)
    if check_w and not every_tap:
        finite = all_finite(w)
    if not finite:
        raise NotFinite("w")
    dx = np.empty((n, c, cells), np.float32)
    if plan.taps and by_image:
        compiled.BY_IMAGE[vectors](*implicit.image_padding(dy, plan.dy_pads),
                                   compiled.NO_PADDED_COPY, wt, plan.offset, plan.tap_start,
                                   plan.corner, plan.row, plan.position_start, cells, dx,
                                   compiled.NO_ROWS, compiled.NO_BIAS,
                                   tuning.value("implicit_tap_block"), groups, plan.empty,
                                   compiled.NO_CHECK, 0, 0, tuning.value("implicit_image_chunk"))
        return dx.reshape((n // groups, c * groups) + plan.size)
    dx_last = (aligned.zeros if plan.empty else aligned.empty)((n * cells + rows, c_padded))
    dyp = np.ascontiguousarray(zero_pad(dy, plan.dy_pads))
    image = math.prod(dyp.shape[1:])
    for f in range(len(plan.taps)):
        first, last = plan.position_start[f:f + 2]
        corner = np.add.outer(np.arange(n, dtype=np.int64) * image,
                              plan.corner[first:last]).reshape(-1)
        row = np.add.outer(np.arange(n, dtype=np.int64) * cells,
                           plan.row[first:last]).reshape(-1)
        taps = slice(plan.tap_start[f], plan.tap_start[f + 1])
        product_wt = wt[:, taps]  # a view of the product's rows, contiguous for one panel
        if not product_wt.flags.c_contiguous:
            product_wt = aligned.empty(product_wt.shape)
            product_wt[:] = wt[:, taps]
        compiled.ENTRY[vectors][0](dyp, product_wt, plan.offset[taps], corner, dx_last,
                                   compiled.NO_Y,
                                   *implicit.task_split(corner.size, dx_last.shape[1],
                                                        compiled.LANES * vectors),
                                   tuning.value("implicit_tap_block"), row, compiled.NO_BIAS)
    shares_to_planes(dx_last[None], dx)
    return dx.reshape((n, c) + plan.size)


class _PhasePlan(NamedTuple):
    """``by_phases``' products for one shape of w (one group's), dy and dx: dy's zero padding,
    dx's ``size`` less its padding, whether some cells are reached by no tap (``empty``:
    zero), and per product (a phase reached by taps) w's ``taps`` (flat kernel indices) and
    its part of the kernel's tables, one image's, read-only: ``offset`` (k, a) of padded dy
    from ``tap_start[f]``, ``corner`` and dx's ``row`` per position from
    ``position_start[f]``; ``weight_rows``: the rows (k, a) of all products in turn, as
    indices k·T + a of a group's w laid out (K/G·T, C/G) (T taps), ``_phase_weights``."""
    dy_pads: tuple
    size: tuple
    empty: bool
    taps: tuple
    offset: np.ndarray
    tap_start: np.ndarray
    corner: np.ndarray
    row: np.ndarray
    position_start: np.ndarray
    weight_rows: np.ndarray


@functools.lru_cache(maxsize=64)
def _phase_plan(w_shape, dy_spatial, spatial, stride, dilation, pads):
    k, c, *kernel = w_shape
    size = tuple(length - lo - hi for length, (lo, hi) in zip(spatial, pads))
    dims = []  # per dim: [(r, taps or None, e per tap, first q, cells)]
    for kk, s, d, (lo, _), cells in zip(kernel, stride, dilation, pads, size):
        shifts = _shifts(kk, s, d)
        phases = []
        for r in range(s):
            q0, q1 = _cells(lo, cells, s, r)
            if q1 < q0:
                continue
            taps = [a for a in range(kk) if shifts[a][0] == r]
            e = np.array([shifts[a][1] for a in taps], np.int64)
            phases.append((r, taps or None, e, q0, q1 - q0 + 1))
        dims.append(phases)
    dy_pads = tuple(_dy_pads((min(q0 - e[-1] for _, t, e, q0, _ in phases if t),
                              max(q0 + cells - 1 - e[0] for _, t, e, q0, cells in phases if t)),
                             length)
                    if any(t for _, t, _, _, _ in phases) else (0, 0)
                    for phases, length in zip(dims, dy_spatial))
    padded = tuple(length + lo + hi for length, (lo, hi) in zip(dy_spatial, dy_pads))
    plane, pitch = math.prod(padded), flat_pitches(padded)
    dx_pitch = flat_pitches(size)
    products = []  # per phase with taps: (taps, offset, corner, row)
    for combination in itertools.product(*dims):
        if any(p[1] is None for p in combination):
            continue
        offset = np.arange(k, dtype=np.int64) * plane
        corner = row = np.zeros(1, np.int64)
        for (r, _, e, q0, cells), p, (dy_lo, _), (lo, _), s, dx_p in zip(
                combination, pitch, dy_pads, pads, stride, dx_pitch):
            q = np.arange(q0, q0 + cells, dtype=np.int64)
            offset = np.add.outer(offset, -e * p).reshape(-1)
            corner = np.add.outer(corner, (q + dy_lo) * p).reshape(-1)
            row = np.add.outer(row, (q * s + r - lo) * dx_p).reshape(-1)
        taps = np.ravel_multi_index(np.ix_(*(p[1] for p in combination)), kernel)
        products.append((taps.reshape(-1), offset, corner, row))
    empty = any(p[1] is None for phases in dims for p in phases)  # cells left zero
    tables = [np.concatenate([table[j] for table in products] or [np.zeros(0, np.int64)])
              for j in (1, 2, 3)]
    starts = [np.cumsum([0] + [table[j].size for table in products]).astype(np.int64)
              for j in (1, 2)]
    weight_rows = np.concatenate(
        [np.add.outer(np.arange(k, dtype=np.int64) * math.prod(kernel), taps).reshape(-1)
         for taps, _, _, _ in products] or [np.zeros(0, np.int64)])
    # kept (lru_cache) and read by the kernels only, as ``implicit.shared_table``'s: not
    # flagged read-only, which Numba types apart, compiling every kernel they reach twice
    return _PhasePlan(dy_pads, size, empty, tuple(taps for taps, _, _, _ in products),
                      tables[0], starts[0], tables[1], tables[2], starts[1], weight_rows)


def _phase_weights(w, weight_rows, groups, check):
    """(All of ``by_phases``' products' weights in the kernel's panels, (G·P, R, W), with
    ``check`` whether they are all finite, else True): group g's panel j, row r = B[(k, a),
    c] = w[g·K/G + k, j·W + c, a] for the r-th (k, a) of ``weight_rows`` (zero for
    c ≥ C/G)."""
    k, c = w.shape[:2]
    width = compiled.LANES * compiled.tile(c)[1]
    wt = aligned.empty((groups * -(-c // width), weight_rows.size, width))
    finite = weight_rows_to_panels(np.ascontiguousarray(w, np.float32).reshape(k, c, -1),
                                   weight_rows, groups, wt, check)
    return wt, finite


def _shape_key(dy, spatial, stride, dilation, pads):
    """The cache key of a call's shapes beside w's: dy's spatial shape, the padded input's,
    stride, dilation and pads, as Python ints."""
    key = implicit.int_key
    return (key(dy.shape[2:]), key(spatial), key(stride), key(dilation),
            tuple(key(pair) for pair in pads))


def group_by_group(arrangement, dy, w, spatial, stride, dilation, pads, groups, **options):
    """A grouped layer's input gradient as one ``arrangement`` per group, in turn."""
    return np.concatenate([arrangement(np.ascontiguousarray(dy_j), w_j, spatial, stride,
                                       dilation, pads, **options)
                           for dy_j, w_j in zip(np.split(dy, groups, axis=1),
                                                np.split(w, groups))], axis=1)


def subpixel(dy, w, spatial, stride, dilation, pads=None, per_image=None, groups=1,
             check_dy=True):
    """dL/dx (N, C, *spatial less pads) of a strided convolution as one stride-1 product
    with S·C outputs (phase-major) over the union of the phases' shifts, whose output q of
    phase r is the cell q·s + r: dy padded so that output p is cell q = p + origin.
    ``per_image`` as for ``by_phases`` (for a channels-last product); ``groups``: w (K, C/G,
    *kernel) of a grouped layer, its groups one after another.

    The zero weights of the shifts a phase lacks meet dy, so with ``check_dy`` (unless the
    caller knows dy is finite) it raises ``NotFinite("dy")`` for a dy that holds inf or NaN,
    found as dy is padded: by each task as it pads its image of dy, or by the pass that pads
    all of dy (``zero_pad_finite``), where the dispatcher made a pass over dy first (0.28 ms
    of AlexNet's first layer's 4.5 ms on 8 images, 2 threads, AVX-512).

    Everything but the weights' values is decided once per shape (``_SubpixelGrid``,
    ``_subpixel_tables``): each call gathers w into the product's weights by one compiled
    loop and runs the product. (Built on every call, those tables and the weights' five
    NumPy steps made AlexNet's input gradient on 8 images 4.46 ms against its kernel's 3.96,
    2 threads; 4.15 against 3.87 with them kept. NumPy's concatenate and ``take`` of the
    weights then took 89 µs right after a product, the compiled gather 60.)"""
    if groups > 1:
        return group_by_group(subpixel, dy, w, spatial, stride, dilation, pads, groups,
                              per_image=per_image, check_dy=check_dy)
    pads = pads or [(0, 0)] * len(spatial)
    n, c = dy.shape[0], w.shape[1]
    grid = _subpixel_grid(implicit.int_key(w.shape),
                          *_shape_key(dy, spatial, stride, dilation, pads))
    planar = implicit.planar_wins(grid.outputs, grid.terms, grid.padded, grid.out)
    weights, source = _subpixel_tables(grid, planar)
    # w flat, and zeros where the index is w.size: the taps a phase lacks
    w_sub = (np.empty if planar else aligned.empty)(weights.shape, np.float32)
    gather_or_zero(np.ascontiguousarray(w, np.float32).reshape(-1), weights, w_sub)
    w_shape = (grid.outputs, w.shape[0]) + grid.widths
    ones = (1,) * len(stride)
    dx = np.empty((n, c, math.prod(grid.size)), np.float32)
    if not planar and implicit.per_image_tasks(n, math.prod(grid.out), weights.shape[0] *
                                               weights.shape[2], per_image):
        # each image's rows gathered into dx by the task that computed them, in cache
        finite = np.zeros(n, np.uint8) if check_dy else None  # per image, set by its task
        implicit.per_image_product(dy, grid.dy_pads, w_sub, w_shape, ones, grid.out, source,
                                   dx, finite=finite)
        if finite is not None and not finite.all():
            raise NotFinite("dy")
        return dx.reshape((n, c) + grid.size)
    if check_dy:
        dyp, dy_finite = zero_pad_finite(dy, grid.dy_pads)
        if not dy_finite:
            raise NotFinite("dy")
    else:
        dyp = zero_pad(dy, grid.dy_pads)
    if planar:
        product = implicit.forward(dyp, w_sub, ones, dilation=ones, out=grid.out)
        image = grid.outputs * math.prod(grid.out)
        channel_step = math.prod(grid.out)
    else:
        product = implicit.channels_last(dyp, w_sub, w_shape, ones, ones, grid.out)
        image = math.prod(grid.out) * weights.shape[0] * weights.shape[2]
        channel_step = 1
    gather_planes(product, image, source, channel_step, dx)
    return dx.reshape((n, c) + grid.size)



class _SubpixelGrid(NamedTuple):
    """``subpixel``'s product for one shape of w, dy and dx: per dim, its taps (phase r,
    shift u) -> the kernel's tap, the union of the shifts (``widths``), dy's zero padding and
    the origin (output p is cell q = p + origin of each phase); dx's ``size`` less the
    padding, the product's ``outputs`` (S·C), ``terms`` per output (K·prod(widths)), padded dy
    and ``out`` positions per image."""
    w_shape: tuple
    pads: tuple
    stride: tuple
    taps_of: tuple
    widths: tuple
    dy_pads: tuple
    origin: tuple
    size: tuple
    outputs: int
    terms: int
    padded: tuple
    out: tuple


def subpixel_grid(geometry):
    """``subpixel``'s product (``_SubpixelGrid``) for a layer's ``ConvGeometry`` (one
    group's)."""
    g, key = geometry, implicit.int_key
    return _subpixel_grid((g.out_channels, g.in_channels) + key(g.kernel), key(g.out),
                          key(g.padded), key(g.stride), key(g.dilation),
                          tuple(key(pair) for pair in g.pad_widths))


@functools.lru_cache(maxsize=64)
def _subpixel_grid(w_shape, dy_spatial, spatial, stride, dilation, pads):
    k, c, *kernel = w_shape
    size = tuple(length - lo - hi for length, (lo, hi) in zip(spatial, pads))
    taps_of, widths, dy_pads, origin = [], [], [], []
    for kk, s, d, (lo, _), cells, length in zip(kernel, stride, dilation, pads, size,
                                                 dy_spatial):
        shifts = _shifts(kk, s, d)
        e_low = min(e for _, e in shifts.values())
        e_high = max(e for _, e in shifts.values())
        q_low, q_high = lo // s, (lo + cells - 1) // s  # every phase's cells
        # Tap u of the product reads dy[q − e] with e = e_high − u, from p = q − e_high + pad.
        pad = _dy_pads((q_low - e_high, q_high - e_low), length)
        taps_of.append(tuple(sorted(((r, e_high - e), a) for a, (r, e) in shifts.items())))
        widths.append(e_high - e_low + 1)
        dy_pads.append(pad)
        origin.append(e_high - pad[0])
    padded = tuple(length + lo + hi for length, (lo, hi) in zip(dy_spatial, dy_pads))
    out = tuple(length - width + 1 for length, width in zip(padded, widths))
    return _SubpixelGrid(w_shape, pads, stride, tuple(taps_of), tuple(widths), tuple(dy_pads),
                         tuple(origin), size, math.prod(stride) * c, k * math.prod(widths),
                         padded, out)


@functools.lru_cache(maxsize=64)
def _subpixel_tables(grid, planar):
    """(weights, source) of ``subpixel``'s product, read-only: ``weights`` indexes w flat,
    w.size standing for a zero (``transpose_numba.gather_or_zero``): w_sub[(r, c), k, *u] =
    w[k, c, a] for the tap a of phase r at shift u, else zero, as (S·C, K, *widths) for the
    planar product, or laid out in the channels-last product's panels
    (``implicit_gemm_numba.panels``); ``source[s]``: where dx's cell s of channel 0 lies in
    an image's product (channel c: c rows or columns on)."""
    k, c, *kernel = grid.w_shape
    dims = len(kernel)
    zero = math.prod(grid.w_shape)
    tap = np.zeros((1,) * (2 * dims), np.int64)  # flat tap at (*r, *u), or −1 where none
    missing = np.zeros((1,) * (2 * dims), bool)
    for j, (table, s, width, pitch) in enumerate(zip(grid.taps_of, grid.stride, grid.widths,
                                                     flat_pitches(kernel))):
        a = np.full((s, width), -1, np.int64)
        for (r, u), kernel_tap in table:
            a[r, u] = kernel_tap
        shape = [1] * (2 * dims)
        shape[j], shape[dims + j] = s, width
        tap = tap + (a * pitch).reshape(shape)
        missing = missing | (a < 0).reshape(shape)
    taps = math.prod(kernel)
    # (*s, C, K, *u): flat index of w[k, c, tap]
    channel_filter = np.add.outer(np.arange(c) * taps, np.arange(k) * (c * taps))
    index = np.add.outer(channel_filter, tap)  # (C, K, *s, *u)
    index = np.where(missing, zero, index)
    index = np.moveaxis(index, (0, 1), (dims, dims + 1))  # (*s, C, K, *u)
    weights = np.ascontiguousarray(index).reshape((grid.outputs, k) + grid.widths)
    positions = math.prod(grid.out)
    if planar:
        position_step, channel_step = 1, positions
    else:
        width = compiled.LANES * compiled.tile(grid.outputs)[1]
        panels = -(-grid.outputs // width)
        rows = np.full((panels * width, grid.terms), zero, np.int64)
        rows[:grid.outputs] = weights.reshape(grid.outputs, -1)
        weights = np.ascontiguousarray(rows.reshape(panels, width, -1).transpose(0, 2, 1))
        position_step, channel_step = panels * width, 1
    # Output (r, c) at position p is cell (p + origin)·s + r of the padded input: the phases
    # are interleaved into dx by one gather, from the product's rows or from its planes.
    source = np.zeros((), np.int64)
    for (lo, _), o, s, cells, pitch, phase_pitch in zip(
            grid.pads, grid.origin, grid.stride, grid.size, flat_pitches(grid.out),
            flat_pitches(grid.stride)):
        m = np.arange(cells, dtype=np.int64) + lo - o * s  # cell index in the product's grid
        source = np.add.outer(source, (m // s) * pitch * position_step +
                              (m % s) * phase_pitch * c * channel_step)
    return weights, source.reshape(-1)  # kept and read only, as ``_phase_plan``'s tables
