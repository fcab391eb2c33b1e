"""A Tensor's + − × ÷ by compiled loops (``kernels.arithmetic_numba.binary``), on arrays of one
shape or by a 0-d scalar on either side: NumPy's values to the bit, quietly, on every thread
count; every other operand left to NumPy."""
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
    s = np.array(scalar, dtype)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("error")
        expected = ufunc(x, s), ufunc(s, x)
        with tuning.override(compiled_min_size=0), np.errstate(all="raise"):
            results = (arithmetic_numba.binary(ufunc, x, s),
                       arithmetic_numba.binary(ufunc, s, x))
    for result, want in zip(results, expected):
        assert result.dtype == dtype
        np.testing.assert_array_equal(result, want)
        assert np.array_equal(np.signbit(result), np.signbit(want))


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
