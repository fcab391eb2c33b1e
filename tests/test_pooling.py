"""Max, average and adaptive pooling (1-D/2-D/3-D) against PyTorch and the reference loops.

A hand grid and hypothesis-drawn configurations cover kernel, stride (and its default, the
kernel size), padding, dilation, ceil_mode (including the dropped last window that would start
in the padding), count_include_pad, divisor_override, return_indices, unbatched inputs, ties,
NaN and ±Inf; values, indices and input gradients are compared.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch_oracle import compare_with_torch

import cnnkit
import cnnkit.functional as F
import cnnkit.reference as ref
from cnnkit import tuning

torch = pytest.importorskip("torch")
TF = torch.nn.functional

MAX_EXAMPLES = 70
AVG_EXAMPLES = 70
ADAPTIVE_EXAMPLES = 40


def pool_fns(kind, n_dims):
    return getattr(F, f"{kind}{n_dims}d"), getattr(TF, f"{kind}{n_dims}d")


def check_pool(kind, x, terms, **kwargs):
    """Values and input gradient; for max pools also the indices (``return_indices=True``)."""
    ours, theirs = getattr(F, kind), getattr(TF, kind)
    if "max" in kind:
        compare_with_torch(lambda t: ours(t, **kwargs, return_indices=True)[0],
                           lambda t: theirs(t, **kwargs, return_indices=True)[0], [x],
                           (terms, terms), names=("input",))
        _, index = ours(cnnkit.tensor(x), **kwargs, return_indices=True)
        _, expected = theirs(torch.from_numpy(x), **kwargs, return_indices=True)
        assert index.dtype == np.int64
        np.testing.assert_array_equal(index.data, expected.numpy())
    else:
        compare_with_torch(lambda t: ours(t, **kwargs), lambda t: theirs(t, **kwargs), [x],
                           (terms, terms), names=("input",))


def window_size(kind, kernel_size):
    """Cells in one pooling window: the terms summed by an average."""
    return math.prod(np.broadcast_to(kernel_size, (int(kind[-2]),)))


MAX_POOL_CASES = [
    ("max_pool1d", (2, 3, 10), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool1d", (2, 3, 11), dict(kernel_size=2)),                         # stride = kernel
    ("max_pool1d", (3, 9), dict(kernel_size=3, dilation=2, ceil_mode=True, stride=2)),
    ("max_pool2d", (2, 3, 7, 8), dict(kernel_size=2)),
    ("max_pool2d", (2, 3, 7, 8), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0),
                                      dilation=(1, 2), ceil_mode=True)),
    ("max_pool2d", (1, 2, 5, 5), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
    ("max_pool2d", (1, 2, 6, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max_pool2d", (3, 9, 8), dict(kernel_size=3, stride=1, padding=1)),     # unbatched
    ("max_pool3d", (1, 2, 5, 6, 7), dict(kernel_size=(2, 3, 2), stride=(2, 2, 3),
                                         padding=(1, 1, 0), ceil_mode=True)),
    ("max_pool3d", (2, 1, 4, 4, 4), dict(kernel_size=2)),
    ("max_pool3d", (2, 5, 6, 5), dict(kernel_size=3, stride=2, dilation=(1, 2, 1), padding=1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, shape, kwargs", MAX_POOL_CASES)
def test_max_pool_matches_torch(rng, kind, shape, kwargs, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    check_pool(kind, x, 1, **kwargs)


@pytest.mark.parametrize("kind, shape, kwargs", MAX_POOL_CASES)
def test_max_pool_ties_pick_the_first_maximum(rng, kind, shape, kwargs):
    """With many equal values, the winner (hence index and gradient) is torch's: the first."""
    x = rng.integers(0, 2, size=shape).astype(np.float64)
    check_pool(kind, x, 1, **kwargs)


AVG_POOL_CASES = [
    ("avg_pool1d", (2, 3, 10), dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool1d", (3, 9), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True)),
    ("avg_pool2d", (2, 3, 7, 8), dict(kernel_size=2)),
    ("avg_pool2d", (2, 3, 7, 8), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1),
                                      ceil_mode=True)),
    ("avg_pool2d", (1, 2, 5, 5), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d", (1, 2, 6, 7), dict(kernel_size=3, stride=2, padding=1, divisor_override=5)),
    ("avg_pool2d", (3, 8, 9), dict(kernel_size=(2, 4), stride=3, padding=(1, 2),
                                   ceil_mode=True, divisor_override=2)),
    ("avg_pool3d", (1, 2, 5, 6, 7), dict(kernel_size=(2, 3, 2), stride=(2, 2, 3),
                                         padding=(1, 1, 0), ceil_mode=True)),
    ("avg_pool3d", (2, 5, 6, 5), dict(kernel_size=3, stride=2, padding=1, divisor_override=7)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kind, shape, kwargs", AVG_POOL_CASES)
def test_avg_pool_matches_torch(rng, kind, shape, kwargs, count_include_pad, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    check_pool(kind, x, window_size(kind, kwargs["kernel_size"]),
               count_include_pad=count_include_pad, **kwargs)


ADAPTIVE_CASES = [
    (1, (2, 3, 10), 4), (1, (3, 7), 7), (1, (2, 2, 5), 8),
    (2, (2, 3, 7, 9), (3, 4)), (2, (2, 3, 5, 5), 1), (2, (3, 6, 5), (None, 2)),
    (2, (1, 2, 4, 3), (6, 5)),
    (3, (1, 2, 5, 6, 7), (2, 3, 4)), (3, (2, 4, 3, 5), (4, None, 2)),
    (1, (2, 3, 10), 1), (3, (2, 3, 3, 4, 5), 1),  # global pooling: one window per plane
    # even windows (each output size divides its input's): plain pooling
    (1, (2, 3, 10), 5), (2, (2, 3, 14, 14), 7), (2, (2, 3, 12, 9), (4, 3)),
    (3, (2, 2, 4, 6, 8), (2, 3, 4)), (2, (3, 8, 6), (4, None)),
]


@pytest.mark.parametrize("compiled_from", [0, 1 << 60])  # pooling_adaptive_numba, or NumPy's
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["adaptive_avg_pool", "adaptive_max_pool"])
@pytest.mark.parametrize("n_dims, shape, output_size", ADAPTIVE_CASES)
def test_adaptive_pool_matches_torch(rng, n_dims, shape, output_size, kind, dtype,
                                     compiled_from):
    x = rng.standard_normal(shape).astype(dtype)
    with tuning.override(pool_compiled_min_size=compiled_from):
        check_pool(f"{kind}{n_dims}d", x, math.prod(shape[-n_dims:]), output_size=output_size)


@pytest.mark.parametrize("kind, kwargs", [
    ("max_pool2d", dict(kernel_size=2)), ("avg_pool2d", dict(kernel_size=2)),
    ("adaptive_max_pool2d", dict(output_size=2)), ("adaptive_avg_pool2d", dict(output_size=2)),
])
def test_empty_batch(kind, kwargs):
    x = cnnkit.tensor(np.ones((0, 3, 5, 5)), requires_grad=True)
    y = getattr(F, kind)(x, **kwargs)
    assert y.shape == (0, 3, 2, 2)
    y.backward(np.ones(y.shape))
    assert x.grad.shape == x.shape


def test_global_average_pool_is_the_mean(rng):
    x = rng.standard_normal((2, 3, 5, 6))
    y = F.adaptive_avg_pool2d(cnnkit.tensor(x), 1)
    np.testing.assert_allclose(y.data, x.mean(axis=(2, 3), keepdims=True), rtol=1e-12)


# -- NaN and ±Inf: propagate as in torch, no crash --------------------------------------------

@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("kind, kwargs", [
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d", dict(kernel_size=2, count_include_pad=False, padding=1)),
    ("adaptive_max_pool2d", dict(output_size=(3, 5))),
    ("adaptive_avg_pool2d", dict(output_size=(3, 5))),
    ("adaptive_avg_pool2d", dict(output_size=1)),       # windows that tile: one reduction
    ("adaptive_avg_pool2d", dict(output_size=(7, 4))),
    ("adaptive_avg_pool1d", dict(output_size=1)),
    ("adaptive_max_pool2d", dict(output_size=1)),       # global: a running maximum per plane
    ("adaptive_max_pool1d", dict(output_size=1)),
    ("adaptive_max_pool3d", dict(output_size=1)),
    ("adaptive_avg_pool3d", dict(output_size=1)),
    ("max_pool1d", dict(kernel_size=2, stride=1)),
    ("max_pool1d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max_pool3d", dict(kernel_size=2, padding=1)),
])
def test_nan_and_inf_propagate_like_torch(rng, kind, kwargs):
    n_dims = int(kind[-2])
    x = rng.standard_normal((2, 3) + (7, 8, 6)[:n_dims])
    x[(0, 0) + (1, 1, 1)[:n_dims]] = np.nan
    x[(0, 0) + (1, 2, 1)[:n_dims]] = np.nan  # two NaNs in one window
    x[(1, 1) + (3, 3, 3)[:n_dims]] = np.inf
    x[(1, 2) + (0, 0, 0)[:n_dims]] = -np.inf
    x[(0, 2)] = -np.inf  # a whole plane of −inf: padding must still never win
    check_pool(kind, x, 9, **kwargs)



# -- a window that is the whole plane: the global path ----------------------------------------

WHOLE_PLANE_CASES = [
    ("max_pool1d", (2, 3, 9), dict(kernel_size=9)),
    ("max_pool2d", (2, 3, 7, 7), dict(kernel_size=7)),
    ("max_pool2d", (2, 3, 5, 4), dict(kernel_size=(5, 4), stride=2, ceil_mode=True)),
    ("max_pool2d", (4, 6, 6), dict(kernel_size=6, stride=1)),                # unbatched
    ("max_pool3d", (2, 2, 3, 4, 5), dict(kernel_size=(3, 4, 5))),
    ("avg_pool1d", (2, 3, 9), dict(kernel_size=9, count_include_pad=False)),
    ("avg_pool2d", (2, 3, 7, 7), dict(kernel_size=7)),
    ("avg_pool2d", (2, 3, 5, 4), dict(kernel_size=(5, 4), stride=3, ceil_mode=True)),
    ("avg_pool2d", (4, 6, 6), dict(kernel_size=6)),                          # unbatched
    ("avg_pool2d", (2, 3, 7, 7), dict(kernel_size=7, divisor_override=5)),   # not global
    ("avg_pool3d", (2, 2, 3, 4, 5), dict(kernel_size=(3, 4, 5))),
]


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, shape, kwargs", WHOLE_PLANE_CASES)
def test_a_window_over_the_whole_plane_matches_torch(rng, kind, shape, kwargs, dtype):
    """Values, indices and gradients with NaN, ±inf, ties and a plane of −inf, on planes
    small and (through a batch of 64 × 32) past the compiled kernels' size."""
    spatial = shape[-int(kind[-2]):]
    for x_shape in (shape, (64, 32) + spatial):
        x = rng.standard_normal(x_shape).astype(dtype)
        planes = x.reshape((-1,) + spatial)
        planes[0].flat[1] = planes[0].flat[3] = np.nan
        planes[1].flat[2] = np.inf
        planes[2] = -np.inf
        planes[3].flat[[0, 4]] = 9.0  # a tie: the first maximum wins
        check_pool(kind, x, window_size(kind, kwargs["kernel_size"]), **kwargs)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["adaptive_avg_pool", "adaptive_max_pool"])
@pytest.mark.parametrize("spatial, output_size", [((14, 14), 7), ((12, 9), (4, 3)),
                                                  ((6, 8, 4), (3, 2, 4)), ((10,), 5)])
def test_adaptive_pooling_with_even_windows_matches_torch(rng, kind, spatial, output_size,
                                                          dtype):
    """Even windows run as plain pooling: values, indices and gradients with NaN, ±inf,
    ties and a plane of −inf, on a small batch and one past the compiled kernels' size."""
    op = f"{kind}{len(spatial)}d"
    for x_shape in ((2, 4) + spatial, (64, 32) + spatial):
        x = rng.standard_normal(x_shape).astype(dtype)
        planes = x.reshape((-1,) + spatial)
        planes[0].flat[1] = planes[0].flat[3] = np.nan
        planes[1].flat[2] = np.inf
        planes[2] = -np.inf
        planes[3].flat[[0, 1]] = 9.0
        check_pool(op, x, math.prod(spatial), output_size=output_size)


def test_only_even_adaptive_windows_run_as_plain_pooling(rng, monkeypatch):
    from cnnkit.functional import pooling
    from cnnkit.kernels import pooling_adaptive_numba
    taken = []
    for module in (pooling.kernels, pooling_adaptive_numba):  # global; uneven windows
        for name in ("adaptive_avg_forward", "adaptive_max_forward"):
            original = getattr(module, name)
            monkeypatch.setattr(module, name,
                                lambda *a, _original=original: taken.append(1) or _original(*a))
    x = cnnkit.tensor(rng.standard_normal((2, 3, 6, 4)))
    F.adaptive_avg_pool2d(x, (3, 2)), F.adaptive_max_pool2d(x, (2, 4))
    assert not taken
    F.adaptive_avg_pool2d(x, (4, 2)), F.adaptive_max_pool2d(x, (3, 3)), F.adaptive_max_pool2d(x, 1)
    assert len(taken) == 3


@pytest.mark.parametrize("kind, kwargs, whole", [
    ("max_pool2d", dict(kernel_size=(5, 4)), True),
    ("avg_pool2d", dict(kernel_size=(5, 4), stride=2, ceil_mode=True), True),
    ("avg_pool2d", dict(kernel_size=(5, 4), divisor_override=3), False),
    ("max_pool2d", dict(kernel_size=(5, 3)), False),
    ("max_pool2d", dict(kernel_size=(5, 4), padding=(2, 1)), False),
])
def test_only_a_window_over_the_whole_plane_takes_the_global_path(rng, monkeypatch, kind,
                                                                   kwargs, whole):
    from cnnkit.functional import pooling
    taken = []
    for name in ("adaptive_avg_forward", "adaptive_max_forward"):
        original = getattr(pooling.kernels, name)
        monkeypatch.setattr(pooling.kernels, name,
                            lambda *a, _original=original: taken.append(1) or _original(*a))
    getattr(F, kind)(cnnkit.tensor(rng.standard_normal((2, 3, 5, 4))), **kwargs)
    assert bool(taken) == whole


def test_max_pool_of_minus_inf_with_padding_keeps_index_in_the_input():
    x = np.full((1, 1, 4, 4), -np.inf)
    _, index = F.max_pool2d(cnnkit.tensor(x), 3, 2, padding=1, return_indices=True)
    np.testing.assert_array_equal(index.data, [[[[0, 1], [4, 5]]]])


# -- per-side padding pairs (a cnnkit extension) ------------------------------------------------

def test_max_and_avg_pool_accept_per_side_padding(rng):
    """((lo, hi), ...) padding equals padding the input first (−inf for max, 0 for avg)."""
    x = rng.standard_normal((2, 3, 7, 6))
    pairs = ((1, 0), (0, 1))
    flat = [0, 1, 1, 0]  # F.pad's order: last dim first
    compare_with_torch(lambda t: F.max_pool2d(t, 2, 2, padding=pairs),
                       lambda t: TF.max_pool2d(TF.pad(t, flat, value=-math.inf), 2, 2), [x],
                       (1, 1), names=("input",))
    compare_with_torch(lambda t: F.avg_pool2d(t, 2, 2, padding=pairs),
                       lambda t: TF.avg_pool2d(TF.pad(t, flat), 2, 2), [x], (4, 4),
                       names=("input",))


# -- the reference loops as a third oracle ---------------------------------------------------------

@pytest.mark.parametrize("kind, shape, kwargs", MAX_POOL_CASES)
def test_max_pool_matches_reference_loops(rng, kind, shape, kwargs):
    x = rng.standard_normal(shape)
    if x.ndim == int(kind[-2]) + 1:
        x = x[None]
    y, index = getattr(F, kind)(cnnkit.tensor(x), **kwargs, return_indices=True)
    values, indices = ref.max_pool(x, **kwargs)
    np.testing.assert_array_equal(y.data, values)
    np.testing.assert_array_equal(index.data, indices)
    xt = cnnkit.tensor(x, requires_grad=True)
    dy = rng.standard_normal(y.shape)
    getattr(F, kind)(xt, **kwargs).backward(dy)
    np.testing.assert_allclose(xt.grad, ref.max_pool_backward(dy, indices, x.shape), rtol=1e-12)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kind, shape, kwargs", AVG_POOL_CASES)
def test_avg_pool_matches_reference_loops(rng, kind, shape, kwargs, count_include_pad):
    x = rng.standard_normal(shape)
    if x.ndim == int(kind[-2]) + 1:
        x = x[None]
    kwargs = dict(kwargs, count_include_pad=count_include_pad)
    xt = cnnkit.tensor(x, requires_grad=True)
    y = getattr(F, kind)(xt, **kwargs)
    np.testing.assert_allclose(y.data, ref.avg_pool(x, **kwargs), rtol=1e-12, atol=1e-14)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    np.testing.assert_allclose(xt.grad, ref.avg_pool_backward(dy, x.shape, **kwargs),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n_dims, shape, output_size", ADAPTIVE_CASES)
def test_adaptive_pools_match_reference_loops(rng, n_dims, shape, output_size):
    x = rng.standard_normal(shape)
    if x.ndim == n_dims + 1:
        x = x[None]
    xt = cnnkit.tensor(x, requires_grad=True)
    y = getattr(F, f"adaptive_avg_pool{n_dims}d")(xt, output_size)
    np.testing.assert_allclose(y.data, ref.adaptive_avg_pool(x, output_size), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    np.testing.assert_allclose(xt.grad, ref.adaptive_avg_pool_backward(dy, x.shape), rtol=1e-12)
    y, index = getattr(F, f"adaptive_max_pool{n_dims}d")(cnnkit.tensor(x), output_size,
                                                          return_indices=True)
    values, indices = ref.adaptive_max_pool(x, output_size)
    np.testing.assert_array_equal(y.data, values)
    np.testing.assert_array_equal(index.data, indices)


# -- hypothesis ------------------------------------------------------------------------------------

def torch_pool_output_size(n, k, s, p, d, ceil_mode):
    """torch's pooling_output_shape: a ceil_mode window starting in the right padding is dropped."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    return out - 1 if ceil_mode and (out - 1) * s >= n + p else out


@st.composite
def pool_configs(draw, kind):
    """A valid torch pooling configuration: padding <= k // 2, at least one output."""
    n_dims = draw(st.sampled_from([1, 2, 2, 3]))
    max_size = 12 if n_dims < 3 else 6
    kernel = tuple(draw(st.integers(1, 4 if n_dims < 3 else 3)) for _ in range(n_dims))
    stride = None if draw(st.booleans()) else tuple(
        draw(st.integers(1, 3)) for _ in range(n_dims))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding,
                  ceil_mode=draw(st.booleans()))
    if kind == "max":
        kwargs["dilation"] = tuple(draw(st.integers(1, 2)) for _ in range(n_dims))
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
        if n_dims > 1 and draw(st.booleans()):
            kwargs["divisor_override"] = draw(st.integers(1, 9))
    spatial = tuple(draw(st.integers(1, max_size)) for _ in range(n_dims))
    dilation = kwargs.get("dilation", (1,) * n_dims)
    assume(all(n + 2 * p >= d * (k - 1) + 1
               for n, p, k, d in zip(spatial, padding, kernel, dilation)))
    # Every window must see an input cell (torch does not check this for dilated windows, and
    # then scatters the gradient outside the input).
    for n, k, s, p, d in zip(spatial, kernel, stride or kernel, padding, dilation):
        out = torch_pool_output_size(n, k, s, p, d, kwargs["ceil_mode"])
        assume(all(any(0 <= o * s - p + a * d < n for a in range(k)) for o in range(out)))
    if kind == "avg" and n_dims == 3:  # torch's avg_pool3d wants the kernel to fit unpadded
        assume(all(n >= k for n, k in zip(spatial, kernel)))
    batch = () if draw(st.booleans()) else (draw(st.integers(1, 3)),)
    shape = batch + (draw(st.integers(1, 6)),) + spatial
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return f"{kind}_pool{n_dims}d", shape, kwargs, dtype, draw(st.integers(0, 2**16))


@settings(max_examples=MAX_EXAMPLES)
@given(pool_configs("max"))
def test_random_max_pool_matches_torch(config):
    kind, shape, kwargs, dtype, seed = config
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    check_pool(kind, x, 1, **kwargs)


@settings(max_examples=AVG_EXAMPLES)
@given(pool_configs("avg"))
def test_random_avg_pool_matches_torch(config):
    kind, shape, kwargs, dtype, seed = config
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    check_pool(kind, x, window_size(kind, kwargs["kernel_size"]), **kwargs)


@settings(max_examples=ADAPTIVE_EXAMPLES)
@given(st.sampled_from([1, 2, 3]), st.sampled_from(["adaptive_avg_pool", "adaptive_max_pool"]),
       st.data())
def test_random_adaptive_pool_matches_torch(n_dims, kind, data):
    max_size = 12 if n_dims < 3 else 6
    spatial = tuple(data.draw(st.integers(1, max_size)) for _ in range(n_dims))
    sizes = st.integers(1, max_size) if n_dims == 1 else st.one_of(st.none(),
                                                                     st.integers(1, max_size))
    output_size = tuple(data.draw(sizes) for _ in range(n_dims))  # None: keep (not in torch 1-D)
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 6))) + spatial
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).standard_normal(shape)
    check_pool(f"{kind}{n_dims}d", x, math.prod(spatial), output_size=output_size)


# -- the comparison can fail ---------------------------------------------------------------------

def test_comparison_catches_broken_pooling(rng, monkeypatch):
    import cnnkit.kernels.pooling as kernels
    x = rng.standard_normal((2, 3, 7, 8))
    check_pool("avg_pool2d", x, 9, kernel_size=3, stride=2, padding=1, ceil_mode=True,
               count_include_pad=False)
    original = kernels.avg_divisor
    # count_include_pad ignored: every window divides by the full padded count
    monkeypatch.setattr(kernels, "avg_divisor",
                        lambda *args: original(*args[:-1], True))
    with pytest.raises(AssertionError):
        check_pool("avg_pool2d", x, 9, kernel_size=3, stride=2, padding=1, ceil_mode=True,
                   count_include_pad=False)
    monkeypatch.undo()
    original_backward = kernels.max_pool_backward
    # a max-pool gradient routed to the wrong element of its window (NumPy's pooling: 2-D
    # inputs would run compiled)
    monkeypatch.setattr(kernels, "max_pool_backward",
                        lambda g, winner, *args: original_backward(g, np.maximum(winner - 1, 0),
                                                                   *args))
    with pytest.raises(AssertionError), tuning.override(pool_compiled_min_size=1 << 60):
        check_pool("max_pool2d", x, 1, kernel_size=3, stride=2, padding=1)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 7), kernel=st.integers(1, 4), stride=st.integers(1, 3),
       dilation=st.integers(1, 3), data=st.data())
def test_windows_that_see_only_padding_are_refused_exactly(size, kernel, stride, dilation,
                                                           data):
    """The refusal, against every window's taps counted one by one: it is checked only where
    there is low padding, since without it each window starts in the input."""
    padding = data.draw(st.integers(0, kernel // 2))
    ceil_mode = data.draw(st.booleans())
    try:
        (out,) = cnnkit.conv_output_shape((size,), kernel, stride, padding, dilation,
                                          ceil_mode=ceil_mode)
    except ValueError:
        assume(False)
    assume(out > 0)
    blind = any(all(not 0 <= i * stride - padding + a * dilation < size for a in range(kernel))
                for i in range(out))
    x = cnnkit.tensor(np.zeros((1, 1, size), np.float32))
    call = lambda: F.max_pool1d(x, kernel, stride, padding, dilation, ceil_mode)  # noqa: E731
    if blind:
        with pytest.raises(ValueError, match="only padding"):
            call()
    else:
        assert call().shape == (1, 1, out)
