"""Transposed convolution ("deconvolution"), as ``torch.nn.functional.conv_transpose1d/2d/3d``.

A convolution gathers: each output reads a window of inputs. Its transpose scatters: each input
cell x[n, c, i] writes x[n, c, i] · w[c, k, a] into the output at position i·s + a·d − p_lo, for
every kernel offset a and every output channel k of c's group:

    y[n, g·K_g + k, i·s + a·d − p_lo] += x[n, c, i] · w[c, k, a]        (g = c // C_g)

Writes that land outside ``[0, out_size)`` are dropped (that is what ``padding`` does here: it
crops the full result). This is exactly docs/concepts.md §13's input-gradient formula, the
input gradient of a convolution with the same w, stride, padding and dilation:
conv_transpose(dy) = dL/dx.

Output length per dim: ``(n − 1)·s − p_lo − p_hi + d·(k − 1) + output_padding + 1``; the
``output_padding`` extra cells at the high end pick the one size among those that a strided
convolution maps to the same output length.
"""
import numpy as np

from ._args import (
    accumulator_dtype,
    check_array,
    check_groups,
    padding_pairs,
    positions,
    spatial_tuple,
)


def conv_transpose_output_size(n, k, s=1, p=0, output_padding=0, d=1):
    """``(n − 1)·s − 2p + d·(k − 1) + output_padding + 1``: the inverse of conv_output_size."""
    return (n - 1) * s - 2 * p + d * (k - 1) + output_padding + 1


def conv_transpose_forward(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                           dilation=1):
    """Scatter every input cell through the kernel (module docstring). Argument order as torch.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, *in_size)
    w : ndarray of shape (C_in, C_out / groups, *kernel_size)
    b : ndarray of shape (C_out,), or None
    stride, dilation, output_padding : int or tuple of one int per spatial dim
    padding : int, tuple of one int per dim, or ((lo, hi), ...) pairs (pairs are a cnnkit
        extension; torch takes the same p on both sides)

    Returns
    -------
    y : ndarray of shape (N, C_out, *out_size)
    """
    check_array(x, "x")
    check_array(w, "w")
    ndim = x.ndim - 2
    if w.ndim != x.ndim:
        raise ValueError(f"w: expected shape (C_in, C_out/groups, *kernel_size) with {ndim} "
                         f"kernel dims, got {w.shape}")
    stride = spatial_tuple(stride, ndim, "stride")
    dilation = spatial_tuple(dilation, ndim, "dilation")
    output_padding = spatial_tuple(output_padding, ndim, "output_padding", minimum=0)
    pairs = padding_pairs(padding, ndim)
    if w.shape[0] != x.shape[1]:
        raise ValueError(f"w: expected w.shape[0] == C_in == {x.shape[1]}, got {w.shape}")
    C_in, K_g = w.shape[:2]
    C_out = K_g * groups
    check_groups(groups, C_in, C_out)
    if b is not None and (not isinstance(b, np.ndarray) or b.shape != (C_out,)):
        raise ValueError(f"b: expected None or an ndarray of shape ({C_out},)")
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"output_padding: must be smaller than stride or dilation, got "
                         f"{output_padding} (stride {stride}, dilation {dilation})")
    out_size = tuple(
        (n - 1) * s - lo - hi + d * (k - 1) + op + 1
        for n, k, s, d, op, (lo, hi) in zip(x.shape[2:], w.shape[2:], stride, dilation,
                                            output_padding, pairs))
    if any(o < 1 for o in out_size):
        raise ValueError(f"padding: {pairs} crops away the whole output (size {out_size})")

    N = x.shape[0]
    C_g = C_in // groups
    y = np.zeros((N, C_out) + out_size, dtype=accumulator_dtype(x, w, b))
    for n in range(N):
        for c in range(C_in):
            g = c // C_g
            for i in positions(x.shape[2:]):
                for k in range(K_g):
                    for a in positions(w.shape[2:]):
                        target = tuple(i_j * s_j + a_j * d_j - lo for i_j, a_j, s_j, d_j, (lo, _)
                                       in zip(i, a, stride, dilation, pairs))
                        if all(0 <= t_j < o for t_j, o in zip(target, out_size)):
                            y[(n, g * K_g + k) + target] += x[(n, c) + i] * w[(c, k) + a]
    if b is not None:
        for k in range(C_out):
            y[:, k] += b[k]
    return y
