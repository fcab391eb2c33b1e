"""Ops that move values without changing them: reshape, permute, index, join, pad.

Their backward moves the gradient back the same way: reshape back, permute by the inverse
permutation, scatter into the indexed places, split, crop.
"""
import math

import numpy as np

from ..tensor import Tensor, as_tensor


def reshape(x, *shape) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    out = x.data.reshape(shape)
    return Tensor._make(out, (x,), lambda g: (g.reshape(x.shape),), "reshape")


def flatten(x, start_dim=0, end_dim=-1) -> Tensor:
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    shape = x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:]
    return reshape(x, shape)


def permute(x, *axes) -> Tensor:
    axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    if sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
        raise ValueError(f"permute: axes {tuple(axes)} are not a permutation of {x.ndim} dims")
    inverse = np.argsort([a % x.ndim for a in axes])
    return Tensor._make(np.transpose(x.data, axes), (x,),
                        lambda g: (np.transpose(g, inverse),), "permute")


def transpose(x, dim0=None, dim1=None) -> Tensor:
    """Swap two dims (PyTorch); with none given, reverse all dims (NumPy's ``.T``)."""
    if dim0 is None and dim1 is None:
        return permute(x, tuple(reversed(range(x.ndim))))
    axes = list(range(x.ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return permute(x, axes)


def squeeze(x, axis=None) -> Tensor:
    """Drop size-1 dims (all, or those in ``axis``); a named dim of another size stays, as in
    PyTorch (NumPy would raise)."""
    if axis is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    bound = max(x.ndim, 1)
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    if any(not -bound <= a < bound for a in axes):
        raise ValueError(f"squeeze: axis {axis} is out of range for a tensor of {x.ndim} dims")
    drop = {a % bound for a in axes}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in drop and n == 1)))


def unsqueeze(x, axis) -> Tensor:
    return reshape(x, np.expand_dims(x.data, axis).shape)


def _is_basic(index) -> bool:
    """True for ints, slices, None and Ellipsis: indexing that never repeats an element."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def getitem(x, index) -> Tensor:
    if isinstance(index, Tensor):
        index = index.data
    if isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    out = x.data[index]

    def backward(g):
        if _is_basic(index):
            grad = np.zeros(x.shape, dtype=g.dtype)
            grad[index] = g
            return (grad,)
        # Advanced indexing may pick one element many times; bincount sums the repeats.
        flat = np.arange(x.size).reshape(x.shape)[index]
        grad = np.bincount(flat.ravel(), weights=np.broadcast_to(g, flat.shape).ravel(),
                           minlength=x.size)
        return (grad.astype(g.dtype).reshape(x.shape),)
    return Tensor._make(np.array(out, copy=False) if np.ndim(out) else np.asarray(out),
                        (x,), backward, "getitem")


def concatenate(tensors, axis=0) -> Tensor:
    tensors = [as_tensor(t) for t in tensors]
    out = np.concatenate([t.data for t in tensors], axis=axis)
    bounds = np.cumsum([t.shape[axis] for t in tensors])[:-1]
    return Tensor._make(out, tuple(tensors), lambda g: tuple(np.split(g, bounds, axis=axis)),
                        "concatenate")


def stack(tensors, axis=0) -> Tensor:
    tensors = [as_tensor(t) for t in tensors]
    out = np.stack([t.data for t in tensors], axis=axis)

    def backward(g):
        return tuple(np.take(g, i, axis=axis) for i in range(len(tensors)))
    return Tensor._make(out, tuple(tensors), backward, "stack")


def pad(x, pad_width, mode="constant", value=0.0) -> Tensor:
    """Pad with NumPy's ``pad_width`` convention (``((lo, hi), ...)`` per axis, or an int).

    ``mode`` is ``'constant'`` (with ``value``), ``'reflect'``, ``'replicate'`` or ``'circular'``.
    Negative widths crop, as in PyTorch's ``F.pad``.
    """
    from ..kernels.padding import pad_array, pad_array_backward, normalize_pad_width
    widths = normalize_pad_width(pad_width, x.ndim)
    out = pad_array(x.data, widths, mode, value)
    return Tensor._make(out, (x,), lambda g: (pad_array_backward(g, x.shape, widths, mode),), "pad")
