"""Inf and NaN land where PyTorch (float64) and scipy put them, whichever algorithm runs.

The rule (docs/ieee.md): an output is NaN or ±inf exactly when the literal sum's terms make it
so, the zero padding's terms included (as PyTorch computes in float64). Each convolution algorithm is forced in turn on
hypothesis-drawn layers with inf and NaN sprinkled into the pass's operands; an algorithm may
refuse non-finite data (``NotApplicable``, only for an operand it needs finite), and then the
heuristic's fallback must match. Pooling is checked against PyTorch, cnnkit.signal's direct
method against scipy's.
"""
import warnings

import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch_oracle import assert_close

import cnnkit
import cnnkit.functional as F
from cnnkit import signal, tuning
from cnnkit.bench.machine import onednn_isa
from cnnkit.kernels import conv, finite

TF = torch.nn.functional
TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}
DTYPES = (np.float32, np.float64)
SPECIALS = (np.nan, np.inf, -np.inf)
# What each algorithm needs of the layer, so that few drawn examples are thrown away.
SHAPES = {"lanes": dict(depthwise=True, n_dims=2, multiplier=1),
          "rows": dict(depthwise=True, stride=1, dilation=1), "implicit": dict(groups=1),
          "blocked": dict(grouped=True),
          "fft": dict(stride=1), "depthwise": dict(depthwise=True),
          "winograd": dict(n_dims=2, kernel=3, stride=1, dilation=1, groups=1),
          "shift": dict(stride=1), "gemm": {}, "fc": dict(groups=1, whole=True),
          # the row correlation's weight pass: 3-D depthwise 3 × 3 × 3 layers only
          "rows_volume": dict(depthwise=True, n_dims=3, kernel=3, stride=1, dilation=1)}

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf − inf, 0·inf


def sprinkle(rng, a, count):
    """a with ``count`` entries (at random places) set to NaN, +inf or −inf."""
    flat = a.reshape(-1)
    for index in rng.integers(0, flat.size, count):
        flat[index] = SPECIALS[rng.integers(0, 3)]
    return a


def torch_grads(op, arrays, dy):
    """op's output and the gradients of every array (float64, PyTorch)."""
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    y = op(*tensors)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return [y.detach().numpy()] + [t.grad.numpy() for t in tensors]


@st.composite
def layers(draw, algorithm):
    """(x_shape, w_shape, stride, dilation, groups, pads) for a layer ``algorithm`` fits."""
    fit = SHAPES[algorithm]
    n_dims = fit.get("n_dims") or draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    if fit.get("depthwise"):
        groups, k = c, c * (fit.get("multiplier") or draw(st.integers(1, 2)))
    elif fit.get("grouped"):  # several groups of one to two channels each
        groups = draw(st.integers(2, 3))
        c, k = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    else:
        groups = fit.get("groups") or draw(st.sampled_from([1, c]))
        k = groups * draw(st.integers(1, 3))
    kernel = [fit.get("kernel") or draw(st.integers(1, 6 if n_dims < 3 else 3))
              for _ in range(n_dims)]
    stride = [fit.get("stride") or draw(st.sampled_from([1, 1, 2])) for _ in range(n_dims)]
    dilation = [fit.get("dilation") or draw(st.sampled_from([1, 1, 2])) for _ in range(n_dims)]
    pads = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(n_dims)]
    spatial = [max(1, d * (q - 1) + 1 - lo - hi + draw(st.integers(0, 8 if n_dims < 3 else 3)))
               for q, d, (lo, hi) in zip(kernel, dilation, pads)]
    if fit.get("whole"):  # the kernel as large as the padded input: one output per image
        kernel = [n + lo + hi for n, (lo, hi) in zip(spatial, pads)]
        dilation = [1] * n_dims
    return ((draw(st.integers(1, 2)), c) + tuple(spatial), (k, c // groups) + tuple(kernel),
            tuple(stride), tuple(dilation), groups, pads)


def conv_reference(x, w, dy, stride, dilation, groups, pads):
    """PyTorch's y, dx, dw in float64: its zero padding (F.pad) is values, as cnnkit's is."""
    flat_pads = [p for pair in reversed(pads) for p in pair]
    return torch_grads(lambda xt, wt: TORCH_CONV[len(stride)](
        TF.pad(xt, flat_pads), wt, stride=stride, dilation=dilation, groups=groups), (x, w), dy)


def run_pass(pass_name, x, w, dy, stride, dilation, groups, pads):
    if pass_name == "forward":
        return conv.conv_forward(x, w, stride, dilation, groups, pads)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads))
    if pass_name == "input":
        return conv.conv_backward_input(dy, w, padded, stride, dilation, groups, pads)
    return conv.conv_backward_weight(x, dy, w.shape[2:], stride, dilation, groups, pads)


@pytest.mark.parametrize("pass_name", conv.PASSES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("algorithm", conv.ALGORITHMS)
@settings(max_examples=15)
@given(data=st.data())
def test_forced_algorithm_puts_nan_and_inf_where_pytorch_does(algorithm, dtype, pass_name, data):
    two_groups = SHAPES[algorithm].get("depthwise") or SHAPES[algorithm].get("grouped")
    side = 3 if SHAPES[algorithm].get("whole") else 8
    typical = conv.ConvGeometry.of((1, 2, side, side), (2, 1 if two_groups else 2, 3, 3), (1, 1),
                                   (1, 1), 2 if two_groups else 1, dtype)
    if not conv.REGISTRY[algorithm].applies(typical, pass_name):
        pytest.skip(f"{algorithm} computes no {np.dtype(dtype)} {pass_name} pass")
    _forced_pass_against_pytorch(algorithm, algorithm, dtype, pass_name, data)


@settings(max_examples=25)
@given(data=st.data())
def test_volume_stencil_weight_pass_puts_nan_and_inf_where_pytorch_does(data):
    """The same for the row correlation's one weight pass, 3-D depthwise 3 × 3 × 3 layers'
    (``rows.takes_volume_weight``), which the 2-D layer above does not reach."""
    _forced_pass_against_pytorch("rows", "rows_volume", np.float32, "weight", data)


def _forced_pass_against_pytorch(algorithm, shapes, dtype, pass_name, data):
    """One drawn layer of ``SHAPES[shapes]`` with inf and NaN sprinkled over its operands: the
    pass forced onto ``algorithm`` (or refused for an operand it needs finite, then run as
    the dispatcher picks) against the literal sums."""
    x_shape, w_shape, stride, dilation, groups, pads = data.draw(layers(shapes))
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(x_shape[2:], pads))
    g = conv.ConvGeometry.of(x_shape[:2] + padded, w_shape, stride, dilation, groups, dtype,
                             pads)
    assume(conv.REGISTRY[algorithm].applies(g, pass_name))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x, w = (rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape))
    dy = rng.standard_normal(x_shape[:1] + w_shape[:1] + g.out).astype(dtype)
    operands = dict(zip(("x", "w", "dy"), (x, w, dy)))
    for name in conv.registry.OPERANDS[pass_name]:
        sprinkle(rng, operands[name], data.draw(st.integers(0, 3), label=f"non-finite {name}"))
    compiled = data.draw(st.booleans(), label="compiled paths on small layers")
    numpy_sums = tuning.CONSTANTS["depthwise_compiled_min_work"].high  # at every size
    limits = (dict(compiled_min_size=0, depthwise_compiled_min_work=0) if compiled
              else dict(depthwise_compiled_min_work=numpy_sums))
    with tuning.override(**limits):
        try:
            with conv.using(algorithm=algorithm):
                result = run_pass(pass_name, x, w, dy, stride, dilation, groups, pads)
        except conv.NotApplicable as refusal:  # only for data it needs finite and is not
            held = {n for n in conv.registry.OPERANDS[pass_name]
                    if not np.isfinite(operands[n]).all()}
            assert conv.registry.needs_finite(algorithm, pass_name, g) & held, refusal
            assert "not finite" in str(refusal)
            result = run_pass(pass_name, x, w, dy, stride, dilation, groups, pads)
    expected = conv_reference(x, w, dy, stride, dilation, groups, pads)
    expected = expected[conv.PASSES.index(pass_name)]
    assert_close(result, expected, dtype, terms=w.size * max(1, dy[0, 0].size), name=pass_name)


# The heuristic's thresholds lowered so that small layers take the algorithms at risk.
EAGER = dict(winograd_min_channels=1, winograd_max_waste=4.0, fft_min_kernel_taps=1,
             fft_max_cost_ratio=100.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@settings(max_examples=25)
@given(data=st.data())
def test_layer_step_matches_pytorch_with_non_finite_values(dtype, data):
    """cnnkit.functional's conv: the heuristic's choices, one finiteness memo for the passes
    of a step (each operand checked at most once), thresholds lowered (``EAGER``)."""
    x_shape, w_shape, stride, dilation, groups, pads = data.draw(
        layers(data.draw(st.sampled_from(["rows", "winograd", "fft", "depthwise"]))))
    padding = tuple(lo for lo, _ in pads)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x, w = (rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape))
    out = conv.output_spatial(tuple(n + 2 * p for n, p in zip(x_shape[2:], padding)),
                              w_shape[2:], stride, dilation)
    assume(min(out) > 0)
    dy = rng.standard_normal(x_shape[:1] + w_shape[:1] + out).astype(dtype)
    for a in (x, w, dy):
        sprinkle(rng, a, data.draw(st.integers(0, 2)))
    b = rng.standard_normal(w_shape[0]).astype(dtype) if data.draw(st.booleans(),
                                                                   label="bias") else None
    xt, wt = cnnkit.tensor(x, requires_grad=True), cnnkit.tensor(w, requires_grad=True)
    bt = None if b is None else cnnkit.tensor(b, requires_grad=True)
    with tuning.override(**EAGER):
        y = getattr(F, f"conv{len(stride)}d")(xt, wt, bt, stride, padding, dilation, groups)
        y.backward(cnnkit.tensor(dy))
    expected = list(conv_reference(x, w, dy, stride, dilation, groups,
                                   [(p, p) for p in padding]))
    actual = [y.data, xt.grad.data, wt.grad.data]
    if b is not None:  # the bias, added in the forward kernel and summed in the weight's
        expected[0] = expected[0] + b.reshape((1, -1) + (1,) * len(stride))
        expected.append(dy.astype(np.float64).sum(axis=(0,) + tuple(range(2, dy.ndim))))
        actual.append(bt.grad.data)
    terms = w.size * max(1, dy[0, 0].size)
    bias_terms = dy.size // dy.shape[1]  # db sums every image and position of its channel
    for name, a, e in zip(("y", "dx", "dw", "db"), actual, expected):
        assert_close(a, e, dtype, terms=bias_terms if name == "db" else terms, name=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@settings(max_examples=15)
@given(data=st.data())
def test_transposed_layer_step_matches_pytorch_with_non_finite_values(dtype, data):
    """conv_transpose2d runs the input-gradient pass forward and the forward pass backward."""
    c = data.draw(st.integers(1, 3))
    groups = data.draw(st.sampled_from([1, c]))
    k, kernel = groups * data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4))
    stride = data.draw(st.integers(1, 2))
    padding = data.draw(st.integers(0, kernel - 1))
    output_padding = data.draw(st.integers(0, stride - 1))
    side = data.draw(st.integers(1, 6))
    assume((side - 1) * stride - 2 * padding + kernel + output_padding > 0)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x = sprinkle(rng, rng.standard_normal((2, c, side, side)), data.draw(st.integers(0, 2)))
    w = sprinkle(rng, rng.standard_normal((c, k // groups, kernel, kernel)),
                 data.draw(st.integers(0, 2)))
    options = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups)
    xt, wt = (cnnkit.tensor(a.astype(dtype), requires_grad=True) for a in (x, w))
    with tuning.override(**EAGER):
        y = F.conv_transpose2d(xt, wt, **options)
        dy = sprinkle(rng, rng.standard_normal(y.shape), data.draw(st.integers(0, 2)))
        y.backward(cnnkit.tensor(dy.astype(dtype)))
    expected = torch_grads(lambda a, b: TF.conv_transpose2d(a, b, **options), (x, w), dy)
    terms = w.size * side * side
    for name, actual, e in zip(("y", "dx", "dw"), (y.data, xt.grad.data, wt.grad.data), expected):
        assert_close(actual, e, dtype, terms=terms, name=name)


def test_row_correlation_keeps_an_inf_in_the_rows_that_read_it():
    """The float32 row correlation pads the kernel plane with zero rows: 0·inf made NaN in
    rows of y that never read the inf."""
    x = np.ones((1, 1, 9, 9), np.float32)
    x[0, 0, 3, 4] = np.inf
    y = F.conv2d(cnnkit.tensor(x), cnnkit.tensor(np.ones((1, 1, 3, 3), np.float32))).data
    np.testing.assert_array_equal(y[0, 0, :2], [[9] * 7, [9, 9, np.inf, np.inf, np.inf, 9, 9]])
    expected = TF.conv2d(torch.tensor(x), torch.ones((1, 1, 3, 3))).numpy()
    assert_close(y, expected, np.float32, terms=9)


def test_signal_direct_float32_puts_nan_in_scipys_rows():
    a = np.ones((9, 9), np.float32)
    a[6, 6] = np.nan
    kernel = np.ones((4, 3), np.float32)
    result = signal.correlate2d(a, kernel, "valid")
    np.testing.assert_array_equal(np.isnan(result).any(axis=1), [False] * 3 + [True] * 3)
    assert_close(result, scipy.signal.correlate2d(a, kernel, "valid"), np.float32, terms=12)


def test_float64_winograd_layer_keeps_inf():
    """A 3×3 stride-1 layer with 16 channels (Winograd's by default) in float64: its
    transforms turned +inf into NaN and made dw all NaN."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 8, 8))
    x[0, 3, 4, 4] = np.inf
    w = np.abs(rng.standard_normal((16, 16, 3, 3)))
    dy = np.ones((2, 16, 8, 8))
    xt, wt = cnnkit.tensor(x, requires_grad=True), cnnkit.tensor(w, requires_grad=True)
    y = F.conv2d(xt, wt, padding=1)
    y.backward(cnnkit.tensor(dy))
    expected = conv_reference(x, w, dy, (1, 1), (1, 1), 1, [(1, 1), (1, 1)])
    assert np.isposinf(y.data).sum() == 16 * 9 and not np.isnan(wt.grad.data).all()
    for name, actual, e in zip(("y", "dx", "dw"), (y.data, xt.grad.data, wt.grad.data), expected):
        assert_close(actual, e, np.float64, terms=16 * 9 * 64, name=name)


def test_forced_winograd_refuses_non_finite_input_by_name():
    x = np.ones((1, 16, 6, 6))
    x[0, 0, 2, 2] = np.nan
    with conv.using(algorithm="winograd"), pytest.raises(conv.NotApplicable,
                                                          match="x not finite"):
        conv.conv_forward(x, np.ones((16, 16, 3, 3)), (1, 1), (1, 1))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("compiled", [False, True])
@settings(max_examples=25)
@given(data=st.data())
def test_pooling_puts_nan_and_inf_where_pytorch_does(dtype, compiled, data):
    n_dims = data.draw(st.integers(1, 3))
    kind = data.draw(st.sampled_from(["max", "avg"]))
    kernel = data.draw(st.integers(1, 3))
    stride = data.draw(st.integers(1, 3))
    padding = data.draw(st.integers(0, kernel // 2))
    ceil_mode = data.draw(st.booleans())
    spatial = tuple(data.draw(st.integers(kernel, 7)) for _ in range(n_dims))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x = sprinkle(rng, rng.standard_normal((2, 2) + spatial).astype(dtype),
                 data.draw(st.integers(0, 6)))
    options = dict(stride=stride, padding=padding, ceil_mode=ceil_mode)
    if kind == "avg":
        options["count_include_pad"] = data.draw(st.booleans())
    name = f"{kind}_pool{n_dims}d"
    with warnings.catch_warnings(), tuning.override(
            compiled_min_size=0 if compiled else 1 << 16,
            pool_compiled_min_size=0 if compiled else 1 << 60):
        warnings.simplefilter("ignore")
        xt = cnnkit.tensor(x, requires_grad=True)
        y = getattr(F, name)(xt, kernel, **options)
        dy = sprinkle(rng, rng.standard_normal(y.shape).astype(dtype), data.draw(st.integers(0, 2)))
        y.backward(cnnkit.tensor(dy))
        expected = torch_grads(lambda t: getattr(TF, name)(t, kernel, **options), (x,), dy)
    assert_close(y.data, expected[0], dtype, terms=kernel ** n_dims, name="y")
    assert_close(xt.grad.data, expected[1], dtype, terms=kernel ** n_dims, name="dx")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("function", ["convolve", "correlate"])
@settings(max_examples=30)
@given(data=st.data())
def test_signal_direct_puts_nan_and_inf_where_scipy_does(dtype, function, data):
    """'direct' and 'auto' (which takes the direct method for non-finite inputs) against
    scipy's direct method, in every mode and for either input the larger."""
    n_dims = data.draw(st.integers(1, 3))
    mode = data.draw(st.sampled_from(["full", "same", "valid"]))
    high = 9 if n_dims < 3 else 4
    shape1 = tuple(data.draw(st.integers(1, high)) for _ in range(n_dims))
    shape2 = tuple(data.draw(st.integers(1, high)) for _ in range(n_dims))
    if mode == "valid":  # one input at least as large as the other in every dim
        shape1, shape2 = tuple(map(max, shape1, shape2)), tuple(map(min, shape1, shape2))
        if data.draw(st.booleans()):
            shape1, shape2 = shape2, shape1
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    a, b = (sprinkle(rng, rng.standard_normal(s).astype(dtype), data.draw(st.integers(0, 2)))
            for s in (shape1, shape2))
    method = data.draw(st.sampled_from(["direct", "auto"]))
    result = getattr(signal, function)(a, b, mode, method=method)
    expected = getattr(scipy.signal, function)(a, b, mode, method="direct")
    assert_close(result, expected, dtype, terms=b.size, name=f"{function} {mode} {method}")


@pytest.mark.parametrize("function", ["convolve2d", "correlate2d"])
@settings(max_examples=20)
@given(data=st.data())
def test_signal_2d_boundaries_put_nan_and_inf_where_scipy_does(function, data):
    mode = data.draw(st.sampled_from(["full", "same", "valid"]))
    boundary = data.draw(st.sampled_from(["fill", "wrap", "symm"]))
    kernel = tuple(data.draw(st.integers(1, 6)) for _ in range(2))
    image = tuple(k + data.draw(st.integers(0, 6)) for k in kernel)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    a, b = (sprinkle(rng, rng.standard_normal(s).astype(np.float32), data.draw(st.integers(0, 2)))
            for s in (image, kernel))
    result = getattr(signal, function)(a, b, mode, boundary)
    expected = getattr(scipy.signal, function)(a, b, mode, boundary)
    assert_close(result, expected, np.float32, terms=b.size, name=f"{mode} {boundary}")


def test_pytorch_float32_batched_drops_the_padding_terms_as_docs_ieee_says():
    """docs/ieee.md: PyTorch's float32 CPU convolution for a batch of two (oneDNN, generating
    code for AVX or newer) gives no NaN where an infinite tap meets the padding; float64 and
    cnnkit (both dtypes) do. With oneDNN on another ISA (capped at SSE4.1 by
    ``ONEDNN_MAX_CPU_ISA``, it gave NaN as well; or another architecture) PyTorch's float32
    result is not asserted."""
    x = np.ones((2, 1, 5, 5), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    w[0, 0, 0, 0] = np.inf
    border_nan = {
        "torch float32": TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy(),
        "torch float64": TF.conv2d(torch.tensor(x, dtype=torch.float64),
                                   torch.tensor(w, dtype=torch.float64), padding=1).numpy(),
        "cnnkit float32": F.conv2d(cnnkit.tensor(x), cnnkit.tensor(w), padding=1).data}
    border_nan = {name: bool(np.isnan(y[:, 0, 0]).all()) for name, y in border_nan.items()}
    expected = {"torch float32": False, "torch float64": True, "cnnkit float32": True}
    if "AVX" not in (onednn_isa() or ""):
        del border_nan["torch float32"], expected["torch float32"]
    assert border_nan == expected


@pytest.mark.parametrize("special", SPECIALS)
def test_all_finite_finds_a_special_value_in_any_block(special):
    a = np.zeros(2 * finite.BLOCK + 3, np.float32)
    assert finite.all_finite(a, np.arange(5), np.zeros((0, 3)))
    for where in (0, finite.BLOCK - 1, finite.BLOCK, a.size - 1):
        b = a.copy()
        b[where] = special
        assert not finite.all_finite(np.zeros(2), b.reshape(-1, 1)[::-1].reshape(-1))


def test_strided_input_gradient_of_few_channels_needs_dy_finite():
    """One product over all phases gives a phase zero weights for the shifts it lacks (here the
    dilated kernel skips cell 1), which meet dy: with a NaN in dy the implicit GEMM is refused
    and the one chosen puts NaN only where the sums do."""
    w = np.ones((1, 1, 2, 1, 1), np.float32)
    dy = np.full((1, 1, 1, 1, 1), np.nan, np.float32)
    args = (w, (3, 1, 1), (1, 1, 2), (2, 1, 1), 1, [(0, 0)] * 3)
    geometry = conv.ConvGeometry.of((1, 1, 3, 1, 1), w.shape, (1, 1, 2), (2, 1, 1), out=(1, 1, 1))
    assert conv.registry.needs_finite("implicit", "input", geometry) == {"w", "dy"}
    with pytest.raises(conv.NotApplicable, match="dy not finite"):
        with conv.using(algorithm="implicit"):
            conv.conv_backward_input(dy, *args)
    np.testing.assert_array_equal(np.isnan(conv.conv_backward_input(dy, *args)).ravel(),
                                  [True, False, True])



@pytest.fixture
def without_fold():
    """The windows' columns folded (``conv.window_fold``) out of the heuristic's reach."""
    from cnnkit.kernels.conv import window_fold
    with tuning.override(implicit_fold_min_gain=window_fold.NEVER):
        yield


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("special", SPECIALS)
def test_strided_input_gradient_of_few_channels_checks_dy_as_it_reads_it(special, per_image,
                                                                         monkeypatch,
                                                                         without_fold):
    """The one product over all phases checks dy itself (per image, as each task pads its
    image of dy; over the batch, as dy is padded), so the dispatcher makes no pass over dy. With an inf or NaN in dy's last image, the product refuses it (``NotFinite``), a
    forced implicit GEMM is refused as the dispatcher's check refused it, and the algorithm
    chosen next puts NaN and ±inf where PyTorch does. (The heuristic folds this layer's
    windows instead, ``conv.window_fold``, which needs nothing finite: here it is kept
    off.)"""
    from cnnkit.kernels.conv import dispatch, implicit, strided_input
    checked = []
    monkeypatch.setattr(dispatch, "all_finite", lambda a: checked.append(a.shape) or
                        finite.all_finite(a))
    rng = np.random.default_rng(17)
    x_shape, w_shape, stride, pads = (8, 3, 30, 30), (16, 3, 7, 7), (4, 4), [(2, 2), (2, 2)]
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
    g = conv.ConvGeometry.of(x_shape[:2] + padded, w_shape, stride, (1, 1), 1, np.float32, pads)
    assert implicit.checks_finite(g, "input") == {"dy"}
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    dy = rng.standard_normal(x_shape[:1] + w_shape[:1] + g.out).astype(np.float32)
    args = (padded, stride, (1, 1), pads)
    expected = conv_reference(x, w, dy, stride, (1, 1), 1, pads)[1]
    dx = strided_input.subpixel(dy, w, *args, per_image=per_image)
    assert_close(dx, expected, np.float32, terms=w.size, name="dx")
    known = {}
    with conv.using(algorithm="implicit"):
        dx = conv.conv_backward_input(dy, w, *args[:3], 1, pads, finite=known)
    assert_close(dx, expected, np.float32, terms=w.size, name="dx")
    assert known["dy"] and w.shape in checked and dy.shape not in checked
    dy[-1, 3, -1, 2] = special
    for limits in ({}, {"compiled_min_size": 0}):  # dy padded by NumPy, or compiled
        with tuning.override(**limits), pytest.raises(finite.NotFinite, match="dy"):
            strided_input.subpixel(dy, w, *args, per_image=per_image)
    with pytest.raises(conv.NotApplicable, match="dy not finite"):
        with conv.using(algorithm="implicit"):
            conv.conv_backward_input(dy, w, *args[:3], 1, pads)
    with tuning.override(implicit_subpixel_min_terms=1):  # the heuristic's choice, too
        assert conv.select(g, "input") == "implicit"
        known = {}
        dx = conv.conv_backward_input(dy, w, *args[:3], 1, pads, finite=known)
    assert known["dy"] is False
    expected = conv_reference(x, w, dy, stride, (1, 1), 1, pads)[1]
    assert_close(dx, expected, np.float32, terms=w.size, name="dx")


# The implicit GEMM's input gradients that need w finite, by the way each lays out w: x, w,
# stride, padding, groups, and an index of w for an inf or NaN that the product would multiply
# by the zeros that pad dy.
W_CHECKED_AS_LAID_OUT = {
    "stride 1, per image": ((8, 16, 9, 9), (24, 16, 3, 3), 1, 1, 1, (5, 7, 0, 2)),
    "stride 1, over the batch": ((2, 16, 9, 9), (24, 16, 3, 3), 1, 1, 1, (23, 0, 2, 2)),
    "stride 1, planar (a pass over w)": ((8, 3, 9, 9), (24, 3, 3, 3), 1, 1, 1, (0, 2, 1, 0)),
    "stride 1, two groups over the batch": ((2, 32, 9, 9), (24, 16, 3, 3), 1, 1, 2,
                                            (20, 15, 2, 1)),
    "stride 1, two groups per image": ((8, 32, 9, 9), (24, 16, 3, 3), 1, 1, 2, (3, 1, 0, 0)),
    "stride 2, a product per phase": ((8, 16, 10, 10), (24, 16, 3, 3), 2, 1, 1, (9, 4, 0, 1)),
    "stride 2, two groups": ((2, 32, 10, 10), (24, 16, 3, 3), 2, 1, 2, (13, 3, 2, 2)),
    "stride 2, 1×1": ((8, 16, 10, 10), (24, 16, 1, 1), 2, 1, 1, (7, 11, 0, 0)),
    # one row of x: the phase of the kernel's rows 0 and 2 has no cells, so those taps are not
    # laid out, and a pass over w tells
    "stride 2, a phase with no cells": ((8, 16, 1, 5), (24, 16, 3, 3), 2, 1, 1, (2, 2, 0, 1)),
}


@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("case", W_CHECKED_AS_LAID_OUT)
def test_implicit_input_gradient_checks_w_as_it_lays_it_out(case, special, monkeypatch):
    """The implicit GEMM's input gradient checks w itself as it lays out its panels, so the
    dispatcher makes no pass over w and the step knows w finite; with an inf or NaN in w it
    refuses w (``NotFinite``) before any product, a forced implicit GEMM is refused as the
    dispatcher's check refused it, and the algorithm chosen next puts NaN and ±inf where
    PyTorch does."""
    from cnnkit.kernels.conv import dispatch, implicit
    checked = []
    monkeypatch.setattr(dispatch, "all_finite", lambda a: checked.append(a.shape) or
                        finite.all_finite(a))
    x_shape, w_shape, stride, pad, groups, special_at = W_CHECKED_AS_LAID_OUT[case]
    strides, pads = (stride, stride), [(pad, pad)] * 2
    padded = tuple(s + 2 * pad for s in x_shape[2:])
    g = conv.ConvGeometry.of(x_shape[:2] + padded, w_shape, strides, (1, 1), groups,
                             np.float32, pads)
    assert conv.select(g, "input") == "implicit" and implicit.checks_finite(g, "input") == {"w"}
    rng = np.random.default_rng(29)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    dy = rng.standard_normal(x_shape[:1] + w_shape[:1] + g.out).astype(np.float32)
    args = (padded, strides, (1, 1), groups, pads)
    known = {}
    dx = conv.conv_backward_input(dy, w, *args, finite=known)
    assert_close(dx, conv_reference(x, w, dy, strides, (1, 1), groups, pads)[1], np.float32,
                 terms=w.size, name="dx")
    assert known == {"w": True} and checked == []
    w[special_at] = special
    with pytest.raises(finite.NotFinite, match="w"):
        implicit.input_pass(dy, w, g)
    with pytest.raises(conv.NotApplicable, match="w not finite"):
        with conv.using(algorithm="implicit"):
            conv.conv_backward_input(dy, w, *args)
    known = {}
    dx = conv.conv_backward_input(dy, w, *args, finite=known)
    assert known["w"] is False
    assert_close(dx, conv_reference(x, w, dy, strides, (1, 1), groups, pads)[1], np.float32,
                 terms=w.size, name="dx")


@pytest.mark.parametrize("pads", [[(0, 0), (0, 0)], [(1, 0), (2, 1)]])
def test_pointwise_input_gradient_takes_w_with_inf_and_nan(pads, monkeypatch):
    """A 1×1 kernel at stride 1 pads nothing of dy (dx = wᵀ dy), so the implicit GEMM needs
    no finite w there (the dispatcher checks nothing) and still puts NaN and ±inf where the
    sums do: channels-last and planar products (24 and 3 outputs), per image and over the
    batch, the input padded or not. At a stride, dy is padded and w must be finite."""
    from cnnkit.kernels.conv import dispatch
    from cnnkit.kernels.conv import implicit
    monkeypatch.setattr(dispatch, "all_finite", lambda a: pytest.fail("an operand checked"))
    rng = np.random.default_rng(13)
    for x_shape, w_shape in (((9, 24, 5, 6), (40, 24, 1, 1)), ((9, 3, 5, 6), (70, 3, 1, 1))):
        padded = tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
        g = conv.ConvGeometry.of(x_shape[:2] + padded, w_shape, (1, 1), (1, 1), 1, np.float32,
                                 pads)
        assert conv.registry.needs_finite("implicit", "input", g) == frozenset()
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = sprinkle(rng, rng.standard_normal(w_shape).astype(np.float32), 6)
        dy = rng.standard_normal(x_shape[:1] + w_shape[:1] + g.out).astype(np.float32)
        expected = conv_reference(x, w, dy, (1, 1), (1, 1), 1, pads)[1]
        with conv.using(algorithm="implicit"):
            dx = run_pass("input", x, w, dy, (1, 1), (1, 1), 1, pads)
        assert_close(dx, expected, np.float32, terms=w_shape[0], name="dx")
        for per_image in (False, True):
            dx = implicit.backward_input(dy, w, padded, (1, 1), pads, per_image=per_image)
            assert_close(dx, expected, np.float32, terms=w_shape[0], name="dx")
    strided = conv.ConvGeometry.of((1, 24, 6, 6), (40, 24, 1, 1), (2, 2), (1, 1))
    assert conv.registry.needs_finite("implicit", "input", strided) == {"w"}


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("algorithm", [None, "gemm"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_layers_are_quiet_whatever_the_error_state(algorithm, dtype):
    """0·inf and inf − inf in the sums make NaN without a warning, as in PyTorch, even under
    ``np.errstate(all="raise")``: gemm's NumPy product warned of them."""
    x = np.ones((1, 1, 5, 5), dtype)
    w = np.ones((1, 1, 3, 3), dtype)
    w[0, 0, 0, 0] = np.inf
    x[0, 0, 4, 4] = -np.inf
    xt, wt = cnnkit.tensor(x, requires_grad=True), cnnkit.tensor(w, requires_grad=True)
    with np.errstate(all="raise"), conv.using(algorithm=algorithm):
        y = F.conv2d(xt, wt, padding=1)
        y.backward(np.ones(y.shape, dtype))
    assert np.isnan(y.data).any() and np.isneginf(wt.grad).any()


@pytest.mark.parametrize("x_shape, w_shape, stride, dilation, pads", [
    ((4, 16, 12, 10), (32, 16, 1, 1), (2, 2), (1, 1), [(0, 0), (0, 0)]),  # per phase
    ((4, 20, 11, 9), (24, 20, 1, 1), (2, 3), (1, 1), [(1, 0), (0, 2)]),   # ... padded
    ((3, 3, 12, 12), (32, 3, 1, 1), (2, 2), (1, 1), [(0, 0), (0, 0)]),    # one product
    ((3, 3, 12, 16), (16, 3, 4, 4), (4, 4), (1, 1), [(0, 0), (2, 2)]),    # patches
    ((3, 4, 13, 13), (16, 4, 2, 2), (3, 3), (2, 2), [(1, 1), (0, 0)]),    # dilated apart
])
def test_strided_input_gradient_with_taps_apart(x_shape, w_shape, stride, dilation, pads):
    """Input gradients whose taps lie apart (a kernel no wider than its stride, phases of
    zeros or not) are the heuristic's implicit GEMM, and match PyTorch's values and its NaN
    and ±inf, with specials in dy and then in w (each re-chosen where the arrangement needs
    that operand finite)."""
    from cnnkit.kernels.conv import strided_input
    rng = np.random.default_rng(23)
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(x_shape[2:], pads))
    g = conv.ConvGeometry.of(x_shape[:2] + padded, w_shape, stride, dilation, 1, np.float32,
                             pads)
    assert strided_input.taps_apart(g) and conv.select(g, "input") == "implicit"
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    dy = rng.standard_normal(x_shape[:1] + w_shape[:1] + g.out).astype(np.float32)
    for special in (None, "dy", "w"):
        dy_s, w_s = dy.copy(), w.copy()
        if special:
            sprinkle(rng, dy_s if special == "dy" else w_s, 3)
        expected = conv_reference(x, w_s, dy_s, stride, dilation, 1, pads)[1]
        dx = conv.conv_backward_input(dy_s, w_s, padded, stride, dilation, 1, pads)
        assert_close(dx, expected, np.float32, terms=w_shape[0], name=f"dx, {special}")


@pytest.mark.parametrize("kernel, stride, dilation, apart", [
    ((1, 1), (2, 2), (1, 1), True), ((2, 3), (2, 3), (1, 1), True),
    ((2, 2), (3, 3), (2, 2), True), ((3,), (2,), (1,), False), ((2, 1), (2, 1), (1, 1), True),
    ((2, 2), (2, 2), (2, 2), False), ((3, 1), (4, 2), (1, 3), True)])
def test_taps_apart_means_no_cell_takes_two_taps(kernel, stride, dilation, apart):
    """``taps_apart`` against counting, over a few positions, the cells q·s + a·d each
    reaches."""
    from cnnkit.kernels.conv import strided_input
    g = conv.ConvGeometry.of((1, 1) + tuple(16 for _ in kernel), (1, 1) + kernel, stride,
                             dilation, 1, np.float32)
    reached = []
    for k, s, d in zip(kernel, stride, dilation):
        cells = [q * s + a * d for q in range(4) for a in range(k)]
        reached.append(len(cells) == len(set(cells)))
    assert all(reached) == apart == strided_input.taps_apart(g)
