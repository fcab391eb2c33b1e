"""Layout changes between channels-last rows and channels-first planes (Numba).

The implicit GEMM computes y with positions on rows and channels on columns, and reads dy the
same way; the library's arrays are channels-first. The copy between the two is a transpose,
done here in 8 × 8 blocks of registers: eight row loads, three rounds of shuffles (the
classic unpack / shuffle / 128-bit permute of an 8 × 8 float transpose) and eight column
stores, against one scalar load and store per element (1 ns per element, one core,
res3x3's 2 M outputs: 2 ms). Edges of fewer than 8 rows or columns are copied one by one.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .. import tuning
from .pad_numba import FLOAT32_EXPONENT
from .task_call import Loop

# The three shuffle rounds: (first, second, mask) per output vector, as indices into the
# previous round's eight vectors; the last round leaves column j in vector j.
_ROUNDS = (
    [(i - i % 2, i - i % 2 + 1, [0, 8, 1, 9, 4, 12, 5, 13] if i % 2 == 0
      else [2, 10, 3, 11, 6, 14, 7, 15]) for i in range(8)],
    [(a, a + 2, mask) for a in (0, 1, 4, 5) for mask in ([0, 1, 8, 9, 4, 5, 12, 13],
                                                         [2, 3, 10, 11, 6, 7, 14, 15])],
    [(i % 4, i % 4 + 4, [0, 1, 2, 3, 8, 9, 10, 11] if i < 4 else [4, 5, 6, 7, 12, 13, 14, 15])
     for i in range(8)],
)


def _transpose8_codegen(builder, src, src_stride, dst, dst_stride, shift=None, sums=None,
                        cells=None):
    f32, f64, i64, i32 = ir.FloatType(), ir.DoubleType(), ir.IntType(64), ir.IntType(32)
    vec = ir.VectorType(f32, 8)
    src = builder.inttoptr(src, f32.as_pointer())
    dst = builder.inttoptr(dst, f32.as_pointer())

    def row(base, stride, i):
        return builder.bitcast(builder.gep(base, [builder.mul(stride, ir.Constant(i64, i))]),
                               vec.as_pointer())

    if cells is None:
        def destination(j):
            return row(dst, dst_stride, j)
    else:  # column j goes to dst + cells[j] (cells: int64 offsets, in elements)
        cells = builder.inttoptr(cells, i64.as_pointer())

        def destination(j):
            offset = builder.load(builder.gep(cells, [ir.Constant(i64, j)]), align=8)
            return builder.bitcast(builder.gep(dst, [offset]), vec.as_pointer())

    v = [builder.load(row(src, src_stride, i), align=4) for i in range(8)]
    for shuffles in _ROUNDS:
        v = [builder.shuffle_vector(v[a], v[b], ir.Constant(ir.VectorType(i32, 8), mask))
             for a, b, mask in shuffles]
    if shift is not None:  # column j gets shift[j] added
        shift = builder.inttoptr(shift, f32.as_pointer())
        for j in range(8):
            value = builder.load(builder.gep(shift, [ir.Constant(i64, j)]), align=4)
            lane = builder.insert_element(ir.Constant(vec, ir.Undefined), value,
                                          ir.Constant(i32, 0))
            splat = builder.shuffle_vector(lane, ir.Constant(vec, ir.Undefined),
                                           ir.Constant(ir.VectorType(i32, 8), [0] * 8))
            v[j] = builder.fadd(v[j], splat)
    for j in range(8):
        builder.store(v[j], destination(j), align=4)
    if sums is not None:  # sums[i] += the stored values of column i, row by row, in float64
        sums = builder.bitcast(builder.inttoptr(sums, f64.as_pointer()),
                               ir.VectorType(f64, 8).as_pointer())
        total = builder.load(sums, align=8)
        for j in range(8):
            total = builder.fadd(total, builder.fpext(v[j], ir.VectorType(f64, 8)))
        builder.store(total, sums, align=8)


@intrinsic
def transpose8(typingctx, src, src_stride, dst, dst_stride):
    """``transpose8(src, src_stride, dst, dst_stride)`` (float32 addresses, strides in
    elements): dst[j·dst_stride + i] = src[i·src_stride + j] for i, j < 8."""

    def codegen(context, builder, signature, args):
        _transpose8_codegen(builder, *args)
        return context.get_dummy_value()

    return types.void(types.intp, types.intp, types.intp, types.intp), codegen


@intrinsic
def transpose8_shift(typingctx, src, src_stride, dst, dst_stride, shift):
    """``transpose8`` with shift[j] added to every value of column j (a bias per channel)."""

    def codegen(context, builder, signature, args):
        _transpose8_codegen(builder, *args[:4], shift=args[4])
        return context.get_dummy_value()

    return types.void(types.intp, types.intp, types.intp, types.intp, types.intp), codegen


@intrinsic
def transpose8_cells(typingctx, src, src_stride, dst, cells):
    """``transpose8`` whose column j goes to its own place: dst[cells[j] + i] = src[i·src_stride
    + j] for i, j < 8 (``cells``: the address of 8 int64 offsets, in elements), so that
    consecutive source columns can land in cells that are not evenly spaced (a plane's pixels
    in a padded buffer: a row's last pixel, then the next row's first)."""

    def codegen(context, builder, signature, args):
        _transpose8_codegen(builder, *args[:3], None, cells=args[3])
        return context.get_dummy_value()

    return types.void(types.intp, types.intp, types.intp, types.intp), codegen


@intrinsic
def transpose8_sum(typingctx, src, src_stride, dst, dst_stride, sums):
    """``transpose8`` that also adds to sums[i] (float64) the stored values dst[j·dst_stride
    + i], j = 0, 1, ..., 7 in that order: the column sums of the rows it writes."""

    def codegen(context, builder, signature, args):
        _transpose8_codegen(builder, *args[:4], sums=args[4])
        return context.get_dummy_value()

    return types.void(types.intp, types.intp, types.intp, types.intp, types.intp), codegen


@numba.njit(cache=True)
def rows_to_planes(a, out, p0, p1, bias):
    """out[n, k, s] = a[n·S + s, k] (+ bias[k] unless ``bias`` is empty) for the rows
    p0 ≤ n·S + s < p1 of ``a`` (≥ N·S, Kp)."""
    channel_rows_to_planes(a, out, p0, p1, bias, np.int64(0), out.shape[1])


@numba.njit(cache=True)
def channel_rows_to_planes(a, out, p0, p1, bias, k0, k1):
    """``rows_to_planes`` of the channels k0 ≤ k < k1 alone (a task that computed only those
    columns of ``a``)."""
    positions = out.shape[2]
    kp = a.shape[1]
    shifted = bias.size > 0
    blocked = k1 - (k1 - k0) % 8  # channels from k0 on in whole 8 × 8 blocks
    p = p0
    while p < p1:
        n = p // positions
        end = min(p1, (n + 1) * positions)  # rows of one image
        whole = p + (end - p) // 8 * 8
        for j0 in range(k0, blocked, 8):
            for q in range(p, whole, 8):
                if shifted:
                    transpose8_shift(a[q:, j0:].ctypes.data, kp,
                                     out[n, j0:, q - n * positions:].ctypes.data, positions,
                                     bias[j0:].ctypes.data)
                else:
                    transpose8(a[q:, j0:].ctypes.data, kp,
                               out[n, j0:, q - n * positions:].ctypes.data, positions)
        for j in range(k0, k1):  # edges: the last (k1 − k0) % 8 channels, the last rows
            first = p if j >= blocked else whole
            for q in range(first, end):
                if shifted:
                    out[n, j, q - n * positions] = a[q, j] + bias[j]
                else:
                    out[n, j, q - n * positions] = a[q, j]
        p = end


NO_SHIFT = np.empty(0, np.float32)  # ``rows_to_planes``' bias when there is none


def shares_to_planes(partial, out):
    """out[n, k, s] = Σ_j partial[j, n·S + s, k] for out (N, K, S), the shares j added in
    order (j = 0 first, as NumPy's sum over the first axis adds them) into partial[0] and laid
    out channels-first (``rows_to_planes``) in the same blocks of 256 rows: the implicit
    GEMM's weight gradient, whose position shares each sum into their own rows (NumPy's sum
    is a pass of its own on one thread: 0.72 ms for 256 → 256 channels' two shares of 3×3
    taps). With one share, a[None], the layout of a's rows alone. The blocks are parallel
    tasks, except a single block (at most 256 rows: a 1×1 layer's, or a small kernel's over
    few channels), which runs on the calling thread: waking the thread pool for one task
    cost more than the task (pw1x1's 8 shares of 256 × 64 sums, AVX-512, after 0.2 ms of
    Python: 119–315 µs)."""
    # NO_SHIFT handed down: read as a module global by compiled code it would be a read-only
    # constant, a type of its own, and rows_to_planes compiled again (test_compiled_once.py)
    if out.shape[0] * out.shape[2] <= _SHARE_BLOCK:
        _shares_to_planes_serial(partial, out, NO_SHIFT)
    else:
        _shares_to_planes_parallel(partial, out, NO_SHIFT)


_SHARE_BLOCK = 256  # rows of partial per task of ``shares_to_planes``


@numba.njit(cache=True)
def _add_shares(partial, t0, t1):
    """partial[0, t0:t1] += partial[j, t0:t1] for j = 1, 2, ... in turn, value by value."""
    first = partial[0]
    for share in range(1, partial.shape[0]):
        other = partial[share]
        for r in range(t0, t1):
            for j in range(first.shape[1]):
                first[r, j] += other[r, j]


@numba.njit(cache=True)
def _shares_to_planes_block(block, partial, out, no_shift):
    total = out.shape[0] * out.shape[2]
    t0, t1 = block * _SHARE_BLOCK, min(total, (block + 1) * _SHARE_BLOCK)
    _add_shares(partial, t0, t1)
    rows_to_planes(partial[0], out, t0, t1, no_shift)


_shares_to_planes_parallel = Loop(_shares_to_planes_block,
                                  lambda partial, out, no_shift:
                                  -(-out.shape[0] * out.shape[2] // _SHARE_BLOCK))


@numba.njit(cache=True)
def _shares_to_planes_serial(partial, out, no_shift):
    total = out.shape[0] * out.shape[2]
    _add_shares(partial, np.int64(0), total)
    rows_to_planes(partial[0], out, np.int64(0), total, no_shift)


def _planes_to_rows(a, out, sums, summed):
    """``image_rows`` over tasks of 64 positions of one image: parallel, or on the calling
    thread for fewer than ``compiled_min_size`` values (the price of waking the pool, which
    ``cnnkit tune`` measures): a layer's weights laid out for the forward kernel each step,
    pw1x1's 64 × 256 of them in 10 µs with the pool awake and 33–159 µs after 0.2–2 ms of
    Python."""
    if a.size < tuning.value("compiled_min_size"):
        _planes_to_rows_serial(a, out, sums, summed)
    else:
        _planes_to_rows_parallel(a, out, sums, summed)


@numba.njit(cache=True)
def _planes_to_rows_task(a, out, sums, summed, task, blocks):
    positions = a.shape[2]
    n, s0 = task // blocks, task % blocks * 64
    total = sums[0]
    if summed:
        total = sums[task]
        total[:] = 0
    image_rows(a, n, s0, min(s0 + 64, positions), out, n * positions, total, summed)


@numba.njit(cache=True)
def _planes_to_rows_block(task, a, out, sums, summed):
    _planes_to_rows_task(a, out, sums, summed, task, -(-a.shape[2] // 64))


_planes_to_rows_parallel = Loop(_planes_to_rows_block,
                                lambda a, out, sums, summed: a.shape[0] * -(-a.shape[2] // 64))


@numba.njit(cache=True)
def _planes_to_rows_serial(a, out, sums, summed):
    blocks = -(-a.shape[2] // 64)
    for task in range(a.shape[0] * blocks):
        _planes_to_rows_task(a, out, sums, summed, task, blocks)


def columns_to_panels(a, out):
    """a (N, K) -> out[j, r, l] = a[r, j·W + l] for out (⌈K / W⌉, N, W), 0 past K: a matrix's
    columns cut into panels of W, nothing transposed (a 1×1 layer's input-gradient weights,
    ``implicit_gemm_numba.panels``). Rows in parallel, or on the calling thread for fewer
    than ``compiled_min_size`` values. 1280 × 320 weights, 2 threads, AVX-512: 51 µs,
    against 158 for NumPy's copy of each panel's columns."""
    if a.size < tuning.value("compiled_min_size"):
        _columns_to_panels_serial(a, out)
    else:
        _columns_to_panels_parallel(a, out)


@numba.njit(cache=True)
def _row_to_panels(a, out, r):
    k = a.shape[1]
    width = out.shape[2]
    for j in range(out.shape[0]):
        row = out[j, r]
        for lane in range(width):
            c = j * width + lane
            row[lane] = a[r, c] if c < k else 0


@numba.njit(parallel=True, cache=True)
def _columns_to_panels_parallel(a, out):
    for r in numba.prange(a.shape[0]):
        _row_to_panels(a, out, r)


@numba.njit(cache=True)
def _columns_to_panels_serial(a, out):
    for r in range(a.shape[0]):
        _row_to_panels(a, out, r)


@numba.njit(cache=True)
def image_rows(a, n, s0, s1, out, row0, total, summed):
    """out[k // W, row0 + s, k % W] = a[n, k, s] for s0 ≤ s < s1, columns k ≥ K of the
    panels zeroed (``planes_to_rows`` for one image's positions s0 to s1, into rows from
    row0 + s0 on); with ``summed``, total[k] += those values (float64), position by position
    for each 8 × 8 block and then the edges."""
    k, positions = a.shape[1], a.shape[2]
    panels, _, width = out.shape
    # 8 × 8 blocks of channels that lie in one panel: all of them when the panels are a
    # multiple of 8 wide (a 12-lane tile's are not: 4 lanes × 3 on SSE or NEON)
    blocked = k - k % 8 if width % 8 == 0 else 0
    whole = s0 + (s1 - s0) // 8 * 8
    # The bias gradient's block sums: each channel's values added in the order of the
    # positions, the 8 × 8 blocks' by the transposes from their registers, then the
    # edges. (A scalar pass over the block's rows afterwards cost more than the transpose
    # itself: alex_c1's dy, 6.2 MB, 0.76 against 0.35 ms with the sums in the registers.)
    for j0 in range(0, blocked, 8):
        for s in range(s0, whole, 8):
            if summed:
                transpose8_sum(a[n, j0:, s:].ctypes.data, positions,
                               out[j0 // width, row0 + s:, j0 % width:].ctypes.data, width,
                               total[j0:].ctypes.data)
            else:
                transpose8(a[n, j0:, s:].ctypes.data, positions,
                           out[j0 // width, row0 + s:, j0 % width:].ctypes.data, width)
    # The edges, panel by panel (an index division per value cost more than the transposes:
    # 4 channels' 12 544 positions took 0.31 ms that way)
    for s in range(s0, s1):
        first = blocked if s < whole else 0
        for panel in range(panels):
            row, c0 = out[panel, row0 + s], panel * width
            for lane in range(min(width, max(0, first - c0)), min(width, max(0, k - c0))):
                row[lane] = a[n, c0 + lane, s]
                if summed:
                    total[c0 + lane] += a[n, c0 + lane, s]
            row[min(width, max(0, k - c0)):] = 0


def planes_to_rows(a, out, with_sums=False):
    """a (N, K, S) -> out[k // W, n·S + s, k % W] = a[n, k, s]: rows in panels of W columns,
    out (Kp / W, N·S, W), columns k ≥ K zeroed (one panel of Kp columns is
    the plain (N·S, Kp) rows; the implicit GEMM's weight kernel reads one panel per tile width,
    ``implicit_gemm_numba.panels``).

    With ``with_sums``, also returns Σ_{n,s} a[n, k, s] per k (float64, summed block by block
    in a fixed order whatever the thread count): a layer's bias gradient, read on the way.
    ``a`` may be a view (a group's channels of a larger array): the transposes need only its
    channels S apart and its positions contiguous, and anything else is copied first."""
    if a.strides[1:] != (a.shape[2] * a.itemsize, a.itemsize):
        a = np.ascontiguousarray(a)
    blocks = -(-a.shape[2] // 64)
    sums = np.empty((a.shape[0] * blocks if with_sums else 1, a.shape[1]), np.float64)
    _planes_to_rows(a, out, sums, with_sums)
    return sums.sum(axis=0) if with_sums else None


@numba.njit(parallel=True, cache=True)
def gather_planes(a, image, source, channel_step, out):
    """out[n, k, s] = a_flat[n·image + source[s] + k·channel_step]: planes gathered from a
    product's rows (channel_step 1) or planes through a table of where each cell lies (the
    pixel shuffle of ``conv.strided_input.subpixel``). Tasks of 1024 cells of one image."""
    n_images, cells = out.shape[0], out.shape[2]
    flat = a.reshape(-1)
    blocks = -(-cells // 1024)
    for task in numba.prange(n_images * blocks):
        n, s0 = task // blocks, task % blocks * 1024
        gather_cells(flat, n * image, source, channel_step, out[n], s0, min(cells, s0 + 1024))


@numba.njit(cache=True)
def gather_cells(flat, start, source, channel_step, planes, s0, s1):
    """planes[k, s] = flat[start + source[s] + k·channel_step] for s0 ≤ s < s1: one image's
    part of ``gather_planes``."""
    for j in range(planes.shape[0]):
        first = start + j * channel_step
        plane = planes[j]
        for s in range(s0, s1):
            plane[s] = flat[first + source[s]]


@numba.njit(cache=True)
def gather_or_zero(values, index, out):
    """out.flat[i] = values[index.flat[i]], or 0 where that index is values.size: a
    product's weights gathered from w flat, zeros where a phase lacks a tap
    (``conv.strided_input.subpixel``)."""
    flat_index, flat_out = index.reshape(-1), out.reshape(-1)
    for i in range(flat_index.size):
        j = flat_index[i]
        flat_out[i] = values[j] if j < values.size else 0


@numba.njit(parallel=True, cache=True)
def weight_rows_to_panels(w, rows, groups, out, check):
    """out[g·P + j, r, l] = w[k, j·W + l, a] (0 past w's C' channels) for the r-th row
    (k, a) = divmod(g·K/G·T + rows[r], T) of group g: a strided input gradient's weights, w
    (K, C', T) with its T taps flat, laid out in the kernel's panels, out (G·P, R, W), with
    the rows of every phase's product in turn (``conv.strided_input.by_phases``). One pass,
    a row per task: a transpose of w followed by a gather of its rows and a copy per panel
    took 2–4 times as long (ResNet-sized weights, 2 threads).

    With ``check``, returns whether w[k] holds no inf or NaN for every k whose tap 0 is among
    the rows (all of w where they name every tap): the input gradient's check of w on the
    way, where a pass of its own read all of w again (``conv.implicit.checks_finite``);
    without, True, and w is only laid out (a 1×1 kernel's input gradient, which no padding
    meets, needs no check; 512 → 512 channels of 3 × 3, 2 threads, laid out in 0.58–0.60 ms
    against 0.73–0.75 with the check on AVX-512, 0.82–0.92 against 1.06–1.09 on AVX2). The
    task that lays out tap 0 of w[k] tests all of w[k], whose lines its gather has just read
    (tested in the gather's loop, or on the panels' rows, the layout took twice as long or,
    on AVX2's narrower panels, up to 2.3 times: BENCHMARKS.md, "The input gradient's weights
    checked as they are laid out")."""
    taps, channels = w.shape[2], w.shape[1]
    panels, width = out.shape[0] // groups, out.shape[2]
    per_group = w.shape[0] // groups * taps
    count = rows.size
    bits = w.reshape(w.shape[0], channels * taps).view(np.uint32)
    nonfinite = 0
    for task in numba.prange(groups * count):
        g, r = task // count, task % count
        k, a = divmod(g * per_group + rows[r], taps)
        for j in range(panels):
            row = out[g * panels + j, r]
            for lane in range(width):
                c = j * width + lane
                row[lane] = w[k, c, a] if c < channels else 0
        if check and a == 0:
            exponent = np.uint32(0)  # the largest exponent field: all ones for inf and NaN
            values = bits[k]
            for i in range(values.size):
                exponent = max(exponent, values[i] & FLOAT32_EXPONENT)
            nonfinite += exponent == FLOAT32_EXPONENT
    return nonfinite == 0
