"""Compiled max pooling (Numba): maps, signals as maps of one row, volumes, and global pooling;
value and index together.

The NumPy path (``kernels.pooling``) makes k·k vectorised passes over the whole input with
temporaries and a padded copy; here each (image, channel) plane is one parallel task, whose
passes run row by row in cache, and which records the flat input position of each maximum —
exactly PyTorch's ``return_indices``, which is also all the backward pass needs:
dL/dx[n, c, index[n, c, i, j]] += dL/dy[n, c, i, j]. The most common windows have kernels of
their own: 2 × 2 at stride 2 (``_forward_2x2``) and 1 × 2 at stride 1 × 2 (``_forward_pairs``).
Other windows at one stride along every axis are pooled a whole plane at a time, as one flat
row (``pooling_flat_numba``); windows whose strides differ by axis, row by row (``_forward``),
or window by window where the rows are short (``by_windows``): ``arrangement`` decides.

Window rule, as PyTorch's CPU kernel: cells in the padding are skipped; the first maximum wins,
unless a NaN appears, when the (last) NaN wins: ``if val > best or isnan(val)``.
"""
import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .microkernel import LANES as _TARGET_LANES
from .pooling_flat_numba import average_backward_flat, flat_stride, place_row, pool_flat
from .task_call import Tasks, run_tasks

# Outputs per ``pair_max``: at most 8, so the 14-wide maps of a 28×28 network take whole
# blocks on AVX-512 too (16 lanes would leave them to the scalar loop).
LANES = min(_TARGET_LANES, 8)

_JIT = dict(parallel=True, cache=True)
_PLANES_PER_TASK = 16  # planes per parallel task of ``_forward_2x2`` (which share its row
# buffers) and of ``_forward_pairs``


@numba.njit(**_JIT)
def _forward(x, kernel, stride, pads, dilation, out, index, divisor):
    """Any window on volumes x (N, C, D, H, W) (maps: D = 1), kernel, stride, pads and
    dilation each (depth, height, width): the maximum and its index (or the maximum alone,
    given an empty ``index``), or, with a ``divisor`` of the output's spatial shape (not
    empty), the average: the window's cells inside the input summed in the window's order,
    then divided (``index`` is then not written).

    Each output row starts at −inf with no winner (or at 0), then takes its windows' cells
    tap by tap in the window's order, each tap one pass along the row (``_take_tap``,
    ``_add_tap``). At stride 1 a tap's cells are consecutive in its input row; at stride s
    they are every s-th, so each input row is first split into its s phases (columns p,
    p + s, p + 2s, ...), where they are consecutive again: strided accesses kept the tap
    loop scalar. Scanning each output's window in turn instead made the comparison an
    unpredictable branch per cell. One core, windows scanned in turn against this: 3 × 3 at
    stride 2 on 64 × 16 maps of 56 × 56 31.4 against 5.5 ms, at stride 1 96.4 against
    15.0; 64 × 16 signals of 1000 values by 3 at stride 1 9.8 against 0.8, at stride 2 4.9
    against 0.8. Only where the rows are too short for their passes to pay (``by_windows``)
    is each window scanned in turn, with selects instead (``_by_windows``). Both run only for
    windows whose strides differ by axis; at one stride the flat kernel pools whole planes
    (``arrangement``)."""
    n_images, channels, depth, height, width = x.shape
    od, oh, ow = out.shape[2], out.shape[3], out.shape[4]
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    average, indexed = divisor.size > 0, index.size > 0
    taps = _tap_phases(kw, sw, pads[2], dw, width, ow)
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        flat = x[n, c].reshape(-1)
        phases = np.empty((sw, -(-width // sw)), x.dtype)
        for o in range(od):
            for i in range(oh):
                best = out[n, c, o, i]
                at = index[n, c, o, i] if indexed else index[0, 0, 0, 0]
                if average:
                    best[:] = 0
                else:
                    best[:] = -np.inf
                    at[:] = -1
                for e in range(kd):
                    z = o * sd - pads[0] + e * dd
                    if z < 0 or z >= depth:
                        continue
                    for a in range(kh):
                        r = i * sh - pads[1] + a * dh
                        if r < 0 or r >= height:
                            continue
                        start = (z * height + r) * width  # of the input row, in the volume
                        row = flat[start:start + width]
                        if sw > 1:
                            place_row(row, phases, 0, sw)  # its sw phases
                        for b in range(kw):
                            p, first, end, shift = taps[b]
                            source = row if sw == 1 else phases[p]
                            if average:
                                _add_tap(source, first, end, first + shift, best)
                            elif indexed:
                                _take_tap(source, first, end, first + shift, start + p, sw,
                                          best, at)
                            else:
                                _max_tap(source, first, end, first + shift, best)
                if average:
                    for j in range(ow):
                        best[j] = best[j] / divisor[o, i, j]


# Strided output rows shorter than these are pooled window by window (``by_windows``):
# maxima, and averages
SHORT_MAX_ROWS, SHORT_AVERAGE_ROWS = 6, 12


def by_windows(row_outputs, row_stride, average=False):
    """Whether ``_general`` scans each window in turn (``_by_windows``), not tap by tap
    (``_forward``), where the flat kernel does not apply (``arrangement``: strides that differ
    by axis), for output rows of ``row_outputs`` at ``row_stride`` along them: strided
    rows under ``SHORT_MAX_ROWS`` (``SHORT_AVERAGE_ROWS`` for an ``average``), and rows of one
    output. There a row's taps
    are loops of a few iterations, and at a stride each input row is split into its phases by
    more such loops, whose fixed costs outweigh their work; at stride 1 a tap's pass is
    vectorised and stays the cheaper from two outputs on. A maximum carries its index through
    a chain of selects, which AVX2 code ran at half AVX-512's rate, hence its shorter rows.
    802 816 cells in planes of each size, padding 1 (2 threads, ms, tap by tap → window by
    window; ``python -m cnnkit.bench.pool_rows`` prints it), AVX-512 / AVX2
    (``NUMBA_CPU_NAME=haswell``):

    | maps (rows at stride 2) | 3 × 3 max at stride 2 | its average | 3 × 3 max at stride 1 |
    |---|---|---|---|
    | 7 × 7 (4) | 8.14 → 2.70 / 7.87 → 5.43 | 8.25 → 1.77 / 8.08 → 1.77 | 6.39 → 8.60 / 6.21 → 15.42 |
    | 14 × 14 (7) | 4.03 → 2.30 / 4.27 → 4.54 | 3.99 → 1.31 / 4.19 → 1.36 | 3.33 → 9.21 / 3.58 → 15.35 |
    | 20 × 20 (10) | 2.91 → 2.32 / 2.94 → 4.45 | 2.85 → 1.30 / 2.90 → 1.30 | 2.41 → 9.04 / 2.66 → 15.15 |
    | 28 × 28 (14) | 2.07 → 2.25 / 2.13 → 4.48 | 2.03 → 1.29 / 2.16 → 1.37 | 1.78 → 9.46 / 2.02 → 15.26 |
    """
    if row_outputs == 1:
        return True
    return row_stride > 1 and row_outputs < (SHORT_AVERAGE_ROWS if average else SHORT_MAX_ROWS)


@numba.njit(**_JIT)
def _by_windows(x, kernel, stride, pads, dilation, out, index, divisor):
    """``_forward``'s pooling for short output rows (``by_windows``): each output's window
    scanned in turn, in the window's order, its sum or maximum held in a register and the
    comparison a select rather than a branch. The same values and indices: cells in the
    padding skipped, the first maximum taken, a NaN always (so the last NaN), the first cell
    inside whatever it holds (−inf included); averages summed in the window's order in x's
    type, then divided."""
    n_images, channels, depth, height, width = x.shape
    od, oh, ow = out.shape[2], out.shape[3], out.shape[4]
    average, indexed = divisor.size > 0, index.size > 0
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        flat = x[n, c].reshape(-1)
        best = out[n, c]
        for o in range(od):
            z0, z1 = _inside(o * stride[0] - pads[0], dilation[0], kernel[0], depth)
            for i in range(oh):
                r0, r1 = _inside(i * stride[1] - pads[1], dilation[1], kernel[1], height)
                for j in range(ow):
                    c0, c1 = _inside(j * stride[2] - pads[2], dilation[2], kernel[2], width)
                    best[o, i, j] = 0 if average else -np.inf
                    held, held_at = best[o, i, j], -1
                    for e in range(z0, z1):
                        z = o * stride[0] - pads[0] + e * dilation[0]
                        for a in range(r0, r1):
                            row = (z * height + i * stride[1] - pads[1] + a * dilation[1]) * \
                                width + j * stride[2] - pads[2]
                            for b in range(c0, c1):
                                at = row + b * dilation[2]
                                value = flat[at]
                                if average:
                                    held = held + value
                                else:
                                    take = (value > held) | (value != value) | (held_at < 0)
                                    held = value if take else held
                                    held_at = at if take else held_at
                    if average:
                        best[o, i, j] = held / divisor[o, i, j]
                    else:
                        best[o, i, j] = held
                        if indexed:
                            index[n, c, o, i, j] = held_at


@numba.njit(cache=True, inline="always")
def _inside(start, dilation, taps, size):
    """(first, end): the taps t < ``taps`` whose cell start + t·dilation lies in [0, size)."""
    first = 0 if start >= 0 else (-start + dilation - 1) // dilation
    end = min(taps, (size - 1 - start) // dilation + 1) if size - 1 >= start else 0
    return first, max(first, end)


@numba.njit(cache=True, inline="always")
def _add_tap(source, first, end, start, total):
    """``_take_tap`` for average pooling: total[j] += source[start + j − first]."""
    for step in range(end - first):
        j = np.uint64(first + step)
        total[j] += source[np.uint64(start + step)]


@numba.njit(cache=True, inline="always")
def _take_tap(source, first, end, start, origin, sw, best, at):
    """Outputs j in [first, end) compared with their cell of one tap, source[start + j −
    first] (a row, or a phase of one), whose flat input position is origin + sw·(its place
    in source). A plain loop, which LLVM vectorises on unsigned indices (a signed one costs
    each access a wraparound branch, which kept it scalar), with the index summed in its own
    type (int32 for planes under 2^31 cells): a 64-bit one cast to it kept the loop scalar
    on AVX2."""
    for step in range(end - first):
        j = np.uint64(first + step)
        value, held, held_at = source[np.uint64(start + step)], best[j], at[j]
        # the first maximum wins, a NaN always (so the last NaN does), and the first cell
        # inside whatever it holds (−inf included)
        take = (value > held) | (value != value) | (held_at < 0)
        best[j] = value if take else held
        at[j] = type(held_at)(origin + sw * start) + type(held_at)(step) * type(held_at)(sw) \
            if take else held_at


@numba.njit(cache=True, inline="always")
def _max_tap(source, first, end, start, best):
    """``_take_tap`` for the values alone (inference): the same maxima, NaN's included."""
    for step in range(end - first):
        j = np.uint64(first + step)
        value, held = source[np.uint64(start + step)], best[j]
        best[j] = value if (value > held) | (value != value) else held


@numba.njit(cache=True)
def _tap_phases(kw, sw, pw, dw, width, ow):
    """For each tap b of a window's row, where its cells lie for outputs j: column
    j·sw + o (o = b·dw − pw), in phase p = o mod sw at place j + shift (shift = (o − p)/sw),
    for the outputs j in [first, end) whose column is in [0, width): (p, first, end, shift)."""
    taps = np.empty((kw, 4), np.int64)
    for b in range(kw):
        o = b * dw - pw
        p = o % sw
        shift = (o - p) // sw
        places = -(-(width - p) // sw)  # in phase p
        first = max(0, -shift)
        taps[b, 0], taps[b, 1], taps[b, 2], taps[b, 3] = \
            p, first, max(first, min(ow, places - shift)), shift
    return taps


@numba.njit(cache=True)
def _forward_2x2(tasks, x, out, index, vector):
    """``_forward`` for the most common pooling, 2×2 windows at stride 2 inside the input:
    ``pair_max`` computes LANES outputs at a time from two vector loads per input row, the
    last block overlapping the one before when LANES does not divide ow (it recomputes a few
    outputs: cheaper than a scalar tail, which was 6 of 14 columns on AVX2). A row narrower
    than LANES outputs (the 7- and 3-wide maps of a 28×28 network) takes one block whose
    loads run on into the next input rows, into a buffer whose first ow lanes are kept.
    The scalar loop is left to float64 and to the last rows, whose block would read past x:
    LLVM vectorises it on AVX-512 but leaves it branchy on AVX2, where the block made
    (128, 64, 14, 14) 6× faster (2.2 → 0.36 ms) and (128, 128, 7, 7) 2.4× (0.94 → 0.39)."""
    return run_tasks(tasks, -(-x.shape[0] * x.shape[1] // _PLANES_PER_TASK), (x, out, index,
                     vector))


@numba.njit(cache=True)
def _planes_2x2(group, x, out, index, vector):
    """``_forward_2x2``'s task ``group``: its ``_PLANES_PER_TASK`` planes (a task of its own:
    ``task_call``)."""
    planes = x.shape[0] * x.shape[1]
    best_row = np.empty(LANES, x.dtype)
    at_row = np.empty(LANES, index.dtype)
    for task in range(group * _PLANES_PER_TASK, min(planes, (group + 1) * _PLANES_PER_TASK)):
        n, c = task // x.shape[1], task % x.shape[1]
        _plane_2x2(x[n, c], out[n, c], index[n, c], vector,
                   (planes - task) * x.shape[2] * x.shape[3], best_row, at_row)


_FORWARD_2X2 = Tasks(_planes_2x2)


@numba.njit(cache=True, inline="always")
def _plane_2x2(plane, best_plane, at_plane, vector, room, best_row, at_row):
    """One plane of ``_forward_2x2``; ``room``: the values of x from this plane on."""
    width = plane.shape[1]
    oh, ow = best_plane.shape
    flat = plane.reshape(-1)
    # Narrow rows i < ``blocked`` can load 2·LANES values from input row 2i + 1 without
    # reading past x: (2i + 1)·width + 2·LANES ≤ room.
    blocked = min(oh, max(0, (room - 2 * LANES) // width + 1) // 2)
    for i in range(oh):
        if vector and ow >= LANES:
            for block in range(-(-ow // LANES)):
                j = min(block * LANES, ow - LANES)
                pair_max(plane[2 * i, 2 * j:].ctypes.data, plane[2 * i + 1, 2 * j:].ctypes.data,
                         best_plane[i, j:].ctypes.data, at_plane[i, j:].ctypes.data,
                         2 * i * width + 2 * j, width)
        elif vector and i < blocked:
            pair_max(flat[2 * i * width:].ctypes.data, flat[(2 * i + 1) * width:].ctypes.data,
                     best_row.ctypes.data, at_row.ctypes.data, 2 * i * width, width)
            for j in range(ow):
                best_plane[i, j] = best_row[j]
                at_plane[i, j] = at_row[j]
        else:
            for j in range(ow):
                best = plane[2 * i, 2 * j]
                best_at = 2 * i * width + 2 * j
                for a in range(2):
                    for b in range(2):
                        value = plane[2 * i + a, 2 * j + b]
                        if value > best or np.isnan(value):
                            best = value
                            best_at = (2 * i + a) * width + 2 * j + b
                best_plane[i, j] = best
                at_plane[i, j] = best_at


@intrinsic
def pair_max(typingctx, top, bottom, out, index, first, width):
    """``pair_max(top, bottom, out, index, first, width)`` (float32 and int32 addresses):
    for j < LANES, the 2×2 window of columns 2j, 2j + 1 of rows ``top`` and ``bottom``:
    out[j] = its maximum by the rule above (first maximum, or the last NaN), index[j] = first
    + 2j + its offset (0, 1, width or width + 1). Two vector loads per row, even and odd
    lanes split by shuffles, the window's four cells compared lane-wise."""

    def codegen(context, builder, signature, args):
        top, bottom, out, index, first, width = args
        _window_max(builder, (top, bottom), out, index, first, width)
        return context.get_dummy_value()

    return types.void(*([types.intp] * 6)), codegen


@intrinsic
def row_pair_max(typingctx, row, out, index, first):
    """``row_pair_max(row, out, index, first)``: ``pair_max`` on one row, windows of 1 × 2:
    out[j] = max(row[2j], row[2j + 1]) by the same rule, index[j] = first + 2j + 0 or 1."""

    def codegen(context, builder, signature, args):
        row, out, index, first = args
        _window_max(builder, (row,), out, index, first)
        return context.get_dummy_value()

    return types.void(*([types.intp] * 4)), codegen


def _window_max(builder, rows, out, index, first, width=None):
    """The IR of ``pair_max`` and ``row_pair_max``: the windows of columns 2j, 2j + 1 of
    ``rows`` (one or two addresses; the second row's cells at offset ``width``), their cells
    compared in the order the scalar loops visit them."""
    f32, i32 = ir.FloatType(), ir.IntType(32)
    ivec = ir.VectorType(i32, LANES)

    def address(value, kind, offset=0):
        pointer = builder.inttoptr(value, kind.as_pointer())
        return builder.bitcast(builder.gep(pointer, [ir.Constant(i32, offset)]),
                               ir.VectorType(kind, LANES).as_pointer())

    def splat(value):
        vector = builder.insert_element(ir.Constant(ivec, ir.Undefined), value,
                                        ir.Constant(i32, 0))
        return builder.shuffle_vector(vector, ir.Constant(ivec, ir.Undefined),
                                      ir.Constant(ivec, [0] * LANES))

    even = ir.Constant(ivec, list(range(0, 2 * LANES, 2)))
    odd = ir.Constant(ivec, list(range(1, 2 * LANES, 2)))
    cells = []
    for row in rows:
        low = builder.load(address(row, f32), align=4)
        high = builder.load(address(row, f32, LANES), align=4)
        cells += [builder.shuffle_vector(low, high, even),
                  builder.shuffle_vector(low, high, odd)]
    offsets = [ir.Constant(ivec, [1] * LANES)]
    if width is not None:
        width = splat(builder.trunc(width, i32))
        offsets += [width, builder.add(width, ir.Constant(ivec, [1] * LANES))]
    best, at = cells[0], ir.Constant(ivec, [0] * LANES)
    for value, offset in zip(cells[1:], offsets):
        take = builder.or_(builder.fcmp_ordered(">", value, best),
                           builder.fcmp_unordered("uno", value, value))
        best = builder.select(take, value, best)
        at = builder.select(take, offset, at)
    at = builder.add(at, builder.add(splat(builder.trunc(first, i32)),
                                     ir.Constant(ivec, list(range(0, 2 * LANES, 2)))))
    builder.store(best, address(out, f32), align=4)
    builder.store(at, address(index, i32), align=4)


@numba.njit(**_JIT)
def _forward_pairs(x, out, index, vector):
    """``_forward`` for windows of 1 × 2 at stride 1 × 2 inside the input: 1-D max pooling
    with kernel 2, the most common, whose maps (``functional.pooling``) are one row each.
    ``row_pair_max`` computes LANES outputs at a time, the last block of a row overlapping
    the one before; rows of fewer than LANES outputs, and float64, take the scalar loop.
    64 × 16 signals of 1000 values, 2 threads: 0.12 ms, against 2.0 on the general kernel
    when it scanned each window in turn (4.6 times PyTorch's time then)."""
    planes, height, width = x.shape[0] * x.shape[1], x.shape[2], x.shape[3]
    ow = out.shape[3]
    for group in numba.prange(-(-planes // _PLANES_PER_TASK)):
        for task in range(group * _PLANES_PER_TASK,
                          min(planes, (group + 1) * _PLANES_PER_TASK)):
            n, c = task // x.shape[1], task % x.shape[1]
            plane, best_plane, at_plane = x[n, c], out[n, c], index[n, c]
            for i in range(height):
                if vector and ow >= LANES:
                    for block in range(-(-ow // LANES)):
                        j = min(block * LANES, ow - LANES)
                        row_pair_max(plane[i, 2 * j:].ctypes.data,
                                     best_plane[i, j:].ctypes.data,
                                     at_plane[i, j:].ctypes.data, i * width + 2 * j)
                    continue
                for j in range(ow):
                    best, best_at = plane[i, 2 * j], i * width + 2 * j
                    value = plane[i, 2 * j + 1]
                    if value > best or np.isnan(value):
                        best, best_at = value, best_at + 1
                    best_plane[i, j] = best
                    at_plane[i, j] = best_at


@numba.njit(**_JIT)
def plane_max(planes, out, index):
    """Global max pooling: out[p] = the maximum of row p of ``planes`` (P, S) by the rule
    above, index[p] its position in the row. A running maximum changes seldom, so its branch
    is well predicted, unlike NumPy's argmax and NaN passes over P short rows, each an outer
    loop of its own (64 × 256 planes of 7 × 7: 3.2 ms)."""
    for p in numba.prange(planes.shape[0]):
        row = planes[p]
        best, best_at = row[0], 0
        for q in range(1, row.size):
            value = row[q]
            if value > best or np.isnan(value):
                best, best_at = value, q
        out[p] = best
        index[p] = best_at


@numba.njit(**_JIT)
def _backward(grad, index, dx):
    """dx[n, c] = 0, then each output's gradient added at its winner's flat position. The
    plane is addressed flat, as the index is: a row and column from it (a division and a
    remainder per output) made the pass 2.7–2.9 times slower (8 × 32 maps of 28 × 28:
    101 against 37 µs, 2 threads)."""
    n_images, channels = dx.shape[0], dx.shape[1]
    oh, ow = grad.shape[2], grad.shape[3]
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        plane = dx[n, c].reshape(-1)
        plane[:] = 0
        g, at = grad[n, c], index[n, c]
        for i in range(oh):
            for j in range(ow):
                plane[at[i, j]] += g[i, j]


def max_pool2d_forward(x, kernel, stride, pads, dilation, out, indexed=True):
    """x (N, C, H, W) -> (y (N, C, *out), index (N, C, *out) flat positions in H·W).

    The index is int32 (half the memory held for backward) unless a plane is too large for it.
    Not ``indexed`` (inference), windows other than 2 × 2 and 1 × 2 at their stride give the
    maxima alone, and index None.
    """
    y = np.empty(x.shape[:2] + tuple(out), dtype=x.dtype)
    index_type = np.int32 if x.shape[2] * x.shape[3] < 2 ** 31 else np.int64
    index = np.empty(x.shape[:2] + tuple(out), dtype=index_type)
    inside = all(lo == 0 and (o - 1) * s + d * (k - 1) < n for (lo, _), o, s, d, k, n in
                 zip(pads, out, stride, dilation, kernel, x.shape[2:]))
    vector = x.dtype == np.float32 and index.dtype == np.int32
    if inside and tuple(kernel) == tuple(stride) == (2, 2) and tuple(dilation) == (1, 1):
        _FORWARD_2X2.run(_forward_2x2, np.ascontiguousarray(x), y, index, vector)
    elif inside and tuple(kernel) == tuple(stride) == (1, 2) and dilation[1] == 1:
        _forward_pairs(np.ascontiguousarray(x), y, index, vector)
    elif indexed:
        _general(x, kernel, stride, pads, dilation, y, index)
    else:
        _general(x, kernel, stride, pads, dilation, y, None)
        return y, None
    return y, index


def max_pool3d_forward(x, kernel, stride, pads, dilation, out, indexed=True):
    """x (N, C, D, H, W) -> (y (N, C, *out), index (N, C, *out) flat positions in D·H·W),
    by ``_forward``; int32 indices as ``max_pool2d_forward``'s (not ``indexed``: None)."""
    y = np.empty(x.shape[:2] + tuple(out), dtype=x.dtype)
    index = np.empty(y.shape, np.int32 if math.prod(x.shape[2:]) < 2 ** 31 else np.int64) \
        if indexed else None
    _general(x, kernel, stride, pads, dilation, y, index)
    return y, index


def avg_pool_forward(x, kernel, stride, pads, out, divisor):
    """Average pooling, x (N, C, *spatial) (1-D to 3-D) -> (N, C, *out): each window's cells
    inside the input summed in the window's order, divided by ``divisor`` (broadcastable to
    ``out``, float64) in float64, as ``kernels.pooling.avg_pool_forward`` does (the same
    values to the bit). By ``_forward``, with no index."""
    y = np.empty(x.shape[:2] + tuple(out), dtype=x.dtype)
    divisor = np.ascontiguousarray(np.broadcast_to(divisor, tuple(out)), dtype=np.float64)
    if _inside_2x2(kernel, stride, pads, out, x.shape[2:]):
        _average_2x2(np.ascontiguousarray(x), y, divisor)
        return y
    _general(x, kernel, stride, pads, (1,) * len(out), y, None, divisor)
    return y


def _inside_2x2(kernel, stride, pads, out, spatial):
    """Whether average pooling's windows are 2 × 2 at stride 2 inside the input (no padding,
    no overhang): ``_average_2x2`` and ``_average_2x2_backward`` take them."""
    return tuple(kernel) == tuple(stride) == (2, 2) and all(
        lo == 0 and o * s <= n for (lo, _), o, s, n in zip(pads, out, stride, spatial))


@numba.njit(**_JIT)
def _average_2x2_backward(grad, divisor, dx):
    """``avg_pool_backward`` for ``_inside_2x2`` windows: each cell of a window takes its
    share, 0 + the share as NumPy's pass adds it to zeros (−0 becomes 0); cells past the last
    window 0. (LeNet's 128 × 6 maps of 28 × 28, 2 threads: 0.110 ms against 0.365 on the
    tap passes, 0.852 on NumPy's, PyTorch's 0.619.)"""
    n_images, channels, height, width = dx.shape
    oh, ow = grad.shape[2], grad.shape[3]
    zero = dx.dtype.type(0)
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        plane, gradients = dx[n, c], grad[n, c]
        plane[2 * oh:] = 0
        for i in range(oh):
            source, share = gradients[i], divisor[i]
            top, bottom = plane[2 * i], plane[2 * i + 1]
            top[2 * ow:] = 0
            bottom[2 * ow:] = 0
            for j in range(ow):
                value = zero + dx.dtype.type(np.float64(source[j]) / share[j])
                top[2 * j] = value
                top[2 * j + 1] = value
                bottom[2 * j] = value
                bottom[2 * j + 1] = value


@numba.njit(**_JIT)
def _average_2x2(x, out, divisor):
    """``avg_pool_forward`` for 2 × 2 windows at stride 2 inside the input (LeNet's), four
    adds per output in the window's order, from 0, as NumPy's passes add: the general
    kernel's phase splits and tap loops cost more than they save on such short rows (64 × 6
    maps of 28 × 28, 2 threads: 0.553 ms, NumPy's four passes 0.381, this 0.06)."""
    n_images, channels, width = x.shape[0], x.shape[1], x.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    zero, one = x.dtype.type(0), np.uint64(1)
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        flat, plane = x[n, c].reshape(-1), out[n, c]
        for i in range(oh):
            top, bottom = flat[2 * i * width:], flat[(2 * i + 1) * width:]
            row, share = plane[i], divisor[i]
            for j in range(ow):
                u = np.uint64(2 * j)
                total = (((zero + top[u]) + top[u + one]) + bottom[u]) + bottom[u + one]
                row[np.uint64(j)] = np.float64(total) / share[np.uint64(j)]


def avg_pool_backward(grad, in_shape, kernel, stride, pads, divisor, flat=None):
    """dL/dx of ``avg_pool_forward``: each window's gradient divided by its divisor (in
    float64, then in grad's dtype), added to the window's cells inside the input tap by tap in
    the window's order, as ``kernels.pooling.avg_pool_backward``'s passes add (the same values
    to the bit). Flat (``pooling_flat_numba``) where one stride slides, as the forward pass
    (``arrangement``), unless ``flat`` says otherwise."""
    lift = (1,) * (3 - len(kernel))  # signals and maps as volumes of one slice (and row)
    dx = np.empty(tuple(in_shape), dtype=grad.dtype)
    out = grad.shape[2:]
    divisor = np.ascontiguousarray(np.broadcast_to(divisor, tuple(out)), dtype=np.float64)
    if _inside_2x2(kernel, stride, pads, out, in_shape[2:]):
        _average_2x2_backward(np.ascontiguousarray(grad), divisor, dx)
        return dx
    arguments = (np.ascontiguousarray(grad).reshape(grad.shape[:2] + lift + out),
                 lift + tuple(kernel), lift + tuple(stride),
                 (0,) * len(lift) + tuple(lo for lo, _ in pads), divisor.reshape(lift + out),
                 dx.reshape(tuple(in_shape[:2]) + lift + tuple(in_shape[2:])))
    if flat is None:
        flat = arrangement(stride, out, average=True) == "flat"
    if flat:
        average_backward_flat(*arguments[:2], flat_stride(stride, out), *arguments[3:])
    else:
        _average_backward(*arguments)
    return dx


@numba.njit(**_JIT)
def _average_backward(grad, kernel, stride, pads, divisor, dx):
    """``avg_pool_backward`` on volumes (N, C, D, H, W): per plane, its gradients' shares, then
    for each tap in the window's order one pass over the output rows, adding each share to
    the tap's cell of its window (a tap's cells are distinct, so every cell takes its shares in
    tap order, as NumPy's pass per offset adds them). At stride 1 a row's adds are
    consecutive (``_add_tap``, vectorised)."""
    n_images, channels, depth, height, width = dx.shape
    od, oh, ow = grad.shape[2], grad.shape[3], grad.shape[4]
    kd, kh, kw = kernel
    sd, sh, sw = stride
    for task in numba.prange(n_images * channels):
        n, c = task // channels, task % channels
        plane, gradients = dx[n, c], grad[n, c]
        plane[:] = 0
        share = np.empty((od, oh, ow), dx.dtype)
        for o in range(od):
            for i in range(oh):
                for j in range(ow):
                    share[o, i, j] = np.float64(gradients[o, i, j]) / divisor[o, i, j]
        for e in range(kd):
            for a in range(kh):
                for b in range(kw):
                    offset = b - pads[2]  # output j's cell is column j·sw + offset
                    first = max(0, (sw - 1 - offset) // sw)
                    end = min(ow, (width - offset + sw - 1) // sw)
                    for o in range(od):
                        z = o * sd - pads[0] + e
                        if z < 0 or z >= depth:
                            continue
                        for i in range(oh):
                            r = i * sh - pads[1] + a
                            if r < 0 or r >= height or end <= first:
                                continue
                            row, source = plane[z, r], share[o, i]
                            if sw == 1:
                                _add_tap(source, first + offset, end + offset, first, row)
                            else:
                                for j in range(first, end):
                                    row[j * sw + offset] += source[j]


def arrangement(stride, out, average=False):
    """How ``_general`` pools: "flat" (``pooling_flat_numba``) where every axis that slides
    has one stride, else "windows" where ``by_windows`` says, else "taps" (``_forward``).
    ``python -m cnnkit.bench.pool_rows`` times all three: flat won at strides 1, 2 and 3 on
    maps of 7 × 7 to 28 × 28, on AVX-512 and AVX2, except at stride 3 on 7 × 7 maps on
    AVX-512 (2.09 against 1.55 ms window by window)."""
    if flat_stride(stride, out) is not None:
        return "flat"
    return "windows" if by_windows(out[-1], stride[-1], average) else "taps"


def _general(x, kernel, stride, pads, dilation, y, index, divisor=None, how=None):
    """Pooling of signals, maps or volumes, the first two as volumes of one slice (and one
    row). Without a ``divisor``, max pooling; without an ``index`` too, its values alone.
    ``how``: "flat", "windows" or "taps", by default as ``arrangement`` says."""
    how = how or arrangement(stride, y.shape[2:], divisor is not None)
    divisor = np.empty(0) if divisor is None else divisor
    lift = (1,) * (5 - x.ndim)
    volume = x.shape[:2] + lift + x.shape[2:]
    index = np.empty((1, 1, 1, 1, 0), np.int32) if index is None else \
        index.reshape(volume[:2] + lift + y.shape[2:])
    arguments = (np.ascontiguousarray(x).reshape(volume), lift + tuple(kernel),
                 lift + tuple(stride), (0,) * len(lift) + tuple(lo for lo, _ in pads),
                 lift + tuple(dilation), y.reshape(volume[:2] + lift + y.shape[2:]), index,
                 divisor.reshape(lift + divisor.shape) if divisor.size else np.empty((0, 0, 0)))
    if how == "flat":
        pool_flat(*arguments[:2], flat_stride(stride, y.shape[2:]), *arguments[3:])
    else:
        (_by_windows if how == "windows" else _forward)(*arguments)


def max_pool_backward(grad, index, in_shape):
    """dL/dx for ``max_pool2d_forward``'s or ``max_pool3d_forward``'s index: each gradient of
    grad (N, C, *out) added at its winner's flat position in its (N, C) plane or volume."""
    dx = np.empty(in_shape, dtype=grad.dtype)

    def as_map(shape):  # a volume's rows as one map's
        return tuple(shape[:2]) + (math.prod(shape[2:-1]), shape[-1])
    _backward(np.ascontiguousarray(grad).reshape(as_map(grad.shape)),
              index.reshape(as_map(grad.shape)), dx.reshape(as_map(in_shape)))
    return dx
