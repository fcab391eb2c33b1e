"""Corner cases where PyTorch answers and cnnkit used to refuse or differ, each against torch:
ceil-mode pooling past a short input, one-element parameter tuples, empty adaptive outputs,
gradient ties of max/min, float groups, infinite gradients through ReLU, gelu at ±inf."""
import numpy as np
import pytest
import torch

import cnnkit
import cnnkit.functional as F

TF = torch.nn.functional


def _forward_backward(ours, theirs, x, rng):
    c, t = cnnkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    a, b = ours(c), theirs(t)
    assert a.shape == tuple(b.shape)
    np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-6)
    if a.size and b.numel():
        g = rng.random(a.shape).astype(x.dtype)
        a.backward(cnnkit.tensor(g))
        b.backward(torch.tensor(g))
        np.testing.assert_allclose(c.grad, t.grad.numpy(), rtol=1e-6)
    return a


@pytest.mark.parametrize("pool", ["max_pool", "avg_pool"])
@pytest.mark.parametrize("shape, kernel, stride", [
    ((1, 1, 1, 1), 2, 2), ((2, 3, 3, 5), 4, 3), ((1, 2, 2, 2), 3, 3), ((1, 2, 1), 2, 2)])
def test_ceil_mode_windows_past_a_short_input(pool, shape, kernel, stride, rng):
    x = rng.random(shape).astype(np.float32)
    name = f"{pool}{len(shape) - 2}d"
    out = _forward_backward(lambda c: getattr(F, name)(c, kernel, stride, ceil_mode=True),
                            lambda t: getattr(TF, name)(t, kernel, stride, ceil_mode=True), x,
                            rng)
    assert out.size >= 1
    with pytest.raises(ValueError):  # without ceil mode there is no output, as in torch
        getattr(F, name)(cnnkit.tensor(np.ones((1, 1, 1, 1), np.float32)), 2, 2)


def test_one_element_tuples_count_for_every_dim(rng):
    x = rng.random((1, 2, 7, 7)).astype(np.float32)
    w = rng.random((3, 2, 3, 3)).astype(np.float32)
    _forward_backward(lambda c: F.conv2d(c, cnnkit.tensor(w), padding=(1,), stride=(2,),
                                         dilation=[1]),
                      lambda t: TF.conv2d(t, torch.tensor(w), padding=(1,), stride=(2,),
                                          dilation=[1]), x, rng)
    _forward_backward(lambda c: F.max_pool2d(c, (3,), stride=[2], padding=(1,)),
                      lambda t: TF.max_pool2d(t, (3,), stride=[2], padding=(1,)), x, rng)
    _forward_backward(lambda c: F.avg_pool2d(c, [2], padding=(1,)),
                      lambda t: TF.avg_pool2d(t, [2], padding=(1,)), x, rng)


@pytest.mark.parametrize("output_size", [0, (0, 2), (3, 0)])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pooling_to_an_empty_output(kind, output_size, rng):
    x = rng.random((2, 3, 5, 6)).astype(np.float32)
    name = f"adaptive_{kind}_pool2d"
    out = _forward_backward(lambda c: getattr(F, name)(c, output_size),
                            lambda t: getattr(TF, name)(t, output_size), x, rng)
    assert out.size == 0
    c = cnnkit.tensor(x, requires_grad=True)
    getattr(F, name)(c, output_size).sum().backward()  # torch refuses this backward
    assert np.array_equal(c.grad, np.zeros_like(x))
    with pytest.raises(ValueError, match="output_size"):
        getattr(F, name)(c, -1)


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1)])
def test_reduction_ties_share_the_gradient_like_torch(op, axis):
    x = np.array([[1.0, 3.0, 3.0, 1.0], [2.0, 2.0, np.nan, 2.0], [5.0, 5.0, 5.0, 0.0]],
                 np.float32)
    if isinstance(axis, tuple):  # amax makes every gradient NaN by a NaN; cnnkit gives it to
        x[1, 2] = 2.0           # the NaN, as max() does (see ops.reduction): ties only here
    c, t = cnnkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours = getattr(c, op)(axis=axis)
    if axis is None:
        theirs = getattr(t, op)()                           # ties share: x.max()
    elif isinstance(axis, tuple):
        theirs = getattr(t, f"a{op}")(dim=axis)             # ties share: amax
    else:
        theirs = getattr(t, op)(dim=axis).values            # the first extreme takes it all
    g = np.arange(1, ours.size + 1, dtype=np.float32).reshape(ours.shape)
    ours.backward(cnnkit.tensor(g))
    theirs.backward(torch.tensor(g))
    np.testing.assert_array_equal(ours.data, theirs.detach().numpy())
    np.testing.assert_array_equal(c.grad, t.grad.numpy())


def test_groups_must_be_an_int_type_error_like_torch():
    x = cnnkit.tensor(np.ones((1, 2, 5, 5), np.float32))
    w = cnnkit.tensor(np.ones((2, 2, 3, 3), np.float32))
    with pytest.raises(TypeError):
        TF.conv2d(torch.ones(1, 2, 5, 5), torch.ones(2, 2, 3, 3), groups=1.0)
    with pytest.raises(TypeError, match="groups"):
        F.conv2d(x, w, groups=1.0)
    with pytest.raises(TypeError):
        torch.nn.Conv2d(2, 2, 3, groups=1.0)
    with pytest.raises(TypeError, match="groups"):
        cnnkit.nn.Conv2d(2, 2, 3, groups=1.0)
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(x, w, groups=0)


@pytest.mark.parametrize("size", [8, 1 << 17])  # the NumPy path and the compiled one
def test_relu_backward_of_infinite_and_nan_gradients(size):
    x = np.resize(np.array([-1.0, 0.0, 2.0, -2.0, np.nan], np.float32), size)
    g = np.resize(np.array([np.inf, -np.inf, np.inf, np.nan, 1.0], np.float32), size)
    c, t = cnnkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    F.relu(c).backward(cnnkit.tensor(g))
    TF.relu(t).backward(torch.tensor(g))
    np.testing.assert_array_equal(c.grad, t.grad.numpy())


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_at_infinity_gives_the_limits(approximate):
    """The documented convention (``F.gelu``): torch returns NaN at ±inf (0·inf inside); cnnkit
    the limits, which are torch's own values at ±1e30."""
    v = np.array([-np.inf, -1e30, -3.0, 0.0, 3.0, 1e30, np.inf], np.float32)
    c, t = cnnkit.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
    ours, theirs = F.gelu(c, approximate=approximate), TF.gelu(t, approximate=approximate)
    ours.backward(cnnkit.tensor(np.ones(7, np.float32)))
    theirs.backward(torch.ones(7))
    finite = slice(1, 6)
    # cnnkit works in float64 and rounds once; torch's float32 erf is a few ulp off.
    np.testing.assert_allclose(ours.data[finite], theirs.detach().numpy()[finite], rtol=2e-4)
    # (torch's tanh form overflows x³ at ±1e30 in its slope: compare slopes on ±3 and 0.)
    np.testing.assert_allclose(c.grad[2:5], t.grad.numpy()[2:5], rtol=2e-4, atol=1e-6)
    assert np.isnan(theirs.detach().numpy()[0])  # torch: NaN at -inf
    np.testing.assert_array_equal(ours.data[[0, 6]], [0.0, np.inf])
    np.testing.assert_array_equal(c.grad[[0, 6]], [0.0, 1.0])
