"""The input gradient of a strided convolution on the implicit GEMM, in two arrangements.

A stride-s layer's padded input cell j = q·s + r (a residue r per dim: its *phase*) receives

    dx[q·s + r] = Σ_k Σ_{a: a·d ≡ r (mod s)} dy[k, q − e_a] · w[k, :, a],   e_a = (a·d − r)/s

so each phase is a stride-1 product on dy with the taps of that phase (docs/concepts.md,
backpropagation). Both arrangements read dy zero-padded (as a whole, or image by image), whose
zeros meet w, as in the stride-1 input gradient (``registry.NEEDS_FINITE``); ``subpixel``'s
zero weights also meet dy (``implicit.needs_finite``):

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
import itertools
import math

import numpy as np

from ... import tuning
from .. import aligned, implicit_gemm_numba as compiled
from ..padding import zero_pad
from ..transpose_numba import gather_planes, shares_to_planes
from . import implicit
from .shift import flat_pitches



def every_phase_has_taps(geometry):
    """Whether each phase is reached by a tap (else its cells are zeros that a product would
    spend its time writing): k ≥ s and d, s coprime in every dim."""
    return all(k >= s and math.gcd(d, s) == 1
               for k, s, d in zip(geometry.kernel, geometry.stride, geometry.dilation))


def subpixel_terms(geometry):
    """Terms per output of ``subpixel``'s product: K · the union of the shifts, per dim."""
    terms = geometry.out_channels
    for k, s, d in zip(geometry.kernel, geometry.stride, geometry.dilation):
        shifts = [e for _, e in _shifts(k, s, d).values()]
        terms *= max(shifts) - min(shifts) + 1
    return terms


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


def by_phases(dy, w, spatial, stride, dilation, pads=None, per_image=None, groups=1):
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
    does); else the groups one after another."""
    pads = pads or [(0, 0)] * len(spatial)
    size = [length - lo - hi for length, (lo, hi) in zip(spatial, pads)]
    n, k, c = dy.shape[0], w.shape[0] // groups, w.shape[1]
    by_image = implicit.per_image_tasks(n * groups, math.prod(size), compiled.tile(c)[2],
                                        per_image)
    if groups > 1 and not by_image:
        return _group_by_group(by_phases, dy, w, spatial, stride, dilation, pads, groups,
                               per_image=False)
    dy = dy.reshape((n * groups, k) + dy.shape[2:])  # image n·G + j: group j's channels
    n *= groups
    dims = []  # per dim: [(r, taps or None, e per tap, first q, cells)]
    for kk, s, d, (lo, _), cells in zip(w.shape[2:], stride, dilation, pads, size):
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
    dy_pads = [_dy_pads((min(q0 - e[-1] for _, t, e, q0, _ in phases if t),
                         max(q0 + cells - 1 - e[0] for _, t, e, q0, cells in phases if t)),
                        length)
               if any(t for _, t, _, _, _ in phases) else (0, 0)
               for phases, length in zip(dims, dy.shape[2:])]
    padded = implicit.padded_shape(dy.shape, dy_pads)
    plane, *pitch = flat_pitches(padded[1:])
    dx_pitch = flat_pitches(size)
    rows, vectors, c_padded = compiled.tile(c)
    whole = n * math.prod(size)
    empty = any(p[1] is None for phases in dims for p in phases)  # cells left zero
    products = []  # per phase with taps: (weights in panels, offset, corner, row)
    # w with each tap's input channels contiguous, (K, taps, C/G): a phase's weights, the rows
    # B[(k, a), c] of its product, are then its taps' rows taken along one axis. (Indexing
    # w's kernel axes per phase and laying each out in panels took 0.21 against 0.09 ms for
    # res3x3_s2's four phases, 128 → 64 channels.)
    w_last = np.ascontiguousarray(np.moveaxis(w, 1, -1)).reshape(w.shape[0], -1, c)
    for combination in itertools.product(*dims):
        if any(p[1] is None for p in combination):
            continue
        offset = np.arange(k, dtype=np.int64) * plane
        corner = np.arange(n, dtype=np.int64) * plane * k
        row = np.arange(n, dtype=np.int64) * math.prod(size)
        for (r, _, e, q0, cells), p, (dy_lo, _), (lo, _), s, dx_p in zip(
                combination, pitch, dy_pads, pads, stride, dx_pitch):
            q = np.arange(q0, q0 + cells, dtype=np.int64)
            offset = np.add.outer(offset, -e * p).reshape(-1)
            corner = np.add.outer(corner, (q + dy_lo) * p).reshape(-1)
            row = np.add.outer(row, (q * s + r - lo) * dx_p).reshape(-1)
        taps = np.ravel_multi_index(np.ix_(*(p[1] for p in combination)), w.shape[2:])
        products.append((implicit.group_panels(  # B[(k, a), c] = w[k, c, a], per group
            w_last[:, taps.reshape(-1)], groups,
            lambda rows: compiled.panels(rows.reshape(-1, c, 1))), offset, corner, row))
    dx = np.empty((n, c, math.prod(size)), np.float32)
    if products and by_image:
        panels = [b for b, _, _, _ in products]
        wt = aligned.empty((panels[0].shape[0], sum(p.shape[1] for p in panels),
                            panels[0].shape[2]))
        np.concatenate(panels, axis=1, out=wt)
        tap_start = np.cumsum([0] + [o.size for _, o, _, _ in products]).astype(np.int64)
        position_start = np.cumsum([0] + [cr.size for _, _, cr, _ in products]).astype(np.int64)
        compiled.BY_IMAGE[vectors](*implicit.image_padding(dy, dy_pads), compiled.NO_PADDED_COPY,
                                   wt,
                                   np.concatenate([o for _, o, _, _ in products]),
                                   tap_start,
                                   np.concatenate([cr for _, _, cr, _ in products]),
                                   np.concatenate([r for _, _, _, r in products]),
                                   position_start, dx.shape[2], dx, compiled.NO_ROWS,
                                   compiled.NO_BIAS, tuning.value("implicit_tap_block"),
                                   groups, empty)
        return dx.reshape((n // groups, c * groups) + tuple(size))
    dx_last = (aligned.zeros if empty else aligned.empty)((whole + rows, c_padded))
    dyp = np.ascontiguousarray(zero_pad(dy, dy_pads))
    for wt, offset, corner, row in products:
        compiled.ENTRY[vectors][0](dyp, wt, offset, corner, dx_last, compiled.NO_Y,
                                   *implicit.task_split(corner.size, dx_last.shape[1],
                                                       compiled.LANES * vectors),
                                   tuning.value("implicit_tap_block"), row, compiled.NO_BIAS)
    shares_to_planes(dx_last[None], dx)
    return dx.reshape((n, c) + tuple(size))


def _group_by_group(arrangement, dy, w, spatial, stride, dilation, pads, groups, **options):
    """A grouped layer's input gradient as one ``arrangement`` per group, in turn."""
    return np.concatenate([arrangement(np.ascontiguousarray(dy_j), w_j, spatial, stride,
                                       dilation, pads, **options)
                           for dy_j, w_j in zip(np.split(dy, groups, axis=1),
                                                np.split(w, groups))], axis=1)


def subpixel(dy, w, spatial, stride, dilation, pads=None, per_image=None, groups=1):
    """dL/dx (N, C, *spatial less pads) of a strided convolution as one stride-1 product
    with S·C outputs (phase-major) over the union of the phases' shifts, whose output q of
    phase r is the cell q·s + r: dy padded so that output p is cell q = p + origin.
    ``per_image`` as for ``by_phases`` (for a channels-last product); ``groups``: w (K, C/G,
    *kernel) of a grouped layer, its groups one after another."""
    if groups > 1:
        return _group_by_group(subpixel, dy, w, spatial, stride, dilation, pads, groups,
                               per_image=per_image)
    pads = pads or [(0, 0)] * len(spatial)
    n, k, c = dy.shape[0], w.shape[0], w.shape[1]
    size = [length - lo - hi for length, (lo, hi) in zip(spatial, pads)]
    taps_of, widths, dy_pads, origin = [], [], [], []
    for kk, s, d, (lo, _), cells, length in zip(w.shape[2:], stride, dilation, pads, size,
                                                 dy.shape[2:]):
        shifts = _shifts(kk, s, d)
        e_low = min(e for _, e in shifts.values())
        e_high = max(e for _, e in shifts.values())
        q_low, q_high = lo // s, (lo + cells - 1) // s  # every phase's cells
        # Tap u of the product reads dy[q − e] with e = e_high − u, from p = q − e_high + pad.
        pad = _dy_pads((q_low - e_high, q_high - e_low), length)
        taps_of.append({(r, e_high - e): a for a, (r, e) in shifts.items()})
        widths.append(e_high - e_low + 1)
        dy_pads.append(pad)
        origin.append(e_high - pad[0])
    # w_sub[(r, c), k, u] = w[k, c, a] for the tap a of phase r at shift u, else 0: one
    # gather from w with a zero tap appended (index kk) per dim.
    dims = len(stride)
    index = []
    for j, (table, s, width, kk) in enumerate(zip(taps_of, stride, widths, w.shape[2:])):
        a = np.full((s, width), kk, np.int64)
        for (r, u), tap in table.items():
            a[r, u] = tap
        shape = [1] * (2 * dims)
        shape[j], shape[dims + j] = s, width
        index.append(a.reshape(shape))
    w_zero_tap = np.pad(w, [(0, 0), (0, 0)] + [(0, 1)] * dims)
    gathered = w_zero_tap[(slice(None), slice(None)) + tuple(index)]  # (K, C, *s, *widths)
    w_sub = np.moveaxis(gathered, (0, 1), (dims + 1, dims))  # (*s, C, K, *widths)
    padded = implicit.padded_shape(dy.shape, dy_pads)
    out = tuple(length - width + 1 for length, width in zip(padded[2:], widths))
    w_sub = np.ascontiguousarray(w_sub).reshape((-1, k) + tuple(widths))
    ones = (1,) * dims
    positions, outputs = math.prod(out), w_sub.shape[0]
    # Output (r, c) at position p is cell (p + origin)·s + r of the padded input: the phases
    # are interleaved into dx by one gather, from the product's rows or from its planes.
    planar = implicit.planar_wins(outputs, math.prod(w_sub.shape[1:]), padded[2:], out)
    k_padded = compiled.tile(outputs)[2]
    position_step, channel_step = (1, positions) if planar else (k_padded, 1)
    source = np.zeros((), np.int64)
    for (lo, _), o, s, cells, pitch, phase_pitch in zip(
            pads, origin, stride, size, flat_pitches(out), flat_pitches(stride)):
        m = np.arange(cells, dtype=np.int64) + lo - o * s  # cell index in the product's grid
        source = np.add.outer(source, (m // s) * pitch * position_step +
                              (m % s) * phase_pitch * c * channel_step)
    source = source.reshape(-1)
    dx = np.empty((n, c, math.prod(size)), np.float32)
    wt = None if planar else compiled.panels(w_sub.reshape(1, outputs, -1))
    if not planar and implicit.per_image_tasks(n, math.prod(out), compiled.tile(outputs)[2],
                                               per_image):
        # each image's rows gathered into dx by the task that computed them, in cache
        implicit.per_image_product(dy, dy_pads, wt, w_sub.shape, ones, out, source, dx)
        return dx.reshape((n, c) + tuple(size))
    dyp = zero_pad(dy, dy_pads)
    if planar:
        product = implicit.forward(dyp, w_sub, ones, dilation=ones, out=out)
        image = outputs * positions
    else:
        product = implicit.channels_last(dyp, wt, w_sub.shape, ones, ones, out)
        image = positions * k_padded
    gather_planes(product, image, source, channel_step, dx)
    return dx.reshape((n, c) + tuple(size))
