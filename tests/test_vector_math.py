"""The vector loops' e^a, e^(−x²/2) and erfcx (``kernels.vector_math_numba``) and the
activations built on them, against mpmath at 40 digits: the float64 ones exact to the last bit
of a float32 result, or within one unit of it where the true value lies next to a rounding
boundary; the float32 ones within a stated number of units of float32's last place."""
import math

import mpmath
import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnkit
import cnnkit.functional as F
from cnnkit import tuning
from cnnkit.kernels import activation_numba, erfc_fit
from cnnkit.kernels import vector_math_numba as vector_math


@numba.njit(fastmath=vector_math.FMA)
def _exp_all(a, out):
    for i in range(a.size):
        out[i] = vector_math.exp(a[i])


@numba.njit(fastmath=vector_math.FMA)
def _erfcx_all(z, out):
    for i in range(z.size):
        out[i] = vector_math.erfcx_f32(z[i])


@numba.njit(fastmath=vector_math.FMA)
def _exp_half_square_all(x, out):
    for i in range(x.size):
        m, n = vector_math.exp_half_square_f32(x[i])
        out[i] = vector_math.times_pow2_f32(m, n)


def _squares_all(square):
    """A loop of ``square`` (``vector_math._square_fused`` or ``_square_split``): x² as the
    pair (s, e), and e^(−x²/2) from it."""
    @numba.njit(fastmath=vector_math.FMA)
    def run(x, s, e, out):
        for i in range(x.size):
            s[i], e[i] = square(x[i])
            m, n = vector_math.exp_minus_half_f32(s[i], e[i])
            out[i] = vector_math.times_pow2_f32(m, n)
    return run


@numba.njit(fastmath=vector_math.FMA)
def _half_erfcx_all(z, out):
    for i in range(z.size):
        out[i] = vector_math.half_erfcx_f32(z[i])


def _exact(function, values):
    with mpmath.workdps(40):
        return np.array([float(function(mpmath.mpf(float(v)))) for v in values])


def test_exp_is_within_four_units_of_float64_s_last_place():
    """(3 measured: Taylor's terms rounded, and r = a − n·ln 2 rounded once.)"""
    a = np.concatenate([np.linspace(vector_math.EXP_MIN, vector_math.EXP_MAX, 4001),
                        np.linspace(-1, 1, 2001), [0.0, -0.0, 1e-300, -0.34657359, 0.34657359]])
    out = np.empty_like(a)
    _exp_all(a, out)
    exact = _exact(mpmath.exp, a)
    assert np.all(np.abs(out - exact) <= 4 * np.spacing(exact))
    nan = np.empty(1)
    _exp_all(np.array([np.nan]), nan)
    assert np.isnan(nan[0])


def _units(ours, exact, scale=None):
    """|ours − exact| in units of float32's last place at ``scale`` (|exact| by default), the
    subnormals' spacing at the least."""
    scale = np.abs(exact) if scale is None else scale
    spacing = np.maximum(np.spacing(scale.astype(np.float32)).astype(np.float64),
                         float(np.spacing(np.float32(0))))
    return np.abs(ours.astype(np.float64) - exact) / spacing


def test_float32_erfcx_is_within_five_units_over_its_range():
    """(3.8 measured with fused multiply-adds, 4.2 compiled for x86-64 without them: Q's
    float32 evaluation, and t's rounding passed on about doubled.)"""
    z = np.concatenate([np.linspace(0, vector_math.ERFCX_Z_MAX, 3001),
                        [1e-30, 0.5, 1.0]]).astype(np.float32)
    out = np.empty_like(z)
    _erfcx_all(z, out)
    exact = _exact(lambda v: mpmath.exp(v * v) * mpmath.erfc(v), z)
    assert np.max(_units(out, exact)) <= 5


def test_float32_exp_of_minus_half_a_square_is_within_two_units():
    """e^(−x²/2) to float32's subnormals, x² taken exactly (1.33 measured); rounded through a
    float32 x², it is 100 units out at |x| = 14."""
    x = np.concatenate([np.linspace(-18, 18, 3001), [0.0, -0.0, 1e-30, 13.9, 14.1]]
                       ).astype(np.float32)
    out = np.empty_like(x)
    _exp_half_square_all(x, out)
    exact = _exact(lambda v: mpmath.exp(-v * v / 2), x)
    assert np.max(_units(out, exact)) <= 2


@pytest.mark.parametrize("name", ["_square_fused", "_square_split"])
def test_either_exact_square_gives_e_to_minus_half_a_square_within_two_units(name):
    """x² as two float32 by a fused multiply-add (the pick where the target has one) or by
    splitting x's bits (elsewhere), both on every target: the fused pair sums to x² exactly
    from |x| = 2^−51 on (float64 holds the sum), the split one within 2^−32 of it, and either
    gives e^(−x²/2) within 2 units."""
    rng = np.random.default_rng(9)
    bits = rng.integers(0, 1 << 31, 200_000, dtype=np.int64).astype(np.uint32)
    drawn = bits.view(np.float32)
    drawn = drawn[np.isfinite(drawn) & (np.abs(drawn) <= 18) & (np.abs(drawn) >= 2.0 ** -51)]
    grid = np.linspace(-18, 18, 3001).astype(np.float32)
    x = np.concatenate([grid, drawn[:20_000], [2.0 ** -51, 13.9, 14.1, 18.0]]).astype(np.float32)
    s, e, out = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    _squares_all(getattr(vector_math, name))(x, s, e, out)
    total = s.astype(np.float64) + e.astype(np.float64)
    squares = x.astype(np.float64) ** 2
    if name == "_square_fused":
        np.testing.assert_array_equal(total, squares)
    else:  # x_l·(x + x_h) rounded once: 2^−33 of x² at worst (1.0e-10 measured)
        inside = squares > 0
        assert np.max(np.abs(total - squares)[inside] / squares[inside]) < 2.0 ** -32
    exact = _exact(lambda v: mpmath.exp(-v * v / 2), grid)
    assert np.max(_units(out[:grid.size], exact)) <= 2


def test_half_erfcx_is_half_of_erfcx_bit_for_bit():
    """``half_erfcx_f32``'s coefficients are ``erfcx_f32``'s halved, exactly: each value is
    half of erfcx's, the same float."""
    z = np.linspace(0, vector_math.ERFCX_Z_MAX, 20_001).astype(np.float32)
    whole, half = np.empty_like(z), np.empty_like(z)
    _erfcx_all(z, whole)
    _half_erfcx_all(z, half)
    np.testing.assert_array_equal(half, whole * np.float32(0.5))


def test_stored_coefficients_are_the_fit_s():
    """``python -m cnnkit.kernels.erfc_fit`` reproduces the coefficients the kernels use."""
    np.testing.assert_allclose(erfc_fit.coefficients(), vector_math.ERFCX_Q, rtol=1e-6,
                               atol=1e-12)
    assert erfc_fit.Z_MAX == vector_math.ERFCX_Z_MAX


def _gelu_exact(x, tanh_form):
    """x·Φ(x) and its slope at float32 x, or the tanh form's, at 40 digits."""
    def value(v):
        if tanh_form:
            u = mpmath.sqrt(2 / mpmath.pi) * (v + mpmath.mpf(0.044715) * v ** 3)
            return v / (1 + mpmath.exp(-2 * u))
        return v * mpmath.erfc(-v / mpmath.sqrt(2)) / 2

    def slope(v):
        return mpmath.diff(value, v)
    with mpmath.workdps(40):
        return (np.array([float(value(mpmath.mpf(float(v)))) for v in x]),
                np.array([float(slope(mpmath.mpf(float(v)))) for v in x]))


def _within_one_unit(ours, exact):
    """ours (float32) is the float32 nearest to exact, or its neighbour; returns how many are
    the nearest."""
    nearest = exact.astype(np.float32)
    apart = np.abs(ours.astype(np.float64) - nearest) / np.spacing(np.abs(nearest))
    assert np.all(apart <= 1), exact[apart > 1][:5]
    return int(np.count_nonzero(ours == nearest))


_GELU_GRID = np.concatenate([np.linspace(-21, 21, 1201), -np.logspace(-30, 1.18, 300),
                             np.logspace(-30, 1.18, 100)]).astype(np.float32)


def test_float32_tanh_form_gelu_is_correctly_rounded():
    """Values and slopes on a grid over the float32 range that matters (beyond ±20 both are
    their limits in float32), the tails included where x·σ(2u) is subnormal."""
    out, dx = np.empty_like(_GELU_GRID), np.empty_like(_GELU_GRID)
    activation_numba.gelu_vector_forward(_GELU_GRID, True, out)
    activation_numba.gelu_vector_backward(_GELU_GRID, np.ones_like(_GELU_GRID), True, dx)
    value, slope = _gelu_exact(_GELU_GRID, True)
    assert _within_one_unit(out, value) >= 0.999 * _GELU_GRID.size
    assert _within_one_unit(dx, slope) >= 0.999 * _GELU_GRID.size


def test_float32_gelu_is_within_seven_units_and_its_slope_within_six_of_its_terms():
    """The exact form in float32 arithmetic: x·Φ(x) within 7 units of float32's last place,
    down to the left tail's subnormals (5.8 at worst of 800 000 random points on AVX-512);
    the slope Φ(x) + x·φ(x) within 6 units of the last place of |Φ(x)| + |x·φ(x)| (4.6 at
    worst; 5.5 compiled for x86-64, without fused multiply-adds): near
    its zero at x = −0.75 the two terms cancel. On the mpmath grid, and on random points
    against the float64 libm loops."""
    out, dx = np.empty_like(_GELU_GRID), np.empty_like(_GELU_GRID)
    activation_numba.gelu_vector_forward(_GELU_GRID, False, out)
    activation_numba.gelu_vector_backward(_GELU_GRID, np.ones_like(_GELU_GRID), False, dx)
    value, slope = _gelu_exact(_GELU_GRID, False)
    cdf = _exact(mpmath.ncdf, _GELU_GRID)
    terms = np.abs(cdf) + np.abs(_GELU_GRID * _exact(mpmath.npdf, _GELU_GRID))
    assert np.max(_units(out, value)) <= 7
    assert np.max(_units(dx, slope, terms)) <= 6
    x = (np.random.default_rng(5).standard_normal(200_000) * 4).astype(np.float32)
    out, dx = np.empty_like(x), np.empty_like(x)
    activation_numba.gelu_vector_forward(x, False, out)
    activation_numba.gelu_vector_backward(x, np.ones_like(x), False, dx)
    value, slope = np.empty(x.size), np.empty(x.size)
    activation_numba.gelu_forward(x, False, value)
    activation_numba.gelu_backward(x, np.ones_like(x), False, slope)
    x64 = x.astype(np.float64)
    density = np.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)
    assert np.max(_units(out, value)) <= 7
    assert np.max(_units(dx, slope, np.abs(value / np.where(x64 == 0, 1, x64)) +
                         np.abs(x64 * density))) <= 6


@pytest.mark.parametrize("tanh_form", [False, True])
def test_float32_gelu_at_limits_nan_and_beyond_the_clip(tanh_form):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 20.0, -20.0, 25.0, -25.0, 3e38, -3e38],
                 np.float32)
    out, dx = np.empty_like(x), np.empty_like(x)
    activation_numba.gelu_vector_forward(x, tanh_form, out)
    activation_numba.gelu_vector_backward(x, np.full_like(x, 3e38), tanh_form, dx)
    np.testing.assert_array_equal(out, np.array([np.nan, np.inf, 0, 0, 0, 20, 0, 25, 0, 3e38, 0],
                                                np.float32))
    assert np.signbit(out[[4, 6, 8, 10]]).all()  # x·Φ(x) of a negative x is −0 in float32
    np.testing.assert_array_equal(dx, np.array([np.nan, 3e38, 0, 1.5e38, 1.5e38, 3e38, 0, 3e38,
                                                0, 3e38, 0], np.float32))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_float32_gelu_layer_matches_torch_and_the_libm_loops(approximate):
    """Through ``F.gelu``: PyTorch's values in float64 (its float32 ones lose the left tail,
    where 1 + erf and 1 + tanh cancel), and for 'none' the float64 libm loops' float32 results
    bit for bit."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((4, 8, 33, 31)) * 3).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    with tuning.override(compiled_min_size=0):
        xc = cnnkit.tensor(x, requires_grad=True)
        y = F.gelu(xc, approximate=approximate)
        y.backward(g)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    yt = TF.gelu(xt, approximate=approximate)
    yt.backward(torch.tensor(g.astype(np.float64)))
    assert y.dtype == np.float32 and xc.grad.dtype == np.float32
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xc.grad, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    if approximate == "none":  # within the float32 loops' units of the float64 libm loops
        value, slope = np.empty(x.size), np.empty(x.size)
        activation_numba.gelu_forward(x.reshape(-1), False, value)
        activation_numba.gelu_backward(x.reshape(-1), g.reshape(-1), False, slope)
        assert np.max(_units(y.data.reshape(-1), value)) <= 7
        np.testing.assert_allclose(xc.grad.reshape(-1), slope, rtol=2e-6, atol=1e-6)


def test_the_fit_s_own_error_is_as_documented():
    assert erfc_fit.relative_error(vector_math.ERFCX_Q, points=401) < 3e-8
    assert math.isclose(erfc_fit.T_MIN, 1 / (1 + vector_math.ERFCX_Z_MAX / 2))


@numba.njit(fastmath=vector_math.FMA)
def _expm1_all(a, out):
    for i in range(a.size):
        out[i] = vector_math.expm1(a[i])


def test_expm1_is_relatively_exact_near_zero_and_within_four_units_elsewhere():
    a = np.concatenate([-np.logspace(-300, 0, 1001), np.linspace(vector_math.EXP_MIN, 0, 2001),
                        [0.0, -0.0, -0.34657359, -0.3465736]])
    out = np.empty_like(a)
    _expm1_all(a, out)
    exact = _exact(mpmath.expm1, a)
    assert np.all(np.abs(out - exact) <= 4 * np.spacing(np.abs(exact)))


def _elu_exact(x, alpha):
    with mpmath.workdps(40):
        v = [mpmath.mpf(float(value)) for value in x]
        return (np.array([float(e if e > 0 else alpha * mpmath.expm1(e)) for e in v]),
                np.array([float(1 if e > 0 else alpha * mpmath.exp(e)) for e in v]))


@numba.njit(fastmath=vector_math.FMA)
def _exp_f32_all(t, out):
    for i in range(t.size):
        out[i] = vector_math.exp_nonpositive_f32(t[i])


def _units_from_nearest(ours, exact):
    """How many units of float32's last place (of the float32 nearest to exact: subnormal
    units in the subnormal range) ours lies from that nearest float32."""
    nearest = exact.astype(np.float32)
    return np.abs(ours.astype(np.float64) - nearest) / np.spacing(np.abs(nearest))


def test_float32_exp_is_within_two_units_down_to_the_subnormals():
    """``exp_nonpositive_f32`` on [−104, 0]: its subnormal results (t below −87.3) rounded once."""
    t = np.concatenate([np.linspace(vector_math.EXP_F32_MIN, 0, 20001), -np.logspace(-30, 0, 500),
                        [0.0, -0.0, -87.33, -87.34, -103.27, -103.28]]).astype(np.float32)
    out = np.empty_like(t)
    _exp_f32_all(t, out)
    units = _units_from_nearest(out, _exact(mpmath.exp, t))
    assert units.max() <= 2 and np.mean(units == 0) > 0.75


def test_float32_sigmoid_is_within_two_units_with_its_subnormal_tail():
    """The compiled forward pass (float32 arithmetic) against mpmath: within 2 units of the
    nearest float32 everywhere (NumPy's four passes gave 0 where σ is subnormal, x below
    about −88, millions of subnormal units off), the nearest in most places; NaN stays NaN,
    ±inf give 1 and 0."""
    x = np.concatenate([np.linspace(-110, 30, 14001), -np.logspace(-30, 1.3, 2000),
                        np.logspace(-30, 1.3, 2000)]).astype(np.float32)
    out = np.empty_like(x)
    activation_numba.sigmoid_vector_forward(x, out)
    units = _units_from_nearest(out, _exact(lambda v: 1 / (1 + mpmath.exp(-v)), x))
    assert units.max() <= 2 and np.mean(units == 0) > 0.75
    assert out[np.argmin(np.abs(x + 100))] > 0  # σ(−100) = 3.7e-44, a subnormal
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 3e38, -3e38], np.float32)
    limits = np.empty_like(special)
    activation_numba.sigmoid_vector_forward(special, limits)
    np.testing.assert_array_equal(limits, [np.nan, 1, 0, 0.5, 1, 0])


@pytest.mark.parametrize("name", ["sigmoid", "elu", "tanh"])
def test_float32_sigmoid_tanh_and_elu_are_correctly_rounded(name):
    """ELU's values and slopes from x (its tail included); sigmoid's and tanh's slopes from the
    float32 outputs their backward passes read (tanh's forward pass is NumPy's, sigmoid's
    the test above's)."""
    x = np.concatenate([np.linspace(-110, 30, 1401), -np.logspace(-30, 1, 300),
                        np.logspace(-30, 1, 100)]).astype(np.float32)
    out, dx = np.empty_like(x), np.empty_like(x)
    if name in ("sigmoid", "tanh"):  # the compiled backward
        out = F.sigmoid(cnnkit.tensor(x)).data if name == "sigmoid" else np.tanh(x)
        value = out.astype(np.float64)
        getattr(activation_numba, f"{name}_backward")(out, np.ones_like(x), dx)
        s = out.astype(np.float64)
        slope = s * (1 - s) if name == "sigmoid" else 1 - s * s
    else:
        activation_numba.elu_vector_forward(x, 0.7, out)
        activation_numba.elu_vector_backward(x, np.ones_like(x), 0.7, dx)
        value, slope = _elu_exact(x, 0.7)
    assert _within_one_unit(out, value) >= 0.999 * x.size
    assert _within_one_unit(dx, slope) >= 0.999 * x.size


@pytest.mark.parametrize("name, ours, theirs", [
    ("sigmoid", F.sigmoid, torch.sigmoid),
    ("tanh", F.tanh, torch.tanh),
    ("elu", lambda x: F.elu(x, 0.7), lambda x: TF.elu(x, 0.7)),
])
def test_float32_activation_layers_match_torch_with_nan_and_infinities(name, ours, theirs):
    """Values against PyTorch's in float64. Gradients of sigmoid and tanh against PyTorch's
    float32 backward from our float32 output (``aten.sigmoid_backward``, ``aten.tanh_backward``;
    both backward passes read the output). Its own forward would be another rounding: the
    two outputs can be two units apart, which near ±1 moves 1 − tanh² by 2^-22 before the
    backward rounds anything, and which two depends on the CPU's vector paths in NumPy and
    PyTorch. ELU's against PyTorch's float64 autograd, except at NaN, whose gradient passes
    as in NumPy's path and in PyTorch's scalar loop (its vector loop gives NaN)."""
    rng = np.random.default_rng(8)
    x = (rng.standard_normal(3000) * 6).astype(np.float32)
    x[:9] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0, 3e38, -3e38]
    g = rng.standard_normal(x.shape).astype(np.float32)
    with tuning.override(compiled_min_size=0):
        xc = cnnkit.tensor(x, requires_grad=True)
        y = ours(xc)
        y.backward(g)
    assert y.dtype == np.float32 and xc.grad.dtype == np.float32
    expected = theirs(torch.tensor(x.astype(np.float64))).numpy().astype(np.float32)
    np.testing.assert_allclose(y.data, expected, rtol=1e-6, atol=1e-40)
    if name == "elu":
        xt = torch.tensor(x.astype(np.float64), requires_grad=True)
        theirs(xt).backward(torch.tensor(g.astype(np.float64)))
        expected_grad = xt.grad.numpy().astype(np.float32)
        assert xc.grad[0] == g[0]
        expected_grad[0] = g[0]
    else:
        from_output = getattr(torch.ops.aten, f"{name}_backward")
        expected_grad = from_output(torch.tensor(g), torch.tensor(y.data)).numpy()
    # PyTorch's float32 backward rounds each step: tanh² and, where tanh² < ½, 1 − tanh² (by
    # up to 2^-25 each), 1 − σ where σ < ½, and the products (2^-24 of each); ours rounds
    # once, from float64: at most 2^-24·|g| + 2^-23·|dx| apart for tanh, less for sigmoid.
    # ELU's float64 gradient is one rounding from ours.
    apart = np.abs(xc.grad.astype(np.float64) - expected_grad)
    tolerance = 2.0 ** -23 * (np.abs(expected_grad) + np.abs(g))
    assert np.all((apart <= tolerance) | (np.isnan(xc.grad) & np.isnan(expected_grad)))
