"""Compiled ReLU forward and backward (Numba): one parallel pass each, no temporaries.

NumPy's ``np.maximum(x, 0)`` runs on one thread, and the backward ``g * (out > 0)`` makes a
boolean mask and then a product: two passes and a temporary over an activation-sized array.
Same rules as ``functional.relu``: NaN passes through forward and passes the gradient back.
"""
import numba

_JIT = dict(parallel=True, cache=True)


@numba.njit(**_JIT)
def forward(x, out):
    """out = max(x, 0) elementwise, NaN kept (x, out: flat arrays of one size)."""
    for i in numba.prange(x.size):
        value = x[i]
        out[i] = value if not value <= 0 else 0  # `not <=`: NaN takes the first branch


@numba.njit(**_JIT)
def backward(out, grad, dx):
    """dx = grad where out > 0 (or out is NaN), else 0."""
    for i in numba.prange(out.size):
        dx[i] = grad[i] if not out[i] <= 0 else 0
