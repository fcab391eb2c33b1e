"""e^a, e^a − 1 and erfcx for compiled elementwise loops, written so that LLVM vectorises them.

A loop that calls ``math.exp`` or ``math.erfc`` stays scalar: each is a libm call per
element, which LLVM cannot turn into vector code (GELU through libm's erfc took 13 ms on
2 M float32 values, against PyTorch's 0.9). These are arithmetic only, with no call and no
branch, inlined into the loop, so it runs a vector of lanes at a time. ``exp`` and ``expm1``
are float64, for float32 results: ELU's values and slopes and the tanh-form GELU's built on
them are the float32 nearest to mpmath's at 99.9 % of 4801 points per function, tails
included. The ``_f32`` functions are float32, twice the lanes of float64 on every ISA, for
sigmoid's forward pass and the exact GELU's (``tests/test_vector_math.py`` measures each
against mpmath).

Each is inlined with ``fastmath={"contract"}`` in the caller too (multiply-adds fused, nothing
else reordered). The one call, LLVM's fma in ``_square_fused``, is made only for a target with
fused multiply-adds, where it is one instruction.
"""
import math
import struct

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import erfc_fit
from ..cpu import host

FMA = {"contract"}  # the fastmath flags of these functions and of the loops that inline them

EXP_MIN, EXP_MAX = -708.0, 709.0  # ``exp``'s domain: 2^n stays a normal float64
_LOG2_E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts (fdlibm's): n·_LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_TAYLOR = np.array([1.0 / math.factorial(k) for k in range(13)])  # e^r to r^12: 2e-16 at
# |r| ≤ ln2/2
_TAYLOR_AFTER_1 = _TAYLOR[1:].copy()  # (e^r − 1)/r to r^11

# erfcx(z) = e^(z²)·erfc(z) = t·Q(s), t = 1/(1 + z/2), s = t·S_SCALE − S_SHIFT: Q in powers of
# s, fitted on z ∈ [0, 18/√2] to 2.9e-8 relative by ``python -m cnnkit.kernels.erfc_fit``
# (which says how), float32 coefficients.
ERFCX_Q = np.array([
    0.5600669980049133,
    0.33049461245536804,
    0.10896223783493042,
    0.007657419890165329,
    -0.006971375085413456,
    -0.0009026644984260201,
    0.0007379660382866859,
    3.303318590042181e-05,
    -9.244748071068898e-05,
    5.860184955963632e-06,
    8.306727977469563e-06,
], np.float32)
_HALF_ERFCX_Q = ERFCX_Q * np.float32(0.5)  # exactly: none so small that halving rounds it
ERFCX_Z_MAX = erfc_fit.Z_MAX  # the fit's end: callers clamp z to it
ERFCX_X_MAX = erfc_fit.X_MAX  # the same as a GELU input x = √2·z
_S_SCALE, _S_SHIFT = erfc_fit.S_SCALE, erfc_fit.S_SHIFT


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


# Adding 1.5·2^52 to an integral float64 n (|n| < 2^51) leaves n in the low bits of the sum's
# mantissa: its bits less this constant's are n as an int64.
_INTEGRAL_SHIFT = 1.5 * 2 ** 52
_INTEGRAL_SHIFT_BITS = struct.unpack("<q", struct.pack("<d", _INTEGRAL_SHIFT))[0]


@intrinsic
def _pow2(typingctx, n):
    """2^n for an integral float64 n in [−1022, 1023] (a NaN gives some float; the callers
    multiply it by their NaN): n's bits through ``_INTEGRAL_SHIFT`` plus the exponent's bias,
    written into the exponent's bits. ``np.int64(n)`` does the same with a conversion that
    AVX2 lacks for vectors (AVX-512 has it): on ``haswell`` LLVM converted lane by lane, and
    the float64 loops built on e^a took up to 1.4 times as long (BENCHMARKS.md, "float64 e^a
    without float64 → int64 conversions")."""
    def codegen(context, builder, signature, args):
        f64, i64 = ir.DoubleType(), ir.IntType(64)
        bits = builder.bitcast(builder.fadd(args[0], ir.Constant(f64, _INTEGRAL_SHIFT)), i64)
        biased = builder.add(bits, ir.Constant(i64, 1023 - _INTEGRAL_SHIFT_BITS))
        return builder.bitcast(builder.shl(biased, ir.Constant(i64, 52)), f64)
    return types.float64(types.float64), codegen


@numba.njit(inline="always", fastmath=FMA)
def exp(a):
    """e^a for a float64 a in [EXP_MIN, EXP_MAX] (callers clamp; NaN gives NaN): a = n·ln 2 + r
    with |r| ≤ ln2/2, e^r by Taylor's polynomial to r^12, times 2^n."""
    n = np.floor(a * _LOG2_E + 0.5)
    r = (a - n * _LN2_HI) - n * _LN2_LO
    return _polynomial(_TAYLOR, r) * _pow2(n)


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
HALF_F32 = np.float32(0.5)
# adding and subtracting 1.5·2^23 rounds a float32 of magnitude below 2^22 to an integer, with
# no call: np.floor is one where SSE lacks a rounding instruction, and keeps the loop scalar
_ROUNDING_F32 = np.float32(1.5 * 2 ** 23)


_pow2_f32 = _pow2_of(32, types.float32, ir.FloatType(), 127, 23)  # int32 n in [−126, 127]


@numba.njit(inline="always", fastmath=FMA)
def exp_nonpositive_f32(t):
    """e^t for a float32 t in [EXP_F32_MIN, 0] (callers clamp), in float32: t = n·ln 2 + r
    (|r| ≤ ln2/2), e^r by the polynomial, times 2^n (``times_pow2_f32``), so that a subnormal
    result (n below −126) is rounded once, by the last multiply. Within 2 units of float32's
    last place (``tests/test_vector_math.py``)."""
    n = (t * _LOG2_E_F32 + _ROUNDING_F32) - _ROUNDING_F32  # to the nearest integer
    r = (t - n * _LN2_HI_F32) - n * _LN2_LO_F32
    return times_pow2_f32(_exp_reduced_f32(r), np.int32(n))


@numba.njit(inline="always", fastmath=FMA)
def _exp_reduced_f32(r):
    """e^r for a float32 |r| ≤ ln2/2 (a little more is fine): 1 + r + r²·P(r)."""
    q = _EXPF_P[5]
    for k in range(4, -1, -1):
        q = q * r + _EXPF_P[k]
    return ONE_F32 + r + (r * r) * q


@numba.njit(inline="always", fastmath=FMA)
def times_pow2_f32(v, n):
    """v·2^n for a float32 v near 1 and an int32 n in [−252, 254], as v·2^⌊n/2⌋·2^⌈n/2⌉:
    a subnormal or zero result is rounded once, by the last multiply."""
    half = np.int32(n >> 1)
    return (v * _pow2_f32(half)) * _pow2_f32(np.int32(n - half))


@intrinsic
def widest_vectors(typingctx):
    """``widest_vectors()``, called in a loop's body (a prange's body is compiled as a function
    of its own): LLVM's vectoriser may use the target's widest vectors in that function. On
    AVX-512 targets LLVM prefers 256-bit vectors unless told otherwise (for cores that lower
    their clock on 512-bit instructions, which the micro-kernels issue anyway), and a loop of
    these functions then runs at half the lanes. Dropping the preference for every kernel made
    max pooling and batch norm slower (BENCHMARKS.md, "GELU in float32"), so it is lifted per
    loop. The call costs no instruction. 32 × 64 × 32 × 32 values, 2 threads, Emerald
    Rapids: GELU's exact forward loop 1.33 → 1.08 ms, the same floats (``python -m
    cnnkit.bench --suite more --only gelu elu sigmoid`` times the layers against PyTorch).

    It sets the function attribute ``"prefer-vector-width"="512"``, which LLVM's x86 backend
    reads per function and other targets ignore. llvmlite's attribute set takes keyword
    attributes only, so the string attribute is added to the underlying set, which llvmlite
    writes out as it is; should a later llvmlite store attributes otherwise, the loop
    compiles at LLVM's preferred width, as before."""
    def codegen(context, builder, signature, args):
        attributes = builder.function.attributes
        if isinstance(attributes, set):
            set.add(attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def _high_half_f32(typingctx, x):
    """x with the low 12 bits of its significand cleared (the sign, the exponent and 12
    significant bits kept): the square of what is left is exact in float32."""
    def codegen(context, builder, signature, args):
        bits = builder.bitcast(args[0], ir.IntType(32))
        kept = builder.and_(bits, ir.Constant(ir.IntType(32), 0xFFFFF000))
        return builder.bitcast(kept, ir.FloatType())
    return types.float32(types.float32), codegen


@intrinsic
def _fused_f32(typingctx, a, b, c):
    """a·b + c for float32 operands, rounded once (LLVM's fma: one instruction on a target
    with fused multiply-adds, a library call elsewhere)."""
    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fma = builder.module.declare_intrinsic("llvm.fma", [f32],
                                               ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(fma, args)
    return types.float32(types.float32, types.float32, types.float32), codegen


@numba.njit(inline="always", fastmath=FMA)
def _square_split(x):
    """(s, e) with s + e = x² to 2^−33 of it at worst: x² as x_h² + x_l·(x + x_h), the second
    term rounded once, x_h = ``_high_half_f32(x)`` and x_l = x − x_h (x_h² exact but for |x|
    below 2^−63, where x² is nothing beside 1)."""
    high = _high_half_f32(x)
    return high * high, (x - high) * (x + high)


@numba.njit(inline="always", fastmath=FMA)
def _square_fused(x):
    """(s, e) with s + e = x² exactly (for |x| ≥ 2^−51; below, e underflows, and x² is
    nothing beside 1): s = x² rounded, e its rounding error by one fused multiply-add, a few
    instructions fewer than ``_square_split``. With ``half_erfcx_f32``,
    GELU's float32 forward loop, one core, in L2: 37.6–38.7 → 35.1–36.1 cycles per 16
    values on AVX-512, 61.7–62.7 → 52.6–53.2 on AVX2 (BENCHMARKS.md, "GELU's float32 loops:
    x² by a fused multiply-add")."""
    square = x * x
    return square, _fused_f32(x, x, -square)


# x² exactly for e^(−x²/2): by a fused multiply-add where the target has one, else split
_exact_square_f32 = _square_fused if host().fma else _square_split


@numba.njit(inline="always", fastmath=FMA)
def exp_half_square_f32(x):
    """(m, n) with e^(−x²/2) = m·2^n, m in [0.7, 1.42], for a float32 |x| ≤ 18, in float32
    arithmetic: x² is taken exactly, as the sum of two float32 (``_exact_square_f32``), so
    that e^(−x²/2), relatively sensitive to x² by x²/2, is not rounded through it (x²/2 = 162
    at x = 18). The caller multiplies m by its factors before ``times_pow2_f32``, so that a
    subnormal product rounds once."""
    square, error = _exact_square_f32(x)
    return exp_minus_half_f32(square, error)


@numba.njit(inline="always", fastmath=FMA)
def exp_minus_half_f32(square, error):
    """``exp_half_square_f32`` from x² as the float32 sum square + error."""
    a = -HALF_F32 * square  # exact
    a_low = -HALF_F32 * error
    n = (a * _LOG2_E_F32 + _ROUNDING_F32) - _ROUNDING_F32
    r = ((a - n * _LN2_HI_F32) - n * _LN2_LO_F32) + a_low
    return _exp_reduced_f32(r), np.int32(n)


@numba.njit(inline="always", fastmath=FMA)
def erfcx_f32(z):
    """e^(z²)·erfc(z) for a float32 z in [0, ERFCX_Z_MAX] (callers clamp), in float32:
    t·Q(s)."""
    return _erfcx_times(z, ERFCX_Q)


@numba.njit(inline="always", fastmath=FMA)
def half_erfcx_f32(z):
    """erfcx_f32(z) / 2, the same floats (Q's coefficients halved, exactly): one multiply
    fewer for Φ(−|x|) = ½·erfcx(|x|/√2)·e^(−x²/2)."""
    return _erfcx_times(z, _HALF_ERFCX_Q)



@numba.njit(inline="always", fastmath=FMA)
def _erfcx_times(z, coefficients):
    """t·Q(s) by Horner's rule in s, Q's coefficients (lowest first) scaled as given."""
    t = ONE_F32 / (ONE_F32 + HALF_F32 * z)
    s = t * _S_SCALE - _S_SHIFT
    top = coefficients.size - 1
    p = coefficients[top]
    for k in range(top - 1, -1, -1):
        p = p * s + coefficients[k]
    return t * p


@numba.njit(inline="always", fastmath=FMA)
def expm1(a):
    """e^a − 1 for a float64 a in [EXP_MIN, 0] (callers clamp): with a = n·ln 2 + r as in
    ``exp``, 2^n·(e^r − 1) + (2^n − 1), e^r − 1 = r·(1 + r/2 + ...): relatively exact near
    a = 0 (n = 0), where e^a − 1 would cancel, and no more than 1 − e^(−ln2/2) = 0.29 in
    size elsewhere."""
    n = np.floor(a * _LOG2_E + 0.5)
    r = (a - n * _LN2_HI) - n * _LN2_LO
    scale = _pow2(n)
    return scale * (r * _polynomial(_TAYLOR_AFTER_1, r)) + (scale - 1.0)


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
