"""Pick the direct or the FFT method, like ``scipy.signal.choose_conv_method``.

Exactness first, then speed:

- bool outputs go direct (the direct sum of products of bools is an OR of ANDs, exactly);
- integer outputs go direct when the largest possible sum,
  ``max|in1| · max|in2| · min(in1.size, in2.size)``, could be inexact in float64
  (above 2**52 - 1, scipy's rule) or could overflow the integer output dtype (the direct
  method then wraps around like NumPy integer arithmetic; a rounded FFT result would not);
- otherwise the cheaper of the two cost models, ``direct_cost_ns`` and ``fft_cost_ns``, which
  estimate run time in nanoseconds with constants measured on this code; but inputs holding
  inf or NaN go direct (an FFT spreads them over the whole output; the direct sum puts them
  where scipy's direct method does), checked only when the FFT would be picked.
"""
import numpy as np

from ..kernels.fft_conv import fft_cost_ns
from ..kernels.finite import all_finite
from ..tensor import Tensor
from .direct import direct_cost_ns
from .modes import check_inputs, check_mode, output_region

FLOAT64_EXACT_INTEGER = 2 ** np.finfo(np.float64).nmant - 1


def choose_conv_method(in1, in2, mode="full") -> str:
    """The faster exact method for ``convolve(in1, in2, mode)``: 'direct' or 'fft'.

    Parameters
    ----------
    in1 : array_like or Tensor of shape (N_1, ..., N_d)
    in2 : array_like or Tensor of shape (K_1, ..., K_d)
    mode : {'full', 'same', 'valid'}

    Returns
    -------
    method : str, 'direct' or 'fft'
    """
    check_mode(mode)
    a = np.asarray(in1.data if isinstance(in1, Tensor) else in1)
    b = np.asarray(in2.data if isinstance(in2, Tensor) else in2)
    if a.ndim == b.ndim == 0:
        check_inputs(a, b, "full")  # dtype check only
        return "direct"
    check_inputs(a, b, mode)
    return choose_method_for_arrays(a, b, output_region(a.shape, b.shape, mode))


def choose_method_for_arrays(a: np.ndarray, b: np.ndarray, region) -> str:
    """Like ``choose_conv_method`` for checked ndarrays and a region of the full output."""
    if a.ndim == 0:
        return "direct"
    out_dtype = np.result_type(a, b)
    if out_dtype.kind == "b":
        return "direct"
    if out_dtype.kind in "iu" and _integer_sum_too_large(a, b, out_dtype):
        return "direct"
    direct = direct_cost_ns(a.shape, b.shape, region, out_dtype)
    faster = "fft" if fft_cost_ns(a.shape, b.shape) < direct else "direct"
    return "direct" if faster == "fft" and not all_finite(b, a) else faster


def _integer_sum_too_large(a, b, out_dtype) -> bool:
    bound = _largest_magnitude(a) * _largest_magnitude(b) * min(a.size, b.size)
    return bound > min(FLOAT64_EXACT_INTEGER, int(np.iinfo(out_dtype).max))


def _largest_magnitude(x) -> int:
    # Python ints: no overflow while bounding (abs of int64's minimum overflows in NumPy).
    return max(abs(int(x.max())), abs(int(x.min())))
