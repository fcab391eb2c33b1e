"""Convolution kernels on plain ndarrays: forward and both gradients, any number of dims.

All three take an input that is *already padded*; ``cnnkit.functional.conv`` does the padding
and the autograd wiring. Notation (the source notes' forward formula, with batch and groups):

    y[n, k, i] = Σ_c Σ_a w[k, c, a] · x[n, c, i·s + a·d]          (i, a: spatial multi-indices)

Its two gradients are convolutions again:

    dL/dx[n, c, j] = Σ_k Σ_{a : j = i·s + a·d} dL/dy[n, k, i] · w[k, c, a]
        the *transposed* convolution of dL/dy with w: every output gradient is spread back over
        its receptive field, weighted by the kernel taps. For stride 1 this is the full
        correlation of dL/dy with the flipped kernel.
    dL/dw[k, c, a] = Σ_n Σ_i dL/dy[n, k, i] · x[n, c, i·s + a·d]
        the correlation of the input with dL/dy.

Several algorithms compute these same sums; ``choose_algorithm`` picks one per layer shape by
a heuristic, or ``set_autotune(True)`` measures them per shape (``cnnkit.reference`` holds the
literal loops they are all tested against):

    'depthwise'  one input channel per group: each plane a single-channel correlation; float32
                 stride-1 forward and input gradient on the register-tiled row correlation
                 (``depthwise_rows``), the rest a direct sum over kernel offsets (compiled
                 with Numba for 2-D layers of real size, ``depthwise_numba``)
    'winograd'   3×3, stride 1, dilation 1: Winograd F(2×2, 3×3), 2.25× fewer multiplies
    'implicit'   float32, groups 1: an implicit GEMM, a compiled register-tiled product that
                 reads the padded input in place (``conv_implicit``)
    'shift'      stride 1: shifted matrix products on the padded input, no im2col copy
    'fft'        stride 1 with a large kernel: products of spectra
    'gemm'       anything else: im2col and one large matrix product
"""
import math

import numpy as np

from . import depthwise as conv_depthwise, fft as conv_fft, gemm as conv_gemm
from . import implicit as conv_implicit, shift as conv_shift, winograd as conv_winograd
from . import rows as depthwise_rows
from ..padding import crop, zero_pad

ALGORITHMS = ("depthwise", "winograd", "implicit", "shift", "fft", "gemm")
_forced = None
_autotune = False
_tuned = {}  # layer key -> the algorithm measured fastest for it


def output_spatial(spatial, kernel, stride, dilation):
    """out = floor((padded_in − d·(k−1) − 1)/s) + 1 per dim (padding is already applied)."""
    return tuple((n - d * (k - 1) - 1) // s + 1
                 for n, k, s, d in zip(spatial, kernel, stride, dilation))


def choose_algorithm(in_channels, out_channels, kernel, stride, groups, batch=1, out=None,
                     spatial=None, dilation=None, dtype=None, pass_name="forward"):
    """The algorithm for a layer shape and pass ("forward", "input" or "weight"; dtype None
    means float32): a heuristic from the benchmark (see BENCHMARKS.md)."""
    if _forced is not None:
        return _forced
    if _rows_win(in_channels, groups, stride, dilation, dtype, pass_name):
        return "depthwise"
    if _implicit_wins(in_channels, out_channels, kernel, stride, groups, dtype, pass_name):
        return "implicit"
    stride_one = all(s == 1 for s in stride)
    if stride_one and out is not None and math.prod(kernel) >= 32 and conv_fft.cost_ratio(
            batch, in_channels // groups, out_channels, kernel, out, spatial) < 0.5:
        return "fft"
    if in_channels == groups > 1:
        return "depthwise"
    # Winograd's 16 products have C as their inner dimension (too thin below 16 channels), and
    # its 2×2 output tiles waste work on odd map sizes (a 7×7 map is computed as 8×8).
    if winograd_applies(kernel, stride, dilation or (1,) * len(kernel), groups) and \
            in_channels >= 16 and out is not None and \
            math.prod(2 * ((o + 1) // 2) for o in out) <= 1.15 * math.prod(out):
        return "winograd"
    # The shift products have C/G as their inner dimension: too thin for BLAS below ~8 channels,
    # where the im2col columns (C/G · prod(kernel) rows) make a better product.
    # On small maps the shift products' wasted border columns and accumulate passes cost
    # more than im2col's copy (autotune picked gemm for 14×14 and 7×7 layers, shift for 32×32).
    # 1×1 kernels need no shifting at all: the shift path is then one product per image.
    large_map = out is None or math.prod(out) >= 400 or math.prod(kernel) == 1
    if all(s == 1 for s in stride) and in_channels // groups >= 8 and large_map:
        return "shift"
    return "gemm"


def _rows_win(in_channels, groups, stride, dilation, dtype, pass_name):
    """One input channel per group (depthwise layers, and first layers on one-channel images):
    every forward and input-gradient plane is a single-channel correlation, which the row
    correlation computes several times faster than a product with an inner dimension of one
    (lenet_c1: forward 0.8 against 2.5 ms by im2col; dw3x3: 1.5 against 4.3 ms). Its weight
    gradient has a 3×3 output, a poor fit for the row tiles: left to the other rules."""
    return in_channels == groups and pass_name != "weight" and depthwise_rows.applies(
        dtype or "float32", stride, dilation or (1,) * len(stride))


# Above this many taps per channel an FFT may beat any direct sum (not measured for implicit).
_IMPLICIT_MAX_KERNEL = 128


def _implicit_wins(in_channels, out_channels, kernel, stride, groups, dtype, pass_name):
    """The implicit GEMM beat every other path on the benchmark's float32, groups-1 layers,
    except where its product is thin: the register tile's row of 16·NV output channels (one
    input channel for an input gradient wastes 15 of 16 lanes) or fewer than 32 taps per
    output (each tile is then mostly stores; lenet_c1 forward, 25 taps, ran 1.5× slower).
    Few output channels idle the lanes of the channels-last tile, not those of the planar
    one (``conv_implicit.planar_wins``)."""
    if not conv_implicit.applies(dtype or "float32", groups) or \
            math.prod(kernel) > _IMPLICIT_MAX_KERNEL:
        return False
    if pass_name == "forward":
        return in_channels * math.prod(kernel) >= 32
    if pass_name == "input":  # a product with C outputs and K·prod(kernel) terms
        taps = out_channels * math.prod(kernel)
        return all(s == 1 for s in stride) and taps >= 32 and (
            in_channels >= 16 or conv_implicit.planar_wins(in_channels, taps))
    return True


def force_algorithm(name):
    """Use ``name`` for every convolution (None restores the heuristic); for tests and benchmarks."""
    global _forced
    if name is not None and name not in ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {ALGORITHMS} or None, got {name!r}")
    _forced = name


def set_autotune(enabled=True):
    """Measure instead of guessing (like ``torch.backends.cudnn.benchmark``): the first
    convolution of each layer shape times every algorithm that applies, on the real inputs, for
    each of the three passes (forward, input gradient, weight gradient), and keeps the fastest
    per pass for that shape. Costs one slow first call per shape; pays off when the same shapes
    repeat, as in training."""
    global _autotune
    _autotune = bool(enabled)
    _tuned.clear()


def _layer_key(c, k, kernel, stride, dilation, groups, batch, out, dtype):
    return (c, k, tuple(kernel), tuple(stride), tuple(dilation), groups, batch, tuple(out),
            str(dtype))


def _applicable(c, kernel, stride, dilation, groups, dtype):
    names = ["gemm"]
    if conv_implicit.applies(dtype, groups):
        names.append("implicit")
    if all(s == 1 for s in stride):
        names += ["shift", "fft"]
    if c == groups:
        names.append("depthwise")
    if winograd_applies(kernel, stride, dilation, groups):
        names.append("winograd")
    return names


PASSES = ("forward", "input", "weight")


def _tune(xp, w, stride, dilation, groups, key):
    """Time each applicable algorithm on each pass (one warm-up run, which may load compiled
    code, then best of three) and remember the fastest per pass. (Timing the forward pass alone
    picked, for the default model's 14×14 layer, an algorithm whose backward passes made the
    training step slower than the heuristic's.)"""
    import time
    global _forced
    timings = {name: {} for name in PASSES}
    for name in _applicable(xp.shape[1], w.shape[2:], stride, dilation, groups, xp.dtype):
        _forced = name
        try:
            dy = conv_forward(xp, w, stride, dilation, groups)  # an output-shaped gradient
            runs = {"forward": lambda: conv_forward(xp, w, stride, dilation, groups),
                    "input": lambda: conv_backward_input(dy, w, xp.shape[2:], stride,
                                                         dilation, groups),
                    "weight": lambda: conv_backward_weight(xp, dy, w.shape[2:], stride,
                                                           dilation, groups)}
            for pass_name, run in runs.items():
                run()
                best = float("inf")
                for _ in range(3):
                    start = time.perf_counter()
                    run()
                    best = min(best, time.perf_counter() - start)
                timings[pass_name][name] = best
        finally:
            _forced = None
    _tuned[key] = {pass_name: min(t, key=t.get) for pass_name, t in timings.items()}


def winograd_applies(kernel, stride, dilation, groups):
    return tuple(kernel) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) \
        and groups == 1


def _pick(c, k, kernel, stride, dilation, groups, batch, out, spatial, dtype=None,
          pass_name="forward"):
    """The algorithm to run: the heuristic's (or the forced, or the measured) choice where it
    applies."""
    if batch == 0:  # an empty batch: only the shapes matter, and im2col handles them all
        return "gemm"
    algorithm = choose_algorithm(c, k, kernel, stride, groups, batch, out, spatial, dilation,
                                 dtype, pass_name)
    if _forced is None and _autotune:
        measured = _tuned.get(_layer_key(c, k, kernel, stride, dilation, groups, batch, out,
                                         dtype))
        algorithm = measured[pass_name] if measured else algorithm
    if algorithm == "depthwise" and c != groups:
        return "gemm"
    if algorithm == "implicit" and not conv_implicit.applies(dtype, groups):
        return "gemm"
    if algorithm == "winograd" and not winograd_applies(kernel, stride, dilation, groups):
        algorithm = "shift"
    if algorithm in ("shift", "fft") and any(s != 1 for s in stride):
        return "gemm"
    return algorithm


def conv_forward(x, w, stride, dilation, groups=1, pads=None):
    """Cross-correlation of an input with a bank of kernels.

    x  : ndarray of shape (N, C, *spatial) — already padded, or to be zero-padded by ``pads``
         (one (lo, hi) pair per spatial dim)
    w  : ndarray of shape (K, C // groups, *kernel)
    Returns y : ndarray of shape (N, K, *out), out = floor((padded − d·(k−1) − 1)/s) + 1
    """
    xp = zero_pad(x, pads)
    c, k, kernel = xp.shape[1], w.shape[0], w.shape[2:]
    out = output_spatial(xp.shape[2:], kernel, stride, dilation)
    if _autotune and _forced is None and xp.shape[0]:
        key = _layer_key(c, k, kernel, stride, dilation, groups, xp.shape[0], out, xp.dtype)
        if key not in _tuned:
            _tune(xp, w, stride, dilation, groups, key)
    algorithm = _pick(c, k, kernel, stride, dilation, groups, xp.shape[0], out, xp.shape[2:],
                      xp.dtype)
    if algorithm == "winograd":
        return conv_winograd.forward(xp, w, out)
    if algorithm == "implicit":
        return conv_implicit.forward(xp, w, stride, dilation, out)
    if algorithm == "depthwise" and depthwise_rows.applies(xp.dtype, stride, dilation):
        return depthwise_rows.forward(xp, w, out)
    if algorithm == "depthwise":
        return _depthwise(xp.shape, kernel, math.prod(out)).forward(xp, w, stride, dilation, out)
    if algorithm == "fft":
        return conv_fft.forward(xp, w, dilation, out, groups)
    if algorithm == "shift":
        return conv_shift.forward(xp, w, dilation, out, groups)
    return conv_gemm.forward(xp, w, stride, dilation, out, groups)


def conv_backward_input(dy, w, spatial, stride, dilation, groups=1, pads=None):
    """dL/dx of ``conv_forward``: the transposed convolution of ``dy`` with ``w``.

    dy : ndarray of shape (N, K, *out);  w : ndarray of shape (K, C // groups, *kernel)
    spatial : the padded input's spatial shape.
    Returns ndarray of shape (N, C, *spatial), or with ``pads`` the gradient of the input
    inside the zero padding, (N, C, *(spatial − lo − hi)).

    Only the Winograd path computes just the inside (it pads dy less); the others compute the
    whole padded gradient and crop it. (Compiled kernels that skipped the padding cells by
    bounds tests in their inner loops measured slower than the crop: the tests stop LLVM from
    vectorising.)
    """
    c, k, kernel = w.shape[1] * groups, w.shape[0], w.shape[2:]
    algorithm = _pick(c, k, kernel, stride, dilation, groups, dy.shape[0], dy.shape[2:], spatial,
                      dy.dtype, "input")
    if algorithm != "gemm" and not np.isfinite(w).all():
        # The other paths pad dy with zeros, and 0·inf = NaN where PyTorch has no term at all;
        # col2im adds only real products.
        algorithm = "gemm"
    fits = _fits(dy.shape[2:], spatial, kernel, dilation)
    if algorithm == "winograd" and fits and (
            pads is None or all(0 <= lo <= 2 and 0 <= hi <= 2 for lo, hi in pads)):
        return conv_winograd.backward_input(dy, w, spatial, pads)
    if algorithm == "implicit" and fits and all(s == 1 for s in stride):
        return conv_implicit.backward_input(dy, w, spatial, dilation, pads)
    if algorithm == "depthwise" and fits and depthwise_rows.applies(dy.dtype, stride, dilation):
        return depthwise_rows.backward_input(dy, w, spatial, groups, pads)
    if algorithm == "winograd" and fits:
        dxp = conv_winograd.backward_input(dy, w, spatial)
    elif algorithm == "depthwise":
        dxp = _depthwise(dy.shape, kernel, math.prod(dy.shape[2:])).backward_input(
            dy, w, spatial, stride, dilation, groups)
    elif algorithm == "shift" and fits:
        dxp = conv_shift.backward_input(dy, w, spatial, dilation, groups)
    elif algorithm == "fft" and fits:
        dxp = conv_fft.backward_input(dy, w, spatial, dilation, groups)
    else:
        dxp = conv_gemm.backward_input(dy, w, spatial, stride, dilation, groups)
    return crop(dxp, pads)


def conv_backward_weight(x, dy, kernel, stride, dilation, groups=1, pads=None):
    """dL/dw of ``conv_forward``: the correlation of the input with ``dy``.

    x : ndarray of shape (N, C, *spatial) — as for ``conv_forward`` (padded, or ``pads``)
    dy : ndarray of shape (N, K, *out)
    Returns ndarray of shape (K, C // groups, *kernel).
    """
    xp = zero_pad(x, pads)
    c, k = xp.shape[1], dy.shape[1]
    kernel = tuple(kernel)
    algorithm = _pick(c, k, kernel, stride, dilation, groups, xp.shape[0], dy.shape[2:],
                      xp.shape[2:], xp.dtype, "weight")
    fits = _fits(dy.shape[2:], xp.shape[2:], kernel, dilation)
    if algorithm == "winograd" and fits:
        return conv_winograd.backward_weight(xp, dy)
    if algorithm == "implicit":
        return conv_implicit.backward_weight(xp, dy, kernel, stride, dilation)
    if algorithm == "depthwise":
        return _depthwise(dy.shape, kernel, math.prod(dy.shape[2:])).backward_weight(
            xp, dy, kernel, stride, dilation)
    if algorithm == "shift" and fits:
        return conv_shift.backward_weight(xp, dy, kernel, dilation, groups)
    if algorithm == "fft" and fits:
        return conv_fft.backward_weight(xp, dy, kernel, dilation, groups)
    return conv_gemm.backward_weight(xp, dy, kernel, stride, dilation, groups)


_DEPTHWISE_COMPILED_MIN_WORK = 1 << 18  # multiply-adds


def _depthwise(array_shape, kernel, work_positions):
    """The compiled 2-D depthwise kernels for real work; NumPy's for tiny or non-2-D layers,
    where starting Numba's thread pool costs more than the arithmetic."""
    if len(kernel) == 2 and array_shape[0] * array_shape[1] * work_positions * math.prod(
            kernel) >= _DEPTHWISE_COMPILED_MIN_WORK:
        from .. import depthwise_numba
        return depthwise_numba
    return conv_depthwise


def _fits(out, spatial, kernel, dilation):
    """Stride-1 geometry holds exactly (a transposed conv may leave unreached trailing cells)."""
    return output_spatial(spatial, kernel, (1,) * len(kernel), dilation) == tuple(out) and \
        math.prod(out) > 0
