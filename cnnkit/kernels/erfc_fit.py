"""The polynomial behind ``vector_math_numba.erfcx_f32`` (and ``half_erfcx_f32``, its
coefficients halved), fitted again from scratch.

erfcx(z) = e^(z²)·erfc(z) = t·Q(t),  t = 1/(1 + z/2),  z ≥ 0.

Q(t) is smooth on t ∈ (0, 1] (the substitution of Numerical Recipes' ``erfcc``). It is fitted
on z ∈ [0, 18/√2] (the float32 GELU clamps x to ±18, beyond which x·Φ(x) and its slope are
their limits in float32), as a polynomial in s = t·S_SCALE − S_SHIFT ∈ [−1, 1] with the two
float32 constants the kernel multiplies by, so that their rounding is part of the fit. In s
the coefficients stay below 0.6 and Horner's rule in float32 loses little; in powers of t
they grow past 4 and cancel. The fit's own error, by degree (float64 coefficients): 8:
5.6e-8, 10: 7.1e-9, 12: 4.5e-10; degree 10's coefficients rounded to float32: 2.9e-8, a
half unit of float32's last place. The kernel's erfcx, evaluated in float32, is within 5
units (3.8 at worst with fused multiply-adds, 4.2 without; ``tests/test_vector_math.py``).

The reference values come from mpmath at 40 digits (erfc(z) and e^(z²) are each out of
float64's reach of accuracy for large z: e^(z²) rounds z² first). A least-squares fit in the
Chebyshev basis on Chebyshev nodes (6 per degree) is close to the minimax polynomial; it is
then written in powers of s for Horner's rule.

    python -m cnnkit.kernels.erfc_fit        # prints the coefficients and the fit's error
"""
import math

import numpy as np

DEGREE = 10
X_MAX = 18.0  # the float32 GELU's clamp |x| ≤ 18: beyond, x·Φ(x) and its slope are their limits
Z_MAX = X_MAX / math.sqrt(2.0)  # z = |x|/√2 at the clamp
T_MIN = 1.0 / (1.0 + Z_MAX / 2.0)
S_SCALE = np.float32(2.0 / (1.0 - T_MIN))  # s = t·S_SCALE − S_SHIFT maps [T_MIN, 1] to [−1, 1]
S_SHIFT = np.float32((1.0 + T_MIN) / (1.0 - T_MIN))


def _q(t):
    """Q(t) = erfc(z)·e^(z²)/t, z = 2(1 − t)/t, to float64 precision (mpmath, 40 digits)."""
    import mpmath
    with mpmath.workdps(40):
        t = mpmath.mpf(float(t))
        z = 2 * (1 - t) / t
        return float(mpmath.erfc(z) * mpmath.exp(z * z) / t)


def _t(s):
    """t of s under the float32 map: s = t·S_SCALE − S_SHIFT, exactly."""
    return (np.asarray(s, np.float64) + float(S_SHIFT)) / float(S_SCALE)


def coefficients(degree=DEGREE):
    """Q's coefficients in powers of s, lowest first, as float32."""
    from numpy.polynomial import chebyshev
    count = 6 * degree
    nodes = np.cos(np.pi * (np.arange(count) + 0.5) / count)  # s on [-1, 1]
    series = chebyshev.chebfit(nodes, [_q(t) for t in _t(nodes)], degree)
    return tuple(float(c) for c in chebyshev.cheb2poly(series).astype(np.float32))


def relative_error(coefficients, points=4001):
    """The largest relative error of Q by these coefficients (in float64) on s ∈ [−1, 1]."""
    s = np.linspace(-1.0, 1.0, points)
    values = np.polynomial.polynomial.polyval(s, coefficients)
    exact = np.array([_q(t) for t in _t(s)])
    return float(np.max(np.abs(values - exact) / exact))


if __name__ == "__main__":
    fitted = coefficients()
    print("ERFCX_Q = np.array([")
    for c in fitted:
        print(f"    {c!r},")
    print("], np.float32)")
    print(f"# degree {DEGREE}, t in [{T_MIN:.6f}, 1]: largest relative error "
          f"{relative_error(fitted):.2e}")
