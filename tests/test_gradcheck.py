"""Backward passes against finite differences (float64), independently of PyTorch.

``gradcheck`` compares every entry of every input's gradient with a central difference

    dL/dx[i] ≈ (L(x + ε·e_i) − L(x − ε·e_i)) / 2ε,      L = Σ g · f(x)  for a fixed random g,

so it costs two forward passes per input entry: small shapes only. ``check_backward`` (Chainer's
idea) checks one random direction v for all inputs at once,

    Σ_k <dL/dx_k, v_k> ≈ (L(x + ε·v) − L(x − ε·v)) / 2ε,

two forward passes in all, for the bigger shapes and chained layers.
"""
import numpy as np
import pytest

import cnnkit
import cnnkit.functional as F
from mutants import negate_weight_gradient


def _loss(fn, arrays, weights):
    with cnnkit.no_grad():
        return float(np.sum(fn(*[cnnkit.tensor(a) for a in arrays]).data * weights))


def _analytic(fn, arrays, seed):
    """Gradients of L = Σ g·f(x) from backward, and g."""
    tensors = [cnnkit.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(weights)
    return [t.grad for t in tensors], weights


def gradcheck(fn, inputs, eps=1e-6, rtol=1e-6, atol=1e-7, seed=0):
    """Every gradient entry of ``fn(*inputs)`` against a central difference (float64 inputs)."""
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    grads, weights = _analytic(fn, inputs, seed)
    for k, array in enumerate(inputs):
        assert grads[k] is not None, f"input {k}: no gradient"
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            plus = _loss(fn, inputs, weights)
            array[index] = original - eps
            minus = _loss(fn, inputs, weights)
            array[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grads[k], numeric, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {k}")


def check_backward(fn, inputs, eps=1e-6, rtol=1e-6, atol=1e-8, seed=0):
    """The directional derivative along one random direction, for all inputs at once."""
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    grads, weights = _analytic(fn, inputs, seed)
    assert all(g is not None for g in grads), "an input got no gradient"
    rng = np.random.default_rng(seed + 1)
    directions = [rng.standard_normal(a.shape) for a in inputs]
    plus = _loss(fn, [a + eps * v for a, v in zip(inputs, directions)], weights)
    minus = _loss(fn, [a - eps * v for a, v in zip(inputs, directions)], weights)
    numeric = (plus - minus) / (2 * eps)
    analytic = sum(float(np.vdot(g, v)) for g, v in zip(grads, directions))
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)


def arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


# -- every entry, small shapes --------------------------------------------------------------------

GRADCHECK_CASES = {
    "conv1d reflect per-side stride 2": (
        lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=((1, 2),), padding_mode="reflect"),
        [(1, 2, 6), (3, 2, 3), (3,)]),
    "conv2d grouped dilated same circular": (
        lambda x, w, b: F.conv2d(x, w, b, groups=2, dilation=(2, 1), padding="same",
                                 padding_mode="circular"),
        [(1, 2, 5, 4), (2, 1, 2, 3), (2,)]),
    "conv2d depthwise x2 stride 2 same replicate": (
        lambda x, w: F.conv2d(x, w, stride=2, groups=2, padding="same", padding_mode="replicate"),
        [(2, 2, 4, 5), (4, 1, 3, 2)]),
    "conv2d unbatched full": (
        lambda x, w, b: F.conv2d(x, w, b, padding="full"), [(2, 3, 3), (2, 2, 2, 2), (2,)]),
    "conv3d": (
        lambda x, w, b: F.conv3d(x, w, b, padding=1, stride=(1, 2, 1)),
        [(1, 1, 3, 4, 3), (2, 1, 2, 2, 2), (2,)]),
    "conv_transpose1d": (
        lambda x, w, b: F.conv_transpose1d(x, w, b, stride=3, padding=1, output_padding=2),
        [(2, 2, 3), (2, 2, 3), (2,)]),
    "conv_transpose2d groups, output_padding >= stride": (
        lambda x, w, b: F.conv_transpose2d(x, w, b, groups=2, dilation=(3, 1), stride=(1, 2),
                                           output_padding=(2, 1)),
        [(1, 2, 3, 3), (2, 1, 2, 2), (2,)]),
    "conv_transpose2d per-side padding": (
        lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=((1, 0), (0, 2))),
        [(1, 2, 3, 3), (2, 1, 3, 3)]),
    "conv_transpose3d": (
        lambda x, w, b: F.conv_transpose3d(x, w, b, stride=2, padding=1, output_padding=1),
        [(1, 1, 2, 2, 2), (1, 2, 2, 3, 2), (2,)]),
    "max_pool2d padded ceil dilated": (
        lambda x: F.max_pool2d(x, 3, stride=2, padding=1, dilation=(1, 2), ceil_mode=True),
        [(1, 2, 6, 7)]),
    "max_pool1d overlapping": (lambda x: F.max_pool1d(x, 3, stride=1), [(2, 2, 7)]),
    "avg_pool2d ceil, no pad count": (
        lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True,
                               count_include_pad=False),
        [(1, 2, 6, 7)]),
    "avg_pool3d divisor_override": (
        lambda x: F.avg_pool3d(x, 2, stride=1, divisor_override=3), [(1, 1, 3, 4, 3)]),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (3, 4)), [(1, 2, 5, 7)]),
    "adaptive_max_pool2d upsampling": (lambda x: F.adaptive_max_pool2d(x, (4, 5)), [(1, 2, 3, 4)]),
    "adaptive_avg_pool3d": (lambda x: F.adaptive_avg_pool3d(x, (2, 3, 2)), [(1, 1, 3, 4, 5)]),
}


@pytest.mark.parametrize("name", list(GRADCHECK_CASES))
def test_gradcheck(name):
    fn, shapes = GRADCHECK_CASES[name]
    gradcheck(fn, arrays(*shapes))


# -- one random direction, bigger shapes and chained layers ------------------------------------

CHECK_BACKWARD_CASES = {
    "conv2d grouped reflect": (
        lambda x, w, b: F.conv2d(x, w, b, stride=2, groups=2, padding=2, padding_mode="reflect"),
        [(2, 4, 11, 10), (6, 2, 3, 3), (6,)]),
    "conv2d depthwise same stride 2": (
        lambda x, w: F.conv2d(x, w, stride=2, groups=4, padding="same"),
        [(2, 4, 12, 9), (8, 1, 4, 3)]),
    "conv3d circular": (
        lambda x, w, b: F.conv3d(x, w, b, padding=(1, 2, 1), padding_mode="circular"),
        [(2, 3, 5, 6, 5), (4, 3, 3, 3, 3), (4,)]),
    "conv_transpose2d": (
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride=(2, 3), padding=1,
                                           output_padding=(1, 2), dilation=2),
        [(2, 4, 5, 6), (4, 3, 3, 3), (3,)]),
    "conv -> max_pool -> conv_transpose -> adaptive_avg": (
        lambda x, w1, w2: F.adaptive_avg_pool2d(F.conv_transpose2d(
            F.max_pool2d(F.conv2d(x, w1, padding=1), 2, ceil_mode=True), w2, stride=2), (3, 3)),
        [(2, 3, 9, 9), (4, 3, 3, 3), (4, 2, 2, 2)]),
}


@pytest.mark.parametrize("name", list(CHECK_BACKWARD_CASES))
def test_check_backward(name):
    fn, shapes = CHECK_BACKWARD_CASES[name]
    for seed in range(3):
        check_backward(fn, arrays(*shapes, seed=seed), seed=seed)


# -- the checks can fail ------------------------------------------------------------------------

def test_gradcheck_catches_a_missing_padding_fold(monkeypatch):
    import cnnkit.functional.conv as conv_module
    original = conv_module.pad_array_backward
    monkeypatch.setattr(conv_module, "pad_array_backward",
                        lambda grad, shape, widths, mode: original(grad, shape, widths))
    fn, shapes = GRADCHECK_CASES["conv1d reflect per-side stride 2"]
    with pytest.raises(AssertionError, match="input 0"):
        gradcheck(fn, arrays(*shapes))


def test_check_backward_catches_a_sign_flip(monkeypatch):
    negate_weight_gradient(monkeypatch)
    fn, shapes = CHECK_BACKWARD_CASES["conv2d grouped reflect"]
    with pytest.raises(AssertionError):
        check_backward(fn, arrays(*shapes))


def test_check_backward_catches_a_slightly_wrong_gradient(monkeypatch):
    """A 1% error in one gradient is far outside the tolerance."""
    import cnnkit.kernels.pooling as kernels
    import cnnkit.kernels.pooling_numba as compiled
    for module in (kernels, compiled):  # NumPy's passes and the compiled ones
        monkeypatch.setattr(module, "avg_pool_backward",
                            lambda *a, original=module.avg_pool_backward: 1.01 * original(*a))
    with pytest.raises(AssertionError):
        check_backward(lambda x: F.avg_pool2d(x, 2), arrays((2, 3, 6, 6)))
