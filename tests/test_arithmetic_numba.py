"""A Tensor's + − × ÷ by compiled loops (``kernels.arithmetic_numba.binary``), on arrays of one
shape, by a 0-d scalar or by a value per row on either side: NumPy's values to the bit, quietly, on every thread
count; every other operand left to NumPy."""
import math
import warnings

import numba
import numpy as np
import pytest

import cnnkit
from cnnkit import tuning
from cnnkit.kernels import arithmetic_numba

UFUNCS = [np.add, np.subtract, np.multiply, np.divide]


def _operands(dtype, size):
    """x and y with inf, NaN, 0/0, overflow and subnormals among ordinary values."""
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size).astype(dtype) * dtype(1e30)
    y = rng.standard_normal(size).astype(dtype) * dtype(1e20)
    edges_x = [np.nan, np.inf, -np.inf, 0.0, np.inf, 3e38, 1e-40, -0.0]
    edges_y = [1.0, np.inf, 2.0, 0.0, -np.inf, 3e38, 1e-40, 0.0]
    count = min(size, len(edges_x))
    x[:count], y[:count] = edges_x[:count], edges_y[:count]
    return x, y


@pytest.mark.parametrize("ufunc", UFUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 2, 7, 1001, 70_000])
def test_values_are_numpy_s_to_the_bit_and_quiet(ufunc, dtype, size):
    x, y = _operands(dtype, size)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("error")
        expected = ufunc(x, y)
        with tuning.override(compiled_min_size=0), np.errstate(all="raise"):
            result = arithmetic_numba.binary(ufunc, x.reshape(size, 1), y.reshape(size, 1))
    assert result.shape == (size, 1) and result.dtype == dtype
    np.testing.assert_array_equal(result.reshape(-1), expected)
    assert np.array_equal(np.signbit(result.reshape(-1)), np.signbit(expected))


@pytest.mark.parametrize("ufunc", UFUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scalar", [2.5, -0.0, 0.0, np.inf, -np.inf, np.nan, 1e-40, 3e38])
def test_a_scalar_on_either_side_gives_numpy_s_values(ufunc, dtype, scalar):
    x, _ = _operands(dtype, 1001)
    _check_both_sides(ufunc, x, np.array(scalar, dtype))


def _check_both_sides(ufunc, x, y):
    """binary(x, y) and binary(y, x): NumPy's values and signs to the bit, no warning."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("error")
        expected = ufunc(x, y), ufunc(y, x)
        with tuning.override(compiled_min_size=0), np.errstate(all="raise"):
            results = (arithmetic_numba.binary(ufunc, x, y),
                       arithmetic_numba.binary(ufunc, y, x))
    for result, want in zip(results, expected):
        assert result.shape == want.shape and result.dtype == want.dtype
        np.testing.assert_array_equal(result, want)
        assert np.array_equal(np.signbit(result), np.signbit(want))


@pytest.mark.parametrize("ufunc", UFUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, part", [((6, 5, 7, 3), (6, 5, 1, 1)), ((6, 5, 7, 3), (6, 1, 1, 1)),
                                         ((40, 9), (40, 1)), ((6, 5, 7, 3), (6, 5, 7, 1))])
def test_a_value_per_row_on_either_side_gives_numpy_s_values(ufunc, dtype, shape, part,
                                                            monkeypatch):
    """A channel's scale (N, C, 1, 1) on maps (N, C, H, W), and the like: one compiled pass
    (``_by_rows``) with NumPy's values, inf, NaN and signs of zeros included."""
    x = _operands(dtype, math.prod(shape))[0].reshape(shape)
    y = _operands(dtype, math.prod(part))[1].reshape(part)
    rows = []
    original = arithmetic_numba._by_rows
    monkeypatch.setattr(arithmetic_numba, "_by_rows",
                        lambda a, b, out, op: (rows.append(a.shape[0]), original(a, b, out, op)))
    _check_both_sides(ufunc, x, y)
    assert rows == [math.prod(part)] * 2


@pytest.mark.parametrize("ufunc", UFUNCS)
def test_one_value_of_any_shape_takes_the_scalar_loop(ufunc, monkeypatch):
    """(1, 1, 1, 1) on (N, C, H, W), either side: the scalar's loop over all of it (in
    parallel), not one row; a one-value array of more axes than the other stays NumPy's
    (the result has its axes)."""
    calls = []
    scalar_loops = [arithmetic_numba._LOOPS[ufunc][1], arithmetic_numba._LOOPS[ufunc][2]]
    monkeypatch.setitem(arithmetic_numba._LOOPS, ufunc, (
        None, lambda *a: calls.append(1) or scalar_loops[0](*a),
        lambda *a: calls.append(2) or scalar_loops[1](*a)))
    x = _operands(np.float32, 6 * 5 * 7 * 3)[0].reshape(6, 5, 7, 3)
    one = np.full((1, 1, 1, 1), 2.5, np.float32)
    with tuning.override(compiled_min_size=0), np.errstate(all="ignore"):
        results = arithmetic_numba.binary(ufunc, x, one), arithmetic_numba.binary(ufunc, one, x)
        wider = arithmetic_numba.binary(ufunc, x[0, 0], one)
        expected = ufunc(x, one), ufunc(one, x), ufunc(x[0, 0], one)
    assert calls == [1, 2]
    for result, want in zip((*results, wider), expected):
        assert result.shape == want.shape
        np.testing.assert_array_equal(result, want)


@pytest.mark.parametrize("ufunc", UFUNCS)
def test_one_thread_and_all_give_the_same_bits(ufunc):
    x, y = _operands(np.float32, 100_003)
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            with np.errstate(all="ignore"):
                results.append(arithmetic_numba.binary(ufunc, x, y))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(results[0], results[1])


def test_the_compiled_loop_runs_from_the_threshold_on(monkeypatch):
    calls = []
    def loop(x, y, out):
        calls.append(x.size)
        np.add(x, y, out=out)
    monkeypatch.setitem(arithmetic_numba._LOOPS, np.add, (loop, loop, loop))
    x = np.ones(10, np.float32)
    with tuning.override(compiled_min_size=10):
        np.testing.assert_array_equal(arithmetic_numba.binary(np.add, x, x), 2)
        arithmetic_numba.binary(np.add, x[:9], x[:9])
    assert calls == [10]


def test_other_operands_are_left_to_numpy():
    """Broadcasting, mixed dtypes (a scalar's too), integers, float16, strided views and
    other ufuncs."""
    x = np.arange(12.0).reshape(3, 4)
    cases = [(np.add, x, x[:1]), (np.add, x, x.astype(np.float32)),
             (np.add, x.astype(np.int64), x.astype(np.int64)),
             (np.multiply, x.astype(np.float16), x.astype(np.float16)),
             (np.add, x[:, ::2], x[:, 1::2]), (np.maximum, x, x),
             (np.add, x.reshape(3, 1, 4), x.reshape(3, 4, 1)),  # each broadcast: no rows
             (np.add, x.reshape(1, 3, 4), x[:1].reshape(1, 1, 4)),  # along a middle axis
             (np.add, x[:, ::2], x[:, :1]),  # a value per row of a strided array
             (np.multiply, x, np.array(2.0, np.float32)), (np.add, x[:, ::2], np.array(1.0)),
             (np.subtract, np.array(1.0), x[:1])]
    with tuning.override(compiled_min_size=0):
        for ufunc, a, b in cases:
            result = arithmetic_numba.binary(ufunc, a, b)
            np.testing.assert_array_equal(result, ufunc(a, b))
            assert result.dtype == ufunc(a, b).dtype


def test_a_gradient_summed_from_two_consumers_is_the_sum():
    """``Tensor.backward`` sums the gradients of a tensor used twice with ``binary``."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((70, 1000)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    xc = cnnkit.tensor(x, requires_grad=True)
    ((xc * 2.0) + xc).backward(g)
    np.testing.assert_array_equal(xc.grad, g * np.float32(2.0) + g)


@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5, 0.0, -1.0])
def test_a_power_by_a_scalar_is_numpy_s_and_its_gradient_the_same_products(exponent):
    """``x ** b`` for a scalar b on the compiled products: values NumPy's, the gradient
    g·b·x^(b−1) as the products in that order give it (0 where b = 0, as PyTorch), against
    PyTorch in float64 too; inf, NaN and 0 among the values."""
    import torch
    rng = np.random.default_rng(4)
    x = np.abs(rng.standard_normal(70_000)).astype(np.float32)
    x[:4] = [0.0, np.inf, np.nan, 1e-30]
    g = rng.standard_normal(x.shape).astype(np.float32)
    xc = cnnkit.tensor(x, requires_grad=True)
    y = xc ** exponent
    y.backward(g)
    b = np.float32(exponent)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(y.data, x ** b)
        want = np.zeros_like(g) if exponent == 0 else (g * b) * x ** (b - np.float32(1))
    np.testing.assert_array_equal(xc.grad, want)
    xt = torch.tensor(x[4:].astype(np.float64), requires_grad=True)
    (xt ** exponent).backward(torch.tensor(g[4:].astype(np.float64)))
    np.testing.assert_allclose(xc.grad[4:], xt.grad.numpy(), rtol=1e-5, atol=1e-30)
