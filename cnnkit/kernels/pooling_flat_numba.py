"""Pooling a whole plane (or volume) as one flat row: each tap of the window is one vectorised
pass over all of a plane's outputs, not one pass per output row.

At stride s along every axis that slides, output (o, i, j)'s tap at offset (e, a, b) of the
window reads the padded input at ((o·s + e·dd)·Hp + i·s + a·dh)·Wp + j·s + b·dw, which is
s·q + offset with q = (o·Hp + i)·Wp + j and offset = (e·dd·Hp + a·dh)·Wp + b·dw (Hp and Wp the
padded extents, Wp a multiple of s). So the outputs are laid out at the padded input's pitches
(the columns past each output row are computed and thrown away), and the padded input is split
into its s flat phases (positions p, p + s, p + 2s, ...): each tap is then
``held[q] = op(held[q], phase[offset mod s][q + offset div s])`` for every q at once, a loop
LLVM vectorises, over a plane's outputs rather than a row's. The general kernel's passes are
per output row, so on small maps their fixed costs were most of the time (``pooling_numba``;
BENCHMARKS.md, "Pooling a plane as one flat row").

The same values and indices as ``pooling_numba._forward``, bit for bit: the padding holds 0
for averages (x + 0 = x, and a sum from 0 is never −0) and −inf for maxima, and each padded
position's flat input index is −1 (``cells``), so that the rule "the first cell inside wins
whatever it holds" (``held_at < 0``) skips the padding as ``_forward`` does; taps are taken in
the window's order, and averages divided in float64 at the end.
"""
import functools
import math

import numba
import numpy as np

_JIT = dict(parallel=True, cache=True)
# Tasks per thread, each a run of planes sharing its buffers: 1 to 16 ran alike (3 × 3 max at
# stride 2 on maps of 7² to 56², AVX-512 and AVX2; ``python -m cnnkit.bench.pool_rows --chunks``)
CHUNKS_PER_THREAD = 4
_NO_CELLS = np.empty((1, 0), np.int32)  # the index table where no index is asked for
_NO_CELLS.flags.writeable = False  # read-only as ``cells``' tables: one compiled kernel


def flat_stride(stride, out):
    """The stride shared by every axis with more than one output (1 if none has), or None when
    they differ: the flat layout needs one stride."""
    sliding = {s for s, o in zip(stride, out) if o > 1}
    return sliding.pop() if len(sliding) == 1 else (1 if not sliding else None)


@functools.lru_cache(maxsize=64)
def layout(spatial, kernel, stride, pads, dilation, out):
    """(offsets, padded, phase_length) of volumes (D, H, W) pooled flat at ``stride`` (one int):
    the taps' flat offsets in window order, the padded extents (Dp, Hp, Wp) and the length of
    each of the ``stride`` phases. Read-only arrays: calls share them."""
    extents = [max(lo + n, (o - 1) * stride + (k - 1) * d + 1)
               for n, k, lo, d, o in zip(spatial, kernel, pads, dilation, out)]
    extents[-1] = -(-extents[-1] // stride) * stride  # Wp a multiple of the stride
    _, hp, wp = extents
    offsets = np.array([(e * dilation[0] * hp + a * dilation[1]) * wp + b * dilation[2]
                        for e in range(kernel[0]) for a in range(kernel[1])
                        for b in range(kernel[2])], np.int64)
    outputs = ((out[0] - 1) * hp + out[1] - 1) * wp + out[2]
    # every input cell has a place (rows past the last window too), and every tap's reach
    phase_length = max(math.prod(extents) // stride, outputs + int(offsets.max()) // stride)
    extents = np.array(extents, np.int64)
    offsets.flags.writeable = extents.flags.writeable = False
    return offsets, extents, phase_length


@functools.lru_cache(maxsize=16)
def cells(spatial, pads, padded, stride, phase_length, index_type):
    """cells[p, t]: the flat input index of padded position t·stride + p, −1 in the padding."""
    position = np.arange(stride * phase_length)
    _, hp, wp = padded
    inside = np.ones(position.shape, bool)
    flat = np.zeros(position.shape, np.int64)
    for place, n, lo in zip((position // (hp * wp), position // wp % hp, position % wp),
                            spatial, pads):
        cell = place - lo
        inside &= (cell >= 0) & (cell < n)
        flat = flat * n + cell
    table = np.ascontiguousarray(np.where(inside, flat, -1).astype(index_type)
                                 .reshape(phase_length, stride).T)
    table.flags.writeable = False
    return table


@numba.njit(cache=True, inline="always")
def place_row(row, phases, start, stride):
    """phases[(start + t) mod stride][(start + t) div stride] = row[t]: one input row into the
    padded volume's phases (from ``start`` = 0: the row's own phases, as ``pooling_numba``'s
    per-row kernel splits it). At stride 2 one loop writes both phases from pairs of cells,
    which LLVM vectorises (a loop per phase reads every other cell and stays scalar)."""
    width = row.size
    if stride == 1:
        for t in range(width):
            phases[0, np.uint64(start + t)] = row[np.uint64(t)]
    elif stride == 2:
        odd = start % 2  # an odd start: its first cell alone, into phase 1
        if odd:
            phases[1, start // 2] = row[0]
        first = (start + odd) // 2
        pairs = (width - odd) // 2
        for t in range(pairs):
            u = np.uint64(t)
            phases[0, np.uint64(first) + u] = row[np.uint64(odd) + 2 * u]
            phases[1, np.uint64(first) + u] = row[np.uint64(odd) + 2 * u + 1]
        if (width - odd) % 2:
            phases[0, first + pairs] = row[width - 1]
    else:  # the phase and place carried along (a division per cell cost more than the pooling)
        phase, place = start % stride, start // stride
        for t in range(width):
            phases[phase, place] = row[t]
            phase += 1
            if phase == stride:
                phase, place = 0, place + 1


@numba.njit(cache=True, inline="always")
def _take_row(phases, row, start, stride):
    """``place_row`` backwards: row[t] = the phases' cell of padded position start + t."""
    width = row.size
    if stride == 1:
        for t in range(width):
            row[np.uint64(t)] = phases[0, np.uint64(start + t)]
    elif stride == 2:
        odd = start % 2
        if odd:
            row[0] = phases[1, start // 2]
        first = (start + odd) // 2
        pairs = (width - odd) // 2
        for t in range(pairs):
            u = np.uint64(t)
            row[np.uint64(odd) + 2 * u] = phases[0, np.uint64(first) + u]
            row[np.uint64(odd) + 2 * u + 1] = phases[1, np.uint64(first) + u]
        if (width - odd) % 2:
            row[width - 1] = phases[0, first + pairs]
    else:
        phase, place = start % stride, start // stride
        for t in range(width):
            row[t] = phases[phase, place]
            phase += 1
            if phase == stride:
                phase, place = 0, place + 1


@numba.njit(**_JIT)
def _pool_flat(x, offsets, stride, pads, padded, out, index, divisor, cells, phase_length,
               chunks):
    """Pooling of volumes x (N, C, D, H, W) into out (N, C, od, oh, ow) as the module says:
    maxima (and their ``index`` from ``cells``, unless ``index`` is empty), or with a
    ``divisor`` (not empty) averages. A task pools a run of planes, sharing its buffers: the
    phases, whose padding is written once, and the flat outputs ``held``."""
    n_images, channels, depth, height, width = x.shape
    od, oh, ow = out.shape[2], out.shape[3], out.shape[4]
    hp, wp = padded[1], padded[2]
    average, indexed = divisor.size > 0, index.size > 0
    outputs = ((od - 1) * hp + oh - 1) * wp + ow
    planes = n_images * channels
    for chunk in numba.prange(chunks):
        phases = np.full((stride, phase_length), 0 if average else -np.inf, x.dtype)
        held = np.empty(outputs, x.dtype)
        held_at = np.empty(outputs if indexed else 0, cells.dtype)
        for plane in range(chunk * planes // chunks, (chunk + 1) * planes // chunks):
            n, c = plane // channels, plane % channels
            for z in range(depth):
                for r in range(height):
                    place_row(x[n, c, z, r], phases,
                               ((z + pads[0]) * hp + r + pads[1]) * wp + pads[2], stride)
            if average:
                held[:] = 0
            else:
                held[:] = -np.inf
                held_at[:] = -1
            for tap in range(offsets.size):
                source = phases[offsets[tap] % stride]
                shift = np.uint64(offsets[tap] // stride)
                if average:
                    for q in range(outputs):
                        u = np.uint64(q)
                        held[u] += source[u + shift]
                elif indexed:
                    at = cells[offsets[tap] % stride]
                    for q in range(outputs):
                        u = np.uint64(q)
                        value, best, best_at = source[u + shift], held[u], held_at[u]
                        take = (value > best) | (value != value) | (best_at < 0)
                        held[u] = value if take else best
                        held_at[u] = at[u + shift] if take else best_at
                else:
                    for q in range(outputs):
                        u = np.uint64(q)
                        value, best = source[u + shift], held[u]
                        held[u] = value if (value > best) | (value != value) else best
            for o in range(od):
                for i in range(oh):
                    first = (o * hp + i) * wp
                    row = out[n, c, o, i]
                    if average:
                        for j in range(ow):
                            row[j] = held[first + j] / divisor[o, i, j]
                    else:
                        row[:] = held[first:first + ow]
                        if indexed:
                            index[n, c, o, i, :] = held_at[first:first + ow]


def pool_flat(x, kernel, stride, pads, dilation, out, index, divisor):
    """Pool volumes x (N, C, D, H, W) into ``out`` flat; ``stride`` the one of ``flat_stride``,
    ``pads`` the low pads per axis; maxima (and ``index``'s, unless it is empty), or averages
    given a ``divisor`` (D', H', W') that is not empty."""
    spatial, out_spatial = tuple(x.shape[2:]), tuple(out.shape[2:])
    offsets, padded, phase_length = layout(spatial, tuple(kernel), stride, tuple(pads),
                                           tuple(dilation), out_spatial)
    table = cells(spatial, tuple(pads), tuple(padded), stride, phase_length, index.dtype.str) \
        if index.size else _NO_CELLS
    planes = x.shape[0] * x.shape[1]
    chunks = max(1, min(planes, numba.get_num_threads() * CHUNKS_PER_THREAD))
    _pool_flat(x, offsets, stride, np.array(pads, np.int64), padded, out, index, divisor,
               table, phase_length, chunks)


@numba.njit(**_JIT)
def _average_backward_flat(grad, offsets, stride, pads, padded, divisor, dx, phase_length,
                           chunks):
    """dL/dx of flat average pooling: each output's share (its gradient divided by its divisor
    in float64, then in dx's type) laid out as the outputs are, then added tap by tap in the
    window's order to the phases of a zeroed padded plane, whose cells inside are dx's. The
    columns past each output row hold a share of 0, so the cells they reach are unchanged
    (x + 0 = x; a sum from +0 is never −0), and every cell takes its shares in the order
    ``pooling_numba._average_backward`` adds them: the same values, bit for bit."""
    n_images, channels, depth, height, width = dx.shape
    od, oh, ow = grad.shape[2], grad.shape[3], grad.shape[4]
    hp, wp = padded[1], padded[2]
    outputs = ((od - 1) * hp + oh - 1) * wp + ow
    planes = n_images * channels
    for chunk in numba.prange(chunks):
        phases = np.empty((stride, phase_length), dx.dtype)
        share = np.zeros(outputs, dx.dtype)
        for plane in range(chunk * planes // chunks, (chunk + 1) * planes // chunks):
            n, c = plane // channels, plane % channels
            phases[:] = 0
            for o in range(od):
                for i in range(oh):
                    first = (o * hp + i) * wp
                    for j in range(ow):
                        share[first + j] = dx.dtype.type(np.float64(grad[n, c, o, i, j])
                                                         / divisor[o, i, j])
            for tap in range(offsets.size):
                target = phases[offsets[tap] % stride]
                shift = np.uint64(offsets[tap] // stride)
                for q in range(outputs):
                    u = np.uint64(q)
                    target[u + shift] += share[u]
            for z in range(depth):
                for r in range(height):
                    _take_row(phases, dx[n, c, z, r],
                              ((z + pads[0]) * hp + r + pads[1]) * wp + pads[2], stride)


def average_backward_flat(grad, kernel, stride, pads, divisor, dx):
    """dx of volumes (N, C, D, H, W) from ``grad`` (N, C, D', H', W') of flat average pooling
    (``stride`` the one of ``flat_stride``, ``pads`` the low pads, ``divisor`` (D', H', W'))."""
    offsets, padded, phase_length = layout(tuple(dx.shape[2:]), tuple(kernel), stride,
                                           tuple(pads), (1, 1, 1), tuple(grad.shape[2:]))
    planes = dx.shape[0] * dx.shape[1]
    chunks = max(1, min(planes, numba.get_num_threads() * CHUNKS_PER_THREAD))
    _average_backward_flat(grad, offsets, stride, np.array(pads, np.int64), padded, divisor,
                           dx, phase_length, chunks)
