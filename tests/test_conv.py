"""conv1d/2d/3d and conv_transpose1d/2d/3d against PyTorch and the reference loops: a hand grid.

Every case checks the output and the gradient of the input, the weight and the bias, with a
random output gradient (see ``torch_oracle``), in float32 and float64. The grid covers odd and
even, square and non-square kernels, stride, dilation, groups (depthwise, with and without a
channel multiplier), every padding form and padding_mode, unbatched inputs, and transposed
convolutions with output_padding (also output_padding >= stride, allowed when < dilation).
The last section shows that the comparison catches deliberately broken results.
"""
import numpy as np
import pytest
from torch_oracle import (
    compare_with_torch,
    conv_terms,
    conv_transpose_terms,
    random_arrays,
    torch_conv,
    torch_conv_transpose,
)

import cnnkit
import cnnkit.functional as F
import cnnkit.reference as ref
from cnnkit.kernels.conv import PaddedInput
from mutants import negate_weight_gradient

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
DTYPES = [np.float32, np.float64]


def check_conv(rng, x_shape, w_shape, dtype, bias=True, padding_mode="zeros", arrays=None,
               **kwargs):
    """cnnkit's convNd vs torch (``torch_oracle.torch_conv``): output and all gradients.

    Random standard-normal (x, w, b) unless ``arrays`` gives them.
    """
    n_dims = len(w_shape) - 2
    x, w, b = arrays or random_arrays(rng, [x_shape, w_shape, (w_shape[0],) if bias else None],
                                      dtype)
    conv = CONV[n_dims]

    def cnnkit_fn(x, w, b):
        return conv(x, w, b, padding_mode=padding_mode, **kwargs)
    torch_fn = torch_conv(n_dims, padding_mode=padding_mode, **kwargs)
    out_shape = cnnkit_fn(*[None if a is None else cnnkit.tensor(a) for a in (x, w, b)]).shape
    terms = conv_terms(x_shape, w_shape, kwargs.get("groups", 1), out_shape[-n_dims:])
    return compare_with_torch(cnnkit_fn, torch_fn, [x, w, b], terms)


def check_conv_transpose(rng, x_shape, w_shape, dtype, bias=True, arrays=None, **kwargs):
    """As ``check_conv``, for conv_transposeNd (weight (C_in, C_out / groups, *kernel))."""
    n_dims = len(w_shape) - 2
    groups = kwargs.get("groups", 1)
    x, w, b = arrays or random_arrays(
        rng, [x_shape, w_shape, (w_shape[1] * groups,) if bias else None], dtype)
    conv_t = CONV_T[n_dims]

    def cnnkit_fn(x, w, b):
        return conv_t(x, w, b, **kwargs)
    out_shape = cnnkit_fn(*[None if a is None else cnnkit.tensor(a) for a in (x, w, b)]).shape
    terms = conv_transpose_terms(x_shape, w_shape, groups, out_shape[-n_dims:])
    return compare_with_torch(cnnkit_fn, torch_conv_transpose(n_dims, **kwargs), [x, w, b], terms)


# (x shape, w shape, keyword arguments). Even kernels, non-square shapes, groups and every
# padding form appear in each dimensionality.
CONV_CASES = [
    # 1-D
    ((2, 3, 10), (4, 3, 3), {}),
    ((2, 4, 11), (6, 2, 4), dict(stride=2, padding=1, groups=2)),
    ((1, 3, 9), (3, 1, 3), dict(dilation=2, padding="same", groups=3)),          # depthwise
    ((3, 2, 7), (6, 1, 2), dict(groups=2, padding="full")),                      # multiplier 3
    ((3, 8), (5, 3, 3), dict(stride=3, padding=((2, 0),))),                      # unbatched
    ((2, 3, 10), (4, 3, 4), dict(stride=3, padding="same")),                     # TF 'same'
    # 2-D
    ((2, 3, 7, 7), (4, 3, 3, 3), {}),                                    # 7×7, concepts §6
    ((2, 3, 8, 6), (5, 3, 2, 4), dict(stride=(2, 1), padding=(1, 2))),
    ((1, 4, 9, 10), (6, 2, 3, 3), dict(groups=2, dilation=(2, 1), padding="same")),
    ((2, 4, 9, 7), (4, 1, 3, 3), dict(groups=4, stride=2, padding="same")),      # depthwise s2
    ((2, 2, 6, 7), (6, 1, 3, 2), dict(groups=2, padding=((1, 0), (2, 1)))),      # multiplier 3
    ((1, 3, 5, 5), (2, 3, 5, 5), dict(padding="full")),
    ((2, 6, 8, 8), (6, 2, 3, 3), dict(groups=3, stride=2, dilation=2, padding=2)),
    ((3, 6, 5), (4, 3, 3, 3), dict(padding="valid")),                            # unbatched
    ((1, 2, 3, 3), (3, 2, 5, 5), dict(padding=1)),                # kernel > input, fits padded
    ((2, 5, 4, 4), (3, 5, 1, 1), {}),                                            # 1×1
    ((2, 3, 8, 9), (2, 3, 4, 2), dict(stride=(3, 2), dilation=(1, 3), padding="same")),
    # 3-D
    ((2, 2, 5, 6, 4), (3, 2, 3, 2, 3), dict(padding=1)),
    ((1, 4, 6, 6, 6), (4, 1, 3, 3, 3), dict(groups=4, stride=2, padding="same")),
    ((2, 4, 5, 4, 6), (6, 2, 2, 3, 2), dict(groups=2, stride=(1, 2, 1), dilation=(2, 1, 1),
                                           padding=((1, 0), (0, 2), (1, 1)))),
    ((2, 4, 4, 4), (3, 2, 3, 3, 3), dict(padding="full", stride=2)),             # unbatched
    ((1, 2, 4, 5, 6), (4, 1, 2, 2, 2), dict(groups=2, padding="same")),          # multiplier 2
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV_CASES)
def test_conv_matches_torch(rng, x_shape, w_shape, kwargs, bias, dtype):
    check_conv(rng, x_shape, w_shape, dtype, bias, **kwargs)


PADDING_MODE_CASES = [
    ((2, 3, 9), (4, 3, 3), dict(padding=2)),
    ((2, 3, 9), (4, 3, 4), dict(padding=((3, 1),))),
    ((2, 3, 6, 7), (4, 3, 3, 2), dict(padding=(1, 2))),
    ((2, 3, 6, 7), (4, 3, 2, 4), dict(padding="same")),                          # torch 'same'
    ((1, 3, 7, 6), (6, 1, 3, 3), dict(padding="same", stride=2, groups=3)),      # TF 'same'
    ((2, 3, 6, 8), (3, 1, 3, 3), dict(padding=((2, 0), (1, 3)), stride=2, groups=3)),
    ((3, 5, 4), (2, 3, 3, 3), dict(padding=(2, 1), dilation=(1, 2))),            # unbatched
    ((1, 2, 4, 5, 4), (3, 2, 3, 3, 3), dict(padding=1)),
    ((1, 2, 4, 5, 6), (2, 2, 2, 3, 3), dict(padding="same", stride=(2, 1, 2))),
    ((2, 2, 5, 5), (2, 2, 3, 3), dict(padding="full")),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", PADDING_MODE_CASES)
def test_conv_padding_modes_match_torch(rng, x_shape, w_shape, kwargs, padding_mode, dtype):
    if padding_mode == "reflect" and kwargs.get("padding") == "full":
        kwargs = dict(kwargs, padding=1)  # reflect needs padding < input size
    check_conv(rng, x_shape, w_shape, dtype, padding_mode=padding_mode, **kwargs)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv2d_matches_torch_module(rng, padding_mode):
    """The same convolution through ``torch.nn.Conv2d`` itself (padding_mode handled by torch)."""
    torch = pytest.importorskip("torch")
    x, w, b = random_arrays(rng, [(2, 3, 7, 8), (4, 3, 3, 2), (4,)], np.float64)
    module = torch.nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(2, 1), dilation=(1, 2),
                             padding_mode=padding_mode, dtype=torch.float64)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(w))
        module.bias.copy_(torch.from_numpy(b))
    expected = module(torch.from_numpy(x)).detach().numpy()
    y = F.conv2d(cnnkit.tensor(x), cnnkit.tensor(w), cnnkit.tensor(b), stride=(2, 1),
                 padding=(2, 1), dilation=(1, 2), padding_mode=padding_mode)
    np.testing.assert_allclose(y.data, expected, rtol=1e-10, atol=1e-12)


def test_same_padding_with_stride_two_gives_ceil(rng):
    """'same' with stride 2 is TensorFlow's: out = ceil(in / 2), extra padding on the high side."""
    x, w = random_arrays(rng, [(1, 1, 7, 8), (1, 1, 4, 3)], np.float64)
    y = F.conv2d(cnnkit.tensor(x), cnnkit.tensor(w), stride=2, padding="same")
    assert y.shape == (1, 1, 4, 4)
    # total padding: rows (4−1)·2 + 4 − 7 = 3 -> (1, 2); cols (4−1)·2 + 3 − 8 = 1 -> (0, 1)
    explicit = F.conv2d(cnnkit.tensor(x), cnnkit.tensor(w), stride=2, padding=((1, 2), (0, 1)))
    np.testing.assert_array_equal(y.data, explicit.data)


TRANSPOSE_CASES = [
    ((2, 3, 5), (3, 4, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 6), (4, 2, 4), dict(stride=3, groups=2, output_padding=2)),
    ((3, 7), (3, 2, 2), dict(dilation=2)),                                       # unbatched
    ((2, 3, 4, 5), (3, 2, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((2, 4, 3, 4), (4, 3, 2, 3), dict(stride=(2, 3), padding=(0, 1), output_padding=(1, 2),
                                      groups=2)),
    ((1, 4, 5, 5), (4, 1, 3, 3), dict(stride=2, groups=4)),                      # depthwise
    ((2, 2, 4, 4), (2, 3, 3, 3), dict(dilation=3, output_padding=2)),  # op >= stride, < dilation
    ((1, 2, 4, 5), (2, 2, 3, 2), dict(stride=(1, 2), dilation=(3, 1), output_padding=(2, 1))),
    ((2, 3, 4, 5), (3, 2, 3, 4), dict(stride=2, padding=((1, 0), (2, 1)))),      # per-side
    ((1, 2, 3, 4, 3), (2, 3, 3, 2, 3), dict(stride=2, padding=1, output_padding=1)),
    ((4, 3, 2, 3), (4, 2, 2, 3, 2), dict(groups=2, stride=(1, 2, 2), dilation=(2, 1, 1))),
    ((1, 2, 3, 3, 3), (2, 2, 3, 3, 3), dict(stride=2, padding=((2, 0), (0, 1), (1, 1)),
                                            output_padding=1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape, w_shape, kwargs", TRANSPOSE_CASES)
def test_conv_transpose_matches_torch(rng, x_shape, w_shape, kwargs, bias, dtype):
    check_conv_transpose(rng, x_shape, w_shape, dtype, bias, **kwargs)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_dims", [1, 2, 3])
def test_nan_and_inf_propagate_like_torch(rng, n_dims, dtype):
    """A NaN or ±Inf in the input poisons exactly the outputs (and gradients) torch's does."""
    x, w, b = random_arrays(rng, [(2, 3) + (6,) * n_dims, (4, 3) + (3,) * n_dims, (4,)], dtype)
    x[(0, 1) + (2,) * n_dims] = np.nan
    x[(1, 2) + (0,) * n_dims] = np.inf
    x[(1, 0) + (4,) * n_dims] = -np.inf
    w[(2, 0) + (1,) * n_dims] = np.inf
    for padding_mode in ("zeros", "circular"):
        check_conv(np.random.default_rng(0), x.shape, w.shape, dtype, arrays=[x, w, b],
                   padding=1, padding_mode=padding_mode)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("n_dims", [1, 2, 3])
def test_nan_and_inf_propagate_through_conv_transpose_like_torch(rng, n_dims):
    x, w, b = random_arrays(rng, [(2, 3) + (4,) * n_dims, (3, 2) + (3,) * n_dims, (2,)],
                            np.float64)
    x[(0, 1) + (2,) * n_dims] = np.nan
    x[(1, 2) + (0,) * n_dims] = np.inf
    w[(0, 1) + (1,) * n_dims] = -np.inf
    check_conv_transpose(rng, x.shape, w.shape, np.float64, arrays=[x, w, b], stride=2,
                         padding=1, output_padding=1)


# -- the reference loops as a third oracle (float64, tiny shapes) --------------------------------

REFERENCE_CASES = [
    ((2, 2, 7), (3, 2, 3), dict(stride=2, padding=((1, 2),), dilation=1, groups=1)),
    ((1, 4, 5, 6), (4, 2, 2, 3), dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)),
    ((2, 3, 5, 5), (6, 1, 3, 3), dict(stride=1, padding=((0, 1), (2, 1)), dilation=1, groups=3)),
    ((1, 2, 4, 3, 4), (2, 2, 2, 2, 3), dict(stride=(1, 2, 1), padding=1, dilation=1, groups=1)),
]


@pytest.mark.parametrize("x_shape, w_shape, kwargs", REFERENCE_CASES)
def test_conv_matches_reference_loops(rng, x_shape, w_shape, kwargs):
    x, w, b = random_arrays(rng, [x_shape, w_shape, (w_shape[0],)], np.float64)
    xt, wt, bt = (cnnkit.tensor(a, requires_grad=True) for a in (x, w, b))
    y = CONV[len(w_shape) - 2](xt, wt, bt, **kwargs)
    expected = ref.conv_forward(x, w, b, **kwargs)
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    np.testing.assert_allclose(xt.grad, ref.conv_backward_input(dy, x.shape, w, **kwargs),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.grad, ref.conv_backward_weight(dy, x, w.shape, **kwargs),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bt.grad, ref.conv_backward_bias(dy), rtol=1e-12, atol=1e-12)


REFERENCE_TRANSPOSE_CASES = [
    ((2, 2, 4), (2, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 3, 4), (4, 1, 2, 3), dict(stride=(2, 1), padding=((1, 0), (0, 2)), groups=2,
                                      dilation=(1, 2))),
    ((1, 2, 3, 3), (2, 2, 3, 3), dict(dilation=3, output_padding=2)),
    ((1, 2, 2, 3, 2), (2, 2, 2, 2, 3), dict(stride=2, padding=1, output_padding=(1, 0, 1))),
]


@pytest.mark.parametrize("x_shape, w_shape, kwargs", REFERENCE_TRANSPOSE_CASES)
def test_conv_transpose_matches_reference_loops(rng, x_shape, w_shape, kwargs):
    groups = kwargs.get("groups", 1)
    x, w, b = random_arrays(rng, [x_shape, w_shape, (w_shape[1] * groups,)], np.float64)
    y = CONV_T[len(w_shape) - 2](cnnkit.tensor(x), cnnkit.tensor(w), cnnkit.tensor(b), **kwargs)
    np.testing.assert_allclose(y.data, ref.conv_transpose_forward(x, w, b, **kwargs),
                               rtol=1e-12, atol=1e-12)


def test_transposed_conv_is_the_adjoint_of_conv(rng):
    """<conv(x), y> = <x, conv_transpose(y)>: the two share one weight and are transposes."""
    x, w, y = random_arrays(rng, [(2, 4, 9, 8), (6, 2, 3, 2), (2, 6, 5, 3)], np.float64)
    kwargs = dict(stride=2, padding=(1, 0), dilation=(1, 2), groups=2)
    conv = F.conv2d(cnnkit.tensor(x), cnnkit.tensor(w), **kwargs)
    assert conv.shape == y.shape
    back = F.conv_transpose2d(cnnkit.tensor(y), cnnkit.tensor(w), output_padding=(0, 1),
                              **kwargs)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.vdot(conv.data, y), np.vdot(x, back.data), rtol=1e-12)


@pytest.mark.parametrize("fn, w_shape, kwargs", [
    (F.conv2d, (2, 3, 3, 3), dict(padding=1)),
    (F.conv2d, (3, 1, 3, 3), dict(groups=3)),
    (F.conv_transpose2d, (3, 2, 3, 3), dict(stride=2)),
])
def test_empty_batch_like_torch(fn, w_shape, kwargs):
    x = cnnkit.tensor(np.ones((0, 3, 5, 5)), requires_grad=True)
    w = cnnkit.tensor(np.ones(w_shape), requires_grad=True)
    y = fn(x, w, **kwargs)
    torch = pytest.importorskip("torch")
    expected = getattr(torch.nn.functional, fn.__name__)(
        torch.zeros(x.shape, dtype=torch.float64), torch.zeros(w_shape, dtype=torch.float64),
        **kwargs)
    assert y.shape == tuple(expected.shape)
    y.backward(np.ones(y.shape))
    assert x.grad.shape == x.shape
    np.testing.assert_array_equal(w.grad, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (3, 1)])
def test_input_gradient_of_no_output_positions_is_zero(dtype, stride):
    """dy with no rows for an input that has some (a transposed convolution of an input with no
    rows): dx is zeros, where im2col's slices for no positions counted from the end and
    col2im failed to broadcast."""
    from cnnkit.kernels.conv import conv_backward_input
    dy, w = np.ones((2, 8, 0, 12), dtype), np.ones((8, 3, 3, 3), dtype)
    dx = conv_backward_input(dy, w, (30, 30), stride, (1, 1), 1)
    assert dx.shape == (2, 3, 30, 30) and dx.dtype == dtype
    np.testing.assert_array_equal(dx, 0)
    bias = np.arange(3, dtype=dtype)
    y = F.conv_transpose2d(cnnkit.tensor(dy), cnnkit.tensor(w), cnnkit.tensor(bias),
                           stride=2, output_padding=1)
    np.testing.assert_array_equal(y.data, np.broadcast_to(bias[:, None, None], (2, 3, 2, 26)))


def test_float32_stays_float32(rng):
    x, w, b = random_arrays(rng, [(1, 2, 5, 5), (3, 2, 3, 3), (3,)], np.float32)
    xt, wt, bt = (cnnkit.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, padding=1, padding_mode="reflect")
    y.sum().backward()
    assert {y.dtype, xt.grad.dtype, wt.grad.dtype, bt.grad.dtype} == {np.dtype(np.float32)}


def test_gradients_flow_only_where_required(rng):
    """No gradient is stored for inputs that do not require one, the others still get theirs."""
    x, w, b = random_arrays(rng, [(1, 2, 5, 5), (3, 2, 3, 3), (3,)], np.float64)
    xt, wt, bt = cnnkit.tensor(x), cnnkit.tensor(w, requires_grad=True), cnnkit.tensor(b)
    F.conv2d(xt, wt, bt).sum().backward()
    assert xt.grad is None and bt.grad is None
    np.testing.assert_allclose(wt.grad, ref.conv_backward_weight(np.ones((1, 3, 3, 3)), x,
                                                                 w.shape), rtol=1e-12)
    with cnnkit.no_grad():
        assert not F.conv2d(cnnkit.tensor(x, requires_grad=True), wt).requires_grad


# -- the comparison can fail: deliberately broken results must turn it red ---------------------

def _sign_flipped_weight_gradient(monkeypatch):
    negate_weight_gradient(monkeypatch)


def _input_shifted_by_one(monkeypatch):
    import cnnkit.functional.conv as conv_module
    original = conv_module.conv_forward

    def shifted(source, *args, **kwargs):  # an off-by-one in the window position
        rolled = PaddedInput(np.roll(source.data, 1, axis=-1), source.pads)
        return original(rolled, *args, **kwargs)
    monkeypatch.setattr(conv_module, "conv_forward", shifted)


def _stride_off_by_one(monkeypatch):
    import cnnkit.functional.conv as conv_module
    original = conv_module.conv_forward

    def wrong_stride(source, w, stride, *args, **kwargs):
        y = original(source, w, tuple(s + 1 for s in stride), *args, **kwargs)
        return np.resize(y, (source.data.shape[0], w.shape[0], 4, 4))  # even with the shape
    monkeypatch.setattr(conv_module, "conv_forward", wrong_stride)         # made right


def _no_border_fold_in_padding_backward(monkeypatch):
    import cnnkit.functional.conv as conv_module
    original = conv_module.pad_array_backward
    monkeypatch.setattr(conv_module, "pad_array_backward",
                        lambda grad, shape, widths, mode: original(grad, shape, widths))


def _missing_bias_gradient(monkeypatch):
    import cnnkit.functional.conv as conv_module
    original = conv_module._conv

    def no_bias_grad(op, n_dims, input, weight, bias, *args):
        return original(op, n_dims, input, weight, bias.detach(), *args)
    monkeypatch.setattr(conv_module, "_conv", no_bias_grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("breakage", [_sign_flipped_weight_gradient, _input_shifted_by_one,
                                      _stride_off_by_one, _no_border_fold_in_padding_backward,
                                      _missing_bias_gradient])
def test_comparison_catches_broken_convolutions(rng, monkeypatch, breakage, dtype):
    case = dict(padding=1, padding_mode="reflect", stride=2)
    check_conv(rng, (2, 3, 8, 8), (4, 3, 3, 3), dtype, **case)  # passes as it is
    breakage(monkeypatch)
    with pytest.raises(AssertionError):
        check_conv(rng, (2, 3, 8, 8), (4, 3, 3, 3), dtype, **case)


def test_comparison_catches_a_flipped_kernel(rng):
    """True convolution (flipped kernel) is not PyTorch's cross-correlation."""
    torch = pytest.importorskip("torch")
    x, w = random_arrays(rng, [(1, 2, 6, 6), (3, 2, 3, 3)], np.float32)
    with pytest.raises(AssertionError):
        compare_with_torch(lambda x, w: F.conv2d(x, w[:, :, ::-1, ::-1]),
                           lambda x, w: torch.nn.functional.conv2d(x, w), [x, w],
                           conv_terms(x.shape, w.shape, 1, (4, 4)))
