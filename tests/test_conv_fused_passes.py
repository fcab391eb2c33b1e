"""The compiled passes around a conv layer's kernel: zero padding with its finiteness check
(``pad_numba``) and the bias add and gradient (``bias_numba``), forced on small shapes by
lowering ``compiled_min_size``, against PyTorch and against the NumPy passes they replace."""
import numpy as np
import pytest
import torch

import cnnkit
import cnnkit.functional as F
from cnnkit import tuning
from cnnkit.kernels import bias_numba
from cnnkit.kernels.bias_numba import add_bias, bias_grad
from cnnkit.kernels.pad_numba import pad_planes
from cnnkit.kernels.padding import zero_pad


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.complex64])
@pytest.mark.parametrize("pads", [((1, 1), (1, 1)), ((0, 2), (3, 0)), ((0, 0), (0, 0))])
def test_pad_planes_copies_and_checks(dtype, pads):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    xp, finite = pad_planes(x, pads)
    np.testing.assert_array_equal(xp, np.pad(x, ((0, 0), (0, 0)) + pads))
    assert finite
    for bad in (np.inf, -np.inf, np.nan):
        y = x.copy()
        y[1, 2, 4, 6] = bad
        assert not pad_planes(y, pads)[1]
    if x.dtype.kind == "f":  # the largest finite value and a subnormal are finite
        y = x.copy()
        y[0, 0, 0, 0], y[1, 1, 1, 1] = np.finfo(dtype).max, np.finfo(dtype).smallest_subnormal
        assert pad_planes(y, pads)[1]


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
@pytest.mark.parametrize("shape,pads", [((2, 3, 9), ((2, 1),)), ((2, 3, 9), ((0, 0),)),
                                        ((2, 3, 4, 5, 6), ((1, 2), (0, 1), (2, 0))),
                                        ((1, 2, 3, 3, 3), ((0, 0), (1, 1), (1, 1)))])
def test_pad_planes_of_signals_and_volumes(shape, pads, dtype):
    """(N, C, L) as planes of one row; (N, C, D, H, W) as the planes of each depth."""
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    xp, finite = pad_planes(x, pads)
    np.testing.assert_array_equal(xp, np.pad(x, ((0, 0), (0, 0)) + pads))
    assert finite and xp.flags.c_contiguous
    if dtype == np.float32:
        x.flat[x.size - 2] = np.nan
        assert not pad_planes(x, pads)[1]


def test_pad_planes_of_integers():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.int32).reshape(2, 3, 4, 5)
    xp, finite = pad_planes(x, ((1, 0), (2, 1)))
    np.testing.assert_array_equal(xp, np.pad(x, ((0, 0), (0, 0), (1, 0), (2, 1))))
    assert finite


@pytest.mark.parametrize("shape,pads", [((1, 2, 5), ((2, 1),)), ((2, 3, 4, 6), ((1, 1), (0, 2))),
                                        ((1, 2, 3, 3, 3), ((0, 1), (1, 0), (2, 2))),
                                        ((2, 3, 5, 6), ((-1, 2), (1, -2)))])
@pytest.mark.parametrize("compiled_min_size", [0, 1 << 30])
def test_zero_pad_by_both_paths(shape, pads, compiled_min_size):
    """``zero_pad`` pads small inputs with NumPy and large ones by ``pad_planes``; negative
    widths crop. Both match ``np.pad`` on the cropped input, in x's dtype."""
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    with tuning.override(compiled_min_size=compiled_min_size):
        xp = zero_pad(x, pads)
    cropped = x[(slice(None), slice(None)) + tuple(slice(max(-lo, 0), n - max(-hi, 0))
                                                   for n, (lo, hi) in zip(shape[2:], pads))]
    positive = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads)
    np.testing.assert_array_equal(xp, np.pad(cropped, ((0, 0), (0, 0)) + positive))
    assert xp.dtype == x.dtype and xp.flags.c_contiguous


def test_bias_add_and_gradient():
    rng = np.random.default_rng(8)
    y = rng.standard_normal((3, 4, 5, 6), dtype=np.float32)
    b = rng.standard_normal(4, dtype=np.float32)
    expected = y + b[:, None, None]
    add_bias(y, b)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_allclose(bias_grad(y), y.sum(axis=(0, 2, 3)), rtol=1e-5)


@pytest.mark.parametrize("length", [1, 7, 8, 29, 64])
def test_compiled_plane_sums_in_float64(length):
    # every tail length of the partial sums, against NumPy's float64 sums of the same values
    g = np.random.default_rng(length).standard_normal((3, 5, length)).astype(np.float32)
    sums = np.empty((3, 5), np.float64)
    bias_numba._plane_sums(g, sums)
    np.testing.assert_allclose(sums, g.sum(axis=2, dtype=np.float64), rtol=1e-12, atol=1e-12)


def _plane_sum_in_order(row):
    """``bias_numba.plane_sum``'s documented order in plain Python float64 arithmetic: value
    i into accumulator i % 8, the accumulators added in order, then the tail."""
    whole = row.size - row.size % bias_numba.PARTIAL_SUMS
    partial = [0.0] * bias_numba.PARTIAL_SUMS
    for i in range(whole):
        partial[i % bias_numba.PARTIAL_SUMS] += float(row[i])
    total = 0.0
    for value in partial:
        total += value
    for i in range(whole, row.size):
        total += float(row[i])
    return total


@pytest.mark.parametrize("length", [1, 7, 8, 9, 49, 64, 100])
def test_compiled_plane_sums_add_in_their_documented_order(length):
    # magnitudes 1e-20 to 1e20, so that float64 sums round and the order shows
    rng = np.random.default_rng(length)
    g = (rng.standard_normal((2, 3, length)) * 10.0 ** rng.uniform(-20, 20, (2, 3, length))
         ).astype(np.float32)
    sums = np.empty((2, 3), np.float64)
    bias_numba._plane_sums(g, sums)
    expected = [[_plane_sum_in_order(g[n, k]) for k in range(3)] for n in range(2)]
    np.testing.assert_array_equal(sums, expected)


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("padding", [1, (2, 0), "same"])
def test_conv_layer_with_compiled_passes_matches_torch(groups, padding):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 4, 9, 8), dtype=np.float32)
    w = rng.standard_normal((8, 4 // groups, 3, 3), dtype=np.float32)
    b = rng.standard_normal(8, dtype=np.float32)
    ours = [cnnkit.tensor(a, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    with tuning.override(compiled_min_size=0):
        y = F.conv2d(*ours, 1, padding, 1, groups)
        g = rng.standard_normal(y.shape, dtype=np.float32)
        y.backward(g)
    yt = torch.nn.functional.conv2d(*theirs, 1, padding, 1, groups)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_nonfinite_input_found_by_the_padding_pass():
    """The finiteness the padding pass reports steers the algorithm exactly as the separate
    check did: NaN and inf land in the same places either way."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 9, 9), dtype=np.float32)
    x[0, 1, 3, 4], x[1, 2, 7, 0] = np.inf, np.nan
    w = np.ones((3, 1, 3, 3), np.float32)
    results = []
    for size in (0, 1 << 60):
        with tuning.override(compiled_min_size=size):
            results.append(F.conv2d(cnnkit.tensor(x), cnnkit.tensor(w), None, 1, 1, 1, 3).data)
    np.testing.assert_array_equal(results[0], results[1])
    reference = torch.nn.functional.conv2d(torch.tensor(x, dtype=torch.float64),
                                           torch.tensor(w, dtype=torch.float64), None, 1, 1, 1, 3)
    np.testing.assert_array_equal(np.isnan(results[0]), np.isnan(reference.numpy()))
    np.testing.assert_array_equal(np.isinf(results[0]), np.isinf(reference.numpy()))
