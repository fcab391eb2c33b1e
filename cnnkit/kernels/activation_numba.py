"""Compiled leaky ReLU and GELU (Numba), forward and backward: one parallel pass each.

NumPy's ``np.where(x > 0, a, b)`` tests its condition with a branch per element, which on real
activations (about half positive, in no order) cannot be predicted: leaky ReLU of a
32 × 64 × 32 × 32 batch took 8.4 ms that way, against 0.6 for PyTorch's layer. A compiled
loop selects without branching. GELU is computed in float64 from libm's erfc, per element,
instead of some thirty NumPy passes over float64 temporaries (137 ms for the same batch).
ReLU has its own module (``relu_numba``). Same rules as ``functional.activation``.
"""
import math

import numba
import numpy as np

_JIT = dict(parallel=True, cache=True)
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_SCALE = math.sqrt(2.0 / math.pi)  # the tanh form's √(2/π)
_TANH_CUBIC = 0.044715
_CLIP = 40.0  # beyond |x| = 40 GELU is max(x, 0) to double precision (``functional.gelu``)


@numba.njit(**_JIT)
def leaky_forward(x, slope, out):
    """out = x if x > 0 else slope·x (``slope`` of x's dtype), flat arrays of one size."""
    for i in numba.prange(x.size):
        value = x[i]
        out[i] = value if value > 0 else value * slope


@numba.njit(**_JIT)
def leaky_backward(x, grad, slope, dx):
    """dx = grad where x > 0, else grad·slope (NaN's gradient too, as PyTorch)."""
    for i in numba.prange(x.size):
        dx[i] = grad[i] if x[i] > 0 else grad[i] * slope


@numba.njit(cache=True, inline="always")
def _tanh_u(clipped):
    """The tanh form's tanh u, u = √(2/π)(x + 0.044715x³), for x clipped to ±40."""
    return math.tanh(_TANH_SCALE * (clipped + _TANH_CUBIC * clipped ** 3))


@numba.njit(cache=True, inline="always")
def _gelu_cdf(value, tanh_form):
    """Φ(x), or the tanh form's ½(1 + tanh u), for a finite or infinite float64 x."""
    if tanh_form:
        return 0.5 * (1.0 + _tanh_u(min(max(value, -_CLIP), _CLIP)))
    return 0.5 * math.erfc(-value * _SQRT_HALF)


@numba.njit(**_JIT)
def gelu_forward(x, tanh_form, out):
    """out = x·Φ(x) in float64, stored in out's dtype; the limits at ±inf (inf and 0)."""
    for i in numba.prange(x.size):
        value = np.float64(x[i])
        if math.isinf(value):
            out[i] = max(value, 0.0)
        else:
            out[i] = value * _gelu_cdf(value, tanh_form)


@numba.njit(**_JIT)
def gelu_backward(x, grad, tanh_form, dx):
    """dx = grad·(Φ(x) + x·φ(x)), or the tanh form's slope; slopes 0 and 1 at ∓inf."""
    for i in numba.prange(x.size):
        value = np.float64(x[i])
        clipped = min(max(value, -_CLIP), _CLIP)  # keeps 0·inf out of x·φ(x)
        if tanh_form:
            t = _tanh_u(clipped)
            du_dx = _TANH_SCALE * (1.0 + 3.0 * _TANH_CUBIC * clipped * clipped)
            slope = 0.5 * (1.0 + t) + 0.5 * clipped * (1.0 - t * t) * du_dx
        else:
            slope = _gelu_cdf(value, False) + \
                clipped * math.exp(-0.5 * clipped * clipped) * _INV_SQRT_2PI
        dx[i] = np.float64(grad[i]) * slope
