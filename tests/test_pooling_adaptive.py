"""Adaptive pooling over windows of varying size, compiled (``kernels.pooling_adaptive_numba``):
values, indices and gradients bit for bit against PyTorch (both add and compare in the same
order), with NaN, ±inf, ties and planes of −inf; and which calls take it."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnkit
import cnnkit.functional as F
from cnnkit import tuning
from cnnkit.functional import pooling
from cnnkit.kernels import pooling_adaptive_numba

# (spatial, output size): overlapping windows of two sizes, windows wider than the map's
# share (upsampling: 5 → 9), one window per cell along an axis, and outputs of one axis only
CASES = [((13,), 6), ((1000,), 30), ((5,), 9), ((13, 13), 6), ((13, 11), (6, 4)),
         ((5, 7), (9, 11)), ((10, 10), 7), ((7, 9), (7, 4)), ((9, 9, 9), 4),
         ((5, 7, 9), (3, 4, 5)), ((4, 6, 5), (4, 4, 3))]


def _inputs(spatial, dtype, seed=0):
    """(32, 3, *spatial) with a NaN pair, +inf, a plane of −inf and a tie in its planes."""
    x = np.random.default_rng(seed).standard_normal((32, 3) + spatial).astype(dtype)
    planes = x.reshape((-1,) + spatial)
    planes[0].flat[1] = planes[0].flat[3] = np.nan
    planes[1].flat[2] = np.inf
    planes[2] = -np.inf
    planes[3].flat[[0, 1]] = 9.0  # a tie: the first maximum wins
    planes[4].flat[-1] = -0.0
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("spatial, output_size", CASES)
def test_compiled_adaptive_pooling_matches_torch_bit_for_bit(kind, spatial, output_size,
                                                             dtype):
    op = f"adaptive_{kind}_pool{len(spatial)}d"
    x = _inputs(spatial, dtype)
    xt = torch.tensor(x, requires_grad=True)
    expected = getattr(TF, op)(xt, output_size)
    g = np.random.default_rng(1).standard_normal(tuple(expected.shape)).astype(dtype)
    g.reshape(-1)[5] = np.nan
    expected.backward(torch.tensor(g))
    xc = cnnkit.tensor(x, requires_grad=True)
    with tuning.override(pool_compiled_min_size=0):
        assert pooling._adaptive_passes(xc, expected.shape[2:]) is pooling_adaptive_numba
        y = getattr(F, op)(xc, output_size)
        y.backward(g)
        if kind == "max":
            _, index = getattr(F, op)(cnnkit.tensor(x), output_size, return_indices=True)
            _, expected_index = getattr(TF, op)(torch.tensor(x), output_size,
                                                return_indices=True)
            np.testing.assert_array_equal(index.data, expected_index.numpy())
    assert y.dtype == xc.grad.dtype == dtype
    np.testing.assert_array_equal(y.data, expected.detach().numpy())
    np.testing.assert_array_equal(xc.grad, xt.grad.numpy())
    assert np.array_equal(np.signbit(xc.grad), np.signbit(xt.grad.numpy()))


@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
def test_an_unbatched_map_takes_the_compiled_passes(op):
    x = _inputs((13, 11), np.float32)[0]
    xc, xt = cnnkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    with tuning.override(pool_compiled_min_size=0):
        y = getattr(F, op)(xc, (6, 4))
        y.sum().backward()
    expected = getattr(TF, op)(xt, (6, 4))
    expected.sum().backward()
    assert y.shape == (3, 6, 4)
    np.testing.assert_array_equal(y.data, expected.detach().numpy())
    np.testing.assert_array_equal(xc.grad, xt.grad.numpy())


@pytest.mark.parametrize("shape, out, compiled", [
    ((2, 3, 13, 13), (6, 6), True),
    ((2, 3, 13, 13), (1, 1), False),  # global pooling: a path of its own
    ((2, 3, 13, 13), (0, 6), False),  # an empty output
    ((0, 3, 13, 13), (6, 6), False),  # an empty batch
])
def test_which_adaptive_poolings_are_compiled(shape, out, compiled):
    x = cnnkit.tensor(np.zeros(shape, np.float32))
    with tuning.override(pool_compiled_min_size=0):
        assert (pooling._adaptive_passes(x, out) is pooling_adaptive_numba) == compiled
    with tuning.override(pool_compiled_min_size=x.size + 1):
        assert pooling._adaptive_passes(x, out) is pooling.kernels


def test_window_tables_are_kept_read_only():
    windows, sizes = pooling_adaptive_numba._tables((1, 1, 13), (1, 1, 6), np.dtype(np.float32))
    assert not windows.flags.writeable and not sizes.flags.writeable
    assert list(windows[2, 0]) == [0, 2, 4, 6, 8, 10] and list(windows[2, 1]) == [3, 5, 7, 9, 11, 13]
    assert list(sizes[2]) == [3, 3, 3, 3, 3, 3] and sizes.dtype == np.float32
