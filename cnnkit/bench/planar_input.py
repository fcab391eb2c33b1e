"""Re-measure ``implicit_input_gemm_max_lane_use`` and ``implicit_input_gemm_min_depth``: which
3-D stride-1 input gradients of few input channels im2col claims (``gemm.takes_input``).

    python -m cnnkit.bench.planar_input [--layers 160] [--seed 0] [--json FILE]

Draws float32 groups-1 layers of fewer input channels than a vector's lanes (1-D on 1024
samples, 2-D on 28 × 28, 3-D on 8³ to 16³ maps; 8 to 256 outputs; kernels 3 to 7, dilation
1 and 2; padded to keep the map's size, or not padded), times each input gradient as the
heuristic runs it without the rule (``implicit_input_gemm_max_lane_use`` 0: the implicit GEMM,
the row correlation or another pick) and forced on im2col (round-robin, three calls a turn as
the sweep's, best of 5 turns, this process's threads), and fits the pair of constants whose
rule loses the least: the sum, over the layers, of |log(time ratio)| where the rule
(``gemm.idle_and_deep``, on 3-D layers only) picks the slower one; among equal losses, the
pair nearest this process's values. Prints each layer, then the loss with none, with this
process's values and with the best pair.
"""
import argparse
import itertools
import json
import math
import os
import random

import numpy as np

from .. import tuning
from ..io.atomic import atomic_write_text
from ..kernels import conv, implicit_gemm_numba as compiled
from ..kernels.conv import dispatch, gemm, implicit
from . import sweep
from .timing import best_of_interleaved

LANE_USES = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0)
DEPTHS = (4, 8, 12, 16, 24, 32, 48, 64, 128)
MAX_MACS = 3e9  # a drawn layer's multiply-adds, at most
SIDES = {1: (1024,), 2: (28,), 3: (8, 10, 12, 16)}  # the maps' side, per dims
IMAGES = {1: 8, 2: 8, 3: 4}


def draw_layers(count, seed):
    """``count`` distinct layers (dims, n, c, k, kernel, dilation, side, padded) in a seeded
    random order: ``side`` the input map's, ``padded`` whether it is padded to keep its size
    (else not padded at all)."""
    layers = []
    for dims in (1, 2, 3):
        for side, c, k, kernel, dilation, padded in itertools.product(
                SIDES[dims], (1, 2, 3, 4, 8), (8, 16, 32, 64, 128, 256), (3, 5, 7), (1, 2),
                (True, False)):
            n = IMAGES[dims]
            if c < compiled.LANES and (padded or side > dilation * (kernel - 1)) and \
                    n * c * k * kernel ** dims * side ** dims <= MAX_MACS:
                layers.append((dims, n, c, k, kernel, dilation, side, padded))
    random.Random(seed).shuffle(layers)
    return layers[:count]


def geometry(layer):
    """The layer's ``ConvGeometry``, its padding included (the rule reads it)."""
    dims, n, c, k, kernel, dilation, side, padded = layer
    pad = (kernel - 1) * dilation // 2 if padded else 0
    return conv.ConvGeometry.of((n, c) + (side + 2 * pad,) * dims, (k, c) + (kernel,) * dims,
                                (1,) * dims, (dilation,) * dims, 1, np.float32,
                                pads=((pad, pad),) * dims)


def time_layer(layer, rng):
    """(algorithm without the rule, its ms, im2col's ms) for the layer's input gradient."""
    dims, n, c, k, kernel, dilation, side, padded = layer
    g = geometry(layer)
    w = rng.standard_normal((k, c) + (kernel,) * dims, dtype=np.float32)
    dy = rng.standard_normal((n, k) + g.out, dtype=np.float32)
    without_rule = dict(implicit_input_gemm_max_lane_use=0.0)
    with tuning.override(**without_rule):
        before = conv.select(g, "input")

    def call():
        dispatch.conv_backward_input(dy, w, g.padded, g.stride, g.dilation, 1, pads=g.pads)

    def unruled():
        with tuning.override(**without_rule):
            call()

    def on_gemm():
        with conv.using(algorithm="gemm"):
            call()
    times = best_of_interleaved([unruled, on_gemm], 5, budget_s=5.0,
                                back_to_back=sweep.BACK_TO_BACK)
    return before, times[0] * 1e3, times[1] * 1e3


def loss(rows, max_lane_use, min_depth):
    """Σ |log(before / im2col)| over the rows where the rule picks the slower one."""
    total = 0.0
    for row in rows:
        to_gemm = row["layer"][0] == 3 and gemm.idle_and_deep(
            row["c"], row["k"], row["lane_use"], max_lane_use, min_depth)
        log_ratio = math.log(row["before_ms"] / row["gemm_ms"])
        total += max(0.0, -log_ratio) if to_gemm else max(0.0, log_ratio)
    return total


def fit(rows, near=(0.85, 8)):
    """(loss, max lane use, min depth) of the best pair on ``rows``; among equal losses the
    pair nearest ``near`` (the loss is flat over wide ranges)."""
    best = min((round(loss(rows, use, depth), 9),
                abs(math.log(use / near[0])) + abs(math.log(depth / near[1])), use, depth)
               for use, depth in itertools.product(LANE_USES, DEPTHS))
    return best[0], best[2], best[3]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cnnkit.bench.planar_input",
        description="fit implicit_input_gemm_max_lane_use and implicit_input_gemm_min_depth "
                    "on stride-1 input gradients of few input channels")
    parser.add_argument("--layers", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="write every layer's row here")
    args = parser.parse_args(argv)
    if args.layers < 1:
        parser.error("--layers must be at least 1")
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        parser.error(f"--json: no directory for {args.json!r}")
    rng, rows = np.random.default_rng(args.seed), []
    for layer in draw_layers(args.layers, args.seed):
        before, before_ms, gemm_ms = time_layer(layer, rng)
        dims, n, c, k, kernel, dilation, side, padded = layer
        use = implicit.input_lane_use(geometry(layer))
        rows.append({"layer": list(layer), "c": c, "k": k, "lane_use": use, "before": before,
                     "before_ms": before_ms, "gemm_ms": gemm_ms})
        print(f"{dims}-D, {n} × {c} → {k}, {kernel}^{dims} at dilation {dilation} on "
              f"{side}^{dims}{', padded' if padded else ''} (lanes used {use:.2f}): {before} "
              f"{before_ms:.3f} ms, im2col {gemm_ms:.3f} ms", flush=True)
    now = (tuning.value("implicit_input_gemm_max_lane_use"),
           tuning.value("implicit_input_gemm_min_depth"))
    best = fit(rows, now)
    print(f"loss (Σ |log ratio| where the rule picks the slower): none {loss(rows, -1, 0):.2f}, "
          f"now (lane use ≤ {now[0]:g}, depth ≥ {now[1]:g}) {loss(rows, *now):.2f}, "
          f"best (lane use ≤ {best[1]:g}, depth ≥ {best[2]:g}) {best[0]:.2f}")
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
