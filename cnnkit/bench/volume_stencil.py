"""Re-measure the rules of the 3-D depthwise 3 × 3 × 3 stencil: how
``depthwise3x3_numba.forward_volume`` runs a layer's output planes, row by row or as one flat
run per plane (``flat_planes``: ``REMAINDER_LANES`` and
``depthwise_volume_flat_min_remainder_share``), on volumes of ever wider rows; and with
``--weight``, up to how many outputs per input channel its weight gradient beats the implicit
GEMM's (``depthwise_volume_weight_max_multiplier``).

    python -m cnnkit.bench.volume_stencil [--repeats 20] [--weight]
    NUMBA_CPU_NAME=haswell python -m cnnkit.bench.volume_stencil   # the AVX2 code

Prints, per width c (8 images of 32 channels on 8 × c × c volumes, padding 1), ms row by row
and flat, their ratio, and which the rule picks: flat should win where it is picked. With
``--weight``, per layer (1, 4 and 16 input channels, 1 to 32 outputs each, 16³ volumes), ms
on the implicit GEMM and on the stencil, their ratio, and the rule's pick.
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


WEIGHT_LAYERS = tuple((images, channels, multiplier)
                      for images, channels in ((8, 1), (4, 4), (4, 16))
                      for multiplier in (1, 2, 4, 6, 8, 12, 16, 32))


def measure_weight(layers=WEIGHT_LAYERS, side=16, repeats=20, log=print):
    from .. import tuning
    from ..kernels import conv
    from ..kernels.conv import rows
    rng = np.random.default_rng(0)
    pads = ((1, 1),) * 3
    for images, channels, multiplier in layers:
        x = rng.standard_normal((images, channels) + (side,) * 3, dtype=np.float32)
        dy = rng.standard_normal((images, channels * multiplier) + (side,) * 3,
                                 dtype=np.float32)

        def weight(algorithm):  # the stencil past the bound too, to time it there
            with conv.using(algorithm=algorithm), tuning.override(
                    depthwise_volume_weight_max_multiplier=1 << 20):
                conv.conv_backward_weight(x, dy, (3, 3, 3), (1, 1, 1), (1, 1, 1),
                                          groups=channels, pads=pads)
        implicit, stencil = best_of_interleaved(
            [lambda: weight("implicit"), lambda: weight("rows")], repeats)
        g = conv.ConvGeometry.of((images, channels) + (side + 2,) * 3,
                                 (channels * multiplier, 1, 3, 3, 3), (1, 1, 1), (1, 1, 1),
                                 channels, np.float32, pads)
        pick = "stencil" if rows.takes_volume_weight(g) else "implicit"
        log(f"{images} × {channels} → {channels * multiplier} channels ({multiplier} per "
            f"input): implicit {implicit * 1e3:.3f} ms, stencil {stencil * 1e3:.3f} ms, ratio "
            f"{stencil / implicit:.2f}; the rule picks {pick}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--weight", action="store_true",
                        help="time the weight gradient against the implicit GEMM instead")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    (measure_weight if args.weight else measure)(repeats=args.repeats)


if __name__ == "__main__":
    main()
