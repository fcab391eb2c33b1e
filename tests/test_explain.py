"""cnnkit.explain and ``cnnkit explain``: every printed number recomputed by an oracle."""
import numpy as np
import pytest
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit import functional as F
from cnnkit.explain import (
    backprop_1d,
    compare_params,
    conv_matrix,
    conv_steps,
    explain_backprop,
    explain_conv,
    explain_matrix,
    explain_params,
    input_gradient_terms,
    make_example,
    output_size_formula,
    toeplitz_blocks,
)




def torch_conv(x, w, b=None, stride=1, padding=0):
    out = torch.nn.functional.conv2d(torch.from_numpy(x)[None], torch.from_numpy(w),
                                     None if b is None else torch.from_numpy(b), stride, padding)
    return out[0].numpy()


# -- conv steps ------------------------------------------------------------------------------------

def test_default_example_is_the_cs231n_figure():
    ex = make_example()
    assert ex.x.shape == (3, 5, 5) and ex.weight.shape == (2, 3, 3, 3) and ex.bias.shape == (2,)
    assert ex.stride == 2 and ex.padding == 1
    assert set(np.unique(ex.x)) <= {0, 1, 2} and set(np.unique(ex.weight)) <= {-1, 0, 1}
    steps = conv_steps(ex.x, ex.weight, ex.bias, ex.stride, ex.padding)
    assert steps.output.shape == (2, 3, 3) and steps.padded.shape == (3, 7, 7)
    assert np.array_equal(make_example().x, ex.x)  # seeded: reproducible


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), (3, 2), (2, 0)])
def test_steps_reproduce_the_layer_output(rng, stride, padding):
    x, w, b = rng.standard_normal((2, 6, 7)), rng.standard_normal((3, 2, 3, 2)), \
        rng.standard_normal(3)
    steps = conv_steps(x, w, b, stride, padding)
    expected = torch_conv(x, w, b, stride, padding)
    np.testing.assert_allclose(steps.output, expected, rtol=1e-12, atol=1e-12)
    rows, cols = steps.positions.T
    np.testing.assert_allclose(steps.results, expected[:, rows, cols].T, rtol=1e-12, atol=1e-12)
    # The intermediates are what they claim to be: products = patch ⊙ w, sums over (a, b).
    i, j = steps.positions[-1]
    patch = np.pad(x, ((0, 0), (padding,) * 2, (padding,) * 2))[
        :, i * stride:i * stride + 3, j * stride:j * stride + 2]
    np.testing.assert_array_equal(steps.patches[-1], patch)
    np.testing.assert_allclose(steps.products[-1], patch[None] * w)
    np.testing.assert_allclose(steps.channel_sums[-1], (patch[None] * w).sum(axis=(2, 3)))


def test_steps_for_chosen_positions_only(rng):
    ex = make_example()
    steps = conv_steps(ex.x, ex.weight, ex.bias, 2, 1, positions=[(2, 1)])
    assert steps.results.shape == (1, 2)
    np.testing.assert_array_equal(steps.results[0], steps.output[:, 2, 1])
    with pytest.raises(ValueError, match="outside the 3×3 output"):
        conv_steps(ex.x, ex.weight, ex.bias, 2, 1, positions=[(3, 0)])


def test_output_size_formula():
    assert output_size_formula(5, 3, 2, 1) == "(5 + 2·1 − 3)/2 + 1 = 3"
    assert output_size_formula(7, 3) == "(7 + 2·0 − 3)/1 + 1 = 5"
    assert output_size_formula(6, 3, 2, 1) == "⌊(6 + 2·1 − 3)/2⌋ + 1 = ⌊2.5⌋ + 1 = 3"


def test_explain_conv_text_shows_every_step_and_checks():
    text = explain_conv(make_example(), positions=[(0, 0), (1, 2)])
    assert "(5 + 2·1 − 3)/2 + 1 = 3" in text and "3×7×7" in text
    assert text.count("✓") == 4 and "✗" not in text  # 2 positions × 2 filters
    assert "x[2] patch" in text and "sum over channels" in text and "+ bias b1" in text


def test_make_example_rejects_a_kernel_that_does_not_fit():
    with pytest.raises(ValueError, match="kernel_size"):
        make_example(input_size=2, kernel_size=5, padding=0)
    with pytest.raises(ValueError, match="stride"):
        make_example(stride=0)


# -- backprop --------------------------------------------------------------------------------------

def test_x3_receives_w3_dO1_plus_w2_dO2_plus_w1_dO3():
    terms = input_gradient_terms(5, 3)
    # (tap, output), 0-based: x3 -> w3·dO1 + w2·dO2 + w1·dO3
    assert terms[2] == [(2, 0), (1, 1), (0, 2)]
    assert terms[0] == [(0, 0)] and terms[4] == [(2, 2)]
    text = explain_backprop()
    assert "dL/dx3 = w3·dO1 + w2·dO2 + w1·dO3" in text
    assert "dL/dw1 = x1·dO1 + x2·dO2 + x3·dO3" in text
    assert text.count("✓") == 2 and "✗" not in text


@pytest.mark.parametrize("n, k", [(5, 3), (8, 4), (6, 1), (4, 4)])
def test_backprop_formulas_match_torch_autograd(rng, n, k):
    x, w, dout = rng.standard_normal(n), rng.standard_normal(k), rng.standard_normal(n - k + 1)
    r = backprop_1d(x, w, dout)
    xt = torch.tensor(x[None, None], requires_grad=True)
    wt = torch.tensor(w[None, None], requires_grad=True)
    torch.nn.functional.conv1d(xt, wt).backward(torch.tensor(dout[None, None]))
    for dx in (r.dx_convolve, r.dx_flipped_correlate, r.dx_autograd):
        np.testing.assert_allclose(dx, xt.grad[0, 0].numpy(), rtol=1e-12, atol=1e-12)
    for dw in (r.dw_correlate, r.dw_autograd):
        np.testing.assert_allclose(dw, wt.grad[0, 0].numpy(), rtol=1e-12, atol=1e-12)
    # The flip matters: correlating with the unflipped kernel is wrong for a non-symmetric w.
    if k > 1 and not np.allclose(w, w[::-1]):
        assert not np.allclose(np.correlate(dout, w, "full"), r.dx_convolve)


# -- params ----------------------------------------------------------------------------------------

def test_notes_five_unit_example():
    r = compare_params((5,), kernel_size=3, filters=1, stride=1, padding=1, bias=False)
    assert (r.fc_weights, r.conv_weights) == (25, 3)
    assert r.fc_connections_per_output == 5 and r.conv_connections_per_output == 3
    assert r.conv_links == 13  # 3 + 3 + 3 + 2 + 2: the border outputs see 2 real inputs
    assert (r.conv_weight_uses_min, r.conv_weight_uses_max) == (4, 5)


def test_imagenet_sized_layer():
    r = compare_params((224, 224, 3), kernel_size=3, filters=64)
    assert r.output_shape == (224, 224, 64)
    assert r.conv_weights == 64 * 3 * 3 * 3 and r.conv_biases == 64
    assert r.fc_weights == (224 * 224 * 3) * (224 * 224 * 64)
    assert r.conv_connections_per_output == 27
    assert r.conv_weight_uses_max == 224 * 224 and r.conv_weight_uses_min == 223 * 223
    text = explain_params()
    assert "1,728" in text and "483,385,147,392" in text and "25 weights" in text


@pytest.mark.parametrize("shape, k, filters, stride, padding", [
    ((6, 7, 2), 3, 4, 2, 1), ((5, 5, 1), 2, 2, 1, "same"), ((9,), 4, 3, 2, "full"),
    ((4, 6, 3), (3, 1), 2, (1, 2), 0)])
def test_links_and_uses_equal_the_conv_matrix(shape, k, filters, stride, padding):
    r = compare_params(shape, k, filters, stride, padding)
    *spatial, c = r.input_shape
    ksize = r.kernel_size
    ones = np.ones((filters, c) + ksize)
    m = conv_matrix((c, *spatial), ones, stride, padding)
    assert m.shape == (np.prod(r.output_shape), np.prod(r.input_shape))
    assert np.count_nonzero(m) == r.conv_links
    # Uses of a tap = non-zeros in the matrix of a kernel with only that tap set.
    uses = []
    for tap in np.ndindex(ksize):
        single = np.zeros((1, 1) + ksize)
        single[(0, 0) + tap] = 1
        uses.append(np.count_nonzero(conv_matrix((1, *spatial), single, stride, padding)))
    assert (min(uses), max(uses)) == (r.conv_weight_uses_min, r.conv_weight_uses_max)


# -- conv as a matrix ------------------------------------------------------------------------------

def test_conv_matrix_2d_equals_conv_and_its_transpose_is_the_input_gradient(rng):
    x = rng.standard_normal((5, 6))
    k = rng.standard_normal((3, 2))
    m = conv_matrix(x.shape, k, stride=1, padding=1)
    xt = cnnkit.tensor(x[None, None], requires_grad=True)
    y = F.conv2d(xt, cnnkit.tensor(k[None, None]), padding=1)
    np.testing.assert_allclose(m @ x.ravel(), y.data.ravel(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    np.testing.assert_allclose(m.T @ g.ravel(), xt.grad.ravel(), rtol=1e-12, atol=1e-12)


def test_conv_matrix_1d_is_toeplitz_and_true_convolution_matches_scipy(rng):
    w = np.array([1.0, 2.0, 3.0])
    m = conv_matrix((5,), w)
    assert np.array_equal(m, [[1, 2, 3, 0, 0], [0, 1, 2, 3, 0], [0, 0, 1, 2, 3]])
    x = rng.standard_normal(5)
    np.testing.assert_allclose(conv_matrix((5,), w, convolve=True) @ x,
                               scipy.signal.convolve(x, w, "valid"))
    img, k = rng.standard_normal((6, 5)), rng.standard_normal((3, 3))
    np.testing.assert_allclose(conv_matrix(img.shape, k, convolve=True) @ img.ravel(),
                               scipy.signal.convolve2d(img, k, "valid").ravel(), atol=1e-12)


def test_conv_matrix_2d_is_doubly_block_toeplitz(rng):
    k = rng.standard_normal((3, 3))
    m = conv_matrix((6, 7), k)
    blocks = toeplitz_blocks(m, (6, 7), (4, 5))           # (OH, H, OW, W)
    # Block Toeplitz: block (i, r) depends only on r − i ...
    np.testing.assert_array_equal(blocks[:-1, :-1], blocks[1:, 1:])
    # ... and is the Toeplitz band of kernel row r − i (zero if there is no such row).
    for i in range(4):
        for r in range(6):
            a = r - i
            expected = conv_matrix((7,), k[a]) if 0 <= a < 3 else np.zeros((5, 7))
            np.testing.assert_array_equal(blocks[i, r], expected)
            np.testing.assert_array_equal(blocks[i, r][:-1, :-1], blocks[i, r][1:, 1:])


@settings(max_examples=25)
@given(n_dims=st.sampled_from([1, 2]), size=st.integers(3, 7), k=st.integers(1, 3),
       stride=st.integers(1, 3), padding=st.integers(0, 2), dilation=st.integers(1, 2),
       channels=st.integers(1, 2), filters=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_conv_matrix_matches_torch_for_any_layer(n_dims, size, k, stride, padding, dilation,
                                                  channels, filters, seed):
    if size + 2 * padding < dilation * (k - 1) + 1:
        return
    rng = np.random.default_rng(seed)
    spatial = (size,) * n_dims
    x = rng.standard_normal((channels,) + spatial)
    w = rng.standard_normal((filters, channels) + (k,) * n_dims)
    m = conv_matrix(x.shape, w, stride, padding, dilation)
    conv = torch.nn.functional.conv1d if n_dims == 1 else torch.nn.functional.conv2d
    expected = conv(torch.from_numpy(x)[None], torch.from_numpy(w), stride=stride,
                    padding=padding, dilation=dilation)[0].numpy()
    np.testing.assert_allclose(m @ x.ravel(), expected.ravel(), rtol=1e-10, atol=1e-12)


def test_conv_matrix_guards():
    with pytest.raises(ValueError, match="max_entries"):
        conv_matrix((100, 100), np.ones((3, 3)), max_entries=1000)
    with pytest.raises(ValueError, match="kernel"):
        conv_matrix((5, 5), np.ones(3))
    assert "✓" in explain_matrix() and "w33" in explain_matrix()
    assert "✓" in explain_matrix((6,), 3, 2, 1)


# -- the command -----------------------------------------------------------------------------------

def test_explain_conv_command(run_cli):
    code, out, _ = run_cli("explain", "conv")
    assert code == 0 and "(5 + 2·1 − 3)/2 + 1 = 3" in out and "✓" in out and "✗" not in out
    code, out, _ = run_cli("explain", "conv", "--input-size", "6x5", "--channels", "2",
                           "--kernel-size", "2", "--filters", "3", "--stride", "1",
                           "--padding", "0", "--seed", "3", "--positions", "all")
    assert code == 0 and out.count("✓") == 3 * 5 * 4 and "✗" not in out


def test_explain_backprop_params_matrix_commands(run_cli):
    code, out, _ = run_cli("explain", "backprop")
    assert code == 0 and "w3·dO1 + w2·dO2 + w1·dO3" in out
    code, out, _ = run_cli("explain", "params", "--input", "32x32x3", "--kernel", "5",
                           "--filters", "16", "--padding", "0")
    assert code == 0 and "28×28×16" in out and "1,200" in out
    code, out, _ = run_cli("explain", "matrix", "--input-size", "5")
    assert code == 0 and "[w1 w2 w3  ·  ·]" in out


@pytest.mark.parametrize("args", [
    ["explain", "conv", "--positions", "1"],
    ["explain", "conv", "--kernel-size", "9", "--padding", "0"],
    ["explain", "params", "--input", "axb"],
    ["explain", "params", "--padding", "half"],
    ["explain", "matrix", "--input-size", "2x2x2"],
])
def test_explain_errors_are_one_line(run_cli, args):
    code, _, err = run_cli(*args)
    assert code == 2 and err.startswith("cnnkit explain: error:")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_explain_help(run_cli):
    for topic in ("conv", "backprop", "params", "matrix"):
        code, out, _ = run_cli("explain", topic, "--help")
        assert code == 0 and "usage: cnnkit explain " + topic in out
