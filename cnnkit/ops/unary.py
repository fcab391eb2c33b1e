"""Elementwise functions of one tensor, each with its derivative beside it.

As in PyTorch, log(0) = -inf, sqrt(-1) = NaN and overflow to inf happen silently.
"""
import numpy as np

from ..tensor import Tensor

_quiet = np.errstate(all="ignore")  # a decorator: NumPy >= 2 keeps the state per call, so it nests


def _floating(x: Tensor) -> Tensor:
    """Integer and bool tensors compute exp/log/sqrt in the default float32, as PyTorch does
    (NumPy would give float64). They never require grad, so no graph link is lost."""
    return x if x.dtype.kind == "f" else Tensor(x.data.astype(np.float32))


@_quiet
def exp(x) -> Tensor:
    """exp(x); d/dx = exp(x)."""
    x = _floating(x)
    out = np.exp(x.data)
    return Tensor._make(out, (x,), lambda g: (g * out,), "exp")


@_quiet
def log(x) -> Tensor:
    """ln(x); d/dx = 1/x."""
    x = _floating(x)
    return Tensor._make(np.log(x.data), (x,), lambda g: (g / x.data,), "log")


@_quiet
def sqrt(x) -> Tensor:
    """√x; d/dx = 1/(2√x) (inf at 0)."""
    x = _floating(x)
    out = np.sqrt(x.data)
    return Tensor._make(out, (x,), lambda g: (g / (2 * out),), "sqrt")


def abs(x) -> Tensor:  # noqa: A001 - the PyTorch name
    """|x|; d/dx = sign(x), taken as 0 at 0 and at NaN (PyTorch's ``sgn``; NumPy's is NaN)."""
    return Tensor._make(np.abs(x.data), (x,),
                        lambda g: (g * np.nan_to_num(np.sign(x.data), nan=0.0),), "abs")


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
    """Elementwise maximum; ties send half the gradient to each side, as PyTorch.

    Where either side is NaN the output is NaN and neither side gets gradient (PyTorch too).
    """
    from .arithmetic import _pair
    from ..tensor import unbroadcast
    a, b = _pair(a, b)
    out = np.maximum(a.data, b.data)

    def backward(g):
        tie = 0.5 * (a.data == b.data)
        a_share, b_share = (a.data > b.data) + tie, (a.data < b.data) + tie
        return unbroadcast(g * a_share, a.shape), unbroadcast(g * b_share, b.shape)
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
