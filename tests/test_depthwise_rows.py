"""Depthwise layers on the compiled row correlation (``depthwise_rows``) against PyTorch.

Random 1-, 2- and 3-D depthwise layers (float32, stride 1, dilation 1) with channel
multipliers 1–3, ragged plane sizes and asymmetric padding, including padding wider than the
kernel's reach (where the input gradient takes the crop fallback): forward, the input gradient
inside the padding and of the whole padded input. The forward pass reads the input unpadded,
and padded beforehand, and adds a bias.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given
from hypothesis import strategies as st

from cnnkit import tuning
from cnnkit.kernels import conv as conv_kernels
from cnnkit.kernels.conv import rows as depthwise_rows

TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}


@st.composite
def layers(draw):
    dims = draw(st.integers(1, 3))
    kernel = tuple(draw(st.lists(st.integers(1, 4), min_size=dims, max_size=dims)))
    spatial = tuple(draw(st.lists(st.integers(1, 40 if dims < 3 else 7), min_size=dims,
                                  max_size=dims)))
    pads = [tuple(draw(st.lists(st.integers(0, 4), min_size=2, max_size=2))) for _ in kernel]
    assume(all(s + lo + hi >= k for s, (lo, hi), k in zip(spatial, pads, kernel)))
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 5)), m=draw(st.integers(1, 3)),
                kernel=kernel, spatial=spatial, pads=pads)


@given(layers(), st.integers(0, 2**32 - 1))
def test_all_passes_match_torch(layer, seed):
    rng = np.random.default_rng(seed)
    n, c, m, kernel, pads = layer["n"], layer["c"], layer["m"], layer["kernel"], layer["pads"]
    x = rng.standard_normal((n, c) + layer["spatial"], dtype=np.float32)
    w = rng.standard_normal((c * m, 1) + kernel, dtype=np.float32)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    padded = xp.shape[2:]
    xt, wt = torch.tensor(xp, requires_grad=True), torch.tensor(w)
    yt = TORCH_CONV[len(kernel)](xt, wt, groups=c)
    dy = rng.standard_normal(tuple(yt.shape), dtype=np.float32)
    (dxt,) = torch.autograd.grad(yt, (xt,), torch.tensor(dy))
    inner = (slice(None), slice(None)) + tuple(slice(lo, p - hi)
                                               for p, (lo, hi) in zip(padded, pads))
    b = rng.standard_normal(c * m, dtype=np.float32)
    no_pads = [(0, 0)] * len(kernel)
    out = yt.shape[2:]
    checks = [(depthwise_rows.forward(xp, w, out, no_pads), yt.detach().numpy()),
              (depthwise_rows.forward(x, w, out, pads), yt.detach().numpy()),
              (depthwise_rows.forward(x, w, out, pads, b),
               yt.detach().numpy() + b.reshape((1, -1) + (1,) * len(kernel))),
              (depthwise_rows.backward_input(dy, w, padded, c, pads), dxt.numpy()[inner]),
              (depthwise_rows.backward_input(dy, w, padded, c), dxt.numpy())]
    for ours, theirs in checks:
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_dispatcher_routes_float32_stride_1_depthwise_here(monkeypatch):
    """The forward pass (planned once, ``StencilForward``) and the input gradient, each on the
    stencil, and nothing else."""
    calls = []
    real = depthwise_rows.backward_input
    monkeypatch.setattr(depthwise_rows, "backward_input",
                        lambda *a, **k: calls.append("backward_input") or real(*a, **k))
    stencil = depthwise_rows.Stencil.__call__
    monkeypatch.setattr(depthwise_rows.Stencil, "__call__",
                        lambda *a, **k: calls.append("stencil") or stencil(*a, **k))
    x = np.ones((2, 4, 9, 9), np.float32)
    w = np.ones((4, 1, 3, 3), np.float32)
    y = conv_kernels.conv_forward(x, w, (1, 1), (1, 1), groups=4, pads=[(1, 1), (1, 1)])
    conv_kernels.conv_backward_input(y, w, (11, 11), (1, 1), (1, 1), groups=4,
                                     pads=[(1, 1), (1, 1)])
    conv_kernels.conv_forward(x, w, (2, 2), (1, 1), groups=4)  # stride 2: not this path
    conv_kernels.conv_forward(x.astype(np.float64), w, (1, 1), (1, 1), groups=4)  # float64
    assert calls == ["stencil", "backward_input", "stencil"]


def test_bands_holding_inf_or_nan_are_summed_literally():
    """One 40×40 plane is split into bands of rows (one per task); the bands that hold inf or
    NaN are computed by the literal sums and the others by the micro-kernel, in one pass: the
    result has NaN and inf exactly where PyTorch's float64 sums put them, padding included."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 40, 40)).astype(np.float32)
    x[0, 0, 3, 7], x[0, 0, 21, 0] = np.inf, np.nan
    w = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((1, 1, 40, 40)).astype(np.float32)
    dy[0, 0, 30, 39] = -np.inf
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = TF.conv2d(TF.pad(xt, (1, 1, 1, 1)), torch.tensor(w, dtype=torch.float64))
    (dxt,) = torch.autograd.grad(yt, (xt,), torch.tensor(dy, dtype=torch.float64))
    with np.errstate(invalid="ignore"):
        y = depthwise_rows.forward(x, w, (40, 40), [(1, 1), (1, 1)])
        dx = depthwise_rows.backward_input(dy, w, (42, 42), 1, [(1, 1), (1, 1)])
    for ours, theirs in ((y, yt.detach().numpy()), (dx, dxt.numpy())):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs))
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    assert np.isnan(y).any() and np.isinf(y).any() and np.isinf(dx).any()
    w[0, 0, 0, 0] = np.inf  # an infinite tap: padding · inf is NaN in the forward pass only
    with np.errstate(invalid="ignore"):
        y = depthwise_rows.forward(np.ones_like(x), w, (40, 40), [(1, 1), (1, 1)])
        dx = depthwise_rows.backward_input(np.ones_like(dy), w, (42, 42), 1, [(1, 1), (1, 1)])
    assert np.isnan(y[0, 0, 0]).all() and np.isnan(y[0, 0, :, 0]).all()
    assert np.isposinf(y[0, 0, 1:, 1:]).all() and not np.isnan(dx).any()


# the stencil tests' maps, per dims: ragged planes, and a volume whose depth is ragged too
STENCIL_SPATIAL = {2: (6, 11), 3: (5, 6, 11)}
# padding per dim: none, one, asymmetric up to 2; a volume's depth padded by 1, 0 and (0, 2)
STENCIL_PADS = [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((2, 0), (0, 2)), ((2, 2), (1, 0))]
STENCIL_DEPTH_PADS = [(0, 0), (1, 1), (0, 2), (1, 0)]


def _stencil_pads(dims, index):
    pads = STENCIL_PADS[index]
    return pads if dims == 2 else (STENCIL_DEPTH_PADS[index],) + pads


def _torch_pad(pads):
    """TF.pad's flat (lo, hi) pairs, last dim first."""
    return tuple(p for pair in reversed(pads) for p in pair)


@pytest.mark.parametrize("dims,flat", [(2, None), (3, False), (3, True)])
@pytest.mark.parametrize("pads_index", range(len(STENCIL_PADS)))
@pytest.mark.parametrize("multiplier,with_bias", [(1, True), (3, False)])
@pytest.mark.parametrize("runs_per_thread", [1, 8])
def test_3x3_stencil_matches_torch_nonfinite_included(dims, flat, pads_index, multiplier,
                                                       with_bias, runs_per_thread, monkeypatch):
    """A 3 × 3 forward pass runs as one stencil per plane (``depthwise3x3_numba``), a
    3 × 3 × 3 one as three per output plane (``forward_volume``, row by row and over flat
    planes): its values, and its NaN and inf where PyTorch's float64 sums over the
    zero-padded input put them (padding · an infinite tap is NaN), for asymmetric padding
    wider than one cell, channel multipliers and ragged planes; with one run per thread,
    each run pads several planes (volumes) in turn into the same buffer."""
    if flat is not None:
        monkeypatch.setattr(depthwise_rows.depthwise3x3, "flat_planes", lambda cols: flat)
    rng = np.random.default_rng(multiplier + dims)
    c, spatial, pads = 3, STENCIL_SPATIAL[dims], _stencil_pads(dims, pads_index)
    x = rng.standard_normal((2, c) + spatial).astype(np.float32)
    x[(0, 1) + (2,) * (dims - 2) + (2, 5)] = np.inf
    x[(1, 2) + (1,) * (dims - 2) + (5, 0)] = np.nan
    x[(1, 0) + (4,) * (dims - 2) + (0, 10)] = -np.inf
    w = rng.standard_normal((c * multiplier, 1) + (3,) * dims).astype(np.float32)
    w[(-1, 0) + (2,) * (dims - 1) + (1,)] = np.inf
    bias = rng.standard_normal(c * multiplier).astype(np.float32) if with_bias else None
    xt = TF.pad(torch.tensor(x, dtype=torch.float64), _torch_pad(pads))
    expected = TORCH_CONV[dims](xt, torch.tensor(w, dtype=torch.float64),
                                None if bias is None else torch.tensor(bias, dtype=torch.float64),
                                groups=c).numpy()
    out = tuple(s + lo + hi - 2 for s, (lo, hi) in zip(spatial, pads))
    with np.errstate(invalid="ignore"), tuning.override(
            depthwise_runs_per_thread=runs_per_thread):
        y = depthwise_rows.forward(x, w, out, pads, bias)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(y), np.isneginf(expected))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    assert np.isnan(y).any()


def test_3x3_stencil_splits_a_plane_s_output_channels():
    """One image of one channel for 32 output channels (vgg_small's first layer on one
    image): the plane's output channels are split into several tasks, each padding the plane
    itself; every channel comes out as PyTorch's, bias included."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 1, 28, 28)).astype(np.float32)
    w = rng.standard_normal((32, 1, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(32).astype(np.float32)
    y = depthwise_rows.forward(x, w, (28, 28), [(1, 1), (1, 1)], bias)
    expected = TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(bias), padding=1)
    np.testing.assert_allclose(y, expected.numpy(), rtol=1e-5, atol=1e-5)


def _spy_on_stencils(monkeypatch):
    """A list that gets an entry for each call of either stencil."""
    calls = []
    for name in ("forward", "forward_volume"):
        stencil = getattr(depthwise_rows.depthwise3x3, name)
        monkeypatch.setattr(depthwise_rows.depthwise3x3, name,
                            lambda *args, stencil=stencil: calls.append(1) or stencil(*args))
    return calls


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("pads_index", list(range(len(STENCIL_PADS))) + [None])
def test_3x3_input_gradient_on_the_stencil_matches_torch(dims, pads_index, monkeypatch):
    """A 3 × 3 (3 × 3 × 3) layer of one output channel per input channel, padded by at most
    2, takes its input gradient on the forward pass's stencil (dy read with the flipped
    kernel): the gradient inside the padding and, without ``pads``, of the whole padded
    input, as PyTorch's float64 one, inf and NaN of dy where PyTorch puts them."""
    calls = _spy_on_stencils(monkeypatch)
    rng = np.random.default_rng(7 + dims)
    c, spatial = 3, STENCIL_SPATIAL[dims]
    pads = None if pads_index is None else _stencil_pads(dims, pads_index)
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, pads or ((0, 0),) * dims))
    w = rng.standard_normal((c, 1) + (3,) * dims).astype(np.float32)
    dy = rng.standard_normal((2, c) + tuple(p - 2 for p in padded)).astype(np.float32)
    dy[(0, 1) + (1,) * (dims - 2) + (2, 5)] = np.inf
    dy[(1, 2) + (0,) * (dims - 2) + (3, 0)] = np.nan
    dy[(1, 0) + (2,) * (dims - 2) + (0, 3)] = -np.inf
    xt = torch.zeros((2, c) + padded, dtype=torch.float64, requires_grad=True)
    yt = TORCH_CONV[dims](xt, torch.tensor(w, dtype=torch.float64), groups=c)
    (dxt,) = torch.autograd.grad(yt, (xt,), torch.tensor(dy, dtype=torch.float64))
    inner = tuple(slice(lo, p - hi) for p, (lo, hi) in zip(padded, pads or ((0, 0),) * dims))
    expected = dxt.numpy()[(slice(None), slice(None)) + inner]
    with np.errstate(invalid="ignore"):
        dx = depthwise_rows.backward_input(dy, w, padded, c, pads)
    assert calls and dx.shape == expected.shape
    for same in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(same(dx), same(expected))
    np.testing.assert_allclose(dx, expected, rtol=1e-5, atol=1e-5)
    assert np.isnan(dx).any() and np.isinf(dx).any()


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("case", ["infinite tap", "NaN tap", "two outputs per channel",
                                  "padding of 3"])
def test_3x3_input_gradient_leaves_the_stencil_where_it_differs(dims, case, monkeypatch):
    """The stencil adds terms of its zero border, 0 · w, that the input gradient does not
    have: with an inf or NaN in w the row correlation runs instead (no NaN from the padding).
    So does a layer whose input channels feed several outputs (dx[c] sums m planes of dy)
    and one padded by more than 2 (dy does not fit the stencil's border)."""
    calls = _spy_on_stencils(monkeypatch)
    rng = np.random.default_rng(8 + dims)
    c, m = 2, 2 if case == "two outputs per channel" else 1
    pad = 3 if case == "padding of 3" else 1
    pads = ((pad, pad),) * dims
    padded = tuple(s + 2 * pad for s in (6, 9, 7)[3 - dims:])
    w = rng.standard_normal((c * m, 1) + (3,) * dims).astype(np.float32)
    if case == "infinite tap":
        w[(1, 0) + (0,) * (dims - 1) + (2,)] = np.inf
    if case == "NaN tap":
        w[(0, 0) + (1,) * dims] = np.nan
    dy = rng.standard_normal((2, c * m) + tuple(p - 2 for p in padded)).astype(np.float32)
    xt = torch.zeros((2, c) + padded, dtype=torch.float64, requires_grad=True)
    yt = TORCH_CONV[dims](xt, torch.tensor(w, dtype=torch.float64), groups=c)
    (dxt,) = torch.autograd.grad(yt, (xt,), torch.tensor(dy, dtype=torch.float64))
    expected = dxt.numpy()[(slice(None), slice(None)) + (slice(pad, -pad),) * dims]
    with np.errstate(invalid="ignore"):
        dx = depthwise_rows.backward_input(dy, w, padded, c, pads)
    assert not calls
    if case == "infinite tap":  # w's inf reaches cells as ±inf, and no cell is NaN
        assert np.isinf(dx[:, 1]).any() and not np.isnan(dx).any()
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(dx[finite], expected[finite], rtol=1e-5, atol=1e-5)


def test_volume_stencil_runs_short_rows_flat():
    """``flat_planes``: rows that leave a fifth of their columns or more past their last
    whole vector of ``REMAINDER_LANES`` run flat, whole vectors' rows row by row."""
    flat = depthwise_rows.depthwise3x3.flat_planes
    assert all(flat(cols) for cols in (1, 4, 7, 10, 12, 14, 22))
    assert not any(flat(cols) for cols in (8, 9, 16, 18, 24, 32, 36, 64))


@pytest.mark.parametrize("pads,multiplier,images", [
    (((1, 1), (1, 1), (1, 1)), 1, 2), (((0, 2), (1, 0), (2, 2)), 2, 3),
    (((0, 0), (0, 0), (0, 0)), 3, 1), (((1, 1), (2, 1), (0, 1)), 1, 9),
    (((3, 0), (0, 3), (3, 4)), 1, 2)])
@pytest.mark.parametrize("nonfinite_dy", [False, True])
def test_volume_weight_gradient_matches_torch(pads, multiplier, images, nonfinite_dy):
    """A 3 × 3 × 3 depthwise layer's weight gradient on the volume stencil
    (``weight_volume``): as PyTorch's float64 one, for asymmetric padding, channel
    multipliers, images split into chunks per output channel (9 images) or not, and dy's inf
    and NaN where PyTorch's sums (over zero-padded x) put them."""
    rng = np.random.default_rng(images + multiplier)
    c, spatial = 3, (4, 6, 11)
    x = rng.standard_normal((images, c) + spatial).astype(np.float32)
    out = tuple(s + lo + hi - 2 for s, (lo, hi) in zip(spatial, pads))
    dy = rng.standard_normal((images, c * multiplier) + out).astype(np.float32)
    if nonfinite_dy:
        dy[0, 0, 0, 0, 0], dy[-1, -1, -1, -1, -1] = np.inf, np.nan
    xt = TF.pad(torch.tensor(x, dtype=torch.float64), _torch_pad(pads))
    wt = torch.zeros((c * multiplier, 1, 3, 3, 3), dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(TF.conv3d(xt, wt, groups=c), (wt,),
                                      torch.tensor(dy, dtype=torch.float64))
    expected = expected.numpy()
    with np.errstate(invalid="ignore"):
        dw = depthwise_rows.weight_volume(x, dy, pads)
    assert dw.shape == expected.shape and dw.dtype == np.float32
    for same in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(same(dw), same(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(dw[finite], expected[finite], rtol=1e-4, atol=1e-4)
    assert np.isnan(dw).any() == nonfinite_dy


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_volume_weight_gradient_refuses_a_nonfinite_input(bad):
    """The zero cells that pad dy's rows meet x's own values (0 · x): for an x that holds an
    inf or NaN the volume stencil raises ``NotFinite("x")``, and the dispatcher runs the weight
    gradient on another algorithm, whose NaN and inf are PyTorch's."""
    from cnnkit.kernels.finite import NotFinite
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 3, 4, 5)).astype(np.float32)
    x[1, 0, 2, 3, 4] = bad
    dy = rng.standard_normal((2, 2, 3, 4, 5)).astype(np.float32)
    pads = ((1, 1),) * 3
    g = conv_kernels.ConvGeometry.of((2, 2, 5, 6, 7), (2, 1, 3, 3, 3), (1, 1, 1), (1, 1, 1), 2,
                                     np.float32, pads)
    assert conv_kernels.select(g, "weight") == "rows"  # for finite operands
    with pytest.raises(NotFinite) as raised:
        depthwise_rows.weight_volume(x, dy, pads)
    assert raised.value.operand == "x"
    xt = TF.pad(torch.tensor(x, dtype=torch.float64), _torch_pad(pads))
    wt = torch.zeros((2, 1, 3, 3, 3), dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(TF.conv3d(xt, wt, groups=2), (wt,),
                                      torch.tensor(dy, dtype=torch.float64))
    with np.errstate(invalid="ignore"):
        dw = conv_kernels.conv_backward_weight(x, dy, (3, 3, 3), (1, 1, 1), (1, 1, 1), groups=2,
                                               pads=pads)
    for same in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(same(dw), same(expected.numpy()))
    assert not np.isfinite(dw).all()


def test_dispatcher_takes_3x3x3_weight_gradients_to_the_volume_stencil():
    """The heuristic picks the volume stencil for a 3 × 3 × 3 depthwise weight gradient of up
    to ``depthwise_volume_weight_max_multiplier`` outputs per input channel, not for more
    outputs or other kernels (``rows.takes_volume_weight``)."""
    def pick(kernel, multiplier=1):
        g = conv_kernels.ConvGeometry.of((8, 48, 10, 18, 18), (48 * multiplier, 1) + kernel,
                                         (1, 1, 1), (1, 1, 1), 48, np.float32, ((1, 1),) * 3)
        return conv_kernels.select(g, "weight")
    most = tuning.value("depthwise_volume_weight_max_multiplier")
    assert pick((3, 3, 3)) == pick((3, 3, 3), most) == "rows"
    assert pick((3, 3, 3), most + 1) != "rows"
    assert pick((3, 3, 1)) != "rows" and pick((5, 5, 5)) != "rows"


@pytest.mark.parametrize("case", ["dy short of the output", "no output channels",
                                  "groups of two channels", "2-D"])
def test_volume_weight_gradient_only_where_it_computes(case):
    """The stencil's weight pass is not claimed where its buffers, sized by dy, would not
    hold x (dy shorter than the padded input's output), nor without output channels, nor for
    groups of more than one channel or other dims; nor does it need x finite there."""
    x_shape, w_shape, groups, out = (2, 4, 5, 6, 7), (4, 1, 3, 3, 3), 4, None
    if case == "dy short of the output":
        out = (2, 4, 5)
    if case == "no output channels":
        w_shape = (0, 1, 3, 3, 3)
    if case == "groups of two channels":
        w_shape, groups = (4, 2, 3, 3, 3), 2
    if case == "2-D":
        x_shape, w_shape = (2, 4, 6, 7), (4, 1, 3, 3)
    g = conv_kernels.ConvGeometry.of(x_shape, w_shape, (1,) * (len(x_shape) - 2),
                                     (1,) * (len(x_shape) - 2), groups, np.float32, out=out)
    assert not depthwise_rows.applies(g, "weight")
    assert depthwise_rows.needs_finite(g, "weight") == frozenset()


def test_autotune_times_the_volume_stencil_s_weight_pass():
    """Autotune runs every applicable algorithm's pass on the padded input, the stencil's
    weight pass (``rows.weight_pass``) among them, and its pick matches PyTorch's gradient."""
    from cnnkit.kernels.conv import autotune
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    pads = ((1, 1),) * 3
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    np.testing.assert_allclose(
        depthwise_rows.weight_pass(xp, dy, None), depthwise_rows.weight_volume(x, dy, pads),
        rtol=1e-6, atol=1e-6)
    w = rng.standard_normal((3, 1, 3, 3, 3)).astype(np.float32)
    autotune.clear()
    with conv_kernels.using(autotune=True):
        conv_kernels.conv_forward(x, w, (1, 1, 1), (1, 1, 1), groups=3, pads=pads)
        dw = conv_kernels.conv_backward_weight(x, dy, (3, 3, 3), (1, 1, 1), (1, 1, 1),
                                               groups=3, pads=pads)
    assert any(g.kernel == (3, 3, 3) and "weight" in choice
               for g, choice in autotune.measured().items())
    autotune.clear()
    xt = TF.pad(torch.tensor(x, dtype=torch.float64), _torch_pad(pads))
    wt = torch.zeros((3, 1, 3, 3, 3), dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(TF.conv3d(xt, wt, groups=3), (wt,),
                                      torch.tensor(dy, dtype=torch.float64))
    np.testing.assert_allclose(dw, expected.numpy(), rtol=1e-4, atol=1e-4)
