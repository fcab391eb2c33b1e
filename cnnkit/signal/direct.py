"""Direct (sum-of-products) convolution on plain ndarrays, for any number of dimensions.

The full linear convolution of ``x`` (shape ``N``) and ``k`` (shape ``K``) is

    F[i] = sum_u k[u] · x[i - u]        over 0 <= u < K with 0 <= i - u < N,   i in [0, N + K - 1)

and a mode asks for a rectangular ``region`` of ``F``. Three ways to compute it, none of them a
Python loop over output positions:

- 1-D: ``np.convolve`` (a C loop; it is what scipy's direct method uses, so results are bitwise
  scipy's).
- Kernel-offset loop: one vectorised ``out[...] += k[u] * x[...]`` per offset ``u`` of the
  smaller input. Cheap per element; a few microseconds of overhead per offset.
- Sliding windows: ``F[i] = sum_v flip(k)[v] · P[i + v]`` with ``P`` the zero-padded ``x``;
  ``np.einsum`` contracts a strided window view of ``P`` (no copy) with the flipped kernel.
  Slower per element but no per-offset overhead, so it wins when the kernel is big and the
  requested region small (e.g. 'valid' with nearly equal sizes, or a kernel gradient).

- Compiled tiles (float32 and float16): ``kernels.correlate_rows``, the same sliding-window
  sum ``F[i] = sum_v flip(k)[v] · P[i + v]`` on a register-tiled Numba kernel; far the fastest
  where it applies (a 512² image with an 11×11 kernel in about a tenth of the FFT's time).

Convolution is commutative, so the smaller input always plays the kernel.

Inf and NaN (docs/ieee.md): inputs that are not all finite are summed with scipy's direct
method's terms, so NaN and ±inf land where scipy puts them. scipy zero-pads one input and
slides the other over it, multiplying every entry of the sliding one into every output (an
infinite entry times a padding zero is NaN): ``in2`` slides, except that in 'full' mode the
smaller input does; 'valid' reads no padding. In 1-D, ``np.convolve`` has no padding terms.
The sliding windows (``_windowed``, x padded, k sliding) have exactly those terms; the compiled
tiles do not (their kernel plane's zero rows meet x: 0·inf = NaN where scipy has no term), nor
does the offset loop (it skips the padding).
"""
import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import tuning
from ..kernels import correlate_rows
from ..kernels.finite import all_finite

# Costs in ns (``cnnkit.tuning``: npconvolve_*, loop_*, window_*; defaults measured with numpy
# 2.4 on one core, float64; ``cnnkit tune`` measures this machine's) pick a strategy here and,
# through ``direct_cost_ns``, choose between this module and the FFT.


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    # float16 sums lose too much precision; accumulate in float32 and round once at the end.
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def _region_bounds(region, full):
    starts = tuple(r.indices(n)[0] for r, n in zip(region, full))
    sizes = tuple(len(range(*r.indices(n))) for r, n in zip(region, full))
    return starts, sizes


def _strategy(x_shape, k_shape, out_sizes, compute_dtype):
    """'compiled' | 'npconvolve' | 'loop' | 'window' and its estimated cost in ns (x the larger
    input; None for 'npconvolve', which ``direct_cost_ns`` costs by dtype)."""
    if correlate_rows.applies(compute_dtype):
        return "compiled", correlate_rows.cost_ns(k_shape, out_sizes)
    n_out = float(np.prod(out_sizes, dtype=np.float64))
    n_kernel = float(np.prod(k_shape, dtype=np.float64))
    if len(x_shape) == 1:
        return "npconvolve", None  # costed by direct_cost_ns: it depends on the dtype
    loop = n_kernel * (tuning.value("loop_overhead_ns_per_offset")
                       + tuning.value("loop_ns_per_mac") * n_out)
    window = tuning.value("window_overhead_ns") + n_out * (
        tuning.value("window_ns_per_output") + tuning.value("window_ns_per_mac") * n_kernel)
    return ("loop", loop) if loop <= window else ("window", window)


def direct_cost_ns(shape1, shape2, region, dtype) -> float:
    """Estimated run time of ``direct_convolve`` for these shapes, region and output dtype (ns)."""
    x_shape, k_shape = _larger_first(shape1, shape2)
    full = tuple(n + k - 1 for n, k in zip(shape1, shape2))
    _, sizes = _region_bounds(region, full)
    plan = _strategy(x_shape, k_shape, sizes, _compute_dtype(np.dtype(dtype)))
    if plan[0] != "npconvolve":
        return plan[1]
    n, k = x_shape[0], k_shape[0]
    macs = (n - k + 1) * k if sizes[0] == n - k + 1 else n * k
    kind = "float" if np.dtype(dtype).kind == "f" else "other"  # complex, ints, bools
    per_mac = tuning.value(f"npconvolve_ns_per_mac_{kind}")
    return tuning.value("npconvolve_overhead_ns") + per_mac * macs


def _larger_first(shape1, shape2):
    size1, size2 = np.prod(shape1, dtype=np.int64), np.prod(shape2, dtype=np.int64)
    return (shape1, shape2) if size1 >= size2 else (shape2, shape1)


def direct_convolve(a: np.ndarray, b: np.ndarray, region, dtype) -> np.ndarray:
    """A region of the full linear convolution of ``a`` and ``b``, summed directly.

    Parameters
    ----------
    a : ndarray of shape (N_1, ..., N_d)
    b : ndarray of shape (K_1, ..., K_d), same d >= 1
    region : tuple of d slices (step 1) into the full output of shape (N_i + K_i - 1)
    dtype : output dtype (``np.result_type(a, b)`` for scipy's rules)

    Returns
    -------
    out : ndarray of the region's shape and ``dtype``
    """
    full = tuple(n + k - 1 for n, k in zip(a.shape, b.shape))
    starts, sizes = _region_bounds(region, full)
    compute = _compute_dtype(np.dtype(dtype))
    x, k = (a, b) if a.size >= b.size else (b, a)
    plan = _strategy(x.shape, k.shape, sizes, compute)[0]
    valid = all(s == min(n, m) - 1 and size == abs(n - m) + 1
                for s, size, n, m in zip(starts, sizes, a.shape, b.shape))
    if _terms_may_differ(plan, a, b, valid, sizes == full) and not all_finite(b, a):
        return _with_scipy_terms(a, b, region, starts, sizes, compute, valid).astype(
            dtype, copy=False)
    if plan == "compiled":
        return _compiled(x.astype(compute, copy=False), k.astype(compute, copy=False),
                         starts, sizes).astype(dtype, copy=False)
    if plan == "npconvolve":
        if valid:
            return np.convolve(a, b, "valid").astype(dtype, copy=False)
        return np.ascontiguousarray(np.convolve(a, b, "full")[region], dtype=dtype)
    x = x.astype(compute, copy=False)
    k = k.astype(compute, copy=False)
    if plan == "loop":
        out = _offset_loop(x, k, starts, sizes)
    else:
        out = _windowed(x, k, starts, sizes)
    return out.astype(dtype, copy=False)


def _terms_may_differ(plan, a, b, valid, full_region):
    """Whether ``plan``'s terms can differ from scipy's direct method's (module docstring), so
    that an inf or NaN in the inputs would land elsewhere: only then are they checked."""
    if plan == "compiled":
        return True  # the kernel plane's zero rows
    if valid:
        return False  # no padding for a kernel entry to meet
    if plan == "npconvolve":
        return not (full_region or a.size >= b.size)  # scipy's np.convolve cases
    return True  # the loop skips the padding; the windows may slide the other input


def _with_scipy_terms(a, b, region, starts, sizes, compute, valid):
    """The region summed over scipy's direct method's terms (see the module docstring): for
    inputs holding inf or NaN, where which terms exist decides where NaN appears."""
    full_region = list(sizes) == [n + m - 1 for n, m in zip(a.shape, b.shape)]
    if a.ndim == 1 and not _terms_may_differ("npconvolve", a, b, valid, full_region):
        if valid:
            return np.convolve(a, b, "valid")
        return np.ascontiguousarray(np.convolve(a, b, "full")[region])
    # scipy slides in2, or the smaller input in 'full' mode ('valid' reads no padding)
    x, k = (b, a) if (valid or full_region) and a.size < b.size else (a, b)
    return _windowed(x.astype(compute, copy=False), k.astype(compute, copy=False), starts, sizes)


def _compiled(x, k, starts, sizes):
    """``_windowed``'s sum, out[i - s] = sum_v flip(k)[v] x[i - K + 1 + v], compiled."""
    flipped = np.ascontiguousarray(k[(slice(None, None, -1),) * k.ndim])
    first_read = [s - m + 1 for s, m in zip(starts, k.shape)]
    return correlate_rows.correlate(np.ascontiguousarray(x), flipped, first_read, sizes)


def _offset_loop(x, k, starts, sizes):
    """out[i - s] = sum_u k[u] x[i - u]: one shifted multiply-add per kernel offset ``u``."""
    out = np.zeros(sizes, dtype=x.dtype)
    scratch = np.empty(sizes, dtype=x.dtype)
    for u in itertools.product(*(range(n) for n in k.shape)):
        # Output positions i with i - u inside x, intersected with the requested region.
        lo = [max(s, ui) for s, ui in zip(starts, u)]
        hi = [min(s + n, ui + m) for s, n, ui, m in zip(starts, sizes, u, x.shape)]
        if any(h <= l for l, h in zip(lo, hi)):
            continue
        out_part = tuple(slice(l - s, h - s) for l, h, s in zip(lo, hi, starts))
        x_part = tuple(slice(l - ui, h - ui) for l, h, ui in zip(lo, hi, u))
        product = scratch[tuple(slice(0, h - l) for l, h in zip(lo, hi))]
        np.multiply(x[x_part], k[u], out=product)
        np.add(out[out_part], product, out=out[out_part])
    return out


def _windowed(x, k, starts, sizes):
    """out[i - s] = sum_v flip(k)[v] P[i + v], P = x zero-padded by K - 1 on both sides."""
    ndim = x.ndim
    # The part of P the region reads: P[s : s + L + K - 1] = x[s - K + 1 : s + L].
    lo = [s - m + 1 for s, m in zip(starts, k.shape)]
    hi = [s + n for s, n in zip(starts, sizes)]
    if all(l >= 0 for l in lo) and all(h <= m for h, m in zip(hi, x.shape)):
        padded = x[tuple(slice(l, h) for l, h in zip(lo, hi))]
    else:
        padded = np.zeros([h - l for l, h in zip(lo, hi)], dtype=x.dtype)
        src = tuple(slice(max(l, 0), min(h, m)) for l, h, m in zip(lo, hi, x.shape))
        dst = tuple(slice(max(l, 0) - l, min(h, m) - l) for l, h, m in zip(lo, hi, x.shape))
        padded[dst] = x[src]
    windows = sliding_window_view(padded, k.shape)  # shape (*sizes, *k.shape), a view
    flipped = k[(slice(None, None, -1),) * ndim]
    out_axes = list(range(ndim))
    kernel_axes = list(range(ndim, 2 * ndim))
    return np.einsum(windows, out_axes + kernel_axes, flipped, kernel_axes, out_axes)
