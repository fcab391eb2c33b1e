"""Padding kernels on plain ndarrays: zeros/constant, reflect, replicate, circular.

Along each axis, output position ``p`` reads input position ``source[p]`` (``_source_index``):
the *interior*, one contiguous run read straight through, and a few *border* positions that
either hold the constant or copy a cell from elsewhere. Negative widths crop. Padding is
separable, so both directions go one axis at a time:

    forward   out[..., p, ...]        = x[..., source[p], ...]
    backward  dL/dx[..., i, ...]      = Σ_{p : source[p] = i} g[..., p, ...]

Backward copies the interior of the gradient and adds each border slice onto its source: a loop
over the (few) border positions per axis, vectorised over everything else. Reflect, replicate
and circular padding of float arrays along their last three axes take compiled parallel passes
instead from ``compiled_min_size`` values on (``pad_modes_numba``).
"""
import functools
import math

import numpy as np

from .. import tuning
from .finite import all_finite
from . import pad_modes_numba
from .pad_numba import pad_planes

PAD_MODES = ("constant", "zeros", "reflect", "replicate", "circular")
_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def normalize_pad_width(pad_width, ndim):
    """``int`` or ``(lo, hi)`` or ``((lo, hi), ...)`` -> tuple of ``ndim`` ``(lo, hi)`` int pairs."""
    if np.ndim(pad_width) == 0:
        return ((_as_int(pad_width), _as_int(pad_width)),) * ndim
    widths = tuple(pad_width)
    if len(widths) == 2 and all(np.ndim(w) == 0 for w in widths):
        return ((_as_int(widths[0]), _as_int(widths[1])),) * ndim
    if len(widths) != ndim:
        raise ValueError(f"pad_width: expected {ndim} (lo, hi) pairs, got {len(widths)}")
    if any(np.ndim(w) != 1 or len(w) != 2 for w in widths):
        raise ValueError(f"pad_width: expected (lo, hi) pairs, got {pad_width!r}")
    return tuple((_as_int(lo), _as_int(hi)) for lo, hi in widths)


def _as_int(width):
    if isinstance(width, (bool, np.bool_)) or not isinstance(width, (int, np.integer)):
        raise TypeError(f"pad_width: expected integers, got {width!r}")
    return int(width)


def _source_index(n, lo, hi, mode):
    """For each output position along an axis of size ``n``, the input position it reads.

    Constant mode marks the padded positions with -1. As in PyTorch, reflect and replicate index
    the whole input (a crop on one side does not change what the other side copies), while
    circular wraps around what is left after cropping.
    """
    if mode == "circular":
        start = max(-lo, 0)
        kept = n - start - max(-hi, 0)
        i = np.arange(-max(lo, 0), kept + max(hi, 0))
        return start + (i % kept if kept > 0 else i)  # kept <= 0 leaves i empty
    i = np.arange(-lo, n + hi)
    if mode == "reflect":
        i = np.abs(i)
        return np.where(i >= n, 2 * (n - 1) - i, i)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    return np.where((i >= 0) & (i < n), i, -1)  # constant


def _interior(n, lo, hi):
    """``(p0, p1, i0)``: output positions ``p0:p1`` read input positions ``i0:i0 + p1 - p0``.

    The interior is what survives the crops, ``first:last``; it starts after the low-side
    padding (the same in every mode).
    """
    first = max(-lo, 0)
    last = n - max(-hi, 0)
    if last <= first:
        return 0, 0, 0
    return max(lo, 0), max(lo, 0) + last - first, first


def check_pad_widths(shape, widths, mode, name="padding"):
    """Raise ValueError unless ``widths`` (possibly negative) can pad an array of ``shape``."""
    if mode not in PAD_MODES:
        raise ValueError(f"mode: expected one of {PAD_MODES}, got {mode!r}")
    for axis, (n, (lo, hi)) in enumerate(zip(shape, widths)):
        grow_lo, grow_hi = max(lo, 0), max(hi, 0)
        if n + lo + hi < 0:
            raise ValueError(
                f"{name}: ({lo}, {hi}) crops more than the input size {n} along axis {axis}")
        if mode == "reflect" and (grow_lo or grow_hi) and (grow_lo >= n or grow_hi >= n):
            raise ValueError(
                f"{name}: reflect padding ({lo}, {hi}) must be smaller than the input size {n} "
                f"along axis {axis}")
        kept = n - max(-lo, 0) - max(-hi, 0)
        if mode == "circular" and (grow_lo > kept or grow_hi > kept):
            raise ValueError(
                f"{name}: circular padding ({lo}, {hi}) must not exceed the (cropped) input size "
                f"{max(kept, 0)} along axis {axis}")
        if mode == "replicate" and n == 0 and (grow_lo or grow_hi):
            raise ValueError(f"{name}: cannot replicate-pad an empty axis {axis}")


def _slices(axis, ndim, index):
    at = [slice(None)] * ndim
    at[axis] = index
    return tuple(at)


def pad_array(x, widths, mode="constant", value=0.0):
    """Pad ``x`` by ``widths`` (one ``(lo, hi)`` per axis; negative values crop).

    x : ndarray of shape (n_0, ..., n_k)  ->  ndarray of shape (n_0 + lo_0 + hi_0, ...)
    """
    check_pad_widths(x.shape, widths, mode)
    if mode in ("constant", "zeros"):
        return _constant_pad(x, widths, value)
    if _compiled_modes(x.shape, x.dtype, widths):
        return pad_modes_numba.pad(x, widths, mode)
    if all(lo >= 0 and hi >= 0 for lo, hi in widths):  # no crop: NumPy's pad is ~2x faster
        return np.pad(x, widths, mode=_NUMPY_MODE[mode])
    out = x
    for axis, (n, (lo, hi)) in enumerate(zip(x.shape, widths)):
        if lo or hi:
            out = np.take(out, _source_index(n, lo, hi, mode), axis=axis)
    return out.copy() if out is x else out


def _compiled_modes(shape, dtype, widths):
    """Whether reflect, replicate and circular padding take the compiled passes
    (``pad_modes_numba``): float32 or float64, from ``compiled_min_size`` values on, only the
    last three axes padded."""
    return dtype in (np.float32, np.float64) and \
        math.prod(shape) >= tuning.value("compiled_min_size") and \
        pad_modes_numba.applies(shape, widths)


def _constant_pad(x, widths, value=0.0):
    """``pad_array``'s constant mode, widths unchecked: all axes at once, fill, then copy the
    interior block. Faster than np.pad (a 16 MiB batch: 1.15 against 1.84 ms), most of all
    with zeros, whose pages come zeroed."""
    try:
        out_shape, inside, kept = _kept_layout(x.shape, widths)
    except TypeError:  # widths as lists
        out_shape, inside, kept = _constant_layout(x.shape, widths)
    out = np.zeros(out_shape, dtype=x.dtype) if value == 0 else \
        np.full(out_shape, value, dtype=x.dtype)
    out[inside] = x if kept is None else x[kept]  # no crop: x whole (a third faster on one
    return out                                     # small map)


def _constant_layout(shape, widths):
    """(the padded shape, where x's kept block goes in it, the block of x kept: None for all
    of x)."""
    out_shape = tuple(n + lo + hi for n, (lo, hi) in zip(shape, widths))
    if min(min(pair) for pair in widths) >= 0:
        return out_shape, tuple(slice(lo, lo + n) for n, (lo, _) in zip(shape, widths)), None
    inner = [_interior(n, lo, hi) for n, (lo, hi) in zip(shape, widths)]
    return (out_shape, tuple(slice(p0, p1) for p0, p1, _ in inner),
            tuple(slice(i0, i0 + p1 - p0) for p0, p1, i0 in inner))


# The same for every call of a layer, so kept (16 × 28 × 28 values padded by 1: 9.0 µs
# worked out each time, 6.0 kept); integers of any type give the same answer.
_kept_layout = functools.lru_cache(maxsize=1024)(_constant_layout)


def pad_array_backward(grad, in_shape, widths, mode="constant"):
    """dL/dx of ``pad_array``: the interior of ``grad``, plus border gradients on their sources.

    grad : ndarray of the padded shape  ->  ndarray of shape ``in_shape``
    """
    in_shape = tuple(in_shape)
    if mode in ("constant", "zeros"):  # constant cells have no source: just the interior
        inner = [_interior(n, lo, hi) for n, (lo, hi) in zip(in_shape, widths)]
        dx = np.zeros(in_shape, dtype=grad.dtype)
        dx[tuple(slice(i0, i0 + p1 - p0) for p0, p1, i0 in inner)] = \
            grad[tuple(slice(p0, p1) for p0, p1, _ in inner)]
        return dx
    if _compiled_modes(in_shape, grad.dtype, widths):
        return pad_modes_numba.pad_backward(grad, in_shape, widths, mode)
    for axis, (n, (lo, hi)) in enumerate(zip(in_shape, widths)):
        if not (lo or hi):
            continue
        source = _source_index(n, lo, hi, mode)
        p0, p1, i0 = _interior(n, lo, hi)
        folded = np.zeros(grad.shape[:axis] + (n,) + grad.shape[axis + 1:], dtype=grad.dtype)
        folded[_slices(axis, grad.ndim, slice(i0, i0 + p1 - p0))] = \
            grad[_slices(axis, grad.ndim, slice(p0, p1))]
        for p in [*range(p0), *range(p1, len(source))]:  # border cells of one axis, not outputs
            folded[_slices(axis, grad.ndim, source[p])] += grad[_slices(axis, grad.ndim, p)]
        grad = folded
    assert grad.shape == in_shape
    return grad


# -- zero padding of (N, C, *spatial) arrays, for the convolution kernels ---------------------
# ``pads`` is one (lo, hi) pair per spatial dim, or None for none.

def has_padding(pads):
    return pads is not None and any(lo or hi for lo, hi in pads)


def zero_pad(x, pads):
    """x (N, C, *spatial) -> (N, C, *(spatial + lo + hi)), zeros around. Large batches of
    1-, 2- and 3-D inputs are padded by one parallel pass (``pad_numba``; NumPy's pad is one
    thread: res3x3's dy, 8 MB, 0.9 against 0.35 ms), the rest by ``pad_array``."""
    if not has_padding(pads):
        return x
    if _compiled(x, pads):
        return pad_planes(x, pads)[0]
    # the caller's widths need no checks (a third of the time on one small image)
    return _constant_pad(x, ((0, 0), (0, 0)) + tuple(pads))


def zero_pad_finite(x, pads):
    """(``zero_pad(x, pads)``, whether x holds no inf or NaN): found by the compiled pass as
    it pads, else by a pass of its own (``finite.all_finite``)."""
    if has_padding(pads) and _compiled(x, pads):
        return pad_planes(x, pads)
    return zero_pad(x, pads), all_finite(x)


def _compiled(x, pads):
    return x.size >= tuning.value("compiled_min_size") and 3 <= x.ndim <= 5 and \
        min(min(p) for p in pads) >= 0


def crop(xp, pads):
    """The gradient of ``zero_pad``: the interior of ``xp``, as a new array."""
    if not has_padding(pads):
        return xp
    inner = xp.shape[:2] + tuple(n - lo - hi for n, (lo, hi) in zip(xp.shape[2:], pads))
    return pad_array_backward(xp, inner, ((0, 0), (0, 0)) + tuple(pads))
