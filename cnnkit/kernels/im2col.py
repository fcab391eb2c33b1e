"""im2col and col2im for any number of spatial dims (the Chainer ``conv_nd`` idea).

im2col lays every receptive field out as a column, so a convolution becomes one matrix product.
It is a strided *view* (no copy) until the product needs it contiguous.

col2im is its transpose: it adds each column back onto the input positions it came from. It
loops over the ``prod(kernel)`` kernel offsets — each iteration one strided-slice ``+=`` over the
whole batch, all channels and all output positions — never over output pixels.
"""
import itertools

import numpy as np
from numpy.lib.stride_tricks import as_strided


def windows(x: np.ndarray, kernel: tuple, stride: tuple, dilation: tuple, out: tuple) -> np.ndarray:
    """A view of shape ``(N, C, *kernel, *out)`` with ``view[n, c, *a, *i] = x[n, c, *(i·s + a·d)]``.

    x : ndarray of shape (N, C, *spatial), already padded.
    """
    strides = x.strides[:2] + tuple(st * d for st, d in zip(x.strides[2:], dilation)) + tuple(
        st * s for st, s in zip(x.strides[2:], stride))
    return as_strided(x, shape=x.shape[:2] + tuple(kernel) + tuple(out), strides=strides,
                      writeable=False)


def _offset_slices(offset, stride, dilation, out):
    """The input positions ``i·s + a·d`` (i = 0..out−1) touched by kernel offset ``a``, as
    slices (empty for no positions: a stop of a·d − s + 1 would count from the end)."""
    return tuple(slice(a * d, a * d + s * (o - 1) + 1 if o else a * d, s)
                 for a, s, d, o in zip(offset, stride, dilation, out))


def col2im(cols: np.ndarray, spatial: tuple, stride: tuple, dilation: tuple) -> np.ndarray:
    """Sum columns back into an image: the adjoint of ``windows``.

    cols : ndarray of shape (N, C, *kernel, *out)
    Returns ndarray of shape (N, C, *spatial), ``img[n, c, i·s + a·d] += cols[n, c, a, i]``.
    """
    n_dims = len(spatial)
    kernel, out = cols.shape[2:2 + n_dims], cols.shape[2 + n_dims:]
    img = np.zeros(cols.shape[:2] + tuple(spatial), dtype=cols.dtype)
    for offset in itertools.product(*(range(k) for k in kernel)):
        img[(slice(None), slice(None)) + _offset_slices(offset, stride, dilation, out)] += \
            cols[(slice(None), slice(None)) + offset]
    return img


def offset_views(x: np.ndarray, kernel: tuple, stride: tuple, dilation: tuple, out: tuple):
    """Yield ``(offset, view)`` with ``view[n, c, *i] = x[n, c, *(i·s + a·d)]`` for each offset a."""
    for offset in itertools.product(*(range(k) for k in kernel)):
        yield offset, x[(slice(None), slice(None)) + _offset_slices(offset, stride, dilation, out)]
