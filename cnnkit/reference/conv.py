"""Convolution forward pass, written as docs/concepts.md's sum (cross-correlation, like PyTorch).

Deep-learning "convolution" is cross-correlation: the kernel slides over the input *without* being
flipped. For output channel k at output position i (a multi-index, one entry per spatial dim):

    z[n, k, i] = b[k] + Σ_c Σ_a w[k, c, a] · x_pad[n, g·C_g + c, i·s + a·d]

    n  batch index               s  stride (per dim)         C_g = C / groups input channels
    k  output channel            d  dilation (per dim)       per group; g = k // (K / groups)
    c  input channel of group g  a  kernel offset (multi-index, 0 <= a < kernel_size)

``x_pad`` is ``x`` with zero padding. Each output is the sum of the element-wise products of one
receptive field (a ``C_g × k_1 × ... `` block of ``x_pad``) with the filter, plus the bias.
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
from .padding import pad_input


def conv_output_size(n, k, s=1, p=0, d=1):
    """Output length of a convolution along one axis: ``floor((n + 2p − d(k−1) − 1) / s) + 1``.

    ``d(k−1) + 1`` is the span of the dilated kernel; it fits ``n + 2p − d(k−1) − 1`` positions
    past the first one, and every ``s``-th start is kept. E.g. 7 inputs, k=3, s=1, p=0 -> 5.
    """
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, w_name="w"):
    """Check the arguments of a convolution and normalise them to per-dim tuples.

    Returns ``(stride, pad_pairs, dilation, out_size)``; ``out_size`` uses the padded input.
    """
    ndim = len(x_shape) - 2
    if len(w_shape) != len(x_shape):
        raise ValueError(f"{w_name}: expected shape (K, C/groups, *kernel_size) with {ndim} "
                         f"kernel dims to match x of shape {tuple(x_shape)}, got {tuple(w_shape)}")
    stride = spatial_tuple(stride, ndim, "stride")
    dilation = spatial_tuple(dilation, ndim, "dilation")
    pairs = padding_pairs(padding, ndim)
    check_groups(groups, x_shape[1], w_shape[0])
    if w_shape[1] * groups != x_shape[1]:
        raise ValueError(f"{w_name}: expected {x_shape[1] // groups} input channels per group "
                         f"(C={x_shape[1]}, groups={groups}), got w.shape[1]={w_shape[1]}")
    # Asymmetric padding: the formula's 2p becomes lo + hi, i.e. use the padded length with p=0.
    out_size = tuple(conv_output_size(n + lo + hi, k, s, 0, d) for n, k, s, d, (lo, hi)
                     in zip(x_shape[2:], w_shape[2:], stride, dilation, pairs))
    if any(o < 1 for o in out_size):
        raise ValueError(f"x: padded input {tuple(x_shape[2:])} + {pairs} is smaller than the "
                         f"dilated kernel {tuple(w_shape[2:])} (dilation {dilation})")
    return stride, pairs, dilation, out_size


def conv_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """N-d cross-correlation, as ``torch.nn.functional.conv1d/2d/3d``: the module docstring's sum.

    Parameters
    ----------
    x : ndarray of shape (N, C, *in_size)
    w : ndarray of shape (K, C / groups, *kernel_size)
    b : ndarray of shape (K,), or None
    stride, dilation : int or tuple of one int per spatial dim
    padding : int, tuple of one int per spatial dim, or ((lo, hi), ...) pairs; zero padding

    Returns
    -------
    z : ndarray of shape (N, K, *out_size)
        ``out_size[j] = conv_output_size(in_size[j], kernel_size[j], s[j], p[j], d[j])``
    """
    check_array(x, "x")
    check_array(w, "w")
    if b is not None and (not isinstance(b, np.ndarray) or b.shape != (w.shape[0],)):
        raise ValueError(f"b: expected None or an ndarray of shape ({w.shape[0]},)")
    stride, pairs, dilation, out_size = conv_geometry(x.shape, w.shape, stride, padding,
                                                      dilation, groups)
    x_pad = pad_input(x, pairs)
    N, K, C_g = x.shape[0], w.shape[0], w.shape[1]
    K_g = K // groups  # output channels per group
    z = np.zeros((N, K) + out_size, dtype=accumulator_dtype(x, w, b))
    for n in range(N):
        for k in range(K):
            g = k // K_g  # the group of output channel k sees input channels g·C_g ... g·C_g+C_g-1
            for i in positions(out_size):
                total = b[k] if b is not None else 0
                for c in range(C_g):
                    for a in positions(w.shape[2:]):
                        tap = tuple(i_j * s_j + a_j * d_j
                                    for i_j, a_j, s_j, d_j in zip(i, a, stride, dilation))
                        total += w[(k, c) + a] * x_pad[(n, g * C_g + c) + tap]
                z[(n, k) + i] = total
    return z


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation with every index spelled out (``torch.nn.functional.conv2d``):

        z[n, k, i, j] = b[k] + Σ_c Σ_a Σ_b w[k, c, a, b] · x[n, c, i·s + a·d, j·s + b·d]

    where ``x`` is the zero-padded input and, with groups, c runs over the C/groups channels of
    the group of k. Same arguments and result as :func:`conv_forward` for 4-D ``x``.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    w : ndarray of shape (K, C / groups, KH, KW)
    b : ndarray of shape (K,), or None

    Returns
    -------
    z : ndarray of shape (N, K, OH, OW)
    """
    check_array(x, "x", min_ndim=4)
    if x.ndim != 4:
        raise ValueError(f"x: expected shape (N, C, H, W), got {x.shape}")
    check_array(w, "w", min_ndim=4)
    if b is not None and (not isinstance(b, np.ndarray) or b.shape != (w.shape[0],)):
        raise ValueError(f"b: expected None or an ndarray of shape ({w.shape[0]},)")
    (s_h, s_w), pairs, (d_h, d_w), (OH, OW) = conv_geometry(x.shape, w.shape, stride, padding,
                                                            dilation, groups)
    x = pad_input(x, pairs)
    N, (K, C_g, KH, KW) = x.shape[0], w.shape
    K_g = K // groups
    z = np.zeros((N, K, OH, OW), dtype=accumulator_dtype(x, w, b))
    for n in range(N):
        for k in range(K):
            first_channel = (k // K_g) * C_g
            for i in range(OH):
                for j in range(OW):
                    total = b[k] if b is not None else 0
                    for c in range(C_g):
                        for a in range(KH):
                            for b_ in range(KW):  # `b_`: the name `b` is the bias
                                total += (w[k, c, a, b_]
                                          * x[n, first_channel + c, i * s_h + a * d_h,
                                              j * s_w + b_ * d_w])
                    z[n, k, i, j] = total
    return z
