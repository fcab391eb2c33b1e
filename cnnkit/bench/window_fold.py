"""Re-measure ``implicit_fold_min_gain``: the input gradients of strided layers of few input
channels through the dispatcher, their windows' columns folded (``conv.window_fold``) against
what it runs without the fold (``strided_input.subpixel`` or ``by_phases``, or im2col +
col2im), each layer with its gain (the multiply-adds of the product over all phases over the
fold's).

    python -m cnnkit.bench.window_fold [--repeats 12] [--only alexnet stem ...]
    NUMBA_CPU_NAME=haswell OPENBLAS_CORETYPE=Haswell python -m cnnkit.bench.window_fold
    python -m cnnkit.bench.window_fold --tiles     # the fold's tile instead (below)

The constant is the gain from which the fold runs faster: the time ratio crosses 1 between
the layers of the gains either side of it. Layers of a vector of input channels or more stay
on the products per phase whatever their gain (``window_fold.wins``); their row times the
fold called directly, to show what it would take.

``--tiles`` re-measures the fold's entry of the tile table (``cpu.Tiles.fold``): the fold on
each candidate MR × NV tile near this target's register budget (and on the planar GEMM's), on
the layers of fewer input channels than a vector's lanes, ms, and each tile's time over the
table's tile's (geomean).
Each tile is compiled on first use: a few seconds each.
"""
import argparse
import math

import numpy as np

from .. import tuning
from ..conv_arithmetic import conv_output_shape
from ..cpu import tile_registers
from ..kernels import conv
from ..kernels.conv import implicit, window_fold
from .timing import best_of_interleaved

# name: (images, input channels, output channels, side of the square input, kernel, stride,
# padding)
LAYERS = {
    "alexnet": (8, 3, 64, 224, 11, 4, 2),
    "stem": (4, 3, 64, 224, 7, 2, 3),
    "mobilenet": (16, 3, 32, 224, 3, 2, 1),
    "patches": (32, 3, 96, 224, 4, 4, 0),
    "patches_2x2": (32, 12, 48, 56, 2, 2, 0),
    "c8_3x3_s2": (16, 8, 32, 56, 3, 2, 1),
    "mnist_5x5_s2": (16, 1, 32, 28, 5, 2, 2),
    "c3_5x5_s2": (8, 3, 64, 112, 5, 2, 2),
    "c15_5x5_s3": (2, 15, 64, 100, 5, 3, 2),
}


def measure(name, repeats):
    """(gain, whether the heuristic folds, the arrangement taken without the fold, its ms,
    the fold's ms) of one layer."""
    n, c, k, side, kernel, stride, pad = LAYERS[name]
    rng = np.random.default_rng(0)
    padded, pads = (side + 2 * pad,) * 2, ((pad, pad), (pad, pad))
    out = conv_output_shape(padded, kernel, stride)
    dy = rng.standard_normal((n, k) + out, dtype=np.float32)
    w = rng.standard_normal((k, c, kernel, kernel), dtype=np.float32)
    g = conv.ConvGeometry.of((n, c) + padded, w.shape, (stride,) * 2, (1, 1), 1, np.float32,
                             pads)
    with tuning.override(implicit_fold_min_gain=window_fold.NEVER):
        before = conv.select(g, "input")
        if before == "implicit":
            before = implicit._strided_arrangement(g).__name__
    taken = window_fold.wins(g)

    def through_dispatch(gain):
        def run():
            with tuning.override(implicit_fold_min_gain=gain):
                conv.conv_backward_input(dy, w, padded, g.stride, g.dilation, 1, pads)
        return run

    def folded():
        window_fold.input_gradient(dy, w, padded, g.stride, g.dilation, pads)
    with tuning.override(implicit_fold_min_gain=0.5):
        foldable = window_fold.wins(g)
    runs = [through_dispatch(window_fold.NEVER), through_dispatch(0.5) if foldable else folded]
    times = best_of_interleaved(runs, repeats)
    return window_fold.gain(g), taken, before, times[0] * 1e3, times[1] * 1e3


def tile_candidates(registers):
    """(MR, NV) near the register budget (``cpu.tile_registers`` ≤ ``registers``): for each NV
    up to 6, the largest MR up to 8 that fits and the one below."""
    pairs = []
    for vectors in range(1, 7):
        fits = [r for r in range(2, 9) if tile_registers(r, vectors) <= registers]
        pairs += [(r, vectors) for r in fits[-2:]]
    return pairs


def measure_tiles(repeats, only=None, candidates=None, log=print):
    """{(MR, NV): {layer: ms}} of the fold on each candidate tile (this target's by default),
    the layers' calls interleaved tile against tile."""
    from ..cpu import host
    cpu = host()
    table = cpu.tiles.fold
    tiles = list(dict.fromkeys([table, cpu.tiles.planar] +
                               list(candidates or tile_candidates(cpu.registers))))
    names = [name for name in (only or LAYERS) if LAYERS[name][1] < cpu.lanes]
    if not names:
        raise ValueError(f"no layer of fewer input channels than this target's {cpu.lanes} "
                         f"lanes among {list(only or LAYERS)}")
    log(f"# {cpu.summary()}; the fold's input gradient, ms (best of {repeats}), and each "
        f"tile's time over the table's {table[0]} × {cpu.lanes * table[1]}")
    log("| tile | " + " | ".join(names) + " | geomean ratio |")
    log("|---|" + "---:|" * (len(names) + 1))
    results = {tile: {} for tile in tiles}
    for name in names:
        n, c, k, side, kernel, stride, pad = LAYERS[name]
        rng = np.random.default_rng(0)
        padded, pads = (side + 2 * pad,) * 2, ((pad, pad), (pad, pad))
        dy = rng.standard_normal((n, k) + conv_output_shape(padded, kernel, stride),
                                 dtype=np.float32)
        w = rng.standard_normal((k, c, kernel, kernel), dtype=np.float32)

        def run(tile):
            return lambda: window_fold.input_gradient(dy, w, padded, (stride,) * 2, (1, 1), pads,
                                                      tile=tile)
        for tile in tiles:
            run(tile)()  # compiled outside the timing
        for tile, seconds in zip(tiles, best_of_interleaved([run(t) for t in tiles], repeats)):
            results[tile][name] = seconds * 1e3
    for tile in tiles:
        ratio = math.exp(np.mean([math.log(results[tile][name] / results[table][name])
                                  for name in names]))
        log(f"| {tile[0]} × {cpu.lanes * tile[1]} | " +
            " | ".join(f"{results[tile][name]:.3f}" for name in names) +
            f" | {ratio:.3f}{'  <- table' if tile == table else ''} |")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cnnkit.bench.window_fold",
        description="strided input gradients of few channels: folded against the other way")
    parser.add_argument("--only", nargs="+", metavar="LAYER", choices=sorted(LAYERS))
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--tiles", action="store_true",
                        help="time the fold's product on each candidate tile instead")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.tiles:
        try:
            measure_tiles(args.repeats, args.only)
        except ValueError as error:
            parser.error(f"--only: {error}")
        return
    print(f"implicit_fold_min_gain now: {tuning.value('implicit_fold_min_gain'):.3g}")
    print("| layer | gain | folded by the heuristic | without the fold | ms | folded ms | "
          "ratio |")
    print("|---|---:|---|---|---:|---:|---:|")
    for name in args.only or LAYERS:
        gain, taken, before, ms_before, ms_fold = measure(name, args.repeats)
        print(f"| {name} | {gain:.2f} | {'yes' if taken else 'no'} | {before} | "
              f"{ms_before:.3f} | {ms_fold:.3f} | {ms_fold / ms_before:.2f} |", flush=True)


if __name__ == "__main__":
    main()
