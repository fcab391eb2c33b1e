"""How much of a layer's time goes to fetching its operands from memory: the training steps
of the layers that the "≥ 60 % of the FMA peak" target is judged on, timed warm (right after
a call of their own, the operands in cache) and cold (right after a pass that evicts the
caches), for cnnkit and PyTorch alike.

    python -m cnnkit.bench.cold [--only pw1x1 ...] [--repeats 12] [--evict-mb 512]
    NUMBA_CPU_NAME=haswell python -m cnnkit.bench.cold   # cnnkit's AVX2 code (PyTorch's
                            # caps: ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2)

The suites time each step right after the other library's, which leaves part of its operands
out of cache: the warm and cold columns bound that state. For a 1×1 layer it also times the
forward product alone (``implicit.channels_last``, no layout or bias) on x as it is, planes
of an NCHW array, each tap's terms a stream of its own, and on x laid out channels-last
beforehand, each position's terms one contiguous run: the layout whose reads a hardware
prefetcher follows best. When both pay the same to fetch x, the layout does not decide the
cold time, the memory does.

The evicting pass copies one buffer of ``--evict-mb`` MB to another (twice the last-level
cache Linux lists, 256 MB at least, by default), and its rate is printed: one thread's
copy bandwidth, read side.
"""
import argparse
import glob
import math
import os
import time

import numpy as np


def last_level_cache_bytes(root="/sys/devices/system/cpu/cpu0/cache"):
    """The size of the highest cache level Linux lists for CPU 0 (0 when it lists none)."""
    sizes = {}
    for index in glob.glob(os.path.join(root, "index*")):
        try:
            with open(os.path.join(index, "level")) as f:
                level = int(f.read())
            with open(os.path.join(index, "size")) as f:
                size = f.read().strip()
        except (OSError, ValueError):
            continue
        scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
        digits = size.rstrip("KM")
        if digits.isdigit():
            sizes[level] = int(digits) * scale
    return sizes[max(sizes)] if sizes else 0


def default_evict_mb():
    """Twice the last-level cache, at least 256 MB and at most 1 GB."""
    return int(min(1024, max(256, 2 * last_level_cache_bytes() >> 20)))


class Evictor:
    """A copy of ``mb`` MB from one buffer to another: run before a cold call, it leaves
    the caches holding the copy's lines instead of the call's operands."""

    def __init__(self, mb):
        self.source = np.ones(mb << 20, np.uint8)
        self.target = np.empty_like(self.source)
        self.mb = mb

    def __call__(self):
        np.copyto(self.target, self.source)

    def rate(self):
        """GB/s read by the copy, best of three."""
        self()
        best = min(_timed(self) for _ in range(3))
        return self.mb / 1024 / best


def _timed(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def warm_and_cold(ways, evict, repeats):
    """{label: (warm s, cold s)} for ``ways`` [(label, run)], round-robin: each turn evicts
    the caches, times one call (cold), makes one more and times a third (warm: its operands
    left in cache by the two before it). Best of ``repeats`` turns each."""
    for _, run in ways:
        run()
    warm = {label: math.inf for label, _ in ways}
    cold = dict(warm)
    for _ in range(repeats):
        for label, run in ways:
            evict()
            cold[label] = min(cold[label], _timed(run))
            run()
            warm[label] = min(warm[label], _timed(run))
    return {label: (warm[label], cold[label]) for label, _ in ways}


def forward_products(name, cases):
    """[(label, run)]: a 1×1 layer's forward product (``implicit.channels_last``'s kernel,
    no bias) on x as planes and on x channels-last; each run returns the product's rows,
    (N·P + MR, Kp), row n·P + p holding y[n, :, p]."""
    from ..kernels import implicit_gemm_numba as compiled
    from ..kernels.conv import implicit
    from .. import tuning
    _, n, c, k, spatial, *_ = cases[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c) + spatial, dtype=np.float32)
    w = rng.standard_normal((k, c) + (1,) * len(spatial), dtype=np.float32)
    wt = implicit._panels(w)
    ones = (1,) * len(spatial)
    rows, vectors, k_padded = compiled.tile(k)
    positions = n * math.prod(spatial)
    x_last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    corner_last = np.arange(positions, dtype=np.int64) * c
    offset_last = np.arange(c, dtype=np.int64)
    out = np.empty((positions + rows, k_padded), np.float32)
    split = implicit.task_split(positions, k_padded, compiled.LANES * vectors)

    def planes():
        return implicit.channels_last(x, wt, w.shape, ones, ones, spatial)

    def channels_last():
        compiled.ENTRY[vectors][0](x_last, wt, offset_last, corner_last, out, compiled.NO_Y,
                                   *split, tuning.value("implicit_tap_block"),
                                   compiled.NO_ROWS, compiled.NO_BIAS)
        return out
    return [("forward product, x as planes", planes),
            ("forward product, x channels-last", channels_last)]


def measure(names, repeats=12, evict_mb=None, log=print):
    """Rows {name, way, warm_ms, cold_ms} for each layer in ``names``."""
    from ..cpu import host
    from .layers import CONV_CASES, LayerStep
    from .timing import limit_threads
    import numba
    limit_threads(numba.get_num_threads())
    evict = Evictor(evict_mb or default_evict_mb())
    log(f"# {host().summary()}; {numba.get_num_threads()} threads; evicting pass: "
        f"{evict.mb} MB copied at {evict.rate():.1f} GB/s (one thread)")
    rows = []
    for name in names:
        step = LayerStep(name, CONV_CASES)
        ways = [("cnnkit step", step.ours), ("PyTorch step", step.theirs)]
        if CONV_CASES[name][5] == 1:
            ways += forward_products(name, CONV_CASES)
        for label, (warm, cold) in warm_and_cold(ways, evict, repeats).items():
            rows.append({"name": name, "way": label, "warm_ms": warm * 1e3,
                         "cold_ms": cold * 1e3})
    return rows


def table(rows):
    lines = ["| layer | way | warm ms | cold ms | cold / warm |", "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['way']} | {r['warm_ms']:.2f} | {r['cold_ms']:.2f} | "
                     f"{r['cold_ms'] / r['warm_ms']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    from .layers import PEAK_TARGET_LAYERS
    parser = argparse.ArgumentParser(prog="python -m cnnkit.bench.cold",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=PEAK_TARGET_LAYERS,
                        default=list(PEAK_TARGET_LAYERS), metavar="LAYER",
                        help=f"layers to time (of {', '.join(PEAK_TARGET_LAYERS)})")
    parser.add_argument("--repeats", type=int, default=12, help="turns, best of which is kept")
    parser.add_argument("--evict-mb", type=int, default=None,
                        help="size of the evicting copy (default: twice the last-level cache, "
                             "256 MB at least)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.evict_mb is not None and args.evict_mb < 1:
        parser.error("--evict-mb must be at least 1")
    print(table(measure(args.only, args.repeats, args.evict_mb)))


if __name__ == "__main__":
    main()
