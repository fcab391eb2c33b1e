"""The register-tiled micro-kernel that every compiled convolution kernel is built on.

    C[c_row[i] + j] (+)= Σ_{t < T} x[base[i] + offset[t]] · B[b_row(t) + j]
        for i < MR rows and j < NR = LANES·NV columns,  b_row(t) = t·ldb  or  b_offset[t]

The MR × NR tile of C stays in MR·NV vector registers while t runs: per t it loads NV vectors
of B, broadcasts MR values of x and issues MR·NV fused multiply-adds. Which product this is
(a convolution's forward pass, either gradient, a single-channel correlation) is decided by
the callers' index tables (``implicit_gemm_numba``, ``correlate_rows_numba``). A lane-wise
form (``lanewise_micro_kernel``) loads x's terms as vectors too, for products whose channels
are on the lanes (``depthwise_lanes_numba``), and its spread form
(``lanewise_spread_micro_kernel``) keeps G sets of accumulators for a grouped layer's weight
gradient. The biased form (``biased_micro_kernel``) adds a bias per row of C as it stores
the tile: the planar kernel's last block of taps. The sliding form (``sliding_micro_kernel``)
takes MR outputs side by side along a row of a stride-1 product, where neighbouring outputs
read the same input values through neighbouring taps, and broadcasts each value once.

It is written in LLVM IR through Numba's ``intrinsic`` because Numba's own loops cannot be made
to hold a 2-D accumulator in registers. Its shape is the target's: LANES float32 lanes per
vector (16 on AVX-512, 8 on AVX2, 4 on NEON and SSE) and MR × NV from the per-ISA table in
``cnnkit.cpu`` (a tile that does not fit the registers spills and runs several times slower).
``llvm.fmuladd`` is a fused multiply-add where the CPU has one and a multiply then an add
where it has not (``llvm.fma`` would call the C library's ``fmaf`` per lane there).
"""
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..cpu import host

LANES = host().lanes  # float32 lanes of one vector register of the compilation target
TILES = host().tiles


def _literals(*values):
    return all(isinstance(v, types.IntegerLiteral) for v in values)


@intrinsic
def micro_kernel(typingctx, taps, x, base, offset, b, ldb, c, c_row, accumulate, rows, vectors):
    """``micro_kernel(T, x, base, offset, b, ldb, c, c_row, accumulate, MR, NV)`` (addresses
    as integers, MR and NV compile-time constants): for i < MR, j < LANES·NV,
    C[c_row[i] + j] (+)= Σ_{t < T} x[base[i] + offset[t]] · b[t·ldb + j]."""
    if not _literals(rows, vectors):
        return None
    codegen = _tile_codegen(rows.literal_value, vectors.literal_value, gathered=False)
    return types.void(*([types.intp] * 9), rows, vectors), codegen


@intrinsic
def gathered_micro_kernel(typingctx, taps, x, base, offset, b, b_offset, c, c_row, accumulate,
                          rows, vectors):
    """``gathered_micro_kernel(T, x, base, offset, b, b_offset, c, c_row, accumulate, MR, NV)``:
    the micro-kernel with B's rows found through a table instead of a stride,
    C[c_row[i] + j] (+)= Σ_{t < T} x[base[i] + offset[t]] · b[b_offset[t] + j]."""
    if not _literals(rows, vectors):
        return None
    codegen = _tile_codegen(rows.literal_value, vectors.literal_value, gathered=True)
    return types.void(*([types.intp] * 9), rows, vectors), codegen


@intrinsic
def biased_micro_kernel(typingctx, taps, x, base, offset, b, b_offset, c, c_row, accumulate,
                        row_bias, rows, vectors):
    """``biased_micro_kernel(T, x, base, offset, b, b_offset, c, c_row, accumulate, row_bias,
    MR, NV)``: ``gathered_micro_kernel`` that adds row i's bias row_bias[i] (the address of
    MR floats) to its sums as it stores them, C[c_row[i] + j] = (C[c_row[i] + j] +)
    Σ_t x[base[i] + offset[t]] · b[b_offset[t] + j] + row_bias[i]: the last tap block of a
    planar product with a bias (``implicit_gemm_numba.planar_tiles``)."""
    if not _literals(rows, vectors):
        return None
    codegen = _tile_codegen(rows.literal_value, vectors.literal_value, gathered=True,
                            biased=True)
    return types.void(*([types.intp] * 10), rows, vectors), codegen


@intrinsic
def sliding_micro_kernel(typingctx, pairs, x, offset, b, ldb, c, c_row, accumulate, rows,
                         vectors, width):
    """``sliding_micro_kernel(P, x, offset, b, ldb, c, c_row, accumulate, MR, NV, KW)`` (MR, NV
    and KW compile-time constants): the micro-kernel for MR outputs side by side along a row
    of a stride-1 product whose taps come in runs of KW neighbours (a kernel's last axis):
    for i < MR, j < LANES·NV,
    C[c_row[i] + j] (+)= Σ_{p < P} Σ_{a < KW} x[offset[p] + i + a] · b[(p·KW + a)·ldb + j].

    Output i's tap a reads the same value as output i + 1's tap a − 1, so each of the
    MR + KW − 1 values of a run is broadcast once and meets KW vectors of B, where the plain
    tile broadcasts MR·KW values: a tile one vector wide issues a load per multiply-add
    there, and AVX-512 cores load two vectors a cycle. Registers: MR·NV accumulators, KW·NV
    of B and one broadcast. The sums run over (p, a) in order, as the plain tile's over its
    taps."""
    if not _literals(rows, vectors, width):
        return None
    codegen = _sliding_codegen(rows.literal_value, vectors.literal_value, width.literal_value)
    return types.void(*([types.intp] * 8), rows, vectors, width), codegen


@intrinsic
def sliding_cells_micro_kernel(typingctx, pairs, x, offset, b, ldb, c, c_row, accumulate, rows,
                               vectors, width, cell):
    """``sliding_cells_micro_kernel(P, x, offset, b, ldb, c, c_row, accumulate, MR, NV, KW,
    CELL)``: ``sliding_micro_kernel`` on a channels-last buffer, whose neighbours along a row
    are cells of CELL floats (a compile-time constant, as MR, NV and KW):
    C[c_row[i] + j] (+)= Σ_{p < P} Σ_{a < KW} x[offset[p] + (i + a)·CELL] · b[(p·KW + a)·ldb + j].
    The lane-wise kernels' broadcast tile along output rows (``depthwise_lanes_numba``), its
    pairs p a kernel row and a group member."""
    if not _literals(rows, vectors, width, cell):
        return None
    codegen = _sliding_codegen(rows.literal_value, vectors.literal_value, width.literal_value,
                               cell.literal_value)
    return types.void(*([types.intp] * 8), rows, vectors, width, cell), codegen


def _sliding_codegen(rows, vectors, width, cell=1):
    def codegen(context, builder, signature, args):
        pairs, x, offset, b, ldb, c, c_row, accumulate = args[:8]
        f32, i64 = ir.FloatType(), ir.IntType(64)
        vec = ir.VectorType(f32, LANES)
        fma = _fma(builder.module, vec)

        def const(v):
            return ir.Constant(i64, v)

        def at(address, kind):
            return builder.inttoptr(address, kind.as_pointer())

        x, b, c = at(x, f32), at(b, f32), at(c, f32)
        offset, c_row = at(offset, i64), at(c_row, i64)
        loop = _AccumulatorLoop(builder, pairs, rows * vectors, vec)
        p, acc = loop.counter, loop.accumulators
        run = builder.gep(x, [builder.load(builder.gep(offset, [p]))])
        b_run = builder.gep(b, [builder.mul(builder.mul(p, const(width)), ldb)])
        b_vec = [[builder.load(builder.bitcast(
            builder.gep(b_run, [builder.add(builder.mul(const(a), ldb), const(LANES * v))]),
            vec.as_pointer()), align=4) for v in range(vectors)] for a in range(width)]
        new = list(acc)
        for q in range(rows + width - 1):  # the run's values, each broadcast once
            term = splat(builder, builder.load(builder.gep(run, [const(q * cell)]), align=4),
                         vec)
            for a in range(width):  # in order of a for each output, as the plain tile sums
                i = q - a
                if 0 <= i < rows:
                    for v in range(vectors):
                        new[i * vectors + v] = builder.call(
                            fma, [term, b_vec[a][v], new[i * vectors + v]])
        total = loop.close(new)
        _store_tile(builder, c, c_row, total, accumulate, rows, vectors, vec)
        return context.get_dummy_value()

    return codegen


class _AccumulatorLoop:
    """A counted loop whose vector accumulators live in phi nodes, so that they stay in
    registers: built open at the builder's position (``counter`` from 0, ``accumulators`` zero
    on entry; no iteration when the count is not positive), its body emitted by the caller,
    then ``close(new)`` with the accumulators' values at the end of the body, which returns
    their values after the loop. LLVM is told not to unroll it (``_not_unrolled``)."""

    def __init__(self, builder, count, size, vec):
        i64 = ir.IntType(64)
        self.builder, self.count, self.zero = builder, count, ir.Constant(vec, None)
        self.entry = builder.block
        self.loop = builder.append_basic_block("tap_loop")
        self.done = builder.append_basic_block("tap_done")
        builder.cbranch(builder.icmp_signed(">", count, ir.Constant(i64, 0)), self.loop,
                        self.done)
        builder.position_at_end(self.loop)
        self.counter = builder.phi(i64)
        self.counter.add_incoming(ir.Constant(i64, 0), self.entry)
        self.accumulators = [builder.phi(vec) for _ in range(size)]
        for a in self.accumulators:
            a.add_incoming(self.zero, self.entry)

    def close(self, new):
        builder, loop = self.builder, self.loop
        following = builder.add(self.counter, ir.Constant(ir.IntType(64), 1))
        self.counter.add_incoming(following, loop)
        for a, n in zip(self.accumulators, new):
            a.add_incoming(n, loop)
        back_edge = builder.cbranch(builder.icmp_signed("<", following, self.count), loop,
                                    self.done)
        back_edge.set_metadata("llvm.loop", _not_unrolled(builder.module))
        builder.position_at_end(self.done)
        total = [builder.phi(n.type) for n in new]
        for s, n in zip(total, new):
            s.add_incoming(self.zero, self.entry)
            s.add_incoming(n, loop)
        return total


def splat(builder, value, vec):
    """``value`` (a float, or an integer for a vector of integers) in every lane of a vector
    of LANES: a broadcast."""
    i32 = ir.IntType(32)
    undef = ir.Constant(vec, ir.Undefined)
    return builder.shuffle_vector(builder.insert_element(undef, value, ir.Constant(i32, 0)),
                                  undef, ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))


def _fma(module, vec):
    name = f"llvm.fmuladd.v{LANES}f32"
    return module.globals.get(name) or ir.Function(module, ir.FunctionType(vec, [vec] * 3),
                                                   name=name)


def _store_tile(builder, c, c_row, total, accumulate, rows, vectors, vec, row_bias=None):
    """Row i's ``vectors`` sums stored to C[c_row[i]:], added to what is there when
    ``accumulate``, and plus row_bias[i] (a pointer to MR floats) when given."""
    i64 = ir.IntType(64)
    add = builder.icmp_signed("!=", accumulate, ir.Constant(i64, 0))
    for i in range(rows):
        row = builder.gep(c, [builder.load(builder.gep(c_row, [ir.Constant(i64, i)]))])
        if row_bias is not None:
            bias = splat(builder, builder.load(builder.gep(row_bias, [ir.Constant(i64, i)]),
                                               align=4), vec)
        for v in range(vectors):
            target = builder.bitcast(builder.gep(row, [ir.Constant(i64, LANES * v)]),
                                     vec.as_pointer())
            s = total[i * vectors + v]
            summed = builder.select(add, builder.fadd(builder.load(target, align=4), s), s)
            if row_bias is not None:
                summed = builder.fadd(summed, bias)
            builder.store(summed, target, align=4)


@intrinsic
def lanewise_micro_kernel(typingctx, taps, x, base, offset, b, ldb, c, c_row, accumulate, rows,
                          vectors, width):
    """``lanewise_micro_kernel(T, x, base, offset, b, ldb, c, c_row, accumulate, MR, NV, G)``:
    the micro-kernel with x read as vectors too, lane by lane instead of broadcast, each lane
    summing over the G lanes of its group (G divides LANES; G = 1: its own lane):
    C[c_row[i] + j] (+)= Σ_{t < T} Σ_{g < G} x[base[i] + offset[t] + j − j % G + g] ·
    b[t·ldb + g·LANES·NV + j]. A product of channels-last operands whose channels are
    independent (a depthwise layer) or meet only within groups of G (a grouped layer of G
    channels per group), ``depthwise_lanes_numba``; x's G lane permutations are made in
    registers from one load. A group that fills the block's NV vectors (``broadcasts``: the
    block is one group) has broadcasts of x's G values for its permutations: the caller passes
    the (tap, member) pairs as T, offset[(t, g)] = offset_t + g and b's rows likewise, and the
    tile is ``micro_kernel``'s with NV = G / LANES (``wide_vectors``)."""
    if not _literals(rows, vectors, width):
        return None
    if broadcasts(width.literal_value, vectors.literal_value):
        codegen = _tile_codegen(rows.literal_value, wide_vectors(width.literal_value), False)
    else:
        codegen = _tile_codegen(rows.literal_value, vectors.literal_value, gathered=False,
                                lanewise=True, width=width.literal_value)
    return types.void(*([types.intp] * 9), rows, vectors, width), codegen


def spans_vectors(width):
    """Whether a group of ``width`` lanes is wider than a vector: its lane permutations are
    broadcasts, and the weight gradient's lane-wise kernel compiles to ``micro_kernel``'s tile
    over (tap, member) pairs, NV = ``wide_vectors`` (the forward pass and input gradient do
    from a vector's width on: ``broadcasts``)."""
    return width > LANES


def broadcasts(width, vectors):
    """Whether ``lanewise_micro_kernel`` takes a group of ``width`` lanes in blocks of
    ``vectors`` vectors as the broadcast tile over (tap, member) pairs: where the group fills
    the block (G ≥ LANES·NV), as AVX-512's groups of 16 channels and AVX2's of 8 do. Each of
    x's G lanes is then loaded as a broadcast (a load), where the lane-wise tile makes G
    permutations of one loaded vector in registers (shuffles, which on AVX-512 cores share a
    port with the 512-bit multiply-adds). 32 groups of 16 channels, 16 images of 7 × 7,
    forward pass: 0.76–0.79 ms against 0.85–0.88 (AVX-512; BENCHMARKS.md, "Groups that fill a
    vector: broadcasts"). The weight gradient's tile (``lanewise_spread_micro_kernel``) keeps
    the permutations up to a vector's width: there the broadcast tile measured slower."""
    return width >= LANES * vectors


def wide_vectors(width):
    """NV of the broadcast tile of a group of ``width`` lanes (``broadcasts``,
    ``spans_vectors``): the group's vectors."""
    return width // LANES


@intrinsic
def lanewise_spread_micro_kernel(typingctx, taps, x, base, offset, b, ldb, c, c_row, accumulate,
                                 rows, vectors, width, rotate):
    """``lanewise_spread_micro_kernel(T, x, base, offset, b, ldb, c, c_row, accumulate, MR, NV,
    G, ROTATE)``: the lane-wise micro-kernel with G sets of accumulators, for the weight
    gradient of a grouped layer of G channels per group. With ROTATE 1, set r < G sums x
    against B's vectors rotated by r within each group of G lanes (one shuffle per B vector
    and rotation, shared by the MR rows):
    C[c_row[i] + r·LANES·NV + j] (+)= Σ_{t < T} x[base[i] + offset[t] + j] · b[t·ldb + j − j % G
    + (j + r) % G]; with 0, set g < G sums x's permutation g against B as it is (one
    shuffle per multiply-add, unless it folds into x's load):
    C[c_row[i] + g·LANES·NV + j] (+)= Σ_{t < T} x[base[i] + offset[t] + j − j % G + g] ·
    b[t·ldb + j] (G = 1: ``lanewise_micro_kernel``'s sum). A group wider than a vector (ROTATE
    0) is ``micro_kernel``'s tile as in ``lanewise_micro_kernel``, the caller's rows the (tap,
    member) pairs: C[c_row[i] + j] (+)= Σ_{t < T} x[base[i] + offset[t]] · b[t·ldb + j]."""
    if not _literals(rows, vectors, width, rotate):
        return None
    if spans_vectors(width.literal_value):
        codegen = _tile_codegen(rows.literal_value, wide_vectors(width.literal_value), False)
        return types.void(*([types.intp] * 9), rows, vectors, width, rotate), codegen
    codegen = _tile_codegen(rows.literal_value, vectors.literal_value, gathered=False,
                            lanewise=True, width=width.literal_value,
                            spread="rotate" if rotate.literal_value else "permute")
    return types.void(*([types.intp] * 9), rows, vectors, width, rotate), codegen


@intrinsic
def prefetch(typingctx, address):
    """``prefetch(address)``: ask for the cache line at ``address`` (an integer) to be brought
    into L2 (``llvm.prefetch``, read, locality 2), without waiting for it: a task that will
    soon copy memory the hardware prefetchers cannot foresee has it fetched while its
    multiply-adds run."""
    return types.void(types.intp), _prefetch_codegen(write=0, locality=2)


@intrinsic
def prefetch_for_store(typingctx, address):
    """``prefetch_for_store(address)``: ask for the cache line at ``address`` to be brought
    into the cache to be written (``llvm.prefetch``, write, locality 3: ``prefetchw`` where
    the CPU has it). A store to a line that is not in cache first reads the line from
    memory, and the store waits for it; asked a tile's multiply-adds before the tile is
    stored, the line is there by then (``implicit_gemm_numba.planar_tiles``)."""
    return types.void(types.intp), _prefetch_codegen(write=1, locality=3)


def _prefetch_codegen(write, locality):
    def codegen(context, builder, signature, args):
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        name = "llvm.prefetch.p0i8"
        function = builder.module.globals.get(name) or ir.Function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name=name)
        builder.call(function, [builder.inttoptr(args[0], i8p), ir.Constant(i32, write),
                                ir.Constant(i32, locality), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return codegen


def _tile_codegen(rows, vectors, gathered, lanewise=False, width=1, spread=None, biased=False):
    """LLVM IR of the register tile: MR·NV vector accumulators live in phi nodes across the
    tap loop, so they stay in registers; B's row t starts at t·ldb, or at b_offset[t] when
    ``gathered``; x's terms are broadcast, or with ``lanewise`` vectors of their own, each
    multiplied as it is (``width`` 1) or in ``width`` lane permutations, one per member of a
    lane group, against B's ``width``·NV vectors of the tap, or with ``spread`` against B's NV
    vectors, each permutation of x ("permute") or rotation of B ("rotate") into a set of
    accumulators of its own (MR·NV·width). ``biased``: a tenth argument, the address of MR
    floats, row i's added to its sums as they are stored."""
    sets = width if spread else 1  # accumulator sets per row, stored width·NV vectors apart

    def codegen(context, builder, signature, args):
        taps, x, base, offset, b, b_step, c, c_row, accumulate = args[:9]
        f32, i64, i32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)
        vec = ir.VectorType(f32, LANES)
        module = builder.module
        fma = _fma(module, vec)

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
        undef = ir.Constant(vec, ir.Undefined)
        loop = _AccumulatorLoop(builder, taps, rows * sets * vectors, vec)
        t, acc = loop.counter, loop.accumulators
        shift = builder.load(builder.gep(offset, [t]))
        b_start = (builder.load(builder.gep(b_step, [t])) if gathered
                   else builder.mul(t, b_step))
        b_row = builder.gep(b, [b_start])
        b_vec = [builder.load(builder.bitcast(builder.gep(b_row, [const(LANES * v)]),
                                              vec.as_pointer()), align=4)
                 for v in range(vectors * (1 if spread else width))]  # member g's at g·NV
        masks = [ir.Constant(ir.VectorType(i32, LANES),
                             [lane - lane % width + g for lane in range(LANES)])
                 for g in range(width)]
        rotate = spread == "rotate"
        if rotate:
            new = _rotated_terms(builder, fma, x_rows, shift, b_vec, acc, rows, vectors, width)
        else:
            new = []
        for i in range(0 if rotate else rows):
            x_at = builder.gep(x_rows[i], [shift])
            if lanewise:
                x_vec = [builder.load(builder.bitcast(builder.gep(x_at, [const(LANES * v)]),
                                                      vec.as_pointer()), align=4)
                         for v in range(vectors)]
            else:
                x_vec = [splat(builder, builder.load(x_at, align=4), vec)] * vectors
            if spread:  # set g, vector v: x's permutation g times B's vector v
                new += [builder.call(fma, [x_vec[v] if width == 1 else builder.shuffle_vector(
                    x_vec[v], undef, masks[g]), b_vec[v], acc[(i * width + g) * vectors + v]])
                        for g in range(width) for v in range(vectors)]
                continue
            for v in range(vectors):
                total = acc[i * vectors + v]
                for g in range(width):
                    term = x_vec[v] if width == 1 else builder.shuffle_vector(
                        x_vec[v], undef, masks[g])
                    total = builder.call(fma, [term, b_vec[g * vectors + v], total])
                new.append(total)
        total = loop.close(new)
        row_bias = at(args[9], f32) if biased else None
        _store_tile(builder, c, c_row, total, accumulate, rows, sets * vectors, vec, row_bias)
        return context.get_dummy_value()

    return codegen


def _rotated_terms(builder, fma, x_rows, shift, b_vec, acc, rows, vectors, width):
    """The spread tile's multiply-adds for one t where it rotates B:
    acc[(i·G + r)·NV + v] += x_i's vector v ⊙ B's
    vector v rotated by r within each group of G lanes (lane j takes lane j − j % G + (j + r)
    % G). The MR·NV x vectors are loaded first and each rotation of B made once for all rows,
    so a t costs G − 1 shuffles per B vector, not one per multiply-add."""
    vec = ir.VectorType(ir.FloatType(), LANES)
    i32, i64 = ir.IntType(32), ir.IntType(64)
    undef = ir.Constant(vec, ir.Undefined)
    x_vec = [[builder.load(builder.bitcast(builder.gep(builder.gep(x_rows[i], [shift]),
                                                       [ir.Constant(i64, LANES * v)]),
                                           vec.as_pointer()), align=4)
              for v in range(vectors)] for i in range(rows)]
    new = list(acc)
    for r in range(width):
        turn = ir.Constant(ir.VectorType(i32, LANES),
                           [lane - lane % width + (lane + r) % width for lane in range(LANES)])
        for v in range(vectors):
            turned = b_vec[v] if r == 0 else builder.shuffle_vector(b_vec[v], undef, turn)
            for i in range(rows):
                k = (i * width + r) * vectors + v
                new[k] = builder.call(fma, [x_vec[i][v], turned, acc[k]])
    return new


def _not_unrolled(module):
    """Loop metadata that keeps LLVM from unrolling the tap loop (``llvm.loop.unroll.disable``,
    on a self-referencing node, as loop IDs are). Unrolled, the scheduler of some targets
    hoists the next tap's MR broadcasts above this tap's multiply-adds, MR more live vectors
    than the register budget in ``cnnkit.cpu`` counts, and the tile spills. LLVM did so for
    ``znver4``, ``znver3`` and ``alderlake`` (not for ``skylake-avx512`` or ``haswell``): on
    one Zen 4 core, ``znver4``'s 10 × 32 tile ran at 35 GFLOP/s against 87 not unrolled, and
    ``znver3``'s 8 × 8 tile at 46–51 against 88–89 (``python -m cnnkit.bench.tiles``)."""
    disable = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
    # the module's one loop ID: the first call makes the node and points its first operand at
    # itself; later calls get the same node back from the module's cache
    loop_id = module.add_metadata([disable, disable])
    loop_id.operands = (loop_id, disable)
    return loop_id
