"""Re-measure how ``pooling_numba._general`` pools (``pooling_numba.arrangement``): tap by tap
per output row, window by window (``by_windows``, whose lengths ``SHORT_MAX_ROWS`` and
``SHORT_AVERAGE_ROWS`` are), and flat over whole planes (``pooling_flat_numba``), on planes of
ever smaller maps with the same number of cells, so that only the length of the output rows
changes.

    python -m cnnkit.bench.pool_rows [--repeats 10] [--chunks]
    NUMBA_CPU_NAME=haswell python -m cnnkit.bench.pool_rows   # the AVX2 code

Prints, per map size, ms for 3 × 3 max pooling at stride 2 (padding 1), its average, 3 × 3 max
pooling at stride 1 and at stride 3, each three ways (inference: the values alone). Flat
should win at one stride, but for short rows at stride 3 on AVX-512. With ``--chunks``, the
flat kernel's 3 × 3 max at stride 2 instead, at 1 to 16 tasks per thread
(``pooling_flat_numba.CHUNKS_PER_THREAD``).
"""
import argparse

import numpy as np

from .timing import best_of_interleaved

CELLS = 802_816  # 16 384 planes of 7 × 7, 1 024 of 28 × 28
CASES = (("3 × 3 max at stride 2", (3, 3), (2, 2), False),
         ("its average", (3, 3), (2, 2), True),
         ("3 × 3 max at stride 1", (3, 3), (1, 1), False),
         ("3 × 3 max at stride 3", (3, 3), (3, 3), False))
WAYS = ("taps", "windows", "flat")


def measure(sizes=(7, 14, 20, 28), repeats=10, log=print):
    from ..kernels import pooling_numba
    for size in sizes:
        x = np.random.default_rng(0).standard_normal(
            (CELLS // (64 * size * size), 64, size, size), dtype=np.float32)
        line = []
        for name, kernel, stride, average in CASES:
            out = tuple((s + 2 - k) // st + 1 for s, k, st in zip(x.shape[2:], kernel, stride))
            y = np.empty(x.shape[:2] + out, np.float32)
            divisor = np.full(out, 9.0) if average else None
            times = best_of_interleaved(
                [lambda how=how: pooling_numba._general(x, kernel, stride, ((1, 1), (1, 1)),
                                                        (1, 1), y, None, divisor, how)
                 for how in WAYS], repeats)
            line.append(f"{name} " + " / ".join(f"{t * 1e3:.2f}" for t in times))
        log(f"{size:3d} × {size:<3d} (rows of {(size - 1) // 2 + 1} at stride 2), ms "
            f"{' / '.join(WAYS)}: " + "; ".join(line))


def measure_chunks(sizes=(7, 14, 28, 56), counts=(1, 2, 4, 8, 16), repeats=10, log=print):
    """The flat kernel's 3 × 3 max at stride 2 at ``counts`` tasks per thread, ms."""
    from ..kernels import pooling_flat_numba, pooling_numba
    kept = pooling_flat_numba.CHUNKS_PER_THREAD
    try:
        for size in sizes:
            x = np.random.default_rng(0).standard_normal(
                (CELLS // (64 * size * size), 64, size, size), dtype=np.float32)
            out = ((size - 1) // 2 + 1,) * 2
            y = np.empty(x.shape[:2] + out, np.float32)

            def pool(count):
                pooling_flat_numba.CHUNKS_PER_THREAD = count
                pooling_numba._general(x, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), y, None,
                                       None, "flat")
            times = best_of_interleaved([lambda c=c: pool(c) for c in counts], repeats)
            log(f"{size:3d} × {size:<3d} flat, tasks per thread: " +
                ", ".join(f"{c}: {t * 1e3:.3f}" for c, t in zip(counts, times)))
    finally:
        pooling_flat_numba.CHUNKS_PER_THREAD = kept


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--chunks", action="store_true",
                        help="time the flat kernel's tasks per thread instead")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    (measure_chunks if args.chunks else measure)(repeats=args.repeats)


if __name__ == "__main__":
    main()
