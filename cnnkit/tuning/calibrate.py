"""Re-measure this machine's constants: ``cnnkit tune`` / ``python -m cnnkit.bench --calibrate``.

Only what a short timing can measure honestly (under a minute; ``fast`` for tests):

* cost models, fitted by least squares on a few timed shapes, relative error weighted:
  the row correlation (``rows_*``: ns per lane multiply-add for one- and four-row tiles, per
  element copied, per call), the FFT convolution (``fft_ns_per_nlogn_*``, ``fft_overhead_ns``),
  ``np.convolve`` on real and complex inputs (``npconvolve_*``), and the N-D direct signal
  paths of other dtypes than float32 (``loop_*``, ``window_*``). One core, like the defaults.
* ratios: how much dearer the FFT's estimated work is against the implicit GEMM's
  multiply-adds than against the direct sums it counts (``implicit_fft_cost_factor``, the
  geometric mean over large-kernel layers, on all threads as the passes run).
* crossovers, by timing both candidates on growing sizes: compiled ReLU against NumPy's
  (``compiled_min_size``, all threads, since the threshold is the price of waking them), the
  compiled max pooling and batch norm (training) against NumPy's (``pool_compiled_min_size``,
  ``batchnorm_training_compiled_min_size``, through the functional layers), the compiled
  depthwise passes against NumPy's sums (``depthwise_compiled_min_work``), and depthwise layers
  with their channels on the lanes against a plane's columns on the lanes
  (``depthwise_lanes_*``), and the implicit GEMM against im2col on a thin product
  (``implicit_thin_min_outputs``).

On a cold Numba cache most of a run is compiling the kernels it times; ``precompile`` does
that first, on as many processes as Numba has threads.

A fit that gives a value outside a constant's range, or a crossover not found within the
sizes tried, keeps the default (and says so); the values of one fit are kept or left
together (``_together``). The other constants are rules read off the
benchmark, not timing models: printed as 'default kept'.
"""
import math
import time

import numpy as np

from .constants import CONSTANTS
from .store import InvalidCache, check_value


def best_ns(run, repeats=3):
    """ns of the fastest of ``repeats`` calls, after one warm-up call (compilation, caches);
    the conv autotune times its candidates with it too."""
    run()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter_ns()
        run()
        best = min(best, time.perf_counter_ns() - start)
    return float(best)


def _fit(features, times):
    """Least squares of times ≈ features @ weights, each row scaled by 1/time (relative error)."""
    a = np.asarray(features, np.float64)
    t = np.asarray(times, np.float64)
    weights, *_ = np.linalg.lstsq(a / t[:, None], np.ones_like(t), rcond=None)
    return weights


def _rows(fast, time_ns):
    from ..kernels import correlate_rows
    rng = np.random.default_rng(0)
    signals = [(n, k) for n in ((2000, 8000) if fast else (8000, 32000, 128000))
               for k in ((9, 33) if fast else (15, 63, 127))]
    images = [(n, k) for n in ((24, 48) if fast else (64, 128, 256))
              for k in ((3, 7) if fast else (3, 7, 11))]
    features, times = [], []
    shapes = [((n,), (k,)) for n, k in signals] + [((n, n), (k, k)) for n, k in images]
    for out, kernel in shapes:
        x = rng.standard_normal(tuple(o + q - 1 for o, q in zip(out, kernel))).astype(np.float32)
        w = rng.standard_normal(kernel).astype(np.float32)
        rows, lane_macs, copied = correlate_rows.cost_terms(kernel, out)
        features.append([lane_macs if rows == 1 else 0, lane_macs if rows == 4 else 0,
                         copied, 1.0])
        times.append(time_ns(lambda: correlate_rows.correlate(x, w, (0,) * len(out), out)))
    names = ["rows_ns_per_lane_mac_1row", "rows_ns_per_lane_mac_4rows",
             "rows_ns_per_element_copied", "rows_overhead_ns"]
    return dict(zip(names, _fit(features, times)))


def _fft(fast, time_ns):
    from ..kernels.fft_conv import fft_convolve, fft_cost_terms
    rng = np.random.default_rng(1)
    shapes = [((n,), (k,)) for n in ((1000, 6000) if fast else (2000, 6000, 12000))
              for k in (31, 301)]
    shapes += [((n, n), (k, k)) for n in ((32, 96) if fast else (64, 192, 384)) for k in (5, 15)]
    shapes += [((n,), (101,)) for n in ((40000,) if fast else (100000, 400000))]  # overlap-add
    names = ["fft_ns_per_nlogn_1d", "fft_ns_per_nlogn_nd", "fft_ns_per_nlogn_overlap_add"]
    features, times = [], []
    for a_shape, b_shape in shapes:
        a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
        per_work, work = fft_cost_terms(a_shape, b_shape)
        features.append([work if name == per_work else 0.0 for name in names] + [1.0])
        times.append(time_ns(lambda: fft_convolve(a, b)))
    return dict(zip(names + ["fft_overhead_ns"], _fit(features, times)))


def _npconvolve(fast, time_ns):
    """np.convolve's rate on real floats and on the other kinds (complex numbers stand for
    them: integers and bools run at a rate of their own, rarely enough to leave it there),
    with one fixed cost."""
    rng = np.random.default_rng(2)
    features, times = [], []
    for kind in ("float", "other"):
        for n in ((500, 4000) if fast else (1000, 10000, 50000)):
            for k in (3, 64, 256):
                a, b = rng.standard_normal(n), rng.standard_normal(k)
                if kind == "other":
                    a, b = a + 1j * rng.standard_normal(n), b + 1j * rng.standard_normal(k)
                features.append([n * k if kind == "float" else 0.0,
                                 n * k if kind == "other" else 0.0, 1.0])
                times.append(time_ns(lambda: np.convolve(a, b)))
    return dict(zip(["npconvolve_ns_per_mac_float", "npconvolve_ns_per_mac_other",
                     "npconvolve_overhead_ns"], _fit(features, times)))


def _direct_nd(fast, time_ns):
    """The N-D direct signal paths of dtypes other than float32 (``signal.direct``), on
    float64 images, 'full' regions: the kernel-offset loop, a cost per multiply-add and one per
    offset; the sliding-window einsum, a cost per multiply-add, one per output value and one
    per call (kernels from 2 × 2 up, where the cost per output weighs most)."""
    from ..signal import direct
    rng = np.random.default_rng(3)
    loop_features, loop_times, window_features, window_times = [], [], [], []
    for n in (48, 96) if fast else (64, 128, 256):
        for k in (2, 3, 7) if fast else (2, 3, 5, 9):
            x, w = rng.standard_normal((n, n)), rng.standard_normal((k, k))
            out = (n + k - 1,) * 2
            outputs = float(out[0] * out[1])
            loop_features.append([outputs * k * k, float(k * k)])
            loop_times.append(time_ns(lambda: direct._offset_loop(x, w, (0, 0), out)))
            window_features.append([outputs * k * k, outputs, 1.0])
            window_times.append(time_ns(lambda: direct._windowed(x, w, (0, 0), out)))
    return {**_together(["loop_ns_per_mac", "loop_overhead_ns_per_offset"],
                        _fit(loop_features, loop_times)),
            **_together(["window_ns_per_mac", "window_ns_per_output", "window_overhead_ns"],
                        _fit(window_features, window_times))}


def _together(names, values):
    """{name: value} of one fit, or all None (defaults kept) when any value is outside its
    constant's range: the others were fitted on the assumption of that one."""
    try:
        for name, value in zip(names, values):
            check_value(name, value)
    except InvalidCache:
        return dict.fromkeys(names)
    return dict(zip(names, values))


def _implicit_fft(fast, time_ns):
    """``implicit_fft_cost_factor``: over large-kernel layers' forward passes, the geometric
    mean of (FFT time / implicit GEMM time) / ``fft.cost_ratio``, each forced, on this
    process's threads (as the passes run)."""
    from ..kernels import conv
    from ..kernels.conv import dispatch, fft
    rng = np.random.default_rng(4)
    layers = ((4, 8, 8, 32, 13), (2, 16, 16, 32, 21)) if fast else \
        ((8, 16, 16, 48, 13), (4, 16, 16, 48, 21), (2, 32, 32, 40, 31))
    logs = []
    for n, c, k, size, kernel in layers:
        x = rng.standard_normal((n, c, size, size), dtype=np.float32)
        w = rng.standard_normal((k, c, kernel, kernel), dtype=np.float32)
        pads = ((kernel // 2,) * 2,) * 2
        times = {}
        for name in ("implicit", "fft"):
            def run(name=name):
                with conv.using(algorithm=name):
                    dispatch.conv_forward(x, w, (1, 1), (1, 1), pads=pads)
            times[name] = time_ns(run)
        padded = (size + 2 * (kernel // 2),) * 2
        ratio = fft.cost_ratio(n, c, k, (kernel, kernel), (size, size), padded)
        logs.append(math.log(times["fft"] / times["implicit"] / ratio))
    return {"implicit_fft_cost_factor": math.exp(sum(logs) / len(logs))}


def _implicit_thin(fast, time_ns):
    """``implicit_thin_min_outputs``: the crossover, in output values, from which the implicit
    GEMM beats im2col on a thin product (4 → 64 channels, 1 × 1 at stride 2, 8 images: 4
    terms per output, where shift does not apply), each forced, on this process's threads."""
    from ..kernels import conv
    from ..kernels.conv import dispatch
    rng = np.random.default_rng(5)
    sides = (8, 16, 32, 64) if fast else (8, 12, 16, 24, 32, 48, 64)
    w = rng.standard_normal((64, 4, 1, 1), dtype=np.float32)
    inputs = {8 * 64 * side * side: rng.standard_normal((8, 4, 2 * side, 2 * side),
                                                         dtype=np.float32) for side in sides}

    def forced(name):
        def call(size):
            def run():
                with conv.using(algorithm=name):
                    dispatch.conv_forward(inputs[size], w, (2, 2), (1, 1))
            return run
        return call
    return {"implicit_thin_min_outputs": _crossover(sorted(inputs), forced("gemm"),
                                                    forced("implicit"), time_ns)}


def _crossover(sizes, slow, fast, time_ns):
    """The size from which ``fast(size)`` beats ``slow(size)`` on every larger size tried (the
    geometric mean of the last size where it lost and the next), or None if it loses at the
    largest. ``slow`` and ``fast`` make the call to time for a size."""
    lost = [i for i, size in enumerate(sizes) if time_ns(fast(size)) >= time_ns(slow(size))]
    if not lost:
        return sizes[0]
    if lost[-1] == len(sizes) - 1:
        return None
    return int(math.sqrt(sizes[lost[-1]] * sizes[lost[-1] + 1]))


def _compiled_relu(fast, time_ns):
    from ..kernels import relu_numba
    sizes = [1 << e for e in range(10, 19 if fast else 23, 2)]

    def arrays(size):
        return np.random.default_rng(3).standard_normal(size).astype(np.float32), \
            np.empty(size, np.float32)

    def compiled(size):
        x, out = arrays(size)
        return lambda: relu_numba.forward(x, out)

    def numpy(size):
        x, out = arrays(size)
        return lambda: np.maximum(x, 0, out=out)
    return {"compiled_min_size": _crossover(sizes, numpy, compiled, time_ns)}


def _functional_crossover(name, layer, fast, time_ns):
    """``_crossover`` of a functional layer on NumPy's path against the compiled one, chosen
    by the threshold ``name``; ``layer(x)`` runs the layer on a batch of one 32-channel image
    of about ``size`` values, from 256 on."""
    from .. import no_grad, tensor
    from . import override
    sizes = [1 << e for e in range(8, 15 if fast else 19, 2)]

    def timed(threshold):
        def call(size):
            side = max(2, round(math.sqrt(size / 32)) // 2 * 2)
            x = tensor(np.random.default_rng(5).standard_normal((1, 32, side, side))
                       .astype(np.float32))

            def run():
                with no_grad(), override(**{name: threshold}):
                    layer(x)
            return run
        return call
    return {name: _crossover(sizes, timed(1 << 62), timed(0), time_ns)}


def _compiled_pooling(fast, time_ns):
    """NumPy's max pooling (a pass per kernel offset) against the compiled kernel, 2 × 2."""
    from .. import functional as F
    return _functional_crossover("pool_compiled_min_size", lambda x: F.max_pool2d(x, 2), fast,
                                 time_ns)


def _compiled_batch_norm(fast, time_ns):
    """NumPy's batch norm against the compiled one, in training (the batch's statistics and
    the running ones' update; evaluation of a map runs compiled at every size,
    ``functional.normalization._evaluated``)."""
    from .. import functional as F
    mean, var = np.zeros(32, np.float32), np.ones(32, np.float32)
    return _functional_crossover("batchnorm_training_compiled_min_size",
                                 lambda x: F.batch_norm(x, mean, var, training=True), fast,
                                 time_ns)


def _compiled_depthwise(fast, time_ns):
    """The compiled depthwise kernels against NumPy's sums (a pass per kernel tap), on 2 images
    of 16 channels, 3 × 3, maps of 1 × 1 on: the largest of the forward pass's, the input
    gradient's and the weight gradient's crossovers, since the one threshold chooses for all
    three; 0 where the compiled kernels win all three at every size (``_crossover`` then
    gives the smallest size tried, under which they would be NumPy's untimed); None (the
    default kept) where one pass's compiled kernel loses at the largest size."""
    from ..kernels import depthwise_numba
    from ..kernels.conv import depthwise
    maps = (1, 2, 4, 8, 16, 32) if fast else (1, 2, 4, 8, 16, 32, 64, 128)

    def layer(pass_name):
        def call(kernels, side):
            rng = np.random.default_rng(4)
            xp = rng.standard_normal((2, 16, side + 2, side + 2)).astype(np.float32)
            w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
            dy = rng.standard_normal((2, 16, side, side)).astype(np.float32)
            if pass_name == "forward":
                return lambda: kernels.forward(xp, w, (1, 1), (1, 1), (side, side))
            if pass_name == "input":
                return lambda: kernels.backward_input(dy, w, xp.shape[2:], (1, 1), (1, 1), 16)
            return lambda: kernels.backward_weight(xp, dy, (3, 3), (1, 1), (1, 1))
        return call
    work = [2 * 16 * side * side * 9 for side in maps]
    side_of = dict(zip(work, maps))
    crossovers = [_crossover(work, lambda m, run=layer(p): run(depthwise, side_of[m]),
                             lambda m, run=layer(p): run(depthwise_numba, side_of[m]), time_ns)
                  for p in ("forward", "input", "weight")]
    if None in crossovers:
        return {"depthwise_compiled_min_work": None}
    largest = max(crossovers)
    return {"depthwise_compiled_min_work": 0 if largest == work[0] else largest}


def _depthwise_case(kernel=3):
    """(lanes kernels, row-correlation kernels, weights, padding, maps(width, images)): the
    layer the depthwise-lanes crossovers time, ``kernel`` × ``kernel`` depthwise, padded by
    kernel // 2, 64 channels, maps of a padded ``width``."""
    from ..kernels import depthwise_lanes_numba as lanes
    from ..kernels.conv import rows
    rng = np.random.default_rng(5)
    w = rng.standard_normal((64, 1, kernel, kernel)).astype(np.float32)
    pad = kernel // 2

    def maps(width, images):
        side = width - 2 * pad
        return rng.standard_normal((images, 64, side, side)).astype(np.float32)
    return lanes, rows, w, ((pad, pad), (pad, pad)), maps


def _forward_crossover(constant, kernel, widths, time_ns):
    """{constant: the padded width from which the row correlation's forward pass (8 images of
    ``_depthwise_case(kernel)``) beats the lanes'}: the 3 × 3 stencil's for 3, the row
    correlation's own above."""
    lanes, rows, w, pads, maps = _depthwise_case(kernel)

    def forward(kernels, width):
        x = maps(width, 8)
        out = x.shape[2:]
        if kernels is lanes:
            return lambda: lanes.forward(x, w, pads, (1, 1), (1, 1), out)
        return lambda: rows.forward(x, w, out, pads)
    return {constant: _crossover(widths, lambda m: forward(lanes, m),
                                 lambda m: forward(rows, m), time_ns)}


def _depthwise_lanes_stencil(fast, time_ns):
    """The stencil's forward pass with the channels on the lanes against a plane's columns on
    the lanes."""
    return _forward_crossover("depthwise_lanes_stencil_max_width", 3,
                              (6, 10, 16, 24) if fast else (6, 8, 12, 16, 24, 32), time_ns)


def _depthwise_lanes_input(fast, time_ns):
    """The row correlation's input gradient (8 images) with the channels on the lanes against
    a plane's columns on the lanes (``_depthwise_case``)."""
    lanes, rows, w, pads, maps = _depthwise_case()

    def input_gradient(kernels, width):
        dy = maps(width, 4 if fast else 8)
        inner = dy.shape[2:]
        if kernels is lanes:
            return lambda: lanes.backward_input(dy, w, inner, pads, (1, 1), (1, 1))
        return lambda: rows.correlated_input(dy, w, 64, pads, inner)
    widths = (10, 34, 66) if fast else (10, 18, 26, 34, 50, 66, 130)
    return {"depthwise_lanes_max_width": _crossover(
        widths, lambda m: input_gradient(lanes, m), lambda m: input_gradient(rows, m), time_ns)}


def _depthwise_lanes_wide(fast, time_ns):
    """The same for a 5 × 5 layer, against the row correlation."""
    return _forward_crossover("depthwise_lanes_wide_max_width", 5,
                              (20, 52, 100) if fast else (12, 20, 36, 52, 68, 100, 132),
                              time_ns)


def _depthwise_lanes_strided(fast, time_ns):
    """The strided forward pass (3 × 3 at stride 2, padding 1, 64 channels, 8 images: a
    training batch, whose maps outgrow the caches from about 128 × 128) with the channels on
    the lanes against the sum over the input's stride phases, each as the dispatcher runs
    it."""
    from ..kernels import conv
    rng = np.random.default_rng(5)
    w = rng.standard_normal((64, 1, 3, 3)).astype(np.float32)

    def forward(algorithm, width):
        x = rng.standard_normal((8, 64, width - 2, width - 2)).astype(np.float32)

        def run():
            with conv.using(algorithm=algorithm):
                conv.conv_forward(x, w, (2, 2), (1, 1), 64, ((1, 1), (1, 1)))
        return run
    widths = (66, 130, 258) if fast else (34, 66, 130, 194, 258)
    return {"depthwise_lanes_strided_forward_max_width": _crossover(
        widths, lambda m: forward("lanes", m), lambda m: forward("depthwise", m), time_ns)}


def _depthwise_lanes_sliding(fast, time_ns):
    """The lane-wise kernels' forward pass along output rows against the same broadcast tile
    pixel by pixel, on maps whose rows are twice the tile's MR (no output computed twice):
    the time ratio, the gain ``depthwise_lanes_numba._along_rows`` weighs a shape's wasted
    outputs against. Nothing where no group width has the tile on this target."""
    from ..kernels import depthwise_lanes_numba as lanes
    widths = [width for width in lanes.GROUP_WIDTHS if lanes._slides(width)]
    if not widths:
        return {}
    width, side = widths[0], 2 * lanes.sliding_rows(1)
    rng = np.random.default_rng(6)
    channels = 4 * lanes._channels(width)
    x = rng.standard_normal((8 if fast else 16, channels, side, side)).astype(np.float32)
    w = rng.standard_normal((channels, width, 3, 3)).astype(np.float32)

    def forward(slide):
        return lambda: lanes.forward(x, w, ((1, 1), (1, 1)), (1, 1), (1, 1), (side, side),
                                     slide=slide)
    return {"depthwise_lanes_sliding_gain": time_ns(forward(False)) / time_ns(forward(True))}


def _implicit_sliding(fast, time_ns):
    """The implicit GEMM's forward products along output rows against the plain tile of the
    same width (``conv.implicit.per_image_product``, 16 → LANES·NV channels, 3 × 3), on
    maps whose rows are twice the tile's MR, already padded (no output computed twice, no
    padding per image): the time ratios, the gains ``implicit_gemm_numba.along_rows`` weighs
    a shape's wasted outputs against. Only the vector counts with that tile on this target."""
    from ..kernels import implicit_gemm_numba as compiled
    from ..kernels.conv import implicit
    rng = np.random.default_rng(7)
    gains = {}
    for vectors, name in compiled.MEASURED_GAIN.items():
        side = 2 * compiled.sliding_rows(vectors)
        if not side:
            continue
        x = rng.standard_normal((8 if fast else 16, 16, side + 2, side + 2)).astype(np.float32)
        w = rng.standard_normal((compiled.LANES * vectors, 16, 3, 3)).astype(np.float32)
        panels = implicit._panels(w)

        def product(slide):
            return lambda: implicit.per_image_product(x, ((0, 0), (0, 0)), panels, w.shape,
                                                      (1, 1), (side, side), slide=slide)
        gains[name] = time_ns(product(False)) / time_ns(product(True))
    return gains


def _show(value):
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _one_core(measure):
    """Run ``measure`` with Numba on one thread (the cost models are per core)."""
    import numba
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return measure()
    finally:
        numba.set_num_threads(threads)


# The measurements: (name, measure(fast, time_ns) -> {constant: value}, whether on one core),
# ``time_ns(run)`` giving a call's time. Heaviest compilation first, the order in which
# ``precompile`` hands them out: on a cold Numba cache, each alone, the depthwise input
# gradients compiled for 24 s and the stencils for 12 (of which they share a part), the row
# correlation for 5, the compiled depthwise forward for 4 (its three passes 4.9 s in a later
# run, in which the depthwise input gradients took 10.9), pooling for 2, the others for about
# 1 s or less (``python -m cnnkit.tuning.precompile --times`` re-measures them in turn; the
# lane-wise tile along rows, added later, compiled for 5.0 s there after the other two, and
# the implicit GEMM's large-kernel and thin products, later still, 2.8 and 2.6 s after all the
# others; the N-D direct signals compile nothing).
MEASUREMENTS = (
    ("depthwise_lanes_input", _depthwise_lanes_input, False),
    ("depthwise_lanes_stencil", _depthwise_lanes_stencil, False),
    ("depthwise_lanes_strided", _depthwise_lanes_strided, False),
    ("depthwise_lanes_wide", _depthwise_lanes_wide, False),
    ("depthwise_lanes_sliding", _depthwise_lanes_sliding, True),
    ("implicit_sliding", _implicit_sliding, True),
    ("implicit_fft", _implicit_fft, False),
    ("implicit_thin", _implicit_thin, False),
    ("rows", _rows, True),
    ("depthwise", _compiled_depthwise, False),
    ("pooling", _compiled_pooling, False),
    ("relu", _compiled_relu, False),
    ("batch_norm", _compiled_batch_norm, False),
    ("fft", _fft, True),
    ("npconvolve", _npconvolve, False),
    ("direct_nd", _direct_nd, False),
)


def measure(name, fast, time_ns):
    """The constants measurement ``name`` of ``MEASUREMENTS`` gives, timed by ``time_ns``."""
    _, run, on_one_core = next(m for m in MEASUREMENTS if m[0] == name)
    return _one_core(lambda: run(fast, time_ns)) if on_one_core else run(fast, time_ns)


def calibrate(fast=False, log=print):
    """Measure what can be measured; returns {name: value} of the valid measurements and
    logs one line per constant: 'name: default -> measured unit' or why the default stays."""
    repeats = 2 if fast else 7
    raw = {}
    for name, _, _ in MEASUREMENTS:
        raw.update(measure(name, fast, lambda run: best_ns(run, repeats)))
    measured = {}
    for name, constant in CONSTANTS.items():
        if name not in raw:
            log(f"  {name}: {_show(constant.default)} (default kept: not measured by this "
                f"command, see its description)")
            continue
        value = raw[name]
        if value is None:
            log(f"  {name}: {_show(constant.default)} (default kept: no crossover in the sizes "
                "tried, or a value of its fit outside its range)")
            continue
        try:
            measured[name] = check_value(name, round(value) if constant.integer else value)
        except InvalidCache:
            log(f"  {name}: {_show(constant.default)} (default kept: the fit gave {value:.4g}, outside "
                f"[{constant.low:g}, {constant.high:g}])")
            continue
        log(f"  {name}: {_show(constant.default)} -> {_show(measured[name])} {constant.unit}")
    return measured


def run(dry_run=False, fast=False, path=None, log=print):
    """``calibrate``, then save (unless ``dry_run``); returns (measured, saved path or None)."""
    from . import precompile, save, source
    from ..cpu import host
    log(f"calibrating cnnkit's constants on {host().name} (values now from {source()}):")
    start = time.perf_counter()
    import numba
    log(f"(cost models timed on one core; crossovers with {numba.get_num_threads()} Numba "
        f"threads, as this process runs them: NUMBA_NUM_THREADS)")
    processes = precompile.default_processes()
    if processes > 1:
        precompile.run(fast, processes)
        log(f"kernels compiled (or loaded from Numba's cache) on {processes} processes in "
            f"{time.perf_counter() - start:.1f} s")
    measured = calibrate(fast=fast, log=log)
    log(f"measured {len(measured)} of {len(CONSTANTS)} constants in "
        f"{time.perf_counter() - start:.1f} s")
    if dry_run:
        log("dry run: nothing saved")
        return measured, None
    saved = save(measured, path)
    log(f"saved to {saved}")
    return measured, saved
