"""Binary arithmetic with broadcasting: + - * / ** @ and comparisons.

Each op's backward maps dL/dout to one gradient per input; ``unbroadcast`` sums each gradient
back over the axes broadcasting stretched, so shapes always match the inputs.
"""
import numpy as np

from ..tensor import Tensor, as_tensor, unbroadcast


def _pair(a, b):
    a = as_tensor(a, like=b if isinstance(b, Tensor) else None)
    b = as_tensor(b, like=a)
    return a, b


def add(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        return unbroadcast(g, a.shape), unbroadcast(g, b.shape)
    return Tensor._make(a.data + b.data, (a, b), backward, "add")


def sub(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        return unbroadcast(g, a.shape), unbroadcast(-g, b.shape)
    return Tensor._make(a.data - b.data, (a, b), backward, "sub")


def mul(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        return (unbroadcast(g * b.data, a.shape) if a.requires_grad else None,
                unbroadcast(g * a.data, b.shape) if b.requires_grad else None)
    return Tensor._make(a.data * b.data, (a, b), backward, "mul")


def div(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        # d(a/b)/da = 1/b ;  d(a/b)/db = -a/b²
        return (unbroadcast(g / b.data, a.shape) if a.requires_grad else None,
                unbroadcast(-g * a.data / (b.data * b.data), b.shape) if b.requires_grad else None)
    return Tensor._make(a.data / b.data, (a, b), backward, "div")


def power(a, b) -> Tensor:
    a, b = _pair(a, b)
    out = a.data ** b.data

    def backward(g):
        grad_a = grad_b = None
        if a.requires_grad:  # d(a^b)/da = b·a^(b-1)
            grad_a = unbroadcast(g * b.data * a.data ** (b.data - 1), a.shape)
        if b.requires_grad:  # d(a^b)/db = a^b·ln a  (0 where a = 0, as PyTorch)
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(a.data > 0, np.log(np.where(a.data > 0, a.data, 1)), 0)
            grad_b = unbroadcast(g * out * log_a, b.shape)
        return grad_a, grad_b
    return Tensor._make(out, (a, b), backward, "pow")


def matmul(a, b) -> Tensor:
    """``a @ b`` with NumPy's rules: 1-D operands are promoted, leading dims broadcast.

    Forward [m, j] @ [j, k] -> [m, k]; the transposes give dL/da = g @ bᵀ and dL/db = aᵀ @ g.
    """
    a, b = _pair(a, b)

    def backward(g):
        A = a.data[None, :] if a.ndim == 1 else a.data
        B = b.data[:, None] if b.ndim == 1 else b.data
        G = g
        if a.ndim == 1:
            G = np.expand_dims(G, -2)
        if b.ndim == 1:
            G = np.expand_dims(G, -1)
        grad_a = grad_b = None
        if a.requires_grad:
            grad_a = G @ np.swapaxes(B, -1, -2)
            grad_a = unbroadcast(grad_a, A.shape).reshape(a.shape)
        if b.requires_grad:
            grad_b = np.swapaxes(A, -1, -2) @ G
            grad_b = unbroadcast(grad_b, B.shape).reshape(b.shape)
        return grad_a, grad_b
    return Tensor._make(a.data @ b.data, (a, b), backward, "matmul")


def neg(a) -> Tensor:
    return Tensor._make(-a.data, (a,), lambda g: (-g,), "neg")


def _compare(fn):
    def compare(a, b) -> Tensor:
        a, b = _pair(a, b)
        return Tensor(fn(a.data, b.data))
    return compare


lt, le, gt, ge = (_compare(f) for f in (np.less, np.less_equal, np.greater, np.greater_equal))
eq, ne = _compare(np.equal), _compare(np.not_equal)
