"""Compiled leaky ReLU and GELU (Numba), forward and backward: one parallel pass each.

NumPy's ``np.where(x > 0, a, b)`` tests its condition with a branch per element, which on real
activations (about half positive, in no order) cannot be predicted: leaky ReLU of a
32 × 64 × 32 × 32 batch took 8.4 ms that way, against 0.6 for PyTorch's layer. A compiled
loop selects without branching.

GELU's float64 arrays are computed in float64 by libm's erfc and tanh (``gelu_forward``,
``gelu_backward``), exact to float64's last bits; some thirty NumPy passes over float64
temporaries took 137 ms for the same batch. float32 arrays take vector loops
(``gelu_vector_forward``, ``gelu_vector_backward``): the exact form in float32 arithmetic on
``vector_math_numba``'s float32 e^(−x²/2) and erfcx, within 7 units of the last place, the
left tail's subnormals included (PyTorch's float32 ½x(1 + erf(x/√2)) cancels there); the
tanh form in float64, the float32 nearest at 99.9 % of the points. ELU's float32 passes are
vector loops too, and so is sigmoid's forward pass, in float32 (``sigmoid_vector_forward``);
sigmoid's and tanh's backward passes are single loops from their outputs.
ReLU has its own module (``relu_numba``). Same rules as ``functional.activation``.
"""
import math

import numba
import numpy as np

from . import vector_math_numba as vector_math

_JIT = dict(parallel=True, cache=True)
_VECTOR_JIT = dict(parallel=True, cache=True, fastmath=vector_math.FMA)
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


_TANH_CLIP = 20.0  # float32's limits: beyond |x| = 20, the tanh form's x·σ(2u) and its slope
# round to the limits (x or 0; 1 or 0) in float32 from any float32 x, and clipped x keeps e^a in
# its domain (NaN stays NaN through min and max, and so does its slope)
_CLIP_F32 = np.float32(vector_math.ERFCX_X_MAX)  # the same for x·Φ(x): the erfcx fit's end
_SQRT_HALF_F32 = np.float32(_SQRT_HALF)
_INV_SQRT_2PI_F32 = np.float32(_INV_SQRT_2PI)


@numba.njit(inline="always", fastmath=vector_math.FMA)
def _logistic(a):
    """(σ(a), σ(a)·(1 − σ(a))) for a float64 a (NaN gives NaN): with E = e^(−|a|), σ = 1/(1 + E)
    for a ≥ 0 and E/(1 + E) below, and σ(1 − σ) = E/(1 + E)² either way. 1 + E lies in [1, 2],
    so ``reciprocal`` divides it, and no 1 − σ cancels."""
    e = vector_math.exp(max(-abs(a), vector_math.EXP_MIN))
    r = vector_math.reciprocal(1.0 + e)
    return (r if a >= 0 else e * r), e * r * r


@numba.njit(inline="always", fastmath=vector_math.FMA)
def _tanh_form_cdf(clipped):
    """(σ(2u), its derivative 2σ(1 − σ)·du/dx) for the tanh form, x clipped to ±20, in
    float64: ½(1 + tanh u) = σ(2u)."""
    u = _TANH_SCALE * (clipped + _TANH_CUBIC * clipped ** 3)
    cdf, spread = _logistic(2.0 * u)
    return cdf, 2.0 * spread * _TANH_SCALE * (1.0 + 3.0 * _TANH_CUBIC * clipped * clipped)


@numba.njit(inline="always", fastmath=vector_math.FMA)
def _normal_tail_f32(clipped):
    """(p, m, n) for a float32 x clipped to ±18: Φ(−|x|) = p·m·2^n and φ(x) = m·2^n/√(2π),
    with p = ½·erfcx(|x|/√2) and m·2^n = e^(−x²/2) (``vector_math``), in float32."""
    m, n = vector_math.exp_half_square_f32(clipped)
    return vector_math.half_erfcx_f32(abs(clipped) * _SQRT_HALF_F32), m, n


def gelu_vector_forward(x, tanh_form, out):
    """``gelu_forward`` for float32 x and out, by vector loops (``vector_math``). The exact
    form in float32 (``_exact_gelu_forward``), the tanh form in float64, rounded once (the
    float32 nearest to x·σ(2u) at 99.9 % of the points)."""
    if tanh_form:
        _tanh_gelu_forward(x, out)
    else:
        _exact_gelu_forward(x, out)


def gelu_vector_backward(x, grad, tanh_form, dx):
    """``gelu_backward`` for float32 x, grad and dx, by vector loops: d/dx x·Φ(x) =
    Φ(x) + x·Φ'(x); the exact form in float32 (``_exact_gelu_backward``), the tanh form in
    float64."""
    if tanh_form:
        _tanh_gelu_backward(x, grad, dx)
    else:
        _exact_gelu_backward(x, grad, dx)


@numba.njit(**_VECTOR_JIT)
def _exact_gelu_forward(x, out):
    """x·Φ(x) in float32: x·Φ(−|x|) below 0, x·(1 − Φ(−|x|)) above, Φ(−|x|)'s e^(−x²/2)
    scaled by its power of 2 last, so that the left tail's subnormals round once. Within 7
    units of float32's last place (5.8 at worst of 800 000 random points on AVX-512, 6.4
    before x² was taken by a fused multiply-add, against the float64 libm loop;
    ``tests/test_vector_math.py``)."""
    for i in numba.prange(x.size):
        vector_math.widest_vectors()
        value = x[i]
        clipped = min(max(value, -_CLIP_F32), _CLIP_F32)
        p, m, n = _normal_tail_f32(clipped)
        if clipped < 0:
            result = vector_math.times_pow2_f32(clipped * p * m, n)
        else:
            result = clipped * (vector_math.ONE_F32 - vector_math.times_pow2_f32(p * m, n))
        out[i] = value if value > _CLIP_F32 else result  # x itself beyond 18, inf too


@numba.njit(**_VECTOR_JIT)
def _exact_gelu_backward(x, grad, dx):
    """dx = grad·(Φ(x) + x·φ(x)) in float32, as e^(−x²/2)·(p + x/√(2π)) below 0 and
    1 + e^(−x²/2)·(x/√(2π) − p) above (p = ½·erfcx(|x|/√2)). Within 6 units of the last
    place of |Φ(x)| + |x·φ(x)| (4.6 at worst of 800 000 random points on AVX-512, 4.5 before
    x² was taken by a fused multiply-add, 5.5 on x86-64 without fused multiply-adds), which
    near the slope's zero at x = −0.75 is far from the slope's own."""
    for i in numba.prange(x.size):
        vector_math.widest_vectors()
        clipped = min(max(x[i], -_CLIP_F32), _CLIP_F32)
        p, m, n = _normal_tail_f32(clipped)
        below = clipped < 0
        scaled = vector_math.times_pow2_f32(
            (clipped * _INV_SQRT_2PI_F32 + (p if below else -p)) * m, n)
        dx[i] = grad[i] * (scaled if below else vector_math.ONE_F32 + scaled)


@numba.njit(**_VECTOR_JIT)
def _tanh_gelu_forward(x, out):
    for i in numba.prange(x.size):
        vector_math.widest_vectors()
        value = np.float64(x[i])
        cdf = _tanh_form_cdf(min(max(value, -_TANH_CLIP), _TANH_CLIP))[0]
        out[i] = max(value, 0.0) if math.isinf(value) else value * cdf


@numba.njit(**_VECTOR_JIT)
def _tanh_gelu_backward(x, grad, dx):
    for i in numba.prange(x.size):
        vector_math.widest_vectors()
        value = np.float64(x[i])
        clipped = min(max(value, -_TANH_CLIP), _TANH_CLIP)
        cdf, density = _tanh_form_cdf(clipped)
        dx[i] = np.float64(grad[i]) * (cdf + clipped * density)


@numba.njit(**_VECTOR_JIT)
def tanh_backward(out, grad, dx):
    """dx = grad·(1 − tanh²) from the forward's float32 output, in float64: one pass where
    NumPy's took three. (The forward stays NumPy's float32 tanh, a vector loop of its own:
    a float64 one from ``expm1`` ran 1.9 times as long on AVX-512.)"""
    for i in numba.prange(out.size):
        t = np.float64(out[i])
        dx[i] = np.float64(grad[i]) * (1.0 - t * t)


@numba.njit(**_VECTOR_JIT)
def sigmoid_vector_forward(x, out):
    """out = σ(x) = 1/(1 + e^(−x)) for float32 x, in float32 (``_logistic`` in float64 ran
    0.82 of NumPy's four passes' time on AVX-512 but 1.49 on AVX2, whose vectors hold half
    as many float64 lanes): with e = e^(−|x|), which never overflows, σ = 1/(1 + e) for
    x ≥ 0 and e/(1 + e) below, so the left tail keeps its subnormals where 1/(1 + e^(−x))
    gives 0. NaN stays NaN. Within 2 units of the last place, the nearest float32 at 78 % of
    18 000 points against mpmath (NumPy's passes: 62 %, and 0 for the subnormals). 32 × 64 ×
    32 × 32 values, 2 threads: 0.68 ms against 1.48 for NumPy's passes on AVX-512, 0.88
    against 1.48 on AVX2 (PyTorch 0.45 and 0.70)."""
    for i in numba.prange(x.size):
        vector_math.widest_vectors()
        value = x[i]
        t = -abs(value)
        e = vector_math.exp_nonpositive_f32(
            vector_math.EXP_F32_MIN if t < vector_math.EXP_F32_MIN else t)
        right = vector_math.ONE_F32 / (vector_math.ONE_F32 + e)
        sigma = right if value >= 0 else e * right
        out[i] = value if value != value else sigma


@numba.njit(**_VECTOR_JIT)
def sigmoid_backward(out, grad, dx):
    """dx = grad·σ(1 − σ) from the forward's float32 output σ, in float64: one pass where
    NumPy's took three."""
    for i in numba.prange(out.size):
        s = np.float64(out[i])
        dx[i] = np.float64(grad[i]) * (s * (1.0 - s))


@numba.njit(**_VECTOR_JIT)
def elu_vector_forward(x, alpha, out):
    """out = x if x > 0 else α(e^x − 1), for float32 x and out, in float64 (``expm1``)."""
    for i in numba.prange(x.size):
        vector_math.widest_vectors()
        value = np.float64(x[i])
        below = alpha * vector_math.expm1(max(min(value, 0.0), vector_math.EXP_MIN))
        out[i] = value if value > 0 else below


@numba.njit(**_VECTOR_JIT)
def elu_vector_backward(x, grad, alpha, dx):
    """dx = grad where x > 0 or x is NaN (whose gradient passes, as PyTorch's), else
    grad·α·e^x."""
    for i in numba.prange(x.size):
        vector_math.widest_vectors()
        value = np.float64(x[i])
        below = alpha * vector_math.exp(max(min(value, 0.0), vector_math.EXP_MIN))
        dx[i] = np.float64(grad[i]) * (below if value <= 0 else 1.0)
