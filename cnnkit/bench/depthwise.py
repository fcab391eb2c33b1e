"""``python -m cnnkit.bench.depthwise [--threads N] [--repeats R] [--only I ...] [--spread]
[--volumes] [--tap-blocks]``: depthwise and narrow grouped layers pass by pass, the
channels-on-lanes kernels ('lanes') against what the heuristic picks without them, and
PyTorch, in one process, each round running the three in turn; with ``--spread``, the grouped
layers' weight gradients on the lanes with each of the two tiles
``depthwise_lanes_numba.rotates`` chooses between; with ``--volumes``, 3-D layers
(``VOLUMES``) in the place of the 2-D ones; with ``--tap-blocks``, the stride-1 ones' forward
passes on the lanes at each of ``TAP_BLOCK_BYTES`` (``depthwise_lanes_tap_block_bytes``).

What ``depthwise_lanes_*`` in ``cnnkit.tuning``, ``conv/lanes.py``'s rule and ``rotates`` are
read off (BENCHMARKS.md, "Depthwise layers with their channels on the lanes" and "3-D
depthwise and grouped layers on the lanes"). Run it under
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
# The same for volumes (3-D, cubes): 7 × 7 × 7 and 5 × 5 × 5 depthwise layers (large-kernel
# 3-D networks' blocks), strided and 3 × 3 × 3 ones, then groups of 4 and 16 channels
VOLUMES = ((16, 16, 12, 7, 1), (4, 128, 12, 7, 2), (2, 96, 24, 7, 1), (16, 16, 8, 5, 1),
           (2, 32, 32, 5, 1), (8, 64, 16, 3, 2), (8, 96, 12, 3, 1), (2, 16, 32, 3, 1),
           (8, 128, 16, 3, 1, 4), (4, 64, 16, 3, 2, 4), (8, 256, 8, 3, 1, 16))


# depthwise_lanes_tap_block_bytes tried by --tap-blocks; the last: all of a kernel's taps
TAP_BLOCK_BYTES = (8 << 10, 16 << 10, 24 << 10, 32 << 10, 1 << 30)


def _without_lanes(geometry, pass_name):
    from ..kernels.conv import registry
    return next(name for name in registry.ALGORITHMS if name != "lanes" and
                registry.applies(name, geometry, pass_name) and
                registry.REGISTRY[name].wins(geometry, pass_name))


def _passes(n, c, side, k, stride, width=1, dims=2):
    """{pass: (cnnkit's call, PyTorch's call)} for the layer (a map, or with ``dims`` 3 a
    volume; padding k // 2, with a bias; groups of ``width`` channels)."""
    import torch

    from ..kernels import conv, depthwise_lanes_numba as lanes
    rng = np.random.default_rng(0)
    pad, groups = k // 2, c // width
    kernel = (k,) * dims
    x = rng.standard_normal((n, c) + (side,) * dims, dtype=np.float32)
    w = rng.standard_normal((c, width) + kernel, dtype=np.float32) / np.float32(k * width)
    b = rng.standard_normal(c, dtype=np.float32)
    pads, strides, ones = ((pad, pad),) * dims, (stride,) * dims, (1,) * dims
    padded = (side + 2 * pad,) * dims
    dy = rng.standard_normal(
        (n, c) + conv.output_spatial(padded, kernel, strides, ones), dtype=np.float32)
    tx, tw, tb, tdy = map(torch.from_numpy, (x, w, b, dy))
    torch_forward = torch.conv2d if dims == 2 else torch.conv3d

    def torch_backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            tdy, tx, tw, [c], [stride] * dims, [pad] * dims, [1] * dims, False, [0] * dims,
            groups, mask)
    geometry = conv.ConvGeometry.of((n, c) + padded, w.shape, strides, ones, groups,
                                    np.float32, pads)
    return geometry, {
        "forward": (lambda: conv.conv_forward(x, w, strides, ones, groups, pads, bias=b),
                    lambda: torch_forward(tx, tw, tb, stride, pad, 1, groups)),
        "input": (lambda: conv.conv_backward_input(dy, w, padded, strides, ones, groups, pads),
                  torch_backward([True, False, False])),
        "weight": (lambda: conv.conv_backward_weight(x, dy, kernel, strides, ones, groups, pads,
                                                     with_bias=True),
                   torch_backward([False, True, True])),
        "tiles": [lambda rotate=rotate: lanes.backward_weight(  # lanes.ROTATABLE's
            x, dy, kernel, pads, strides, ones, width, True, rotate) for rotate in (False, True)]}


def _forced(name, run):
    from ..kernels import conv

    def forced():
        with conv.using(algorithm=name):
            run()
    return forced


def _best(runs, repeats):
    """Each run's best time in ms over ``repeats`` rounds, the runs in turn in each round."""
    return [t * 1e3 for t in timing.best_of_interleaved(runs, repeats)]


def _label(layer, dims=2):
    """'images × channels × side², kernel/stride[, groups of G]' (side³ for a volume)."""
    n, c, side, k, stride, *width = layer
    groups = f", groups of {width[0]}" if width and width[0] > 1 else ""
    kernel, power = " × ".join([str(k)] * dims), {2: "²", 3: "³"}[dims]
    return f"{n} × {c} × {side}{power}, {kernel}/{stride}{groups}"


def _width(layer):
    """A layer's channels per group (1: depthwise)."""
    return layer[5] if len(layer) > 5 else 1


def _on_lanes(layer):
    """Whether 'lanes' computes the layer on this target (groups up to a vector's lanes)."""
    from ..kernels import depthwise_lanes_numba as lanes
    return _width(layer) in lanes.GROUP_WIDTHS


def measure(layers=LAYERS, repeats=20, log=print, dims=2):
    """One row per layer and pass: (layer, pass, the pick, the pick without lanes, ms of
    lanes, ms of that pick, PyTorch's ms), best of ``repeats`` rounds; layers 'lanes' does
    not compute on this target left out. ``dims``: 2 for maps, 3 for volumes."""
    from ..kernels import conv
    rows = []
    for layer in filter(_on_lanes, layers):
        geometry, passes = _passes(*layer[:5], _width(layer), dims)
        for pass_name in conv.PASSES:
            ours, theirs = passes[pass_name]
            other = _without_lanes(geometry, pass_name)
            best = _best([_forced("lanes", ours), _forced(other, ours), theirs], repeats)
            row = (layer, pass_name, conv.select(geometry, pass_name), other, *best)
            log(f"| {_label(layer, dims)} | {pass_name} | {row[2]} | {row[4]:.2f} | "
                f"{other} {row[5]:.2f} | {row[6]:.2f} |")
            rows.append(row)
    return rows


def measure_spread(layers=LAYERS, repeats=20, log=print, dims=2):
    """One row per layer whose groups have both tiles on this target (``ROTATABLE``, 3 to
    LANES channels): (layer, ms of the weight gradient with x permuted, ms with dy rotated,
    the tile ``rotates`` picks), best of ``repeats`` rounds."""
    from ..kernels.depthwise_lanes_numba import ROTATABLE, rotates
    rows = []
    for layer in layers:
        width = _width(layer)
        if width not in ROTATABLE:
            continue
        best = _best(_passes(*layer[:5], width, dims)[1]["tiles"], repeats)
        row = (layer, *best, "rotate" if rotates(width) else "permute")
        log(f"| {_label(layer, dims)} | {best[0]:.2f} | {best[1]:.2f} | {row[3]} |")
        rows.append(row)
    return rows


def measure_tap_blocks(layers=VOLUMES, repeats=20, log=print):
    """One row per stride-1 layer of ``layers`` (3-D): (layer, ms of its forward pass on
    the lanes at each of ``TAP_BLOCK_BYTES``), best of ``repeats`` rounds."""
    from .. import tuning
    rows = []
    for layer in (layer for layer in filter(_on_lanes, layers) if layer[4] == 1):
        forward = _forced("lanes", _passes(*layer[:5], _width(layer), 3)[1]["forward"][0])

        def at(value):
            def run():
                with tuning.override(depthwise_lanes_tap_block_bytes=value):
                    forward()
            return run
        best = _best([at(value) for value in TAP_BLOCK_BYTES], repeats)
        rows.append((layer, *best))
        log(f"| {_label(layer, 3)} | " + " | ".join(f"{t:.2f}" for t in best) + " |")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnkit.bench.depthwise",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", type=int, nargs="+", metavar="I",
                        help="rows of the layer list by index, from 0")
    parser.add_argument("--spread", action="store_true",
                        help="the grouped layers' weight gradient tiles against each other")
    parser.add_argument("--volumes", action="store_true",
                        help="3-D layers (VOLUMES) in the place of the 2-D ones")
    parser.add_argument("--tap-blocks", action="store_true",
                        help="the 3-D stride-1 layers' forward passes at each tap block size")
    args = parser.parse_args(argv)
    listed, dims = (VOLUMES, 3) if args.volumes or args.tap_blocks else (LAYERS, 2)
    what = "volume" if dims == 3 else "map"
    if not 1 <= args.threads <= (os.cpu_count() or 1):
        parser.error(f"--threads: expected 1 to {os.cpu_count()}, got {args.threads}")
    if args.repeats < 1:
        parser.error(f"--repeats: expected at least 1, got {args.repeats}")
    if args.only and not all(0 <= i < len(listed) for i in args.only):
        parser.error(f"--only: expected indices 0 to {len(listed) - 1}, got {args.only}")
    import numba
    import torch

    from ..cpu import host
    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"# {host().summary()}; {args.threads} thread(s); best of {args.repeats}, ms")
    layers = [listed[i] for i in args.only] if args.only else listed
    if args.tap_blocks:
        print("| layer (images × channels × volume, kernel/stride) | " + " | ".join(
            f"{value >> 10} KB" if value < 1 << 30 else "all" for value in TAP_BLOCK_BYTES) +
            " |")
        print("|---|" + "---:|" * len(TAP_BLOCK_BYTES))
        measure_tap_blocks(layers, args.repeats)
        return
    if args.spread:
        print(f"| layer (images × channels × {what}, kernel/stride) | x permuted | dy rotated | "
              "picked |")
        print("|---|---:|---:|---|")
        measure_spread(layers, args.repeats, dims=dims)
        return
    print(f"| layer (images × channels × {what}, kernel/stride) | pass | picked | lanes | "
          "without lanes | PyTorch |")
    print("|---|---|---|---:|---:|---:|")
    measure(layers, args.repeats, dims=dims)


if __name__ == "__main__":
    main()
