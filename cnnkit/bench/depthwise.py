"""``python -m cnnkit.bench.depthwise [--threads N] [--repeats R] [--only I ...]``: depthwise
layers pass by pass, the channels-on-lanes kernels ('lanes') against what the heuristic picks
without them, and PyTorch, in one process, each round running the three in turn.

What ``depthwise_lanes_*`` in ``cnnkit.tuning`` and ``conv/lanes.py``'s rule are read off
(BENCHMARKS.md, "Depthwise layers with their channels on the lanes"). Run it under
``NUMBA_CPU_NAME`` and ``ONEDNN_MAX_CPU_ISA`` to measure another ISA (``cnnkit.bench.isa``).
"""
import argparse
import os
import time

import numpy as np

# (images, channels, map side, kernel side, stride): MobileNet's and EfficientNet's depthwise
# layers from their last stages up, and dw3x3's shape of the layer suite
LAYERS = ((16, 960, 7, 3, 1), (32, 512, 7, 3, 1), (16, 576, 14, 3, 2), (16, 384, 14, 3, 1),
          (16, 672, 14, 5, 1), (16, 144, 28, 3, 1), (16, 240, 28, 5, 2), (32, 128, 32, 3, 1),
          (16, 96, 28, 5, 1), (16, 96, 56, 3, 2), (64, 256, 4, 3, 1), (8, 32, 112, 3, 1))


def _without_lanes(geometry, pass_name):
    from ..kernels.conv import registry
    return next(name for name in registry.ALGORITHMS if name != "lanes" and
                registry.applies(name, geometry, pass_name) and
                registry.REGISTRY[name].wins(geometry, pass_name))


def _passes(n, c, side, k, stride):
    """{pass: (cnnkit's call, PyTorch's call)} for the layer (padding k // 2, with a bias)."""
    import torch

    from ..kernels import conv
    rng = np.random.default_rng(0)
    pad = k // 2
    x = rng.standard_normal((n, c, side, side), dtype=np.float32)
    w = rng.standard_normal((c, 1, k, k), dtype=np.float32) / np.float32(k)
    b = rng.standard_normal(c, dtype=np.float32)
    pads, strides, ones = ((pad, pad), (pad, pad)), (stride, stride), (1, 1)
    padded = (side + 2 * pad,) * 2
    dy = rng.standard_normal(
        (n, c) + conv.output_spatial(padded, (k, k), strides, ones), dtype=np.float32)
    tx, tw, tb, tdy = map(torch.from_numpy, (x, w, b, dy))

    def torch_backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            tdy, tx, tw, [c], [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], c, mask)
    geometry = conv.ConvGeometry.of((n, c) + padded, w.shape, strides, ones, c, np.float32,
                                    pads)
    return geometry, {
        "forward": (lambda: conv.conv_forward(x, w, strides, ones, c, pads, bias=b),
                    lambda: torch.conv2d(tx, tw, tb, stride, pad, 1, c)),
        "input": (lambda: conv.conv_backward_input(dy, w, padded, strides, ones, c, pads),
                  torch_backward([True, False, False])),
        "weight": (lambda: conv.conv_backward_weight(x, dy, (k, k), strides, ones, c, pads,
                                                     with_bias=True),
                   torch_backward([False, True, True]))}


def _forced(name, run):
    from ..kernels import conv

    def forced():
        with conv.using(algorithm=name):
            run()
    return forced


def measure(layers=LAYERS, repeats=20, log=print):
    """One row per layer and pass: (layer, pass, the pick, the pick without lanes, ms of
    lanes, ms of that pick, PyTorch's ms), best of ``repeats`` rounds."""
    from ..kernels import conv
    rows = []
    for layer in layers:
        geometry, passes = _passes(*layer)
        for pass_name in conv.PASSES:
            ours, theirs = passes[pass_name]
            other = _without_lanes(geometry, pass_name)
            runs = [_forced("lanes", ours), _forced(other, ours), theirs]
            for run in runs:
                run()
            best = [float("inf")] * len(runs)
            for _ in range(repeats):
                for i, run in enumerate(runs):
                    start = time.perf_counter()
                    run()
                    best[i] = min(best[i], time.perf_counter() - start)
            row = (layer, pass_name, conv.select(geometry, pass_name), other,
                   *(t * 1e3 for t in best))
            n, c, side, k, stride = layer
            log(f"| {n} × {c} × {side}², {k} × {k}/{stride} | {pass_name} | {row[2]} | "
                f"{row[4]:.2f} | {other} {row[5]:.2f} | {row[6]:.2f} |")
            rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnkit.bench.depthwise",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", type=int, nargs="+", metavar="I",
                        help=f"rows of the layer list by index, 0 to {len(LAYERS) - 1}")
    args = parser.parse_args(argv)
    if not 1 <= args.threads <= (os.cpu_count() or 1):
        parser.error(f"--threads: expected 1 to {os.cpu_count()}, got {args.threads}")
    if args.repeats < 1:
        parser.error(f"--repeats: expected at least 1, got {args.repeats}")
    if args.only and not all(0 <= i < len(LAYERS) for i in args.only):
        parser.error(f"--only: expected indices 0 to {len(LAYERS) - 1}, got {args.only}")
    import numba
    import torch

    from ..cpu import host
    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"# {host().summary()}; {args.threads} thread(s); best of {args.repeats}, ms")
    print("| layer (images × channels × map, kernel/stride) | pass | picked | lanes | "
          "without lanes | PyTorch |")
    print("|---|---|---|---:|---:|---:|")
    measure([LAYERS[i] for i in args.only] if args.only else LAYERS, args.repeats)


if __name__ == "__main__":
    main()
