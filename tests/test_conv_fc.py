"""fc: a convolution whose kernel covers the whole padded input, as one matrix product per
pass, against PyTorch (float64), with inf and NaN where the padding's zeros meet them."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from cnnkit.kernels import conv
from cnnkit.kernels.conv import PaddedInput, fc

# (x shape, kernel, pads): kernels as large as the padded input
LAYERS = [((3, 4, 1, 1), (1, 1), ((0, 0), (0, 0))),
          ((2, 3, 1, 1), (3, 3), ((1, 1), (1, 1))),
          ((2, 2, 2, 3), (3, 5), ((1, 0), (0, 2))),
          ((2, 3, 4), (7,), ((2, 1),)),
          ((1, 2, 1, 2, 1), (2, 2, 3), ((0, 1), (0, 0), (1, 1))),
          ((0, 3, 1, 1), (3, 3), ((1, 1), (1, 1)))]


def _reference(x, w, dy, pads):
    """PyTorch's y, dx, dw in float64, its padding (F.pad) values like any other."""
    flat = [p for pair in reversed(pads) for p in pair]
    xt, wt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w))
    y = getattr(TF, f"conv{len(pads)}d")(TF.pad(xt, flat), wt)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()


def _ours(x, w, dy, pads):
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads))
    ones = (1,) * len(pads)
    with conv.using(algorithm="fc"):
        return (conv.conv_forward(x, w, ones, ones, pads=pads),
                conv.conv_backward_input(dy, w, padded, ones, ones, pads=pads),
                conv.conv_backward_weight(x, dy, w.shape[2:], ones, ones, pads=pads))


def _layer(shape, kernel, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((5, shape[1]) + kernel).astype(dtype)
    dy = rng.standard_normal((shape[0], 5) + (1,) * len(kernel)).astype(dtype)
    return x, w, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, pads", LAYERS)
def test_every_pass_matches_pytorch(shape, kernel, pads, dtype):
    x, w, dy = _layer(shape, kernel, dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for ours, theirs in zip(_ours(x, w, dy, pads), _reference(x, w, dy, pads)):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_an_outside_weight_not_finite_makes_its_output_nan(special):
    x, w, dy = _layer((2, 3, 1, 1), (3, 3), np.float32)
    pads = ((1, 1), (1, 1))
    w[2, 1, 0, 2] = special        # meets only the padding's zeros: 0 · w
    w[4, 0, 1, 1] = special        # the centre: meets x itself
    y, _, _ = _ours(x, w, dy, pads)
    expected = _reference(x, w, dy, pads)[0]
    assert np.isnan(y[:, 2]).all() and np.isnan(expected[:, 2]).all()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("special", [np.nan, np.inf])
def test_a_gradient_not_finite_makes_its_outside_weight_gradients_nan(special):
    x, w, dy = _layer((2, 3, 1, 2), (3, 4), np.float64)
    pads = ((1, 1), (1, 1))
    dy[1, 3] = special
    dw = _ours(x, w, dy, pads)[2]
    expected = _reference(x, w, dy, pads)[2]
    assert np.isnan(dw[3, :, 0]).all()
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(dw[finite], expected[finite], rtol=1e-12, atol=1e-12)


def test_looks_for_inf_and_nan_among_the_outside_weights_only(monkeypatch):
    """The forward pass's check reads the taps that meet only the padding, not all of w."""
    seen = []

    def all_finite(*arrays):
        seen.extend(arrays)
        return True
    monkeypatch.setattr(fc, "all_finite", all_finite)
    x, w, _ = _layer((2, 3, 1, 2), (3, 4), np.float32)
    with conv.using(algorithm="fc"):
        conv.conv_forward(x, w, (1, 1), (1, 1), pads=((1, 1), (1, 1)))
    outside = np.ones((3, 4), bool)
    outside[1, 1:3] = False             # the 1 × 2 map meets 2 of the 12 taps
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], w[:, :, outside])


def test_reads_the_input_unpadded():
    """No padded copy: the products take only the taps inside the padding."""
    x, w, dy = _layer((4, 8, 1, 1), (3, 3), np.float32)
    source = PaddedInput(x, ((1, 1), (1, 1)), shared=True)
    with conv.using(algorithm="fc"):
        conv.conv_forward(source, w, (1, 1), (1, 1))
        conv.conv_backward_weight(source, dy, (3, 3), (1, 1), (1, 1))
    assert not source.is_padded


def test_applies_to_a_kernel_as_large_as_the_padded_input_only():
    def geometry(padded, kernel, groups=1, dilation=(1, 1)):
        return conv.ConvGeometry.of((2, 4) + padded, (4, 4 // groups) + kernel, (1, 1),
                                    dilation, groups)
    assert fc.applies(geometry((3, 3), (3, 3)), "forward")
    assert not fc.applies(geometry((4, 3), (3, 3)), "forward")         # two output rows
    assert not fc.applies(geometry((3, 3), (3, 3), groups=2), "forward")
    assert not fc.applies(geometry((5, 5), (3, 3), dilation=(2, 2)), "forward")
    assert conv.select(geometry((1, 1), (1, 1)), "weight") == "fc"
