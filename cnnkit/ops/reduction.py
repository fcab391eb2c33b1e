"""Reductions: sum, mean, max/min (with ``axis`` and ``keepdims``), var."""
import builtins

import numpy as np

from ..tensor import Tensor

_quiet = np.errstate(all="ignore")  # inf + -inf = NaN silently, as in PyTorch


def _axes(axis, ndim):
    """``axis`` (None, an int or a sequence) as a sorted tuple of non-negative axes.

    A 0-d tensor accepts axis 0 or -1 (as PyTorch) and has nothing to reduce over.
    """
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    bound = builtins.max(ndim, 1)
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"axis: expected integers, got {a!r}")
        if not -bound <= a < bound:
            raise ValueError(f"axis {a} is out of range for a tensor of {ndim} dims")
    if ndim == 0:
        return ()
    normalized = sorted(a % ndim for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis: {tuple(axes)} names a dim more than once")
    return tuple(normalized)


def _expand(g, shape, axes, keepdims):
    """Give a reduced gradient back the reduced axes so it broadcasts against the input."""
    if not keepdims:
        for a in axes:
            g = np.expand_dims(g, a)
    return g


@_quiet
def sum(x, axis=None, keepdims=False) -> Tensor:  # noqa: A001
    axes = _axes(axis, x.ndim)
    out = np.sum(x.data, axis=axes, keepdims=keepdims)

    def backward(g):
        return (np.broadcast_to(_expand(g, x.shape, axes, keepdims), x.shape).copy(),)
    return Tensor._make(np.asarray(out), (x,), backward, "sum")


@_quiet
def mean(x, axis=None, keepdims=False) -> Tensor:
    if x.dtype.kind != "f":  # PyTorch refuses too, rather than guess an output dtype
        raise TypeError(f"mean: needs a floating-point tensor, got dtype {x.dtype}")
    axes = _axes(axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes])) if x.ndim else 1
    out = np.mean(x.data, axis=axes, keepdims=keepdims)

    def backward(g):
        g = _expand(g, x.shape, axes, keepdims) / count
        return (np.broadcast_to(g, x.shape).astype(x.dtype),)
    return Tensor._make(np.asarray(out, dtype=x.dtype), (x,), backward, "mean")


def _extreme(fn, arg_fn, name):
    def reduce(x, axis=None, keepdims=False) -> Tensor:
        """Max/min over ``axis``, with PyTorch's gradient for ties: over one axis (an int, as
        ``torch.max(x, dim)``) all of it goes to the first extreme, the index ``argmax``
        returns; over all axes or a tuple of them (``x.max()``, ``amax``) tied extremes share
        it equally.

        A NaN wins the reduction and takes its gradient, as with PyTorch's ``max()``
        (``amax`` would make every gradient in the slice NaN).
        """
        axes = _axes(axis, x.ndim)
        out_kept = fn(x.data, axis=axes, keepdims=True)
        out = out_kept if keepdims else np.squeeze(out_kept, axis=axes)
        one_axis = isinstance(axis, (int, np.integer)) and x.ndim > 0

        def backward(g):
            g = _expand(g, x.shape, axes, keepdims)
            if one_axis:  # NumPy's argmax/argmin also pick the first NaN
                first = np.expand_dims(arg_fn(x.data, axis=axes[0]), axes[0])
                grad = np.zeros(x.shape, dtype=np.result_type(g, x.dtype))
                np.put_along_axis(grad, first, np.take_along_axis(
                    np.broadcast_to(g, grad.shape), first, axes[0]), axes[0])
                return (grad,)
            hit = (x.data == out_kept) | (np.isnan(x.data) & np.isnan(out_kept))
            return (hit * (g / hit.sum(axis=axes, keepdims=True)),)
        return Tensor._make(np.asarray(out), (x,), backward, name)
    return reduce


max = _extreme(np.max, np.argmax, "max")  # noqa: A001
min = _extreme(np.min, np.argmin, "min")  # noqa: A001


def var(x, axis=None, keepdims=False, correction=1) -> Tensor:
    """Variance with Bessel's ``correction`` (PyTorch's default 1), built from mean and sum."""
    axes = _axes(axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes]))
    centred = x - mean(x, axis=axes, keepdims=True)
    return sum(centred * centred, axis=axes, keepdims=keepdims) / (count - correction)
