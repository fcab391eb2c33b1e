"""The planar implicit GEMM with one task per image (``kernels/planar_images_numba.py``):
each task pads its image, runs the channels-first tiles on it and crops its grid into y."""
from unittest import mock

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from poisoned import poisoned_empty

import cnnkit
from cnnkit import functional as F
from cnnkit.kernels import conv as conv_kernels
from cnnkit.kernels.conv import implicit, padded_input

TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}


@st.composite
def planar_layers(draw):
    dims = draw(st.integers(1, 3))
    kernel = tuple(draw(st.lists(st.integers(1, 4), min_size=dims, max_size=dims)))
    dilation = tuple(draw(st.lists(st.integers(1, 2), min_size=dims, max_size=dims)))
    pads = tuple(tuple(draw(st.lists(st.integers(0, 3), min_size=2, max_size=2)))
                 for _ in range(dims))
    spatial = tuple(draw(st.lists(st.integers(1, 12 if dims < 3 else 5), min_size=dims,
                                  max_size=dims)))
    padded = [s + lo + hi for s, (lo, hi) in zip(spatial, pads)]
    assume(all(p >= d * (k - 1) + 1 for p, k, d in zip(padded, kernel, dilation)))
    return dict(n=draw(st.integers(1, 5)), c=draw(st.integers(1, 12)),
                k=draw(st.integers(1, 21)), kernel=kernel, dilation=dilation, pads=pads,
                spatial=spatial, bias=draw(st.booleans()), keep=draw(st.booleans()))


def _layer(layer, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((layer["n"], layer["c"]) + layer["spatial"], dtype=np.float32)
    w = rng.standard_normal((layer["k"], layer["c"]) + layer["kernel"], dtype=np.float32)
    b = rng.standard_normal(layer["k"], dtype=np.float32) if layer["bias"] else None
    return x, w, b


def _out(padded, kernel, dilation):
    return tuple(p - d * (k - 1) for p, k, d in zip(padded, kernel, dilation))


def _slack_copy(xp):
    """A flat buffer for the padded input with the planar tiles' slack past it."""
    return np.full(xp.size + implicit._planar_slack(), np.nan, np.float32)


@settings(max_examples=80, deadline=None)
@given(layer=planar_layers(), seed=st.integers(0, 2**16))
def test_planar_images_match_torch_and_the_batch_product(layer, seed):
    """PyTorch's values, and the same floats as the planar product over the whole batch
    (the taps summed in the same blocks, in the same order), bias included; the padded
    input, when kept, is NumPy's pad."""
    x, w, b = _layer(layer, seed)
    pads, dilation, kernel = layer["pads"], layer["dilation"], layer["kernel"]
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    out = _out(xp.shape[2:], kernel, dilation)
    keep = _slack_copy(xp) if layer["keep"] and any(lo or hi for lo, hi in pads) else None
    y = implicit.planar_images(x, pads, w, dilation, out, b, keep)
    expected = implicit._forward_planar(xp, w, dilation, out, bias=b)
    np.testing.assert_array_equal(y, expected)
    theirs = TORCH_CONV[len(kernel)](torch.tensor(xp), torch.tensor(w),
                                     None if b is None else torch.tensor(b),
                                     dilation=dilation).numpy()
    np.testing.assert_allclose(y, theirs, rtol=2e-5, atol=2e-5 * np.sqrt(w[0].size))
    if keep is not None:
        np.testing.assert_array_equal(keep[:xp.size].reshape(xp.shape), xp)
    # an input padded already is read in place (its last image through a copy)
    np.testing.assert_array_equal(implicit.planar_images(xp, None, w, dilation, out, b), y)


@pytest.mark.parametrize("shape, w_shape, pads", [
    ((9, 3, 11, 13), (5, 3, 3, 3), ((1, 1), (1, 1))),     # strips ragged, K not a tile's rows
    ((8, 2, 30), (7, 2, 5), ((2, 2),)),
    ((8, 2, 4, 5, 6), (3, 2, 3, 3, 3), ((1, 0), (0, 1), (2, 1)))])
def test_every_cell_is_written_and_the_threads_do_not_change_the_floats(shape, w_shape, pads):
    """No cell of y is left unwritten (np.empty poisoned with NaN); one thread and all give
    the same floats (each image's sums are one task's)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    dims = len(pads)
    out = _out(tuple(s + lo + hi for s, (lo, hi) in zip(shape[2:], pads)), w_shape[2:],
               (1,) * dims)
    y = implicit.planar_images(x, pads, w, (1,) * dims, out)  # compiled before np.empty's patch
    with mock.patch.object(implicit.np, "empty", poisoned_empty):
        np.testing.assert_array_equal(implicit.planar_images(x, pads, w, (1,) * dims, out), y)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = implicit.planar_images(x, pads, w, (1,) * dims, out)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(one, y)
    assert np.isfinite(y).all()


def test_non_finite_inputs_land_where_torch_puts_them():
    """inf and NaN in x reach the outputs whose windows hold them, as in PyTorch (the
    padding's zeros meet finite weights only)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 3, 10, 10), dtype=np.float32)
    x[1, 0, 0, 0], x[4, 2, 5, 6], x[7, 1, 9, 9] = np.inf, np.nan, -np.inf
    w = rng.standard_normal((6, 3, 3, 3), dtype=np.float32)
    pads = ((1, 1), (1, 1))
    y = implicit.planar_images(x, pads, w, (1, 1), (10, 10))
    theirs = TF.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(theirs))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(y[finite], theirs[finite], rtol=2e-5, atol=1e-4)


def _narrow_layer():
    """A layer whose forward pass and input gradient run planar (fewer output channels than
    a vector on every target) over enough images for tasks per image."""
    n = 4 * numba.get_num_threads()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, 3, 12, 12), dtype=np.float32)
    w = rng.standard_normal((3, 3, 3, 3), dtype=np.float32)  # 4 lanes on x86-64's SSE
    return x, w


def test_narrow_layers_run_planar_per_image_in_a_training_step():
    """F.conv2d on a layer of few channels: the forward pass and the input gradient run
    per image (``implicit.planar_images``), no pass pads the whole input, and the weight
    gradient reads the padded input the forward tasks kept. Values and gradients as
    PyTorch's."""
    x, w = _narrow_layer()
    b = np.arange(3, dtype=np.float32)
    xc, wc, bc = (cnnkit.tensor(a, requires_grad=True) for a in (x, w, b))
    calls, wholes = [], []
    real_planar = implicit.planar_images

    def recording(*args, **kwargs):
        calls.append(args[0].shape)
        return real_planar(*args, **kwargs)

    def counting(real):
        def pad(*args):
            wholes.append(args[0].shape)
            return real(*args)
        return pad
    with mock.patch.object(implicit, "planar_images", recording), \
            mock.patch.object(padded_input, "pad_planes", counting(padded_input.pad_planes)), \
            mock.patch.object(padded_input, "zero_pad", counting(padded_input.zero_pad)):
        y = F.conv2d(xc, wc, bc, padding=1)
        g = np.random.default_rng(8).standard_normal(y.shape, dtype=np.float32)
        y.backward(g)
    assert calls == [x.shape, y.shape]  # the forward pass's input, the input gradient's dy
    assert wholes == []
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = TF.conv2d(xt, wt, bt, padding=1)
    yt.backward(torch.tensor(g))
    for ours, theirs in ((y, yt), (xc.grad, xt.grad), (wc.grad, wt.grad), (bc.grad, bt.grad)):
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_few_images_or_wide_layers_keep_the_batch_product():
    """Below 4 images per thread, or for a 1×1 kernel (no border to crop), the planar product
    runs over the whole batch; a layer of a vector of output channels or more runs
    channels-last per image, as before."""
    x, w = _narrow_layer()
    stride, dilation = (1, 1), (1, 1)

    def geometry(n, w_shape, pads=((1, 1), (1, 1))):
        padded = (n, w_shape[1]) + tuple(12 + lo + hi for lo, hi in pads)
        return conv_kernels.ConvGeometry.of(padded, w_shape, stride, dilation, 1, np.float32,
                                            pads)
    assert implicit._planar_per_image(geometry(x.shape[0], w.shape))
    assert not implicit._planar_per_image(geometry(x.shape[0] - 1, w.shape))
    assert not implicit._planar_per_image(geometry(x.shape[0], (3, 3, 1, 1), ((0, 0),) * 2))
    wide = geometry(x.shape[0], (64, 3, 3, 3))
    assert not implicit._groups_run_planar(wide) and implicit._per_image_forward(wide)
