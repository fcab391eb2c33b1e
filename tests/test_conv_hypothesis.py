"""Random convolution configurations (hypothesis) against PyTorch and the reference loops.

Each example draws a dimensionality (1-3), a channel layout (dense, grouped, depthwise, depthwise
with a channel multiplier), kernel, stride, dilation, a padding form (int, per-dim tuple, per-side
pairs, 'valid', 'same', 'full'), a padding_mode, bias, dtype and whether the input is batched,
then checks the output and every gradient against torch (``torch_oracle``). The runs are seeded
(the 'ci' profile in conftest.py is derandomized); the example counts below add up, with the
pooling and arithmetic ones, to well over 500 per run.
"""
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch_oracle import (
    compare_with_torch,
    conv_terms,
    conv_transpose_terms,
    pad_pairs,
    random_arrays,
    torch_conv,
    torch_conv_transpose,
)

import cnnkit
import cnnkit.functional as F
import cnnkit.reference as ref

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}

CONV_EXAMPLES = 260
TRANSPOSE_EXAMPLES = 150
REFERENCE_EXAMPLES = 40


def per_dim(draw, n_dims, low, high):
    return tuple(draw(st.integers(low, high)) for _ in range(n_dims))


def draw_channels(draw):
    """(in channels, out channels, groups) for a dense, grouped or depthwise layer."""
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise", "multiplier"]))
    if kind == "dense":
        return draw(st.integers(1, 6)), draw(st.integers(1, 6)), 1
    if kind == "grouped":
        groups = draw(st.integers(2, 3))
        return groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), groups
    channels = draw(st.integers(1, 6 if kind == "depthwise" else 3))
    return channels, channels * (1 if kind == "depthwise" else draw(st.integers(2, 3))), channels


def draw_padding(draw, n_dims, forms=("int", "tuple", "pairs", "valid", "same", "full")):
    form = draw(st.sampled_from(forms))
    if form == "int":
        return draw(st.integers(0, 3))
    if form == "tuple":
        return per_dim(draw, n_dims, 0, 3)
    if form == "pairs":
        return tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(n_dims))
    return form


def draw_batch(draw, channels, spatial):
    """(N, C, *spatial), or unbatched (C, *spatial)."""
    if draw(st.booleans()):
        return (channels,) + spatial
    return (draw(st.integers(1, 3)), channels) + spatial


@st.composite
def conv_configs(draw):
    n_dims = draw(st.sampled_from([1, 2, 2, 3]))
    max_size = 12 if n_dims < 3 else 6
    c_in, c_out, groups = draw_channels(draw)
    kernel = per_dim(draw, n_dims, 1, 4 if n_dims < 3 else 3)
    stride = per_dim(draw, n_dims, 1, 3)
    dilation = per_dim(draw, n_dims, 1, 3 if n_dims < 3 else 2)
    # Sizes from a little below the dilated kernel's span (then only padding makes it fit) up.
    spatial = tuple(draw(st.integers(max(1, d * (k - 1) - 2), max_size))
                    for k, d in zip(kernel, dilation))
    padding = draw_padding(draw, n_dims)
    padding_mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    pairs = pad_pairs(padding, spatial, kernel, stride, dilation)
    assume(all(n + lo + hi >= d * (k - 1) + 1
               for n, (lo, hi), k, d in zip(spatial, pairs, kernel, dilation)))
    if padding_mode == "reflect":
        assume(all(max(pair) < n for n, pair in zip(spatial, pairs)))
    if padding_mode == "circular":
        assume(all(max(pair) <= n for n, pair in zip(spatial, pairs)))
    return dict(
        x_shape=draw_batch(draw, c_in, spatial), w_shape=(c_out, c_in // groups) + kernel,
        bias=draw(st.booleans()), dtype=draw(st.sampled_from([np.float32, np.float64])),
        seed=draw(st.integers(0, 2**16)),
        kwargs=dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                    padding_mode=padding_mode))


@settings(max_examples=CONV_EXAMPLES)
@given(conv_configs())
def test_random_conv_matches_torch(config):
    rng = np.random.default_rng(config["seed"])
    w_shape, kwargs = config["w_shape"], config["kwargs"]
    n_dims = len(w_shape) - 2
    x, w, b = random_arrays(rng, [config["x_shape"], w_shape,
                                  (w_shape[0],) if config["bias"] else None], config["dtype"])

    def cnnkit_fn(x, w, b):
        return CONV[n_dims](x, w, b, **kwargs)
    out_shape = cnnkit_fn(cnnkit.tensor(x), cnnkit.tensor(w), None).shape
    expected_spatial = tuple(
        (n + lo + hi - d * (k - 1) - 1) // s + 1 for n, (lo, hi), k, s, d in zip(
            x.shape[-n_dims:], pad_pairs(kwargs["padding"], x.shape[-n_dims:], w_shape[2:],
                                         kwargs["stride"], kwargs["dilation"]),
            w_shape[2:], kwargs["stride"], kwargs["dilation"]))
    assert out_shape[-n_dims:] == expected_spatial
    if kwargs["padding"] == "same":
        assert out_shape[-n_dims:] == tuple(-(-n // s) for n, s in
                                            zip(x.shape[-n_dims:], kwargs["stride"]))
    compare_with_torch(cnnkit_fn, torch_conv(n_dims, **kwargs), [x, w, b],
                       conv_terms(x.shape, w_shape, kwargs["groups"], expected_spatial),
                       seed=config["seed"])


@st.composite
def conv_transpose_configs(draw):
    n_dims = draw(st.sampled_from([1, 2, 2, 3]))
    c_in, c_out, groups = draw_channels(draw)
    kernel = per_dim(draw, n_dims, 1, 4 if n_dims < 3 else 3)
    stride = per_dim(draw, n_dims, 1, 3)
    dilation = per_dim(draw, n_dims, 1, 3 if n_dims < 3 else 2)
    # output_padding must be smaller than stride *or* dilation: up to max(s, d) − 1.
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    spatial = per_dim(draw, n_dims, 1, 6 if n_dims < 3 else 4)
    padding = draw_padding(draw, n_dims, forms=("int", "tuple", "pairs"))
    pairs = pad_pairs(padding, spatial, kernel, stride, dilation)
    assume(all((n - 1) * s - lo - hi + d * (k - 1) + op + 1 >= 1 for n, (lo, hi), k, s, d, op
               in zip(spatial, pairs, kernel, stride, dilation, output_padding)))
    return dict(
        x_shape=draw_batch(draw, c_in, spatial), w_shape=(c_in, c_out // groups) + kernel,
        bias=draw(st.booleans()), dtype=draw(st.sampled_from([np.float32, np.float64])),
        seed=draw(st.integers(0, 2**16)),
        kwargs=dict(stride=stride, padding=padding, output_padding=output_padding,
                    groups=groups, dilation=dilation))


@settings(max_examples=TRANSPOSE_EXAMPLES)
@given(conv_transpose_configs())
def test_random_conv_transpose_matches_torch(config):
    rng = np.random.default_rng(config["seed"])
    w_shape, kwargs = config["w_shape"], config["kwargs"]
    n_dims, groups = len(w_shape) - 2, kwargs["groups"]
    x, w, b = random_arrays(rng, [config["x_shape"], w_shape,
                                  (w_shape[1] * groups,) if config["bias"] else None],
                            config["dtype"])

    def cnnkit_fn(x, w, b):
        return CONV_T[n_dims](x, w, b, **kwargs)
    out_shape = cnnkit_fn(cnnkit.tensor(x), cnnkit.tensor(w), None).shape
    compare_with_torch(cnnkit_fn, torch_conv_transpose(n_dims, **kwargs), [x, w, b],
                       conv_transpose_terms(x.shape, w_shape, groups, out_shape[-n_dims:]),
                       seed=config["seed"])


@st.composite
def tiny_conv_configs(draw):
    """Shapes small enough for the reference loops."""
    n_dims = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = per_dim(draw, n_dims, 1, 3 if n_dims < 3 else 2)
    stride = per_dim(draw, n_dims, 1, 2)
    dilation = per_dim(draw, n_dims, 1, 2)
    spatial = tuple(draw(st.integers(d * (k - 1) + 1, 6 if n_dims < 3 else 4))
                    for k, d in zip(kernel, dilation))
    pairs = tuple((draw(st.integers(0, min(2, n - 1))), draw(st.integers(0, min(2, n - 1))))
                  for n in spatial)
    return dict(x_shape=(draw(st.integers(1, 2)), c_in) + spatial,
                w_shape=(c_out, c_in // groups) + kernel, seed=draw(st.integers(0, 2**16)),
                mode=draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"])),
                kwargs=dict(stride=stride, padding=pairs, dilation=dilation, groups=groups))


@settings(max_examples=REFERENCE_EXAMPLES)
@given(tiny_conv_configs())
def test_random_conv_matches_reference_loops(config):
    """Forward and both gradients against ``cnnkit.reference`` (float64, tight)."""
    rng = np.random.default_rng(config["seed"])
    x, w, b = random_arrays(rng, [config["x_shape"], config["w_shape"],
                                  (config["w_shape"][0],)], np.float64)
    kwargs, mode = config["kwargs"], config["mode"]
    xt, wt, bt = (cnnkit.tensor(a, requires_grad=True) for a in (x, w, b))
    y = CONV[x.ndim - 2](xt, wt, bt, padding_mode=mode, **kwargs)
    # The reference pads explicitly, then convolves without padding.
    xp = ref.pad_input(x, kwargs["padding"], mode)
    unpadded = dict(kwargs, padding=0)
    np.testing.assert_allclose(y.data, ref.conv_forward(xp, w, b, **unpadded), rtol=1e-12,
                               atol=1e-12)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    np.testing.assert_allclose(wt.grad, ref.conv_backward_weight(dy, xp, w.shape, **unpadded),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bt.grad, ref.conv_backward_bias(dy), rtol=1e-12, atol=1e-12)
    if mode == "zeros":
        np.testing.assert_allclose(xt.grad, ref.conv_backward_input(dy, x.shape, w, **kwargs),
                                   rtol=1e-12, atol=1e-12)
