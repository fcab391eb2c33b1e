"""Single layers drawn by hypothesis, exported and run in onnxruntime: the output must equal
cnnkit's eval output (float32, rtol 1e-4, atol 1e-5). Tiny shapes, one session per example;
the four tests draw 330 configurations in all."""
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit import nn
from cnnkit.onnx import NotExportable
from tests.onnx_helpers import assert_runtime_matches, randomize_batchnorm

MAX_SIZE = {1: 7, 2: 5, 3: 4}  # spatial size per dim, by number of spatial dims


def _spatial(draw, n, low=1):
    return tuple(draw(st.integers(low, MAX_SIZE[n])) for _ in range(n))


def _per_dim(draw, n, low, high):
    return tuple(draw(st.integers(low, high)) for _ in range(n))


def _fits(layer, shape):
    """Whether cnnkit accepts this configuration (hypothesis may draw kernels that don't fit)."""
    try:
        layer.eval()(cnnkit.tensor(np.zeros((1,) + shape, np.float32)))
        return True
    except ValueError:
        return False


@st.composite
def convolutions(draw):
    n = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    padding = draw(st.one_of(st.integers(0, 2), st.sampled_from(["same", "valid", "full"]),
                             st.tuples(*[st.tuples(st.integers(0, 2), st.integers(0, 2))] * n)))
    layer = getattr(nn, f"Conv{n}d")(
        c_in, c_out, _per_dim(draw, n, 1, 3), stride=_per_dim(draw, n, 1, 3), padding=padding,
        dilation=_per_dim(draw, n, 1, 2), groups=groups, bias=draw(st.booleans()),
        padding_mode=mode)
    shape = (c_in,) + _spatial(draw, n, low=3)
    return layer, shape


@st.composite
def transposed_convolutions(draw):
    n = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    stride, dilation = _per_dim(draw, n, 1, 3), _per_dim(draw, n, 1, 2)
    padding = _per_dim(draw, n, 0, 2)
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1))  # PyTorch's rule
                           for s, d in zip(stride, dilation))
    layer = getattr(nn, f"ConvTranspose{n}d")(
        c_in, c_out, _per_dim(draw, n, 1, 3), stride=stride, padding=padding,
        output_padding=output_padding, groups=groups, bias=draw(st.booleans()),
        dilation=dilation)
    return layer, (c_in,) + _spatial(draw, n)


@st.composite
def pools(draw):
    n = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["max", "avg", "adaptive_avg", "adaptive_max"]))
    spatial = _spatial(draw, n)
    if kind.startswith("adaptive"):
        # Global, or output sizes that divide the input (the ONNX-expressible cases).
        sizes = tuple(draw(st.sampled_from([d for d in range(1, s + 1) if s % d == 0] + [None]))
                      for s in spatial)
        cls = "AdaptiveAvgPool" if kind == "adaptive_avg" else "AdaptiveMaxPool"
        layer = getattr(nn, f"{cls}{n}d")(sizes)
    else:
        kernel = _per_dim(draw, n, 1, 3)
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        stride = _per_dim(draw, n, 1, 3)
        if kind == "max":
            layer = getattr(nn, f"MaxPool{n}d")(kernel, stride, padding,
                                                dilation=_per_dim(draw, n, 1, 2),
                                                ceil_mode=draw(st.booleans()))
        else:
            layer = getattr(nn, f"AvgPool{n}d")(kernel, stride, padding,
                                                ceil_mode=draw(st.booleans()),
                                                count_include_pad=draw(st.booleans()))
    return layer, (draw(st.integers(1, 2)),) + spatial


@st.composite
def other_layers(draw):
    c = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["bn", "linear", "flatten", "act", "softmax", "dropout"]))
    if kind == "bn":
        n = draw(st.integers(0, 3))
        cls = getattr(nn, f"BatchNorm{max(n, 1)}d")
        layer = cls(c, eps=draw(st.sampled_from([1e-5, 1e-3])), affine=draw(st.booleans()))
        layer = randomize_batchnorm(layer, np.random.default_rng(draw(st.integers(0, 9))))
        return layer, (c,) + _spatial(draw, n) if n else (c,)
    if kind == "linear":
        lead = draw(st.sampled_from([(), (2,), (2, 3)]))
        return nn.Linear(c, draw(st.integers(1, 4)), bias=draw(st.booleans())), lead + (c,)
    if kind == "flatten":
        shape = (c,) + _spatial(draw, 2)
        start = draw(st.integers(1, 3))
        return nn.Flatten(start, draw(st.integers(start, 3))), shape
    shape = (c,) + _spatial(draw, draw(st.integers(1, 2)))
    if kind == "softmax":
        cls = draw(st.sampled_from([nn.Softmax, nn.LogSoftmax]))
        return cls(dim=draw(st.sampled_from([1, -1, 2]))), shape
    if kind == "dropout":
        return draw(st.sampled_from([nn.Dropout, nn.Dropout1d]))(0.5), (c, 4)
    layer = draw(st.sampled_from([nn.ReLU(), nn.LeakyReLU(0.2), nn.ELU(0.7), nn.Sigmoid(),
                                  nn.Tanh(), nn.GELU(), nn.GELU("tanh")]))
    return layer, shape


def _check(case, seed=0):
    layer, shape = case
    assume(_fits(layer, shape))
    cnnkit.manual_seed(seed)
    try:
        assert_runtime_matches(layer, shape, batch=2, seed=seed)
    except NotExportable as err:  # the one refusal a drawn pool may meet (mixed ceil dims)
        assume("ceil" not in str(err))
        raise


@settings(max_examples=130)
@given(convolutions())
def test_convolution(case):
    _check(case)


@settings(max_examples=60)
@given(transposed_convolutions())
def test_transposed_convolution(case):
    _check(case)


@settings(max_examples=90)
@given(pools())
def test_pooling(case):
    _check(case)


@settings(max_examples=50)
@given(other_layers())
def test_other_layers(case):
    _check(case)
