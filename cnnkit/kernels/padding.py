"""Padding kernels on plain ndarrays: zeros/constant, reflect, replicate, circular.

The non-constant modes copy existing values into the border, so the gradient of a border cell
flows back to the cell it was copied from. Backward therefore takes the interior of the gradient
and adds each border slice onto its source: a loop over the (few) border positions per axis,
vectorised over everything else.
"""
import numpy as np

PAD_MODES = ("constant", "zeros", "reflect", "replicate", "circular")
_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def normalize_pad_width(pad_width, ndim):
    """``int`` or ``(lo, hi)`` or ``((lo, hi), ...)`` -> tuple of ``ndim`` ``(lo, hi)`` int pairs."""
    if np.ndim(pad_width) == 0:
        return ((int(pad_width), int(pad_width)),) * ndim
    widths = tuple(pad_width)
    if len(widths) == 2 and all(np.ndim(w) == 0 for w in widths):
        return ((int(widths[0]), int(widths[1])),) * ndim
    if len(widths) != ndim:
        raise ValueError(f"pad_width: expected {ndim} (lo, hi) pairs, got {len(widths)}")
    return tuple((int(lo), int(hi)) for lo, hi in widths)


def _source_index(n, lo, hi, mode):
    """For each output position along an axis of size ``n``, the input position it copies."""
    i = np.arange(-lo, n + hi)
    if mode == "reflect":
        i = np.abs(i)
        return np.where(i >= n, 2 * (n - 1) - i, i)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    return i % n  # circular


def check_pad_widths(shape, widths, mode, name="padding"):
    for axis, (n, (lo, hi)) in enumerate(zip(shape, widths)):
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(
                f"{name}: reflect padding ({lo}, {hi}) must be smaller than the input size {n} "
                f"along axis {axis}")
        if mode == "circular" and (lo > n or hi > n):
            raise ValueError(
                f"{name}: circular padding ({lo}, {hi}) must not exceed the input size {n} "
                f"along axis {axis}")
        if mode == "replicate" and n == 0 and (lo or hi):
            raise ValueError(f"{name}: cannot replicate-pad an empty axis {axis}")


def pad_array(x, widths, mode="constant", value=0.0):
    """Pad ``x`` by ``widths`` (one ``(lo, hi)`` per axis; negative values crop)."""
    if mode not in PAD_MODES:
        raise ValueError(f"mode: expected one of {PAD_MODES}, got {mode!r}")
    crop = tuple(slice(max(-lo, 0), x.shape[a] - max(-hi, 0)) for a, (lo, hi) in enumerate(widths))
    x = x[crop]
    grow = tuple((max(lo, 0), max(hi, 0)) for lo, hi in widths)
    if not any(lo or hi for lo, hi in grow):
        return x.copy()
    if mode in ("constant", "zeros"):
        return np.pad(x, grow, mode="constant", constant_values=value)
    check_pad_widths(x.shape, grow, mode)
    return np.pad(x, grow, mode=_NUMPY_MODE[mode])


def pad_array_backward(grad, in_shape, widths, mode="constant"):
    """dL/dx of ``pad_array``: fold the border gradients back onto their sources."""
    grow = tuple((max(lo, 0), max(hi, 0)) for lo, hi in widths)
    for axis, (lo, hi) in enumerate(grow):
        if not (lo or hi):
            continue
        n = grad.shape[axis] - lo - hi
        inner = [slice(None)] * grad.ndim
        inner[axis] = slice(lo, lo + n)
        folded = grad[tuple(inner)].copy()
        if mode not in ("constant", "zeros"):
            source = _source_index(n, lo, hi, mode)
            border = list(range(lo)) + list(range(lo + n, lo + n + hi))
            for p in border:  # a loop over border cells along one axis, not over outputs
                dst = [slice(None)] * grad.ndim
                src = [slice(None)] * grad.ndim
                dst[axis], src[axis] = source[p], p
                folded[tuple(dst)] += grad[tuple(src)]
        grad = folded
    # Undo negative widths (crops): their gradient is zero outside the kept region.
    uncrop = tuple((max(-lo, 0), max(-hi, 0)) for lo, hi in widths)
    if any(lo or hi for lo, hi in uncrop):
        grad = np.pad(grad, uncrop)
    assert grad.shape == tuple(in_shape)
    return grad
