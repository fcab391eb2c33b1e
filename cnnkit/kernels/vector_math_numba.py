"""e^a, e^a − 1 and erfc for compiled elementwise loops, written so that LLVM vectorises them.

A loop that calls ``math.exp`` or ``math.erfc`` stays scalar: each is a libm call per
element, which LLVM cannot turn into vector code (GELU through libm's erfc took 13 ms on
2 M float32 values, against PyTorch's 0.9). These are arithmetic only, with no call and no
branch, inlined into the loop, so it runs a vector of float64 lanes at a time. All but one
are float64, for float32 results: GELU's and ELU's values and slopes built on them were the
float32 nearest to mpmath's at every one of 4801 points per function, tails included
(``tests/test_vector_math.py`` measures them against mpmath). ``exp_nonpositive_f32`` is
float32, twice the lanes, for sigmoid's forward pass.

Each is inlined with ``fastmath={"contract"}`` in the caller too (multiply-adds fused, nothing
else reordered).
"""
import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

FMA = {"contract"}  # the fastmath flags of these functions and of the loops that inline them

EXP_MIN, EXP_MAX = -708.0, 709.0  # ``exp``'s domain: 2^n stays a normal float64
_LOG2_E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts (fdlibm's): n·_LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_TAYLOR = np.array([1.0 / math.factorial(k) for k in range(13)])  # e^r to r^12: 2e-16 at
# |r| ≤ ln2/2
_TAYLOR_AFTER_1 = _TAYLOR[1:].copy()  # (e^r − 1)/r to r^11

# erfc(z) = t·e^(−z²)·Q(t), t = 1/(1 + z/2): Q in powers of t, fitted on z ∈ [0, 20/√2] to
# 5e-14 relative by ``python -m cnnkit.kernels.erfc_fit`` (which says how).
ERFCX_Q = (
    0.28209479889872474,
    0.2820944203906114,
    0.2468417293128976,
    0.17618417205681586,
    0.08494319126955728,
    -0.012529457106905222,
    -0.016546545894821546,
    -0.1994525577392787,
    0.3779967997127588,
    -0.6179296779501675,
    0.6135540604120457,
    0.6161319748250914,
    -2.962950402113392,
    4.624761663899849,
    -4.252229290227148,
    2.5247285012732625,
    -0.9615124991354391,
    0.21560838552322067,
    -0.021789267407698258,
)
_ERFCX_Q = np.array(ERFCX_Q)
ERFC_Z_MAX = 20.0 / math.sqrt(2.0)  # the fit's end: callers clamp z to it


def _pow2_of(bits, float_type, ir_float, exponent_bias, mantissa_bits):
    """An intrinsic 2^n for an int of ``bits`` bits whose n lies in the float type's normal
    exponents: n plus the exponent's bias written into the exponent's bits."""
    int_type = ir.IntType(bits)

    @intrinsic
    def pow2(typingctx, n):
        def codegen(context, builder, signature, args):
            biased = builder.add(args[0], ir.Constant(int_type, exponent_bias))
            return builder.bitcast(builder.shl(biased, ir.Constant(int_type, mantissa_bits)),
                                   ir_float)
        return float_type(getattr(types, f"int{bits}")), codegen
    return pow2


_pow2 = _pow2_of(64, types.float64, ir.DoubleType(), 1023, 52)  # int64 n in [−1022, 1023]


@numba.njit(inline="always", fastmath=FMA)
def exp(a):
    """e^a for a float64 a in [EXP_MIN, EXP_MAX] (callers clamp; NaN gives NaN): a = n·ln 2 + r
    with |r| ≤ ln2/2, e^r by Taylor's polynomial to r^12, times 2^n."""
    n = np.floor(a * _LOG2_E + 0.5)
    r = (a - n * _LN2_HI) - n * _LN2_LO
    return _polynomial(_TAYLOR, r) * _pow2(np.int64(n))


# e^t for float32 t ≤ 0 in float32 arithmetic (``exp_nonpositive_f32``): Cody and Waite's
# reduction with ln 2 in two float32 parts, and Cephes' minimax polynomial for expf (Moshier,
# expf.c: e^r = 1 + r + r²·P(r), |r| ≤ ln2/2), P's coefficients from r⁰ up
_LOG2_E_F32 = np.float32(_LOG2_E)
_LN2_HI_F32 = np.float32(0.693359375)  # 8 significant bits: n·_LN2_HI_F32 is exact
_LN2_LO_F32 = np.float32(-2.12194440e-4)
_EXPF_P = np.array([5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2, 8.3334519073e-3,
                    1.3981999507e-3, 1.9875691500e-4], np.float32)
EXP_F32_MIN = np.float32(-104.0)  # below, e^t is under half the smallest subnormal: 0
ONE_F32 = np.float32(1.0)
# adding and subtracting 1.5·2^23 rounds a float32 of magnitude below 2^22 to an integer, with
# no call: np.floor is one where SSE lacks a rounding instruction, and keeps the loop scalar
_ROUNDING_F32 = np.float32(1.5 * 2 ** 23)


_pow2_f32 = _pow2_of(32, types.float32, ir.FloatType(), 127, 23)  # int32 n in [−126, 127]


@numba.njit(inline="always", fastmath=FMA)
def exp_nonpositive_f32(t):
    """e^t for a float32 t in [EXP_F32_MIN, 0] (callers clamp), in float32: t = n·ln 2 + r
    (|r| ≤ ln2/2), e^r by the polynomial, times 2^n as 2^⌊n/2⌋·2^⌈n/2⌉, so that a subnormal
    result (n below −126) is rounded once, by the last multiply. Within 2 units of float32's
    last place (``tests/test_vector_math.py``)."""
    n = (t * _LOG2_E_F32 + _ROUNDING_F32) - _ROUNDING_F32  # to the nearest integer
    r = (t - n * _LN2_HI_F32) - n * _LN2_LO_F32
    q = _EXPF_P[5]
    for k in range(4, -1, -1):
        q = q * r + _EXPF_P[k]
    whole = np.int32(n)
    half = np.int32(whole >> 1)
    return ((ONE_F32 + r + (r * r) * q) * _pow2_f32(half)) * _pow2_f32(np.int32(whole - half))


@numba.njit(inline="always", fastmath=FMA)
def expm1(a):
    """e^a − 1 for a float64 a in [EXP_MIN, 0] (callers clamp): with a = n·ln 2 + r as in
    ``exp``, 2^n·(e^r − 1) + (2^n − 1), e^r − 1 = r·(1 + r/2 + ...): relatively exact near
    a = 0 (n = 0), where e^a − 1 would cancel, and no more than 1 − e^(−ln2/2) = 0.29 in
    size elsewhere."""
    n = np.floor(a * _LOG2_E + 0.5)
    r = (a - n * _LN2_HI) - n * _LN2_LO
    scale = _pow2(np.int64(n))
    return scale * (r * _polynomial(_TAYLOR_AFTER_1, r)) + (scale - 1.0)


@numba.njit(inline="always", fastmath=FMA)
def erfc_scaled(z):
    """(t, t·Q(t)) for 0 ≤ z ≤ ERFC_Z_MAX: erfc(z) = t·Q(t)·e^(−z²), t = 1/(1 + z/2)."""
    t = reciprocal(1.0 + 0.5 * z)
    return t, t * _polynomial(_ERFCX_Q, t)


@numba.njit(inline="always", fastmath=FMA)
def reciprocal(d):
    """1/d for a float64 d in [1, 2^126]: float32's reciprocal refined by one Newton step, to
    1.5e-14 at worst (the square of its 1.2e-7). float64's division would cost the loops more
    than everything else in them."""
    r = np.float64(np.float32(1.0) / np.float32(d))
    return r * (2.0 - d * r)


@numba.njit(inline="always", fastmath=FMA)
def _polynomial(coefficients, x):
    """Σ coefficients[k]·x^k by Horner's rule on x² twice over, for the even and the odd
    powers: two chains of multiply-adds half as long, which the core runs side by side."""
    x2 = x * x
    top = coefficients.size - 1
    even = coefficients[top - top % 2]
    for k in range(top - top % 2 - 2, -1, -2):
        even = even * x2 + coefficients[k]
    odd = coefficients[top - 1 + top % 2]
    for k in range(top - 1 + top % 2 - 2, 0, -2):
        odd = odd * x2 + coefficients[k]
    return even + x * odd
