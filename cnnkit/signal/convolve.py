"""N-dimensional true convolution and cross-correlation, scipy.signal-compatible and differentiable.

Definitions (``a`` of shape N, ``b`` of shape K, any number of dims, indices per axis):

    convolve(a, b)[i]  = sum_j a[j] · b[i - j]                  full output: N + K - 1
    correlate(a, b)[k] = sum_l a[l] · conj(b[l - k])            = convolve(a, reverse_and_conj(b))

and the modes crop the full output (see ``modes.py``). Results, dtypes and shapes follow
``scipy.signal.convolve``/``correlate``: the output dtype is ``np.result_type(in1, in2)``, FFT
results are rounded for integer (and bool) outputs, 0-d inputs multiply.

Gradients (real inputs), for C = convolve(a, b, 'full') and upstream gradient g = dL/dC:

    dL/da = correlate(g, b, 'valid')        dL/db = correlate(g, a, 'valid')

For 'same' and 'valid' the forward kept only a window of the full output, so g is first
embedded (zero elsewhere) into an array of the full shape at that window's offset. Correlation
needs no gradient of its own: it is convolution with a reversed ``in2``, and reversing is a
differentiable indexing op.
"""
import numpy as np

from ..kernels.fft_conv import fft_axes, fft_convolve
from ..tensor import Tensor
from .choose import choose_method_for_arrays
from .direct import direct_convolve
from .modes import check_inputs, check_method, check_mode, full_shape, output_region


def convolve(in1, in2, mode="full", method="auto"):
    """Convolve two N-dimensional arrays (``scipy.signal.convolve``).

    Parameters
    ----------
    in1 : array_like or Tensor of shape (N_1, ..., N_d)
    in2 : array_like or Tensor of shape (K_1, ..., K_d), the same d (0-d inputs multiply)
    mode : {'full', 'same', 'valid'}
        'full': shape (N_i + K_i - 1); 'same': shape (N_i), centred on the full output;
        'valid': shape (|N_i - K_i| + 1), needs one input at least as large as the other on
        every axis.
    method : {'auto', 'direct', 'fft'}
        'auto' takes the faster exact one (see ``choose_conv_method``).

    Returns
    -------
    out : ndarray of dtype ``np.result_type(in1, in2)``; a Tensor (with gradients for both
        inputs) when either input is a Tensor.
    """
    check_mode(mode)
    check_method(method)
    if isinstance(in1, Tensor) or isinstance(in2, Tensor):
        a, b = _as_tensor(in1), _as_tensor(in2)
        check_inputs(a.data, b.data, mode)
        return _convolve_op(a, b, mode, method)
    a, b = np.asarray(in1), np.asarray(in2)
    check_inputs(a, b, mode)
    return convolve_arrays(a, b, mode, method)


def correlate(in1, in2, mode="full", method="auto"):
    """Cross-correlate two N-dimensional arrays (``scipy.signal.correlate``).

    ``correlate(a, b)[k] = sum_l a[l] · conj(b[l - k])``, computed as
    ``convolve(a, reverse_and_conj(b), mode, method)``; arguments, shapes and dtypes as in
    ``convolve``.
    """
    check_mode(mode)
    check_method(method)
    return convolve(in1, reverse_and_conj(in2), mode, method)


def reverse_and_conj(x):
    """``x`` reversed along every axis (and conjugated if complex); differentiable on Tensors."""
    if isinstance(x, Tensor):
        return x[(slice(None, None, -1),) * x.ndim]
    x = np.asarray(x)
    reversed_x = x[(slice(None, None, -1),) * x.ndim]
    return np.conj(reversed_x) if x.dtype.kind == "c" else reversed_x


def convolve_arrays(a: np.ndarray, b: np.ndarray, mode: str, method: str) -> np.ndarray:
    """``convolve`` on checked ndarrays."""
    if a.ndim == 0:
        return a * b  # a NumPy scalar, as scipy returns
    return convolve_region(a, b, output_region(a.shape, b.shape, mode), method)


def convolve_region(a: np.ndarray, b: np.ndarray, region, method: str) -> np.ndarray:
    """The ``region`` (tuple of slices) of the full convolution of checked ndarrays."""
    out_dtype = np.result_type(a, b)
    if method == "auto":
        method = choose_method_for_arrays(a, b, region)
    if method == "direct":
        return direct_convolve(a, b, region, out_dtype)
    if out_dtype.kind in "iub" and not fft_axes(a.shape, b.shape):
        # Every axis has a length-1 input: there is nothing to transform, and scipy's FFT
        # method multiplies in the integer dtype, exact (or wrapping) beyond float64's 2**53.
        return np.multiply(a, b, dtype=out_dtype)[tuple(region)]
    out = fft_convolve(a, b, region)
    if out_dtype.kind in "iub":
        # The exact result is an integer; the FFT's is off by rounding noise (scipy rounds too).
        # For bools this gives "any product true", the same as the direct OR of ANDs.
        out = np.rint(out)
    return out.astype(out_dtype, copy=False)


def _as_tensor(x) -> Tensor:
    # np.asarray, not cnnkit.tensor: Python floats stay float64 here, as scipy would have them.
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def _convolve_op(a: Tensor, b: Tensor, mode: str, method: str) -> Tensor:
    out = np.asarray(convolve_arrays(a.data, b.data, mode, method))

    def backward(g):
        if a.ndim == 0 or mode == "full":
            full_grad = g
        else:
            full_grad = np.zeros(full_shape(a.shape, b.shape), dtype=g.dtype)
            full_grad[output_region(a.shape, b.shape, mode)] = g
        dLda = dLdb = None
        if a.requires_grad:  # correlate(g, b, 'valid')
            dLda = convolve_arrays(full_grad, reverse_and_conj(b.data), "valid", method)
            dLda = dLda.astype(a.dtype, copy=False)
        if b.requires_grad:  # correlate(g, a, 'valid')
            dLdb = convolve_arrays(full_grad, reverse_and_conj(a.data), "valid", method)
            dLdb = dLdb.astype(b.dtype, copy=False)
        return dLda, dLdb

    return Tensor._make(out, (a, b), backward, "convolve")
