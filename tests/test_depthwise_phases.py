"""The compiled depthwise kernels (``kernels/depthwise_numba.py``, on the input's stride phases)
against PyTorch in float64: 1-D and 2-D layers of any stride, dilation, kernel, channel
multiplier and asymmetric padding, maps from 1 × 1 to ragged sizes; then the two places where
the grid's extra columns could reach a result, each with an inf or NaN put where it would:
an input gradient with non-finite weights, and a weight gradient with non-finite inputs.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch_oracle import assert_close

from cnnkit import tuning
from cnnkit.kernels import depthwise_numba

TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d}


@st.composite
def layers(draw):
    dims = draw(st.integers(1, 2))

    def per_axis(values):
        return tuple(draw(st.sampled_from(values)) for _ in range(dims))
    kernel, stride, dilation = per_axis((1, 2, 3, 5)), per_axis((1, 2, 3)), per_axis((1, 2))
    pads = [tuple(draw(st.lists(st.integers(0, 3), min_size=2, max_size=2)))
            for _ in range(dims)]
    spatial = per_axis((1, 2, 5, 7, 14, 17))
    assume(all(s + lo + hi >= d * (k - 1) + 1
               for s, (lo, hi), k, d in zip(spatial, pads, kernel, dilation)))
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 4)), m=draw(st.integers(1, 3)),
                kernel=kernel, stride=stride, dilation=dilation, spatial=spatial, pads=pads)


def torch_passes(x, w, b, dy, layer):
    """y, dx, dw and db of the layer in float64, from x padded first (as the kernels' zeros)."""
    flat = [p for lo_hi in reversed(layer["pads"]) for p in lo_hi]
    xt, wt, bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    yt = TORCH_CONV[x.ndim - 2](TF.pad(xt, flat), wt, bt, layer["stride"], 0,
                                layer["dilation"], x.shape[1])
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    return [t.detach().numpy() for t in (yt, xt.grad, wt.grad, bt.grad)]


def run_passes(x, w, b, dy, layer, dtype):
    """The module's three passes (the unpadded API), in ``dtype``."""
    x, w, b, dy = (a.astype(dtype) for a in (x, w, b, dy))
    args = (layer["pads"], layer["stride"], layer["dilation"])
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], layer["pads"]))
    y = depthwise_numba.forward_unpadded(x, w, *args, dy.shape[2:], b)
    dx = depthwise_numba.backward_input_unpadded(dy, w, x.shape[1], padded, *args)
    dw, db = depthwise_numba.backward_weight_unpadded(x, dy, w.shape[2:], *args, with_bias=True)
    return y, dx, dw, db


def random_layer(layer, rng):
    n, c, m = layer["n"], layer["c"], layer["m"]
    x = rng.standard_normal((n, c) + layer["spatial"])
    w = rng.standard_normal((c * m, 1) + layer["kernel"])
    b = rng.standard_normal(c * m)
    out = tuple((s + lo + hi - d * (k - 1) - 1) // st + 1 for s, (lo, hi), k, d, st in zip(
        layer["spatial"], layer["pads"], layer["kernel"], layer["dilation"], layer["stride"]))
    return x, w, b, rng.standard_normal((n, c * m) + out)


@settings(max_examples=60, deadline=None)
@given(layers(), st.integers(0, 2**32 - 1), st.sampled_from([np.float32, np.float64]))
def test_all_passes_match_torch(layer, seed, dtype):
    x, w, b, dy = random_layer(layer, np.random.default_rng(seed))
    taps = int(np.prod(layer["kernel"]))
    terms = (taps, x.shape[0] * taps * dy[0, 0].size, taps * x.shape[0] * dy[0, 0].size,
             x.shape[0] * dy[0, 0].size)
    for name, ours, theirs, n_terms in zip(("forward", "input", "weight", "bias"),
                                           run_passes(x, w, b, dy, layer, dtype),
                                           torch_passes(x, w, b, dy, layer), terms):
        assert_close(ours, theirs.astype(dtype), dtype, terms=n_terms, name=name)


LAYER_3X3 = dict(n=2, c=3, m=2, kernel=(3, 3), stride=(1, 1), dilation=(1, 1),
                 spatial=(9, 10), pads=[(1, 1), (1, 1)])


@pytest.mark.parametrize("stride", [(1, 1), (2, 2)])
def test_non_finite_weights_reach_only_their_terms_in_the_input_gradient(stride):
    """The grid's extra columns of dy are zeros whose terms 0 · w land on real cells of dx:
    with an inf or NaN among an output channel's weights, that channel adds its real terms
    alone, so dx is NaN or ±inf exactly where PyTorch's is."""
    layer = dict(LAYER_3X3, stride=stride)
    x, w, b, dy = random_layer(layer, np.random.default_rng(7))
    w[1, 0, 0, 0], w[4, 0, 2, 1] = np.inf, np.nan
    expected = torch_passes(x, w, b, dy, layer)[1]
    assert np.isfinite(expected).sum() > 0 and (~np.isfinite(expected)).sum() > 0
    for dtype in (np.float32, np.float64):
        assert_close(run_passes(x, w, b, dy, layer, dtype)[1], expected.astype(dtype), dtype,
                     terms=w.size, name="input")


@pytest.mark.parametrize("stride", [(1, 1), (2, 2)])
def test_non_finite_inputs_stay_out_of_the_weight_gradient_s_extra_columns(stride):
    """Products at the grid's extra columns meet input values no output of theirs reads (the
    row's last columns, the next row's first): an inf in x's first or last column must reach
    only the taps whose real terms hold it, as in PyTorch's sums."""
    layer = dict(LAYER_3X3, stride=stride)
    x, w, b, dy = random_layer(layer, np.random.default_rng(8))
    x[0, 1, 4, 0], x[1, 2, 6, -1], x[1, 0, 3, -2] = np.inf, -np.inf, np.nan
    expected = torch_passes(x, w, b, dy, layer)[2]
    assert np.isfinite(expected).sum() > 0 and (~np.isfinite(expected)).sum() > 0
    for dtype in (np.float32, np.float64):
        assert_close(run_passes(x, w, b, dy, layer, dtype)[2], expected.astype(dtype), dtype,
                     terms=dy[0, 0].size * 2, name="weight")


def test_a_large_map_spans_several_weight_bands():
    """A map whose grid is longer than one accumulator band (``depthwise_weight_band`` floats
    per tap) sums every band into the same accumulator, rows of a ragged last band included."""
    layer = dict(n=2, c=2, m=1, kernel=(5, 3), stride=(2, 1), dilation=(1, 2),
                 spatial=(83, 61), pads=[(2, 1), (2, 2)])
    x, w, b, dy = random_layer(layer, np.random.default_rng(9))
    assert dy.shape[2] * (dy.shape[3] + 4) > 2 * tuning.value("depthwise_weight_band")
    expected = torch_passes(x, w, b, dy, layer)[2]
    for band in (16, tuning.value("depthwise_weight_band"), 1 << 20):  # a row, a few, all
        with tuning.override(depthwise_weight_band=band):
            assert_close(run_passes(x, w, b, dy, layer, np.float64)[2], expected, np.float64,
                         terms=dy[0, 0].size * 2, name="weight")
