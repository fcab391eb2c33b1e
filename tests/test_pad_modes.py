"""Reflect, replicate and circular padding's compiled passes (``kernels.pad_modes_numba``):
against PyTorch (values bit for bit; reflect and replicate gradients too, which both add in the
outputs' order), against NumPy's passes, and taken exactly where they apply."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnkit
import cnnkit.functional as F
from cnnkit import tuning
from cnnkit.kernels import pad_modes_numba, padding

MODES = ("reflect", "replicate", "circular")
# (shape, torch's pad list: last axis first); crops are negative
CASES = [((2, 3, 5, 6), (1, 2, 2, 1)), ((2, 3, 5, 6), (-1, 2, 1, -2)), ((2, 3, 7), (3, -2)),
         ((2, 2, 4, 5, 6), (1, 1, 2, 0, 3, 3)), ((3, 9), (2, 2)), ((1, 1, 4, 5, 6), (0, 0, 0, 0, 1, 2)),
         ((1, 1, 40, 33), (4, 3, 2, 4)),  # one image: its rows shared out among tasks
         ((2, 3, 6, 5, 4), (-1, 1, 2, -2, 3, 1))]


def _widths(shape, pads):
    widths = [(0, 0)] * len(shape)
    for i in range(len(pads) // 2):
        widths[len(shape) - 1 - i] = (pads[2 * i], pads[2 * i + 1])
    return tuple(widths)


def _accepted(shape, pads, mode):
    try:
        TF.pad(torch.zeros(shape), pads, mode=mode)
    except (RuntimeError, NotImplementedError):
        return False
    return True


def _inputs(shape, dtype, seed=0):
    """x with NaN, ±inf on the edges and inside (so that copies land on the borders)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[0], flat[-1], flat[flat.size // 2], flat[1] = np.nan, np.inf, -np.inf, -0.0
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, pads", CASES)
@pytest.mark.parametrize("mode", MODES)
def test_compiled_padding_against_torch_and_numpy(mode, shape, pads, dtype):
    if not _accepted(shape, pads, mode):
        pytest.skip("PyTorch refuses these widths")
    x, widths = _inputs(shape, dtype), _widths(shape, pads)
    xt = torch.tensor(x, requires_grad=True)
    yt = TF.pad(xt, pads, mode=mode)
    g = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(dtype)
    g.reshape(-1)[-1], g.reshape(-1)[0] = -0.0, np.nan
    yt.backward(torch.tensor(g))
    with tuning.override(compiled_min_size=0):
        assert padding._compiled_modes(x.shape, x.dtype, widths)
        y = padding.pad_array(x, widths, mode)
        dx = padding.pad_array_backward(g, x.shape, widths, mode)
    with tuning.override(compiled_min_size=1 << 60):
        y_numpy = padding.pad_array(x, widths, mode)
        dx_numpy = padding.pad_array_backward(g, x.shape, widths, mode)
    assert y.dtype == dx.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(y, y_numpy)
    expected = xt.grad.numpy()
    if mode == "circular":  # PyTorch's circular backward adds in another order
        np.testing.assert_allclose(dx, expected, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(dx, expected)
        assert np.array_equal(np.signbit(dx), np.signbit(expected))
    np.testing.assert_allclose(dx, dx_numpy, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_functional_pad_and_conv_take_the_compiled_passes(mode, monkeypatch):
    calls = []
    for name in ("_pad_rows", "_fold_rows"):
        kernel = getattr(pad_modes_numba, name)
        monkeypatch.setattr(pad_modes_numba, name,
                            lambda *a, _k=kernel, _n=name: (calls.append(_n), _k(*a))[1])
    x = np.random.default_rng(0).standard_normal((4, 3, 9, 8)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((5, 3, 3, 3)).astype(np.float32)
    xc, wc = cnnkit.tensor(x, requires_grad=True), cnnkit.tensor(w, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    with tuning.override(compiled_min_size=0):
        y = F.conv2d(xc, wc, padding=2, padding_mode=mode)
        y.sum().backward()
    expected = TF.conv2d(TF.pad(xt, (2, 2, 2, 2), mode=mode), wt)
    expected.sum().backward()
    assert calls == ["_pad_rows", "_fold_rows"]
    np.testing.assert_allclose(y.data, expected.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xc.grad, xt.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, widths, dtype, compiled", [
    ((2, 3, 4, 5), ((0, 0), (0, 0), (1, 1), (1, 1)), np.float32, True),
    ((2, 3, 4, 5), ((0, 0), (1, 1), (1, 1), (1, 1)), np.float32, True),  # channels: 3rd from last
    ((2, 3, 4, 5), ((1, 1), (0, 0), (1, 1), (1, 1)), np.float32, False),  # the batch axis
    ((2, 3, 4, 5), ((0, 0), (0, 0), (1, 1), (1, 1)), np.int64, False),
    ((2, 3, 4, 5), ((0, 0), (0, 0), (1, 1), (1, 1)), np.float16, False),
    ((2, 0, 4, 5), ((0, 0), (0, 0), (1, 1), (1, 1)), np.float32, False),  # nothing to pad
    ((2, 3, 4, 5), ((0, 0), (0, 0), (0, 0), (-3, -2)), np.float32, False),  # nothing left
])
def test_which_paddings_are_compiled(shape, widths, dtype, compiled):
    """The compiled passes take float32 and float64 padded along their last three axes; the
    rest stays with NumPy's (and gives the same answer)."""
    with tuning.override(compiled_min_size=0):
        assert padding._compiled_modes(shape, np.dtype(dtype), widths) == compiled
        x = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
        y = padding.pad_array(x, widths, "replicate")
    np.testing.assert_array_equal(y, np.pad(x, [(max(lo, 0), max(hi, 0)) for lo, hi in widths],
                                            mode="edge")[tuple(
        slice(max(-lo, 0), n + max(lo, 0) + max(hi, 0) - max(-hi, 0))
        for n, (lo, hi) in zip(shape, widths))])


def test_compiled_from_compiled_min_size_on():
    shape, widths = (2, 3, 4, 5), ((0, 0), (0, 0), (1, 1), (1, 1))
    with tuning.override(compiled_min_size=120):
        assert padding._compiled_modes(shape, np.dtype(np.float32), widths)
    with tuning.override(compiled_min_size=121):
        assert not padding._compiled_modes(shape, np.dtype(np.float32), widths)


def test_tables_are_kept_read_only():
    sources, readers, _ = pad_modes_numba._tables((1, 2, 3, 4), ((0, 0), (1, 1), (2, 2)),
                                                  "reflect")
    for table in [*sources, *readers[0], *readers[1]]:
        assert not table.flags.writeable
    # each input row's readers: output rows 0, 2 and 4 read input row 1 of 3 (reflect by one);
    # the unpadded depth axis reads itself
    starts, rows = readers[1]
    assert list(readers[0][1]) == [0, 1]
    assert list(rows[starts[1]:starts[2]]) == [0, 2, 4]
