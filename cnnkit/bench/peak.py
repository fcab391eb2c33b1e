"""The machine's float32 arithmetic peak, measured: a fused multiply-add loop in registers.

A layer's GFLOP/s means little without the ceiling it is measured against. NumPy's sgemm is
one ceiling (what a tuned library reaches with memory traffic), but it depends on which BLAS
kernels are loaded (OpenBLAS can be held to older ones by ``OPENBLAS_CORETYPE``). The
physical limit is what the FMA units can do with no memory at all: ``CHAINS`` independent
vector accumulators, each ``acc = acc · m + a`` per iteration, on every thread at once.

Why ``CHAINS = 12``: a fused multiply-add has a latency of about 4 cycles and a core issues
up to 2 per cycle, so at least 8 must be in flight; 12 leaves margin and, with the two
operand vectors, fits AVX2's 16 registers (AVX-512 has 32), so nothing spills. The vector
width is the compilation target's (``cnnkit.cpu.host().lanes``: 16 float32 on AVX-512, 8 on
AVX2, 4 on SSE and NEON), so ``NUMBA_CPU_NAME=haswell`` measures the AVX2 peak of an AVX-512
machine. The loop is LLVM IR written through Numba's ``intrinsic`` (as the implicit GEMM's
micro-kernel is) so the accumulators are phi nodes LLVM keeps in registers; ``assembly()``
shows the ``vfmadd…ps`` on zmm or ymm registers.

    python -m cnnkit.bench.peak     # prints the peak on this target and the loop's assembly
"""
import time

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

import cnnkit.cpu

CHAINS = 12
ITERATIONS = 1 << 22  # per thread and run: 12 · 4M vector FMAs, 10–30 ms


@intrinsic
def _fma_chains(typingctx, iterations, seed):
    """``_fma_chains(n, seed)``: CHAINS vector accumulators, each updated n times by
    ``acc = acc · m + a`` (one fused multiply-add); returns one lane's sum over the chains
    so the loop cannot be removed. m and a come from ``seed`` at run time, not constants."""
    lanes = cnnkit.cpu.host().lanes

    def codegen(context, builder, signature, args):
        n, seed = args
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(f32, lanes)
        name = f"llvm.fmuladd.v{lanes}f32"
        fma = builder.module.globals.get(name) or ir.Function(
            builder.module, ir.FunctionType(vec, [vec] * 3), name=name)
        undef = ir.Constant(vec, ir.Undefined)
        splat_mask = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)

        def splat(value):
            return builder.shuffle_vector(
                builder.insert_element(undef, value, ir.Constant(i32, 0)), undef, splat_mask)
        # m = 1 − seed·2⁻²⁰ and a = seed·2⁻¹⁰ keep every accumulator near a/(1 − m) = 2¹⁰:
        # no overflow, no denormals (which would slow the units down).
        m = splat(builder.fsub(ir.Constant(f32, 1.0), builder.fmul(seed, ir.Constant(f32, 2**-20))))
        a = splat(builder.fmul(seed, ir.Constant(f32, 2**-10)))
        start = [splat(builder.fadd(seed, ir.Constant(f32, float(i)))) for i in range(CHAINS)]
        entry = builder.block
        loop = builder.append_basic_block("fma_loop")
        done = builder.append_basic_block("fma_done")
        builder.cbranch(builder.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)

        builder.position_at_end(loop)
        i = builder.phi(i64)
        i.add_incoming(ir.Constant(i64, 0), entry)
        acc = [builder.phi(vec) for _ in range(CHAINS)]
        for phi, value in zip(acc, start):
            phi.add_incoming(value, entry)
        new = [builder.call(fma, [phi, m, a]) for phi in acc]
        i_next = builder.add(i, ir.Constant(i64, 1))
        i.add_incoming(i_next, loop)
        for phi, value in zip(acc, new):
            phi.add_incoming(value, loop)
        builder.cbranch(builder.icmp_signed("<", i_next, n), loop, done)

        builder.position_at_end(done)
        finals = [builder.phi(vec) for _ in range(CHAINS)]  # LLVM: phis first in a block
        total = ir.Constant(f32, 0.0)
        for final, value, first in zip(finals, new, start):
            final.add_incoming(first, entry)
            final.add_incoming(value, loop)
            total = builder.fadd(total, builder.extract_element(final, ir.Constant(i32, 0)))
        return total

    return types.float32(types.int64, types.float32), codegen


@njit(parallel=True)
def _fma_on_every_thread(iterations, seeds, out):
    """out[t] = _fma_chains(iterations, seeds[t]) for t < len(seeds), one per thread."""
    for t in prange(seeds.shape[0]):
        out[t] = _fma_chains(iterations, seeds[t])


@njit
def _fma_on_one_thread(iterations, seed):
    return _fma_chains(iterations, seed)


def flops_per_iteration():
    """float32 operations of one loop iteration on one thread (an FMA counts as two)."""
    return 2 * CHAINS * cnnkit.cpu.host().lanes


def measure(threads=None, repeats=5, iterations=ITERATIONS):
    """Best of ``repeats`` runs of the FMA loop on ``threads`` threads at once (default:
    Numba's thread count). Returns {'gflops_total', 'gflops_per_core', 'threads', 'lanes',
    'chains', 'iterations'}; per core = total / threads, each thread having a core."""
    import numba
    threads = threads or numba.get_num_threads()
    seeds = np.linspace(0.5, 1.0, threads).astype(np.float32)
    out = np.empty(threads, np.float32)
    _fma_on_every_thread(1, seeds, out)  # compile and start the thread pool
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        _fma_on_every_thread(iterations, seeds, out)
        best = min(best, time.perf_counter() - start)
    if not np.all(np.isfinite(out)):
        raise RuntimeError("the FMA loop's accumulators left the finite range")
    total = threads * iterations * flops_per_iteration() / best / 1e9
    return {"gflops_total": total, "gflops_per_core": total / threads, "threads": threads,
            "lanes": cnnkit.cpu.host().lanes, "chains": CHAINS, "iterations": iterations}


def assembly():
    """The FMA loop's assembly as compiled for the current target (single-thread version;
    compiled, not run, so any target LLVM knows can be inspected)."""
    signature = (types.int64, types.float32)
    _fma_on_one_thread.compile(signature)
    return _fma_on_one_thread.inspect_asm(signature)


def fma_registers(asm):
    """Register names ('zmm', 'ymm', 'xmm', 'v') of the fused multiply-adds in ``asm``."""
    import re
    return sorted(set(re.findall(r"\bv?fn?madd\w*\s+%?(zmm|ymm|xmm)", asm)) |
                  ({"v"} if re.search(r"\bfmla\s+v\d+", asm) else set()))


if __name__ == "__main__":
    peak = measure()
    print(f"{cnnkit.cpu.host().summary()}\nFMA peak: {peak['gflops_per_core']:.1f} GFLOP/s per "
          f"core, {peak['gflops_total']:.1f} on {peak['threads']} threads "
          f"({CHAINS} chains × {peak['lanes']} lanes); FMA registers: "
          f"{', '.join(fma_registers(assembly())) or 'none'}")
