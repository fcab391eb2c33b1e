"""FFT convolution kernel on plain ndarrays (no autograd).

Linear convolution is a product of spectra once both inputs are zero-padded to the full
output size ``N + K - 1`` per axis (so the circular wrap-around of the DFT falls into padding):

    full(a, b) = irfftn( rfftn(a, s) * rfftn(b, s) )[:N + K - 1],   s >= N + K - 1

``s`` is rounded up to a 2·3·5-smooth length, where pocketfft is fastest. The caller asks for a
rectangular ``region`` of the full output ('same' and 'valid' are such regions); the rest is
cropped away.

A long 1-D signal with a much shorter kernel goes by overlap-add instead: the signal is cut
into blocks of ``step`` samples, each block is convolved with the kernel by one batched FFT of
a short fast length ``B = step + K - 1``, and each block's ``K - 1`` tail samples are added onto
the start of the next block's output. Same result, fewer operations (log B instead of log N per
sample) and cache-sized transforms: several times faster for a 1M-sample signal.
"""
import numpy as np

from .. import tuning
from . import fft_threads

# The cost model (``fft_ns_per_nlogn_*``, ``fft_overhead_ns`` in ``cnnkit.tuning``): ns per
# (N log2 N) of the padded size, for two forward transforms, one inverse and the product,
# measured with numpy 2.4 on one core; 1-D transforms cost more per point than N-D ones, and
# overlap-add's many short transforms in one call less.


def next_fast_len(target: int) -> int:
    """The smallest ``n >= target`` whose only prime factors are 2, 3 and 5.

    Examples: 7 -> 8, 11 -> 12, 97 -> 100, 1025 -> 1080.
    """
    target = int(target)
    if target <= 6:
        return max(target, 1)
    best = 1 << (target - 1).bit_length()  # the power of two is always a candidate
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            # Fill up with the smallest power of two that reaches the target.
            quotient = -(-target // power35)
            candidate = power35 << (quotient - 1).bit_length()
            best = min(best, candidate)
            if power35 >= target:
                break
            power35 *= 3
        power5 *= 5
    return best


def fft_compute_dtype(*dtypes) -> np.dtype:
    """Single precision only when every input is at most single precision (as scipy.fft does:
    integers and bools go through float64, float16 through float32)."""
    complex_result = any(np.dtype(d).kind == "c" for d in dtypes)
    single = all(np.dtype(d) in (np.float16, np.float32, np.complex64) for d in dtypes)
    if complex_result:
        return np.dtype(np.complex64 if single else np.complex128)
    return np.dtype(np.float32 if single else np.float64)


def fft_axes(shape1, shape2) -> list:
    """Axes that need a transform: along an axis where either input has length 1 the
    convolution is a plain broadcast product."""
    return [axis for axis, (n, k) in enumerate(zip(shape1, shape2)) if n != 1 and k != 1]


def overlap_add_block(n: int, k: int):
    """The FFT block length for overlap-add of lengths ``n >= k``, or None when one FFT of the
    whole signal is as good (fewer than a few blocks)."""
    block = next_fast_len(max(tuning.value("overlap_add_block_per_kernel") * k,
                              tuning.value("overlap_add_min_block")))
    return block if n >= tuning.value("overlap_add_min_blocks") * block else None


def fft_cost_terms(shape1, shape2):
    """(the ``cnnkit.tuning`` constant of ns per unit of work, the work in points·log2) of
    ``fft_convolve``: what ``fft_cost_ns`` weighs (and ``cnnkit tune`` fits the weights to)."""
    if len(shape1) == 1:
        n, k = max(shape1[0], shape2[0]), min(shape1[0], shape2[0])
        block = overlap_add_block(n, k)
        if block is not None:
            work = (n + k) * block / (block - k + 1) * np.log2(block)
            return "fft_ns_per_nlogn_overlap_add", work
    axes = fft_axes(shape1, shape2)
    size = float(np.prod([max(n, k) for n, k in zip(shape1, shape2)], dtype=np.float64))
    for axis in axes:
        full = shape1[axis] + shape2[axis] - 1
        size *= next_fast_len(full) / full
    per_point = "fft_ns_per_nlogn_1d" if len(axes) <= 1 else "fft_ns_per_nlogn_nd"
    return per_point, size * np.log2(max(size, 2.0))


def fft_cost_ns(shape1, shape2) -> float:
    """Estimated run time of ``fft_convolve`` for inputs of these shapes, in nanoseconds."""
    per_work, work = fft_cost_terms(shape1, shape2)
    return tuning.value("fft_overhead_ns") + tuning.value(per_work) * work


def fft_convolve(a, b, region=None):
    """Full linear convolution of ``a`` and ``b`` by FFT, or the ``region`` of it.

    Parameters
    ----------
    a : ndarray of shape (N_1, ..., N_d)
    b : ndarray of shape (K_1, ..., K_d)
    region : tuple of d slices into the full output, or None for all of it

    Returns
    -------
    out : ndarray, the region of the full output of shape (N_1 + K_1 - 1, ...), in
        ``fft_compute_dtype(a.dtype, b.dtype)`` (float32/float64, or complex64/complex128).
        Integer inputs are *not* rounded here; the caller decides.
    """
    dtype = fft_compute_dtype(a.dtype, b.dtype)
    a = a.astype(dtype, copy=False)
    b = b.astype(dtype, copy=False)
    axes = fft_axes(a.shape, b.shape)
    block = None
    if a.ndim == 1 and axes:
        block = overlap_add_block(max(a.size, b.size), min(a.size, b.size))
    if block is not None:
        full = _overlap_add(a, b, block) if a.size >= b.size else _overlap_add(b, a, block)
    elif not axes:
        full = a * b
    else:
        full_sizes = [a.shape[axis] + b.shape[axis] - 1 for axis in axes]
        fast_sizes = [next_fast_len(n) for n in full_sizes]
        if dtype.kind == "c":
            forward, inverse = fft_threads.fftn, fft_threads.ifftn
        else:
            forward, inverse = fft_threads.rfftn, fft_threads.irfftn
        spectrum = forward(a, fast_sizes, axes) * forward(b, fast_sizes, axes)
        full = inverse(spectrum, fast_sizes, axes)
        # Drop the padding beyond N + K - 1 that only served to make the length fast.
        keep = [slice(None)] * full.ndim
        for axis, n in zip(axes, full_sizes):
            keep[axis] = slice(0, n)
        full = full[tuple(keep)]
    if region is not None:
        full = full[tuple(region)]
    return np.ascontiguousarray(full, dtype=dtype)


def _overlap_add(x, k, block):
    """Full 1-D convolution of a long ``x`` (length N) with a short ``k`` (length K) by
    overlap-add with FFT length ``block``; returns length N + K - 1."""
    n, taps = x.size, k.size
    step = block - taps + 1  # new samples per block; the other K - 1 outputs spill over
    n_blocks = -(-n // step)
    blocks = np.zeros(n_blocks * step, dtype=x.dtype)
    blocks[:n] = x
    blocks = blocks.reshape(n_blocks, step)
    if x.dtype.kind == "c":
        forward, inverse = np.fft.fft, np.fft.ifft
    else:
        forward, inverse = np.fft.rfft, np.fft.irfft
    pieces = inverse(forward(blocks, block, axis=1) * forward(k, block), block, axis=1)
    out = np.zeros((n_blocks + 1, step), dtype=pieces.dtype)
    out[:-1] = pieces[:, :step]
    out[1:, :taps - 1] += pieces[:, step:]  # each block's tail overlaps the next block's head
    return out.reshape(-1)[:n + taps - 1]
