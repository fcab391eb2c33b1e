"""Audit the convolution heuristic on layers no suite has: random layers, each pass's pick
timed against every other algorithm that applies, forced; or, with ``--torch``, each layer's
forward pass and training step against PyTorch's, as the layer suite times its rows.

    python -m cnnkit.bench.sweep [--seconds 300] [--seed 0] [--threshold 1.25] [--json FILE]
    python -m cnnkit.bench.sweep --torch [--seconds 300] [--seed 0] [--threshold 1.25]
                                 [--json FILE]

The suites judge the heuristic on the layers they name, so a rule tuned to them can be wrong
everywhere else (BENCHMARKS.md, "Large kernels on the implicit GEMM", "3-D depthwise layers on
the implicit GEMM", "Thin products on the implicit GEMM" were found this way). Each layer is
drawn at random (1-D to 3-D; 1 to 256 channels; grouped and depthwise; kernels 1 to 31;
strides 1 and 2; dilation 1 and 2; 1 to 64 images), its three passes timed round-robin in one
process (three calls a turn, the best of 3 turns, on this process's threads), and every pass
whose pick took more than ``--threshold`` times the fastest algorithm's time is printed as it
is found. Layers keep to
between 10⁵ and 4·10⁸ multiply-adds, so that each takes a few seconds at most.
"""
import argparse
import importlib.util
import json
import math
import random
import time

import numpy as np

from ..io.atomic import atomic_write_text
from ..kernels import conv
from ..kernels.conv import dispatch, registry
from .timing import best_of_interleaved

MACS = (1e5, 4e8)  # multiply-adds of a drawn layer, at least and at most
# Calls of one algorithm in a row per turn, the best of them kept: a compiled kernel's first
# call after a BLAS product runs while OpenBLAS's threads still spin on the cores, and one
# call a turn charged small layers' kernels for it (a 1-D forward pass of 0.054 ms alone read
# 0.468 round-robin, 0.089 with three calls a turn: BENCHMARKS.md, "The three input-gradient
# claims timed in blocks").
BACK_TO_BACK = 3


def draw_layer(pick):
    """(dims, N, C, K, spatial, kernel, stride, dilation, groups, padding) of a random layer
    (``pick``: a ``random.Random``), or None when its size falls outside ``MACS``."""
    dims = pick.choice([1, 2, 2, 2, 2, 3])
    c = pick.choice([1, 3, 8, 16, 24, 32, 64, 128, 256])
    groups = pick.choice([1, 1, 1, 1, 2, 4, c]) if c >= 4 else 1
    if groups == c and c > 1:  # depthwise, one or two outputs per channel
        k = c * pick.choice([1, 1, 2])
    else:
        k = pick.choice([8, 16, 32, 48, 64, 96, 128, 256])
        groups = groups if c % groups == 0 and k % groups == 0 else 1
    kernel = pick.choice([1, 3, 3, 3, 5, 7]) if dims > 1 else pick.choice([3, 5, 9, 15, 31])
    stride = pick.choice([1, 1, 1, 2])
    dilation = pick.choice([1, 1, 1, 2]) if kernel > 1 else 1
    n = pick.choice([1, 2, 4, 8, 16, 32, 64])
    side = pick.choice({1: [64, 256, 1024, 4096], 2: [7, 14, 28, 56], 3: [8, 12, 16]}[dims])
    padding = (kernel - 1) * dilation // 2
    if side + 2 * padding < (kernel - 1) * dilation + 1:
        return None
    macs = n * c * k // groups * kernel ** dims * side ** dims / stride ** dims
    if not MACS[0] <= macs <= MACS[1]:
        return None
    return dims, n, c, k, (side,) * dims, kernel, stride, dilation, groups, padding


def time_passes(layer, rng):
    """[{pass, pick, pick_ms, best, best_ms, ratio}] for the three passes of ``layer``."""
    dims, n, c, k, spatial, kernel, stride, dilation, groups, padding = layer
    x = rng.standard_normal((n, c) + spatial, dtype=np.float32)
    w = rng.standard_normal((k, c // groups) + (kernel,) * dims, dtype=np.float32)
    steps, reach, pads = (stride,) * dims, (dilation,) * dims, ((padding, padding),) * dims
    y = dispatch.conv_forward(x, w, steps, reach, groups, pads=pads)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    padded = tuple(s + 2 * padding for s in spatial)
    geometry = conv.ConvGeometry.of((n, c) + padded, w.shape, steps, reach, groups, np.float32,
                                    pads)
    calls = {
        "forward": lambda: dispatch.conv_forward(x, w, steps, reach, groups, pads=pads),
        "input": lambda: dispatch.conv_backward_input(dy, w, padded, steps, reach, groups,
                                                      pads=pads),
        "weight": lambda: dispatch.conv_backward_weight(x, dy, (kernel,) * dims, steps, reach,
                                                        groups, pads=pads)}
    rows = []
    for pass_name, call in calls.items():
        pick = conv.select(geometry, pass_name)
        names = [pick] + [a for a in registry.applicable(geometry, pass_name) if a != pick]

        def forced(name, call=call):
            def run():
                with conv.using(algorithm=name):
                    call()
            return run
        times = best_of_interleaved([call] + [forced(a) for a in names[1:]], 3, budget_s=5.0,
                                    back_to_back=BACK_TO_BACK)
        best = min(range(len(times)), key=times.__getitem__)
        rows.append({"pass": pass_name, "pick": pick, "pick_ms": times[0] * 1e3,
                     "best": names[best], "best_ms": times[best] * 1e3,
                     "ratio": times[0] / times[best]})
    return rows


def time_against_torch(layer):
    """[{pass, ms, torch_ms, ratio}] of ``layer``'s forward pass (no graph) and training step
    (forward with the bias, then backward), cnnkit against PyTorch, round-robin in one
    process as the layer suite times its rows (``layers.LayerStep``)."""
    from .layers import LayerStep, _in_turns, _pair
    dims, n, c, k, spatial, kernel, stride, dilation, groups, padding = layer
    step = LayerStep("drawn", {"drawn": (dims, n, c, k, spatial, kernel, stride, padding,
                                         groups, dilation)})
    rows = []
    for pass_name, backward in (("forward", False), ("step", True)):
        ours, theirs = _in_turns(_pair(step.ours, step.theirs, backward), 3)
        rows.append({"pass": pass_name, "ms": ours * 1e3, "torch_ms": theirs * 1e3,
                     "ratio": ours / theirs})
    return rows


def sweep(seconds, seed, threshold, log=print, against_torch=False):
    """Time random layers for ``seconds``; returns every pass's row (with its layer), logging
    the passes whose pick took more than ``threshold`` times the fastest's (``against_torch``:
    the forward passes and steps that took more than that many times PyTorch's)."""
    pick, rng = random.Random(seed), np.random.default_rng(seed)
    rows, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        layer = draw_layer(pick)
        if layer is None:
            continue
        for row in time_against_torch(layer) if against_torch else time_passes(layer, rng):
            row["layer"] = list(layer[:4]) + [list(layer[4])] + list(layer[5:])
            rows.append(row)
            if row["ratio"] > threshold and against_torch:
                log(f"{layer} {row['pass']}: {row['ms']:.3f} ms, PyTorch "
                    f"{row['torch_ms']:.3f} ms ({row['ratio']:.2f})")
            elif row["ratio"] > threshold:
                log(f"{layer} {row['pass']}: {row['pick']} {row['pick_ms']:.2f} ms, "
                    f"{row['best']} {row['best_ms']:.2f} ms ({row['ratio']:.2f})")
    return rows


def geomean(values):
    """The geometric mean of positive ``values`` (1.0 of none)."""
    values = list(values)
    return math.exp(sum(map(math.log, values)) / len(values)) if values else 1.0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cnnkit.bench.sweep",
        description="the heuristic's pick against every algorithm forced, on random layers "
                    "(dims, N, C, K, spatial, kernel, stride, dilation, groups, padding)")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=1.25,
                        help="print passes whose pick took this many times the fastest's "
                             "(with --torch: PyTorch's)")
    parser.add_argument("--json", metavar="FILE", help="write every pass's row here")
    parser.add_argument("--torch", action="store_true",
                        help="time each layer's forward pass and step against PyTorch's")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.threshold < 1:
        parser.error("--threshold must be at least 1")
    if args.torch and importlib.util.find_spec("torch") is None:
        parser.error("--torch needs PyTorch (pip install 'cnnkit[test]')")
    rows = sweep(args.seconds, args.seed, args.threshold, against_torch=args.torch)
    if args.torch:
        for pass_name in ("forward", "step"):
            ratios = [row["ratio"] for row in rows if row["pass"] == pass_name]
            slow = sum(ratio > args.threshold for ratio in ratios)
            print(f"{len(ratios)} {pass_name} rows: geomean {geomean(ratios):.3f} of "
                  f"PyTorch's time, {slow} over {args.threshold:g}")
    else:
        slow = sum(row["ratio"] > args.threshold for row in rows)
        print(f"{len(rows)} passes; {slow} with the pick over {args.threshold:g} times the "
              "fastest")
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
