"""Reductions: sum, mean, max/min (with ``axis`` and ``keepdims``), var."""
import builtins

import numpy as np

from ..tensor import Tensor


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor of {ndim} dims")
    return tuple(sorted(a % builtins.max(ndim, 1) for a in axes))


def _expand(g, shape, axes, keepdims):
    """Give a reduced gradient back the reduced axes so it broadcasts against the input."""
    if not keepdims:
        for a in axes:
            g = np.expand_dims(g, a)
    return g


def sum(x, axis=None, keepdims=False) -> Tensor:  # noqa: A001
    axes = _axes(axis, x.ndim)
    out = np.sum(x.data, axis=axes, keepdims=keepdims)

    def backward(g):
        return (np.broadcast_to(_expand(g, x.shape, axes, keepdims), x.shape).copy(),)
    return Tensor._make(np.asarray(out), (x,), backward, "sum")


def mean(x, axis=None, keepdims=False) -> Tensor:
    axes = _axes(axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes])) if x.ndim else 1
    out = np.mean(x.data, axis=axes, keepdims=keepdims)

    def backward(g):
        g = _expand(g, x.shape, axes, keepdims) / count
        return (np.broadcast_to(g, x.shape).astype(x.dtype),)
    return Tensor._make(np.asarray(out, dtype=x.dtype), (x,), backward, "mean")


def _extreme(fn, name):
    def reduce(x, axis=None, keepdims=False) -> Tensor:
        """Max/min over ``axis``; tied extremes share the gradient equally (like ``amax``)."""
        axes = _axes(axis, x.ndim)
        out_kept = fn(x.data, axis=axes, keepdims=True)
        out = out_kept if keepdims else np.squeeze(out_kept, axis=axes)

        def backward(g):
            hit = x.data == out_kept
            return (hit * (_expand(g, x.shape, axes, keepdims) / hit.sum(axis=axes, keepdims=True)),)
        return Tensor._make(np.asarray(out), (x,), backward, name)
    return reduce


max = _extreme(np.max, "max")  # noqa: A001
min = _extreme(np.min, "min")  # noqa: A001


def var(x, axis=None, keepdims=False, correction=1) -> Tensor:
    """Variance with Bessel's ``correction`` (PyTorch's default 1), built from mean and sum."""
    axes = _axes(axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes]))
    centred = x - mean(x, axis=axes, keepdims=True)
    return sum(centred * centred, axis=axes, keepdims=keepdims) / (count - correction)
