"""2-D and 3-D depthwise and narrow grouped layers with their channels on the vector lanes
(Numba).

    y[n, c, r, q] = Σ_{g < G} Σ_{a, b} w[c, g, a, b] · X(n, c − c % G + g, r·sh + a·dh, q·sw + b·dw)

(K = C channels in groups of G, G = 1 for a depthwise layer; X is the input with its zero
padding; a 3-D layer's the same with a depth index, its taps and pixels offsets into the same
flat buffer, ``_cells``). The other
depthwise kernels put a plane's columns on the lanes (the 3 × 3 stencil, the row correlation,
``depthwise_numba``'s stride phases): a 7 × 7 map's rows are shorter than one AVX-512 vector,
so their loops run mostly as scalar remainders. Here a task takes CB channels of one image
(CB = LANES·NV, at least 8), transposes their planes into a channels-last buffer with the
padding's zeros around them (8 × 8 blocks in registers, each pixel's lanes stored straight
to its cell: ``transpose_numba.transpose8_cells``), and computes
all CB channels of an output pixel as NV vectors:

    Y[p] = Σ_t X[base_p + offset_t] ⊙ W[t]          (⊙: lane by lane, t = (a, b))

``microkernel.lanewise_micro_kernel`` does MR pixels at a time, each tap's weight vectors
loaded once for them; in groups, W[t] is G vectors, each multiplying one lane permutation of
X's vector (lane c takes lane c − c % G + g), made in registers. A group that fills a block
(AVX-512's 16 channels, AVX2's 8 and 16, SSE's 8) is a block of its own (CB = G,
``_channels``): its permutations are broadcasts of x's G values, and the forward pass and
input gradient are the broadcast micro-kernel's product with the (tap, member) pairs as its
terms (``_pairs``), a dense layer per block (``microkernel.broadcasts``); so is the weight
gradient of a group wider than a vector. Where that tile is one vector wide and the taps are
neighbours along the rows, it runs along output rows (``_slide``, as the implicit GEMM's
``sliding_micro_kernel``), where the outputs it wastes allow (``_along_rows``). The result is
transposed back into planes, the bias added on the way. The passes:

    forward          the sum above; the padding cells are terms (0 · w), as in PyTorch's
                     forward pass on the padded input
    input gradient   dx = dy, padded by d·(k − 1) − lo before it and, at a stride s, with
                     s − 1 zeros between its cells, ⋆ the flipped kernel (docs/concepts.md
                     §13); those zeros are terms, so w must be finite
                     (``registry.NEEDS_FINITE``)
    weight gradient  the tile's rows are the taps and its loop runs over the pixels, only
                     real pixels' terms, G sets of accumulators per tap
                     (``lanewise_spread_micro_kernel``): S[t, g] = Σ_n Σ_p perm_g(X[base_p +
                     offset_t]) ⊙ DY[p], whose lane c is dw[c, g, t], or where
                     ``rotates(G)`` (the default), S[t, r] = Σ_n Σ_p
                     X[base_p + offset_t] ⊙ rot_r(DY[p]), rot_r turning each group's lanes
                     by r (lane c takes lane c − c % G + (c + r) % G), whose lane c is
                     dw[c − c % G + (c + r) % G, c % G, t]: a rotation of dy serves all the
                     tile's taps; the bias gradient Σ_n Σ_p DY[p] summed on the way, in
                     float64

A channel block past C (C not a multiple of CB) fills its spare lanes with zeros, computes
them and drops them. A ragged last tile reads its last pixel again and stores it to a spare
row of the result (``_tables``), or, for taps, writes rows that are dropped, so each tile
height is compiled once.
"""
import functools
import math

import numba
import numpy as np

from .. import tuning
from ..cpu import host
from .implicit_gemm_numba import (NO_ROWS, SLIDING_WIDTHS, along_rows, sliding_rows,
                                  sliding_tiles)
from .microkernel import (LANES, broadcasts, lanewise_micro_kernel, lanewise_spread_micro_kernel,
                          sliding_cells_micro_kernel, spans_vectors, wide_vectors)
from .transpose_numba import transpose8, transpose8_cells, transpose8_shift

VECTORS = max(1, 8 // LANES)  # NV: vectors per pixel, so that a block is whole 8 × 8 transposes
BLOCK = LANES * VECTORS  # CB: channels per task


def _channels(width):
    """CB for groups of ``width`` channels: BLOCK, or a group wider than BLOCK whole."""
    return max(BLOCK, width)


def _wide_rows(width):
    """MR of a group that fills a block, whose passes are the broadcast tile's products over
    (tap, member) pairs (``microkernel.lanewise_micro_kernel``): the implicit GEMM's MR for its
    NV (AVX-512's groups of 16 and AVX2's of 8: 8 × 1; AVX2's of 16 and 128-bit SSE's of 8:
    6 × 2), 0 where the target has none."""
    rows = host().tiles.gemm_rows
    vectors = wide_vectors(width)
    return rows[vectors] if vectors < len(rows) and width >= BLOCK else 0


def _pixels(width):
    """MR, pixels per tile, for groups of ``width`` lanes: MR·NV accumulators, width·NV weight
    vectors and one loaded x vector (plus its permuted copy in groups) in the registers (8 × 1
    on AVX-512 and AVX2 for depthwise layers: 10 of 16 registers; 6 × 2 on 128-bit SSE: 15),
    at most 8; for a group that fills a block (``microkernel.broadcasts``), ``_wide_rows``."""
    if broadcasts(width, VECTORS):
        return _wide_rows(width)
    spare = host().registers - width * VECTORS - (1 if width == 1 else VECTORS + 1)
    return min(8, spare // VECTORS)


def _tap_rows(width, rotate):
    """MR of the weight gradient, whose rows are taps, for groups of ``width`` lanes, at most a
    3 × 3 kernel's nine: MR·NV·width accumulators (width sets), NV vectors of dy and NV of x,
    plus a permuted copy of x in groups; where the tile rotates dy instead (``rotate``), the
    MR tap rows' x vectors, dy and one rotation of it (AVX-512, each width's choice of
    ``rotates``: 9, 9, 6, 3 and 1 for widths 1 to 16; AVX2: 9, 6, 3 and 1 for 1 to 8); for a
    group wider than a vector, ``_wide_rows`` (its rows are (tap, member) pairs)."""
    if spans_vectors(width):
        return _wide_rows(width)
    spare = host().registers - 2 * VECTORS
    if rotate:
        return min(9, spare // ((width + 1) * VECTORS))
    return min(9, (spare - (width > 1)) // (width * VECTORS))


def rotates(width):
    """Whether the weight gradient's tile for groups of ``width`` lanes rotates dy (a shuffle
    per dy vector and rotation, shared by the tile's rows) rather than permuting x (one per
    multiply-add): where x's permutations are not loads of their own (``vmovsldup`` and
    ``vmovshdup`` for groups of 2, broadcasts for groups of all the lanes) and the registers
    still hold three tap rows with the rotation's (AVX-512: groups of 4 and 8; not AVX2's of
    4, 2 rows). ``python -m cnnkit.bench.depthwise --spread`` times both (BENCHMARKS.md,
    "Grouped weight gradients on the lanes")."""
    return 2 < width < LANES and _tap_rows(width, True) >= 3


# group widths with a tile of at least two pixels (1: depthwise; wider than a vector where the
# target has a broadcast tile of the group's vectors: AVX2's 16, SSE's 8)
GROUP_WIDTHS = tuple(w for w in (1, 2, 4, 8, 16) if _pixels(w) >= 2)
PIXELS = _pixels(1)
_FLOAT = 4  # bytes
# Tables of cells and offsets kept (``_grid_cells``, ``_tables``), each a layer's: made afresh
# they cost a call 10 µs of Python (16 × 960 channels of 7 × 7, 3 × 3: a 0.3 ms forward pass)
_KEPT_TABLES = 64


def _slides(width):
    """Whether groups of ``width`` lanes have a tile along output rows: the broadcast tile
    (``microkernel.broadcasts``) of one vector, where the target has that tile's form along
    rows (``implicit_gemm_numba.sliding_rows``: AVX-512's groups of 16, AVX2's of 8)."""
    return broadcasts(width, VECTORS) and wide_vectors(width) == 1 and sliding_rows(1) > 0


@numba.njit(cache=True)
def _cells(shape, first, steps, buffer, block):
    """cells[p]: where cell p of a grid of ``shape`` (row-major) goes in a channels-last buffer
    of ``buffer`` cells (row-major) of ``block`` (CB) floats each, grid cell (i_0, i_1, …) at
    buffer cell (first_j + i_j·steps_j), as an offset in floats (all int64 arrays of one entry
    per spatial dim: 2-D maps and 3-D volumes alike). Cell by cell, an odometer over the
    grid's indices, no division per cell."""
    dims = shape.size
    pitch = np.ones(dims, np.int64)  # the buffer's cells per step along each dim
    for j in range(dims - 2, -1, -1):
        pitch[j] = pitch[j + 1] * buffer[j + 1]
    total = 1
    at = 0
    for j in range(dims):
        total *= shape[j]
        at += first[j] * pitch[j]
    cells = np.empty(total, np.int64)
    index = np.zeros(dims, np.int64)
    for p in range(total):
        cells[p] = at * block
        j = dims - 1
        while j >= 0:
            index[j] += 1
            at += steps[j] * pitch[j]
            if index[j] < shape[j]:
                break
            at -= shape[j] * steps[j] * pitch[j]
            index[j] = 0
            j -= 1
    return cells


@functools.lru_cache(maxsize=_KEPT_TABLES)
def _grid_cells(shape, first, steps, buffer, block):
    """``_cells`` of tuples (one int per spatial dim), kept per shape (``_KEPT_TABLES``): read
    by the kernels, never written."""
    return _cells(*(np.asarray(v, np.int64) for v in (shape, first, steps, buffer)),
                  np.int64(block))


@numba.njit(cache=True)
def _to_lanes(planes, n, c0, count, cells, buf):
    """buf's float at cells[p] + l = planes[n, c0 + l, p] for l < count, zeros for count ≤ l
    < CB (planes: (N, C, P), buf: (..., CB), contiguous; ``_cells``). Eight pixels of eight
    channels at a time go straight to their cells, the padding's included (a transpose into a
    dense (P, CB) copy, then cell by cell into the padded buffer, took 0.083 ms for the 16 ×
    512 × 7² input of a 3 × 3 layer, against 0.035 for the transpose alone)."""
    size, block = planes.shape[2], buf.shape[-1]
    flat = buf.reshape(-1)
    first = 0
    if count == block:
        first = size // 8 * 8
        src0 = planes.ctypes.data + ((n * planes.shape[1] + c0) * size) * _FLOAT
        dst0, cells0 = buf.ctypes.data, cells.ctypes.data
        for l0 in range(0, block, 8):
            for p in range(0, first, 8):
                transpose8_cells(src0 + (l0 * size + p) * _FLOAT, size, dst0 + l0 * _FLOAT,
                                 cells0 + p * 8)
    for p in range(first, size):
        cell = numba.uint64(cells[p])  # unsigned: BENCHMARKS.md, "Copy loops on unsigned indices"
        for lane in range(count):
            flat[cell + numba.uint64(lane)] = planes[n, c0 + lane, p]
        for lane in range(count, block):
            flat[cell + numba.uint64(lane)] = 0.0


@numba.njit(cache=True)
def _to_planes(dense, out, n, c0, count, bias):
    """out[n, c0 + l, p] = dense[p, l] (+ bias[c0 + l] unless ``bias`` is empty), l < count
    (out: (N, C, P))."""
    size, block = out.shape[2], dense.shape[1]
    shifted = bias.size > 0
    if count == block:
        whole = size // 8 * 8
        src0 = dense.ctypes.data
        dst0 = out.ctypes.data + ((n * out.shape[1] + c0) * size) * _FLOAT
        for l0 in range(0, block, 8):
            for p in range(0, whole, 8):
                if shifted:
                    transpose8_shift(src0 + (p * block + l0) * _FLOAT, block,
                                     dst0 + (l0 * size + p) * _FLOAT, size,
                                     bias.ctypes.data + (c0 + l0) * _FLOAT)
                else:
                    transpose8(src0 + (p * block + l0) * _FLOAT, block,
                               dst0 + (l0 * size + p) * _FLOAT, size)
        first = whole
    else:
        first = 0
    for lane in range(count):
        shift = bias[c0 + lane] if shifted else np.float32(0.0)
        for p in range(first, size):
            out[n, c0 + lane, p] = dense[p, lane] + shift if shifted else dense[p, lane]


@numba.njit(cache=True)
def _tiles(x, base, offset, first, taps, weights, ldw, c, c_row, accumulate, rows, width):
    """The lane-wise micro-kernel for groups of ``width`` lanes, ``rows`` (MR) rows at a time
    over all of base's: C[c_row[i] + j] (+)= Σ_{first ≤ t < first + taps} Σ_{g < width}
    x[base[i] + offset[t] + j − j % width + g] · weights[t·ldw + g·CB + j] (base and c_row
    padded to a multiple of MR, ``_tables``). The taps from ``first`` on are addressed, not
    sliced: a slice per task would take a reference to the shared table, an atomic count the
    threads contend for (``task_call._unowned``; 16 × 960 channels of 7 × 7, 3 × 3, forward
    pass: 310–330 against 242–256 µs)."""
    xa, ba, c_row_a = x.ctypes.data, base.ctypes.data, c_row.ctypes.data
    oa = offset.ctypes.data + 8 * first
    wa = weights.ctypes.data + _FLOAT * ldw * first
    ca = c.ctypes.data
    for i in range(0, base.size, rows):
        lanewise_micro_kernel(taps, xa, ba + 8 * i, oa, wa, ldw, ca, c_row_a + 8 * i,
                              accumulate, rows, VECTORS, width)


@numba.njit(cache=True)
def _slide(x, start, offset, weights, ldw, c, c_row, rows, kw, cell):
    """The broadcast tile along output rows (``microkernel.sliding_cells_micro_kernel``), MR =
    ``rows`` neighbouring outputs a tile: tile t's first input at x's address + start[t]
    (bytes), its output i to c's float c_row[t·MR + i]; the terms the (kernel row, member)
    pairs at ``offset``, each a run of KW = ``kw`` taps, whose weights are ``weights``' rows
    (pair·KW + a) of ``ldw`` floats; cells of ``cell`` floats (CB). Its sums run over (kernel
    row, member, column), the tile pixel by pixel's over (kernel row, column, member), so the
    two round differently (within the tests' 1e-5 of the reference loops)."""
    xa, oa, wa, ca, ra = (x.ctypes.data, offset.ctypes.data, weights.ctypes.data,
                          c.ctypes.data, c_row.ctypes.data)
    for t in range(start.size):
        if kw == 3:
            sliding_cells_micro_kernel(offset.size, xa + start[t], oa, wa, ldw, ca,
                                       ra + 8 * t * rows, 0, rows, 1, 3, cell)
        else:
            sliding_cells_micro_kernel(offset.size, xa + start[t], oa, wa, ldw, ca,
                                       ra + 8 * t * rows, 0, rows, 1, 5, cell)


@numba.njit(cache=True)
def _spread_tiles(x, base, offset, pixels, dy, c, c_row, rows, width, rotate):
    """The weight gradient's tiles, taps as rows, ``rows`` (MR) at a time over all of base's:
    C[c_row[i] + s·CB + j] += the sums of set s < width (``lanewise_spread_micro_kernel``, x
    at base[i] + offset[t] and dy at t·CB for t < pixels, dy rotated if ``rotate``; for width
    1, a depthwise layer, the same code as ``lanewise_micro_kernel``'s)."""
    xa, ba, oa, da = x.ctypes.data, base.ctypes.data, offset.ctypes.data, dy.ctypes.data
    ca, ra = c.ctypes.data, c_row.ctypes.data
    for i in range(0, base.size, rows):
        lanewise_spread_micro_kernel(pixels, xa, ba + 8 * i, oa, da, dy.shape[-1], ca,
                                     ra + 8 * i, 1, rows, VECTORS, width, rotate)


@numba.njit(cache=True)
def _lane_weights(w, transposed, block, runs):
    """w (C, G, KH, KW), groups of G channels -> (⌈C / CB⌉, KH·KW, G, CB): block b's tap t =
    (a, b) as G vectors of its channels, zeros past C. Lane c of vector g holds
    w[c − c % G + g, c % G] with both kernel axes reversed when ``transposed`` (the input
    gradient's kernels), else w[c, g]. CB = ``block`` (``_channels``), a multiple of G. A
    3-D kernel comes as (C, G, 1, KD·KH·KW), its taps flat: reversing them reverses all
    three axes.
    With ``runs`` = KW (not 0), the vectors in the order of the tile along rows (``_slide``):
    (⌈C / CB⌉, KH·G·KW, 1, CB), row (a·G + g)·KW + b holding tap (a, b)'s vector g.

    Loops by block, group and tap, with no division per value. This is a fixed cost of every
    forward pass and input gradient: for 512 channels in groups of 16, 3 × 3, 68 and 36 μs
    against 155 and 105 with a division and a remainder per value, which was 6–8 % of those
    passes on 16 images of 7 × 7 (BENCHMARKS.md, "The lanes' fixed costs")."""
    channels, width, kh, kw = w.shape
    taps = kh * kw
    flat = w.reshape(channels, width, taps)
    blocks = (channels + block - 1) // block
    out = np.zeros((blocks, taps * width, block), np.float32)
    for b in range(blocks):
        count = min(block, channels - b * block)  # a multiple of G: whole groups
        if width == 1:  # the loops below with G = 1: their lane loops would be 1 long
            for t in range(taps):
                tap = taps - 1 - t if transposed else t
                for lane in range(count):
                    out[b, tap, lane] = flat[b * block + lane, 0, t]
            continue
        for q in range(count // width):
            c0 = b * block + q * width  # the group's first channel
            for t in range(taps):
                tap = taps - 1 - t if transposed else t
                for g in range(width):
                    at = ((tap // kw * width + g) * kw + tap % kw if runs else
                          tap * width + g)
                    if transposed:
                        for r in range(width):
                            out[b, at, q * width + r] = flat[c0 + g, r, t]
                    else:
                        for r in range(width):
                            out[b, at, q * width + r] = flat[c0 + r, g, t]
    return (out.reshape(blocks, taps * width, 1, block) if runs else
            out.reshape(blocks, taps, width, block))


@numba.njit(cache=True)
def _padded(values, rows):
    """values with its last entry repeated up to a multiple of ``rows`` (a ragged last tile
    reads its last pixel, or tap, again)."""
    out = np.empty(-(-values.size // rows) * rows, np.int64)
    out[:values.size] = values
    out[values.size:] = values[-1]
    return out


@functools.lru_cache(maxsize=_KEPT_TABLES)
def _tables(kernel, dilation, out, steps, buffer, rows, block):
    """Offsets in floats into a channels-last buffer of ``buffer`` cells of ``block`` (CB)
    channels: tap t (of ``kernel``, ``dilation`` apart) at offset[t]; output pixel p (of
    ``out``, ``steps`` apart)'s corner at corner[p] and its row of a (P + 1, CB) result at
    row[p], both padded to a multiple of ``rows`` (MR): a ragged last tile reads its last
    pixel again (``_padded``) and stores it to the spare row P, as a tile that adds to the
    rows (the taps in blocks, ``_tap_block``) must not add a pixel twice. Kept per shape
    (``_KEPT_TABLES``; arguments as tuples), and never written."""
    zeros = (0,) * len(kernel)
    offset = _grid_cells(kernel, zeros, dilation, buffer, block)  # the taps, dilation apart
    corner = _grid_cells(out, zeros, steps, buffer, block)  # the pixels
    pixels = math.prod(out)
    row = np.full(-(-pixels // rows) * rows, pixels * block, np.int64)
    row[:pixels] = np.arange(pixels) * block
    return offset, _padded(corner, rows), row


@numba.njit(parallel=True, cache=True)
def _correlate(planes, lane_w, offset, corner, row, bias, cells, buf_cells, out_planes, runs,
               tap_block, rows, width, kw):
    """out_planes (N, C, P') = the correlation of planes (N, C, P), each image's cells at
    ``cells`` (``_cells``: a map's or a volume's, its padding and, for the input gradient, the
    stride between them) in a buffer of ``buf_cells`` zero cells, with the kernels ``lane_w``
    (``_lane_weights``; taps at ``offset``, output pixels' corners at ``corner``,
    ``_tables``), plus the bias (none if empty): the forward pass (steps 1), and the input
    gradient (steps: the layer's stride). Groups of ``width`` channels, MR = ``rows``; a group
    that fills a block has its (tap, member) pairs as the taps (``_plan``). With KW = ``kw``
    (not 0) the tiles run along output rows (``_slide``), ``corner`` and ``row`` their starts
    and outputs' rows (``implicit_gemm_numba.sliding_tiles``), ``offset`` the (kernel row,
    member) pairs'; the result's row P is the spare one for outputs not kept."""
    numba.literally(rows)
    numba.literally(width)
    n_images, channels = planes.shape[0], planes.shape[1]
    blocks, block = lane_w.shape[0], lane_w.shape[3]
    ldw = lane_w.shape[2] * block  # a tap's G vectors (a pair's one)
    tasks = n_images * blocks
    runs = max(1, min(tasks, runs))
    for run in numba.prange(runs):
        buf = np.zeros((buf_cells, block), np.float32)
        result = np.empty((out_planes.shape[2] + 1, block), np.float32)
        for task in range(run * tasks // runs, (run + 1) * tasks // runs):
            n, b = task // blocks, task % blocks
            c0 = b * block
            count = min(block, channels - c0)
            _to_lanes(planes, n, c0, count, cells, buf)
            if kw:
                _slide(buf, corner, offset, lane_w[b], ldw, result, row, rows, kw, width)
            else:
                weights = lane_w[b]
                for t0 in range(0, offset.size, tap_block):
                    _tiles(buf, corner, offset, t0, min(tap_block, offset.size - t0), weights,
                           ldw, result, row, 0 if t0 == 0 else 1, rows, width)
            _to_planes(result, out_planes, n, c0, count, bias)


def _entry(width, rows, kw):
    @numba.njit(cache=True)
    def correlate(planes, lane_w, offset, corner, row, bias, cells, buf_cells, out_planes,
                  runs, tap_block):
        _correlate(planes, lane_w, offset, corner, row, bias, cells, buf_cells, out_planes,
                   runs, tap_block, rows, width, kw)
    return correlate


# ``_correlate`` per group width, and along rows per (width, KW): MR, the width and KW
# compile-time constants of each (each compiled on its first call)
CORRELATE = {width: _entry(width, _pixels(width), 0) for width in GROUP_WIDTHS}
SLIDING = {(width, kw): _entry(width, sliding_rows(1), kw)
           for width in GROUP_WIDTHS if _slides(width) for kw in SLIDING_WIDTHS}


@numba.njit(parallel=True, cache=True)
def _weight(planes, dy_planes, offset, corner, x_cells, buf_cells, partial, bias_partial, rows,
            width, rotate):
    """partial[s, b, t] = S[t] of the module's docstring, summed over the images of share s,
    for channel block b and tap t < T, groups of G = ``width``, dy rotated if ``rotate``: the
    weight gradient, the images split into partial.shape[0] shares. The taps are the tile's
    rows, MR_w = ``rows`` at a time; rows T and on of partial are the ragged last tile's spare
    rows. Unless ``bias_partial`` is empty, bias_partial[s, b] = Σ_{n in share s} Σ_p DY[p]
    too, in float64, from dy's transposed copy while it is in cache."""
    numba.literally(rows)
    numba.literally(width)
    numba.literally(rotate)
    n_images, channels, pixels = planes.shape[0], planes.shape[1], dy_planes.shape[2]
    shares, blocks, block = partial.shape[0], partial.shape[1], partial.shape[4]
    tap_base = _padded(offset, np.int64(rows))  # rows as _tables passes it: one _padded
    tap_rows = np.arange(tap_base.size) * (partial.shape[3] * block)
    dy_cells = np.arange(pixels) * block  # dy's pixels dense, in order
    for task in numba.prange(shares * blocks):
        share, b = task // blocks, task % blocks
        c0 = b * block
        count = min(block, channels - c0)
        buf = np.zeros((buf_cells, block), np.float32)
        dy_lanes = np.empty((pixels, block), np.float32)
        sums = partial[share, b]
        sums[:] = 0.0
        bias_sums = np.zeros(block, np.float64)
        for n in range(share * n_images // shares, (share + 1) * n_images // shares):
            _to_lanes(planes, n, c0, count, x_cells, buf)
            _to_lanes(dy_planes, n, c0, count, dy_cells, dy_lanes)
            _spread_tiles(buf, tap_base, corner, pixels, dy_lanes, sums, tap_rows, rows, width,
                          rotate)
            if bias_partial.size:
                for p in range(pixels):
                    for lane in range(block):
                        bias_sums[lane] += dy_lanes[p, lane]
        if bias_partial.size:
            bias_partial[share, b] = bias_sums


def _weight_entry(width, rotate):
    rows = _tap_rows(width, rotate)
    rotate = int(rotate)

    @numba.njit(cache=True)
    def weight(planes, dy_planes, offset, corner, x_cells, buf_cells, partial, bias_partial):
        _weight(planes, dy_planes, offset, corner, x_cells, buf_cells, partial, bias_partial,
                rows, width, rotate)
    return weight


# ``_weight`` per group width and tile (dy rotated or not), its MR, the width and the tile
# compile-time constants (each compiled on its first call)
ROTATABLE = tuple(w for w in GROUP_WIDTHS if 2 < w <= LANES)  # the widths with both tiles
WEIGHT = {(width, rotate): _weight_entry(width, rotate)
          for width in GROUP_WIDTHS for rotate in ((False, True) if width in ROTATABLE else
                                                   (False,))}


def _runs():
    return tuning.value("depthwise_runs_per_thread") * numba.get_num_threads()


def _c(array):
    return np.ascontiguousarray(array, dtype=np.float32)


def _pairs(offset, width, broadcast):
    """For the broadcast tile (``broadcast``), a group's taps' offsets per member g,
    offset_t + g in (tap, member) order (its T); for the lane-wise tiles the taps as they are."""
    return (offset[:, None] + np.arange(width)).reshape(-1) if broadcast else offset


def _plan(w, transposed, out_shape, steps, dilation, buffer, slide=None):
    """(entry, lane_w, offset, corner, row) of a ``_correlate`` of ``out_shape`` outputs
    ``steps`` cells apart in a buffer of ``buffer`` cells (a 2-D map's or a 3-D volume's),
    with w (C, G, *kernel), or its kernels flipped (``transposed``). One of three tiles:

    * the lane-wise tile, pixel by pixel (``_tables``);
    * for a group that fills a block (``microkernel.broadcasts``), the broadcast tile, its
      terms the (tap, member) pairs (``_pairs``);
    * on a 2-D map, that tile along output rows, its terms the (kernel row, member) pairs,
      each a run of KW taps, so that each input value it broadcasts meets KW weight vectors
      (``_slide``): where ``slide`` is True, or by default where ``_along_rows`` says so.

    Raises ValueError for ``slide`` True where there is no tile along rows."""
    width, kernel = w.shape[1], w.shape[2:]
    block = _channels(width)
    rows = _along_rows(width, kernel, steps, dilation, out_shape, buffer, slide)
    if rows:
        (kh, kw), (out_rows, out_cols), buf_cols = kernel, out_shape, buffer[1]
        pairs = (np.arange(kh)[:, None] * (dilation[0] * buf_cols * block) +
                 np.arange(width)).reshape(-1)
        corner = _grid_cells(out_shape, (0, 0), steps, buffer, 1)
        start, c_row = sliding_tiles(corner, NO_ROWS, out_cols, rows, block,
                                     out_rows * out_cols * block)
        return (SLIDING[width, kw], _lane_weights(_c(w), transposed, block, kw), pairs,
                start * block, c_row.reshape(-1))
    offset, corner, row = _tables(kernel, dilation, out_shape, steps, buffer, _pixels(width),
                                  block)
    lane_w = _lane_weights(_c(w).reshape(w.shape[:2] + (1, -1)), transposed, block, 0)
    broadcast = broadcasts(width, VECTORS)
    if broadcast:
        lane_w = lane_w.reshape(lane_w.shape[0], -1, 1, lane_w.shape[3])
    return CORRELATE[width], lane_w, _pairs(offset, width, broadcast), corner, row


def _along_rows(width, kernel, steps, dilation, out_shape, buffer, slide):
    """MR of ``_plan``'s tile along output rows, or 0 for the tiles pixel by pixel: 2-D
    maps, groups that have one (``_slides``), KW = 3 or 5, step and dilation 1 along the
    rows, and by default (``slide`` None) ``implicit_gemm_numba.along_rows``' rule with this
    kernel's own gain (``depthwise_lanes_sliding_gain``, which ``cnnkit tune`` measures);
    ``slide`` False: 0; True: wherever the tiles fit, else a ValueError."""
    kw = kernel[-1]
    possible = (len(kernel) == 2 and _slides(width) and kw in SLIDING_WIDTHS and
                steps[-1] == 1 and dilation[-1] == 1 and slide is not False)
    gain = math.inf if slide else tuning.value("depthwise_lanes_sliding_gain")
    rows = (along_rows(1, kw, steps[1], dilation[1], *out_shape, steps[0] * buffer[1], gain)
            if possible else 0)
    if slide and not rows:
        raise ValueError(f"slide: no tile along rows for groups of {width} channels, a "
                         f"kernel of {tuple(kernel)}, steps {tuple(steps)}, dilation "
                         f"{tuple(dilation)} and {tuple(out_shape)} outputs on this target")
    return rows


def _tap_block(w, dilation):
    """Terms of ``_correlate``'s tiles per pass over a task's pixels: a 2-D kernel's all at
    once; a 3-D kernel's taps a few planes of the kernel at a time (KH·KW taps a plane, times
    G for the broadcast tile's (tap, member) pairs), as many as keep the cells a tile reads
    (KH rows of MR + d·(KW − 1) cells of CB floats a plane, at stride 1; a strided tile's
    pixels lie further apart) within ``depthwise_lanes_tap_block_bytes``, so that the next
    tile, a few cells along, finds most of them in L1. A 7 × 7 × 7 kernel's seven planes of
    rows did not stay there on AVX-512 (cells of 16 floats: 44 KB)."""
    width, kernel = w.shape[1], w.shape[2:]
    pairs = width if broadcasts(width, VECTORS) else 1
    if len(kernel) < 3:
        return max(1, math.prod(kernel) * pairs)
    rows, cols = kernel[1], _pixels(width) + dilation[-1] * (kernel[2] - 1)
    planes = tuning.value("depthwise_lanes_tap_block_bytes") // (
        rows * cols * _channels(width) * _FLOAT)
    return max(1, min(kernel[0], planes)) * math.prod(kernel[1:]) * pairs


def _planes(a):
    """a (N, C, *spatial) as contiguous float32 planes (N, C, prod(spatial))."""
    return _c(a).reshape(a.shape[0], a.shape[1], -1)


def _input_cells(x, pads, block):
    """(the padded buffer's shape, ``_grid_cells`` of x's unpadded cells in it) for x (N, C,
    *spatial) and its zero ``pads``, cells of ``block`` floats."""
    buffer = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads))
    return buffer, _grid_cells(x.shape[2:], tuple(lo for lo, _ in pads), (1,) * len(buffer),
                               buffer, block)


def _correlated(source, cells, buffer, w, transposed, out_shape, steps, dilation, bias,
                slide):
    """``_correlate``'s result (N, C, *out_shape): ``source``'s planes at ``cells`` in a
    buffer of ``buffer`` cells, ⋆ w's kernels (flipped: ``transposed``) as ``_plan`` lays
    them out, outputs ``steps`` cells apart, the taps in blocks of ``_tap_block``, plus
    ``bias`` (None: none)."""
    correlate, *kernels = _plan(w, transposed, tuple(out_shape), tuple(steps), tuple(dilation),
                                buffer, slide)
    out = np.empty(source.shape[:2] + tuple(out_shape), np.float32)
    correlate(_planes(source), *kernels, _NO_BIAS if bias is None else _c(bias), cells,
              math.prod(buffer), out.reshape(out.shape[0], out.shape[1], -1), _runs(),
              _tap_block(w, dilation))
    return out


def forward(x, w, pads, stride, dilation, out_shape, bias=None, slide=None):
    """y (N, C, *out_shape) of x (N, C, *spatial) unpadded, a 2-D map or a 3-D volume, w (C,
    G, *kernel) (groups of G in ``GROUP_WIDTHS`` channels, G = 1: depthwise), zero ``pads``
    ((lo, hi) per spatial dim), plus the bias. ``slide``: the tile along output rows or not,
    by default the rule's choice (``_plan``)."""
    buffer, cells = _input_cells(x, pads, _channels(w.shape[1]))
    return _correlated(x, cells, buffer, w, False, out_shape, stride, dilation, bias, slide)


def backward_input(dy, w, spatial, pads, stride, dilation, slide=None):
    """dx (N, C, *spatial) inside the padding ``pads`` from dy (N, C, *out) and w (C, G,
    *kernel) as for ``forward``: dy's cells ``stride`` apart (zeros between them) from
    d·(k − 1) − lo on in a zero buffer of spatial + d·(k − 1) cells, ⋆ the flipped kernel.
    dy's cells that would fall outside the buffer reach only the padding's gradient, and are
    left out. ``slide`` as for ``forward``."""
    kernel = w.shape[2:]
    reach = [d * (k - 1) for d, k in zip(dilation, kernel)]
    buffer = tuple(n + r for n, r in zip(spatial, reach))
    window, at = [], []
    for axis in range(len(spatial)):
        shift, step = reach[axis] - pads[axis][0], stride[axis]
        first = -(min(0, shift) // step)  # the first cell i with i·step + shift ≥ 0
        last = min(dy.shape[2 + axis], (buffer[axis] - 1 - shift) // step + 1)
        window.append(slice(first, max(first, last)))
        at.append(first * step + shift)
    dy = dy[(slice(None), slice(None)) + tuple(window)]
    if dy.size == 0:
        return np.zeros(dy.shape[:2] + tuple(spatial), np.float32)
    cells = _grid_cells(dy.shape[2:], tuple(at), tuple(stride), buffer, _channels(w.shape[1]))
    return _correlated(dy, cells, buffer, w, True, spatial, (1,) * len(spatial), dilation, None,
                       slide)


def backward_weight(x, dy, kernel, pads, stride, dilation, width=1, with_bias=False,
                    rotate=None):
    """dw (C, G, *kernel) of x (N, C, *spatial) unpadded and dy (N, C, *out), groups of G =
    ``width`` channels as for ``forward``; with ``with_bias`` the pair (dw, db), db = Σ over
    images and positions of dy (summed in float64). ``rotate``: the tile that rotates dy (for
    groups of 3 to LANES channels, ``ROTATABLE``), or not; by default ``rotates``'s choice."""
    rotate = rotates(width) if rotate is None else bool(rotate)
    if rotate and width not in ROTATABLE:
        raise ValueError(f"rotate: dy is rotated for groups of {ROTATABLE} channels, not "
                         f"{width}")
    block = _channels(width)
    buffer, x_cells = _input_cells(x, pads, block)
    taps = math.prod(kernel)
    offset, corner, _ = _tables(tuple(kernel), tuple(dilation), dy.shape[2:], tuple(stride),
                                buffer, PIXELS, block)
    channels, blocks = x.shape[1], -(-x.shape[1] // block)
    # enough tasks for the threads when the channel blocks are few: the images in shares
    shares = max(1, min(x.shape[0], -(-2 * numba.get_num_threads() // blocks)))
    rows, tap_rows = _tap_rows(width, rotate), _pairs(offset, width, spans_vectors(width))
    # a tile row per tap with a set per member, or (wider than a vector) per (tap, member)
    sets = 1 if spans_vectors(width) else width
    partial = np.empty((shares, blocks, -(-tap_rows.size // rows) * rows, sets, block),
                       np.float32)
    bias_partial = np.empty((shares, blocks, block) if with_bias else (0, 0, 0), np.float64)
    WEIGHT[width, rotate](_planes(x), _planes(dy), tap_rows, corner, x_cells,
                          math.prod(buffer), partial, bias_partial)
    summed = (partial.sum(axis=0) if shares > 1 else partial[0])
    lanes = summed.reshape(blocks, -1, block)[:, :taps * width].reshape(
        blocks, taps, width, block)
    c, g = np.arange(block)[:, None], np.arange(width)
    if rotate:  # dw[c, g] is in lane c − c % G + g of rotation (c − g) mod G
        by_channel = lanes[:, :, (c - g) % width, c - c % width + g]  # (blocks, T, CB, G)
    else:
        by_channel = lanes.transpose(0, 1, 3, 2)
    dw = np.ascontiguousarray(by_channel.transpose(0, 2, 3, 1).reshape(
        blocks * block, width, taps)[:channels]).reshape((channels, width) + tuple(kernel))
    if not with_bias:
        return dw
    return dw, bias_partial.sum(axis=0).reshape(-1)[:channels].astype(np.float32)


_NO_BIAS = np.empty(0, np.float32)
