"""Stride-1 convolution layers through the FFT, for large kernels.

A direct convolution costs prod(kernel) multiply-adds per output; in the frequency domain a
correlation is a product, whatever the kernel size. With spectra X, W, dY of the padded input,
the (dilated) kernel and the output gradient, all zero-padded to a length L ≥ the padded input
(so the circular wrap-around never reaches a position we keep):

    forward   Y[n, k]  = Σ_c X[n, c] · conj(W[k, c])      (correlation: conjugate the kernel)
    input     dX[n, c] = Σ_k dY[n, k] · W[k, c]           (convolution: the flipped kernel)
    weight    dW[k, c] = Σ_n conj(dY[n, k]) · X[n, c]     (correlation of the input with dY)

— the same three formulas as ``cnnkit.kernels.conv``, one complex matrix product per frequency.
"""
import math

import numpy as np

from ... import tuning
from .. import fft_threads
from ..fft_conv import next_fast_len
from ..padding import crop


def applies(geometry, pass_name):
    return geometry.stride_one(pass_name)


def wins(geometry, pass_name):
    """Large kernels whose estimated FFT work is well below the direct sum's."""
    return beats(geometry, 1.0)


def beats(geometry, dearer):
    """Whether the FFT's estimated work (``cost_ratio``, in the direct sum's multiply-adds),
    ``dearer`` times as costly against the other algorithm's multiply-adds, is below
    ``fft_max_cost_ratio`` of that algorithm's, for a layer of ``fft_min_kernel_taps`` taps
    or more (``wins``: against the BLAS paths, 1; the implicit GEMM: ``implicit.fft_beats``)."""
    g = geometry
    return g.taps >= tuning.value("fft_min_kernel_taps") and cost_ratio(
        g.batch, g.in_channels // g.groups, g.out_channels, g.kernel, g.out,
        g.padded) * dearer < tuning.value("fft_max_cost_ratio")


def forward_pass(xp, w, g):
    return forward(xp, w, g.dilation, g.out, g.groups)


def input_pass(dy, w, g):
    return crop(backward_input(dy, w, g.padded, g.dilation, g.groups), g.pads)


def weight_pass(xp, dy, g):
    return backward_weight(xp, dy, g.kernel, g.dilation, g.groups)


def _dilate(w, dilation):
    """Insert d − 1 zeros between kernel taps so a dilated kernel becomes an ordinary one."""
    if all(d == 1 for d in dilation):
        return w
    spans = tuple(d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilation))
    out = np.zeros(w.shape[:2] + spans, dtype=w.dtype)
    out[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)] = w
    return out


def _spectrum(a, lengths):
    return fft_threads.rfftn(a, tuple(lengths), tuple(range(2, a.ndim)))


def _back(spectrum, lengths, keep, dtype):
    full = fft_threads.irfftn(spectrum, tuple(lengths), tuple(range(2, spectrum.ndim)))
    return np.ascontiguousarray(full[(slice(None), slice(None)) + tuple(map(slice, keep))],
                                dtype=dtype)


def _by_group(spectrum, groups, group_axis):
    """(A, B, F) -> (A, G, B/G, F) for activations (channels on axis 1), or, for a kernel bank
    (K, C/G, F) with its groups on axis 0, -> (G, K/G, C/G, F)."""
    a, b, f = spectrum.shape
    if group_axis == 1:
        return spectrum.reshape(a, groups, b // groups, f)
    return spectrum.reshape(groups, a // groups, b, f)


def _lengths(spatial):
    return tuple(next_fast_len(n) for n in spatial)


def _flat(spec):
    return spec.reshape(spec.shape[:2] + (-1,))


def forward(xp, w, dilation, out, groups):
    """xp (N, C, *spatial) padded, w (K, C/G, *kernel) -> y (N, K, *out), stride 1."""
    n, spatial = xp.shape[0], xp.shape[2:]
    lengths = _lengths(spatial)
    xs = _flat(_spectrum(xp, lengths))
    ws = _flat(_spectrum(_dilate(w, dilation), lengths))
    freq_shape = _spectrum_shape(lengths)
    ys = np.einsum("ngcf,gkcf->ngkf", _by_group(xs, groups, 1), _by_group(ws.conj(), groups, 0),
                   optimize=True)
    ys = ys.reshape((n, w.shape[0]) + freq_shape)
    return _back(ys, lengths, out, np.result_type(xp, w))


def backward_input(dy, w, spatial, dilation, groups):
    """dL/dx (N, C, *spatial) from dy (N, K, *out): the true convolution of dy with w."""
    n = dy.shape[0]
    lengths = _lengths(spatial)
    dys = _flat(_spectrum(dy, lengths))
    ws = _flat(_spectrum(_dilate(w, dilation), lengths))
    dxs = np.einsum("ngkf,gkcf->ngcf", _by_group(dys, groups, 1), _by_group(ws, groups, 0),
                    optimize=True)
    dxs = dxs.reshape((n, w.shape[1] * groups) + _spectrum_shape(lengths))
    return _back(dxs, lengths, spatial, np.result_type(dy, w))


def backward_weight(xp, dy, kernel, dilation, groups):
    """dL/dw (K, C/G, *kernel): the correlation of the padded input with dy."""
    spatial = xp.shape[2:]
    lengths = _lengths(spatial)
    xs = _flat(_spectrum(xp, lengths))
    dys = _flat(_spectrum(dy, lengths))
    dws = np.einsum("ngkf,ngcf->gkcf", _by_group(dys.conj(), groups, 1),
                    _by_group(xs, groups, 1), optimize=True)
    k = dy.shape[1]
    dws = dws.reshape((k, xp.shape[1] // groups) + _spectrum_shape(lengths))
    spans = tuple(d * (kk - 1) + 1 for kk, d in zip(kernel, dilation))
    dw = _back(dws, lengths, spans, np.result_type(xp, dy))
    return np.ascontiguousarray(
        dw[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)])


def _spectrum_shape(lengths):
    return tuple(lengths[:-1]) + (lengths[-1] // 2 + 1,)


def cost_ratio(n, c, k, kernel, out, spatial):
    """Rough (FFT work) / (direct work); below 1 the FFT should win."""
    direct = n * k * c * math.prod(kernel) * math.prod(out)
    lengths = _lengths(spatial)
    size = math.prod(lengths)
    transforms = (n * c + k * c + n * k) * size * math.log2(max(size, 2)) * tuning.value(
        "fft_transform_cost")
    products = n * k * c * size * tuning.value("fft_product_cost")
    return (transforms + products) / max(direct, 1)
