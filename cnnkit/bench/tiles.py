"""Re-measure the register-tile table (``cnnkit.cpu.TILES``) on this machine.

    python -m cnnkit.bench.tiles [--threads 1] [--repeats 5]
    NUMBA_CPU_NAME=haswell python -m cnnkit.bench.tiles      # the AVX2 row, on any x86 host

Times the implicit GEMM's forward kernel (``implicit_gemm_numba.forward``, the product alone:
no padding, weight or layout copies) on a GEMM-shaped 3×3 layer (N=16, 64 → 64 channels,
32×32) for every MR × NV tile near the register budget of this target, and prints GFLOP/s
beside the table's choice. A tile that does not fit the vector registers spills and shows
it at once (AVX-512's 8 × 2 on AVX2's 16 registers ran several times slower). Each tile is
compiled on first use: about a second each.
"""
import argparse
import math
import os
import time


def _candidates(registers):
    """(MR, NV) pairs around the budget MR·NV + NV + 1 ≤ registers (a few just over it)."""
    pairs = []
    for vectors in (1, 2, 4):
        for rows in (2, 3, 4, 6, 8, 10, 12):
            if rows * vectors + vectors + 1 <= registers + vectors:
                pairs.append((rows, vectors))
    return pairs


def _kernel(rows, vectors):
    """An entry point with literal MR and NV (compiled for this tile alone)."""
    import numba

    from ..kernels import implicit_gemm_numba as compiled

    @numba.njit
    def run(x, wt, offset, corner, out, y, chunks):
        compiled.forward(x, wt, offset, corner, out, y, rows, vectors, chunks)
    return run


def measure(threads=1, repeats=5, log=print):
    """{(MR, NV): GFLOP/s} for this target's candidate tiles."""
    import numba
    import numpy as np

    from ..cpu import host
    from ..kernels.conv.implicit import _corners, _offsets
    numba.set_num_threads(threads)
    cpu = host()
    n, c, k, size = 16, 64, 64, 32
    rng = np.random.default_rng(0)
    xp = rng.standard_normal((n, c, size + 2, size + 2), dtype=np.float32)
    offset = _offsets(xp.shape, (3, 3), (1, 1))
    corner = _corners(xp.shape, (size, size), (1, 1))
    flops = 2 * n * k * c * 9 * size * size
    # One thread: CPU time, which other processes on the machine do not inflate.
    clock = time.process_time if threads == 1 else time.perf_counter
    results = {}
    log(f"# {cpu.summary()}; {threads} thread(s); implicit GEMM forward kernel, "
        f"{n}×{c}×{size}×{size} ⋆ {k}×{c}×3×3")
    table = cpu.tiles.gemm_rows
    for rows, vectors in _candidates(cpu.registers):
        width = cpu.lanes * vectors
        kp = -(-k // width) * width
        wt = rng.standard_normal((c * 9, kp), dtype=np.float32)
        out = np.empty((corner.size + rows, kp), np.float32)
        y = np.empty((0, 0, 0), np.float32)
        run = _kernel(rows, vectors)
        run(xp, wt, offset, corner, out, y, 8 * threads)  # compile and warm up
        best = math.inf
        for _ in range(repeats):
            start = clock()
            run(xp, wt, offset, corner, out, y, 8 * threads)
            best = min(best, clock() - start)
        results[(rows, vectors)] = flops / best / 1e9
        chosen = "  <- table" if table[vectors] == rows else ""
        log(f"  MR {rows:2d} × NV {vectors} ({rows}×{width:3d}, "
            f"{rows * vectors + vectors + 1:2d} registers): "
            f"{results[(rows, vectors)]:7.1f} GFLOP/s{chosen}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnkit.bench.tiles",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.threads < 1 or args.threads > (os.cpu_count() or 1):
        parser.error(f"--threads: expected 1 to {os.cpu_count()}, got {args.threads}")
    if args.repeats < 1:
        parser.error(f"--repeats: expected at least 1, got {args.repeats}")
    measure(args.threads, args.repeats)


if __name__ == "__main__":
    main()
