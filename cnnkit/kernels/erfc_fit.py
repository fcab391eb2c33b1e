"""The polynomial behind ``vector_math_numba.erfc_scaled``, fitted again from scratch.

erfc(z) = t·e^(−z²)·Q(t),  t = 1/(1 + z/2),  z ≥ 0.

Q(t) = erfc(z)·e^(z²)/t is smooth on t ∈ (0, 1] (the substitution of Numerical Recipes'
``erfcc``, which fits the logarithm of Q with 10 terms to 1.2e-7). Fitted directly, not its
logarithm, on z ∈ [0, 20/√2] (the GELU kernels clamp x to ±20, beyond which x·Φ(x) and its
slope are the limits in float32), Q reaches, by degree: 12: 5e-10, 14: 2e-11, 16: 2e-13,
18: 5e-14 relative, with coefficients no larger than 5 in magnitude at degree 18.

The reference values come from mpmath at 40 digits (erfc(z) and e^(z²) are each out of
float64's reach of accuracy near z = 14: e^(z²) rounds z² first). A least-squares fit in the
Chebyshev basis on Chebyshev nodes (4 per degree) is close to the minimax polynomial; it is
then written in powers of t for Horner's rule.

    python -m cnnkit.kernels.erfc_fit        # prints the coefficients and the fit's error
"""
import math

import numpy as np

DEGREE = 18
Z_MAX = 20.0 / math.sqrt(2.0)  # z = |x|/√2 for the GELU kernels' clamp |x| ≤ 20
T_MIN = 1.0 / (1.0 + Z_MAX / 2.0)


def _q(t):
    """Q(t) = erfc(z)·e^(z²)/t, z = 2(1 − t)/t, to float64 precision (mpmath, 40 digits)."""
    import mpmath
    with mpmath.workdps(40):
        t = mpmath.mpf(float(t))
        z = 2 * (1 - t) / t
        return float(mpmath.erfc(z) * mpmath.exp(z * z) / t)


def coefficients(degree=DEGREE):
    """Q's coefficients in powers of t, lowest first."""
    from numpy.polynomial import Polynomial
    from numpy.polynomial import chebyshev
    count = 4 * degree
    nodes = np.cos(np.pi * (np.arange(count) + 0.5) / count)  # on [-1, 1]
    ts = T_MIN + (nodes + 1.0) * (1.0 - T_MIN) / 2.0
    series = chebyshev.chebfit(nodes, [_q(t) for t in ts], degree)
    in_s = Polynomial(chebyshev.cheb2poly(series))
    to_s = Polynomial([-(1.0 + T_MIN) / (1.0 - T_MIN), 2.0 / (1.0 - T_MIN)])  # s(t)
    return tuple(float(c) for c in in_s(to_s).coef)


def relative_error(coefficients, points=4001):
    """The largest relative error of Q by these coefficients on t ∈ [T_MIN, 1]."""
    ts = np.linspace(T_MIN, 1.0, points)
    values = np.polynomial.polynomial.polyval(ts, coefficients)
    exact = np.array([_q(t) for t in ts])
    return float(np.max(np.abs(values - exact) / exact))


if __name__ == "__main__":
    fitted = coefficients()
    print("ERFCX_Q = (")
    for c in fitted:
        print(f"    {c!r},")
    print(")")
    print(f"# degree {DEGREE}, t in [{T_MIN:.6f}, 1]: largest relative error "
          f"{relative_error(fitted):.2e}")
