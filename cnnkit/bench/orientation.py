"""Re-measure the implicit GEMM's orientation rule (``implicit.planar_wins``) on this machine.

    python -m cnnkit.bench.orientation
    NUMBA_CPU_NAME=haswell python -m cnnkit.bench.orientation     # as on an AVX2 CPU

Times the stride-1 forward product (``implicit.forward``, one thread, CPU time) in both
orientations, channels-last (output channels on the lanes, then a transpose) and planar
(positions on the lanes, output channels on the tile's rows), on products of every shape the
rule tells apart: few output channels, thin and wide (few terms per output, many outputs),
and dense. Prints both times, the faster and the rule's pick.
"""
import time
from unittest import mock

import numpy as np

# (N, C, K, padded spatial, kernel): C·prod(kernel) terms per output, K outputs.
CASES = [
    (32, 64, 256, (16, 16), (1, 1)), (16, 128, 128, (16, 16), (1, 1)),
    (4, 16, 8, (18, 18, 18), (3, 3, 3)), (4, 8, 16, (18, 18, 18), (3, 3, 3)),
    (64, 1, 32, (32, 32), (5, 5)), (32, 3, 64, (34, 34), (3, 3)),
    (32, 16, 16, (34, 34), (3, 3)), (32, 32, 8, (34, 34), (3, 3)),
    (32, 8, 64, (34, 34), (3, 3)), (32, 64, 32, (18, 18), (3, 3)),
    (8, 320, 1280, (7, 7), (1, 1)), (16, 128, 512, (14, 14), (1, 1)),
    (16, 32, 192, (16, 16), (3, 3)),
]


def _best(run, repeats=7):
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def measure(log=print):
    """[(case, channels-last s, planar s, rule's pick)] on one thread."""
    import numba

    from ..cpu import host
    from ..kernels.conv import implicit
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    log(f"# {host().summary()}; one thread, CPU time, stride-1 forward product")
    rows = []
    for n, c, k, padded, kernel in CASES:
        xp = rng.standard_normal((n, c) + padded, dtype=np.float32)
        w = rng.standard_normal((k, c) + kernel, dtype=np.float32)
        out = tuple(p - q + 1 for p, q in zip(padded, kernel))
        ones = (1,) * len(kernel)
        times = []
        for planar in (False, True):
            with mock.patch.object(implicit, "planar_wins", lambda *shape: planar):
                times.append(_best(lambda: implicit.forward(xp, w, ones, ones, out)))
        taps = c * int(np.prod(kernel))
        rule = "planar" if implicit.planar_wins(k, taps, padded, out) else "channels-last"
        faster = "planar" if times[1] < times[0] else "channels-last"
        rows.append(((n, c, k, padded, kernel), *times, rule))
        log(f"  K={k:3d} outputs, {taps:4d} terms, {n}×{c}×{'×'.join(map(str, padded))}: "
            f"channels-last {times[0] * 1e3:6.2f} ms, planar {times[1] * 1e3:6.2f} ms -> "
            f"{faster:13s} rule: {rule}{'' if rule == faster else '  (differs)'}")
    return rows


if __name__ == "__main__":
    measure()
