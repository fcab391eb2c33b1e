"""Binary arithmetic with broadcasting: + - * / ** @ and comparisons.

Each op's backward maps dL/dout to one gradient per input; ``unbroadcast`` sums each gradient
back over the axes broadcasting stretched, so shapes always match the inputs.

As in PyTorch, inf and NaN are values that propagate, not errors: the forward ops run under
``np.errstate(all="ignore")`` (backward runs so in ``Tensor.backward``).
"""
import numpy as np

from ..kernels.arithmetic_numba import binary
from ..tensor import Tensor, as_tensor, result_dtype, unbroadcast

_quiet = np.errstate(all="ignore")  # a decorator: NumPy >= 2 keeps the state per call, so it nests


def _cast(x: Tensor, dtype) -> Tensor:
    """``x`` as ``dtype``; the gradient goes back in ``x``'s own dtype."""
    if x.dtype == dtype:
        return x
    return Tensor._make(x.data.astype(dtype), (x,), lambda g: (g.astype(x.dtype),), "cast")


def _pair(a, b):
    """Both operands as Tensors of one dtype, chosen by PyTorch's promotion rules.

    Casting here (rather than letting NumPy promote) keeps ``t * 2.0`` float32 and makes a
    float64 0-d tensor not widen a float32 array, as in PyTorch.
    """
    a = as_tensor(a, like=b if isinstance(b, Tensor) else None)
    b = as_tensor(b, like=a)
    dtype = result_dtype(a, b)
    return _cast(a, dtype), _cast(b, dtype)


@_quiet
def add(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        return unbroadcast(g, a.shape), unbroadcast(g, b.shape)
    return Tensor._make(binary(np.add, a.data, b.data), (a, b), backward, "add")


@_quiet
def sub(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        return unbroadcast(g, a.shape), unbroadcast(-g, b.shape)
    return Tensor._make(binary(np.subtract, a.data, b.data), (a, b), backward, "sub")


@_quiet
def mul(a, b) -> Tensor:
    a, b = _pair(a, b)

    def backward(g):
        return (unbroadcast(binary(np.multiply, g, b.data), a.shape) if a.requires_grad else None,
                unbroadcast(binary(np.multiply, g, a.data), b.shape) if b.requires_grad else None)
    return Tensor._make(binary(np.multiply, a.data, b.data), (a, b), backward, "mul")


@_quiet
def div(a, b) -> Tensor:
    a, b = _pair(a, b)
    if a.dtype.kind != "f":  # true division of integers gives the default float32, as PyTorch
        a, b = _cast(a, np.float32), _cast(b, np.float32)

    def backward(g):
        # d(a/b)/da = 1/b ;  d(a/b)/db = -a/b²
        return (unbroadcast(binary(np.divide, g, b.data), a.shape) if a.requires_grad else None,
                unbroadcast(-g * a.data / (b.data * b.data), b.shape) if b.requires_grad else None)
    return Tensor._make(binary(np.divide, a.data, b.data), (a, b), backward, "div")


@_quiet
def power(a, b) -> Tensor:
    """a^b. With a scalar exponent (``x ** 2``) the products run as the other arithmetic's
    (``binary``): a step of ``(x ** 2).mean()`` on 2 M float32 values took 6.6–7.6 ms through
    NumPy's single passes and ``np.where``, 2.9–3.3 now, PyTorch's 3.1–3.7 (BENCHMARKS.md,
    "Residual sums on the compiled threads")."""
    a, b = _pair(a, b)
    squares = b.ndim == 0 and b.data == 2
    out = binary(np.multiply, a.data, a.data) if squares else a.data ** b.data  # 0^-1 = inf

    def backward(g):
        # PyTorch's conventions at the edges: d/da is 0 where b = 0 (even at a = 0, where
        # b·a^(b-1) would be 0·inf); d/db is 0 where a = 0 and b >= 0, and NaN for a < 0 (ln a).
        grad_a = grad_b = None
        if a.requires_grad and b.ndim == 0:  # d(a^b)/da = b·a^(b-1), the same products
            grad_a = (np.zeros_like(g) if b.data == 0 else binary(
                np.multiply, binary(np.multiply, g, b.data), a.data if squares
                else a.data ** (b.data - 1)))
            grad_a = unbroadcast(grad_a, a.shape)
        elif a.requires_grad:
            grad_a = unbroadcast(np.where(b.data == 0, 0, g * b.data * a.data ** (b.data - 1)),
                                 a.shape)
        if b.requires_grad:  # d(a^b)/db = a^b·ln a
            grad_b = unbroadcast(
                np.where((a.data == 0) & (b.data >= 0), 0, g * out * np.log(a.data)), b.shape)
        return grad_a, grad_b
    return Tensor._make(out, (a, b), backward, "pow")


@_quiet
def matmul(a, b) -> Tensor:
    """``a @ b`` with NumPy's rules: 1-D operands are promoted, leading dims broadcast.

    Forward [m, j] @ [j, k] -> [m, k]; the transposes give dL/da = g @ bᵀ and dL/db = aᵀ @ g.
    """
    a, b = _pair(a, b)

    def backward(g):
        A = a.data[None, :] if a.ndim == 1 else a.data
        B = b.data[:, None] if b.ndim == 1 else b.data
        # Give g back the row/column axes that 1-D promotion dropped (b's first: for 1-D @ 1-D,
        # g is 0-d and becomes (1, 1)).
        G = g
        if b.ndim == 1:
            G = G[..., None]
        if a.ndim == 1:
            G = G[..., None, :]
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
