"""``python -m cnnkit.bench.depthwise [--threads N] [--repeats R] [--only I ...] [--spread]``:
depthwise and narrow grouped layers pass by pass, the channels-on-lanes kernels ('lanes')
against what the heuristic picks without them, and PyTorch, in one process, each round running
the three in turn; with ``--spread``, the grouped layers' weight gradients on the lanes with
each of the two tiles ``depthwise_lanes_numba.rotates`` chooses between.

What ``depthwise_lanes_*`` in ``cnnkit.tuning``, ``conv/lanes.py``'s rule and ``rotates`` are
read off (BENCHMARKS.md, "Depthwise layers with their channels on the lanes"). Run it under
``NUMBA_CPU_NAME`` and ``ONEDNN_MAX_CPU_ISA`` to measure another ISA (``cnnkit.bench.isa``).
"""
import argparse
import os

import numpy as np

from . import timing

# (images, channels, map side, kernel side, stride[, channels per group]): MobileNet's and
# EfficientNet's depthwise layers from their last stages up, dw3x3's shape of the layer suite,
# then grouped layers of 2 to 16 channels per group (ResNeXt's 32 groups of 4 at 56², 28² and
# stride 2, of 8 at 14², of 16 at 7² and 14², and 16 groups of 16 at stride 2)
LAYERS = ((16, 960, 7, 3, 1), (32, 512, 7, 3, 1), (16, 576, 14, 3, 2), (16, 384, 14, 3, 1),
          (16, 672, 14, 5, 1), (16, 144, 28, 3, 1), (16, 240, 28, 5, 2), (32, 128, 32, 3, 1),
          (16, 96, 28, 5, 1), (16, 96, 56, 3, 2), (64, 256, 4, 3, 1), (8, 32, 112, 3, 1),
          (16, 128, 56, 3, 1, 4), (16, 128, 28, 3, 1, 4), (16, 128, 28, 3, 2, 4),
          (16, 256, 14, 3, 1, 8), (16, 512, 7, 3, 1, 16), (16, 64, 28, 3, 1, 2),
          (16, 512, 14, 3, 1, 16), (16, 256, 14, 3, 2, 16))


def _without_lanes(geometry, pass_name):
    from ..kernels.conv import registry
    return next(name for name in registry.ALGORITHMS if name != "lanes" and
                registry.applies(name, geometry, pass_name) and
                registry.REGISTRY[name].wins(geometry, pass_name))


def _passes(n, c, side, k, stride, width=1):
    """{pass: (cnnkit's call, PyTorch's call)} for the layer (padding k // 2, with a bias;
    groups of ``width`` channels)."""
    import torch

    from ..kernels import conv, depthwise_lanes_numba as lanes
    rng = np.random.default_rng(0)
    pad, groups = k // 2, c // width
    x = rng.standard_normal((n, c, side, side), dtype=np.float32)
    w = rng.standard_normal((c, width, k, k), dtype=np.float32) / np.float32(k * width)
    b = rng.standard_normal(c, dtype=np.float32)
    pads, strides, ones = ((pad, pad), (pad, pad)), (stride, stride), (1, 1)
    padded = (side + 2 * pad,) * 2
    dy = rng.standard_normal(
        (n, c) + conv.output_spatial(padded, (k, k), strides, ones), dtype=np.float32)
    tx, tw, tb, tdy = map(torch.from_numpy, (x, w, b, dy))

    def torch_backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            tdy, tx, tw, [c], [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], groups, mask)
    geometry = conv.ConvGeometry.of((n, c) + padded, w.shape, strides, ones, groups,
                                    np.float32, pads)
    return geometry, {
        "forward": (lambda: conv.conv_forward(x, w, strides, ones, groups, pads, bias=b),
                    lambda: torch.conv2d(tx, tw, tb, stride, pad, 1, groups)),
        "input": (lambda: conv.conv_backward_input(dy, w, padded, strides, ones, groups, pads),
                  torch_backward([True, False, False])),
        "weight": (lambda: conv.conv_backward_weight(x, dy, (k, k), strides, ones, groups, pads,
                                                     with_bias=True),
                   torch_backward([False, True, True])),
        "tiles": [lambda rotate=rotate: lanes.backward_weight(  # lanes.ROTATABLE's
            x, dy, (k, k), pads, strides, ones, width, True, rotate) for rotate in (False, True)]}


def _forced(name, run):
    from ..kernels import conv

    def forced():
        with conv.using(algorithm=name):
            run()
    return forced


def _best(runs, repeats):
    """Each run's best time in ms over ``repeats`` rounds, the runs in turn in each round."""
    return [t * 1e3 for t in timing.best_of_interleaved(runs, repeats)]


def _label(layer):
    n, c, side, k, stride, *width = layer
    groups = f", groups of {width[0]}" if width and width[0] > 1 else ""
    return f"{n} × {c} × {side}², {k} × {k}/{stride}{groups}"


def _on_lanes(layer):
    """Whether 'lanes' computes the layer on this target (groups up to a vector's lanes)."""
    from ..kernels import depthwise_lanes_numba as lanes
    return (layer[5] if len(layer) > 5 else 1) in lanes.GROUP_WIDTHS


def measure(layers=LAYERS, repeats=20, log=print):
    """One row per layer and pass: (layer, pass, the pick, the pick without lanes, ms of
    lanes, ms of that pick, PyTorch's ms), best of ``repeats`` rounds; layers 'lanes' does
    not compute on this target left out."""
    from ..kernels import conv
    rows = []
    for layer in filter(_on_lanes, layers):
        geometry, passes = _passes(*layer)
        for pass_name in conv.PASSES:
            ours, theirs = passes[pass_name]
            other = _without_lanes(geometry, pass_name)
            best = _best([_forced("lanes", ours), _forced(other, ours), theirs], repeats)
            row = (layer, pass_name, conv.select(geometry, pass_name), other, *best)
            log(f"| {_label(layer)} | {pass_name} | {row[2]} | {row[4]:.2f} | "
                f"{other} {row[5]:.2f} | {row[6]:.2f} |")
            rows.append(row)
    return rows


def measure_spread(layers=LAYERS, repeats=20, log=print):
    """One row per layer whose groups have both tiles on this target (``ROTATABLE``, 3 to
    LANES channels): (layer, ms of the weight gradient with x permuted, ms with dy rotated,
    the tile ``rotates`` picks), best of ``repeats`` rounds."""
    from ..kernels.depthwise_lanes_numba import ROTATABLE, rotates
    rows = []
    for layer in layers:
        width = layer[5] if len(layer) > 5 else 1
        if width not in ROTATABLE:
            continue
        best = _best(_passes(*layer)[1]["tiles"], repeats)
        row = (layer, *best, "rotate" if rotates(width) else "permute")
        log(f"| {_label(layer)} | {best[0]:.2f} | {best[1]:.2f} | {row[3]} |")
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnkit.bench.depthwise",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", type=int, nargs="+", metavar="I",
                        help=f"rows of the layer list by index, 0 to {len(LAYERS) - 1}")
    parser.add_argument("--spread", action="store_true",
                        help="the grouped layers' weight gradient tiles against each other")
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
    layers = [LAYERS[i] for i in args.only] if args.only else LAYERS
    if args.spread:
        print("| layer (images × channels × map, kernel/stride) | x permuted | dy rotated | "
              "picked |")
        print("|---|---:|---:|---|")
        measure_spread(layers, args.repeats)
        return
    print("| layer (images × channels × map, kernel/stride) | pass | picked | lanes | "
          "without lanes | PyTorch |")
    print("|---|---|---|---:|---:|---:|")
    measure(layers, args.repeats)


if __name__ == "__main__":
    main()
