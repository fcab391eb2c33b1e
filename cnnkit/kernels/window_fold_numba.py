"""A strided convolution's input gradient as its windows' columns, folded into dx (Numba + the
register-tiled micro-kernel).

For image n and input channel c, output position p = (oy, ox) of dy and kernel tap (ky, kx):

    col[(ky, kx), p] = Σ_k w[k, c, ky, kx] · dy[n, k, p]                     (the product)
    dx[n, c, oy·sy + ky·dil_y, ox·sx + kx·dil_x] += col[(ky, kx), p]      (the fold)

(dil_y, dil_x the dilation). The product has the taps as rows and dy's positions on the lanes, and
computes only the gradient's own terms (a product per phase of the stride, ``conv.
strided_input``, gives a phase zero weights for the taps it lacks, and with few input channels
idles lanes too). Each task (an image, or a share of its channels) packs a chunk of dy's
positions, strip by strip, runs the product on it into columns that stay in cache, and folds
them into a plane per channel split by phase along x: tap kx adds its row of columns to
phase r = kx·dil_x mod sx at q = ox + ⌊kx·dil_x / sx⌋, a contiguous run
(``add_shifted_runs``). At the end it interleaves the phases into dx without the padding
(``interleave_phases``). Every
product is one of the gradient's terms, so inf and NaN land where the sum puts them: nothing
is read zero-padded.
"""
import functools

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import aligned
from .microkernel import LANES, TILES, gathered_micro_kernel, prefetch, splat
from .task_call import PerTile, compiled_for_tile, run_tasks

FOLD_ROWS, FOLD_VECTORS = TILES.fold  # the product's MR × NV (``cpu.Tiles.fold``)


@intrinsic
def add_shifted_runs(typingctx, dst, dst_step, sources, shifts, count, rows, src_step, first,
                     last):
    """``add_shifted_runs(dst, dst_step, sources, shifts, J, rows, src_step, x0, x1)``
    (addresses as integers; ``sources`` and ``shifts`` the addresses of J int64 values each,
    the shifts increasing; J a compile-time constant): for each row i < ``rows``,

        dst[i·dst_step + q] += Σ_{j < J} src_j[i·src_step + q − e_j]
            for x0 + e_0 ≤ q < x1 + e_{J−1}, summing only the terms with x0 ≤ q − e_j < x1

    (steps in floats). One load and one store of dst per vector of q. Each src_j is read in
    whole vectors, up to e_{J−1} + LANES values outside [x0, x1), and dst up to a vector past
    the last q (rewritten as it was). Vectors whose every term lies inside skip the masks.
    Adding the J runs one at a time would store each vector of dst J times, each store read
    back unaligned by the next run, which the CPU cannot forward from its store buffer."""
    if not isinstance(count, types.IntegerLiteral):
        return None
    runs = count.literal_value

    def codegen(context, builder, signature, args):
        dst_address, dst_step, sources_address, shifts_address, _, n_rows, src_step, x0, x1 = \
            args
        f32, i64 = ir.FloatType(), ir.IntType(64)
        vec, lanes = ir.VectorType(f32, LANES), ir.VectorType(i64, LANES)
        zero, one, width = (ir.Constant(i64, v) for v in (0, 1, LANES))
        sources = builder.inttoptr(sources_address, i64.as_pointer())
        shifts = builder.inttoptr(shifts_address, i64.as_pointer())
        run = [builder.inttoptr(builder.load(builder.gep(sources, [ir.Constant(i64, j)])),
                                f32.as_pointer()) for j in range(runs)]
        shift = [builder.load(builder.gep(shifts, [ir.Constant(i64, j)])) for j in range(runs)]
        dst_ptr = builder.inttoptr(dst_address, f32.as_pointer())
        lane_index = ir.Constant(lanes, list(range(LANES)))
        low, high = splat(builder, x0, lanes), splat(builder, x1, lanes)
        first_q, end = builder.add(x0, shift[0]), builder.add(x1, shift[-1])  # q's range
        # the q of vectors whose every term is inside: x0 + e_{J−1} ≤ q ≤ x1 + e_0 − LANES
        inner_low = builder.add(x0, shift[-1])
        inner_high = builder.sub(builder.add(x1, shift[0]), width)
        entry = builder.block
        row_loop = builder.append_basic_block("row_loop")
        q_loop = builder.append_basic_block("q_loop")
        masked = builder.append_basic_block("masked")
        plain = builder.append_basic_block("plain")
        store = builder.append_basic_block("store")
        row_done = builder.append_basic_block("row_done")
        done = builder.append_basic_block("done")
        builder.cbranch(builder.and_(builder.icmp_signed("<", x0, x1),
                                     builder.icmp_signed(">", n_rows, zero)), row_loop, done)
        builder.position_at_end(row_loop)
        row = builder.phi(i64)
        row.add_incoming(zero, entry)
        dst_row = builder.gep(dst_ptr, [builder.mul(row, dst_step)])
        src_row = [builder.gep(r, [builder.mul(row, src_step)]) for r in run]
        builder.branch(q_loop)
        builder.position_at_end(q_loop)
        q = builder.phi(i64)
        q.add_incoming(first_q, row_loop)
        target = builder.bitcast(builder.gep(dst_row, [q]), vec.as_pointer())
        start = builder.load(target, align=4)
        at = [builder.sub(q, e) for e in shift]  # run j's index of lane 0
        values = [builder.load(builder.bitcast(builder.gep(src, [a]), vec.as_pointer()),
                               align=4) for src, a in zip(src_row, at)]
        inside = builder.and_(builder.icmp_signed(">=", q, inner_low),
                              builder.icmp_signed("<=", q, inner_high))
        builder.cbranch(inside, plain, masked)
        builder.position_at_end(plain)
        plain_total = start
        for v in values:
            plain_total = builder.fadd(plain_total, v)
        builder.branch(store)
        builder.position_at_end(masked)
        masked_total = start
        for v, a in zip(values, at):
            index = builder.add(splat(builder, a, lanes), lane_index)
            keep = builder.and_(builder.icmp_signed(">=", index, low),
                                builder.icmp_signed("<", index, high))
            masked_total = builder.fadd(masked_total,
                                        builder.select(keep, v, ir.Constant(vec, None)))
        builder.branch(store)
        builder.position_at_end(store)
        total = builder.phi(vec)
        total.add_incoming(plain_total, plain)
        total.add_incoming(masked_total, masked)
        builder.store(total, target, align=4)
        following = builder.add(q, width)
        q.add_incoming(following, store)
        builder.cbranch(builder.icmp_signed("<", following, end), q_loop, row_done)
        builder.position_at_end(row_done)
        next_row = builder.add(row, one)
        row.add_incoming(next_row, row_done)
        builder.cbranch(builder.icmp_signed("<", next_row, n_rows), row_loop, done)
        builder.position_at_end(done)
        return context.get_dummy_value()
    return types.void(*([types.intp] * 4), count, *([types.intp] * 4)), codegen


@numba.njit(cache=True)
def fold_windows(tasks, dy, w_rows, geometry, dx, chunk_strips, tap_block, shares, rows,
                 vectors):
    """dx (N, C, H, W) = the input gradient, inside the padding, of a 2-D convolution from dy
    (N, K, OH, OW) and w_rows (C, Mp, K): w_rows[c, ky·kw + kx, k] = w[k, c, ky, kx], zero
    rows up to Mp, a multiple of ``rows`` (MR). ``geometry``: int64 (sy, sx, dil_y, dil_x,
    kh, kw, top, left, Hp, Q): stride, dilation, kernel, the padding's first rows and
    columns, the padded height and each phase row's length Q, at least OW + ⌊(kw − 1)·dil_x /
    sx⌋ and ⌈Wp / sx⌉ (Wp the padded width). One task per image and share of its channels
    (``shares`` an image); each runs the product on chunks of ``chunk_strips`` strips of
    LANES·NV positions, its sums over k in blocks of ``tap_block`` terms. Each cell's sum
    runs in a fixed order within one task, so the bits do not depend on the thread count."""
    n_images, channels = dx.shape[0], dx.shape[1]
    k_out = dy.shape[1]
    width = LANES * vectors
    tap_index = np.arange(k_out)
    b_offset = np.arange(k_out) * width  # row k of a packed strip of dy
    c_row = np.arange(rows) * (chunk_strips * width)
    # phase-split column of each of dx's cells along x: (X mod sx)·Q + ⌊X / sx⌋
    x = np.arange(dx.shape[3]) + geometry[7]
    column = (x % geometry[1]) * geometry[9] + x // geometry[1]
    # the kernel's columns kx by phase r, then shift e (kx·dil_x = e·sx + r: kx in order),
    # phase r's from phase_start[r]
    taps = np.arange(geometry[5]) * geometry[3]
    by_phase = np.argsort(taps % geometry[1], kind="mergesort")
    shift = taps[by_phase] // geometry[1]
    phase_start = np.searchsorted(taps[by_phase] % geometry[1], np.arange(geometry[1] + 1))
    shares = max(1, min(channels, shares))
    return run_tasks(tasks, n_images * shares,
                     (dy, w_rows, geometry, dx, np.int64(chunk_strips), tap_block,
                      np.int64(shares), tap_index, b_offset, c_row, column, by_phase,
                      phase_start, shift))


def _fold_types(dy, w_rows, geometry, dx, chunk_strips, tap_block, shares, rows, vectors):
    """The Numba types of the task's arguments in a ``fold_windows`` call with these."""
    vector = numba.int64[::1]
    return ((numba.int64,) + tuple(map(numba.typeof, (dy, w_rows, geometry, dx))) +
            (numba.int64, numba.typeof(tap_block), numba.int64) + (vector,) * 7)


@functools.cache
def fold_task(rows, vectors):
    """``fold_windows``' task (image, share of its channels) with the MR × NV tile ``rows`` ×
    ``vectors``."""
    def task(i, dy, w_rows, geometry, dx, chunk_strips, tap_block, shares, tap_index,
             b_offset, c_row, column, by_phase, phase_start, shift):
        width = LANES * vectors
        channels = dx.shape[1]
        n, share = i // shares, i % shares
        c0, c1 = share * channels // shares, (share + 1) * channels // shares
        k_out, out_width = dy.shape[1], dy.shape[3]
        positions = dy.shape[2] * out_width
        mp = w_rows.shape[1]
        sy, sx, dil_y = geometry[0], geometry[1], geometry[2]
        kh, kw, top, left = geometry[4], geometry[5], geometry[6], geometry[7]
        height, row_length = geometry[8], geometry[9]
        plane_size = height * sx * row_length
        strips = (positions + width - 1) // width
        chunk = chunk_strips * width
        strip_size = k_out * width
        # the fold reads each row of columns up to a vector and the widest shift outside it.
        # The product writes them by address; handed to ``_fold_chunk`` as an array, ``cols``
        # is held until the last fold (Numba frees an array after its last use as one).
        slack = width * ((shift.max() + 2 * LANES + width - 1) // width)
        cols = aligned.floats_on_line(mp * chunk + 2 * slack, False)
        sources = np.empty(kw, np.int64)
        planes = aligned.floats_on_line((c1 - c0) * plane_size + width, True)
        panel = aligned.floats_on_line(chunk_strips * strip_size, False)
        base = np.empty(rows, np.int64)
        image = dy[n].reshape(-1)
        image_address = image.ctypes.data
        run_lines = (4 * chunk + 63) // 64  # lines of one plane's run of a chunk
        tiles = (c1 - c0) * chunk_strips * (mp // rows)
        per_tile = (k_out * run_lines + tiles - 1) // tiles
        for s0 in range(0, strips, chunk_strips):
            s1 = min(strips, s0 + chunk_strips)
            # the chunk's positions of dy packed strip by strip, a strip's K runs side by
            # side (zeros past the last position): in place they lie a plane apart
            first = s0 * width
            for k in range(k_out):
                source = k * positions + first
                for s in range(s1 - s0):
                    target = s * strip_size + k * width
                    count = min(width, positions - first - s * width)
                    if count == width:
                        for j in range(width):
                            panel[target + j] = image[source + s * width + j]
                    else:
                        for j in range(count):
                            panel[target + j] = image[source + s * width + j]
                        for j in range(count, width):
                            panel[target + j] = 0
            upcoming = first + chunk < positions
            fetched = 0
            for c in range(c0, c1):
                w_address = w_rows[c].ctypes.data
                for s in range(s1 - s0):
                    strip = panel.ctypes.data + 4 * s * strip_size
                    for t0 in range(0, k_out, tap_block):
                        block = min(tap_block, k_out - t0)
                        for m0 in range(0, mp, rows):
                            # the next chunk's lines, a few a tile: its K runs are more
                            # streams than the hardware prefetchers follow
                            if upcoming and t0 == 0:
                                for line in range(fetched, min(fetched + per_tile,
                                                               k_out * run_lines)):
                                    prefetch(image_address + 4 * (
                                        (line // run_lines) * positions + first + chunk) +
                                        64 * (line % run_lines))
                                fetched += per_tile
                            for r in range(rows):
                                base[r] = (m0 + r) * k_out + t0
                            gathered_micro_kernel(
                                block, w_address, base.ctypes.data, tap_index.ctypes.data,
                                strip, b_offset[t0:].ctypes.data,
                                cols.ctypes.data + 4 * (slack + m0 * chunk + s * width),
                                c_row.ctypes.data, 1 if t0 else 0, rows, vectors)
                _fold_chunk(cols, slack, chunk, first, min(s1 * width, positions), out_width,
                            planes.ctypes.data + 4 * (c - c0) * plane_size, sy, sx, dil_y, kh,
                            kw, row_length, by_phase, phase_start, shift, sources)
        for c in range(c0, c1):
            _interleave(planes[(c - c0) * plane_size:], dx[n, c], column, top, left, sx,
                        row_length)
    return compiled_for_tile(task, rows, vectors)


@numba.njit(cache=True)
def _fold_chunk(cols, slack, chunk, first, last, out_width, plane_address, sy, sx, dil_y, kh,
                kw, row_length, by_phase, phase_start, shift, sources):
    """Add the columns of positions [first, last) into the phase-split plane, rows of
    ``row_length``: tap (ky, kx) of output (oy, ox) to row (oy·sy + ky·dil_y)·sx + r, column
    ox + e, kx·dil_x = e·sx + r. Row m
    of the columns starts at cols[``slack`` + m·``chunk``], with the chunk's first position;
    ``by_phase``: the kernel's columns kx by phase, then shift, phase r's from
    ``phase_start[r]``, and their shifts e in ``shift`` likewise; ``sources``: scratch of kw
    int64 values. The chunk's rows in up to three runs: a first and a last row that it holds
    in part, and the whole rows between them."""
    sources_address, shift_address = sources.ctypes.data, shift.ctypes.data
    oy, end_row = first // out_width, (last - 1) // out_width
    while oy <= end_row:
        x0 = max(first - oy * out_width, 0)
        x1 = min(last - oy * out_width, out_width)
        rows = 1
        if x0 == 0 and x1 == out_width:  # whole rows up to the last whole one
            rows = (min(last, (end_row + 1) * out_width) - oy * out_width) // out_width
        at = cols.ctypes.data + 4 * (slack + oy * out_width - first)  # the row's ox = 0
        for ky in range(kh):
            row = (oy * sy + ky * dil_y) * sx
            for j in range(kw):
                sources[j] = at + 4 * (ky * kw + by_phase[j]) * chunk
            for r in range(sx):
                j0, j1 = phase_start[r], phase_start[r + 1]
                _add_phase(plane_address + 4 * (row + r) * row_length, sy * sx * row_length,
                           sources_address + 8 * j0, shift_address + 8 * j0, j1 - j0, rows,
                           out_width, x0, x1)
        oy += rows


_UNROLLED_RUNS = 4  # ``add_shifted_runs``' widest unrolled sum (a compile-time constant)


@numba.njit(cache=True)
def _add_phase(dst, dst_step, sources, shifts, runs, rows, src_step, x0, x1):
    """``add_shifted_runs`` for any number of runs, ``_UNROLLED_RUNS`` at a time at most (a
    phase's columns of the kernel: ⌈kw / sx⌉ or ⌊kw / sx⌋ for a dilation of 1)."""
    while runs > 0:
        if runs == 1:
            add_shifted_runs(dst, dst_step, sources, shifts, 1, rows, src_step, x0, x1)
        elif runs == 2:
            add_shifted_runs(dst, dst_step, sources, shifts, 2, rows, src_step, x0, x1)
        elif runs == 3:
            add_shifted_runs(dst, dst_step, sources, shifts, 3, rows, src_step, x0, x1)
        else:
            add_shifted_runs(dst, dst_step, sources, shifts, _UNROLLED_RUNS, rows, src_step,
                             x0, x1)
        done = min(runs, _UNROLLED_RUNS)
        runs -= done
        sources += 8 * done
        shifts += 8 * done




@intrinsic
def interleave_phases(typingctx, dst, src, phase_step, phases, count):
    """``interleave_phases(dst, src, Q, S, n)`` (addresses as integers; S a compile-time
    constant): dst[q·S + r] = src[r·Q + q] for r < S and q < n rounded up to a vector (dst
    written up to there): S vectors loaded, one per phase, and interleaved by shuffles."""
    if not isinstance(phases, types.IntegerLiteral):
        return None
    stride = phases.literal_value

    def codegen(context, builder, signature, args):
        dst_address, src_address, q_step, _, n = args
        f32, i64, i32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)
        vec = ir.VectorType(f32, LANES)
        out = ir.VectorType(f32, LANES * stride)
        dst_ptr = builder.inttoptr(dst_address, f32.as_pointer())
        src_ptr = builder.inttoptr(src_address, f32.as_pointer())
        entry = builder.block
        loop = builder.append_basic_block("interleave_loop")
        done = builder.append_basic_block("interleave_done")
        builder.cbranch(builder.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
        builder.position_at_end(loop)
        q = builder.phi(i64)
        q.add_incoming(ir.Constant(i64, 0), entry)
        phase_vectors = [builder.load(builder.bitcast(builder.gep(src_ptr, [builder.add(
            builder.mul(q_step, ir.Constant(i64, r)), q)]), vec.as_pointer()), align=4)
            for r in range(stride)]
        # concatenated pairwise to one vector of S·LANES (undef past phase S − 1), then
        # lane q·S + r takes phase r's lane q
        while len(phase_vectors) > 1:
            if len(phase_vectors) % 2:
                phase_vectors.append(ir.Constant(phase_vectors[0].type, ir.Undefined))
            width = phase_vectors[0].type.count
            identity = ir.Constant(ir.VectorType(i32, 2 * width), list(range(2 * width)))
            phase_vectors = [builder.shuffle_vector(a, b, identity)
                             for a, b in zip(phase_vectors[::2], phase_vectors[1::2])]
        together = phase_vectors[0]
        mask = ir.Constant(ir.VectorType(i32, LANES * stride),
                           [r * LANES + j for j in range(LANES) for r in range(stride)])
        interleaved = builder.shuffle_vector(together, ir.Constant(together.type, ir.Undefined),
                                             mask)
        builder.store(interleaved, builder.bitcast(
            builder.gep(dst_ptr, [builder.mul(q, ir.Constant(i64, stride))]),
            out.as_pointer()), align=4)
        following = builder.add(q, ir.Constant(i64, LANES))
        q.add_incoming(following, loop)
        builder.cbranch(builder.icmp_signed("<", following, n), loop, done)
        builder.position_at_end(done)
        return context.get_dummy_value()
    return types.void(types.intp, types.intp, types.intp, phases, types.intp), codegen


@numba.njit(cache=True)
def _interleave(plane, target, column, top, left, sx, row_length):
    """target[y, x] = plane[(y + top)·sx·row_length + column[x]]: the phases of each row
    interleaved,
    the padding (``top`` rows, ``left`` columns) left out. Strides 2, 3 and 4 a vector of q
    at a time (``interleave_phases``) from the first q whose cells all lie in the row; the
    cells before it, and those after the last whole vector, one by one."""
    width = target.shape[1]
    q0 = (left + sx - 1) // sx
    inner = 0
    if 2 <= sx <= 4:
        inner = max(0, (left + width) // sx - q0) // LANES * LANES  # q0 ≤ q < q0 + inner
    head = q0 * sx - left if inner else width  # cells before the vectors' and after them
    tail = (q0 + inner) * sx - left if inner else width
    for y in range(target.shape[0]):
        start = (y + top) * sx * row_length
        row = target[y]
        if inner:
            dst = row.ctypes.data + 4 * head
            src = plane.ctypes.data + 4 * (start + q0)
            if sx == 2:
                interleave_phases(dst, src, row_length, 2, inner)
            elif sx == 3:
                interleave_phases(dst, src, row_length, 3, inner)
            else:
                interleave_phases(dst, src, row_length, 4, inner)
        for x in range(head):
            row[x] = plane[start + column[x]]
        for x in range(tail, width):
            row[x] = plane[start + column[x]]


@functools.cache
def fold_windows_with(rows, vectors):
    """``fold_windows`` with the MR × NV tile ``rows`` × ``vectors``, called without its task
    table and tile (the task compiled on the first call)."""
    return PerTile(fold_windows, fold_task, _fold_types, 7, rows, vectors)


