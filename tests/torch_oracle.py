"""Run one op in cnnkit and in PyTorch, compare the values and every gradient.

The comparison is the test suite's oracle, so it is strict about everything that is not
rounding: shapes, dtypes, which entries are NaN or ±Inf, and that every input that should get a
gradient gets one. Rounding is allowed for in proportion to the work: a value that sums ``terms``
products of unit-scale numbers carries an error of about ``eps · sqrt(terms)``, so

    float32:  |a − e| <= 1e-5 · sqrt(terms) + 1e-4 · |e|
    float64:  |a − e| <= 1e-12 · sqrt(terms) + 1e-10 · |e|

The torch reference for cnnkit's extensions (per-side padding pairs, ``'same'`` with stride > 1,
``'full'``, cropped transposed convolutions) is built from plain torch ops: ``F.pad`` in the
requested mode followed by an unpadded convolution, or an uncropped transposed convolution
followed by a crop.
"""
import math
import warnings

import numpy as np
import torch

import cnnkit

F = torch.nn.functional

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def tolerances(dtype, terms=1):
    """(rtol, atol) for a result that sums ``terms`` products of unit-scale numbers."""
    root = math.sqrt(max(terms, 1))
    if np.dtype(dtype) == np.float32:
        return 1e-4, 1e-5 * root
    return 1e-10, 1e-12 * root


def assert_close(actual, expected, dtype, terms=1, name="value"):
    """Same shape, same dtype, same NaN/±Inf pattern, finite entries within ``tolerances``."""
    assert actual is not None, f"{name}: cnnkit gave no result (a missing gradient?)"
    actual = np.asarray(actual)
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, \
        f"{name}: shape {actual.shape}, expected {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"{name}: dtype {actual.dtype}, expected {dtype}"
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected),
                                  err_msg=f"{name}: NaN positions differ")
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected),
                                  err_msg=f"{name}: +Inf positions differ")
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected),
                                  err_msg=f"{name}: -Inf positions differ")
    finite = np.isfinite(expected)
    rtol, atol = tolerances(dtype, terms)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=rtol, atol=atol,
                               err_msg=f"{name} (terms={terms})")


def random_arrays(rng, shapes, dtype):
    """Standard-normal arrays of the given shapes (``None`` stays ``None``)."""
    return [None if s is None else rng.standard_normal(s).astype(dtype) for s in shapes]


def run_cnnkit(fn, arrays, grad_out):
    """``fn(*tensors)`` with every array a leaf requiring grad; backward with ``grad_out``.

    Returns (output array, list of gradients — None for a None input or a missing gradient).
    """
    tensors = [None if a is None else cnnkit.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(grad_out)
    return out.data, [None if t is None else t.grad for t in tensors]


def run_torch(fn, arrays, grad_out):
    tensors = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(torch.from_numpy(np.ascontiguousarray(grad_out)))
    return out.detach().numpy(), [None if t is None else t.grad.numpy() for t in tensors]


def compare_with_torch(cnnkit_fn, torch_fn, arrays, terms, names=("input", "weight", "bias"),
                       seed=0):
    """Forward and backward through both; check the output and the gradient of every array.

    arrays : list of ndarrays (or None, e.g. no bias), all of one float dtype
    terms  : (output terms, then one per array): products summed into each entry, for atol
    The output gradient is random, so a gradient that is wrong anywhere shows up.
    """
    dtype = next(a.dtype for a in arrays if a is not None)
    with torch.no_grad():
        expected_shape = torch_fn(*[None if a is None else torch.from_numpy(a)
                                    for a in arrays]).shape
    grad_out = np.random.default_rng(seed).standard_normal(tuple(expected_shape)).astype(dtype)
    out, grads = run_cnnkit(cnnkit_fn, arrays, grad_out)
    expected_out, expected_grads = run_torch(torch_fn, arrays, grad_out)
    assert_close(out, expected_out, dtype, terms[0], "output")
    for name, array, grad, expected, n_terms in zip(names, arrays, grads, expected_grads,
                                                     terms[1:]):
        if array is not None:
            assert_close(grad, expected, dtype, n_terms, f"d(output)/d({name})")
    return out, grads


# -- convolution terms and torch references ----------------------------------------------------

def conv_terms(x_shape, w_shape, groups, out_spatial, stride=None, dilation=None):
    """Products summed into each entry of (y, dL/dx, dL/dw, dL/db) of a convolution."""
    batch = x_shape[0] if len(x_shape) == len(w_shape) else 1
    taps = math.prod(w_shape[2:])
    positions = batch * math.prod(out_spatial)
    return (w_shape[1] * taps, (w_shape[0] // groups) * taps, positions, positions)


def conv_transpose_terms(x_shape, w_shape, groups, out_spatial):
    """As ``conv_terms`` for a transposed convolution (the roles of dL/dx and y swap)."""
    batch = x_shape[0] if len(x_shape) == len(w_shape) else 1
    taps = math.prod(w_shape[2:])
    positions = batch * math.prod(x_shape[-(len(w_shape) - 2):])
    return ((w_shape[0] // groups) * taps, w_shape[1] * taps, positions,
            batch * math.prod(out_spatial))


def pad_pairs(padding, spatial, kernel, stride, dilation):
    """Any cnnkit padding form -> ((lo, hi), ...), written independently of the library.

    'same' follows TensorFlow: out = ceil(n / s), total = max((out − 1)·s + d·(k − 1) + 1 − n, 0),
    lo = total // 2 (the extra cell goes to the high side).
    """
    n_dims = len(spatial)
    if padding == "valid":
        return ((0, 0),) * n_dims
    if padding == "full":
        return tuple((d * (k - 1),) * 2 for k, d in zip(kernel, dilation))
    if padding == "same":
        pairs = []
        for n, k, s, d in zip(spatial, kernel, stride, dilation):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            pairs.append((total // 2, total - total // 2))
        return tuple(pairs)
    if isinstance(padding, int):
        return ((padding, padding),) * n_dims
    return tuple(tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in padding)


def torch_pad_list(pairs):
    """((lo, hi) per dim, first dim first) -> ``F.pad``'s flat list, last dim first."""
    return [v for lo, hi in reversed(pairs) for v in (lo, hi)]


def torch_conv(n_dims, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """A torch function (x, w, b) -> y computing what ``cnnkit.functional.convNd`` should.

    Uses torch's own padding wherever torch has the form (ints, 'valid', 'same' at stride 1, and
    every padding_mode through ``F.pad``, exactly as ``torch.nn.ConvNd`` does); otherwise pads
    explicitly with ``pad_pairs``.
    """
    conv = CONV[n_dims]
    stride_t = (stride,) * n_dims if isinstance(stride, int) else tuple(stride)
    dilation_t = (dilation,) * n_dims if isinstance(dilation, int) else tuple(dilation)
    torch_mode = "constant" if padding_mode == "zeros" else padding_mode

    def fn(x, w, b=None):
        spatial, kernel = tuple(x.shape[-n_dims:]), tuple(w.shape[2:])
        native = padding in ("valid",) or isinstance(padding, int) or (
            padding == "same" and all(s == 1 for s in stride_t)) or (
            isinstance(padding, (tuple, list)) and all(isinstance(p, int) for p in padding))
        if native and padding_mode == "zeros":
            with warnings.catch_warnings():  # torch's note that even 'same' kernels pad a copy
                warnings.simplefilter("ignore", UserWarning)
                return conv(x, w, b, stride, padding, dilation, groups)
        if native:  # torch.nn.ConvNd's route for the other modes: F.pad, then an unpadded conv
            module = getattr(torch.nn, f"Conv{n_dims}d")(
                w.shape[1] * groups, w.shape[0], kernel, stride, padding, dilation, groups,
                bias=b is not None, padding_mode=padding_mode, dtype=w.dtype)
            return module._conv_forward(x, w, b)
        pairs = pad_pairs(padding, spatial, kernel, stride_t, dilation_t)
        return conv(F.pad(x, torch_pad_list(pairs), torch_mode), w, b, stride, 0, dilation,
                    groups)
    return fn


def torch_conv_transpose(n_dims, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """A torch function (x, w, b) -> y for ``conv_transposeNd``, including per-side padding:
    per-side pairs crop the unpadded transposed convolution's output (lo cells at the start,
    hi at the end of each dim)."""
    conv_t = CONV_T[n_dims]

    def fn(x, w, b=None):
        if not (isinstance(padding, (tuple, list)) and isinstance(padding[0], (tuple, list))):
            return conv_t(x, w, b, stride, padding, output_padding, groups, dilation)
        y = conv_t(x, w, b, stride, 0, output_padding, groups, dilation)
        crop = tuple(slice(lo, y.shape[-n_dims + i] - hi) for i, (lo, hi) in enumerate(padding))
        return y[(Ellipsis,) + crop]
    return fn
