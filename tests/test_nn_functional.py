"""cnnkit.functional's non-convolution ops against PyTorch: activations, linear, dropout,
batch_norm and the losses — values and every gradient, float32 and float64, extreme inputs,
and the argument checks."""
import math
import warnings

import numpy as np
import pytest
import torch

import cnnkit
import cnnkit.functional as F
import cnnkit.random
from cnnkit import tuning
from cnnkit.tensor import Tensor

TF = torch.nn.functional
DTYPES = [np.float32, np.float64]


def tol(dtype, scale=1.0):
    """(rtol, atol) for results of unit scale: float32 to ~1e-5, float64 to ~1e-12."""
    return (1e-4, 1e-5 * scale) if dtype == np.float32 else (1e-10, 1e-12 * scale)


def close(actual, expected, dtype, scale=1.0, name="value"):
    """Same shape, dtype, NaN/±inf pattern; finite entries within ``tol``."""
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"{name}: dtype {actual.dtype}, expected {dtype}"
    for check in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(check(actual), check(expected), err_msg=name)
    finite = np.isfinite(expected)
    rtol, atol = tol(dtype, scale)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=rtol, atol=atol,
                               err_msg=name)


def both(fn_cnnkit, fn_torch, arrays, grad_seed=0, needs_grad=None):
    """Run fn on cnnkit and torch leaves made from ``arrays``; backward a random output gradient.

    Returns ((cnnkit out, grads), (torch out, grads)).
    """
    needs_grad = needs_grad or [True] * len(arrays)
    ck = [cnnkit.tensor(a, requires_grad=r) for a, r in zip(arrays, needs_grad)]
    th = [torch.tensor(a, requires_grad=r) for a, r in zip(arrays, needs_grad)]
    out_c, out_t = fn_cnnkit(*ck), fn_torch(*th)
    g = np.random.default_rng(grad_seed).standard_normal(out_t.shape).astype(arrays[0].dtype)
    out_c.backward(g)
    out_t.backward(torch.from_numpy(g))
    return ((out_c.data, [t.grad for t in ck]),
            (out_t.detach().numpy(), [None if t.grad is None else t.grad.numpy() for t in th]))


def check_against_torch(fn_cnnkit, fn_torch, arrays, scale=1.0, needs_grad=None):
    (out_c, grads_c), (out_t, grads_t) = both(fn_cnnkit, fn_torch, arrays, needs_grad=needs_grad)
    dtype = arrays[0].dtype
    close(out_c, out_t, dtype, scale, "output")
    for i, (gc, gt) in enumerate(zip(grads_c, grads_t)):
        if gt is not None:
            assert gc is not None, f"argument {i}: no gradient"
            close(gc, gt, dtype, scale, f"gradient of argument {i}")


def test_nn_functional_is_cnnkit_functional():
    import cnnkit.nn.functional as nnF
    assert nnF is F
    assert cnnkit.nn.functional is F


# -- activations -------------------------------------------------------------------------------

EXTREMES = np.array([-np.inf, -100.0, -20.0, -1.0, -1e-8, -0.0, 0.0, 1e-8, 0.5, 20.0, 100.0,
                     np.inf, np.nan])

ACTIVATIONS = {
    "relu": (F.relu, TF.relu),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "leaky_relu_default": (F.leaky_relu, TF.leaky_relu),
    "elu": (lambda x: F.elu(x, 1.5), lambda x: TF.elu(x, 1.5)),
    "gelu": (F.gelu, TF.gelu),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"),
                  lambda x: TF.gelu(x, approximate="tanh")),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "tanh": (F.tanh, torch.tanh),
    "softmax": (lambda x: F.softmax(x, 1), lambda x: TF.softmax(x, 1)),
    "softmax_dim0": (lambda x: F.softmax(x, 0), lambda x: TF.softmax(x, 0)),
    "log_softmax": (lambda x: F.log_softmax(x, -1), lambda x: TF.log_softmax(x, -1)),
    "log_softmax_dim0": (lambda x: F.log_softmax(x, 0), lambda x: TF.log_softmax(x, 0)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_torch_on_random_input(name, dtype):
    x = (np.random.default_rng(1).standard_normal((4, 5, 3)) * 3).astype(dtype)
    check_against_torch(*ACTIVATIONS[name], [x])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "sigmoid",
                                  "tanh"])
def test_elementwise_activation_at_extreme_values(name, dtype):
    x = EXTREMES.astype(dtype)
    if name.startswith("gelu"):
        # PyTorch gives NaN at ±inf; cnnkit returns the limits (checked below).
        x = x[np.isfinite(x) | np.isnan(x)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow/invalid warnings on the way
        check_against_torch(*ACTIVATIONS[name], [x])


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "sigmoid",
                                  "tanh"])
@pytest.mark.parametrize("compiled_from", [0, 1 << 16])  # compiled paths, and NumPy's
def test_elementwise_activation_keeps_a_scalar_s_shape(name, compiled_from):
    x = cnnkit.tensor(np.float32(-0.5), requires_grad=True)
    with tuning.override(compiled_min_size=compiled_from):
        y = ACTIVATIONS[name][0](x)
        y.backward(np.float32(1))
    assert y.shape == () and x.grad.shape == ()


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_limits_at_infinity(approximate, dtype):
    x = cnnkit.tensor(np.array([-np.inf, np.inf], dtype=dtype), requires_grad=True)
    y = F.gelu(x, approximate=approximate)
    y.backward(np.ones(2, dtype=dtype))
    np.testing.assert_array_equal(y.data, [0.0, np.inf])
    np.testing.assert_array_equal(x.grad, [0.0, 1.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_family_is_stable_and_handles_infinities(dtype):
    x = np.array([[1000.0, 1000.0, -1000.0], [-np.inf, 0.0, 1.0], [5.0, -np.inf, -np.inf],
                  [-100.0, 0.0, 100.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_against_torch(*ACTIVATIONS["softmax"], [x])
        check_against_torch(*ACTIVATIONS["log_softmax"], [x])


def test_softmax_over_channel_dim_of_4d_input():
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5))
    for dim in (0, 1, 2, 3, -1):
        check_against_torch(lambda t, d=dim: F.softmax(t, d), lambda t, d=dim: TF.softmax(t, d),
                            [x])
        check_against_torch(lambda t, d=dim: F.log_softmax(t, d),
                            lambda t, d=dim: TF.log_softmax(t, d), [x])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("shape, dim", [((5, 1), 1), ((6, 15), 1), ((4, 16), -1), ((3, 17), 1),
                                        ((7, 1000), 1), ((33, 40), 0), ((2, 5, 3, 4), 1),
                                        ((3, 4, 19), 1)])
@pytest.mark.parametrize("log", [False, True])
def test_compiled_softmax_family_matches_torch(shape, dim, log):
    """float32 by ``kernels.softmax_numba`` (rows of C values, and C planes of positions):
    values and gradients, with a NaN, ±inf, a row of −inf and large logits in the rows; row
    lengths around the 16 partial sums."""
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    moved = np.moveaxis(x, dim, -1).reshape(-1, shape[dim])  # a copy: each row one softmax
    rows = [moved[i] for i in range(min(len(moved), 5))]
    for row, special in zip(rows, ([np.nan], [np.inf], [-np.inf] * len(rows[0]), [-np.inf],
                                   [3e4])):
        row[:len(special)] = special
    x = np.moveaxis(moved.reshape(np.moveaxis(x, dim, -1).shape), -1, dim).copy()
    ours = (lambda t: F.log_softmax(t, dim)) if log else (lambda t: F.softmax(t, dim))
    theirs = (lambda t: TF.log_softmax(t, dim)) if log else (lambda t: TF.softmax(t, dim))
    with tuning.override(compiled_min_size=0), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check_against_torch(ours, theirs, [x], scale=10 if log else 1)


def test_compiled_softmax_runs_compiled(monkeypatch):
    from cnnkit.kernels import softmax_numba
    calls = []
    original = softmax_numba.softmax
    monkeypatch.setattr(softmax_numba, "softmax", lambda *a, **k: calls.append(1) or
                        original(*a, **k))
    x = cnnkit.tensor(np.ones((4, 8), np.float32))
    with tuning.override(compiled_min_size=0):
        F.softmax(x, 1), F.log_softmax(x, 1), F.cross_entropy(x, np.zeros(4, np.int64))
        F.softmax(cnnkit.tensor(np.ones((4, 8))), 1)  # float64: NumPy's passes
    with tuning.override(compiled_min_size=1 << 60):
        F.softmax(x, 1)
    assert len(calls) == 3


def test_softmax_implicit_dim_warns_like_torch():
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        out = F.softmax(cnnkit.tensor(x))
    with pytest.warns(UserWarning):
        expected = TF.softmax(torch.tensor(x))
    close(out.data, expected, np.float64)
    with pytest.raises(ValueError, match="dim"):
        F.softmax(cnnkit.tensor(x), 3)


ERF_GRID = np.concatenate([np.linspace(-7, 7, 2801), [0.0, 1e-300, -1e-12, 0.999999, 1.0,
                                                      1.000001, 5.99, 6.0, 7.99, 8.0, 8.01,
                                                      26.0, 27.5, -40.0, 1e300, 5e-324]])


@pytest.mark.parametrize("compiled_from", [0, 1 << 60])  # kernels.erf_numba, or NumPy's
def test_erf_matches_math_erf_to_double_precision(compiled_from):
    with np.errstate(over="ignore"):  # 1e300 is inf in float32
        grid32 = ERF_GRID.astype(np.float32)
    with tuning.override(compiled_min_size=compiled_from):
        out = F.erf(cnnkit.tensor(ERF_GRID)).data
        single = F.erf(cnnkit.tensor(grid32)).data
    expected = np.array([math.erf(v) for v in ERF_GRID])
    np.testing.assert_allclose(out, expected, rtol=2e-15, atol=1e-300)
    assert single.dtype == np.float32  # float64's value rounded once
    np.testing.assert_array_equal(single, np.array([math.erf(v) for v in grid32], np.float32))
    # the tails of Φ, where erfc is tiny, stay relatively accurate (GELU for negative x)
    from cnnkit.functional.activation import _erfc
    tail = np.linspace(1.0, 26.0, 501)
    np.testing.assert_allclose(_erfc(tail), [math.erfc(v) for v in tail], rtol=1e-13)
    np.testing.assert_allclose(_erfc(-tail), [math.erfc(-v) for v in tail], rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("compiled_from", [0, 1 << 60])
def test_erf_gradient_and_non_finite_values_against_torch(dtype, compiled_from):
    """2/√π·e^(−x²)·g, down to float64's subnormals; NaN stays NaN, erf(±inf) = ±1 with
    slope 0 (so an infinite g gives NaN there), erf(−0) = −0."""
    with np.errstate(over="ignore"):
        x = np.concatenate([ERF_GRID, [np.nan, np.inf, -np.inf, -0.0, 26.7, -27.2, 38.0]]
                           ).astype(dtype)
    g = np.random.default_rng(0).standard_normal(x.size).astype(dtype)
    g[-5] = np.inf  # at x = inf
    with tuning.override(compiled_min_size=compiled_from):
        xc = cnnkit.tensor(x, requires_grad=True)
        y = F.erf(xc)
        y.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    expected = torch.erf(xt)
    expected.backward(torch.tensor(g))
    assert y.dtype == xc.grad.dtype == dtype
    close(y.data, expected.detach(), dtype)
    assert np.signbit(y.data[-4]) and y.data[-4] == 0  # erf(−0)
    # torch's float32 gradient is computed in float32: a few units of the last place apart
    np.testing.assert_allclose(xc.grad, xt.grad.numpy(), rtol=1e-5 if dtype == np.float32
                               else 1e-13, atol=0)
    assert np.array_equal(np.isnan(xc.grad), np.isnan(xt.grad.numpy()))


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(cnnkit.tensor([1.0]), approximate="fast")


# -- linear ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_torch(dtype, x_shape, with_bias):
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(x_shape).astype(dtype),
              rng.standard_normal((6, 4)).astype(dtype)]
    if with_bias:
        arrays.append(rng.standard_normal(6).astype(dtype))
    check_against_torch(F.linear, TF.linear, arrays, scale=3)


def test_linear_checks_shapes():
    x, w = cnnkit.tensor(np.ones((2, 4))), cnnkit.tensor(np.ones((3, 4)))
    with pytest.raises(ValueError, match="input"):
        F.linear(cnnkit.tensor(np.ones((2, 5))), w)
    with pytest.raises(ValueError, match="weight"):
        F.linear(x, cnnkit.tensor(np.ones(4)))
    with pytest.raises(ValueError, match="bias"):
        F.linear(x, w, cnnkit.tensor(np.ones(4)))


# -- dropout -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_zeroes_a_fraction_p_and_scales_the_rest(dtype):
    x = cnnkit.tensor(np.full((200, 500), 2.0, dtype=dtype), requires_grad=True)
    y = F.dropout(x, p=0.3, rng=np.random.default_rng(0))
    assert y.dtype == dtype
    kept = y.data != 0
    assert abs(1 - kept.mean() - 0.3) < 0.005  # 100 000 draws: σ ≈ 0.0015
    np.testing.assert_allclose(y.data[kept], 2.0 / 0.7, rtol=1e-6)
    y.backward(np.ones_like(y.data))
    np.testing.assert_allclose(x.grad, kept / 0.7, rtol=1e-6)  # gradient uses the same mask


def test_dropout_eval_p0_and_p1():
    x = cnnkit.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.data, 0)
    y.backward(np.ones((2, 3)))
    np.testing.assert_array_equal(x.grad, 0)


def test_dropout_is_reproducible_with_manual_seed_and_rng():
    x = cnnkit.tensor(np.ones((10, 10)))
    cnnkit.random.manual_seed(7)
    a = F.dropout(x, 0.5).data
    cnnkit.random.manual_seed(7)
    b = F.dropout(x, 0.5).data
    c = F.dropout(x, 0.5).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
    np.testing.assert_array_equal(F.dropout(x, 0.5, rng=3).data, F.dropout(x, 0.5, rng=3).data)


@pytest.mark.parametrize("fn, shape", [(F.dropout1d, (4, 50, 7)), (F.dropout2d, (4, 50, 3, 5)),
                                       (F.dropout3d, (4, 50, 2, 3, 2))])
def test_channel_dropout_drops_whole_channels(fn, shape):
    y = fn(cnnkit.tensor(np.ones(shape, np.float32)), 0.5, rng=0).data
    per_channel = y.reshape(shape[0], shape[1], -1)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert 0.3 < (per_channel[..., 0] == 0).mean() < 0.7


def test_dropout_checks_p():
    for p in (-0.1, 1.5, "a", True):
        with pytest.raises(ValueError, match="p"):
            F.dropout(cnnkit.tensor([1.0]), p)


# -- batch norm --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 4, 5), (2, 3, 2, 3, 2)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch(dtype, shape, training, affine):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    stats = {}
    for lib in ("cnnkit", "torch"):
        stats[lib] = [np.linspace(-1, 1, 3).astype(dtype), np.linspace(0.5, 2, 3).astype(dtype)]
    arrays = [x]
    if affine:
        arrays += [rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)]

    def ours(x, w=None, b=None):
        return F.batch_norm(x, stats["cnnkit"][0], stats["cnnkit"][1], w, b, training, 0.2, 1e-3)

    def theirs(x, w=None, b=None):
        rm, rv = (torch.from_numpy(a) for a in stats["torch"])
        return TF.batch_norm(x, rm, rv, w, b, training, 0.2, 1e-3)
    check_against_torch(ours, theirs, arrays, scale=10)
    for ours_stat, torch_stat in zip(stats["cnnkit"], stats["torch"]):
        close(ours_stat, torch_stat, dtype, name="running statistic")
    if training:  # the running variance took the *unbiased* batch variance
        n = x.size // 3
        batch_var = x.swapaxes(0, 1).reshape(3, -1).var(axis=1) * n / (n - 1)
        np.testing.assert_allclose(stats["cnnkit"][1], 0.8 * np.linspace(0.5, 2, 3)
                                   + 0.2 * batch_var, rtol=1e-5)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4, 5)])
def test_batch_norm_in_evaluation_differentiates_the_statistics_it_read(shape):
    """An evaluation-mode pass's gradients use the running statistics as that pass read them,
    even when they change before the backward pass (the buffers are updated in place)."""
    rng = np.random.default_rng(7)
    x = cnnkit.tensor(rng.standard_normal(shape), requires_grad=True)
    w = cnnkit.tensor(rng.standard_normal(3) + 2, requires_grad=True)
    mean, var = np.array([0.5, -1.0, 2.0]), np.array([0.5, 2.0, 1.5])
    y = F.batch_norm(x, mean, var, w, None, training=False)
    mean += 3.0
    var *= 4.0
    y.sum().backward()
    xt = torch.tensor(x.data, requires_grad=True)
    wt = torch.tensor(w.data, requires_grad=True)
    TF.batch_norm(xt, torch.tensor(mean - 3.0), torch.tensor(var / 4.0), wt, None,
                  training=False).sum().backward()
    close(x.grad, xt.grad, np.float64)
    close(w.grad, wt.grad, np.float64)


def test_batch_norm_without_running_stats_uses_batch_statistics():
    x = np.random.default_rng(6).standard_normal((8, 2, 3))
    out = F.batch_norm(cnnkit.tensor(x), None, None, training=True).data
    expected = TF.batch_norm(torch.tensor(x), None, None, training=True)
    close(out, expected, np.float64)


@pytest.mark.parametrize("shape", [(0, 3, 3, 3), (0, 3), (2, 3, 0, 4)])
def test_batch_norm_in_training_of_no_values_gives_no_values(shape):
    """An empty batch in training: an empty result, zero gradients for γ and β and the
    running statistics untouched, as PyTorch's."""
    ours = [cnnkit.tensor(np.ones(3, np.float32), requires_grad=True) for _ in range(2)]
    theirs = [torch.ones(3, requires_grad=True) for _ in range(2)]
    x, xt = cnnkit.tensor(np.zeros(shape, np.float32), requires_grad=True), \
        torch.zeros(shape, requires_grad=True)
    stats, stats_t = [np.full(3, 2.0, np.float32) for _ in range(2)], \
        [torch.full((3,), 2.0) for _ in range(2)]
    y = F.batch_norm(x, *stats, *ours, training=True)
    yt = TF.batch_norm(xt, *stats_t, *theirs, training=True)
    y.sum().backward()
    yt.sum().backward()
    assert y.shape == tuple(yt.shape) == shape and x.grad.shape == shape
    for a, b in zip(stats + [p.grad for p in ours], stats_t + [p.grad for p in theirs]):
        np.testing.assert_array_equal(a, b.numpy())
    module = cnnkit.nn.BatchNorm2d(3)
    module(cnnkit.tensor(np.zeros((0, 3, 4, 4), np.float32)))
    assert module.num_batches_tracked.data == 1 and not module.running_mean.data.any()


def test_batch_norm_checks_arguments():
    x = cnnkit.tensor(np.ones((4, 3, 2)))
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(x, np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="training=False"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="more than 1 value"):
        F.batch_norm(cnnkit.tensor(np.ones((1, 3))), None, None, training=True)
    with pytest.raises(ValueError, match="no channels"):
        F.batch_norm(cnnkit.tensor(np.ones((4, 0, 2))), None, None, training=True)
    with pytest.raises(ValueError, match="weight"):
        F.batch_norm(x, np.zeros(3), np.ones(3), weight=cnnkit.tensor(np.ones(4)))


# -- losses ------------------------------------------------------------------------------------

def _class_problem(rng, shape, num_classes, dtype, ignore=False):
    """Logits of shape (N, C, *d) and targets (N, *d), a few set to ignore_index=-100 / 1."""
    logits = (rng.standard_normal((shape[0], num_classes) + shape[1:]) * 2).astype(dtype)
    target = rng.integers(0, num_classes, size=shape)
    if ignore:
        target.ravel()[::3] = -100
    return logits, target


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("shape", [(6,), (2, 3, 2)])
@pytest.mark.parametrize("compiled_from", [0, 1 << 60])  # float32's compiled softmax, NumPy's
def test_cross_entropy_with_class_indices_matches_torch(dtype, reduction, weighted, ignore,
                                                        smoothing, shape, compiled_from):
    rng = np.random.default_rng(7)
    logits, target = _class_problem(rng, shape, 4, dtype, ignore)
    weight = rng.uniform(0.5, 2.0, 4).astype(dtype) if weighted else None
    with tuning.override(compiled_min_size=compiled_from):
        check_against_torch(
            lambda x: F.cross_entropy(x, target, weight, -100, reduction, smoothing),
            lambda x: TF.cross_entropy(x, torch.from_numpy(target),
                                       None if weight is None else torch.from_numpy(weight),
                                       ignore_index=-100, reduction=reduction,
                                       label_smoothing=smoothing),
            [logits])


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_custom_ignore_index_and_unbatched_input(reduction):
    rng = np.random.default_rng(8)
    logits, target = _class_problem(rng, (5,), 3, np.float64)
    target[1] = 2
    check_against_torch(
        lambda x: F.cross_entropy(x, target, ignore_index=2, reduction=reduction),
        lambda x: TF.cross_entropy(x, torch.from_numpy(target), ignore_index=2,
                                   reduction=reduction), [logits])
    check_against_torch(  # unbatched: input (C,), target ()
        lambda x: F.cross_entropy(x, np.array(1), reduction=reduction, label_smoothing=0.1),
        lambda x: TF.cross_entropy(x, torch.tensor(1), reduction=reduction,
                                   label_smoothing=0.1), [logits[0]])


def test_cross_entropy_all_ignored_gives_nan_like_torch():
    logits = np.zeros((2, 3))
    target = np.array([-100, -100])
    out = F.cross_entropy(cnnkit.tensor(logits), target)
    assert np.isnan(out.item())
    assert np.isnan(TF.cross_entropy(torch.tensor(logits), torch.tensor(target)).item())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("compiled_from", [0, 1 << 60])
def test_cross_entropy_with_probabilities_matches_torch(dtype, reduction, weighted, smoothing,
                                                        compiled_from):
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((3, 4, 2)).astype(dtype)
    probs = rng.dirichlet(np.ones(4), size=(3, 2)).transpose(0, 2, 1).astype(dtype)
    weight = rng.uniform(0.5, 2.0, 4).astype(dtype) if weighted else None

    def ours(x, t):
        return F.cross_entropy(x, t, weight, reduction=reduction, label_smoothing=smoothing)

    def theirs(x, t):
        return TF.cross_entropy(x, t, None if weight is None else torch.from_numpy(weight),
                                reduction=reduction, label_smoothing=smoothing)
    with tuning.override(compiled_min_size=compiled_from):
        check_against_torch(ours, theirs, [logits, probs])  # the target gets a gradient too


def test_cross_entropy_extreme_logits_stay_finite():
    logits = np.array([[1000.0, -1000.0, 0.0], [-1e4, 1e4, 0.0]], dtype=np.float32)
    target = np.array([1, 1])
    check_against_torch(lambda x: F.cross_entropy(x, target),
                        lambda x: TF.cross_entropy(x, torch.from_numpy(target)), [logits],
                        scale=100)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(5,), (2, 2, 3)])
def test_nll_loss_matches_torch(dtype, reduction, weighted, shape):
    rng = np.random.default_rng(10)
    logits, target = _class_problem(rng, shape, 3, dtype, ignore=True)
    log_p = TF.log_softmax(torch.from_numpy(logits), 1).numpy()
    weight = rng.uniform(0.5, 2.0, 3).astype(dtype) if weighted else None
    check_against_torch(
        lambda x: F.nll_loss(x, target, weight, reduction=reduction),
        lambda x: TF.nll_loss(x, torch.from_numpy(target),
                              None if weight is None else torch.from_numpy(weight),
                              reduction=reduction), [log_p])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(3, 4), (5, 7, 3)])  # 105 values: 13 lanes of 8 and one
@pytest.mark.parametrize("compiled_from", [0, 1 << 60])  # float32's compiled pass, NumPy's
def test_mse_loss_matches_torch(dtype, reduction, shape, compiled_from):
    rng = np.random.default_rng(11)
    arrays = [rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)]
    with tuning.override(compiled_min_size=compiled_from):
        check_against_torch(lambda x, t: F.mse_loss(x, t, reduction),
                            lambda x, t: TF.mse_loss(x, t, reduction=reduction), arrays,
                            scale=10)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # NumPy's, per element
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_compiled_mse_loss_with_nan_inf_and_no_values(reduction):
    """float32 on the compiled pass (summed or averaged): a NaN or ±inf in x or t, and an
    empty batch, as PyTorch's (NaN for the mean of nothing)."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((6, 50)).astype(np.float32)
    t = rng.standard_normal((6, 50)).astype(np.float32)
    x[1, 3], t[2, 4], x[3, 5], t[4, 6] = np.nan, np.inf, -np.inf, 1e30
    with tuning.override(compiled_min_size=0):
        for rows in (slice(None), slice(0, 0)):
            check_against_torch(lambda a, b: F.mse_loss(a, b, reduction),
                                lambda a, b: TF.mse_loss(a, b, reduction=reduction),
                                [x[rows].copy(), t[rows].copy()], scale=10)
        for part in (slice(0, 1), slice(5, 6)):  # finite rows alone: the values themselves
            check_against_torch(lambda a, b: F.mse_loss(a, b, reduction),
                                lambda a, b: TF.mse_loss(a, b, reduction=reduction),
                                [x[part].copy(), t[part].copy()])


def test_compiled_mse_loss_runs_compiled(monkeypatch):
    from cnnkit.kernels import loss_numba
    calls = []
    original = loss_numba.squared_error
    monkeypatch.setattr(loss_numba, "squared_error", lambda *a: calls.append(1) or original(*a))
    x, t = np.ones((4, 8), np.float32), np.zeros((4, 8), np.float32)
    with tuning.override(compiled_min_size=0):
        F.mse_loss(cnnkit.tensor(x), cnnkit.tensor(t))
        F.mse_loss(cnnkit.tensor(x), cnnkit.tensor(t), "none")  # per element: NumPy's passes
        F.mse_loss(cnnkit.tensor(x), cnnkit.tensor(t[:1]))  # broadcast: NumPy's too
        F.mse_loss(cnnkit.tensor(x.astype(np.float64)), cnnkit.tensor(t.astype(np.float64)))
    assert len(calls) == 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weighted", [False, True])
def test_bce_with_logits_matches_torch(dtype, reduction, weighted, pos_weighted):
    rng = np.random.default_rng(12)
    logits = (rng.standard_normal((4, 3)) * 3).astype(dtype)
    logits[0] = [-100.0, 100.0, 0.0]  # saturated logits stay finite
    target = rng.uniform(0, 1, (4, 3)).astype(dtype)
    weight = rng.uniform(0.5, 2, (4, 1)).astype(dtype) if weighted else None
    pos_weight = rng.uniform(0.5, 3, 3).astype(dtype) if pos_weighted else None

    def as_torch(a):
        return None if a is None else torch.from_numpy(a)

    def ours(x, t):
        return F.binary_cross_entropy_with_logits(x, t, weight, pos_weight, reduction)

    def theirs(x, t):
        return TF.binary_cross_entropy_with_logits(x, t, as_torch(weight), reduction=reduction,
                                                   pos_weight=as_torch(pos_weight))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_against_torch(ours, theirs, [logits, target], scale=100)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy's path: inf − inf
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("compiled_from", [0, 1 << 60])  # kernels.loss_numba, or NumPy's
@pytest.mark.parametrize("size", [7, 1000, 9000])  # under a block, two blocks, several tasks
def test_bce_with_logits_of_data_targets_on_both_paths(reduction, compiled_from, size):
    """float32 logits against fixed targets (0, 1 and between), saturated logits, NaN and
    ±inf in some rows: the compiled pass (summed or averaged, unweighted) as PyTorch's."""
    rng = np.random.default_rng(size)
    logits = (rng.standard_normal((2, size)) * 6).astype(np.float32)
    logits[0, :4] = [-100.0, 100.0, 0.0, -0.0]
    target = rng.uniform(0, 1, (2, size)).astype(np.float32)
    target[:, ::3] = target[:, ::3] > 0.5
    cases = [(logits, target)]
    for bad in ([np.nan, 1.0], [np.inf, 1.0], [np.inf, 0.5], [-np.inf, 0.0], [-np.inf, 1.0]):
        x, t = logits.copy(), target.copy()
        x[1, -1], t[1, -1] = bad
        cases.append((x, t))
    with tuning.override(compiled_min_size=compiled_from):
        for x, t in cases:
            check_against_torch(
                lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction),
                lambda a, b: TF.binary_cross_entropy_with_logits(a, b, reduction=reduction),
                [x, t], scale=10, needs_grad=[True, False])


@pytest.mark.parametrize("size", [1, 513, 4096 * 3 + 1])  # one block; a block of 1; 3 tasks
def test_logit_cross_entropy_kernels_in_float64(size):
    """The compiled sum against float64's log1p and math.fsum, to 1e-12 of the terms'
    magnitude; the gradient the float32 nearest to float64's; σ(−inf) exactly 0 (a +0
    gradient at x = inf, t = 1)."""
    from cnnkit.kernels import loss_numba
    rng = np.random.default_rng(size)
    x = (rng.standard_normal(size) * 8).astype(np.float32)
    t = rng.uniform(0, 1, size).astype(np.float32)
    x[:3] = [100.0, -100.0, 0.0][:size]
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    terms = (1 - t64) * x64 + np.log1p(np.exp(-np.abs(x64))) + np.maximum(-x64, 0)
    total = loss_numba.logit_cross_entropy(x, t)
    assert abs(total - math.fsum(terms)) <= 1e-12 * np.abs(terms).sum()
    sigma_negative = 1 / (1 + np.exp(x64))
    expected = ((1 - t64) - sigma_negative) * 0.5
    np.testing.assert_allclose(loss_numba.logit_cross_entropy_backward(x, t, 0.5),
                               expected.astype(np.float32), rtol=2e-7, atol=1e-30)
    edge = loss_numba.logit_cross_entropy_backward(np.array([np.inf], np.float32),
                                                   np.array([1.0], np.float32), 1.0)
    assert edge[0] == 0 and not np.signbit(edge[0])


def test_bce_with_logits_runs_compiled_for_unweighted_data_targets(monkeypatch):
    from cnnkit.kernels import loss_numba
    calls = []
    original = loss_numba.logit_cross_entropy
    monkeypatch.setattr(loss_numba, "logit_cross_entropy",
                        lambda *a: calls.append(1) or original(*a))
    x, t = np.ones((4, 8), np.float32), np.zeros((4, 8), np.float32)
    loss = F.binary_cross_entropy_with_logits
    with tuning.override(compiled_min_size=0):
        loss(cnnkit.tensor(x), cnnkit.tensor(t))
        loss(cnnkit.tensor(x), cnnkit.tensor(t), reduction="none")  # per element: NumPy's
        loss(cnnkit.tensor(x), cnnkit.tensor(t), weight=np.ones(8, np.float32))
        loss(cnnkit.tensor(x), cnnkit.tensor(t), pos_weight=np.ones(8, np.float32))
        loss(cnnkit.tensor(x), cnnkit.tensor(t, requires_grad=True))  # a learned target
        loss(cnnkit.tensor(x.astype(np.float64)), cnnkit.tensor(t.astype(np.float64)))
    assert len(calls) == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_keep_the_input_dtype(dtype):
    x = cnnkit.tensor(np.zeros((2, 3), dtype=dtype))
    t = np.array([0, 2])
    assert F.cross_entropy(x, t).dtype == dtype
    assert F.cross_entropy(x, t, reduction="none", label_smoothing=0.1).dtype == dtype
    assert F.nll_loss(x, t).dtype == dtype
    assert F.mse_loss(x, cnnkit.tensor(np.ones((2, 3), dtype))).dtype == dtype
    assert F.binary_cross_entropy_with_logits(x, cnnkit.tensor(np.ones((2, 3), dtype))).dtype \
        == dtype


def test_loss_argument_checks():
    x = cnnkit.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="target"):
        F.cross_entropy(x, np.array([0, 3]))  # class 3 of 3
    with pytest.raises(ValueError, match="target"):
        F.cross_entropy(x, np.array([0, -1]))
    with pytest.raises(ValueError, match="target"):
        F.nll_loss(x, np.array([5, 0]))
    with pytest.raises(ValueError, match="target must have shape"):
        F.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="target"):
        F.cross_entropy(x, np.array([True, False]))
    with pytest.raises(ValueError, match="probability target"):
        F.cross_entropy(x, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, np.array([0, 1]), reduction="average")
    for loss in (F.nll_loss, F.mse_loss, F.binary_cross_entropy_with_logits):
        with pytest.raises(ValueError, match="reduction"):
            loss(x, np.zeros((2, 3)) if loss is not F.nll_loss else np.array([0, 1]),
                 reduction="avg")
    with pytest.raises(ValueError, match="weight"):
        F.cross_entropy(x, np.array([0, 1]), weight=np.ones(4))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="same as input size"):
        F.binary_cross_entropy_with_logits(x, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="pos_weight"):
        F.binary_cross_entropy_with_logits(x, np.zeros((2, 3)), pos_weight=np.ones(4))
    with pytest.raises(ValueError, match="broadcast"):
        F.mse_loss(x, np.zeros((4, 3)))


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    # Independent of torch: for one sample, dL/dx = softmax(x) − onehot(y).
    x = cnnkit.tensor(np.array([[0.5, -1.0, 2.0]]), requires_grad=True)
    F.cross_entropy(x, np.array([2])).backward()
    p = np.exp(x.data) / np.exp(x.data).sum()
    np.testing.assert_allclose(x.grad, p - np.array([[0, 0, 1]]), rtol=1e-12)
    assert isinstance(F.cross_entropy(x, np.array([2])), Tensor)
