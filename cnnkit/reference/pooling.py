"""Max and average pooling with PyTorch's exact window rules, one output cell at a time.

Window of output position o along one axis (input length n, kernel k, stride s, padding p,
dilation d):  taps  o·s − p + a·d  for a = 0 .. k−1.

Output length: ``floor((n + 2p − d(k−1) − 1) / s) + 1``, or with ``ceil_mode`` the ceiling, so a
last partial window is kept — except that a window *starting* in the right padding (its start
``(out−1)·s >= n + p``) is dropped, since it would see no input at all. torch also requires
``p <= (d(k−1) + 1) // 2`` (max) or ``p <= k // 2`` (avg) so that no window is all padding.

* max: padding counts as −∞ (never chosen). ``indices`` are flat indices into each (unpadded)
  input plane, row-major over the spatial dims, as torch's ``return_indices=True``. Ties keep the
  first maximum in scan order; a NaN wins (as torch's CPU kernel).
* avg (no dilation in torch): sum over the window's cells inside the input, divided by
  ``count_include_pad=True``:  the window clipped to the padded input [−p, n + p) — padding
                               cells count, the ceil_mode overhang beyond them does not;
  ``count_include_pad=False``: the number of real input cells in the window;
  ``divisor_override``:        that number, whatever the window.
"""
import numpy as np

from ._args import check_array, positions, spatial_tuple


def pool_output_size(n, k, s, p=0, d=1, ceil_mode=False):
    """Pooling output length along one axis (module docstring), as torch's pooling_output_shape."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1  # the last window would start in the right padding: drop it
    return out


def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, max_padding):
    check_array(x, "x")
    ndim = x.ndim - 2
    kernel = spatial_tuple(kernel_size, ndim, "kernel_size")
    # torch: stride=None (or an empty list) means stride = kernel_size
    stride = kernel if stride is None or stride == [] else spatial_tuple(stride, ndim, "stride")
    padding = spatial_tuple(padding, ndim, "padding", minimum=0)
    dilation = spatial_tuple(dilation, ndim, "dilation")
    for p, k, d in zip(padding, kernel, dilation):
        if p > max_padding(k, d):
            raise ValueError(f"padding: must be at most half the (dilated) kernel size, got "
                             f"padding {padding} for kernel_size {kernel}, dilation {dilation}")
    out_size = tuple(pool_output_size(n, k, s, p, d, ceil_mode)
                     for n, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation))
    if any(o < 1 for o in out_size):
        raise ValueError(f"x: spatial size {x.shape[2:]} is too small for kernel_size {kernel} "
                         f"(output size {out_size})")
    return kernel, stride, padding, dilation, out_size


def beats(value, best):
    """torch's max rule: a strictly larger value wins (ties keep the first), and so does NaN."""
    return value > best or bool(np.isnan(value))


def _max_padding(k, d):
    return (d * (k - 1) + 1) // 2


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling, as ``torch.nn.functional.max_pool1d/2d/3d(..., return_indices=True)``.

    Parameters
    ----------
    x : ndarray of shape (N, C, *in_size)
    kernel_size, stride, padding, dilation : int or tuple of one int per spatial dim
        ``stride=None`` means ``stride = kernel_size``.
    ceil_mode : bool

    Returns
    -------
    values : ndarray of shape (N, C, *out_size)
        ``values[n, c, o] = max_a x[n, c, o·s − p + a·d]`` over taps inside the input
    indices : int64 ndarray of shape (N, C, *out_size)
        the flat (row-major, over in_size) position of each maximum in its input plane
    """
    kernel, stride, padding, dilation, out_size = _pool_geometry(
        x, kernel_size, stride, padding, dilation, ceil_mode, _max_padding)
    in_size = x.shape[2:]
    values = np.zeros(x.shape[:2] + out_size, dtype=x.dtype)
    indices = np.zeros(x.shape[:2] + out_size, dtype=np.int64)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for o in positions(out_size):
                best, best_tap = None, None
                for a in positions(kernel):
                    tap = tuple(o_j * s - p + a_j * d for o_j, a_j, s, p, d
                                in zip(o, a, stride, padding, dilation))
                    if any(not 0 <= t < m for t, m in zip(tap, in_size)):
                        continue  # a padding cell: -inf, never the maximum
                    value = x[(n, c) + tap]
                    if best_tap is None or beats(value, best):
                        best, best_tap = value, tap
                values[(n, c) + o] = best
                indices[(n, c) + o] = np.ravel_multi_index(best_tap, in_size)
    return values, indices


def max_pool_backward(dy, indices, x_shape):
    """dL/dx of max pooling (also of adaptive max pooling): each dy goes to its argmax.

        dx[n, c, indices[n, c, o]] += dy[n, c, o]      (overlapping windows add up)

    dy, indices : ndarrays of shape (N, C, *out_size);  returns dx of shape x_shape.
    """
    check_array(dy, "dy")
    if not isinstance(indices, np.ndarray) or indices.shape != dy.shape:
        raise ValueError(f"indices: expected an ndarray of shape {dy.shape}")
    x_shape = tuple(x_shape)
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for n in range(dy.shape[0]):
        for c in range(dy.shape[1]):
            for o in positions(dy.shape[2:]):
                cell = np.unravel_index(indices[(n, c) + o], x_shape[2:])
                dx[(n, c) + cell] += dy[(n, c) + o]
    return dx


def _avg_window(o, kernel, stride, padding, in_size):
    """Per-dim (start, end) of the real input cells in window o, and the count_include_pad size."""
    bounds, padded_volume = [], 1
    for o_j, k, s, p, n in zip(o, kernel, stride, padding, in_size):
        start = o_j * s - p
        end = min(start + k, n + p)  # clip to the padded input: the ceil_mode overhang is cut
        padded_volume *= end - start
        bounds.append((max(start, 0), min(end, n)))
    return bounds, padded_volume


def _avg_divisor(bounds, padded_volume, count_include_pad, divisor_override):
    if divisor_override is not None:
        return divisor_override
    if count_include_pad:
        return padded_volume
    return int(np.prod([end - start for start, end in bounds]))


def _check_override(divisor_override):
    if divisor_override is not None and (not isinstance(divisor_override, int)
                                         or divisor_override == 0):
        raise ValueError(f"divisor_override: expected None or a non-zero int, got "
                         f"{divisor_override!r}")


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None):
    """Average pooling, as ``torch.nn.functional.avg_pool1d/2d/3d`` (module docstring).

    Parameters
    ----------
    x : ndarray of shape (N, C, *in_size)
    kernel_size, stride, padding : int or tuple of one int per spatial dim
    ceil_mode, count_include_pad : bool
    divisor_override : int or None (torch has it for 2-D and 3-D)

    Returns
    -------
    y : ndarray of shape (N, C, *out_size)
        ``y[n, c, o] = Σ_{t in window(o) ∩ input} x[n, c, t] / divisor(o)``
    """
    _check_override(divisor_override)
    kernel, stride, padding, _, out_size = _pool_geometry(
        x, kernel_size, stride, padding, 1, ceil_mode, lambda k, d: k // 2)
    y = np.zeros(x.shape[:2] + out_size, dtype=np.result_type(x, np.float32))
    for o in positions(out_size):
        bounds, padded_volume = _avg_window(o, kernel, stride, padding, x.shape[2:])
        divisor = _avg_divisor(bounds, padded_volume, count_include_pad, divisor_override)
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                total = 0
                for t in positions([end - start for start, end in bounds]):
                    total += x[(n, c) + tuple(t_j + start for t_j, (start, _) in zip(t, bounds))]
                y[(n, c) + o] = total / divisor
    return y


def avg_pool_backward(dy, x_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                      count_include_pad=True, divisor_override=None):
    """dL/dx of :func:`avg_pool`: each dy[n, c, o] / divisor(o) goes to every real cell of window o.

    dy : ndarray of shape (N, C, *out_size);  returns dx of shape x_shape.
    """
    check_array(dy, "dy")
    _check_override(divisor_override)
    x_shape = tuple(x_shape)
    kernel, stride, padding, _, out_size = _pool_geometry(
        np.empty(x_shape, dtype=np.uint8), kernel_size, stride, padding, 1, ceil_mode,
        lambda k, d: k // 2)
    if dy.shape != x_shape[:2] + out_size:
        raise ValueError(f"dy: expected shape {x_shape[:2] + out_size}, got {dy.shape}")
    dx = np.zeros(x_shape, dtype=np.result_type(dy, np.float32))
    for o in positions(out_size):
        bounds, padded_volume = _avg_window(o, kernel, stride, padding, x_shape[2:])
        divisor = _avg_divisor(bounds, padded_volume, count_include_pad, divisor_override)
        for t in positions([end - start for start, end in bounds]):
            cell = tuple(t_j + start for t_j, (start, _) in zip(t, bounds))
            for n in range(x_shape[0]):
                for c in range(x_shape[1]):
                    dx[(n, c) + cell] += dy[(n, c) + o] / divisor
    return dx
