"""True convolution and cross-correlation of N-dimensional arrays, as in ``scipy.signal``.

``convolve``/``correlate`` (any number of dims, direct or FFT), ``convolve2d``/``correlate2d``
(with 'fill', 'wrap' and 'symm' boundaries) and ``choose_conv_method`` give scipy's values,
dtypes and shapes on ndarrays, and Tensors with gradients when an input is a Tensor.

Unlike ``cnnkit.nn``'s layers (which, like PyTorch, cross-correlate), ``convolve`` flips the
kernel: ``convolve(a, b)[i] = sum_j a[j] b[i - j]``.
"""
from ..kernels.fft_conv import next_fast_len
from .choose import choose_conv_method
from .convolve import convolve, correlate
from .convolve2d import convolve2d, correlate2d

__all__ = ["choose_conv_method", "convolve", "convolve2d", "correlate", "correlate2d",
           "next_fast_len"]
