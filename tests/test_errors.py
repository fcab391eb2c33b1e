"""Invalid arguments raise ValueError/TypeError before any work, naming the argument.

The ``no_work`` fixture replaces the kernels (padding, convolution, pooling) with functions that
fail the test if called, so every error below is shown to come from argument checking, before
any array is touched. ``test_the_guard_sees_work`` shows that the guard does fire on a valid call.
"""
import numpy as np
import pytest

import cnnkit
import cnnkit.functional as F
from cnnkit.conv_arithmetic import conv_output_shape

WORK = {
    "cnnkit.functional.conv": ["pad_array", "conv_forward", "conv_backward_input",
                               "conv_backward_weight"],
    "cnnkit.kernels.pooling": ["max_pool_forward", "avg_pool_forward", "adaptive_max_forward",
                               "adaptive_avg_forward"],
    "cnnkit.kernels.pooling_numba": ["max_pool2d_forward", "max_pool3d_forward",
                                     "avg_pool_forward"],
}


class WorkStarted(Exception):
    pass


@pytest.fixture
def no_work(monkeypatch):
    import importlib

    def started(*args, **kwargs):
        raise WorkStarted("a kernel ran before the arguments were checked")
    for module, names in WORK.items():
        for name in names:
            monkeypatch.setattr(importlib.import_module(module), name, started)


def t(*shape, dtype=np.float32, requires_grad=False):
    return cnnkit.tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


X = (2, 3, 8, 8)
W = (4, 3, 3, 3)


def test_the_guard_sees_work(no_work):
    with pytest.raises(WorkStarted):
        F.conv2d(t(*X), t(*W))
    with pytest.raises(WorkStarted):
        F.conv_transpose2d(t(*X), t(3, 4, 3, 3))
    with pytest.raises(WorkStarted):
        F.max_pool2d(t(*X), 2)
    with pytest.raises(WorkStarted):
        F.avg_pool2d(t(*X), 2)
    with pytest.raises(WorkStarted):
        F.adaptive_avg_pool2d(t(*X), 2)
    with pytest.raises(WorkStarted):
        F.adaptive_max_pool2d(t(*X), 2)


CONV_ERRORS = [
    # (exception, match, input shape, weight shape, keyword arguments)
    (ValueError, "input", (3, 8), W, {}),                                   # wrong ndim
    (ValueError, "input", (1, 2, 3, 8, 8), W, {}),
    (ValueError, "weight", X, (4, 3, 3), {}),
    (ValueError, r"weight\.shape\[1\]", X, (4, 2, 3, 3), {}),               # channel mismatch
    (ValueError, "groups", X, (4, 1, 3, 3), dict(groups=2)),                # 3 % 2
    (ValueError, "groups", (2, 4, 8, 8), (3, 2, 3, 3), dict(groups=2)),     # out 3 % 2
    (ValueError, "groups", X, W, dict(groups=0)),
    (ValueError, r"weight\.shape\[0\]", X, (0, 3, 3, 3), {}),                # no filters
    (ValueError, r"weight\.shape\[0\]", (2, 4, 8, 8), (0, 2, 3, 3), dict(groups=2)),
    (ValueError, "groups", X, W, dict(groups=-3)),
    (TypeError, "groups", X, W, dict(groups=1.0)),                          # as torch
    (TypeError, "groups", X, W, dict(groups=True)),
    (ValueError, "kernel_size", (1, 3, 4, 4), (4, 3, 5, 5), {}),            # kernel > input
    (ValueError, "kernel_size", (1, 3, 4, 4), (4, 3, 3, 3), dict(dilation=2)),
    (ValueError, "kernel_size", (1, 3, 4, 9), (4, 3, 6, 3), dict(padding=((1, 0), (0, 0)))),
    (ValueError, "stride", X, W, dict(stride=0)),
    (ValueError, "stride", X, W, dict(stride=(1, -1))),
    (TypeError, "stride", X, W, dict(stride=(1, 1, 1))),
    (TypeError, "stride", X, W, dict(stride=1.5)),
    (ValueError, "dilation", X, W, dict(dilation=0)),
    (ValueError, "padding", X, W, dict(padding=-1)),
    (ValueError, "padding", X, W, dict(padding=((0, 0), (-1, 2)))),
    (TypeError, "padding", X, W, dict(padding=((0, 0, 1), (1, 2)))),
    (TypeError, "padding", X, W, dict(padding=1.5)),
    (ValueError, "padding", X, W, dict(padding="sam")),
    (ValueError, "padding_mode", X, W, dict(padding=1, padding_mode="mirror")),
    (ValueError, "padding", X, W, dict(padding=8, padding_mode="reflect")),  # reflect >= size
    (ValueError, "padding", (1, 3, 3, 8), W, dict(padding=(3, 1), padding_mode="reflect")),
    (ValueError, "padding", X, W, dict(padding=9, padding_mode="circular")),
]


@pytest.mark.parametrize("error, match, x_shape, w_shape, kwargs", CONV_ERRORS)
def test_conv_rejects(no_work, error, match, x_shape, w_shape, kwargs):
    with pytest.raises(error, match=match):
        F.conv2d(t(*x_shape), t(*w_shape), **kwargs)


ONES = np.ones
ENGINE_ERRORS = [
    # (match, engine function, arguments): shapes that do not make one convolution
    ("does not fit x's 3 channels", "conv_forward", (ONES(X), ONES((4, 5, 3, 3)), (1, 1), (1, 1))),
    ("does not fit x's 6 channels", "conv_forward",
     (ONES((2, 6, 8, 8)), ONES(W), (1, 1), (1, 1), 3)),
    ("w must be 4-D", "conv_forward", (ONES(X), ONES((4, 3, 3)), (1, 1), (1, 1))),
    ("stride must be 2 positive", "conv_forward", (ONES(X), ONES(W), (0, 1), (1, 1))),
    ("dilation must be 2 positive", "conv_forward", (ONES(X), ONES(W), (1, 1), (1,))),
    ("groups must be a positive", "conv_forward", (ONES(X), ONES(W), (1, 1), (1, 1), 0)),
    ("pads must be one", "conv_forward", (ONES(X), ONES(W), (1, 1), (1, 1), 1, ((1, 1),))),
    ("pads must be 2", "conv_backward_input",
     (ONES((2, 4, 8, 8)), ONES(W), (10, 10), (1, 1), (1, 1), 1, ((1, -1), (1, 1)))),
    ("larger than the padded input", "conv_forward", (ONES((2, 3, 1, 8)), ONES(W), (1, 1), (1, 1))),
    ("bias must have shape", "conv_forward",
     (ONES(X), ONES(W), (1, 1), (1, 1), 1, None, None, ONES(3))),
    ("x must be a NumPy array", "conv_forward", ([[1.0]], ONES(W), (1, 1), (1, 1))),
    ("does not fit a padded input", "conv_backward_input",  # spatial unpadded
     (ONES((2, 4, 8, 8)), ONES(W), (8, 8), (1, 1), (1, 1), 1, ((1, 1), (1, 1)))),
    (r"dy \(2, 5, 8, 8\) must be", "conv_backward_input",
     (ONES((2, 5, 8, 8)), ONES(W), (10, 10), (1, 1), (1, 1))),
    ("does not fit a padded input", "conv_backward_weight",
     (ONES(X), ONES((2, 4, 9, 9)), (3, 3), (1, 1), (1, 1), 1, ((1, 1), (1, 1)))),
    (r"the same N", "conv_backward_weight", (ONES(X), ONES((3, 4, 6, 6)), (3, 3), (1, 1), (1, 1))),
    ("does not fit", "conv_backward_weight",
     (ONES((2, 5, 8, 8)), ONES((2, 4, 6, 6)), (3, 3), (1, 1), (1, 1), 2)),
]


@pytest.mark.parametrize("match, function, args", ENGINE_ERRORS)
def test_conv_engine_rejects_shapes_that_are_not_one_convolution(monkeypatch, match, function,
                                                                 args):
    """The engine's passes (``cnnkit.kernels.conv``, public: docs/ieee.md) are compiled loops
    that index memory by these shapes: unchecked, a weight gradient given dy with an image more
    than x crashed the process (SIGSEGV) and an unpadded ``spatial`` corrupted the heap. Each
    call is refused before any algorithm is looked up."""
    from cnnkit.kernels import conv
    from cnnkit.kernels.conv import dispatch

    class NoAlgorithm(dict):
        def __getitem__(self, name):
            raise WorkStarted(f"{name} was looked up before the arguments were checked")
    monkeypatch.setattr(dispatch, "REGISTRY", NoAlgorithm())
    with pytest.raises((ValueError, TypeError), match=match):
        getattr(conv, function)(*(np.float32(a) if isinstance(a, np.ndarray) else a
                                  for a in args))


def test_conv_rejects_non_tensors_and_bad_dtypes(no_work):
    with pytest.raises(TypeError, match="input"):
        F.conv2d(np.ones(X, np.float32), t(*W))
    with pytest.raises(TypeError, match="weight"):
        F.conv2d(t(*X), np.ones(W, np.float32))
    with pytest.raises(TypeError, match="input.*floating"):
        F.conv2d(t(*X, dtype=np.int64), t(*W))
    with pytest.raises(TypeError, match=r"input \(float32\) and weight \(float64\)"):
        F.conv2d(t(*X), t(*W, dtype=np.float64))
    with pytest.raises(TypeError, match="bias"):
        F.conv2d(t(*X), t(*W), t(4, dtype=np.float64))
    with pytest.raises(TypeError, match="bias"):
        F.conv2d(t(*X), t(*W), np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        F.conv2d(t(*X), t(*W), t(3))
    with pytest.raises(ValueError, match="bias"):
        F.conv2d(t(*X), t(*W), t(4, 1))


@pytest.mark.parametrize("fn, x_shape, w_shape", [
    (F.conv1d, (2, 3, 8), (4, 3, 3)), (F.conv3d, (1, 3, 4, 4, 4), (4, 3, 2, 2, 2))])
def test_conv1d_and_3d_check_too(no_work, fn, x_shape, w_shape):
    with pytest.raises(ValueError, match="input"):
        fn(t(*x_shape[2:]), t(*w_shape))
    with pytest.raises(ValueError, match="stride"):
        fn(t(*x_shape), t(*w_shape), stride=0)
    with pytest.raises(ValueError, match="padding_mode"):
        fn(t(*x_shape), t(*w_shape), padding_mode="reflection")
    with pytest.raises(ValueError, match="kernel_size"):
        fn(t(*x_shape), t(*w_shape[:2] + (9,) * (len(w_shape) - 2)))


TRANSPOSE_ERRORS = [
    (ValueError, "input", (3, 8), (3, 4, 3, 3), {}),
    (ValueError, r"weight\.shape\[0\]", X, (4, 3, 3, 3), {}),
    (ValueError, "groups", X, (3, 2, 3, 3), dict(groups=2)),
    (ValueError, "groups", X, (3, 2, 3, 3), dict(groups=0)),
    (ValueError, "output_padding", X, (3, 2, 3, 3), dict(stride=2, output_padding=2)),
    (ValueError, "output_padding", X, (3, 2, 3, 3), dict(stride=2, dilation=2, output_padding=2)),
    (ValueError, "output_padding", X, (3, 2, 3, 3), dict(output_padding=1)),    # s = d = 1
    (ValueError, "output_padding", X, (3, 2, 3, 3), dict(stride=2, output_padding=-1)),
    (ValueError, "padding", X, (3, 2, 3, 3), dict(padding="same")),
    (ValueError, "padding", X, (3, 2, 3, 3), dict(padding=-1)),
    (ValueError, "padding", (1, 3, 1, 1), (3, 2, 1, 1), dict(padding=1)),        # output <= 0
    (ValueError, "stride", X, (3, 2, 3, 3), dict(stride=0)),
    (ValueError, "dilation", X, (3, 2, 3, 3), dict(dilation=-1)),
]


@pytest.mark.parametrize("error, match, x_shape, w_shape, kwargs", TRANSPOSE_ERRORS)
def test_conv_transpose_rejects(no_work, error, match, x_shape, w_shape, kwargs):
    with pytest.raises(error, match=match):
        F.conv_transpose2d(t(*x_shape), t(*w_shape), **kwargs)


def test_conv_transpose_rejects_bad_bias_and_dtypes(no_work):
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        F.conv_transpose2d(t(2, 4, 8, 8), t(4, 2, 3, 3), t(2), groups=2)
    with pytest.raises(TypeError, match="input.*weight"):
        F.conv_transpose2d(t(*X, dtype=np.float64), t(3, 2, 3, 3))


POOL_ERRORS = [
    (F.max_pool2d, ValueError, "input", (8, 8), dict(kernel_size=2)),
    (F.max_pool2d, ValueError, "kernel_size", X, dict(kernel_size=0)),
    (F.max_pool2d, TypeError, "kernel_size", X, dict(kernel_size=(2, 2, 2))),
    (F.max_pool2d, ValueError, "stride", X, dict(kernel_size=2, stride=0)),
    (F.max_pool2d, ValueError, "dilation", X, dict(kernel_size=2, dilation=0)),
    (F.max_pool2d, ValueError, "padding", X, dict(kernel_size=3, padding=2)),    # > k // 2
    (F.max_pool2d, ValueError, "padding", X, dict(kernel_size=3, padding=-1)),
    (F.max_pool2d, ValueError, "padding", X, dict(kernel_size=3, padding="same")),
    (F.max_pool2d, ValueError, "kernel_size", (1, 1, 3, 3), dict(kernel_size=4)),
    (F.max_pool1d, ValueError, "padding", (1, 1, 1), dict(kernel_size=2, stride=1, padding=1,
                                                           dilation=2)),  # windows of padding
    (F.avg_pool2d, ValueError, "padding", X, dict(kernel_size=2, padding=2)),
    (F.avg_pool2d, ValueError, "divisor_override", X, dict(kernel_size=2, divisor_override=0)),
    (F.avg_pool2d, ValueError, "kernel_size", (1, 1, 3, 3), dict(kernel_size=(2, 4))),
    (F.avg_pool3d, ValueError, "input", (8, 8), dict(kernel_size=2)),
    (F.adaptive_avg_pool2d, ValueError, "output_size", X, dict(output_size=-1)),  # 0: empty
    (F.adaptive_max_pool2d, TypeError, "output_size", X, dict(output_size=(2, 2, 2))),
    (F.adaptive_max_pool1d, ValueError, "input", (8,), dict(output_size=2)),
]


@pytest.mark.parametrize("fn, error, match, x_shape, kwargs", POOL_ERRORS)
def test_pooling_rejects(no_work, fn, error, match, x_shape, kwargs):
    with pytest.raises(error, match=match):
        fn(t(*x_shape), **kwargs)


@pytest.mark.parametrize("fn", [F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
                                F.adaptive_max_pool2d])
def test_pooling_rejects_non_float_input(no_work, fn):
    with pytest.raises(TypeError, match="input"):
        fn(t(*X, dtype=np.int32), 2)
    with pytest.raises(TypeError, match="input"):
        fn(np.ones(X, np.float32), 2)


# -- autograd-level errors ---------------------------------------------------------------------

def test_integer_tensors_cannot_require_gradients():
    with pytest.raises(TypeError, match="floating-point"):
        cnnkit.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        cnnkit.tensor(np.arange(3)).requires_grad_()


def test_backward_gradient_must_match_the_output_shape():
    x, w = t(*X, requires_grad=True), t(*W, requires_grad=True)
    y = F.conv2d(x, w)
    with pytest.raises(ValueError, match=r"gradient.*shape \(2, 4, 5, 5\).*expected \(2, 4, 6, 6\)"):
        y.backward(np.ones((2, 4, 5, 5), np.float32))
    assert x.grad is None and w.grad is None  # nothing was accumulated
    with pytest.raises(RuntimeError, match="gradient"):
        y.backward()  # a non-scalar output needs an explicit gradient


# -- conv_output_shape ---------------------------------------------------------------------------

@pytest.mark.parametrize("error, match, args, kwargs", [
    (ValueError, "input_shape", ((-1, 5), 3), {}),
    (ValueError, "kernel_size", ((5, 5), 0), {}),
    (TypeError, "kernel_size", ((5, 5), (3, 3, 3)), {}),
    (ValueError, "kernel_size", ((2, 5), 3), {}),
    (ValueError, "stride", ((5, 5), 3), dict(stride=0)),
    (ValueError, "dilation", ((5, 5), 3), dict(dilation=-2)),
    (ValueError, "padding", ((5, 5), 3), dict(padding=-1)),
    (ValueError, "padding", ((5, 5), 3), dict(padding="half")),
    (ValueError, "output_padding", ((5, 5), 3), dict(transposed=True, stride=2, output_padding=2)),
    (ValueError, "padding", ((1, 1), 1), dict(transposed=True, padding=1)),
])
def test_conv_output_shape_rejects(error, match, args, kwargs):
    with pytest.raises(error, match=match):
        conv_output_shape(*args, **kwargs)
