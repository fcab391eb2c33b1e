"""The error function of float32 and float64 arrays, compiled (Numba): one vector loop each
way, in float64 arithmetic.

Cephes' rational approximations (ndtr.c; about 1e-15 relative in float64), in coefficient
order from the highest power down, as Cephes writes them; ``functional.activation`` evaluates
the same fits with NumPy's passes for small arrays, and erfc for GELU's float64 form. Those passes (some thirty over float64
temporaries) took 265 ms for 2 M values against PyTorch's 3.6 (BENCHMARKS.md, "erf and its
gradient compiled"). Here every lane evaluates both fits erf needs (|x| < 1; 1 ≤ |x| ≤ 8) and keeps
its own by selects, so the loop has no branch and vectorises; one division of the chosen
numerator by the chosen denominator. e^(−x²) is ``vector_math.exp``.
"""
import math

import numba
import numpy as np

from . import vector_math_numba as vector_math

ERF_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
         7.00332514112805075473e3, 5.55923013010394962768e4)
ERF_U = (3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
         2.26290000613890934246e4, 4.92673942608635921086e4)
ERFC_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
          4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
          9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
ERFC_Q = (1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
          9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
          1.65666309194161350182e3, 5.57535340817727675546e2)
ERFC_R = (5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
          6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0)
ERFC_S = (2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
          1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0)
ERFC_ZERO_BEYOND = 27.0  # erfc(27) ≈ 5e-319: beyond it erfc is 0 in float64
ERF_ONE_FROM = 8.0  # the first fit's end; erf is ±1 in float64 well before


def _lowest_first(highest_first, monic=False):
    """Cephes' coefficients as ``vector_math._polynomial`` takes them: from x⁰ up, with the
    leading 1 of a monic polynomial (Cephes' ``p1evl``) written out."""
    return np.array(((1.0,) if monic else ()) + tuple(highest_first))[::-1].copy()


_T, _U = _lowest_first(ERF_T), _lowest_first(ERF_U, monic=True)
_P, _Q = _lowest_first(ERFC_P), _lowest_first(ERFC_Q, monic=True)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_VECTOR_JIT = dict(parallel=True, cache=True, fastmath=vector_math.FMA)


@numba.njit(**_VECTOR_JIT)
def _erf(x, out):
    """out = erf(x), flat arrays; computed in float64, stored in out's dtype. From |x| = 6 on,
    1 − erfc(|x|) rounds to 1 in float64 (erfc(6) ≈ 2e-17), so |x| is clamped to ERF_ONE_FROM
    and the fit beyond 8 (``ERFC_R``/``ERFC_S``, which erfc itself needs) is not evaluated."""
    for i in numba.prange(x.size):
        vector_math.widest_vectors()
        value = np.float64(x[i])
        z = min(abs(value), ERF_ONE_FROM)  # keeps inf out of the ratios
        z2 = z * z
        small = z < 1.0
        top = z * vector_math._polynomial(_T, z2) if small else vector_math._polynomial(_P, z)
        bottom = vector_math._polynomial(_U, z2) if small else vector_math._polynomial(_Q, z)
        ratio = top / bottom
        result = ratio if small else 1.0 - vector_math.exp(-z2) * ratio
        out[i] = math.copysign(result, value)  # NaN runs through as NaN


@numba.njit(**_VECTOR_JIT)
def _erf_backward(x, grad, dx):
    """dx = grad·2/√π·e^(−x²) in float64, stored in dx's dtype. e^(−x²) as e^(−x²/2) squared,
    so that it reaches float64's subnormals (−x²/2 stays in ``exp``'s domain down to
    e^(−1416), past the smallest subnormal); 0 beyond (±inf included, so that an infinite
    grad gives NaN there, as 0·inf)."""
    for i in numba.prange(x.size):
        vector_math.widest_vectors()
        square = np.float64(x[i]) * np.float64(x[i])
        root = vector_math.exp(max(-0.5 * square, vector_math.EXP_MIN))
        density = 0.0 if square > -2.0 * vector_math.EXP_MIN else root * root
        dx[i] = np.float64(grad[i]) * _TWO_OVER_SQRT_PI * density


def erf(x):
    """erf(x) for a float32 or float64 array, in its dtype."""
    out = np.empty(x.shape, x.dtype)
    _erf(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out


def erf_backward(x, grad):
    """dL/dx of ``erf`` for grad of x's shape, in grad's dtype."""
    dx = np.empty(x.shape, grad.dtype)
    _erf_backward(np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(grad).reshape(-1),
                  dx.reshape(-1))
    return dx
