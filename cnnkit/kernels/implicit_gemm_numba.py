"""Implicit-GEMM convolution kernels (Numba + a register-blocked LLVM micro-kernel).

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
             flipped and its channel axes swapped: the notes' full correlation of dL/dy
             with the flipped kernel.

The micro-kernel keeps an MR × NR tile of C in vector registers (NR = 16·NV float32 lanes,
AVX-512 width) while t runs: per t it loads NV vectors of B and broadcasts MR values of X,
MR·NV fused multiply-adds. It is written in LLVM IR through Numba's ``intrinsic`` because
Numba's own loops cannot be made to hold a 2-D accumulator in registers. Why not BLAS:
NumPy's OpenBLAS on this machine runs AVX2 kernels (OPENBLAS_CORETYPE=Haswell, 208–218
GFLOP/s in the bench), and an im2col GEMM also pays the column copies; this kernel ran the bench's
res3x3 layer at 238–255 GFLOP/s, above NumPy's own sgemm here (BENCHMARKS.md). On CPUs without AVX-512 LLVM splits the
16-lane vectors into narrower ones: same results, lower speed.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

LANES = 16  # float32 lanes of one vector register (AVX-512)
# Rows MR of the register tile for NV vectors per row: MR·NV accumulators plus NV operands
# must fit the 32 vector registers, and MR base addresses the integer registers (MR = 12
# with NV = 2 spilled them: 150 GFLOP/s against 260–450 for these on the forward kernel alone,
# in a one-off timing of three 3×3 layers).
TILE_ROWS = (0, 8, 8, 0, 6)  # indexed by NV (1, 2 or 4)
# Taps per pass over the output tiles in the forward kernel: the B block (taps × NR floats)
# then stays in L1 while every tile of a chunk reuses it.
_TAP_BLOCK = 128
_POSITION_BLOCK = 128  # output positions per B block in the weight kernel, for the same reason
# (MR, NV) of the planar (channels-first) kernel: four output channels × 64 positions measured
# fastest of (4 or 6) × (32 or 64) on the layers where this orientation wins (see conv_implicit).
PLANAR_ROWS, PLANAR_VECTORS = 4, 4


@intrinsic
def micro_kernel(typingctx, taps, x, base, offset, b, ldb, c, c_row, accumulate, vectors):
    """``micro_kernel(T, x, base, offset, b, ldb, c, c_row, accumulate, NV)`` (addresses as
    integers, NV a compile-time constant): for i < MR = TILE_ROWS[NV], j < 16·NV,
    C[c_row[i] + j] (+)= Σ_{t < T} x[base[i] + offset[t]] · b[t·ldb + j]."""
    if not isinstance(vectors, types.IntegerLiteral):
        return None
    vectors = vectors.literal_value
    codegen = _tile_codegen(TILE_ROWS[vectors], vectors, gathered=False)
    return types.void(*([types.intp] * 9), types.IntegerLiteral(vectors)), codegen


@intrinsic
def gathered_micro_kernel(typingctx, taps, x, base, offset, b, b_offset, c, c_row, accumulate,
                          rows, vectors):
    """``gathered_micro_kernel(T, x, base, offset, b, b_offset, c, c_row, accumulate, MR, NV)``:
    the micro-kernel with B's rows found through a table instead of a stride,
    C[c_row[i] + j] (+)= Σ_{t < T} x[base[i] + offset[t]] · b[b_offset[t] + j]
    for i < MR, j < 16·NV (MR and NV compile-time constants)."""
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(vectors, types.IntegerLiteral)):
        return None
    codegen = _tile_codegen(rows.literal_value, vectors.literal_value, gathered=True)
    literals = (types.IntegerLiteral(rows.literal_value),
                types.IntegerLiteral(vectors.literal_value))
    return types.void(*([types.intp] * 9), *literals), codegen


def _tile_codegen(rows, vectors, gathered):
    """LLVM IR of the register tile: MR·NV vector accumulators live in phi nodes across the
    tap loop, so they stay in registers; B's row t starts at t·ldb, or at b_offset[t] when
    ``gathered``."""

    def codegen(context, builder, signature, args):
        taps, x, base, offset, b, b_step, c, c_row, accumulate = args[:9]
        f32, i64, i32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)
        vec = ir.VectorType(f32, LANES)
        module = builder.module
        fma = module.globals.get("llvm.fma.v16f32") or ir.Function(
            module, ir.FunctionType(vec, [vec] * 3), name="llvm.fma.v16f32")

        def const(v):
            return ir.Constant(i64, v)

        def at(address, kind):
            return builder.inttoptr(address, kind.as_pointer())

        x, b, c = at(x, f32), at(b, f32), at(c, f32)
        base, offset, c_row = at(base, i64), at(offset, i64), at(c_row, i64)
        if gathered:
            b_step = at(b_step, i64)
        x_rows = [builder.gep(x, [builder.load(builder.gep(base, [const(i)]))])
                  for i in range(rows)]
        zero, undef = ir.Constant(vec, None), ir.Constant(vec, ir.Undefined)
        splat_mask = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
        entry = builder.block
        loop = builder.append_basic_block("tap_loop")
        done = builder.append_basic_block("tap_done")
        builder.cbranch(builder.icmp_signed(">", taps, const(0)), loop, done)

        builder.position_at_end(loop)
        t = builder.phi(i64)
        t.add_incoming(const(0), entry)
        acc = [builder.phi(vec) for _ in range(rows * vectors)]
        for a in acc:
            a.add_incoming(zero, entry)
        shift = builder.load(builder.gep(offset, [t]))
        b_start = (builder.load(builder.gep(b_step, [t])) if gathered
                   else builder.mul(t, b_step))
        b_row = builder.gep(b, [b_start])
        b_vec = [builder.load(builder.bitcast(builder.gep(b_row, [const(LANES * v)]),
                                              vec.as_pointer()), align=4)
                 for v in range(vectors)]
        new = []
        for i in range(rows):
            value = builder.load(builder.gep(x_rows[i], [shift]), align=4)
            splat = builder.shuffle_vector(
                builder.insert_element(undef, value, ir.Constant(i32, 0)), undef, splat_mask)
            new += [builder.call(fma, [splat, b_vec[v], acc[i * vectors + v]])
                    for v in range(vectors)]
        t_next = builder.add(t, const(1))
        t.add_incoming(t_next, loop)
        for a, n in zip(acc, new):
            a.add_incoming(n, loop)
        builder.cbranch(builder.icmp_signed("<", t_next, taps), loop, done)

        builder.position_at_end(done)
        total = [builder.phi(vec) for _ in range(rows * vectors)]
        for s, n in zip(total, new):
            s.add_incoming(zero, entry)
            s.add_incoming(n, loop)
        add = builder.icmp_signed("!=", accumulate, const(0))
        for i in range(rows):
            row = builder.gep(c, [builder.load(builder.gep(c_row, [const(i)]))])
            for v in range(vectors):
                target = builder.bitcast(builder.gep(row, [const(LANES * v)]),
                                         vec.as_pointer())
                s = total[i * vectors + v]
                summed = builder.select(add, builder.fadd(builder.load(target, align=4), s), s)
                builder.store(summed, target, align=4)
        return context.get_dummy_value()

    return codegen


@numba.njit(parallel=True, cache=True)
def forward(x, wt, offset, corner, out, vectors, chunks):
    """out[p, :] = Σ_t x_flat[corner[p] + offset[t]] · wt[t, :] for p < len(corner).
    x: the padded input, any shape, C-contiguous; wt (T, Kp), Kp a multiple of the tile
    width; out (P + rows, Kp) (the extra rows take a ragged last tile's spill); the tiles are
    split into ``chunks`` parallel tasks."""
    numba.literally(vectors)
    rows, width = TILE_ROWS[vectors], LANES * vectors
    taps, kp = wt.shape
    positions = corner.size
    tiles = (positions + rows - 1) // rows
    chunks = max(1, min(tiles, chunks))
    x_flat = x.reshape(-1)
    for chunk in numba.prange(chunks):
        first, last = chunk * tiles // chunks, (chunk + 1) * tiles // chunks
        base = np.empty((last - first, rows), np.int64)
        c_row = np.empty((last - first, rows), np.int64)
        for tile in range(first, last):
            for i in range(rows):
                p = tile * rows + i
                inside = p < positions
                base[tile - first, i] = corner[p] if inside else 0
                c_row[tile - first, i] = (p if inside else positions) * kp
        for t0 in range(0, taps, _TAP_BLOCK):
            block = min(_TAP_BLOCK, taps - t0)
            for j0 in range(0, kp, width):
                for tile in range(last - first):
                    micro_kernel(block, x_flat.ctypes.data, base[tile].ctypes.data,
                           offset[t0:].ctypes.data, wt[t0:, j0:].ctypes.data, kp,
                           out[:, j0:].ctypes.data, c_row[tile].ctypes.data, 1 if t0 else 0, vectors)

@numba.njit(parallel=True, cache=True)
def weight(x, dy, offset, corner, partial, vectors):
    """partial[s, t, :] = Σ_{p in share s} x_flat[offset[t] + corner[p]] · dy[p, :];
    the caller sums over s. dy (P, Kp) channels-last; partial (S, T + rows, Kp)."""
    numba.literally(vectors)
    rows, width = TILE_ROWS[vectors], LANES * vectors
    positions, kp = dy.shape
    taps = offset.size
    shares = partial.shape[0]
    tiles = (taps + rows - 1) // rows
    x_flat = x.reshape(-1)
    for share in numba.prange(shares):
        base = np.empty((tiles, rows), np.int64)
        c_row = np.empty((tiles, rows), np.int64)
        for tile in range(tiles):
            for i in range(rows):
                t = tile * rows + i
                base[tile, i] = offset[t] if t < taps else 0
                c_row[tile, i] = (t if t < taps else taps) * kp
        out = partial[share]
        out[:] = 0
        first = share * positions // shares
        last = (share + 1) * positions // shares
        for p0 in range(first, last, _POSITION_BLOCK):
            block = min(_POSITION_BLOCK, last - p0)
            for j0 in range(0, kp, width):
                for tile in range(tiles):
                    micro_kernel(block, x_flat.ctypes.data, base[tile].ctypes.data,
                           corner[p0:].ctypes.data, dy[p0:, j0:].ctypes.data, kp,
                           out[:, j0:].ctypes.data, c_row[tile].ctypes.data, 1, vectors)


@numba.njit(parallel=True, cache=True)
def planar(x_flat, n_images, image, w_rows, offset, out, length):
    """The transposed orientation, output channels on the tile's rows and positions on its
    lanes, so y comes out channels-first (NCHW) with no transpose (stride 1 only):
    out[n, k, p] = Σ_t w_rows[k, t] · x_flat[n·image + p + offset[t]] for p < length, in the
    padded input's flat positions (the caller crops the border columns). w_rows (Kp, T), Kp a
    multiple of PLANAR_ROWS; out (≥ n_images, Kp, Lp), Lp a multiple of the tile width; reads
    reach x_flat[(n_images − 1)·image + Lp + max(offset)]."""
    rows, width = PLANAR_ROWS, LANES * PLANAR_VECTORS
    kp, taps = w_rows.shape
    lp = out.shape[2]
    position_tiles = (length + width - 1) // width
    tap_index = np.arange(taps)
    out_flat, w_flat = out.reshape(-1), w_rows.reshape(-1)
    c_row = np.empty(rows, np.int64)
    for i in range(rows):
        c_row[i] = i * lp
    for task in numba.prange(n_images * position_tiles):
        n, p0 = task // position_tiles, task % position_tiles * width
        base = np.empty(rows, np.int64)
        for t0 in range(0, taps, _TAP_BLOCK):
            block = min(_TAP_BLOCK, taps - t0)
            for k0 in range(0, kp, rows):
                for i in range(rows):
                    base[i] = (k0 + i) * taps + t0
                gathered_micro_kernel(block, w_flat.ctypes.data, base.ctypes.data,
                                      tap_index.ctypes.data, x_flat[n * image + p0:].ctypes.data,
                                      offset[t0:].ctypes.data,
                                      out_flat[(n * kp + k0) * lp + p0:].ctypes.data,
                                      c_row.ctypes.data, 1 if t0 else 0, PLANAR_ROWS,
                                      PLANAR_VECTORS)


# One entry point per vector count: a literal NV from compiled code costs nothing, while
# ``numba.literally`` at a call from Python re-dispatches on every call (~20 ms).
@numba.njit(cache=True)
def forward_1(x, wt, offset, corner, out, chunks):
    forward(x, wt, offset, corner, out, 1, chunks)


@numba.njit(cache=True)
def forward_2(x, wt, offset, corner, out, chunks):
    forward(x, wt, offset, corner, out, 2, chunks)


@numba.njit(cache=True)
def forward_4(x, wt, offset, corner, out, chunks):
    forward(x, wt, offset, corner, out, 4, chunks)


@numba.njit(cache=True)
def weight_1(x, dy, offset, corner, partial):
    weight(x, dy, offset, corner, partial, 1)


@numba.njit(cache=True)
def weight_2(x, dy, offset, corner, partial):
    weight(x, dy, offset, corner, partial, 2)


@numba.njit(cache=True)
def weight_4(x, dy, offset, corner, partial):
    weight(x, dy, offset, corner, partial, 4)


ENTRY = {1: (forward_1, weight_1), 2: (forward_2, weight_2), 4: (forward_4, weight_4)}


def tile(channels):
    """(MR, NV, channels rounded up to the tile width 16·NV) for an output-channel count: the
    widest tile that wastes little (a 64-wide tile for 16 channels would compute 48 zeros)."""
    vectors = 4 if channels > 32 else 2 if channels > 16 else 1
    width = LANES * vectors
    return TILE_ROWS[vectors], vectors, -(-channels // width) * width


@numba.njit(parallel=True, cache=True)
def channels_last(a, out):
    """a (N, K, S) -> out[n·S + s, k] = a[n, k, s] (out (N·S, Kp), extra columns zeroed)."""
    n_images, k, positions = a.shape
    kp = out.shape[1]
    for task in numba.prange(n_images * positions // 64 + 1):
        for p in range(task * 64, min((task + 1) * 64, n_images * positions)):
            n, s = p // positions, p % positions
            row = out[p]
            for j in range(k):
                row[j] = a[n, j, s]
            for j in range(k, kp):
                row[j] = 0


@numba.njit(parallel=True, cache=True)
def channels_first(a, out):
    """a (≥ N·S, Kp) channels-last rows -> out (N, K, S): out[n, k, s] = a[n·S + s, k]."""
    n_images, k, positions = out.shape
    for task in numba.prange(n_images * k):
        n, j = task // k, task % k
        dst = out[n, j]
        for s in range(positions):
            dst[s] = a[n * positions + s, j]
