"""Weight gradients with the output channels on the tile's rows and the input's channels at
the kernel's columns on its lanes (``kernels/weight_rows_numba.py``,
``implicit.weight_by_channel_rows``)."""
from unittest import mock

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit import functional as F
from cnnkit import tuning
from cnnkit.kernels import implicit_gemm_numba
from cnnkit.kernels.conv import implicit

TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}


@st.composite
def weight_layers(draw):
    dims = draw(st.integers(1, 3))
    kernel = tuple(draw(st.lists(st.integers(1, 4), min_size=dims - 1, max_size=dims - 1))) + \
        (draw(st.integers(2, 5)),)
    dilation = tuple(draw(st.lists(st.integers(1, 2), min_size=dims - 1,
                                   max_size=dims - 1))) + (1,)
    stride = tuple(draw(st.lists(st.integers(1, 3), min_size=dims, max_size=dims)))
    padded = tuple(draw(st.lists(st.integers(1, 12 if dims < 3 else 6), min_size=dims,
                                 max_size=dims)))
    assume(all(p >= d * (k - 1) + 1 for p, k, d in zip(padded, kernel, dilation)))
    return dict(n=draw(st.integers(1, 5)), c=draw(st.integers(1, 20)),
                k=draw(st.integers(1, 17)), kernel=kernel, dilation=dilation, stride=stride,
                padded=padded)


def _torch_gradients(xp, w_shape, dy, stride, dilation):
    """(dL/dw, dL/db) of conv(xp) by PyTorch."""
    w = torch.zeros(w_shape, requires_grad=True)
    b = torch.zeros(w_shape[0], requires_grad=True)
    y = TORCH_CONV[xp.ndim - 2](torch.tensor(xp), w, b, stride=stride, dilation=dilation)
    y.backward(torch.tensor(dy))
    return w.grad.numpy(), b.grad.numpy()


def _data(layer, seed):
    rng = np.random.default_rng(seed)
    xp = rng.standard_normal((layer["n"], layer["c"]) + layer["padded"], dtype=np.float32)
    out = tuple((p - d * (k - 1) - 1) // s + 1 for p, k, s, d in
                zip(layer["padded"], layer["kernel"], layer["stride"], layer["dilation"]))
    dy = rng.standard_normal((layer["n"], layer["k"]) + out, dtype=np.float32)
    return xp, dy


@settings(max_examples=80, deadline=None)
@given(layer=weight_layers(), seed=st.integers(0, 2**16))
def test_channel_rows_match_torch(layer, seed):
    """dL/dw and dL/db as PyTorch's, in 1 to 3 dims, with stride, dilation off the rows, and
    channel counts that leave rows and lanes of the tiles unused."""
    xp, dy = _data(layer, seed)
    n, k = dy.shape[:2]
    kernel, stride, dilation = layer["kernel"], layer["stride"], layer["dilation"]
    dw, db = implicit._weight_by_channel_rows(xp, dy.reshape(n, k, -1), kernel, stride,
                                              dilation, True)
    theirs_w, theirs_b = _torch_gradients(xp, (k, xp.shape[1]) + kernel, dy, stride, dilation)
    scale = np.sqrt(dy[:, 0].size)
    np.testing.assert_allclose(dw, theirs_w, rtol=2e-5, atol=2e-5 * scale)
    np.testing.assert_allclose(db, theirs_b, rtol=1e-6, atol=1e-5)
    alone = implicit._weight_by_channel_rows(xp, dy.reshape(n, k, -1), kernel, stride,
                                             dilation, False)
    np.testing.assert_array_equal(alone, dw)


@pytest.mark.parametrize("c, padded, kernel", [(16, (9, 19), (3, 3)), (9, (3, 4, 11), (2, 2, 3)),
                                               (24, (40,), (5,)), (8, (2, 6, 8), (1, 3, 2))])
def test_channels_laid_out_in_8_by_8_blocks_and_their_edges(c, padded, kernel):
    """The input laid out channels-last by 8 × 8 transposes (8 channels by 8 columns) and the
    edges one by one, in 1 to 3 dims: PyTorch's gradients."""
    layer = dict(n=3, c=c, k=5, kernel=kernel, dilation=(1,) * len(kernel),
                 stride=(1,) * len(kernel), padded=padded)
    xp, dy = _data(layer, 4)
    dw, db = implicit._weight_by_channel_rows(xp, dy.reshape(3, 5, -1), kernel,
                                              layer["stride"], layer["dilation"], True)
    theirs_w, theirs_b = _torch_gradients(xp, (5, c) + kernel, dy, layer["stride"],
                                          layer["dilation"])
    np.testing.assert_allclose(dw, theirs_w, rtol=2e-5, atol=2e-5 * np.sqrt(dy[:, 0].size))
    np.testing.assert_allclose(db, theirs_b, rtol=1e-6, atol=1e-5)


def test_the_threads_do_not_change_the_floats():
    """Each share of the images is summed by one task, the shares fixed by the shapes: one
    thread and all give the same bits."""
    layer = dict(n=9, c=16, k=12, kernel=(3, 3), dilation=(1, 1), stride=(1, 1),
                 padded=(14, 13))
    xp, dy = _data(layer, 1)
    planes = dy.reshape(9, 12, -1)
    both = implicit._weight_by_channel_rows(xp, planes, (3, 3), (1, 1), (1, 1), True)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = implicit._weight_by_channel_rows(xp, planes, (3, 3), (1, 1), (1, 1), True)
    finally:
        numba.set_num_threads(threads)
    for ours, theirs in zip(both, one):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy's sum of the shares
def test_non_finite_inputs_land_where_torch_puts_them():
    """inf and NaN in x or dy reach the weights whose sums meet them, as in PyTorch."""
    layer = dict(n=4, c=5, k=6, kernel=(3, 3), dilation=(1, 1), stride=(1, 1),
                 padded=(10, 10))
    xp, dy = _data(layer, 2)
    xp[1, 2, 4, 4], xp[3, 0, 0, 9] = np.inf, np.nan
    dy[2, 5, 3, 3] = -np.inf
    dw, db = implicit._weight_by_channel_rows(xp, dy.reshape(4, 6, -1), (3, 3), (1, 1), (1, 1),
                                              True)
    theirs_w, theirs_b = _torch_gradients(xp, (6, 5, 3, 3), dy, (1, 1), (1, 1))
    for ours, theirs in ((dw, theirs_w), (db, theirs_b)):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
        finite = np.isfinite(theirs)
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-4, atol=1e-3)


def test_rule_takes_narrow_layers_on_maps_large_enough():
    """A vector of output channels or fewer, a kernel wider than a column with dilation 1
    along the rows, at most three vectors of columns, enough positions per image, and rows
    and lanes used at least as fully as the channels-last tile's."""
    lanes = implicit_gemm_numba.LANES
    least = tuning.value("implicit_weight_channel_rows_min_positions")
    rule = implicit.weight_by_channel_rows
    assert rule(lanes // 2, lanes, (3, 3), (1, 1), least)  # channels-last idles half its lanes
    assert not rule(lanes // 2, lanes, (3, 3), (1, 1), least - 1)
    assert not rule(lanes // 2, lanes, (3, 1), (1, 1), least)     # one column
    assert not rule(lanes // 2, lanes, (3, 3), (1, 2), least)     # dilated along the rows
    assert not rule(2 * lanes, lanes, (3, 3), (1, 1), least)      # two vectors of outputs
    widest = tuning.value("implicit_weight_channel_rows_max_columns")  # kw·C columns
    assert not rule(lanes // 2, widest // 3 + 1, (3, 3), (1, 1), least)
    # one input channel: 3 of a vector's lanes, against every lane of the channels-last tile
    assert not rule(lanes, 1, (3, 3), (1, 1), least)
    with tuning.override(implicit_weight_channel_rows_min_positions=1 << 30):
        assert not rule(lanes // 2, lanes, (3, 3), (1, 1), least)


def test_a_training_step_of_a_narrow_layer_takes_channel_rows():
    """F.conv2d's weight gradient of a layer the rule takes runs there (the padded input the
    forward pass kept is what it reads) and gives PyTorch's gradients."""
    lanes = implicit_gemm_numba.LANES
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, lanes, 16, 16), dtype=np.float32)
    w = rng.standard_normal((lanes // 2, lanes, 3, 3), dtype=np.float32)
    b = rng.standard_normal(lanes // 2, dtype=np.float32)
    xc, wc, bc = (cnnkit.tensor(a, requires_grad=True) for a in (x, w, b))
    calls = []
    real = implicit._weight_by_channel_rows

    def recording(xp, *args):
        calls.append(xp.shape)
        return real(xp, *args)
    with mock.patch.object(implicit, "_weight_by_channel_rows", recording):
        y = F.conv2d(xc, wc, bc, padding=1)
        g = rng.standard_normal(y.shape, dtype=np.float32)
        y.backward(g)
    assert calls == [(8, lanes, 18, 18)]
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    TF.conv2d(xt, wt, bt, padding=1).backward(torch.tensor(g))
    for ours, theirs in ((xc.grad, xt.grad), (wc.grad, wt.grad), (bc.grad, bt.grad)):
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-4, atol=1e-3)
