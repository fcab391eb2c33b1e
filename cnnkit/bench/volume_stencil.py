"""Re-measure how ``depthwise3x3_numba.forward_volume`` runs a 3-D depthwise 3 × 3 × 3 layer's
output planes: row by row, or as one flat run per plane (``flat_planes``, whose constants
``REMAINDER_LANES`` and ``FLAT_MIN_REMAINDER_SHARE`` decide), on volumes of ever wider rows.

    python -m cnnkit.bench.volume_stencil [--repeats 20]
    NUMBA_CPU_NAME=haswell python -m cnnkit.bench.volume_stencil   # the AVX2 code

Prints, per width c (8 images of 32 channels on 8 × c × c volumes, padding 1), ms row by row
and flat, their ratio, and which the rule picks: flat should win where it is picked.
"""
import argparse

import numba
import numpy as np

from .timing import best_of_interleaved

WIDTHS = (4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 22, 24, 28, 30, 32, 36, 44, 56, 64)


def measure(widths=WIDTHS, repeats=20, log=print):
    from .. import tuning
    from ..kernels import depthwise3x3_numba as stencil
    runs = tuning.value("depthwise_runs_per_thread") * numba.get_num_threads()
    rng = np.random.default_rng(0)
    for cols in widths:
        x = rng.standard_normal((8, 32, 8, cols, cols), dtype=np.float32)
        w = rng.standard_normal((32, 1, 3, 3, 3), dtype=np.float32)
        bias = np.zeros(32, np.float32)
        y = np.empty_like(x)
        by_rows, flat = best_of_interleaved(
            [lambda flat=flat: stencil.forward_volume(x, w, bias, 1, 1, 1, y, 1, runs, flat)
             for flat in (False, True)], repeats)
        pick = "flat" if stencil.flat_planes(cols) else "rows"
        log(f"{cols:3d} columns: row by row {by_rows * 1e3:.3f} ms, flat {flat * 1e3:.3f} ms, "
            f"ratio {flat / by_rows:.2f}; the rule picks {pick}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    measure(repeats=args.repeats)


if __name__ == "__main__":
    main()
