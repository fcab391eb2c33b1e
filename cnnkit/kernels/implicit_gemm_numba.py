"""Implicit-GEMM convolution kernels (Numba + the register-tiled micro-kernel).

im2col writes every input value prod(kernel) times before a GEMM reads it back; here the
product reads the input in place. Each output row of the product gathers its operand from
the padded input through two integer tables,

    C[i, j] (+)= Σ_t  X[base[i] + offset[t]] · B[t, j]                       (the micro-kernel)

which is a convolution in either orientation (flat element indices into one padded input):

    forward  i = output position (n, z, y, x):  base  = its window's corner in the input
             t = (c, a) tap:                    offset = c·plane + Σ a·d·pitch
             B = Wᵀ (C·prod(k), K): y[n, k, pos] comes out channels-last
    weight   i = (c, a) tap:  base = offset above;  t = output position: offset = corner
             B = dy channels-last (positions, K):  dWᵀ[(c, a), k]
    input    (stride 1) the forward kernel on dy padded by d·(k−1) − pad, with the kernel
             flipped and its channel axes swapped: the full correlation of dL/dy with the
             flipped kernel (docs/concepts.md, backpropagation).

The micro-kernel (``microkernel``) keeps an MR × NR tile of C in vector registers, NR = LANES·NV
float32 lanes; MR for each NV comes from the target's row of ``cnnkit.cpu.TILES`` (AVX-512:
8 × 16, 10 × 32, 8 × 48 and 6 × 64; AVX2: 8 × 8, 6 × 16 (BLIS's Haswell shape) and 4 × 24).
A product of one vector of outputs per image (two on AVX-512), stride 1 along the rows, runs
its tiles along output rows instead (``slide``: MR = ``SLIDING_ROWS[NV]``, 14 × 16 and 10 × 32
on AVX-512, 8 × 8 on AVX2), where the plain tile one vector wide would load a broadcast for
every multiply-add, and two vectors wide for every second one.
Why not BLAS: an im2col GEMM pays the column copies, and NumPy's OpenBLAS may be held to older
kernels than the CPU has (``OPENBLAS_CORETYPE``); BENCHMARKS.md compares both against the
machine's FMA peak.
"""
import functools

import numba
import numpy as np

from .. import tuning
from . import aligned
from .microkernel import (LANES, TILES, biased_micro_kernel, gathered_micro_kernel,
                          micro_kernel, prefetch, prefetch_for_store, sliding_micro_kernel)
from .task_call import PerTile, compiled_for_tile, run_tasks
from .transpose_numba import (NO_SHIFT, channel_rows_to_planes, columns_to_panels,
                              gather_cells, image_rows, planes_to_rows, rows_to_planes)

TILE_ROWS = TILES.gemm_rows  # MR indexed by NV (0: that NV is not used on this target)
# The forward kernel makes passes of ``tap_block`` taps over a chunk's output tiles, so that
# the B block (taps × NR floats) stays in L1 while every tile reuses it; the weight kernel
# likewise takes ``position_block`` output positions of dy at a time. Both are run-time
# arguments (``implicit_tap_block``, ``implicit_position_block`` in ``cnnkit.tuning``,
# re-measured by ``python -m cnnkit.bench.tiles --blocks``).
PLANAR_ROWS, PLANAR_VECTORS = TILES.planar  # (MR, NV) of the channels-first kernel
# MR of ``by_image``'s tiles along output rows, indexed by NV (0: that NV has none here)
SLIDING_ROWS = TILES.sliding + (0,) * (5 - len(TILES.sliding))
SLIDING_GAIN = TILES.sliding_gain  # its speed over the plain tile's, per output computed,
# by default (``sliding_gain``: ``cnnkit tune`` measures this machine's)
# Each NV's MR, 1 where it has none: ``by_image``'s task may compile ``slide`` for both NVs
# whatever its own, and never runs the one of MR 0 (``sliding_rows``)
_SLIDING_1, _SLIDING_2 = (max(1, rows) for rows in SLIDING_ROWS[1:3])
SLIDING_WIDTHS = (3, 5)  # the kernel widths it is compiled for
_LINE_FLOATS = aligned.LINE // 4  # float32 values per cache line
# ``forward``'s optional arguments, empty: output p in row p, no copy to a channels-first y,
# no bias.
NO_ROWS = np.empty(0, np.int64)
NO_Y = np.empty((0, 0, 0), np.float32)
NO_BIAS = NO_SHIFT
NO_PADDED_COPY = np.empty(0, np.float32)  # ``by_image`` keeps no padded input
NO_CHECK = np.empty(0, np.uint8)  # ``by_image`` notes nothing of its input's finiteness


@numba.njit(cache=True)
def forward(tasks, x, wt, offset, corner, out, y, rows, vectors, chunks, groups, tap_block, row,
            bias):
    """out[row[p], j·W + l] = Σ_t x_flat[corner[p] + offset[t]] · wt[j, t, l] for p <
    len(corner) (row[p] = p when ``row`` is empty). x: the padded input, any shape,
    C-contiguous; wt (Kp / W, T, W): the weights in panels of the tile width W (``panels``);
    out (R + rows, Kp), R rows written (the extra rows take a ragged last tile's spill). The
    parallel tasks are ``chunks`` chunks of the tiles times ``groups`` groups of the panels
    (``conv.implicit.task_split``); each output's sum is one task's, whatever the split.
    Unless ``y`` is empty, each task then copies its rows and channels into y (N, K, S)
    channels-first, y[n, k, s] = out[n·S + s, k] + bias[k] (no bias when ``bias`` is empty),
    while they are still in cache (a separate pass re-reads all of ``out`` from memory).

    When each tap's terms lie on lines of their own (``_taps_apart``: a 1×1 product's
    planes), each tile asks for the next tile's lines of its block of taps while it runs:
    the hardware prefetchers follow a few streams, not one per tap."""
    tiles = (corner.size + rows - 1) // rows
    chunks = np.int64(max(1, min(tiles, chunks)))
    groups = np.int64(max(1, min(wt.shape[0], groups)))
    spread = _taps_apart(offset)
    return run_tasks(tasks, chunks * groups, (x, wt, offset, corner, out, y, chunks, groups,
                     tap_block, row, bias, spread))


def forward_task_types(x, wt, offset, corner, out, y, rows, vectors, chunks, groups,
                        tap_block, row, bias):
    """The Numba types of the task's arguments in a ``forward`` call with these."""
    return ((numba.int64,) + tuple(map(numba.typeof, (x, wt, offset, corner, out, y))) +
            (numba.int64, numba.int64, numba.typeof(tap_block), numba.typeof(row),
             numba.typeof(bias), numba.boolean))


@functools.cache
def forward_task(rows, vectors):
    """``forward``'s task ``task`` of ``chunks`` × ``groups`` with the MR × NV tile ``rows`` ×
    ``vectors`` (``image_task`` says why a task of its own)."""
    def run(task, x, wt, offset, corner, out, y, chunks, groups, tap_block, row, bias, spread):
        width = LANES * vectors
        panels, taps = wt.shape[0], wt.shape[1]
        kp, k = panels * width, y.shape[1]
        positions = corner.size
        tiles = (positions + rows - 1) // rows
        x_flat = x.reshape(-1)
        spare = out.shape[0] - rows
        chunk, group = task // groups, task % groups
        first, last = chunk * tiles // chunks, (chunk + 1) * tiles // chunks
        j_first, j_last = group * panels // groups, (group + 1) * panels // groups
        base = np.empty((last - first, rows), np.int64)
        c_row = np.empty((last - first, rows), np.int64)
        for tile in range(first, last):
            for i in range(rows):
                p = tile * rows + i
                inside = p < positions
                base[tile - first, i] = corner[p] if inside else 0
                c_row[tile - first, i] = (
                    (row[p] if row.size else p) if inside else spare) * kp
        for t0 in range(0, taps, tap_block):
            block = min(tap_block, taps - t0)
            for j in range(j_first, j_last):
                for tile in range(last - first):
                    if spread and j == j_first and tile + 1 < last - first:
                        # the next tile's terms, tap by tap: its last row's line of each
                        ahead = x_flat.ctypes.data + 4 * base[tile + 1, rows - 1]
                        for t in range(t0, t0 + block):
                            prefetch(ahead + 4 * offset[t])
                    micro_kernel(block, x_flat.ctypes.data, base[tile].ctypes.data,
                                 offset[t0:].ctypes.data, wt[j, t0:].ctypes.data,
                                 width, out[:, j * width:].ctypes.data, c_row[tile].ctypes.data,
                                 1 if t0 else 0, rows, vectors)
        if y.size:
            channel_rows_to_planes(out, y, first * rows, min(last * rows, positions), bias,
                                   j_first * width, min(j_last * width, k))
    return compiled_for_tile(run, rows, vectors)


@numba.njit(cache=True)
def by_image(tasks, x, pad, padded, wt, offset, tap_start, corner, row, position_start,
             image_rows, y, source, bias, rows, vectors, tap_block, groups, clear, finite,
             sliding, row_length, chunk):
    """Several products that write disjoint rows of a product's rows ``out`` (N·R, Kp), R =
    ``image_rows`` per image, one parallel task per image: product f has the taps
    tap_start[f] ≤ t < tap_start[f + 1] (their weights the same rows of wt's panels) and the
    positions position_start[f] ≤ p < position_start[f + 1] of each image, and writes image
    n's out[n·R + row[p], j·W + l] = Σ_t x_flat[image n + corner[p] + offset[t]] · wt[j, t,
    l] (row[p] = p when ``row`` is empty; zero before the products when ``clear``). The
    tables are one image's, the same for every image (a batch's were N times as large, and
    rebuilt on every call once over the size ``conv.implicit.shared_table`` keeps). Each task then
    copies its image's cells into y[n] (N, K, S) channels-first: rows out[n·S + s] when
    ``source`` is empty (R = S: a strided input gradient's phases,
    ``conv.strided_input.by_phases``, whose products together write every row once; a
    forward pass's), plus bias[k] unless ``bias`` is empty, else y[n, k, s] = out_flat[n·R·Kp
    + source[s] + k] (the pixel shuffle of ``subpixel``'s one product, R = its positions per
    image).

    ``out`` never exists whole: each task writes its image's rows into a buffer of its own,
    which the next image's task on that thread writes again, so the rows stay in cache until
    they are copied to y. (Rows of one buffer for all images were each written back to
    memory, and a buffer over 32 MB was mapped afresh, page by page, on every call: 2 threads,
    AVX-512, a 1×1 layer of 128 → 512 channels on 32 28 × 28 maps, forward 17.8 against 23.1
    ms as parallel products, input gradient 17.7 against 20.1 with one buffer.)

    x is either the input the tables index (``pad`` empty), or its unpadded images as (N, C,
    D, H, W) with pad = (front, top, left, Dp, Hp, Wp): each task then zero-pads its own image
    into a buffer of (C, Dp, Hp, Wp), which the tables index as image n of the padded input,
    in cache, instead of a separate pass that pads the whole input first; or, unless
    ``padded`` is empty, into its place in ``padded`` (N·C·Dp·Hp·Wp: the padded input, which
    the caller keeps for a weight gradient), which the tables then index as they are.
    Unless ``finite`` (N,) is empty, task n also sets finite[n] to whether image n of x holds
    no inf or NaN, found as it pads the image (``_pad_into``), or by a pass over it when
    nothing is padded: what an arrangement whose zero weights meet x needs known
    (``conv.strided_input.subpixel``), without a pass over all of x first.

    A grouped layer runs with its images split by group (``groups`` > 1): x as (N·G, C/G,
    D, H, W) and y as (N·G, K/G, S), image n·G + j being group j's channels of image n (both
    are views of the ungrouped arrays), wt holding each group's panels in turn, and bias its
    K values; task m reads group m mod G's panels and bias. While a task's
    tiles run it has the next image's lines fetched into L2 (``prefetch``), a few before each
    tile: the image that follows, most likely the same thread's next task, is then read from
    cache, by its padding copy or, with nothing to pad, by its tiles, instead of from memory
    (2 threads, inference forward passes without and with: AVX-512 res3x3 8.48 against 8.32
    ms, res3x3_s2 4.81 against 4.45; on AVX2 little change either way, res3x3 13.68 against
    13.77, res3x3_s2 7.50 against 7.30. With nothing to pad, AVX-512, caches evicted
    before each call: pw1x1's forward pass 1.59–1.70 against 1.17–1.22 ms; the other
    layers, input gradients included, are in BENCHMARKS.md, "Inputs with nothing to pad").

    ``sliding`` KW (0: off; one of ``SLIDING_WIDTHS``), for a tile of NV = ``vectors`` with
    an entry in ``SLIDING_ROWS`` and one product whose taps come in runs of KW neighbours
    along output rows of ``row_length`` outputs, stride 1 along them
    (``conv.implicit.sliding_width``): the tiles are MR = ``SLIDING_ROWS[NV]`` neighbouring
    outputs (``sliding_tiles``) and run ``sliding_micro_kernel``, which broadcasts each input
    value once for KW taps.

    A forward pass's one product (``row`` and ``source`` empty, not along rows) runs its
    tiles ``chunk`` floats of rows at a time (``implicit_image_chunk``) over all the taps,
    and copies each chunk into y as soon as it is done, while it is still in cache: a large
    map's rows outgrow L2 (ResNet's 7 × 7 stem on 224 × 224 images, 112 × 112 outputs of 64
    channels: 3.2 MB), and were written back to memory between the tiles and the copy."""
    along = sliding_rows(vectors)
    if sliding and (not along or tap_start.size != 2 or offset.size % sliding or
                    corner.size % row_length or position_start[-1] != corner.size or
                    wt.shape[0] != groups):
        raise ValueError("by_image: tiles along rows need one panel and one product of whole "
                         "runs of taps over whole rows, on a tile that has an entry in "
                         "SLIDING_ROWS")
    tile_start, tile_rows = np.empty(0, np.int64), np.empty((0, 1), np.int64)
    if sliding:  # the same tiles for every image
        tile_start, tile_rows = sliding_tiles(corner, row, row_length, along,
                                              wt.shape[2], image_rows * wt.shape[2])
    return run_tasks(tasks, y.shape[0], (x, pad, padded, wt, offset, tap_start, corner, row,
                     position_start, image_rows, y, source, bias, tap_block, groups, clear, finite,
                     sliding, tile_start, tile_rows, chunk))


def _image_task_types(x, pad, padded, wt, offset, tap_start, corner, row, position_start,
                      image_rows, y, source, bias, rows, vectors, tap_block, groups, clear,
                      finite, sliding, row_length, chunk):
    """The Numba types of the task's arguments in a ``by_image`` call with these."""
    return ((numba.int64,) + tuple(map(numba.typeof, (
        x, pad, padded, wt, offset, tap_start, corner, row, position_start, image_rows, y,
        source, bias, tap_block, groups, clear, finite, sliding))) +
        (numba.int64[::1], numba.int64[:, ::1], numba.int64))


@functools.cache
def image_task(rows, vectors):
    """``by_image``'s task for image n with the MR × NV tile ``rows`` × ``vectors`` (constants
    of the compiled code, as the micro-kernel needs them), one compiled function per tile,
    called by address (``task_call``)."""
    def task(n, x, pad, padded, wt, offset, tap_start, corner, row, position_start,
             image_rows, y, source, bias, tap_block, groups, clear, finite, sliding,
             tile_start, tile_rows, chunk):
        width = LANES * vectors
        panels = wt.shape[0] // groups
        kp = panels * width
        n_images = y.shape[0]
        first_panel = n % groups * panels
        # the image's rows, R + MR (the last MR: a ragged tile's spill), on cache lines
        raw = np.empty((image_rows + rows) * kp + _LINE_FLOATS, np.float32)
        start = (-(raw.ctypes.data // 4)) % _LINE_FLOATS
        local = raw[start:start + (image_rows + rows) * kp].reshape(image_rows + rows, kp)
        if clear:
            local[:] = 0
        # x_flat may be reassigned below (to the padded image), and only its address is read
        x_flat, image_start = x.reshape(-1), n * x[n].size  # where image n starts in x_flat
        # the next image's lines to fetch (fetched an int64, not the literal: one slide)
        lines, per_call, fetched, upcoming = 0, 0, np.int64(0), 0
        check, image_finite = finite.size > 0, True
        if pad.size:
            size = x[n].shape[0] * pad[3] * pad[4] * pad[5]
            if padded.size:  # the padded input kept: image n written to its place in it
                padded[n * size:(n + 1) * size] = 0
                image_finite = _pad_into(x[n], pad, padded, n * size, check)
                x_flat, image_start = padded, n * size
            else:
                x_flat, image_finite = _padded_image(x[n], pad, check)
                image_start = 0
        elif check:
            image_finite = _finite_values(x[n].reshape(-1))
        if n + 1 < n_images:
            lines = (x[n].size * 4 + 63) // 64
            upcoming = x[n + 1:].ctypes.data
            calls = 0  # the micro-kernel calls of this task
            for f in range(tap_start.size - 1):
                per_image = position_start[f + 1] - position_start[f]
                calls += ((tap_start[f + 1] - tap_start[f] + tap_block - 1) // tap_block *
                          (kp // width) * ((per_image + rows - 1) // rows))
            per_call = (lines + calls - 1) // max(1, calls)
        if check:
            finite[n] = image_finite
        products = tap_start.size - 1
        if sliding:  # one product, along rows: ``sliding_micro_kernel``
            address, runs = x_flat.ctypes.data + 4 * image_start, offset[::sliding].copy()
            run_block = max(1, tap_block // sliding)
            if vectors == 1:
                fetched = slide(address, wt[first_panel], runs, tile_start, tile_rows, local,
                                run_block, sliding, upcoming, lines, fetched, _SLIDING_1, 1)
            else:
                fetched = slide(address, wt[first_panel], runs, tile_start, tile_rows, local,
                                run_block, sliding, upcoming, lines, fetched, _SLIDING_2, 2)
            products = 0
        # one product, its rows y's positions in order: its tiles run a chunk at a time,
        # each chunk's rows copied to y while they are in cache
        chunked = products == 1 and row.size == 0 and source.size == 0
        k0 = n % groups * y.shape[1]
        image_bias = bias[k0:k0 + y.shape[1]] if bias.size else bias
        for f in range(products):
            first = position_start[f]
            per_image = position_start[f + 1] - first
            tiles = (per_image + rows - 1) // rows
            base = np.empty((tiles, rows), np.int64)
            c_row = np.empty((tiles, rows), np.int64)
            for tile in range(tiles):
                for i in range(rows):
                    p = tile * rows + i
                    inside = p < per_image
                    base[tile, i] = corner[first + p] + image_start if inside else 0
                    c_row[tile, i] = ((row[first + p] if row.size else first + p)
                                      if inside else image_rows) * kp
            step = max(1, chunk // (rows * kp)) if chunked else tiles
            for c0 in range(0, tiles, step):
                c1 = min(tiles, c0 + step)
                for t0 in range(tap_start[f], tap_start[f + 1], tap_block):
                    block = min(tap_block, tap_start[f + 1] - t0)
                    for j0 in range(0, kp, width):
                        for tile in range(c0, c1):
                            for line in range(fetched, min(fetched + per_call, lines)):
                                prefetch(upcoming + line * 64)
                            fetched += per_call
                            micro_kernel(block, x_flat.ctypes.data, base[tile].ctypes.data,
                                         offset[t0:].ctypes.data,
                                         wt[first_panel + j0 // width, t0:].ctypes.data,
                                         width, local[:, j0:].ctypes.data,
                                         c_row[tile].ctypes.data,
                                         1 if t0 > tap_start[f] else 0, rows, vectors)
                if chunked:
                    rows_to_planes(local, y[n:n + 1], np.int64(c0 * rows),
                                   np.int64(min(c1 * rows, per_image)), image_bias)
        if source.size:
            gather_cells(local.reshape(-1), 0, source, 1, y[n], 0, y.shape[2])
        elif not chunked:
            rows_to_planes(local, y[n:n + 1], np.int64(0), y.shape[2], image_bias)

    return compiled_for_tile(task, rows, vectors)

@numba.njit(cache=True)
def sliding_rows(vectors):
    """MR of the tile along output rows for NV = ``vectors``, 0 where the target has none."""
    return SLIDING_ROWS[vectors] if 0 < vectors < len(SLIDING_ROWS) else 0


def along_rows(vectors, kernel_width, step, dilation, n_rows, row_length, pitch, gain=None,
               run_rows=0):
    """MR of the tile along output rows (``microkernel.sliding_micro_kernel``) for a product of
    NV = ``vectors`` vectors of outputs, or 0 where the plain tile of that NV is to run: a
    target with such a tile for that NV (``SLIDING_ROWS``), a kernel ``kernel_width`` taps wide
    (``SLIDING_WIDTHS``) at ``step`` and ``dilation`` 1 along the rows, and ``n_rows`` rows of
    ``row_length`` outputs, corners ``pitch`` apart within runs of ``run_rows`` rows (pitch 0:
    unevenly; run_rows 0: all in one run), that waste little of it: the outputs its tiles
    compute (``sliding_counts``) per output kept under ``gain``, its speed over the plain
    tile's, by default the implicit GEMM's (``sliding_gain``)."""
    rows = sliding_rows(vectors)
    if not rows or kernel_width not in SLIDING_WIDTHS or step != 1 or dilation != 1:
        return 0
    kept = n_rows * row_length
    computed = min((c for c in sliding_counts(n_rows, row_length, pitch, rows, run_rows)
                    if c >= 0), default=0)
    gain = sliding_gain(vectors) if gain is None else gain
    return rows if 0 < computed < gain * kept else 0


# the tuning constants of the gains ``cnnkit tune`` measures, by NV
MEASURED_GAIN = {1: "implicit_sliding_gain_1", 2: "implicit_sliding_gain_2"}


def sliding_gain(vectors):
    """The tile along rows' speed over the plain tile's for NV = ``vectors``, per output it
    computes: this machine's, where ``cnnkit tune`` has measured it
    (``implicit_sliding_gain_1`` and ``_2``; 0 when not), else ``SLIDING_GAIN[NV]``, the
    CPU table's entry for this ISA family (``cpu.TILES``, measured on one machine of it by
    ``python -m cnnkit.bench.tiles --sliding``: another CPU of the family may gain less, as
    BENCHMARKS.md's "Tile gains measured by cnnkit tune" shows)."""
    measured = tuning.value(MEASURED_GAIN[vectors]) if vectors in MEASURED_GAIN else 0.0
    if measured > 0:
        return measured
    return SLIDING_GAIN[vectors] if 0 < vectors < len(SLIDING_GAIN) else 0.0


@numba.njit(cache=True)
def sliding_counts(n_rows, row_length, pitch, rows, run_rows=0):
    """(outputs computed by rows, as runs): ``sliding_tiles``'s two arrangements of MR =
    ``rows`` over ``n_rows`` rows of ``row_length`` outputs whose corners lie ``pitch`` apart
    in runs of ``run_rows`` rows (0: all of them, one map; a volume's: each plane's rows;
    pitch 0: unevenly, one run a row), -1 for an arrangement that cannot tile them."""
    by_rows = n_rows * -(-row_length // rows) * rows if row_length >= rows else -1
    run_rows = run_rows if 0 < run_rows <= n_rows else n_rows
    if pitch < row_length:
        run_rows = 1
    run_length = (run_rows - 1) * pitch + row_length
    as_runs = n_rows // run_rows * -(-run_length // rows) * rows if run_length >= rows else -1
    return by_rows, as_runs


@numba.njit(cache=True)
def sliding_tiles(corner, row, row_length, rows, kp, spare):
    """(start, c_row) of the tiles along output rows of MR = ``rows`` outputs, for one image's
    ``corner`` table (rows of ``row_length`` positions, stride 1 along them) and output p
    stored to row[p] (p when ``row`` is empty) of rows ``kp`` floats long: start[t] the byte
    offset of tile t's first input, c_row[t, i] where its output i goes, ``spare`` (an
    offset past the image's rows) for the outputs that are not kept.

    Two arrangements (``sliding_counts``); the one that computes fewer outputs, ties by rows:
      by rows   a row's outputs in tiles of MR, its last tile, where MR does not divide the
                row, starting early (the outputs the tile before computed go to spare);
                rows of at least MR outputs
      as runs   rows whose corners lie one pitch apart (one map, whose rows follow each other
                on the padded input's grid; each plane of a volume) read as one run of
                positions, row after row, as ``conv.implicit._forward_planar`` reads that
                grid: the pitch − row_length positions between two rows multiply inputs of
                the image too, and go to spare; a run's last tile starts early. Runs of at
                least MR positions: rows shorter than MR too, and a row MR does not divide
                wastes pitch − row_length outputs, not up to MR − 1.
    Raises ValueError when neither applies."""
    n_rows = corner.size // row_length
    pitch = corner[row_length] - corner[0] if n_rows > 1 else row_length
    run_rows = n_rows  # the rows of each run: up to the first that is not a pitch further
    for r in range(1, n_rows):
        if corner[r * row_length] - corner[(r - 1) * row_length] != pitch:
            run_rows = r
            break
    even = n_rows % run_rows == 0  # every run as long as the first, and as evenly spaced
    for r in range(1, n_rows):
        if r % run_rows and corner[r * row_length] - corner[(r - 1) * row_length] != pitch:
            even = False
    if not even:
        pitch, run_rows = 0, 1  # one run a row
    by_rows, as_runs = sliding_counts(n_rows, row_length, pitch, rows, run_rows)
    if by_rows < 0 and as_runs < 0:
        raise ValueError("sliding_tiles: rows, and runs of rows, shorter than the tile")
    if by_rows >= 0 and (as_runs < 0 or by_rows <= as_runs):
        pitch, run_rows, run_length = row_length, 1, row_length  # each row a run of its own
    else:  # runs of rows (``sliding_counts`` finds as_runs ≥ 0 below by_rows only then)
        run_length = (run_rows - 1) * pitch + row_length
    per_run = -(-run_length // rows)
    tiles = n_rows // run_rows * per_run
    start = np.empty(tiles, np.int64)
    c_row = np.empty((tiles, rows), np.int64)
    for tile in range(tiles):
        first_row, t = tile // per_run * run_rows, tile % per_run
        q0 = min(t * rows, run_length - rows)  # the last tile starts early
        start[tile] = 4 * (corner[first_row * row_length] + q0)
        for i in range(rows):
            q = q0 + i
            down, along = q // pitch, q % pitch
            p = (first_row + down) * row_length + along
            kept = along < row_length and q >= t * rows
            c_row[tile, i] = (row[p] if row.size else p) * kp if kept else spare
    return start, c_row


@numba.njit(cache=True)
def slide(x, wt, run_offset, start, c_row, local, run_block, width, upcoming, lines, fetched,
          rows, vectors):
    """``by_image``'s product of one image on ``sliding_micro_kernel`` with MR × NV = ``rows``
    × ``vectors`` (compile-time constants: ``SLIDING_ROWS[NV]``, or a candidate ``python -m
    cnnkit.bench.tiles --sliding`` times): x the address of the image's input, wt its
    weights' one panel (``LANES``·NV wide, as ``local``'s rows), the taps in runs of ``width``
    (3 or 5) from x + run_offset[r] on, ``run_block`` runs per pass over the tiles
    (``sliding_tiles``: start and c_row, whose rows are ``local``'s); returns how many of the
    next image's ``lines`` from ``upcoming`` it has asked for (``fetched`` before)."""
    numba.literally(rows)
    numba.literally(vectors)
    kp = local.shape[1]  # LANES·NV: one panel
    tiles = start.size
    runs = run_offset.size
    calls = tiles * ((runs + run_block - 1) // run_block)
    per_call = (lines + calls - 1) // max(1, calls)
    for r0 in range(0, runs, run_block):
        block = min(run_block, runs - r0)
        for tile in range(tiles):
            for line in range(fetched, min(fetched + per_call, lines)):
                prefetch(upcoming + line * 64)
            fetched += per_call
            if width == 3:
                sliding_micro_kernel(block, x + start[tile], run_offset[r0:].ctypes.data,
                                     wt[r0 * 3:].ctypes.data, kp, local.ctypes.data,
                                     c_row[tile].ctypes.data, 1 if r0 else 0, rows, vectors, 3)
            else:
                sliding_micro_kernel(block, x + start[tile], run_offset[r0:].ctypes.data,
                                     wt[r0 * 5:].ctypes.data, kp, local.ctypes.data,
                                     c_row[tile].ctypes.data, 1 if r0 else 0, rows, vectors, 5)
    return fetched


@numba.njit(cache=True)
def _padded_image(image, pad, check):
    """(image (C, D, H, W) zero-padded to (C, Dp, Hp, Wp), flat; whether its values are all
    finite, when ``check``): pad = (front, top, left, Dp, Hp, Wp)."""
    out = np.zeros(image.shape[0] * pad[3] * pad[4] * pad[5], np.float32)
    return out, _pad_into(image, pad, out, np.int64(0), check)


@numba.njit(cache=True)
def _pad_into(image, pad, out, start, check):
    """image (C, D, H, W) into its place in out[start:] as (C, Dp, Hp, Wp), whose padding
    cells are zero already: the callers zero the whole buffer first, which ran faster than
    writing only the padding cells row by row (AVX2, 2 threads: res3x3's forward pass was
    4 % slower that way; zeroing whole lines likely spares reading the evicted buffer back
    before rows that end mid-line are written into it).

    Returns, with ``check``, whether every value copied is finite (v − v is zero for all
    others), else True. The check rides on the copy, which reads the values anyway: 64 × 55
    × 55 values took 63 µs per image from memory without it and 70 with it, one core, where
    a pass of its own re-reads them (``finite.all_finite``)."""
    channels, depth, height, width = image.shape
    front, top, left, padded_depth, padded_height, padded_width = pad
    nonfinite = False
    for c in range(channels):
        for d in range(depth):
            for h in range(height):
                at = numba.uint64(start + ((c * padded_depth + front + d) * padded_height +
                                           top + h) * padded_width + left)
                cells = image[c, d, h]
                # a loop, not a slice: rows may be a few cells long; on unsigned indices, which
                # Numba does not wrap (BENCHMARKS.md, "Copy loops on unsigned indices")
                if check:
                    for i in range(width):
                        value = cells[i]
                        out[at + numba.uint64(i)] = value
                        nonfinite |= value - value != 0
                else:
                    for i in range(width):
                        out[at + numba.uint64(i)] = cells[i]
    return not nonfinite


@numba.njit(cache=True)
def _finite_values(values):
    """Whether a flat array's values are all finite (``_pad_into``'s test)."""
    nonfinite = False
    for i in range(values.size):
        nonfinite |= values[i] - values[i] != 0
    return not nonfinite


@numba.njit(cache=True)
def weight(tasks, x, dy, laid_out, offset, corner, partial, sums, rows, vectors, position_block,
           groups):
    """partial[s, t, j·W + l] = Σ_{p in share s} x_flat[offset[t] + corner[p]] · dy_p[j·W + l],
    dy_p being output position p's K values, zero-padded to Kp; the caller sums over s.
    partial (S, T + rows, Kp). The parallel tasks are the S position shares times ``groups``
    groups of the taps' tiles, each task summing its share's positions in order into its own
    rows: the same sums whatever the thread count. When the taps lie on lines of their own
    (``_taps_apart``), each tile asks for the next tile's lines of the block's positions
    while it runs.

    The tiles read dy channels-last, in panels of the tile width W. With ``laid_out``, dy is
    that already, (Kp / W, P, W) (``transpose_numba.planes_to_rows``). Otherwise dy is
    (N, K, S) channels-first, and each task lays out its share's positions
    ``position_block`` at a time (``transpose_numba.image_rows``) into a buffer of its own,
    which stays in cache for the tiles that read it: no pass over all of dy that writes a
    copy to memory first (res3x3's is 8 MB). Unless ``sums`` (S, K) is empty, the first
    group's task of share s then also puts the share's Σ_p dy_p (float64) into sums[s]: the
    bias gradient's terms."""
    tiles = (offset.size + rows - 1) // rows
    groups = np.int64(max(1, min(groups, tiles)))
    spread = _taps_apart(offset)
    return run_tasks(tasks, partial.shape[0] * groups, (x, dy, laid_out, offset, corner, partial,
                     sums, position_block, groups, spread))


def _weight_task_types(x, dy, laid_out, offset, corner, partial, sums, rows, vectors,
                       position_block, groups):
    """The Numba types of the task's arguments in a ``weight`` call with these."""
    return ((numba.int64,) + tuple(map(numba.typeof, (
        x, dy, laid_out, offset, corner, partial, sums, position_block))) +
        (numba.int64, numba.boolean))


@functools.cache
def weight_task(rows, vectors):
    """``weight``'s task ``task`` of S shares × ``groups`` with the MR × NV tile ``rows`` ×
    ``vectors`` (``image_task`` says why a task of its own)."""
    def run(task, x, dy, laid_out, offset, corner, partial, sums, position_block, groups,
            spread):
        width = LANES * vectors
        kp = partial.shape[2]
        panels = kp // width
        positions_per_image = dy.shape[2]
        positions = dy.shape[1] if laid_out else dy.shape[0] * positions_per_image
        taps = offset.size
        shares = partial.shape[0]
        tiles = (taps + rows - 1) // rows
        x_flat = x.reshape(-1)
        summed = sums.shape[0] > 0
        share, group = task // groups, task % groups
        first_tile, last_tile = group * tiles // groups, (group + 1) * tiles // groups
        base = np.empty((last_tile - first_tile, rows), np.int64)
        c_row = np.empty((last_tile - first_tile, rows), np.int64)
        for tile in range(first_tile, last_tile):
            for i in range(rows):
                t = tile * rows + i
                base[tile - first_tile, i] = offset[t] if t < taps else 0
                c_row[tile - first_tile, i] = (t if t < taps else taps) * kp
        out = partial[share]
        out[first_tile * rows:last_tile * rows] = 0  # the last tile's spill row included
        block_rows = 0 if laid_out else position_block
        raw = np.empty(panels * block_rows * width + _LINE_FLOATS, np.float32)
        start = (-(raw.ctypes.data // 4)) % _LINE_FLOATS  # rows on cache lines (``aligned``)
        dy_last = raw[start:start + panels * block_rows * width].reshape(panels, block_rows,
                                                                         width)
        total = np.zeros(sums.shape[1], np.float64)
        first = share * positions // shares
        last = (share + 1) * positions // shares
        for p0 in range(first, last, position_block):
            block = min(position_block, last - p0)
            if laid_out:
                b_rows = dy[:, p0:]
            else:  # positions p0 to p0 + block, image by image
                b_rows = dy_last
                p = p0
                while p < p0 + block:
                    n = p // positions_per_image
                    s0 = p - n * positions_per_image
                    s1 = min(positions_per_image, s0 + p0 + block - p)
                    image_rows(dy, n, s0, s1, dy_last, n * positions_per_image - p0, total,
                               summed and group == 0)
                    p += s1 - s0
            for j0 in range(0, kp, width):
                for tile in range(last_tile - first_tile):
                    if spread and j0 == 0 and tile + 1 < last_tile - first_tile:
                        # the next tile's rows over this block's positions, a line apart
                        for i in range(rows):
                            ahead = x_flat.ctypes.data + 4 * base[tile + 1, i]
                            for p in range(p0, p0 + block, _LINE_FLOATS):
                                prefetch(ahead + 4 * corner[p])
                            prefetch(ahead + 4 * corner[p0 + block - 1])
                    micro_kernel(block, x_flat.ctypes.data, base[tile].ctypes.data,
                                 corner[p0:].ctypes.data, b_rows[j0 // width].ctypes.data,
                                 width, out[:, j0:].ctypes.data, c_row[tile].ctypes.data, 1,
                                 rows, vectors)
        if summed and group == 0:
            sums[share] = total
    return compiled_for_tile(run, rows, vectors)


@numba.njit(cache=True)
def _taps_apart(offset):
    """Whether consecutive taps' terms lie a cache line or more apart (a 1×1 product's
    taps are planes): the products then read one stream per tap, more than the hardware
    prefetchers follow, and the kernels prefetch the next tile's lines themselves (pw1x1's
    forward pass and weight gradient: 256 planes). Neighbouring taps of a k × k kernel read
    the same lines, and prefetching those would only cost."""
    return offset.size > 1 and abs(offset[1] - offset[0]) >= _LINE_FLOATS


@numba.njit(parallel=True, cache=True)
def planar_tiles(x_flat, n_images, image, w_rows, offset, out, spare, length, tap_block, bias,
                 groups, packed, rows, vectors):
    """The transposed orientation, output channels on the tile's rows and positions on its
    lanes, so y comes out channels-first (NCHW) with no transpose (stride 1 only):
    out[n, k, p] = Σ_t w_rows[k, t] · x_flat[n·image + p + offset[t]] for p < length, in the
    padded input's flat positions (the caller crops the border columns), by MR × NV tiles
    (``rows``, ``vectors``: compile-time constants). w_rows (Kp, T), Kp a multiple of MR;
    out (≥ n_images, K, Lp), K ≤ Kp, Lp a multiple of the tile width: the last row tile's
    rows past K are written to ``spare`` (at least a tile's width of floats), so that out
    can be y itself, with no copy to drop padding rows. Unless ``bias`` (K,) is empty, the
    tiles add bias[k] to their sums as they store them after the last block of taps (as a
    pass of its own over each task's strips, the bias took 13–23 % of a 1×1 forward pass on
    56 × 56 maps on AVX-512, 17–39 % on AVX2: 24 → 144 channels of 16 maps, 2 threads, 1.64
    against 1.34 ms / 2.86 against 2.05).
    Reads stay below x_flat[(n_images − 1)·image + Lp + max(offset)].

    With ``groups`` G > 1, the product is G products in one launch: group j's K/G outputs
    (rows j·K/G on of out) read w_rows' rows j·Kp/G on and the input from x_flat[j·image/G]
    on (its channels, when ``offset`` indexes one group's: ``image`` is all G groups'). Each
    task runs every group on its strip, so a layer of many narrow groups pays one launch,
    not one per group (ResNeXt's 32 groups of 4 channels).

    ``packed``: before each block of taps, the task copies the block's strips, ``width``
    values from each tap's offset, into a buffer of its own that starts on a cache line, one
    tap after another, and the tiles read that: for 1×1 products whose input is off vector
    boundaries, on planes whose strips share a few of the L1 cache's sets
    (``conv.implicit._packs_planar``).

    Each tile asks for the cache lines it will store to before its first block of taps
    (``prefetch_for_store``): an output written for the first time is not in cache, and a
    store there waits for its line to be read from memory. Whole training steps, each timed
    after PyTorch's (2 threads, four runs, geomean of the time ratios, AVX-512 / AVX2): 256 →
    64 channels on 32 16 × 16 maps (the input gradient writes 8 MB) 0.96 / 0.99, 144 → 24 on
    16 56 × 56 maps 0.93 / 0.93, a 3 × 3 layer of 8 outputs (576 terms, five blocks) 1.00 /
    1.00."""
    numba.literally(rows)
    numba.literally(vectors)
    width = LANES * vectors
    kp, taps = w_rows.shape[0] // groups, w_rows.shape[1]
    k_out, lp = out.shape[1] // groups, out.shape[2]
    group_image = image // groups
    position_tiles = (length + width - 1) // width
    tap_index = np.arange(taps)
    out_flat, w_flat = out.reshape(-1), w_rows.reshape(-1)
    c_row = np.empty(rows, np.int64)
    for i in range(rows):
        c_row[i] = i * lp
    packed_offset = tap_index * width  # the block's tap t's strip in a task's copy
    biased = bias.size > 0
    row_bias = np.zeros(groups * kp, np.float32)  # as w_rows' rows: MR values per row tile
    if biased:
        for j in range(groups):
            row_bias[j * kp:j * kp + k_out] = bias[j * k_out:(j + 1) * k_out]
    for task in numba.prange(n_images * position_tiles):
        n, p0 = task // position_tiles, task % position_tiles * width
        base = np.empty(rows, np.int64)
        ragged = np.empty(rows, np.int64)  # the last row tile's, when it runs past K
        # a tap block's strips (tap_block × width floats: a few KB, so never a page mapping
        # of its own per task, as a copy of all the taps' strips could be)
        strips = np.empty(min(tap_block, taps) * width + _LINE_FLOATS if packed else 0,
                          np.float32)
        first = (-(strips.ctypes.data // 4)) % _LINE_FLOATS if packed else 0
        for j in range(groups):
            source = x_flat[n * image + j * group_image + p0:]
            first_row = n * groups * k_out + j * k_out  # out's row of the group's output 0
            for t0 in range(0, taps, tap_block):
                block = min(tap_block, taps - t0)
                b_source, b_offset = source, offset[t0:]
                if packed:
                    for t in range(block):
                        at = offset[t0 + t]
                        strips[first + t * width:first + (t + 1) * width] = \
                            source[at:at + width]
                    b_source, b_offset = strips[first:], packed_offset
                for k0 in range(0, kp, rows):
                    for i in range(rows):
                        base[i] = (j * kp + k0 + i) * taps + t0
                    tile = out_flat[(first_row + k0) * lp + p0:]  # k0 < K: Kp − MR < K
                    row_table = c_row
                    if k0 + rows > k_out:
                        to_spare = (np.int64(spare.ctypes.data) -
                                    np.int64(tile.ctypes.data)) // 4
                        for i in range(rows):
                            ragged[i] = i * lp if k0 + i < k_out else to_spare
                        row_table = ragged
                    if t0 == 0:  # the tile's first stores: its lines asked for now
                        for i in range(rows):
                            for line in range(0, width * 4, aligned.LINE):
                                prefetch_for_store(tile.ctypes.data + row_table[i] * 4 + line)
                    if biased and t0 + block == taps:
                        biased_micro_kernel(block, w_flat.ctypes.data, base.ctypes.data,
                                            tap_index.ctypes.data, b_source.ctypes.data,
                                            b_offset.ctypes.data, tile.ctypes.data,
                                            row_table.ctypes.data, 1 if t0 else 0,
                                            row_bias[j * kp + k0:].ctypes.data, rows, vectors)
                    else:
                        gathered_micro_kernel(block, w_flat.ctypes.data, base.ctypes.data,
                                              tap_index.ctypes.data, b_source.ctypes.data,
                                              b_offset.ctypes.data, tile.ctypes.data,
                                              row_table.ctypes.data, 1 if t0 else 0, rows,
                                              vectors)


@numba.njit(cache=True)
def planar(x_flat, n_images, image, w_rows, offset, out, spare, length, tap_block, bias,
           groups, packed):
    """``planar_tiles`` with this target's tile, ``cpu.TILES``' planar (MR, NV)."""
    planar_tiles(x_flat, n_images, image, w_rows, offset, out, spare, length, tap_block, bias,
                 groups, packed, PLANAR_ROWS, PLANAR_VECTORS)


# Each NV's kernels: ENTRY[nv] = (forward, weight), BY_IMAGE[nv] = by_image, each called
# without its task table and tile.
def forward_with(rows, vectors):
    """``forward`` with the MR × NV tile ``rows`` × ``vectors`` (any, for ``python -m
    cnnkit.bench.tiles`` to time), called without its task table and tile."""
    return PerTile(forward, forward_task, forward_task_types, 6, rows, vectors)


ENTRY = {nv: (forward_with(TILE_ROWS[nv], nv),
              PerTile(weight, weight_task, _weight_task_types, 7, TILE_ROWS[nv], nv))
         for nv in (1, 2, 3, 4)}
BY_IMAGE = {nv: PerTile(by_image, image_task, _image_task_types, 13, TILE_ROWS[nv], nv)
            for nv in (1, 2, 3, 4)}


VECTOR_COUNTS = tuple(nv for nv in ENTRY if TILE_ROWS[nv])  # the tiles this target has


def panels(a):
    """a (N, K, T) -> B in panels of the tile width W for K outputs, (⌈K / W⌉, N·T, W):
    B[(n, t), k] = a[n, k, t], zero-padded, row (n, t) = n·T + t. The forward kernel's
    weights: w (K, C·taps) as a = w[None] (rows: its taps), or the input gradient's, whose
    rows are dy's channels and taps (w itself, N = K). Each panel's rows are contiguous: in a
    (T, Kp) B a tap block's rows lie Kp floats apart, and at Kp of 128 or more (512 bytes, a
    multiple of L1's set stride) they map to a fraction of L1's sets and evict each other
    before the next tile reuses them (BLIS packs its B panels for the same reason). Laid out
    by the 8 × 8 register transposes (1280 × 320 weights: 0.07 ms, against 0.45 for NumPy's
    copy of the transpose; 2048 × 1024: 0.5 against 14 ms)."""
    n, k, t = a.shape
    out = empty_panels(k, n * t)
    if t == 1:
        # B is a's (N, K) matrix itself, its columns cut into panels, with nothing to
        # transpose (a 1×1 kernel's input gradient): 1280 × 320 weights took 0.70 ms as
        # 8 × 8 transposes of one row each
        columns_to_panels(np.ascontiguousarray(a.reshape(n, k)), out)
        return out
    planes_to_rows(np.ascontiguousarray(a), out)
    return out


def empty_panels(k, rows):
    """Uninitialised panels for K outputs of ``rows`` terms: (⌈K / W⌉, rows, W), W the tile
    width of K outputs (``tile``), on cache lines (``aligned``)."""
    width = LANES * tile(k)[1]
    return aligned.empty((-(-k // width), rows, width))


@functools.lru_cache(maxsize=1024)
def tile(channels):
    """(MR, NV, channels rounded up to the tile width LANES·NV) for an output-channel count:
    the tile that pads the channels least, the widest of those, and the one-vector tile only
    for at most one vector of channels (it is the slowest per lane: one core, 8 × 16 ran 130
    GFLOP/s against 165–187 for the wider AVX-512 tiles, 8 × 8 90 against 112–115 on AVX2,
    ``python -m cnnkit.bench.tiles``). On AVX-512, 16 channels take the 16-lane tile (a 64-lane
    one would compute 48 zeros), 64 the 64-lane one, 48 or 96 the 48-lane one: the 64-lane
    tile padded 96 channels to 128 and ran at 231 useful GFLOP/s against 389 (AlexNet's
    strided input gradient, 48 outputs: 259 against 435; 2 threads)."""
    counts = [nv for nv in VECTOR_COUNTS if nv > 1 or channels <= LANES] or [1]
    padded = {nv: -(-channels // (LANES * nv)) * LANES * nv for nv in counts}
    vectors = min(counts, key=lambda nv: (padded[nv], -nv))
    return TILE_ROWS[vectors], vectors, padded[vectors]
