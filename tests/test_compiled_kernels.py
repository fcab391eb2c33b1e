"""The compiled (Numba) paths against PyTorch: 2-D max pooling, batch normalisation and ReLU.

They are taken only above a size threshold each, so these tests lower the thresholds to zero."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnkit
import cnnkit.functional as F
from cnnkit import reference as ref
from cnnkit import tuning


@pytest.fixture(autouse=True)
def always_compiled():
    with tuning.override(compiled_min_size=0, pool_compiled_min_size=0,
                         batchnorm_training_compiled_min_size=0):
        yield


@pytest.mark.parametrize("op, shape, args", [
    ("max_pool2d", (3, 4, 9, 11), dict(kernel_size=2)),
    ("max_pool2d", (3, 4, 9, 11), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool2d", (3, 4, 9, 11), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1),
                                       dilation=(2, 1), ceil_mode=True)),
    ("max_pool2d", (3, 4, 9, 11), dict(kernel_size=2, stride=2, ceil_mode=True)),
    ("max_pool2d", (3, 4, 9, 11), dict(kernel_size=(1, 4), stride=(3, 1), padding=(0, 2))),
    # 3-D on the general kernel, volume by volume
    ("max_pool3d", (3, 4, 5, 6, 7), dict(kernel_size=2)),
    ("max_pool3d", (3, 4, 5, 6, 7), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool3d", (3, 4, 5, 6, 7), dict(kernel_size=(1, 3, 2), stride=(2, 1, 2),
                                         padding=(0, 1, 1), dilation=(1, 2, 1),
                                         ceil_mode=True)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_max_pool_matches_torch(op, shape, args, dtype):
    """Values, indices and gradients, with NaN, a plane of −inf and ties."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0].reshape(-1)[:3] = np.nan
    x[1, 1] = -np.inf
    x[(2, 2) + (slice(0, 2),) * (len(shape) - 2)] = 1.0  # ties: the first maximum wins
    xc, xt = cnnkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, index = getattr(F, op)(xc, return_indices=True, **args)
    yt, index_t = getattr(TF, op)(xt, return_indices=True, **args)
    g = rng.standard_normal(yt.shape).astype(dtype)
    y.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    np.testing.assert_array_equal(index.data, index_t.numpy())
    np.testing.assert_allclose(xc.grad, xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("args", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=1, padding=1, dilation=2, ceil_mode=True),
    dict(kernel_size=2, stride=3, ceil_mode=True),
])
@pytest.mark.parametrize("unbatched", [False, True])
def test_compiled_max_pool1d_matches_torch(args, unbatched):
    """1-D pooling runs on the 2-D kernels as maps of one row: values, indices, gradients."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 13)).astype(np.float32)
    x[0, 0, :3] = np.nan
    x[1, 1] = -np.inf
    x[2, 2, 4:8] = 1.0  # ties: the first maximum wins
    x = x[0] if unbatched else x
    xc, xt = cnnkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, index = F.max_pool1d(xc, return_indices=True, **args)
    yt, index_t = TF.max_pool1d(xt, return_indices=True, **args)
    g = rng.standard_normal(yt.shape).astype(np.float32)
    y.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    np.testing.assert_array_equal(index.data, index_t.numpy())
    assert index.data.dtype == np.int64
    np.testing.assert_allclose(xc.grad, xt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_compiled_and_numpy_paths_agree():
    rng = np.random.default_rng(1)
    x = cnnkit.tensor(rng.standard_normal((2, 3, 10, 10)), requires_grad=True)
    fast, fast_index = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    with tuning.override(pool_compiled_min_size=1 << 60):
        slow, slow_index = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(fast.data, slow.data)
    np.testing.assert_array_equal(fast_index.data, slow_index.data)


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (3, 5, 7), (2, 3, 4, 3, 5)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_batch_norm_matches_torch(shape, training, affine, dtype):
    rng = np.random.default_rng(2)
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), (rng.random(c) + 0.5).astype(dtype)
    xc, wc, bc = (cnnkit.tensor(a, requires_grad=True) for a in (x, w, b))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    rm_ours, rv_ours, rm_t, rv_t = rm.copy(), rv.copy(), torch.tensor(rm), torch.tensor(rv)
    params = (wc, bc) if affine else (None, None)
    params_t = (wt, bt) if affine else (None, None)
    y = F.batch_norm(xc, rm_ours, rv_ours, *params, training=training, momentum=0.2)
    yt = TF.batch_norm(xt, rm_t, rv_t, *params_t, training=training, momentum=0.2)
    g = rng.standard_normal(shape).astype(dtype)
    y.backward(g)
    yt.backward(torch.tensor(g))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    pairs = [(y.data, yt), (xc.grad, xt.grad), (rm_ours, rm_t), (rv_ours, rv_t)]
    if affine:
        pairs += [(wc.grad, wt.grad), (bc.grad, bt.grad)]
    for ours, theirs in pairs:
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_relu_matches_torch(dtype):
    """Values and gradients bit for bit, NaN, ±0 and ±inf included (torch passes NaN's gradient)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    x[0, 0, 0, :5] = [np.nan, 0.0, -0.0, np.inf, -np.inf]
    xc, xt = cnnkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = F.relu(xc), torch.relu(xt)
    g = rng.standard_normal(x.shape).astype(dtype)
    y.backward(g)
    yt.backward(torch.tensor(g))
    assert y.dtype == dtype and xc.grad.dtype == dtype
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    np.testing.assert_array_equal(xc.grad, xt.grad.numpy())


@pytest.mark.parametrize("op, shape, args", [
    ("avg_pool1d", (2, 3, 23), dict(kernel_size=2)),
    ("avg_pool1d", (2, 3, 23), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d", (2, 3, 9, 11), dict(kernel_size=2)),  # the 2 × 2 kernel
    ("avg_pool2d", (2, 3, 9, 11), dict(kernel_size=2, divisor_override=3)),
    ("avg_pool2d", (2, 3, 9, 11), dict(kernel_size=2, ceil_mode=True)),  # overhang: general
    ("avg_pool2d", (2, 3, 9, 11), dict(kernel_size=3, stride=1, padding=1)),
    ("avg_pool2d", (2, 3, 9, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                       count_include_pad=False)),
    ("avg_pool2d", (2, 3, 9, 11), dict(kernel_size=(2, 3), stride=(1, 3), padding=(1, 1),
                                       divisor_override=5)),
    ("avg_pool3d", (2, 3, 5, 6, 7), dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool3d", (2, 3, 5, 6, 7), dict(kernel_size=(2, 3, 2), stride=(1, 2, 3),
                                         padding=(1, 1, 0), ceil_mode=True)),
    ("avg_pool2d", (2, 3, 12, 13), dict(kernel_size=5, stride=1, padding=2)),
    ("avg_pool2d", (2, 3, 12, 13), dict(kernel_size=3, stride=3, ceil_mode=True)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_avg_pool_equals_numpy_s_and_matches_torch(op, shape, args, dtype):
    """Average pooling on the compiled kernels (forward: the general one, and 2 × 2 at
    stride 2 inside the input; cells inside the input summed in the window's order, then
    divided in float64; backward: shares added tap by tap): NumPy's passes per offset to the
    bit, NaN and ±inf included, and PyTorch's values and gradients."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0].reshape(-1)[:2] = [np.nan, np.inf]
    x[1, 1].reshape(-1)[3] = -np.inf
    xt = torch.tensor(x, requires_grad=True)
    yt = getattr(TF, op)(xt, **args)
    g = rng.standard_normal(yt.shape).astype(dtype)
    g_odd = g.copy()
    g_odd[0, 0].reshape(-1)[:3] = [np.nan, np.inf, -0.0]  # the backward's own NaN, inf, −0

    def pool(gradient, compiled_from):
        with tuning.override(pool_compiled_min_size=compiled_from):
            xc = cnnkit.tensor(x, requires_grad=True)
            y = getattr(F, op)(xc, **args)
            y.backward(gradient)
        return y, xc.grad
    y, grad = pool(g, 0)
    for gradient in (g, g_odd):
        compiled, numpy_path = pool(gradient, 0), pool(gradient, 1 << 60)
        for ours, theirs in ((compiled[0].data, numpy_path[0].data),
                             (compiled[1], numpy_path[1])):
            np.testing.assert_array_equal(ours, theirs)
            np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))  # −0 too
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, ours, theirs", [
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    ("leaky_relu_steep", lambda x: F.leaky_relu(x, -1.5), lambda x: TF.leaky_relu(x, -1.5)),
    ("gelu", F.gelu, TF.gelu),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"),
     lambda x: TF.gelu(x, approximate="tanh")),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_activations_match_torch(name, ours, theirs, dtype):
    """Leaky ReLU and GELU through ``activation_numba``: values and gradients on random
    values and the extremes (±0, tiny, large, NaN; GELU's limits at ±inf, where PyTorch gives
    NaN, as ``functional.gelu`` documents)."""
    rng = np.random.default_rng(4)
    extremes = [-100.0, -20.0, -1.0, -1e-8, -0.0, 0.0, 1e-8, 0.5, 20.0, 100.0, np.nan]
    x = np.concatenate([rng.standard_normal(200) * 3, extremes]).astype(dtype)
    xc, xt = cnnkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = ours(xc), theirs(xt)
    g = rng.standard_normal(x.shape).astype(dtype)
    y.backward(g)
    yt.backward(torch.tensor(g))
    # float32: PyTorch computes GELU in float32, cnnkit in float64 (``functional.gelu``)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    assert y.dtype == dtype and xc.grad.dtype == dtype
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(xc.grad, xt.grad.numpy(), **tol)
    if name.startswith("gelu"):
        xi = cnnkit.tensor(np.array([-np.inf, np.inf], dtype), requires_grad=True)
        yi = ours(xi)
        yi.backward(np.ones(2, dtype))
        np.testing.assert_array_equal(yi.data, [0.0, np.inf])
        np.testing.assert_array_equal(xi.grad, [0.0, 1.0])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_compiled_and_numpy_gelu_agree(approximate):
    """The compiled GELU (libm's erfc and tanh per element) against the NumPy one (Cephes'
    erfc, whose far tail, below 1e-280, differs from libm's by a few parts in 10^13; NumPy's
    tanh, whose last bit near −1 makes 1 + tanh u differ by up to 4e-16)."""
    x = np.concatenate([np.linspace(-45, 45, 9001), [-1e-300, 0.0, 1e-300]])
    xc = cnnkit.tensor(x, requires_grad=True)
    fast = F.gelu(xc, approximate=approximate)
    fast.backward(np.ones_like(x))
    with tuning.override(compiled_min_size=1 << 60):
        xs = cnnkit.tensor(x, requires_grad=True)
        slow = F.gelu(xs, approximate=approximate)
        slow.backward(np.ones_like(x))
    np.testing.assert_allclose(fast.data, slow.data, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(xc.grad, xs.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("width", [2, 3, 7, 9, 14, 16, 17, 27, 34, 41])
@pytest.mark.parametrize("height", [7, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_max_pool_2x2_fast_path_matches_general_path(width, height, dtype):
    """The 2×2/stride-2 kernel (taken for windows inside the input; float32 rows in vector
    blocks: the last one overlapping, or for rows narrower than a block one block read on
    into the next rows, except where it would read past x) against the general one, with
    NaN, ±inf and ties in every cell of the windows."""
    from cnnkit.kernels import pooling_numba
    rng = np.random.default_rng(width)
    x = rng.integers(-2, 3, (2, 3, height, width)).astype(dtype)  # small integers: many ties
    cells = rng.random(x.shape)
    x[cells < 0.05] = np.nan
    x[(cells >= 0.05) & (cells < 0.08)] = np.inf
    x[(cells >= 0.08) & (cells < 0.1)] = -np.inf
    out = (height // 2, width // 2)
    fast = pooling_numba.max_pool2d_forward(x, (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), out)
    y, index = np.empty((2, 3) + out, dtype), np.empty((2, 3) + out, np.int32)
    pooling_numba._general(x, (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), y, index)
    np.testing.assert_array_equal(fast[0], y)
    np.testing.assert_array_equal(fast[1], index)


@pytest.mark.parametrize("spatial, kernel, stride, pads, dilation", [
    ((9, 11), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    ((7, 7), (7, 7), (7, 7), ((0, 0), (0, 0)), (1, 1)),      # one window: global pooling
    ((7, 8), (3, 2), (1, 3), ((1, 0), (0, 1)), (2, 1)),
    ((6, 13), (2, 3), (3, 2), ((0, 1), (1, 1)), (1, 2)),     # a window overhangs the end
    ((5, 6, 7), (3, 3, 3), (2, 2, 2), ((1, 1),) * 3, (1, 1, 1)),
    ((1, 23), (1, 5), (1, 3), ((0, 0), (2, 2)), (1, 1)),     # 1-D, as maps of one row
    ((10, 9), (3, 2), (3, 3), ((1, 0), (1, 1)), (1, 3)),     # flat at stride 3
    ((5, 4), (3, 3), (1, 1), ((1, 1), (1, 1)), (2, 1)),      # dilation 2 at stride 1
    ((3, 2, 3), (2, 2, 3), (2, 2, 2), ((1, 1), (0, 0), (1, 1)), (1, 1, 1)),  # one output row
])
@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_arrangements_match_bit_for_bit(spatial, kernel, stride, pads, dilation,
                                                average, dtype):
    """``pooling_numba._general``'s three arrangements: each window in turn (``by_windows``:
    short output rows), tap by tap per output row, and flat (``pooling_flat_numba``, where
    one stride slides, 3 included), bit for bit, values and indices, with NaN, ±inf and ties
    in the windows and cells in the padding; averages' backward passes flat and per output
    row too, with NaN, inf and −0 in the gradient."""
    from cnnkit.kernels import pooling_numba
    from cnnkit.kernels.pooling_flat_numba import flat_stride
    rng = np.random.default_rng(len(spatial) + sum(kernel))
    x = rng.integers(-2, 3, (2, 3) + spatial).astype(dtype)  # small integers: many ties
    cells = rng.random(x.shape)
    x[cells < 0.05] = np.nan
    x[(cells >= 0.05) & (cells < 0.08)] = np.inf
    x[(cells >= 0.08) & (cells < 0.12)] = -np.inf
    x[1, 2] = -np.inf  # a plane of −inf: the padding never wins
    if average:
        x[np.isnan(x) | np.isinf(x)] = 1.5
        dilation = (1,) * len(spatial)
    out = tuple((s + lo + hi - d * (k - 1) - 1) // st + 1
                for s, (lo, hi), d, k, st in zip(spatial, pads, dilation, kernel, stride))
    divisor = rng.integers(1, 10, out).astype(np.float64) if average else None
    results = []
    for how in ("taps", "windows") + (("flat",) if flat_stride(stride, out) else ()):
        y = np.full((2, 3) + out, 7.0, dtype)
        index = None if average else np.full((2, 3) + out, -7, np.int32)
        pooling_numba._general(x, kernel, stride, pads, dilation, y, index, divisor, how)
        results.append((y, index))
    for y, index in results[1:]:
        np.testing.assert_array_equal(results[0][0], y)
        if not average:
            np.testing.assert_array_equal(results[0][1], index)
    if average and flat_stride(stride, out):  # the backward pass, flat and per output row
        g = rng.standard_normal((2, 3) + out).astype(dtype)
        g.reshape(-1)[:3] = [np.nan, np.inf, -0.0]
        g[1, 2] = -0.0
        flat, rows = (pooling_numba.avg_pool_backward(g, x.shape, kernel, stride, pads,
                                                      divisor, flat=way) for way in (True, False))
        np.testing.assert_array_equal(flat, rows)
        np.testing.assert_array_equal(np.signbit(flat), np.signbit(rows))


def test_short_strided_rows_and_rows_of_one_output_pool_window_by_window():
    from cnnkit.kernels import pooling_numba
    short_max, short_average = pooling_numba.SHORT_MAX_ROWS, pooling_numba.SHORT_AVERAGE_ROWS
    assert pooling_numba.by_windows(1, 1) and pooling_numba.by_windows(1, 1, average=True)
    assert pooling_numba.by_windows(short_max - 1, 2)
    assert not pooling_numba.by_windows(short_max, 2)
    assert pooling_numba.by_windows(short_average - 1, 3, average=True)
    assert not pooling_numba.by_windows(short_average, 2, average=True)
    assert not pooling_numba.by_windows(2, 1) and not pooling_numba.by_windows(2, 1, True)


def test_pooling_is_flat_where_one_stride_slides():
    from cnnkit.kernels.pooling_flat_numba import flat_stride
    from cnnkit.kernels.pooling_numba import arrangement
    assert flat_stride((2, 2), (4, 4)) == 2 and flat_stride((1, 3), (1, 9)) == 3
    assert flat_stride((1, 1, 1), (1, 1, 1)) == 1 and flat_stride((1, 3), (4, 9)) is None
    assert arrangement((2, 2), (7, 7)) == arrangement((3, 3, 3), (2, 2, 2), True) == "flat"
    assert arrangement((1, 3), (4, 3)) == "windows" and arrangement((2, 1), (4, 9)) == "taps"


@pytest.mark.parametrize("width", [2, 3, 7, 9, 15, 16, 17, 31, 33, 64, 65])
@pytest.mark.parametrize("height", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_max_pool_pairs_fast_path_matches_general_path(width, height, dtype):
    """The 1 × 2 / stride 1 × 2 kernel (1-D pooling by 2: maps of one row; float32 rows in
    vector blocks, the last one overlapping, rows narrower than a block scalar) against the
    general one, with NaN, ±inf and ties in every cell of the windows."""
    from cnnkit.kernels import pooling_numba
    rng = np.random.default_rng(width + height)
    x = rng.integers(-2, 3, (2, 3, height, width)).astype(dtype)  # small integers: many ties
    cells = rng.random(x.shape)
    x[cells < 0.05] = np.nan
    x[(cells >= 0.05) & (cells < 0.08)] = np.inf
    x[(cells >= 0.08) & (cells < 0.1)] = -np.inf
    out = (height, width // 2)
    fast = pooling_numba.max_pool2d_forward(x, (1, 2), (1, 2), ((0, 0), (0, 0)), (1, 1), out)
    y, index = np.empty((2, 3) + out, dtype), np.empty((2, 3) + out, np.int32)
    pooling_numba._general(x, (1, 2), (1, 2), ((0, 0), (0, 0)), (1, 1), y, index)
    np.testing.assert_array_equal(fast[0], y)
    np.testing.assert_array_equal(fast[1], index)


@pytest.mark.parametrize("kind, shape, args", [
    ("max_pool1d", (2, 3, 23), dict(kernel_size=2)),
    ("max_pool1d", (2, 3, 23), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool1d", (2, 3, 23), dict(kernel_size=3, stride=1, padding=1)),
    ("max_pool1d", (2, 3, 23), dict(kernel_size=2, stride=1)),
    ("max_pool1d", (2, 3, 23), dict(kernel_size=5, stride=3, padding=2, ceil_mode=True)),
    ("max_pool1d", (2, 3, 23), dict(kernel_size=3, stride=2, padding=1, dilation=2)),
    ("max_pool2d", (2, 3, 9, 11), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool2d", (2, 3, 9, 11), dict(kernel_size=3, stride=1, padding=1)),
    ("max_pool2d", (2, 3, 9, 11), dict(kernel_size=(1, 2))),
    ("max_pool2d", (2, 3, 9, 11), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1),
                                       dilation=(2, 1), ceil_mode=True)),
    ("max_pool2d", (2, 3, 9, 11), dict(kernel_size=(3, 2), stride=(3, 3), padding=(1, 0),
                                       dilation=(1, 3))),
    ("max_pool3d", (2, 2, 5, 6, 7), dict(kernel_size=2)),
    ("max_pool3d", (2, 2, 5, 6, 7), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool3d", (2, 2, 5, 6, 7), dict(kernel_size=(2, 3, 2), stride=(1, 2, 3),
                                         padding=(1, 1, 0), dilation=(2, 1, 1),
                                         ceil_mode=True)),
])
def test_compiled_max_pool_matches_reference_loops(kind, shape, args):
    """Every compiled kernel (the general one, 1 × 2 pairs, 2 × 2) against the reference
    loops' scan of each window, on small integers (ties) with NaN and ±inf in every place:
    values and indices, and the values taken without indices in inference. The general
    kernel runs each output row at stride 1 and keeps every stride-th column, with each tap a
    pass along the row."""
    rng = np.random.default_rng(len(args) + shape[-1])
    x = rng.integers(-2, 3, shape).astype(np.float32)
    cells = rng.random(shape)
    x[cells < 0.06] = np.nan
    x[(cells >= 0.06) & (cells < 0.1)] = np.inf
    x[(cells >= 0.1) & (cells < 0.16)] = -np.inf
    y, index = getattr(F, kind)(cnnkit.tensor(x), return_indices=True, **args)
    values, indices = ref.max_pool(x, **args)
    np.testing.assert_array_equal(y.data, values)
    np.testing.assert_array_equal(index.data, indices)
    # with no gradient to come and no indices asked for, the maxima alone (``_max_tap``)
    np.testing.assert_array_equal(getattr(F, kind)(cnnkit.tensor(x), **args).data, values)
    with cnnkit.no_grad():
        inference = getattr(F, kind)(cnnkit.tensor(x, requires_grad=True), **args)
    np.testing.assert_array_equal(inference.data, values)


@pytest.mark.parametrize("threshold, layer, module, kernel", [
    ("pool_compiled_min_size", lambda x: F.max_pool2d(x, 2), "pooling_numba",
     "max_pool2d_forward"),
    ("batchnorm_training_compiled_min_size",
     lambda x: F.batch_norm(x, np.zeros(4), np.ones(4), training=True), "batchnorm_numba",
     "channel_stats"),
])
def test_each_layer_s_own_threshold_picks_its_path(threshold, layer, module, kernel,
                                                   monkeypatch):
    """Pooling and batch norm in training each go compiled from their own size on (``cnnkit
    tune`` measures each crossover), whatever ``compiled_min_size`` (ReLU's) says."""
    import importlib
    kernels = importlib.import_module(f"cnnkit.kernels.{module}")
    calls = []
    original = getattr(kernels, kernel)
    monkeypatch.setattr(kernels, kernel, lambda *a, **k: calls.append(1) or original(*a, **k))
    x = cnnkit.tensor(np.random.default_rng(5).standard_normal((1, 4, 6, 6)).astype(np.float32))
    with tuning.override(compiled_min_size=1 << 60, **{threshold: x.size}):
        layer(x)
    assert calls == [1]
    with tuning.override(compiled_min_size=0, **{threshold: x.size + 1}):
        layer(x)
    assert calls == [1]


def test_batch_norm_in_evaluation_runs_one_loop_below_the_threads_threshold(monkeypatch):
    """Evaluation mode: below ``compiled_min_size`` (the price of waking the threads) one
    compiled loop on the calling thread (``evaluate``), from it on the parallel pass
    (``affine``). The loop gives NumPy's two passes' floats, the product rounded before the
    sum; a 2-D input stays on NumPy's passes."""
    from cnnkit.kernels import batchnorm_numba
    calls = []
    for name in ("evaluate", "affine"):
        original = getattr(batchnorm_numba, name)
        monkeypatch.setattr(batchnorm_numba, name, lambda *a, _o=original, _n=name, **k:
                            calls.append(_n) or _o(*a, **k))
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 3, 7)).astype(np.float32)
    x[0, 1, 2, 3], x[1, 4, 0, 0] = np.nan, -np.inf
    mean, var = rng.standard_normal(5).astype(np.float32), rng.random(5).astype(np.float32)
    gamma, beta = (cnnkit.tensor(rng.standard_normal(5).astype(np.float32)) for _ in range(2))
    scale = (gamma.data / np.sqrt(var.astype(np.float64) + 1e-5))
    shift = (beta.data - mean * scale).astype(np.float32).reshape(1, 5, 1, 1)
    expected = x * scale.astype(np.float32).reshape(1, 5, 1, 1) + shift
    for threshold, path in ((x.size + 1, "evaluate"), (x.size, "affine")):
        with tuning.override(compiled_min_size=threshold):
            y = F.batch_norm(cnnkit.tensor(x), mean, var, gamma, beta, training=False).data
        assert calls.pop() == path and not calls
        if path == "evaluate":
            np.testing.assert_array_equal(y, expected)
        else:  # the parallel pass may fuse the product and the sum
            np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    with tuning.override(compiled_min_size=x.size + 1):  # no γ, β; float64
        x64 = x.astype(np.float64)
        y = F.batch_norm(cnnkit.tensor(x64), mean, var, training=False).data
        assert calls == ["evaluate"]
        inv_std = 1.0 / np.sqrt(var.astype(np.float64) + 1e-5)
        np.testing.assert_array_equal(y, x64 * inv_std.reshape(1, 5, 1, 1) +
                                      (0.0 - mean * inv_std).reshape(1, 5, 1, 1))
        F.batch_norm(cnnkit.tensor(x[:, :, 0, 0].copy()), mean, var, training=False)
    assert calls == ["evaluate"]  # (N, C): NumPy's passes


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (0, 3, 5)])
@pytest.mark.parametrize("threshold", [0, 1 << 60])
def test_batch_norm_in_evaluation_of_no_values_gives_no_values(shape, threshold):
    """An empty batch (or no channels) in evaluation, on the loop and on the parallel pass:
    an empty result, as PyTorch's."""
    x = cnnkit.tensor(np.zeros(shape, np.float32))
    with tuning.override(compiled_min_size=threshold):
        y = F.batch_norm(x, np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32),
                         training=False)
    assert y.shape == shape and y.dtype == np.float32


def test_batch_norm_in_evaluation_takes_statistics_of_other_dtypes():
    """The loop widens float16 statistics and parameters to float64 (exactly, as NumPy's path
    did) and reads float64 ones with a float32 x as they are: the floats of NumPy's two
    passes either way. A float16 array input stays on NumPy's passes."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    for dtype in (np.float16, np.float64):
        mean = rng.standard_normal(4).astype(dtype)
        var = (rng.random(4) + 0.5).astype(dtype)
        gamma, beta = (cnnkit.tensor(rng.standard_normal(4).astype(dtype)) for _ in range(2))
        with tuning.override(compiled_min_size=1 << 60):
            y = F.batch_norm(cnnkit.tensor(x), mean, var, gamma, beta, training=False).data
        scale = gamma.data / np.sqrt(var.astype(np.float64) + 1e-5)
        shift = beta.data - mean.astype(np.float64) * scale
        expected = x * scale.astype(np.float32).reshape(1, 4, 1, 1) + \
            shift.astype(np.float32).reshape(1, 4, 1, 1)
        np.testing.assert_array_equal(y, expected)
    half = x.astype(np.float16)
    with tuning.override(compiled_min_size=1 << 60):
        y = F.batch_norm(half, mean.astype(np.float32), var.astype(np.float32),
                         training=False)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.data, (x - mean.reshape(1, 4, 1, 1)) /
                               np.sqrt(var.reshape(1, 4, 1, 1) + 1e-5), rtol=2e-3, atol=2e-3)
