"""Convolution backward pass: both gradient formulas of docs/concepts.md §13, one loop nest each.

Forward (see ``conv.py``):  z[n, k, i] = b[k] + Σ_c Σ_a w[k, c, a] · x_pad[n, c, i·s + a·d]
(c ranging over the channels of k's group). Every partial derivative is read off that sum:

(1) input:   dL/dx_pad[n, c, t] = Σ_k Σ_a dL/dz[n, k, (t − a·d) / s] · w[k, c, a]
             summing only where t − a·d is a multiple of s and (t − a·d)/s is an output position.
             With s = d = 1 this is Σ_a dL/dz[t − a] · w[a]: the *full* cross-correlation of
             dL/dz with the flipped kernel, i.e. the true convolution dL/dz * w.
(2) weight:  dL/dw[k, c, a] = Σ_n Σ_i dL/dz[n, k, i] · x_pad[n, c, i·s + a·d]
             a (valid) cross-correlation of the input with dL/dz: every output used w[k, c, a].
(3) bias:    dL/db[k] = Σ_n Σ_i dL/dz[n, k, i]

dL/dx is dL/dx_pad with the padding cut off: padded cells are constants, not inputs.
"""
import numpy as np

from ._args import accumulator_dtype, check_array, positions
from .conv import conv_geometry
from .padding import pad_input


def _check_dy(dy, expected_shape):
    check_array(dy, "dy")
    if dy.shape != tuple(expected_shape):
        raise ValueError(f"dy: expected shape {tuple(expected_shape)} (the forward output), "
                         f"got {dy.shape}")


def conv_backward_input(dy, x_shape, w, stride=1, padding=0, dilation=1, groups=1):
    """dL/dx of :func:`conv_forward` by formula (1), gathered input cell by input cell.

    Parameters
    ----------
    dy : ndarray of shape (N, K, *out_size)
        dL/dz, the gradient of the loss with respect to the forward output.
    x_shape : tuple (N, C, *in_size)
    w : ndarray of shape (K, C / groups, *kernel_size)
    stride, padding, dilation, groups : as in the forward pass

    Returns
    -------
    dx : ndarray of shape x_shape
    """
    x_shape = tuple(x_shape)
    check_array(w, "w")
    stride, pairs, dilation, out_size = conv_geometry(x_shape, w.shape, stride, padding,
                                                      dilation, groups)
    _check_dy(dy, (x_shape[0], w.shape[0]) + out_size)
    N, C = x_shape[:2]
    K, C_g = w.shape[:2]
    K_g = K // groups
    padded_size = tuple(n + lo + hi for n, (lo, hi) in zip(x_shape[2:], pairs))
    dx_pad = np.zeros((N, C) + padded_size, dtype=accumulator_dtype(dy, w))
    for n in range(N):
        for c in range(C):
            g, c_in_group = divmod(c, C_g)
            for t in positions(padded_size):
                total = 0
                # Input cell t fed output i through kernel offset a exactly when t = i·s + a·d.
                for k in range(g * K_g, (g + 1) * K_g):
                    for a in positions(w.shape[2:]):
                        shifted = tuple(t_j - a_j * d_j for t_j, a_j, d_j in zip(t, a, dilation))
                        if any(u % s for u, s in zip(shifted, stride)):
                            continue  # t − a·d not a multiple of s: the kernel jumped over t
                        i = tuple(u // s for u, s in zip(shifted, stride))
                        if any(not 0 <= i_j < o for i_j, o in zip(i, out_size)):
                            continue  # no such output (off the edge, or dropped by the floor)
                        total += dy[(n, k) + i] * w[(k, c_in_group) + a]
                dx_pad[(n, c) + t] = total
    interior = tuple(slice(lo, lo + n) for n, (lo, _) in zip(x_shape[2:], pairs))
    return dx_pad[(slice(None), slice(None)) + interior]


def conv_backward_weight(dy, x, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """dL/dw of :func:`conv_forward` by formula (2).

    Parameters
    ----------
    dy : ndarray of shape (N, K, *out_size)
    x : ndarray of shape (N, C, *in_size)
    w_shape : tuple (K, C / groups, *kernel_size)

    Returns
    -------
    dw : ndarray of shape w_shape
    """
    check_array(x, "x")
    w_shape = tuple(w_shape)
    stride, pairs, dilation, out_size = conv_geometry(x.shape, w_shape, stride, padding,
                                                      dilation, groups, w_name="w_shape")
    _check_dy(dy, (x.shape[0], w_shape[0]) + out_size)
    x_pad = pad_input(x, pairs)
    K, C_g = w_shape[:2]
    K_g = K // groups
    dw = np.zeros(w_shape, dtype=accumulator_dtype(dy, x))
    for k in range(K):
        g = k // K_g
        for c in range(C_g):
            for a in positions(w_shape[2:]):
                total = 0
                # w[k, c, a] multiplied x_pad[n, c, i·s + a·d] in every output z[n, k, i].
                for n in range(x.shape[0]):
                    for i in positions(out_size):
                        tap = tuple(i_j * s_j + a_j * d_j
                                    for i_j, a_j, s_j, d_j in zip(i, a, stride, dilation))
                        total += dy[(n, k) + i] * x_pad[(n, g * C_g + c) + tap]
                dw[(k, c) + a] = total
    return dw


def conv_backward_bias(dy):
    """dL/db[k] = Σ_n Σ_i dy[n, k, i]: the bias was added to every output of channel k.

    dy : ndarray of shape (N, K, *out_size)  ->  db : ndarray of shape (K,)
    """
    check_array(dy, "dy")
    db = np.zeros(dy.shape[1], dtype=dy.dtype)
    for k in range(dy.shape[1]):
        total = 0
        for n in range(dy.shape[0]):
            for i in positions(dy.shape[2:]):
                total += dy[(n, k) + i]
        db[k] = total
    return db
