"""Elementwise functions of one tensor, each with its derivative beside it."""
import numpy as np

from ..tensor import Tensor


def exp(x) -> Tensor:
    out = np.exp(x.data)
    return Tensor._make(out, (x,), lambda g: (g * out,), "exp")


def log(x) -> Tensor:
    return Tensor._make(np.log(x.data), (x,), lambda g: (g / x.data,), "log")


def sqrt(x) -> Tensor:
    out = np.sqrt(x.data)
    return Tensor._make(out, (x,), lambda g: (g / (2 * out),), "sqrt")


def abs(x) -> Tensor:  # noqa: A001 - the PyTorch name
    return Tensor._make(np.abs(x.data), (x,), lambda g: (g * np.sign(x.data),), "abs")


def clip(x, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's argument names
    """Clamp to [min, max]; the gradient passes where the value was inside (bounds included)."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    out = np.clip(x.data, min, max)

    def backward(g):
        inside = np.ones(x.shape, dtype=bool)
        if min is not None:
            inside &= x.data >= min
        if max is not None:
            inside &= x.data <= max
        return (g * inside,)
    return Tensor._make(out, (x,), backward, "clip")


def maximum(a, b) -> Tensor:
    """Elementwise maximum; ties send half the gradient to each side, as PyTorch."""
    from .arithmetic import _pair
    from ..tensor import unbroadcast
    a, b = _pair(a, b)
    out = np.maximum(a.data, b.data)

    def backward(g):
        a_wins = (a.data > b.data) + 0.5 * (a.data == b.data)
        return unbroadcast(g * a_wins, a.shape), unbroadcast(g * (1 - a_wins), b.shape)
    return Tensor._make(out, (a, b), backward, "maximum")


def where(condition, a, b) -> Tensor:
    from .arithmetic import _pair
    from ..tensor import unbroadcast
    a, b = _pair(a, b)
    cond = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    out = np.where(cond, a.data, b.data)

    def backward(g):
        return unbroadcast(np.where(cond, g, 0), a.shape), unbroadcast(np.where(cond, 0, g), b.shape)
    return Tensor._make(out, (a, b), backward, "where")
