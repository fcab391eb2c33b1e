"""Re-measure when a strided input gradient of few input channels is one implicit GEMM over
all its phases (``strided_input.subpixel``) rather than im2col + col2im (``gemm``):
``implicit_subpixel_min_terms`` and ``implicit_subpixel_min_share``.

    python -m cnnkit.bench.subpixel [--repeats 5]
    NUMBA_CPU_NAME=haswell OPENBLAS_CORETYPE=Haswell python -m cnnkit.bench.subpixel

Each layer's input gradient, at stride 2, through the dispatcher with each of the two forced,
round-robin in one process on every core (three calls a turn, best of ``--repeats``), beside
the product's terms (K · the phases' union of shifts), the share of them that are taps, and
the heuristic's pick. The layers are 1-D, 2-D and 3-D kernels on 2 to 12 channels, most below
the terms from which the product runs whatever its share and two at them (512 with the
default); on a target where the implicit GEMM
arranges one otherwise (the windows' fold, ``window_fold.wins``, or a product per phase from a
vector of channels on), the row names that arrangement, which the rule does not decide.
"""
import argparse

import numpy as np

from ..kernels import conv
from ..kernels.conv import ConvGeometry, dispatch, implicit, strided_input
from .timing import best_of_interleaved

# (dims, images, input channels, output channels, side, kernel), all at stride 2
LAYERS = [
    (1, 8, 2, 16, 256, 3), (1, 32, 4, 48, 1024, 5), (1, 8, 8, 16, 256, 9),
    (1, 8, 2, 256, 256, 3), (2, 16, 4, 128, 7, 3),
    (2, 16, 2, 16, 7, 3), (2, 16, 4, 48, 7, 3), (2, 16, 8, 16, 14, 5),
    (2, 16, 8, 16, 14, 7), (2, 32, 12, 24, 14, 7), (2, 8, 2, 48, 7, 5),
    (3, 4, 2, 8, 8, 3), (3, 16, 4, 16, 12, 3), (3, 16, 8, 8, 12, 5),
]
STRIDE = 2
# the implicit GEMM's other arrangements of a strided input gradient, by function name
_ARRANGEMENTS = {"input_gradient": "the windows' fold", "by_phases": "a product per phase"}


def _geometry(dims, n, c, k, side, kernel):
    """The ``ConvGeometry`` of a layer of ``LAYERS``: stride 2, padded by half its kernel."""
    pad = kernel // 2
    return ConvGeometry.of((n, c) + (side + 2 * pad,) * dims, (k, c) + (kernel,) * dims,
                           (STRIDE,) * dims, (1,) * dims, 1, np.float32, ((pad, pad),) * dims)


def measure(repeats=5, layers=LAYERS, log=print):
    """[(layer, gemm s, subpixel s, the heuristic's pick)] of each layer's input gradient."""
    rng = np.random.default_rng(0)
    log("# input gradients at stride 2: im2col + col2im (gemm) against one product over all "
        "phases (implicit)")
    rows = []
    for layer in layers:
        dims, n, c, k, side, kernel = layer
        g = _geometry(*layer)
        padded, pads, steps, ones = g.padded, g.pads, g.stride, g.dilation
        w = rng.standard_normal((k, c) + g.kernel, dtype=np.float32)
        dy = rng.standard_normal((n, k) + g.out, dtype=np.float32)

        def forced(name):
            def run():
                with conv.using(algorithm=name):
                    dispatch.conv_backward_input(dy, w, padded, steps, ones, pads=pads)
            return run
        times = best_of_interleaved([forced("gemm"), forced("implicit")], repeats,
                                    back_to_back=3)
        pick = conv.select(g, "input")
        faster = "gemm" if times[0] < times[1] else "implicit"
        rows.append((layer, *times, pick))
        terms, share = strided_input.subpixel_terms(g), strided_input.subpixel_share(g)
        arrangement = implicit._strided_arrangement(g)
        aside = "" if arrangement is strided_input.subpixel else \
            f" (implicit: {_ARRANGEMENTS.get(arrangement.__name__, arrangement.__name__)})"
        log(f"  {dims}-D, {n}×{c}×{side} → {k}, kernel {kernel}: {terms:4d} terms, taps "
            f"{share:.2f} of them; gemm {times[0] * 1e3:6.3f} ms, implicit "
            f"{times[1] * 1e3:6.3f} ms ({times[1] / times[0]:.2f}) -> {faster:8s} rule: {pick}"
            f"{'' if pick == faster else '  (differs)'}{aside}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnkit.bench.subpixel",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    measure(args.repeats)


if __name__ == "__main__":
    main()
