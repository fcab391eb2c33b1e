"""Argument checks shared by the reference loops: normalise ints/tuples, reject bad input early.

Everything here raises before any work is done, naming the argument and what was expected.
"""
import itertools
import numbers

import numpy as np


def check_array(x, name, min_ndim=3):
    """``x`` must be an ndarray with a batch axis, a channel axis and at least one spatial axis."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy ndarray, got {type(x).__name__}")
    if x.ndim < min_ndim:
        raise ValueError(
            f"{name}: expected an array of shape (N, C, *spatial) with at least {min_ndim} dims, "
            f"got shape {x.shape}")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def spatial_tuple(value, ndim, name, minimum=1):
    """``int`` or a sequence of ``ndim`` ints -> tuple of ``ndim`` ints, each ``>= minimum``."""
    if _is_int(value):
        values = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and all(_is_int(v) for v in value):
        if len(value) != ndim:
            raise ValueError(f"{name}: expected an int or {ndim} ints, got {value!r}")
        values = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{name}: expected an int or a tuple of {ndim} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{name}: every entry must be >= {minimum}, got {value!r}")
    return values


def padding_pairs(padding, ndim, name="padding"):
    """``int``, ``ndim`` ints (same on both sides) or ``ndim`` ``(lo, hi)`` pairs -> pairs."""
    if isinstance(padding, (tuple, list)) and padding and all(
            isinstance(p, (tuple, list)) for p in padding):
        if len(padding) != ndim or any(len(p) != 2 or not all(map(_is_int, p)) for p in padding):
            raise ValueError(f"{name}: expected {ndim} (lo, hi) int pairs, got {padding!r}")
        pairs = tuple((int(lo), int(hi)) for lo, hi in padding)
    else:
        pairs = tuple((p, p) for p in spatial_tuple(padding, ndim, name, minimum=0))
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise ValueError(f"{name}: padding must be >= 0, got {padding!r}")
    return pairs


def check_groups(groups, in_channels, out_channels):
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups: expected a positive int, got {groups!r}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups: {groups} must divide both the input channels ({in_channels}) and the "
            f"output channels ({out_channels})")


def positions(shape):
    """Every multi-index of an array of ``shape``, in row-major order (``itertools.product``)."""
    return itertools.product(*(range(n) for n in shape))


def accumulator_dtype(*arrays):
    """The result dtype of multiplying/adding the given arrays (``None`` entries are skipped).

    Object arrays stay object arrays, so the loops also run on sympy symbols or Python ints.
    """
    return np.result_type(*[a for a in arrays if a is not None])
