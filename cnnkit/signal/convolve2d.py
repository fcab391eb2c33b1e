"""2-D convolution and correlation with boundary handling (``scipy.signal.convolve2d``/``correlate2d``).

Both are "extend the image, then take the 'valid' part": pad ``in1`` (shape ``(N_1, N_2)``) by
the boundary rule, then ``convolve``/``correlate`` it with ``in2`` (shape ``(K_1, K_2)``) in
'valid' mode. The pad widths per axis, for kernel size ``K``:

    'full':  (K - 1, K - 1)
    'same':  convolve2d (K // 2, (K - 1) // 2),   correlate2d ((K - 1) // 2, K // 2)
    'valid': none (the boundary is never read)

'same' therefore centres the two differently for even ``K`` (scipy documents this one-sample
offset between ``correlate`` and ``correlate2d``). Gradients flow through the pad (see
``boundary.py``) and the N-D convolution, to both inputs; ``fillvalue`` is a constant.
"""
import numpy as np

from ..tensor import Tensor
from .boundary import check_boundary, fill_scalar, pad_boundary
from .convolve import convolve, correlate
from .modes import check_inputs, check_mode


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Convolve two 2-D arrays (``scipy.signal.convolve2d``).

    Parameters
    ----------
    in1 : array_like or Tensor of shape (N_1, N_2)
    in2 : array_like or Tensor of shape (K_1, K_2)
    mode : {'full', 'same', 'valid'}
        Output shape (N_i + K_i - 1), (N_i) or (|N_i - K_i| + 1).
    boundary : {'fill', 'wrap', 'symm'} (aliases 'pad', 'circular', 'symmetric')
        How ``in1`` is extended beyond its edges.
    fillvalue : scalar, the constant for 'fill' (cast to the output dtype)

    Returns
    -------
    out : ndarray of dtype ``np.result_type(in1, in2)``; a Tensor if either input is one.
    """
    return _boundary_conv(in1, in2, mode, boundary, fillvalue, correlation=False)


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Cross-correlate two 2-D arrays (``scipy.signal.correlate2d``); arguments as ``convolve2d``.

    ``out[k] = sum_l ext(in1)[l] · conj(in2[l - k])`` with ``ext`` the boundary extension.
    """
    return _boundary_conv(in1, in2, mode, boundary, fillvalue, correlation=True)


def _boundary_conv(in1, in2, mode, boundary, fillvalue, correlation):
    check_mode(mode)
    boundary = check_boundary(boundary)
    data1 = in1.data if isinstance(in1, Tensor) else np.asarray(in1)
    data2 = in2.data if isinstance(in2, Tensor) else np.asarray(in2)
    name = "correlate2d" if correlation else "convolve2d"
    if data1.ndim != 2 or data2.ndim != 2:
        raise ValueError(f"{name}: in1 and in2 must both be 2-D arrays, got in1.ndim="
                         f"{data1.ndim} and in2.ndim={data2.ndim}")
    check_inputs(data1, data2, mode)
    out_dtype = np.result_type(data1, data2)
    fill = fill_scalar(fillvalue, out_dtype) if boundary == "fill" else None
    conv = correlate if correlation else convolve
    if mode == "valid":
        return conv(in1, in2, "valid")
    kernel_shape = data2.shape
    if mode == "full":
        widths = [(k - 1, k - 1) for k in kernel_shape]
    elif correlation:
        widths = [((k - 1) // 2, k // 2) for k in kernel_shape]
    else:
        widths = [(k // 2, (k - 1) // 2) for k in kernel_shape]
    if not isinstance(in1, Tensor):
        in1 = data1
    return conv(pad_boundary(in1, widths, boundary, fill, out_dtype), in2, "valid")
