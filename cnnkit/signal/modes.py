"""Argument checks and the shape rules of scipy.signal's three output modes.

Every mode is a rectangular window of the *full* linear convolution, whose size along each axis
is ``N + K - 1`` (``N``, ``K``: the two input sizes):

- ``'full'``: all of it.
- ``'same'``: ``N`` values (the size of ``in1``), centred: start ``(K - 1) // 2``. With an even
  ``K`` the extra value is taken from the end, which is what ``scipy.signal.convolve`` does.
- ``'valid'``: the ``|N - K| + 1`` values that never touch the zero padding, start
  ``min(N, K) - 1``. One input must be at least as large as the other along *every* axis.

Because convolution is commutative and the full output's centre does not move when the inputs
swap, 'valid' needs no special case for a larger ``in2``: it is the same centred window.
"""
import numpy as np

MODES = ("full", "same", "valid")
METHODS = ("auto", "direct", "fft")


def check_mode(mode) -> None:
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")


def check_method(method) -> None:
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")


def check_inputs(in1: np.ndarray, in2: np.ndarray, mode: str) -> None:
    """The array checks scipy makes (plus a clear error for empty inputs), before any work."""
    for name, array in (("in1", in1), ("in2", in2)):
        if array.dtype.kind not in "biufc":
            raise TypeError(f"{name}: expected a numeric or bool array, got dtype {array.dtype}")
    if in1.ndim != in2.ndim:
        raise ValueError(
            f"in1 and in2 should have the same number of dimensions, got in1.ndim={in1.ndim} "
            f"and in2.ndim={in2.ndim}")
    for name, array in (("in1", in1), ("in2", in2)):
        if array.size == 0:
            raise ValueError(f"{name}: cannot convolve an empty array (shape {array.shape})")
    if mode == "valid":
        check_valid_shapes(in1.shape, in2.shape)


def check_valid_shapes(shape1, shape2) -> None:
    in1_larger = all(n >= k for n, k in zip(shape1, shape2))
    in2_larger = all(k >= n for n, k in zip(shape1, shape2))
    if not (in1_larger or in2_larger):
        raise ValueError(
            f"mode='valid': one of in1 {tuple(shape1)} and in2 {tuple(shape2)} must be at least "
            f"as large as the other in every dimension")


def full_shape(shape1, shape2) -> tuple:
    """Shape ``(N_1 + K_1 - 1, ...)`` of the full linear convolution."""
    return tuple(n + k - 1 for n, k in zip(shape1, shape2))


def output_shape(shape1, shape2, mode: str) -> tuple:
    if mode == "full":
        return full_shape(shape1, shape2)
    if mode == "same":
        return tuple(shape1)
    return tuple(abs(n - k) + 1 for n, k in zip(shape1, shape2))


def output_start(shape1, shape2, mode: str) -> tuple:
    """Where the mode's window starts inside the full output, per axis (scipy's ``_centered``)."""
    full = full_shape(shape1, shape2)
    return tuple((f - o) // 2 for f, o in zip(full, output_shape(shape1, shape2, mode)))


def output_region(shape1, shape2, mode: str) -> tuple:
    """The mode's window as a tuple of slices into the full output."""
    return tuple(slice(start, start + size) for start, size in
                 zip(output_start(shape1, shape2, mode), output_shape(shape1, shape2, mode)))
