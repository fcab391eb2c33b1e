"""conv_output_shape and padding resolution: the classic examples, and agreement with PyTorch.

    out = floor((in + pad_lo + pad_hi − d·(k − 1) − 1) / s) + 1
    transposed: out = (in − 1)·s − pad_lo − pad_hi + d·(k − 1) + output_padding + 1
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit.conv_arithmetic import conv_output_shape, resolve_padding, same_padding, to_tuple

TF = torch.nn.functional
SHAPE_EXAMPLES = 80
SAME_EXAMPLES = 100


@pytest.mark.parametrize("args, kwargs, expected", [
    (((7, 7), 3), {}, (5, 5)),                                    # docs/concepts.md's 7×7, k3, s1
    (((5, 5), 3), dict(stride=2, padding=1), (3, 3)),             # 5×5, pad 1, k3, s2
    ((7, 3), {}, (5,)),                                           # an int is one spatial dim
    (((7, 9), (3, 5)), dict(stride=(2, 1)), (3, 5)),              # non-square
    (((7,), 3), dict(dilation=2), (3,)),                          # span d·(k−1)+1 = 5
    (((32, 32), 5), dict(padding=2), (32, 32)),
    (((6, 6, 6), 2), dict(stride=2), (3, 3, 3)),
    (((7,), 3), dict(padding=((2, 0),)), (7,)),                   # per-side
    (((7, 8), 3), dict(padding="valid"), (5, 6)),
    (((7, 8), 4), dict(padding="same"), (7, 8)),
    (((7, 8), 3), dict(stride=2, padding="same"), (4, 4)),        # ceil(in / 2)
    (((7, 8), (3, 2)), dict(stride=3, padding="same"), (3, 3)),
    (((7, 8), (3, 2)), dict(padding="full"), (9, 9)),             # in + k − 1
    (((7,), 3), dict(dilation=2, padding="full"), (11,)),
    (((5,), 2), dict(stride=2), (2,)),
    (((5,), 2), dict(stride=2, ceil_mode=True), (3,)),            # the partial last window
    (((5,), 2), dict(stride=2, padding=1, ceil_mode=True), (3,)),  # 4th would start in padding
    (((6,), 3), dict(stride=2, padding=1, ceil_mode=True), (4,)),
])
def test_classic_examples(args, kwargs, expected):
    assert conv_output_shape(*args, **kwargs) == expected


@pytest.mark.parametrize("args, kwargs, expected", [
    (((3, 3), 3), dict(stride=2, padding=1), (5, 5)),             # inverts 5×5, pad 1, k3, s2
    (((3, 3), 3), dict(stride=2, padding=1, output_padding=1), (6, 6)),
    (((5, 5), 3), {}, (7, 7)),                                    # inverts 7×7 -> 5×5
    (((4,), 3), dict(dilation=3, output_padding=2), (12,)),       # output_padding >= stride
    (((4,), 3), dict(stride=2, padding=((1, 0),)), (8,)),
])
def test_transposed_examples(args, kwargs, expected):
    assert conv_output_shape(*args, transposed=True, **kwargs) == expected


def test_transposed_inverts_the_forward_shape():
    for n in range(4, 12):
        for k, s, p, d in [(3, 2, 1, 1), (4, 3, 0, 1), (2, 2, 0, 2), (5, 1, 2, 1)]:
            (out,) = conv_output_shape(n, k, s, p, d)
            lost = (n + 2 * p - d * (k - 1) - 1) % s  # rows the floor dropped
            assert conv_output_shape(out, k, s, p, d, transposed=True,
                                     output_padding=lost) == (n,)


@pytest.mark.parametrize("size, kernel, stride, dilation, expected", [
    (7, 3, 1, 1, (1, 1)),
    (7, 4, 1, 1, (1, 2)),        # odd total: the extra cell on the high side, as torch/TF
    (7, 3, 2, 1, (1, 1)),
    (8, 3, 2, 1, (0, 1)),
    (8, 1, 3, 1, (0, 0)),        # never negative
    (9, 3, 1, 2, (2, 2)),
    (10, 4, 3, 2, (3, 3)),
])
def test_same_padding(size, kernel, stride, dilation, expected):
    assert same_padding(size, kernel, stride, dilation) == expected


def test_resolve_padding_forms():
    args = ((7, 8), (3, 4), (1, 1), (1, 1))
    assert resolve_padding(2, *args) == ((2, 2), (2, 2))
    assert resolve_padding((1, 0), *args) == ((1, 1), (0, 0))
    assert resolve_padding([1, 0], *args) == ((1, 1), (0, 0))
    assert resolve_padding(((1, 0), (0, 3)), *args) == ((1, 0), (0, 3))
    assert resolve_padding("valid", *args) == ((0, 0), (0, 0))
    assert resolve_padding("same", *args) == ((1, 1), (1, 2))
    assert resolve_padding("full", *args) == ((2, 2), (3, 3))
    assert resolve_padding(np.int64(1), *args) == ((1, 1), (1, 1))


def test_top_level_export():
    assert cnnkit.conv_output_shape((7, 7), 3) == (5, 5)


# -- hypothesis: agreement with the shapes torch actually produces ------------------------------

@settings(max_examples=SHAPE_EXAMPLES)
@given(st.data())
def test_shapes_agree_with_torch(data):
    n_dims = data.draw(st.integers(1, 3))
    spatial = tuple(data.draw(st.integers(1, 12 if n_dims < 3 else 6)) for _ in range(n_dims))
    kernel = tuple(data.draw(st.integers(1, 4)) for _ in range(n_dims))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(n_dims))
    dilation = tuple(data.draw(st.integers(1, 3)) for _ in range(n_dims))
    padding = tuple(data.draw(st.integers(0, 2)) for _ in range(n_dims))
    fits = all(n + 2 * p >= d * (k - 1) + 1
               for n, k, p, d in zip(spatial, kernel, padding, dilation))
    assume(fits)
    x = torch.zeros((1, 1) + spatial)
    w = torch.zeros((1, 1) + kernel)
    conv = getattr(TF, f"conv{n_dims}d")
    expected = tuple(conv(x, w, None, stride, padding, dilation).shape[2:])
    assert conv_output_shape(spatial, kernel, stride, padding, dilation) == expected

    output_padding = tuple(data.draw(st.integers(0, max(s, d) - 1))
                           for s, d in zip(stride, dilation))
    conv_t = getattr(TF, f"conv_transpose{n_dims}d")
    transposed = tuple(conv_t(x, w, None, stride, 0, output_padding, 1, dilation).shape[2:])
    assert conv_output_shape(spatial, kernel, stride, 0, dilation, transposed=True,
                             output_padding=output_padding) == transposed

    pool_padding = tuple(min(p, k // 2) for p, k in zip(padding, kernel))
    pool = getattr(TF, f"max_pool{n_dims}d")
    if any(n + 2 * p < d * (k - 1) + 1
           for n, k, p, d in zip(spatial, kernel, pool_padding, dilation)):
        return
    for ceil_mode in (False, True):
        pooled = tuple(pool(x, kernel, stride, pool_padding, dilation, ceil_mode).shape[2:])
        assert conv_output_shape(spatial, kernel, stride, pool_padding, dilation,
                                 ceil_mode=ceil_mode) == pooled


@settings(max_examples=SAME_EXAMPLES)
@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 4), st.integers(1, 3))
def test_same_gives_ceil_of_size_over_stride(size, kernel, stride, dilation):
    """'same' keeps ceil(in / stride) outputs and splits the padding evenly, extra cell high."""
    lo, hi = same_padding(size, kernel, stride, dilation)
    assert 0 <= hi - lo <= 1
    assert conv_output_shape(size, kernel, stride, "same", dilation) == (math.ceil(size / stride),)
    # and it is the least padding that does so: one cell less and the output shrinks
    span, smaller = dilation * (kernel - 1) + 1, size + lo + hi - 1
    if lo + hi:
        assert smaller < span or (smaller - span) // stride + 1 < math.ceil(size / stride)


@pytest.mark.parametrize("value, expected", [
    (2, (2, 2)), ((1, 3), (1, 3)), ([4], (4, 4)), (np.int64(5), (5, 5)),
    ((np.int32(1), 2), (1, 2)),
])
def test_to_tuple_gives_plain_ints(value, expected):
    result = to_tuple(value, 2, "stride")
    assert result == expected and all(type(v) is int for v in result)


@pytest.mark.parametrize("value", [True, (1, True), (1, 2, 3), 1.0, (1.0, 2), "2"])
def test_to_tuple_refuses_bools_floats_and_wrong_lengths(value):
    with pytest.raises(TypeError, match="stride"):
        to_tuple(value, 2, "stride")


@pytest.mark.parametrize("kernel_size", [3.0, (3.0, 3), True, (True, 3), [3, 3.5]])
def test_a_kept_answer_is_not_given_to_an_argument_that_only_equals_its_key(kernel_size):
    """Answers are kept for plain-int arguments; 3.0 and True equal 3 and 1 as keys, but are
    still refused after the int's answer was kept."""
    assert conv_output_shape((7, 7), 3) == (5, 5) and conv_output_shape((7, 7), 1) == (7, 7)
    assert conv_output_shape((7, 7), (3, 3)) == (5, 5)
    with pytest.raises(TypeError, match="kernel_size"):
        conv_output_shape((7, 7), kernel_size)


def test_errors_are_raised_on_every_call_not_kept():
    for _ in range(2):
        with pytest.raises(ValueError, match="larger than the padded input"):
            conv_output_shape((2, 2), 3)
