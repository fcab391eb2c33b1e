"""cnnkit.reference — the literal loops — against PyTorch, scipy and docs/concepts.md.

The reference loops are the oracle for the fast kernels, so they are checked here against
independent implementations (float64, tight tolerances) on small grids covering 1-D/2-D/3-D,
stride, dilation, groups (incl. depthwise), asymmetric padding, output_padding and the pooling
corner cases; the last section shows that deliberately broken variants turn these checks red.
"""
import numpy as np
import pytest
import scipy.signal

import cnnkit.reference as ref
from cnnkit.reference import conv as ref_conv
from cnnkit.reference import pooling as ref_pooling

torch = pytest.importorskip("torch")
F = torch.nn.functional

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}


def as_torch(a, requires_grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad)


def close(actual, expected):
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


def pairs_of(padding, ndim):
    if isinstance(padding, int):
        return ((padding, padding),) * ndim
    return tuple(p if isinstance(p, tuple) else (p, p) for p in padding)


def torch_pad_list(pairs):
    """((lo, hi) per dim, first dim first) -> F.pad's flat list, last dim first."""
    return [v for lo, hi in reversed(pairs) for v in (lo, hi)]


# ------------------------------------------------------------------------------------ padding

@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape, pairs", [
    ((2, 3, 5), ((2, 1),)),
    ((1, 2, 4, 5), ((1, 3), (0, 2))),
    ((1, 2, 3, 4, 3), ((1, 0), (2, 3), (0, 2))),
])
def test_pad_input_matches_torch_pad(rng, shape, pairs, mode):
    x = rng.standard_normal(shape)
    torch_mode = "constant" if mode == "zeros" else mode
    close(ref.pad_input(x, pairs, mode), F.pad(as_torch(x), torch_pad_list(pairs), torch_mode))


def test_pad_input_worked_rows():
    row = np.array([[[1, 2, 3]]])
    assert ref.pad_input(row, [(2, 2)], "zeros").tolist() == [[[0, 0, 1, 2, 3, 0, 0]]]
    assert ref.pad_input(row, [(2, 2)], "reflect").tolist() == [[[3, 2, 1, 2, 3, 2, 1]]]
    assert ref.pad_input(row, [(2, 2)], "replicate").tolist() == [[[1, 1, 1, 2, 3, 3, 3]]]
    assert ref.pad_input(row, [(2, 2)], "circular").tolist() == [[[2, 3, 1, 2, 3, 1, 2]]]


def test_pad_input_rejects_bad_arguments():
    x = np.zeros((1, 1, 3))
    with pytest.raises(ValueError, match="mode"):
        ref.pad_input(x, [(1, 1)], "mirror")
    with pytest.raises(ValueError, match="reflect"):
        ref.pad_input(x, [(3, 0)], "reflect")
    with pytest.raises(ValueError, match="padding_pairs"):
        ref.pad_input(x, [(-1, 0)])
    with pytest.raises(TypeError, match="x"):
        ref.pad_input([1, 2, 3], [(1, 1)])


# -------------------------------------------------------------------------------- convolution

# (in_size, kernel_size, stride, padding, dilation, C, K, groups)
CONV_CASES = [
    ((7,), (3,), 1, 0, 1, 2, 3, 1),
    ((9,), (2,), 2, 1, 2, 4, 4, 2),
    ((8,), (3,), 3, ((2, 0),), 1, 3, 3, 3),                     # depthwise, asymmetric padding
    ((5, 6), (3, 3), 1, 1, 1, 3, 2, 1),
    ((7, 7), (3, 2), (2, 1), (1, 0), (1, 2), 4, 6, 2),
    ((6, 5), (2, 3), 2, ((0, 1), (2, 1)), 1, 3, 6, 3),          # depthwise, channel multiplier 2
    ((6, 7), (3, 3), (3, 2), ((1, 2), (0, 1)), (2, 1), 2, 2, 1),  # stride doesn't divide the span
    ((4, 5), (1, 1), 1, 0, 1, 3, 2, 1),                         # pointwise
    ((4, 5, 3), (2, 3, 2), (1, 2, 1), 1, (1, 1, 2), 2, 4, 2),
    ((5, 4, 4), (3, 3, 2), 2, ((1, 0), (0, 1), (1, 1)), 1, 2, 2, 2),  # depthwise 3-D
]
CONV_IDS = [f"{len(c[0])}d-{i}" for i, c in enumerate(CONV_CASES)]


def conv_case_arrays(rng, case, batch=2):
    in_size, kernel, _, _, _, C, K, groups = case
    x = rng.standard_normal((batch, C) + in_size)
    w = rng.standard_normal((K, C // groups) + kernel)
    b = rng.standard_normal(K)
    return x, w, b


def torch_conv(x, w, b, stride, padding, dilation, groups):
    """F.convNd; asymmetric padding is applied with F.pad first (convNd only pads symmetrically)."""
    ndim = x.ndim - 2
    pairs = pairs_of(padding, ndim)
    if all(lo == hi for lo, hi in pairs):
        return CONV[ndim](x, w, b, stride, tuple(lo for lo, _ in pairs), dilation, groups)
    return CONV[ndim](F.pad(x, torch_pad_list(pairs)), w, b, stride, 0, dilation, groups)


def check_conv_forward(rng, case, conv=None):
    conv = conv or ref.conv_forward
    _, _, stride, padding, dilation, _, _, groups = case
    x, w, b = conv_case_arrays(rng, case)
    expected = torch_conv(as_torch(x), as_torch(w), as_torch(b), stride, padding, dilation, groups)
    close(conv(x, w, b, stride, padding, dilation, groups), expected)


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_forward_matches_torch(rng, case):
    check_conv_forward(rng, case)


@pytest.mark.parametrize("case", [c for c in CONV_CASES if len(c[0]) == 2])
def test_conv2d_forward_matches_torch(rng, case):
    check_conv_forward(rng, case, ref.conv2d_forward)


def test_conv_forward_without_bias_and_with_integers():
    x = np.arange(2 * 3 * 4).reshape(1, 2, 3, 4)
    w = np.arange(2 * 2 * 2 * 2).reshape(2, 2, 2, 2) - 5
    z = ref.conv_forward(x, w)
    assert z.dtype.kind == "i"
    close(z.astype(float), CONV[2](as_torch(x), as_torch(w)))


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_backward_formulas_match_torch_autograd(rng, case):
    _, _, stride, padding, dilation, _, _, groups = case
    x, w, b = conv_case_arrays(rng, case)
    xt, wt, bt = as_torch(x, True), as_torch(w, True), as_torch(b, True)
    z = torch_conv(xt, wt, bt, stride, padding, dilation, groups)
    dy = rng.standard_normal(tuple(z.shape))
    dx, dw, db = torch.autograd.grad(z, (xt, wt, bt), as_torch(dy))
    args = (stride, padding, dilation, groups)
    close(ref.conv_backward_input(dy, x.shape, w, *args), dx)
    close(ref.conv_backward_weight(dy, x, w.shape, *args), dw)
    close(ref.conv_backward_bias(dy), db)


def test_conv_rejects_bad_arguments(rng):
    x, w = rng.standard_normal((1, 4, 5, 5)), rng.standard_normal((2, 2, 3, 3))
    with pytest.raises(ValueError, match="groups"):
        ref.conv_forward(x, w, groups=3)
    with pytest.raises(ValueError, match="w"):
        ref.conv_forward(x, w, groups=1)  # w has 2 input channels, x has 4
    with pytest.raises(ValueError, match="stride"):
        ref.conv_forward(x, w, stride=(1, 2, 3), groups=2)
    with pytest.raises(ValueError, match="padding"):
        ref.conv_forward(x, w, padding=-1, groups=2)
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        ref.conv_forward(x, w, dilation=3, groups=2)
    with pytest.raises(TypeError, match="x"):
        ref.conv_forward(x.tolist(), w)
    with pytest.raises(ValueError, match="dy"):
        ref.conv_backward_input(np.zeros((1, 2, 4, 4)), x.shape, w, groups=2)


# (in_size, kernel_size, stride, padding, output_padding, dilation, C_in, C_out, groups)
CONV_T_CASES = [
    ((5,), (3,), 2, 1, 1, 1, 2, 4, 2),
    ((4,), (2,), 1, 0, 0, 2, 3, 2, 1),
    ((6,), (3,), 3, 2, 2, 1, 3, 3, 3),                          # depthwise
    ((3, 4), (3, 2), (2, 3), (1, 0), (1, 2), 1, 2, 3, 1),
    ((3, 3), (2, 3), 2, 1, 1, (2, 1), 4, 4, 2),                 # output_padding < dilation
    ((2, 3, 2), (2, 2, 3), (2, 1, 2), (0, 1, 1), (1, 0, 1), 1, 2, 2, 2),
]


@pytest.mark.parametrize("case", CONV_T_CASES, ids=[f"{len(c[0])}d-{i}"
                                                     for i, c in enumerate(CONV_T_CASES)])
def test_conv_transpose_forward_matches_torch(rng, case):
    in_size, kernel, stride, padding, output_padding, dilation, C_in, C_out, groups = case
    x = rng.standard_normal((2, C_in) + in_size)
    w = rng.standard_normal((C_in, C_out // groups) + kernel)
    b = rng.standard_normal(C_out)
    expected = CONV_T[len(in_size)](as_torch(x), as_torch(w), as_torch(b), stride, padding,
                                    output_padding, groups, dilation)
    close(ref.conv_transpose_forward(x, w, b, stride, padding, output_padding, groups, dilation),
          expected)


@pytest.mark.parametrize("case", [c for c in CONV_CASES if isinstance(c[3], int) or
                                  all(isinstance(p, int) for p in c[3])], ids=str)
def test_conv_transpose_is_formula_1(rng, case):
    """Scattering dy through w (conv_transpose) = gathering formula (1) (conv_backward_input)."""
    in_size, kernel, stride, padding, dilation, _, _, groups = case
    x, w, _ = conv_case_arrays(rng, case)
    dy = rng.standard_normal(ref.conv_forward(x, w, None, stride, padding, dilation, groups).shape)
    ndim = len(in_size)
    s, d = (ref_conv.spatial_tuple(v, ndim, "") for v in (stride, dilation))
    p = [lo for lo, _ in ref_conv.padding_pairs(padding, ndim)]
    # The floor in the output size loses up to s−1 input cells; output_padding restores them.
    lost = tuple(n - ref.conv_transpose_output_size(o, k, s_j, p_j, 0, d_j)
                 for n, o, k, s_j, p_j, d_j in zip(in_size, dy.shape[2:], kernel, s, p, d))
    scattered = ref.conv_transpose_forward(dy, w, None, stride, padding, lost, groups, dilation)
    close(scattered, ref.conv_backward_input(dy, x.shape, w, stride, padding, dilation, groups))


def test_conv_transpose_rejects_large_output_padding(rng):
    with pytest.raises(ValueError, match="output_padding"):
        ref.conv_transpose_forward(np.zeros((1, 1, 3)), np.zeros((1, 1, 2)), stride=2,
                                   output_padding=2)


# ------------------------------------------------------------------- true convolution, scipy

SIGNAL_SHAPES = [
    ((7,), (3,)), ((6,), (4,)), ((3,), (5,)), ((4,), (4,)),          # odd/even, kernel larger
    ((5, 6), (3, 2)), ((4, 4), (2, 4)), ((2, 3), (4, 5)),
    ((4, 3, 5), (2, 3, 2)), ((3, 4, 2), (3, 1, 2)), ((2, 2, 2), (3, 3, 4)),
]


@pytest.mark.parametrize("mode", ["full", "valid", "same"])
@pytest.mark.parametrize("x_shape, k_shape", SIGNAL_SHAPES, ids=str)
def test_true_convolve_and_correlate_match_scipy(rng, x_shape, k_shape, mode):
    x, k = rng.standard_normal(x_shape), rng.standard_normal(k_shape)
    close(ref.true_convolve(x, k, mode), scipy.signal.convolve(x, k, mode, method="direct"))
    close(ref.correlate(x, k, mode), scipy.signal.correlate(x, k, mode, method="direct"))


def test_correlate_conjugates_complex_kernels(rng):
    x = rng.standard_normal((5, 3)) + 1j * rng.standard_normal((5, 3))
    k = rng.standard_normal((2, 2)) + 1j * rng.standard_normal((2, 2))
    close(ref.correlate(x, k, "same"), scipy.signal.correlate(x, k, "same", method="direct"))


def test_correlation_is_convolution_with_the_flipped_kernel(rng):
    x, k = rng.standard_normal((5, 4, 3)), rng.standard_normal((2, 3, 2))
    close(ref.correlate(x, k), ref.true_convolve(x, np.flip(k)))
    # ... and a CNN layer (1 channel, no padding) computes the 'valid' correlation.
    close(ref.conv_forward(x[None, None], k[None, None])[0, 0], ref.correlate(x, k, "valid"))


def test_signal_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        ref.true_convolve(np.ones(3), np.ones(2), "wrap")
    with pytest.raises(ValueError, match="valid"):
        ref.correlate(np.ones((3, 2)), np.ones((2, 3)), "valid")
    with pytest.raises(ValueError, match="dims"):
        ref.correlate(np.ones((3, 2)), np.ones(2))


# ---------------------------------------------------------------------------------- pooling

# (in_size, kernel_size, stride, padding, dilation, ceil_mode)
MAX_POOL_CASES = [
    ((7,), 3, 2, 1, 1, False),
    ((8,), 2, None, 0, 1, True),
    ((5,), 2, 2, 1, 1, True),             # ceil_mode: the last window would start in the padding
    ((10,), 3, 2, 1, 2, True),
    ((5, 6), (3, 2), (2, 1), (1, 1), 1, True),
    ((6, 6), 3, 2, 1, 1, True),
    ((7, 5), 2, 3, 0, (2, 1), True),
    ((6, 7), (2, 3), None, (1, 1), (1, 2), False),
    ((5, 4, 6), 2, 2, (1, 0, 1), 1, True),
    ((4, 5, 5), (3, 2, 2), (1, 2, 2), (1, 1, 0), (1, 2, 1), False),
]


def distinct_values(rng, shape):
    """A random permutation: no ties, so the argmax is unambiguous."""
    return rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64)


@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=str)
def test_max_pool_values_indices_and_gradient_match_torch(rng, case):
    in_size, kernel, stride, padding, dilation, ceil_mode = case
    x = distinct_values(rng, (2, 3) + in_size)
    xt = as_torch(x, True)
    yt, it = MAX_POOL[len(in_size)](xt, kernel, stride, padding, dilation, ceil_mode,
                                    return_indices=True)
    values, indices = ref.max_pool(x, kernel, stride, padding, dilation, ceil_mode)
    close(values, yt)
    np.testing.assert_array_equal(indices, it.numpy())
    dy = rng.standard_normal(values.shape)
    (dx,) = torch.autograd.grad(yt, xt, as_torch(dy))
    close(ref.max_pool_backward(dy, indices, x.shape), dx)


def test_max_pool_ties_keep_the_first_maximum(rng):
    x = rng.integers(0, 2, (2, 2, 6, 5)).astype(np.float64)
    _, indices = ref.max_pool(x, 3, 2, 1, ceil_mode=True)
    _, expected = F.max_pool2d(as_torch(x), 3, 2, 1, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(indices, expected.numpy())


def test_max_pool_propagates_nan_like_torch(rng):
    x = distinct_values(rng, (1, 2, 5, 6))
    x[0, 0, 1, 2] = x[0, 1, 4, 5] = np.nan
    values, indices = ref.max_pool(x, 2, 2, 1)
    expected, expected_indices = F.max_pool2d(as_torch(x), 2, 2, 1, return_indices=True)
    np.testing.assert_array_equal(values, expected.numpy())  # NaN == NaN for this assert
    np.testing.assert_array_equal(indices, expected_indices.numpy())
    assert np.isnan(values[0, 0, 1, 1]) and indices[0, 0, 1, 1] == 1 * 6 + 2


# (in_size, kernel_size, stride, padding, ceil_mode)
AVG_POOL_CASES = [
    ((7,), 3, 2, 1, False),
    ((6,), 3, 2, 1, True),                # last window: 1 real cell, 1 padding cell, 1 overhang
    ((5,), 2, 2, 1, True),                # dropped last window
    ((5, 6), (3, 2), (2, 1), (1, 1), True),
    ((6, 6), 3, 2, 1, True),
    ((7, 5), (2, 3), (3, 2), (0, 1), True),
    ((5, 4, 6), 2, 2, (1, 0, 1), True),
    ((4, 5, 5), (3, 2, 3), (1, 2, 2), (1, 1, 1), False),
]


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=str)
def test_avg_pool_and_gradient_match_torch(rng, case, count_include_pad):
    in_size, kernel, stride, padding, ceil_mode = case
    x = rng.standard_normal((2, 3) + in_size)
    xt = as_torch(x, True)
    yt = AVG_POOL[len(in_size)](xt, kernel, stride, padding, ceil_mode, count_include_pad)
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    y = ref.avg_pool(x, *args)
    close(y, yt)
    dy = rng.standard_normal(y.shape)
    (dx,) = torch.autograd.grad(yt, xt, as_torch(dy))
    close(ref.avg_pool_backward(dy, x.shape, *args), dx)


def test_avg_pool_divisor_override_matches_torch(rng):
    x = rng.standard_normal((1, 2, 5, 6))
    close(ref.avg_pool(x, 3, 2, 1, True, divisor_override=5),
          F.avg_pool2d(as_torch(x), 3, 2, 1, True, divisor_override=5))


def test_avg_pool_ceil_mode_divisor_by_hand():
    """n=6, k=3, s=2, p=1, ceil_mode: windows start at −1, 1, 3, 5; the last one covers input
    cell 5, padding cell 6 and overhang cell 7 — divisor 2 with padding, 1 without."""
    x = np.arange(1.0, 7.0).reshape(1, 1, 6)
    assert ref.avg_pool(x, 3, 2, 1, True, True)[0, 0].tolist() == [
        (0 + 1 + 2) / 3, (2 + 3 + 4) / 3, (4 + 5 + 6) / 3, 6 / 2]
    assert ref.avg_pool(x, 3, 2, 1, True, False)[0, 0].tolist() == [
        (1 + 2) / 2, (2 + 3 + 4) / 3, (4 + 5 + 6) / 3, 6 / 1]


def test_pool_output_size_ceil_mode_rule():
    assert ref.pool_output_size(5, 2, 2, 1, ceil_mode=False) == 3
    assert ref.pool_output_size(5, 2, 2, 1, ceil_mode=True) == 3  # 4th window would start at 5
    assert ref.pool_output_size(6, 3, 2, 1, ceil_mode=True) == 4
    assert ref.pool_output_size(6, 3, 2, 1, ceil_mode=False) == 3


def test_pooling_rejects_bad_arguments():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="padding"):
        ref.max_pool(x, 2, padding=2)
    with pytest.raises(ValueError, match="kernel_size"):
        ref.avg_pool(x, (2, 2, 2))
    with pytest.raises(ValueError, match="indices"):
        ref.max_pool_backward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3)), x.shape)


# (in_size, output_size)
ADAPTIVE_CASES = [
    ((7,), 3), ((5,), 5), ((3,), 5),                 # uneven windows; more outputs than inputs
    ((7, 5), (3, 2)), ((6, 4), (4, None)), ((5, 5), 1),
    ((5, 4, 6), (2, 3, 4)), ((3, 4, 3), (3, 2, None)),
]


@pytest.mark.parametrize("in_size, output_size", ADAPTIVE_CASES, ids=str)
def test_adaptive_pools_match_torch(rng, in_size, output_size):
    ndim = len(in_size)
    x = distinct_values(rng, (2, 3) + in_size)
    xt = as_torch(x, True)
    y_avg = ADAPTIVE_AVG[ndim](xt, output_size)
    y_max, i_max = ADAPTIVE_MAX[ndim](xt, output_size, return_indices=True)
    close(ref.adaptive_avg_pool(x, output_size), y_avg)
    values, indices = ref.adaptive_max_pool(x, output_size)
    close(values, y_max)
    np.testing.assert_array_equal(indices, i_max.numpy())

    dy = rng.standard_normal(values.shape)
    dx_avg, dx_max = (torch.autograd.grad(y, xt, as_torch(dy))[0] for y in (y_avg, y_max))
    close(ref.adaptive_avg_pool_backward(dy, x.shape), dx_avg)
    close(ref.max_pool_backward(dy, indices, x.shape), dx_max)


def test_adaptive_windows_by_hand():
    # 7 inputs into 3 outputs: [0, 3), [2, 5), [4, 7) — neighbours share a cell.
    assert [ref.adaptive_window(i, 7, 3) for i in range(3)] == [(0, 3), (2, 5), (4, 7)]
    assert [ref.adaptive_window(i, 3, 5) for i in range(5)] == [(0, 1), (0, 2), (1, 2),
                                                                 (1, 3), (2, 3)]


# ------------------------------------------------------------- docs/concepts.md's examples

PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31]


def test_notes_1d_backprop_example_with_primes():
    """Input x1..x5, kernel w1..w3, three outputs O = x ⋆ w. Going back, x3 touched O1 via w3,
    O2 via w2 and O3 via w1, so dL/dx3 = w3·dO1 + w2·dO2 + w1·dO3."""
    x = np.array(PRIMES[:5])                    # x1..x5
    w = np.array(PRIMES[5:8])                   # w1, w2, w3 = 13, 17, 19
    dO = np.array(PRIMES[8:11])                 # dO1, dO2, dO3 = 23, 29, 31
    O = ref.conv_forward(x[None, None], w[None, None])[0, 0]
    assert O.tolist() == [x[0] * w[0] + x[1] * w[1] + x[2] * w[2],
                          x[1] * w[0] + x[2] * w[1] + x[3] * w[2],
                          x[2] * w[0] + x[3] * w[1] + x[4] * w[2]]

    dx = ref.conv_backward_input(dO[None, None], (1, 1, 5), w[None, None])[0, 0]
    w1, w2, w3 = w.tolist()
    dO1, dO2, dO3 = dO.tolist()
    assert dx[2] == w3 * dO1 + w2 * dO2 + w1 * dO3 == 1333
    assert dx[2] != w1 * dO1 + w2 * dO2 + w3 * dO3  # unflipped pairing: a different number
    # The whole dx is the full correlation of dO with the flipped kernel = true convolution.
    assert dx.tolist() == ref.correlate(dO, w[::-1], "full").tolist()
    assert dx.tolist() == ref.true_convolve(dO, w, "full").tolist()
    assert dx.tolist() == np.convolve(dO, w, "full").tolist()
    # Formula (2): dL/dw_a = Σ_i dO_i · x_{i+a}, the valid correlation of x with dO.
    dw = ref.conv_backward_weight(dO[None, None], x[None, None], (1, 1, 3))[0, 0]
    assert dw.tolist() == ref.correlate(x, dO, "valid").tolist()
    assert dw[0] == x[0] * dO1 + x[1] * dO2 + x[2] * dO3


def test_notes_1d_backprop_example_symbolically():
    sympy = pytest.importorskip("sympy")
    x = np.array(sympy.symbols("x1:6"), dtype=object)
    w = np.array(sympy.symbols("w1:4"), dtype=object)
    dO = np.array(sympy.symbols("dO1:4"), dtype=object)
    w1, w2, w3 = w
    dO1, dO2, dO3 = dO
    O = ref.conv_forward(x[None, None], w[None, None])[0, 0]
    loss = sum(g * o for g, o in zip(dO, O))    # any loss with dL/dO = dO
    dx = ref.conv_backward_input(dO[None, None], (1, 1, 5), w[None, None])[0, 0]
    assert sympy.expand(dx[2] - (w3 * dO1 + w2 * dO2 + w1 * dO3)) == 0
    for xi, dxi in zip(x, dx):
        assert sympy.expand(sympy.diff(loss, xi) - dxi) == 0
    dw = ref.conv_backward_weight(dO[None, None], x[None, None], (1, 1, 3))[0, 0]
    for wa, dwa in zip(w, dw):
        assert sympy.expand(sympy.diff(loss, wa) - dwa) == 0
    flipped_full = ref.correlate(dO, w[::-1], "full")
    assert all(sympy.expand(a - b) == 0 for a, b in zip(dx, flipped_full))


def check_cs231n_example(conv=ref.conv_forward):
    """A 5×5×3 input padded by 1 (the 7×7×3 grid of the CS231n figure), two 3×3×3 filters with
    biases 1 and 0, stride 2 -> a 3×3×2 output; each value is Σ(receptive field ⊙ filter) + b."""
    rng = np.random.default_rng(231)
    x = rng.integers(0, 3, (1, 3, 5, 5))
    w = rng.integers(-1, 2, (2, 3, 3, 3))
    b = np.array([1, 0])
    x_pad = ref.pad_input(x, [(1, 1), (1, 1)])
    assert x_pad.shape == (1, 3, 7, 7)
    assert not x_pad[:, :, [0, -1], :].any() and not x_pad[:, :, :, [0, -1]].any()
    z = conv(x, w, b, stride=2, padding=1)
    assert z.shape == (1, 2, 3, 3)
    for k, i, j in [(0, 0, 0), (1, 1, 2), (1, 2, 1)]:
        receptive_field = x_pad[0, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
        assert z[0, k, i, j] == np.sum(receptive_field * w[k]) + b[k]
    close(z.astype(float), F.conv2d(as_torch(x), as_torch(w), as_torch(b), stride=2, padding=1))


@pytest.mark.parametrize("conv", [ref.conv_forward, ref.conv2d_forward])
def test_notes_cs231n_7x7x3_example(conv):
    check_cs231n_example(conv)


def test_notes_output_size_formula():
    assert ref.conv_output_size(7, 3, 1, 0) == 5                 # 7×7 input, 3×3 kernel -> 5×5
    assert ref.conv_forward(np.ones((1, 1, 7, 7)), np.ones((1, 1, 3, 3))).shape == (1, 1, 5, 5)
    assert ref.conv_output_size(5, 3, 2, 1) == 1 + (5 + 2 * 1 - 3) // 2 == 3  # CS231n example
    assert ref.conv_output_size(7, 3, 2, 0, 2) == 2              # dilated span 5: starts 0, 2
    assert ref.conv_output_size(8, 3, 3, 1) == 3                 # floor((8 + 2 − 3)/3) + 1


# ------------------------------------------------------- broken variants must turn these red

def _off_by_one_stride(n, k, s=1, p=0, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 2


def _floor_then_no_drop(n, k, s, p=0, d=1, ceil_mode=False):
    span = n + 2 * p - d * (k - 1) - 1
    return (span + (s - 1 if ceil_mode else 0)) // s + 1


def test_broken_output_size_fails_the_checks(rng, monkeypatch):
    monkeypatch.setattr(ref_conv, "conv_output_size", _off_by_one_stride)
    with pytest.raises((AssertionError, IndexError)):
        check_cs231n_example()
    with pytest.raises((AssertionError, IndexError)):
        check_conv_forward(rng, CONV_CASES[4])


def test_missing_ceil_mode_drop_rule_fails_the_checks(rng, monkeypatch):
    monkeypatch.setattr(ref_pooling, "pool_output_size", _floor_then_no_drop)
    with pytest.raises((AssertionError, IndexError, TypeError)):
        test_max_pool_values_indices_and_gradient_match_torch(rng, MAX_POOL_CASES[2])


def _broken_conv(x, w, b, stride, padding, dilation=1, groups=1, bug="stride"):
    """A 2-D conv with one deliberate mistake, to prove the checks can fail."""
    s = ref_conv.spatial_tuple(stride, 2, "")
    pairs = ref_conv.padding_pairs(padding, 2)
    x = ref.pad_input(x, pairs)
    K, C_g, KH, KW = w.shape
    OH = (x.shape[2] - KH) // s[0] + 1
    OW = (x.shape[3] - KW) // s[1] + 1
    z = np.zeros((x.shape[0], K, OH, OW))
    for n, k, i, j in np.ndindex(z.shape):
        total = b[k] if bug != "no bias" else 0
        for c, a, b_ in np.ndindex(C_g, KH, KW):
            row, col = i * s[0] + a, j * s[1] + b_
            if bug == "stride":
                row, col = i * (s[0] - 1) + a, j * (s[1] - 1) + b_
            elif bug == "flipped":
                a, b_ = KH - 1 - a, KW - 1 - b_
            total += w[k, c, a, b_] * x[n, c, row, col]
        z[n, k, i, j] = total
    return z


@pytest.mark.parametrize("bug", ["stride", "flipped", "no bias"])
def test_broken_conv_fails_the_checks(bug):
    with pytest.raises(AssertionError):
        check_cs231n_example(lambda *args, **kw: _broken_conv(*args, **kw, bug=bug))
