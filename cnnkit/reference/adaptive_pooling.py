"""Adaptive pooling: you choose the output size, each output cell gets its own window.

Along an axis of input length n and output length m, output cell i pools the input cells

    start(i) = floor(i · n / m)        end(i) = ceil((i + 1) · n / m)      (end exclusive)

(torch's ``start_index``/``end_index``). The windows cover the input; neighbouring windows may
overlap by one cell when m does not divide n, and m > n is allowed (cells are then repeated).
"""
import itertools

import numpy as np

from ._args import _is_int, check_array, positions
from .pooling import beats


def adaptive_window(i, n, m):
    """``(start, end)`` of output cell i of m over an input of length n (module docstring)."""
    return (i * n) // m, -((-(i + 1) * n) // m)  # -(-a // b) is ceil(a / b) on integers


def _output_size(x, output_size):
    check_array(x, "x")
    ndim = x.ndim - 2
    sizes = (output_size,) * ndim if _is_int(output_size) or output_size is None else output_size
    if not isinstance(sizes, (tuple, list)) or len(sizes) != ndim:
        raise ValueError(f"output_size: expected an int or {ndim} ints/None, got {output_size!r}")
    # None keeps that dimension's input size, as in torch.
    sizes = tuple(n if m is None else m for n, m in zip(x.shape[2:], sizes))
    if not all(_is_int(m) and m >= 1 for m in sizes):
        raise ValueError(f"output_size: expected positive ints, got {output_size!r}")
    return sizes


def _windows(o, in_size, out_size):
    return [range(*adaptive_window(i, n, m)) for i, n, m in zip(o, in_size, out_size)]


def adaptive_avg_pool(x, output_size):
    """As ``torch.nn.functional.adaptive_avg_pool1d/2d/3d``.

    Parameters
    ----------
    x : ndarray of shape (N, C, *in_size)
    output_size : int, or tuple of one int (or None: keep that size) per spatial dim

    Returns
    -------
    y : ndarray of shape (N, C, *output_size);  y[n, c, o] = mean of x[n, c, window(o)]
    """
    out_size = _output_size(x, output_size)
    y = np.zeros(x.shape[:2] + out_size, dtype=np.result_type(x, np.float32))
    for o in positions(out_size):
        window = _windows(o, x.shape[2:], out_size)
        count = int(np.prod([len(r) for r in window]))
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                total = 0
                for cell in itertools.product(*window):
                    total += x[(n, c) + cell]
                y[(n, c) + o] = total / count
    return y


def adaptive_avg_pool_backward(dy, x_shape):
    """dL/dx of :func:`adaptive_avg_pool`: dy[n, c, o] / |window(o)| to every cell of window(o).

    dy : ndarray of shape (N, C, *out_size);  returns dx of shape x_shape.
    """
    check_array(dy, "dy")
    x_shape = tuple(x_shape)
    out_size = dy.shape[2:]
    dx = np.zeros(x_shape, dtype=np.result_type(dy, np.float32))
    for o in positions(out_size):
        window = _windows(o, x_shape[2:], out_size)
        count = int(np.prod([len(r) for r in window]))
        for cell in itertools.product(*window):
            dx[(slice(None), slice(None)) + cell] += dy[(slice(None), slice(None)) + o] / count
    return dx


def adaptive_max_pool(x, output_size):
    """As ``torch.nn.functional.adaptive_max_pool1d/2d/3d(..., return_indices=True)``.

    Returns ``(values, indices)``, both of shape (N, C, *output_size); indices are flat
    (row-major) positions in each input plane; the gradient is :func:`max_pool_backward`.
    Ties keep the first maximum in scan order; a NaN wins.
    """
    out_size = _output_size(x, output_size)
    values = np.zeros(x.shape[:2] + out_size, dtype=x.dtype)
    indices = np.zeros(x.shape[:2] + out_size, dtype=np.int64)
    for o in positions(out_size):
        window = _windows(o, x.shape[2:], out_size)
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                best, best_cell = None, None
                for cell in itertools.product(*window):
                    value = x[(n, c) + cell]
                    if best_cell is None or beats(value, best):
                        best, best_cell = value, cell
                values[(n, c) + o] = best
                indices[(n, c) + o] = np.ravel_multi_index(best_cell, x.shape[2:])
    return values, indices
