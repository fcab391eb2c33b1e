"""Re-measure the register-tile table (``cnnkit.cpu.TILES``) on this machine.

    python -m cnnkit.bench.tiles [--threads 1] [--repeats 5]
    NUMBA_CPU_NAME=haswell python -m cnnkit.bench.tiles      # the AVX2 row, on any x86 host
    python -m cnnkit.bench.tiles --blocks   # the blocking constants instead (below)
    python -m cnnkit.bench.tiles --planar   # the channels-first tile instead (below)
    python -m cnnkit.bench.tiles --rows     # the row correlation's tiles instead (below)
    python -m cnnkit.bench.tiles --align    # the tiles on and off cache lines (below)
    python -m cnnkit.bench.tiles --sliding  # the tiles along rows (below)

Times the implicit GEMM's forward kernel (``implicit_gemm_numba.forward``, the product alone:
no padding, weight or layout copies) on a GEMM-shaped 3×3 layer (N=16, 64 → 192 channels,
32×32: a multiple of every tile's width, so that no tile computes padding) for every MR × NV
tile near the register budget of this target, and prints GFLOP/s beside the table's choice.
A tile that does not fit the vector registers spills and shows it at once (AVX-512's 8 × 2 on
AVX2's 16 registers ran several times slower). Each tile is compiled on first use: about a
second each.

``--blocks`` keeps the table's tile and times the blocking constants of the same kernels
(``implicit_tap_block``: taps per pass of the forward kernel; ``implicit_position_block``:
output positions of dy per pass of the weight kernel; ``implicit_weight_share_positions``:
the fewest output positions per share of the weight gradient, whose partial sums are added
afterwards) at a few sizes, on the same layer; then the tap block of 1×1 layers whose planes
crowd the caches (``implicit_plane_tap_block``) on two such layers, the chunk of output rows
of per-image forward products (``implicit_image_chunk``) on two layers and the tasks over the
batch it bounds on a third, and the compiled
depthwise weight gradient's accumulator length (``depthwise_weight_band``) on three
depthwise layers.

``--planar`` times the channels-first kernel (``implicit_gemm_numba.planar_tiles``, the
table's ``planar`` entry) for the same candidate tiles, MR output channels by NV vectors of
positions, on the kind of product it is chosen for: thin and wide, a 1×1 layer (N=16,
64 → 192 channels, 24×24 maps: 576 positions, a multiple of every tile's width).

``--rows`` times the row correlation (``kernels/correlate_rows.py``, the table's ``rows``
entries) with each candidate tile, MR output rows by NV vectors of columns, on an image
(1024 × 1024 ⋆ 11 × 11, valid: the four-row tiles) and a signal (2²⁰ ⋆ 127: the one-row
tile), copies included.

``--align`` times the table's tiles with their operands (weight panels, output rows) on
cache lines, as ``kernels/aligned.py`` allocates them, and 16 bytes past one, as NumPy
aligns its arrays.

``--sliding`` times the tiles along output rows (``implicit_gemm_numba.slide``, the table's
``sliding`` entries) for MR from 4 to the register budget, against the plain tile of the same
width (``gemm_rows``), for each vector count NV that has one, on two layers of NV vectors of
outputs: 16 → LANES·NV channels, 3 × 3, on 32 maps of 28 rows, and 6 → LANES·NV, 5 × 5, on
64 maps of 14 rows (padded inputs, the products alone). The rows are twice the table's MR
long, so the ratio beside the table's MR is the ``sliding_gain`` entry.
"""
import argparse
import math
import os
import time

from ..cpu import tile_registers


def _candidates(registers, row_counts=(2, 3, 4, 6, 8, 10, 12)):
    """(MR, NV) pairs around the budget MR·NV + NV + 1 ≤ registers (a few just over it)."""
    pairs = []
    for vectors in (1, 2, 3, 4):
        for rows in row_counts:
            if tile_registers(rows, vectors) <= registers + vectors:
                pairs.append((rows, vectors))
    return pairs


def _line(rows, vectors, lanes, rate, chosen):
    return (f"  MR {rows:2d} × NV {vectors} ({rows}×{lanes * vectors:3d}, "
            f"{tile_registers(rows, vectors):2d} registers): {rate:7.1f} GFLOP/s{chosen}")


def _kernel(rows, vectors):
    """The forward kernel with MR × NV = rows × vectors (its task compiled for this tile)."""
    from ..kernels import implicit_gemm_numba as compiled
    forward = compiled.forward_with(rows, vectors)

    def run(x, wt, offset, corner, out, y, chunks):
        forward(x, wt, offset, corner, out, y, chunks, 1, 128, compiled.NO_ROWS,
                compiled.NO_BIAS)
    return run


def _operand(shape, past_line=0):
    """Random float32 values whose data starts ``past_line`` bytes after a cache line."""
    import numpy as np

    from ..kernels import aligned
    size = math.prod(shape)
    raw = aligned.empty(size + aligned.LINE // 4)
    out = raw[past_line // 4:past_line // 4 + size].reshape(shape)
    out[...] = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    return out


def measure(threads=1, repeats=5, log=print, candidates=None, past_line=0):
    """{(MR, NV): GFLOP/s} for this target's candidate tiles (or the (MR, NV) pairs given),
    their weight panels and output rows starting ``past_line`` bytes after a cache line."""
    import numba

    from ..cpu import host
    from ..kernels import implicit_gemm_numba as compiled
    numba.set_num_threads(threads)
    cpu = host()
    xp, offset, corner, k, flops = _layer()
    # One thread: CPU time, which other processes on the machine do not inflate.
    clock = time.process_time if threads == 1 else time.perf_counter
    results = {}
    n, c, size = xp.shape[0], xp.shape[1], xp.shape[2] - 2
    log(f"# {cpu.summary()}; {threads} thread(s); implicit GEMM forward kernel, "
        f"{n}×{c}×{size}×{size} ⋆ {k}×{c}×3×3; operands {past_line} bytes past a cache line")
    table = cpu.tiles.gemm_rows
    for rows, vectors in candidates or _candidates(cpu.registers):
        width = cpu.lanes * vectors
        kp = -(-k // width) * width
        wt = _operand((kp // width, offset.size, width), past_line)
        out = _operand((corner.size + rows, kp), past_line)
        y = compiled.NO_Y
        run = _kernel(rows, vectors)
        best = _best(lambda: run(xp, wt, offset, corner, out, y, 8 * threads), repeats, clock)
        results[(rows, vectors)] = flops / best / 1e9
        chosen = "  <- table" if table[vectors] == rows else ""
        log(_line(rows, vectors, cpu.lanes, results[(rows, vectors)], chosen))
    return results


def measure_alignment(threads=1, repeats=5, log=print):
    """{(past_line, MR, NV): GFLOP/s} of the table's tiles with their operands on cache
    lines (``kernels/aligned.py``) and 16 bytes past one (NumPy's alignment)."""
    from ..cpu import host
    table = host().tiles.gemm_rows
    tiles = [(rows, vectors) for vectors, rows in enumerate(table) if rows]
    results = {}
    for past_line in (0, 16):
        for tile, rate in measure(threads, repeats, log, tiles, past_line).items():
            results[(past_line,) + tile] = rate
    return results


def _planar_kernel(rows, vectors):
    """The channels-first kernel with literal MR and NV (compiled for this tile alone)."""
    import numba

    from ..kernels import implicit_gemm_numba as compiled

    @numba.njit
    def run(x_flat, n_images, image, w_rows, offset, out, spare, length):
        compiled.planar_tiles(x_flat, n_images, image, w_rows, offset, out, spare, length, 128,
                              compiled.NO_BIAS, 1, False, rows, vectors)
    return run


def measure_planar(threads=1, repeats=5, log=print, candidates=None):
    """{(MR, NV): GFLOP/s} of the channels-first kernel for this target's candidate tiles
    (or the (MR, NV) pairs given), on a thin, wide 1×1 product."""
    import numba
    import numpy as np

    from ..cpu import host
    from ..kernels.conv.implicit import _offsets
    numba.set_num_threads(threads)
    cpu = host()
    n, c, k, size = 16, 64, 192, 24
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    offset = _offsets(x.shape, (1, 1), (1, 1))
    positions = size * size
    # the last image's strips read up to a tile's width past it
    x_flat = np.concatenate([x.reshape(-1), np.zeros(64 * cpu.lanes, np.float32)])
    flops = 2 * n * k * c * positions
    clock = time.process_time if threads == 1 else time.perf_counter
    log(f"# {cpu.summary()}; {threads} thread(s); implicit GEMM channels-first kernel, "
        f"{n}×{c}×{size}×{size} ⋆ {k}×{c}×1×1")
    results = {}
    for rows, vectors in candidates or _candidates(cpu.registers):
        width = cpu.lanes * vectors
        k_padded = -(-k // rows) * rows
        w_rows = rng.standard_normal((k_padded, c), dtype=np.float32)
        out = _operand((n, k, -(-positions // width) * width))
        spare = np.empty(width, np.float32)
        run = _planar_kernel(rows, vectors)
        best = _best(lambda: run(x_flat, n, c * positions, w_rows, offset, out, spare,
                                 positions), repeats, clock)
        results[(rows, vectors)] = flops / best / 1e9
        chosen = "  <- table" if cpu.tiles.planar == (rows, vectors) else ""
        log(_line(rows, vectors, cpu.lanes, results[(rows, vectors)], chosen))
    return results


def _rows_kernel(rows, vectors):
    """``correlate_rows._run`` with literal MR and NV (compiled for this tile alone)."""
    import numba

    from ..kernels import correlate_rows_numba as compiled

    @numba.njit
    def run(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, col_chunks):
        compiled.correlate(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out,
                           col_chunks, rows, vectors)
    return run


def measure_rows(threads=1, repeats=5, log=print, candidates=None):
    """{(case, MR, NV): GFLOP/s} of the row correlation for this target's candidate tiles (or
    the (MR, NV) pairs given), on an image and on a signal."""
    from unittest import mock

    import numba
    import numpy as np

    from ..cpu import host
    from ..kernels import correlate_rows
    numba.set_num_threads(threads)
    cpu = host()
    rng = np.random.default_rng(0)
    cases = {"image": (rng.standard_normal((1024, 1024), dtype=np.float32),
                       rng.standard_normal((11, 11), dtype=np.float32)),
             "signal": (rng.standard_normal(1 << 20, dtype=np.float32),
                        rng.standard_normal(127, dtype=np.float32))}
    clock = time.process_time if threads == 1 else time.perf_counter
    log(f"# {cpu.summary()}; {threads} thread(s); row correlation, valid: "
        f"1024×1024 ⋆ 11×11 (image), 2^20 ⋆ 127 (signal)")
    results = {}
    for rows, vectors in candidates or _candidates(cpu.registers, (1, 2, 4, 6, 8)):
        kernel = _rows_kernel(rows, vectors)

        def run(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, *_):
            tasks = plane_base.size * out.shape[1] // rows
            chunks = min(out.shape[2] // (cpu.lanes * vectors), -(-8 * threads // tasks))
            kernel(p, pitch, kernels, plane_base, plane_kernel, tap_plane, out, chunks)
        for case, (x, k) in cases.items():
            sizes = tuple(n - m + 1 for n, m in zip(x.shape, k.shape))
            if case == "signal" and rows > 1:
                continue  # a one-row kernel leaves the other rows' taps zero
            with mock.patch.object(correlate_rows, "tile", lambda *_: (rows, vectors)), \
                    mock.patch.object(correlate_rows, "_run", run):
                best = _best(lambda: correlate_rows.correlate(x, k, (0,) * x.ndim, sizes),
                             repeats, clock)
            rate = 2 * k.size * math.prod(sizes) / best / 1e9
            results[(case, rows, vectors)] = rate
            table = cpu.tiles.rows[:1] if case == "signal" else cpu.tiles.rows[1:]
            chosen = "  <- table" if (rows, vectors) in table else ""
            log(f"  {case:6s}" + _line(rows, vectors, cpu.lanes, rate, chosen))
    return results


def _sliding_kernel(rows, vectors):
    """Every image's product on ``implicit_gemm_numba.slide`` with MR × NV = rows × vectors."""
    import numba

    from ..kernels import implicit_gemm_numba as compiled

    @numba.njit(parallel=True)
    def run(xp, wt, run_offset, start, c_row, local, width):
        image = xp[0].size
        for n in numba.prange(xp.shape[0]):
            compiled.slide(xp.ctypes.data + 4 * n * image, wt, run_offset, start, c_row,
                           local[n], 128 // width, width, 0, 0, 0, rows, vectors)
    return run


def _plain_kernel(rows, vectors):
    """The plain tile of NV = ``vectors`` over every image's positions (``_kernel``'s)."""
    forward = _kernel(rows, vectors)

    def run(xp, wt, offset, corner, out, chunks):
        from ..kernels import implicit_gemm_numba as compiled
        forward(xp, wt[None], offset, corner, out, compiled.NO_Y, chunks)
    return run


def measure_sliding(threads=1, repeats=5, log=print, candidates=None):
    """{(layer, MR): GFLOP/s} of the tiles along rows, for each NV the table has one for
    (``SLIDING_ROWS``), with MR = 4 up to the register budget (MR·NV + 5·NV + 1), or the MRs
    given, and (layer, "plain") of the plain tile of that NV. Each NV's layers have rows of
    twice the table's MR: its tiles compute no output twice, so the ratio printed beside the
    table's MR is the tile's own speed against the plain tile's, the ``sliding_gain`` entry
    that ``conv.implicit.sliding_width`` weighs the outputs a shape wastes against."""
    import numba
    import numpy as np

    from ..cpu import host
    from ..kernels import implicit_gemm_numba as compiled
    from ..kernels.conv.implicit import _corners, _offsets
    numba.set_num_threads(threads)
    cpu = host()
    rng = np.random.default_rng(0)
    clock = time.process_time if threads == 1 else time.perf_counter
    log(f"# {cpu.summary()}; {threads} thread(s); implicit GEMM, the tiles along rows "
        f"(sliding) against the plain tile of the same width")
    results = {}
    for vectors, table_rows in enumerate(compiled.SLIDING_ROWS):
        if not table_rows:
            continue
        k = cpu.lanes * vectors
        budget = [mr for mr in range(4, 27, 2) if mr * vectors + 5 * vectors + 1 <= cpu.registers]
        mrs = [mr for mr in candidates or budget + [table_rows]
               if mr * vectors + 5 * vectors + 1 <= cpu.registers]
        plain_rows = cpu.tiles.gemm_rows[vectors]
        plain = _plain_kernel(plain_rows, vectors)
        for n, c, height, kw in ((32, 16, 28, 3), (64, 6, 14, 5)):
            size = (height, 2 * table_rows)
            name = f"{n}×{c}×{size[0]}×{size[1]} ⋆ {k}×{c}×{kw}×{kw}"
            xp = rng.standard_normal((n, c) + tuple(s + kw - 1 for s in size), dtype=np.float32)
            wt = rng.standard_normal((c * kw * kw, k), dtype=np.float32)
            offset = _offsets(xp.shape, (kw, kw), (1, 1))
            flops = 2 * n * k * c * kw * kw * math.prod(size)
            out = np.empty((n * math.prod(size) + plain_rows, k), np.float32)
            corners = _corners(xp.shape, size, (1, 1))
            best = _best(lambda: plain(xp, wt, offset, corners, out, 8 * threads), repeats,
                         clock)
            plain_rate = results[(name, "plain")] = flops / best / 1e9
            log(f"  {name}: plain {plain_rows:2d} × {k}: {plain_rate:7.1f} GFLOP/s")
            corner = _corners((1,) + xp.shape[1:], size, (1, 1))
            runs = np.ascontiguousarray(offset[::kw])
            positions = math.prod(size)
            for mr in sorted(set(mrs)):
                if mr > positions:
                    continue
                start, c_row = compiled.sliding_tiles(corner, compiled.NO_ROWS, size[1], mr, k,
                                                      positions * k)
                local = np.empty((n, positions + 1, k), np.float32)
                run = _sliding_kernel(mr, vectors)
                best = _best(lambda: run(xp, wt, runs, start, c_row, local, kw), repeats,
                             clock)
                rate = results[(name, mr)] = flops / best / 1e9
                chosen = "  <- table" if mr == table_rows else ""
                log(f"  {name}: sliding {mr:2d} × {k} ({mr * vectors + kw * vectors + 1} "
                    f"registers, {start.size * mr / positions:.2f} outputs computed per "
                    f"output): {rate:7.1f} GFLOP/s, {rate / plain_rate:.2f} × plain{chosen}")
    return results


def _layer():
    """The benchmark layer: padded input, weights, tables and FLOPs of one forward pass."""
    import numpy as np

    from ..kernels.conv.implicit import _corners, _offsets
    n, c, k, size = 16, 64, 192, 32
    rng = np.random.default_rng(0)
    xp = rng.standard_normal((n, c, size + 2, size + 2), dtype=np.float32)
    offset = _offsets(xp.shape, (3, 3), (1, 1))
    corner = _corners(xp.shape, (size, size), (1, 1))
    return xp, offset, corner, k, 2 * n * k * c * 9 * size * size


def _best(run, repeats, clock):
    run()  # compile and warm up
    best = math.inf
    for _ in range(repeats):
        start = clock()
        run()
        best = min(best, clock() - start)
    return best


def measure_blocks(threads=1, repeats=5, log=print):
    """{("tap" | "position" | "share", size): GFLOP/s} of the forward and weight kernels with
    the table's tile, for a few block sizes (``implicit_tap_block``,
    ``implicit_position_block``), and of the whole weight gradient (its partial sums added)
    for a few sizes of its position shares (``implicit_weight_share_positions``)."""
    import numba
    import numpy as np

    from .. import tuning
    from ..cpu import host
    from ..kernels import implicit_gemm_numba as compiled
    from ..kernels.conv import implicit
    numba.set_num_threads(threads)
    xp, offset, corner, k, flops = _layer()
    rows, vectors, kp = compiled.tile(k)
    width = compiled.LANES * vectors
    forward, weight = compiled.ENTRY[vectors]
    rng = np.random.default_rng(1)
    wt = _operand((kp // width, offset.size, width))
    dy = _operand((xp.shape[0], k, corner.size // xp.shape[0]))
    no_sums = np.empty((0, k), np.float64)
    out = _operand((corner.size + rows, kp))
    y = compiled.NO_Y
    partial = _operand((tuning.value("implicit_weight_shares"), offset.size + rows, kp))
    clock = time.process_time if threads == 1 else time.perf_counter
    log(f"# {host().summary()}; {threads} thread(s); tile {rows}×{width}; "
        f"the layer of python -m cnnkit.bench.tiles")
    dy_planes = rng.standard_normal((xp.shape[0], k) + (xp.shape[2] - 2,) * 2, dtype=np.float32)

    def whole_weight_gradient(share_positions):
        with tuning.override(implicit_weight_share_positions=share_positions):
            implicit.backward_weight(xp, dy_planes, (3, 3), (1, 1), (1, 1))

    results = {}
    for name, constant, sizes, run in (
            ("tap", "implicit_tap_block", (32, 64, 128, 256, 576),
             lambda block: forward(xp, wt, offset, corner, out, y, 8 * threads, 1, block,
                                   compiled.NO_ROWS, compiled.NO_BIAS)),
            ("position", "implicit_position_block", (32, 64, 128, 256, 512),
             lambda block: weight(xp, dy, False, offset, corner, partial, no_sums, block, 1)),
            ("share", "implicit_weight_share_positions", (512, 1024, 2048, 4096, corner.size),
             whole_weight_gradient)):
        current = tuning.value(constant)
        for size in sizes:
            rate = flops / _best(lambda: run(size), repeats, clock) / 1e9
            results[(name, size)] = rate
            chosen = f"  <- {constant}" if size == current else ""
            log(f"  {name} {'positions' if name == 'share' else 'block'} {size:5d}: "
                f"{rate:7.1f} GFLOP/s{chosen}")
    results.update(_measure_plane_tap_block(repeats, clock, log))
    results.update(_measure_image_chunk(repeats, clock, log))
    results.update(_measure_depthwise_band(repeats, clock, log))
    return results


def _measure_plane_tap_block(repeats, clock, log):
    """{("plane tap", layer, size): ms} of whole forward passes of two 1×1 layers whose
    planes crowd the caches (``conv.implicit.tap_block``: 1 KB planes on one of 16 × 16, 3 KB
    on 28 × 28) for a few tap blocks (``implicit_plane_tap_block``)."""
    import numpy as np

    from .. import tuning
    from ..kernels.conv import implicit
    current, results = tuning.value("implicit_plane_tap_block"), {}
    for label, (n, c, k, size) in (("128 → 128, 16 × 16", (16, 128, 128, 16)),
                                   ("128 → 128, 28 × 28", (16, 128, 128, 28))):
        rng = np.random.default_rng(3)
        x = rng.standard_normal((n, c, size, size), dtype=np.float32)
        w = rng.standard_normal((k, c, 1, 1), dtype=np.float32)
        for block in (16, 32, 48, 64, 128):
            with tuning.override(implicit_plane_tap_block=block):
                ms = 1e3 * _best(lambda: implicit.forward(x, w, (1, 1), (1, 1), (size, size),
                                                          planar=False), repeats, clock)
            results[("plane tap", label, block)] = ms
            chosen = "  <- implicit_plane_tap_block" if block == current else ""
            log(f"  1×1 forward pass, {label}, plane tap block {block:3d}: {ms:7.2f} ms{chosen}")
    return results


def _measure_image_chunk(repeats, clock, log):
    """{("image chunk", layer, size): ms} of whole forward passes of per-image products whose
    output rows outgrow L2 (ResNet's 7 × 7 stem) or not (a 3 × 3 layer on 56 × 56 maps), for
    a few chunks of output rows (``implicit_image_chunk``; 2^30: the whole image at once),
    and of a product over the batch, whose tasks keep their rows within it
    (``conv.implicit.task_split``; 2^30: one task per thread)."""
    import numpy as np

    from .. import tuning
    from ..functional import conv2d
    from ..tensor import Tensor, no_grad
    current, results = tuning.value("implicit_image_chunk"), {}
    for label, (n, c, k, size, kernel, stride) in (
            ("7 × 7 stem, 8 × 3 × 224² → 64", (8, 3, 64, 224, 7, 2)),
            ("3 × 3, 8 × 64 × 56² → 64", (8, 64, 64, 56, 3, 1)),
            ("5 × 5 over the batch, 2 × 1 × 112² → 64", (2, 1, 64, 112, 5, 1))):
        rng = np.random.default_rng(3)
        x = Tensor(rng.standard_normal((n, c, size, size), dtype=np.float32))
        w = Tensor(rng.standard_normal((k, c, kernel, kernel), dtype=np.float32))
        for chunk in (1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 30):
            with tuning.override(implicit_image_chunk=chunk), no_grad():
                ms = 1e3 * _best(lambda: conv2d(x, w, None, stride, kernel // 2), repeats,
                                 clock)
            results[("image chunk", label, chunk)] = ms
            chosen = "  <- implicit_image_chunk" if chunk == current else ""
            log(f"  forward pass, {label}, chunk 2^{chunk.bit_length() - 1:2d} floats: "
                f"{ms:7.2f} ms{chosen}")
    return results


def _measure_depthwise_band(repeats, clock, log):
    """{("depthwise band", layer, size): ms} of the compiled depthwise weight gradient for a
    few accumulator lengths (``depthwise_weight_band``), on three depthwise layers."""
    import numpy as np

    from .. import tuning
    from ..kernels import depthwise_numba
    current, results = tuning.value("depthwise_weight_band"), {}
    for label, (n, c, size, kernel) in (("96 × 28², 5 × 5", (16, 96, 28, 5)),
                                        ("32 × 112², 3 × 3", (16, 32, 112, 3)),
                                        ("32 × 56², 7 × 7", (8, 32, 56, 7))):
        rng = np.random.default_rng(2)
        x = rng.standard_normal((n, c, size, size), dtype=np.float32)
        dy = rng.standard_normal((n, c, size, size), dtype=np.float32)
        pads = ((kernel // 2,) * 2,) * 2
        for band in (256, 512, 1024, 2048):
            with tuning.override(depthwise_weight_band=band):
                ms = 1e3 * _best(lambda: depthwise_numba.backward_weight_unpadded(
                    x, dy, (kernel, kernel), pads, (1, 1), (1, 1), True), repeats, clock)
            results[("depthwise band", label, band)] = ms
            chosen = "  <- depthwise_weight_band" if band == current else ""
            log(f"  depthwise weight gradient, {label}, band {band:5d}: {ms:7.2f} ms{chosen}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnkit.bench.tiles",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--blocks", action="store_true",
                      help="time the tap and position block sizes instead of the tiles")
    mode.add_argument("--planar", action="store_true",
                      help="time the channels-first kernel's tiles instead")
    mode.add_argument("--rows", action="store_true",
                      help="time the row correlation's tiles instead")
    mode.add_argument("--align", action="store_true",
                      help="time the table's tiles with operands on and off cache lines")
    mode.add_argument("--sliding", action="store_true",
                      help="time the one-vector tile along output rows instead")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.threads > (os.cpu_count() or 1):
        parser.error(f"--threads: expected 1 to {os.cpu_count()}, got {args.threads}")
    if args.repeats < 1:
        parser.error(f"--repeats: expected at least 1, got {args.repeats}")
    run = (measure_blocks if args.blocks else measure_planar if args.planar else
           measure_rows if args.rows else measure_alignment if args.align else
           measure_sliding if args.sliding else measure)
    run(args.threads, args.repeats)


if __name__ == "__main__":
    main()
