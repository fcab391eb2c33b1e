"""Re-measure the implicit GEMM's orientation rule (``implicit.planar_wins``) on this machine,
and its rules for 1×1 layers: weight gradients (``implicit_weight_1x1_min_channels``),
passes on a few images (``implicit_pointwise_min_images``), weight gradients' position
shares (``implicit_weight_partials_per_dy``), 1×1 weight gradients with the output channels
as rows (``implicit_weight_rows_min_weights_per_position``), weight gradients of few output
channels with them as rows (``implicit_weight_channel_rows_min_positions`` and ``_max_columns``),
the planar kernel's copies of its strips (``implicit_planar_pack_min_row_tiles``), and the
planar orientation of 1×1 products on large maps (``implicit_planar_1x1_min_positions``,
``implicit_large_map_min_terms_per_output``), and its ties: 1-D layers whose orientations use
their lanes alike, over a few images and per image.

    python -m cnnkit.bench.orientation
    NUMBA_CPU_NAME=haswell python -m cnnkit.bench.orientation     # as on an AVX2 CPU

Times the stride-1 forward product (``implicit.forward``, one thread, CPU time) in both
orientations, channels-last (output channels on the lanes, then a transpose) and planar
(positions on the lanes, output channels on the tile's rows), on products of every shape the
rule tells apart: few output channels, thin and wide (few terms per output, many outputs),
and dense. Prints both times, the faster and the rule's pick. Then the weight and bias
gradients of 1×1 layers on the implicit GEMM and on shift (one matrix product per image),
likewise, the forward pass and input gradient of 1×1 layers on one to eight images,
weight gradients on few positions with a share per task or groups of taps, 1×1 weight
gradients of expanding layers in shares or with the output channels as rows, weight
gradients of few output channels with them on the lanes or the rows, 1×1 planar
products with and without their strips copied, and last 1×1 products on maps around
48 × 48 per image and planar.
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
    # output channels that leave channels-last's last vector part idle (24 of AVX-512's 32
    # lanes, 20 of 32 or 24, 40 of 48): 1×1 products, then a 3×3 one
    (16, 144, 24, (56, 56), (1, 1)), (32, 256, 20, (16, 16), (1, 1)),
    (16, 240, 40, (28, 28), (1, 1)), (16, 64, 40, (16, 16), (1, 1)),
    (32, 64, 24, (34, 34), (3, 3)),
    # fewer output channels than AVX-512's lanes on small maps, whose planar strips (one
    # image's each) idle most of their lanes: 1 × 1 on 2 × 2 and 4 × 4, 3 × 3 on 4 × 4 and 7 × 7
    (1024, 512, 10, (2, 2), (1, 1)), (1024, 512, 4, (2, 2), (1, 1)),
    (64, 256, 12, (4, 4), (1, 1)), (256, 64, 8, (6, 6), (3, 3)), (128, 32, 8, (9, 9), (3, 3)),
]
# 1×1 layers on a few images (C, K, map), each timed on 1, 2, 4 and 8 images.
FEW_IMAGES_CASES = [(320, 1280, (7, 7)), (64, 256, (56, 56)), (512, 512, (14, 14)),
                    (1024, 256, (14, 14)), (128, 512, (28, 28))]
# 1×1 weight gradients (N, C, K, map): few and many input channels, large and small maps.
WEIGHT_CASES = [(16, 24, 144, (56, 56)), (8, 32, 256, (28, 28)), (16, 64, 256, (14, 14)),
                (32, 128, 512, (7, 7)), (32, 256, 64, (16, 16)), (16, 96, 24, (56, 56)),
                (16, 3, 64, (56, 56)), (64, 8, 32, (7, 7))]


def _best(run, repeats=7, clock=time.process_time):
    run()
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        run()
        best = min(best, clock() - start)
    return best


def _each_orientation(run, clock=time.process_time):
    """[channels-last s, planar s]: ``_best`` of ``run`` with ``implicit.planar_wins`` forced
    each way."""
    from ..kernels.conv import implicit
    times = []
    for planar in (False, True):
        with mock.patch.object(implicit, "planar_wins", lambda *shape: planar):
            times.append(_best(run, clock=clock))
    return times


def _faster(times, first, second):
    """The name of the faster of two timed settings, ``times`` in the order of the names."""
    return second if times[1] < times[0] else first


def _agrees(rule, faster):
    """What each table prints after the rule's pick: nothing when it is the faster setting,
    else a mark."""
    return "" if rule == faster else "  (differs)"


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
        times = _each_orientation(lambda: implicit.forward(xp, w, ones, ones, out))
        taps = c * int(np.prod(kernel))
        rows.append(_orientation_row(
            (n, c, k, padded, kernel), times, implicit.planar_wins(k, taps, padded, out, kernel),
            f"K={k:3d} outputs, {taps:4d} terms, {n}×{c}×{'×'.join(map(str, padded))}", log))
    return rows


def _orientation_row(case, times, planar, label, log):
    """(case, channels-last s, planar s, rule's pick), logged beside the faster of the two."""
    rule = "planar" if planar else "channels-last"
    faster = _faster(times, "channels-last", "planar")
    log(f"  {label}: channels-last {times[0] * 1e3:6.3f} ms, planar {times[1] * 1e3:6.3f} ms "
        f"-> {faster:13s} rule: {rule}{_agrees(rule, faster)}")
    return (case, *times, rule)


def _on_every_core(log, seed, what):
    """Set Numba to every core, log the table's heading (``what`` is measured), and return
    the table's random generator: the wall-time tables' common start."""
    import numba
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    log(f"# {numba.get_num_threads()} threads, wall time, {what}")
    return np.random.default_rng(seed)


def measure_weight(log=print):
    """[(case, implicit s, shift s, rule's pick)] for 1×1 weight gradients with their bias
    gradient (a layer with a bias, the default, asks for both at once: the implicit GEMM sums
    it as it lays dy out, shift in a pass of its own), on every core, wall time: shift's
    products run on BLAS's threads, which one Numba thread would not limit."""
    from ..kernels import conv
    from ..kernels.conv import ConvGeometry
    rng = _on_every_core(log, 1, "1×1 weight and bias gradients: implicit GEMM against shift")
    rows = []
    for n, c, k, size in WEIGHT_CASES:
        x = rng.standard_normal((n, c) + size, dtype=np.float32)
        dy = rng.standard_normal((n, k) + size, dtype=np.float32)
        times = []
        for algorithm in ("implicit", "shift"):
            with conv.using(algorithm=algorithm):
                times.append(_best(lambda: conv.conv_backward_weight(
                    x, dy, (1, 1), (1, 1), (1, 1), with_bias=True), clock=time.perf_counter))
        rule = conv.select(ConvGeometry.of(x.shape, (k, c, 1, 1), (1, 1), (1, 1)), "weight")
        faster = _faster(times, "implicit", "shift")
        rows.append(((n, c, k, size), *times, rule))
        log(f"  C={c:3d} → K={k:3d}, {n}×{'×'.join(map(str, size))}: implicit "
            f"{times[0] * 1e3:6.2f} ms, shift {times[1] * 1e3:6.2f} ms -> {faster:8s} rule: "
            f"{rule}{_agrees(rule, faster)}")
    return rows


def measure_few_images(log=print):
    """[(case, pass, implicit s, shift s, rule's pick)] for the forward pass and input
    gradient of 1×1 layers on 1, 2, 4 and 8 images, on every core, wall time (shift's
    products run on BLAS's threads)."""
    from ..kernels import conv
    from ..kernels.conv import ConvGeometry
    rng = _on_every_core(log, 2, "1×1 forward and input passes on a few images: implicit "
                               "GEMM against shift")
    rows = []
    for n in (1, 2, 4, 8):
        for c, k, size in FEW_IMAGES_CASES:
            x = rng.standard_normal((n, c) + size, dtype=np.float32)
            w = rng.standard_normal((k, c, 1, 1), dtype=np.float32)
            dy = rng.standard_normal((n, k) + size, dtype=np.float32)
            passes = {"forward": lambda: conv.conv_forward(x, w, (1, 1), (1, 1)),
                      "input": lambda: conv.conv_backward_input(dy, w, size, (1, 1), (1, 1))}
            geometry = ConvGeometry.of(x.shape, w.shape, (1, 1), (1, 1))
            for pass_name, run in passes.items():
                times = []
                for algorithm in ("implicit", "shift"):
                    with conv.using(algorithm=algorithm):
                        times.append(_best(run, clock=time.perf_counter))
                rule = conv.select(geometry, pass_name)
                faster = _faster(times, "implicit", "shift")
                rows.append(((n, c, k, size), pass_name, *times, rule))
                log(f"  {pass_name:7s} C={c:4d} → K={k:4d}, {n}×{'×'.join(map(str, size))}: "
                    f"implicit {times[0] * 1e3:6.2f} ms, shift {times[1] * 1e3:6.2f} ms "
                    f"({times[1] / times[0]:.2f}) -> {faster:8s} rule: "
                    f"{rule}{_agrees(rule, faster)}")
    return rows


# Weight gradients (N, C, K, map, kernel) on fewer positions than
# ``implicit_weight_shares`` shares of ``implicit_weight_share_positions``: 1×1 and 3×3
# layers in the order of their tasks' partial sums over dy's values, from 0.06 to 1.31.
SHARE_CASES = [(32, 256, 64, (16, 16), 1), (32, 64, 256, (16, 16), 1),
               (16, 64, 256, (14, 14), 1), (32, 128, 512, (7, 7), 1), (32, 24, 48, (14, 14), 3),
               (8, 32, 32, (28, 28), 3), (128, 64, 128, (7, 7), 3), (16, 32, 32, (16, 16), 3),
               (96, 64, 128, (7, 7), 3), (64, 256, 256, (8, 8), 3), (16, 512, 128, (14, 14), 1)]


def measure_weight_shares(log=print):
    """[(case, groups of taps s, a share per task s, rule's pick)] for weight gradients with
    their bias gradient, ``implicit_weight_partials_per_dy`` off (0) and at its value, on
    every core, wall time, alternating."""
    from .. import tuning
    from ..kernels.conv import implicit
    from .timing import best_of_interleaved
    rng = _on_every_core(log, 6, "weight gradients on few positions: groups of taps against "
                               "a share per task")
    rows = []
    for n, c, k, size, kernel in SHARE_CASES:
        pad = kernel // 2
        xp = rng.standard_normal((n, c) + tuple(s + 2 * pad for s in size), dtype=np.float32)
        dy = rng.standard_normal((n, k) + size, dtype=np.float32)
        ones = (1,) * len(size)

        def run(value):
            def call():
                with tuning.override(implicit_weight_partials_per_dy=value):
                    implicit.backward_weight(xp, dy, (kernel,) * len(size), ones, ones, True)
            return call
        times = best_of_interleaved([run(0), run(1 << 20)], 9, 2, 10.0)
        _, groups = implicit.weight_shares(n * int(np.prod(size)), c * kernel ** len(size), k,
                                           implicit.compiled.tile(k)[2])
        rule = "per task" if groups == 1 else "groups"
        faster = _faster(times, "groups", "per task")
        rows.append(((n, c, k, size, kernel), *times, rule))
        log(f"  C={c:3d} → K={k:3d}, {kernel}×{kernel} on {n}×{'×'.join(map(str, size))}: "
            f"groups {times[0] * 1e3:6.2f} ms, a share per task {times[1] * 1e3:6.2f} ms "
            f"({times[1] / times[0]:.2f}) -> {faster:8s} rule: {rule}"
            f"{_agrees(rule, faster)}")
    return rows


# 1×1 weight gradients with more output than input channels (N, C, K, map), in the order of
# their weights per output position (K·C / (N·P)), from 5 to 2675.
ROWS_CASES = [(16, 64, 256, (14, 14)), (16, 96, 576, (14, 14)), (16, 256, 512, (14, 14)),
              (32, 128, 512, (7, 7)), (16, 256, 1024, (14, 14)), (16, 128, 1024, (7, 7)),
              (8, 256, 512, (7, 7)), (8, 320, 1280, (7, 7)), (8, 512, 2048, (7, 7))]


def measure_weight_rows(log=print):
    """[(case, shares s, output rows s, rule's pick)] for 1×1 weight gradients with their
    bias gradient: the usual shares and groups of taps against one product with the output
    channels as its rows (``implicit_weight_rows_min_weights_per_position`` off and on), on
    every core, wall time, alternating."""
    from .. import tuning
    from ..kernels.conv import implicit
    from .timing import best_of_interleaved
    rng = _on_every_core(log, 7, "1×1 weight gradients with more output than input "
                               "channels: shares against the output channels as rows")
    rows = []
    for n, c, k, size in ROWS_CASES:
        xp = rng.standard_normal((n, c) + size, dtype=np.float32)
        dy = rng.standard_normal((n, k) + size, dtype=np.float32)
        ones = (1,) * len(size)

        def run(least):
            def call():
                with tuning.override(implicit_weight_rows_min_weights_per_position=least):
                    implicit.backward_weight(xp, dy, ones, ones, ones, True)
            return call
        times = best_of_interleaved([run(0), run(1e-9)], 9, 2, 10.0)
        positions = n * int(np.prod(size))
        rule = "rows" if implicit.weight_by_output_rows(positions, k, c, ones, ones) \
            else "shares"
        faster = _faster(times, "shares", "rows")
        rows.append(((n, c, k, size), *times, rule))
        log(f"  C={c:3d} → K={k:4d} on {n}×{'×'.join(map(str, size))} "
            f"({k * c / positions:6.1f} weights per position): shares {times[0] * 1e3:6.2f} "
            f"ms, output rows {times[1] * 1e3:6.2f} ms ({times[1] / times[0]:.2f}) -> "
            f"{faster:6s} rule: {rule}{_agrees(rule, faster)}")
    return rows


# Weight gradients of few output channels (N, C, K, padded map, kernel): 3×3 and 5×5, small
# and large maps, the rule's sides of each of its conditions.
CHANNEL_ROWS_CASES = [
    (128, 16, 16, (30, 30), (3, 3)), (64, 8, 8, (34, 34), (3, 3)),
    (32, 16, 8, (58, 58), (3, 3)), (128, 16, 12, (16, 16), (3, 3)),
    (128, 16, 16, (12, 12), (3, 3)), (128, 6, 16, (14, 14), (5, 5)),
    (128, 6, 8, (14, 14), (5, 5)), (128, 8, 16, (14, 14), (5, 5)),
    (128, 1, 16, (30, 30), (3, 3)), (32, 3, 16, (66, 66), (3, 3)),
    (64, 32, 16, (30, 30), (3, 3)), (32, 64, 16, (30, 30), (3, 3)),
    (64, 4, 8, (34, 34), (3, 3)), (128, 8, 6, (30, 30), (3, 3)), (32, 32, 8, (30, 30), (3, 3)),
]


def measure_weight_channel_rows(log=print):
    """[(case, channels-last s, channel rows s, rule's pick)] for weight gradients of at most
    a vector of output channels, with the bias gradient: the channels-last tile (output
    channels on the lanes) against the output channels on the tile's rows
    (``implicit.weight_by_channel_rows``), on every core, wall time, alternating."""
    from .. import tuning
    from ..kernels import implicit_gemm_numba
    from ..kernels.conv import implicit
    from .timing import best_of_interleaved
    rng = _on_every_core(log, 8, "weight gradients of few output channels: channels-last "
                               "against the output channels as the tile's rows")
    rows = []
    for n, c, k, size, kernel in CHANNEL_ROWS_CASES:
        if k > implicit_gemm_numba.LANES:
            continue
        xp = rng.standard_normal((n, c) + size, dtype=np.float32)
        out = tuple(s - kk + 1 for s, kk in zip(size, kernel))
        dy = rng.standard_normal((n, k) + out, dtype=np.float32)
        ones = (1,) * len(size)

        def channels_last():
            with tuning.override(implicit_weight_channel_rows_min_positions=1 << 30):
                implicit.backward_weight(xp, dy, kernel, ones, ones, True)

        def channel_rows():
            implicit._weight_by_channel_rows(xp, dy.reshape(n, k, -1), kernel, ones, ones, True)
        times = best_of_interleaved([channels_last, channel_rows], 9, 2, 10.0)
        rule = "rows" if implicit.weight_by_channel_rows(k, c, kernel, ones, int(np.prod(out))) \
            else "last"
        faster = _faster(times, "last", "rows")
        rows.append(((n, c, k, size, kernel), *times, rule))
        log(f"  C={c:3d} → K={k:3d}, {'×'.join(map(str, kernel))} on {n}×"
            f"{'×'.join(map(str, out))}: channels-last {times[0] * 1e3:6.2f} ms, channel rows "
            f"{times[1] * 1e3:6.2f} ms ({times[1] / times[0]:.2f}) -> {faster:4s} rule: {rule}"
            f"{_agrees(rule, faster)}")
    return rows


# 1×1 planar products (N, C, map, K outputs): maps whose planes are 1 KB apart or not, few
# and many outputs, each on an input 16 bytes past a cache line (as NumPy places a large array)
# and on one (as ``kernels/aligned.py`` places it).
PACKING_CASES = [(32, 64, (16, 16), k) for k in (64, 128, 256)] + \
    [(8, 64, (32, 32), 256), (16, 64, (28, 28), 256), (16, 64, (24, 24), 256),
     (32, 128, (14, 14), 256)]


def measure_packing(log=print):
    """[(case, input's bytes past a line, plain s, packed s, rule's pick)] for the planar
    kernel's copies of its strips (``implicit_planar_pack_min_row_tiles``,
    ``implicit._packs_planar``), on every core, wall time."""
    from ..kernels import aligned
    from ..kernels.conv import implicit
    rng = _on_every_core(log, 3, "1×1 planar products on an input 16 bytes past a cache "
                               "line and on one: plain against packed strips")
    rows = []
    for n, c, size, k in PACKING_CASES:
        x = rng.standard_normal((n, c) + size, dtype=np.float32)
        w = rng.standard_normal((k, c, 1, 1), dtype=np.float32)
        for past in (16, 0):
            buffer = aligned.empty(x.size + past // 4)
            xp = buffer[past // 4:].reshape(x.shape)
            xp[...] = x
            times = []
            for packed in (False, True):
                with mock.patch.object(implicit, "_packs_planar", lambda *args: packed):
                    times.append(_best(lambda: implicit._forward_planar(xp, w, (1, 1), size),
                                       clock=time.perf_counter))
            plane = size[0] * size[1]
            rule = implicit._packs_planar(xp.reshape(-1), c * plane, plane, 1,
                                          -(-k // implicit.compiled.PLANAR_ROWS))
            faster = _faster(times, False, True)  # packed or not
            rows.append(((n, c, size, k), past, *times, rule))
            log(f"  K={k:3d} outputs, {c} terms, {n}×{'×'.join(map(str, size))}, {past:2d} bytes "
                f"past a line: plain {times[0] * 1e3:6.2f} ms, packed {times[1] * 1e3:6.2f} ms "
                f"({times[1] / times[0]:.2f}) -> {'packed' if faster else 'plain':6s} rule: "
                f"{'packed' if rule else 'plain'}{_agrees(rule, faster)}")
    return rows


# 1×1 products on maps around ``implicit_planar_1x1_min_positions`` (N=32, C terms, K
# outputs, map): thin, square and deep products on 28 × 28 to 56 × 56 maps, the deep ones at
# 2 and 4 terms per output (``implicit_large_map_min_terms_per_output``), and a deep one of
# two vectors of outputs on AVX-512 (narrower than its planar tile).
MAP_CASES = [(32, c, k, (s, s)) for s in (28, 36, 42, 48, 56)
             for c, k in ((64, 256), (256, 64), (256, 256), (128, 128), (256, 128), (64, 32))]


def measure_large_maps(log=print):
    """[(case, per-image s, planar s, rule's pick)] for 1×1 forward products on every core,
    wall time: channels-last with a task per image (``implicit.per_image_product``, the
    channels-last pick of these shapes) against planar (``implicit_planar_1x1_min_positions``
    and ``implicit_large_map_min_terms_per_output`` decide between them)."""
    from ..kernels.conv import implicit
    rng = _on_every_core(log, 4, "1×1 products on large maps: channels-last per image "
                               "against planar")
    rows = []
    for n, c, k, size in MAP_CASES:
        x = rng.standard_normal((n, c) + size, dtype=np.float32)
        w = rng.standard_normal((k, c, 1, 1), dtype=np.float32)
        panels = implicit._panels(w)
        ones, zero = (1, 1), ((0, 0), (0, 0))
        times = [_best(lambda: implicit.per_image_product(x, zero, panels, w.shape, ones, size),
                       clock=time.perf_counter),
                 _best(lambda: implicit.forward(x, w, ones, ones, size, planar=True),
                       clock=time.perf_counter)]
        rule = "planar" if implicit.planar_wins(k, c, size, size, (1, 1), n) else "per image"
        faster = _faster(times, "per image", "planar")
        rows.append(((n, c, k, size), *times, rule))
        log(f"  K={k:3d} outputs, {c:3d} terms, {n}×{'×'.join(map(str, size))}: per image "
            f"{times[0] * 1e3:6.2f} ms, planar {times[1] * 1e3:6.2f} ms "
            f"({times[0] / times[1]:.2f}× as long) -> {faster:9s} rule: {rule}"
            f"{_agrees(rule, faster)}")
    return rows


# 1-D layers (N, C, K, length, kernel) whose two orientations use their lanes alike (K a
# multiple of the vector, thin: ``planar_wins``' ties), over a few images and per image.
TIE_CASES = [(1, 32, 256, 64, 3), (1, 32, 256, 1024, 3), (4, 16, 128, 2048, 3),
             (1, 8, 64, 4096, 3), (16, 8, 64, 4096, 3), (8, 3, 64, 1024, 7)]


def measure_ties(log=print):
    """[(case, channels-last s, planar s, rule's pick)] for the stride-1 forward passes of
    ``TIE_CASES`` from an input to pad (``implicit.forward_from``, so a task per image where
    ``per_image_tasks`` has one, in either orientation), on every core, wall time."""
    from ..kernels.conv import ConvGeometry, PaddedInput, implicit
    rng = _on_every_core(log, 5, "1-D forward passes whose orientations use their lanes alike")
    rows = []
    for n, c, k, length, kernel in TIE_CASES:
        x = rng.standard_normal((n, c, length), dtype=np.float32)
        w = rng.standard_normal((k, c, kernel), dtype=np.float32)
        pads = ((kernel // 2, kernel - 1 - kernel // 2),)
        g = ConvGeometry.of((n, c, length + kernel - 1), w.shape, (1,), (1,), 1, np.float32,
                            pads)
        times = _each_orientation(lambda: implicit.forward_from(PaddedInput(x, pads), w, g),
                                  clock=time.perf_counter)
        rows.append(_orientation_row(
            (n, c, k, length, kernel), times, implicit._groups_run_planar(g),
            f"K={k:3d} outputs, {c * kernel:3d} terms, {n}×{c}×{length}", log))
    return rows


if __name__ == "__main__":
    measure()
    measure_weight()
    measure_few_images()
    measure_weight_shares()
    measure_weight_rows()
    measure_weight_channel_rows()
    measure_packing()
    measure_large_maps()
    measure_ties()
