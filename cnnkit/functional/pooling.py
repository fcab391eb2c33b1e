"""Pooling on Tensors, as ``torch.nn.functional``: max, average and adaptive, in 1, 2 and 3 dims.

Pooling shrinks a feature map by letting one value represent each window: its maximum or its
mean. The usual choice is stride = window size (non-overlapping windows); stride defaults to the
kernel size, as in PyTorch. ``ceil_mode`` sizes the output with ceil instead of floor, but drops a
last window that would start in the right padding.
"""
import numpy as np

from .. import tuning
from ..conv_arithmetic import (answers_kept, conv_output_shape, positive_tuple, resolve_padding,
                               to_tuple)
from ..kernels import pooling as kernels
from ..tensor import Tensor, is_grad_enabled
from .half import computes_float16_in_float32

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"]


def _check_input(op, input, n_dims):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a cnnkit Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got dtype {input.dtype}")
    if input.ndim not in (n_dims + 1, n_dims + 2):
        raise ValueError(f"{op}: input must be {n_dims + 2}-D (N, C, *spatial) or "
                         f"{n_dims + 1}-D unbatched, got shape {input.shape}")
    if input.ndim == n_dims + 1:
        return input.reshape((1,) + input.shape), True
    return input, False


def _window(op, input, n_dims, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate a pooling window; return (x, unbatched, kernel, stride, pads, dilation, out)."""
    x, unbatched = _check_input(op, input, n_dims)
    return (x, unbatched) + _window_arguments(op, x.shape[2:], n_dims, kernel_size, stride,
                                              padding, dilation, ceil_mode)


@answers_kept
def _window_arguments(op, spatial, n_dims, kernel_size, stride, padding, dilation, ceil_mode):
    """(kernel, stride, pads, dilation, out) of a pooling window over a map of shape
    ``spatial``, checked (the same checks for every call of a layer: answers kept)."""
    kernel = positive_tuple(kernel_size, n_dims, "kernel_size")
    stride = kernel if stride is None or stride == () or stride == [] else positive_tuple(
        stride, n_dims, "stride")
    dilation = positive_tuple(dilation, n_dims, "dilation")
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple, got {padding!r}")
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    for k, (lo, hi) in zip(kernel, pads):
        if max(lo, hi) > k // 2:
            raise ValueError(f"{op}: padding {padding!r} must be at most half the kernel size "
                             f"{kernel}")
    out = conv_output_shape(spatial, kernel, stride, pads, dilation, ceil_mode=ceil_mode)
    if any(o <= 0 for o in out):
        raise ValueError(f"{op}: output size {out} is too small for input {spatial}")
    for n, k, s, (lo, _), d, o in zip(spatial, kernel, stride, pads, dilation, out):
        # A dilated window can straddle a short input and see only padding (PyTorch then
        # returns an index outside the input); refuse instead. Without low padding every
        # window's first cell is in the input (output_size drops windows starting past it).
        if lo == 0:
            continue
        taps = np.arange(o)[:, None] * s - lo + np.arange(k) * d
        if not ((taps >= 0) & (taps < n)).any(axis=1).all():
            raise ValueError(f"{op}: padding {padding!r} with dilation {dilation} leaves windows "
                             f"that see only padding in an input of size {spatial}")
    return kernel, stride, pads, dilation, out


def _unbatch(t, unbatched):
    return t.reshape(t.shape[1:]) if unbatched else t


def _whole_plane(spatial, kernel, pads, dilation):
    """Whether the one window is each whole input plane, with no padding: global pooling
    (ResNet's ``avg_pool2d(x, 7)`` head on 7 × 7 maps), which the adaptive layers' global path
    computes as one pass per plane. The window-by-window kernel spent 0.53–0.72 ms on
    64 × 256 planes of 7 × 7, the global path 0.13 (BENCHMARKS.md, "Windows that are the
    whole map")."""
    return (tuple(kernel) == tuple(spatial) and all(d == 1 for d in dilation)
            and not any(lo or hi for lo, hi in pads))


def _max_pool(op, n_dims, input, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices):
    x, unbatched, kernel, stride, pads, dilation, out = _window(
        op, input, n_dims, kernel_size, stride, padding, dilation, ceil_mode)
    if _whole_plane(x.shape[2:], kernel, pads, dilation):
        return _adaptive_max(op, x, unbatched, out, return_indices)
    if x.data.size >= tuning.value("pool_compiled_min_size"):
        return _compiled_max_pool(op, x, unbatched, kernel, stride, pads, dilation, out,
                                  return_indices)
    y, winner = kernels.max_pool_forward(x.data, kernel, stride, pads, dilation, out)

    def backward(g):
        return (kernels.max_pool_backward(g, winner, x.shape, kernel, stride, pads, dilation),)

    result = _unbatch(Tensor._make(y, (x,), backward, op), unbatched)
    if not return_indices:
        return result
    index = kernels.max_pool_indices(winner, x.shape[2:], kernel, stride, pads, dilation)
    return result, Tensor(index[0] if unbatched else index)


def _compiled_max_pool(op, x, unbatched, kernel, stride, pads, dilation, out, return_indices):
    """Max pooling by ``pooling_numba``'s kernels; a 1-D input (N, C, L) as maps of one row
    (N, C, 1, L), whose flat indices are the 1-D ones. NumPy's pass per kernel offset cost
    one 16 × 128 signal 47 µs, against 6 for PyTorch's layer, and 8 × 16 volumes of
    16 × 32 × 32 pooled by 2 19.0 ms, against 4.8."""
    from ..kernels import pooling_numba
    data, lifted = x.data, x.ndim == 3
    if lifted:
        data = data[:, :, None, :]
        kernel, stride, dilation, out = ((1,) + t for t in (kernel, stride, dilation, out))
        pads = ((0, 0),) + tuple(pads)
    forward = pooling_numba.max_pool3d_forward if data.ndim == 5 else \
        pooling_numba.max_pool2d_forward
    # the winners only where a backward pass or the caller wants them: in inference, the
    # general kernel takes the maxima alone (2 threads, by 3 at stride 2: 64 × 16 signals of
    # 1000 values 0.535 -> 0.332 ms, PyTorch 0.269; 16 × 64 maps of 56 × 56 5.81 -> 4.84)
    indexed = return_indices or (is_grad_enabled() and x.requires_grad)
    y, winner = forward(data, kernel, stride, pads, dilation, out, indexed)

    def backward(g):
        return (pooling_numba.max_pool_backward(g.reshape(winner.shape), winner,
                                                data.shape).reshape(x.shape),)
    y = y.reshape(x.shape[:2] + y.shape[2 + lifted:])  # the lifted row dropped
    result = _unbatch(Tensor._make(y, (x,), backward, op), unbatched)
    if return_indices:
        index = winner.astype(np.int64).reshape(y.shape)  # PyTorch's index dtype
        return result, Tensor(index[0] if unbatched else index)
    return result


@computes_float16_in_float32
def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling over (N, C, L). With ``return_indices``, also each max's flat input index."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


@computes_float16_in_float32
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling over (N, C, H, W): y[n, c, i, j] = max_{a,b} x[n, c, i·s + a·d, j·s + b·d]."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


@computes_float16_in_float32
def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling over (N, C, D, H, W)."""
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def _avg_pool(op, n_dims, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override=None):
    x, unbatched, kernel, stride, pads, _, out = _window(
        op, input, n_dims, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if not isinstance(divisor_override, (int, np.integer)) or divisor_override <= 0:
            raise ValueError(f"{op}: divisor_override must be a positive int, got "
                             f"{divisor_override!r}")
        divisor = np.float64(divisor_override)
    elif _whole_plane(x.shape[2:], kernel, pads, (1,) * n_dims):
        return _adaptive_avg(op, x, unbatched, out)
    else:
        divisor = kernels.avg_divisor(x.shape[2:], kernel, stride, pads, out, count_include_pad)
    if x.data.size >= tuning.value("pool_compiled_min_size"):
        # signals and maps as volumes, NumPy's passes' values to the bit
        from ..kernels import pooling_numba as passes
    else:
        passes = kernels
    y = passes.avg_pool_forward(x.data, kernel, stride, pads, out, divisor)

    def backward(g):
        return (passes.avg_pool_backward(g, x.shape, kernel, stride, pads, divisor),)
    return _unbatch(Tensor._make(y, (x,), backward, op), unbatched)


@computes_float16_in_float32
def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """Average pooling over (N, C, L)."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad)


@computes_float16_in_float32
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Average pooling over (N, C, H, W): y = (Σ over the window) / (window cells counted)."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


@computes_float16_in_float32
def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Average pooling over (N, C, D, H, W)."""
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def _adaptive_size(op, output_size, spatial):
    n_dims = len(spatial)
    if isinstance(output_size, (tuple, list)) and len(output_size) == n_dims:
        sizes = tuple(s if o is None else o for o, s in zip(output_size, spatial))
    else:
        sizes = output_size
    sizes = to_tuple(sizes, n_dims, "output_size")
    if any(s < 0 for s in sizes):  # 0 is allowed: an empty output, as PyTorch gives
        raise ValueError(f"output_size: must be non-negative, got {output_size!r}")
    if any(s == 0 for s in spatial):
        raise ValueError(f"{op}: input spatial sizes must be positive, got {spatial}")
    return sizes


def _even_windows(spatial, out):
    """The window of adaptive pooling from ``spatial`` to ``out`` when every output size
    divides its input size (window i of an axis is then [i·k, (i + 1)·k), k = size/out:
    plain pooling with kernel = stride = k), else None; None for global pooling too, which
    has a path of its own. Plain pooling runs compiled: 64 × 256 maps of 14 × 14 averaged to
    7 × 7 in 1.0 ms, against 22 by windows gathered axis by axis (BENCHMARKS.md, "Adaptive
    pooling with even windows")."""
    if all(o == 1 for o in out) or any(o == 0 or n % o for n, o in zip(spatial, out)):
        return None
    return tuple(n // o for n, o in zip(spatial, out))


def _adaptive_avg_pool(op, n_dims, input, output_size):
    x, unbatched = _check_input(op, input, n_dims)
    out = _adaptive_size(op, output_size, x.shape[2:])
    window = _even_windows(x.shape[2:], out)
    if window is not None:
        return _unbatch(_avg_pool(op, n_dims, x, window, window, 0, False, True), unbatched)
    return _adaptive_avg(op, x, unbatched, out)


def _adaptive_passes(x, out):
    """The module whose adaptive pooling passes take x to ``out``: windows of varying size
    compiled (``pooling_adaptive_numba``) from ``pool_compiled_min_size`` values on; global
    pooling, small inputs and empty outputs NumPy's (``kernels.pooling``)."""
    if x.data.size >= tuning.value("pool_compiled_min_size") and x.data.size and \
            not all(o == 1 for o in out) and 0 not in out:
        from ..kernels import pooling_adaptive_numba
        return pooling_adaptive_numba
    return kernels


def _adaptive_avg(op, x, unbatched, out):
    """Adaptive average pooling of a checked batch x to ``out`` (all ones: global pooling)."""
    passes = _adaptive_passes(x, out)
    y = passes.adaptive_avg_forward(x.data, out)

    def backward(g):
        return (np.ascontiguousarray(passes.adaptive_avg_backward(g, x.shape[2:])),)
    return _unbatch(Tensor._make(np.ascontiguousarray(y), (x,), backward, op), unbatched)


@computes_float16_in_float32
def adaptive_avg_pool1d(input, output_size):
    """Average pooling to a fixed output length; window i is [⌊i·L/out⌋, ⌈(i+1)·L/out⌉)."""
    return _adaptive_avg_pool("adaptive_avg_pool1d", 1, input, output_size)


@computes_float16_in_float32
def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed (H', W'); ``output_size=1`` is global average pooling."""
    return _adaptive_avg_pool("adaptive_avg_pool2d", 2, input, output_size)


@computes_float16_in_float32
def adaptive_avg_pool3d(input, output_size):
    return _adaptive_avg_pool("adaptive_avg_pool3d", 3, input, output_size)


def _adaptive_max_pool(op, n_dims, input, output_size, return_indices):
    x, unbatched = _check_input(op, input, n_dims)
    out = _adaptive_size(op, output_size, x.shape[2:])
    window = _even_windows(x.shape[2:], out)
    if window is None:
        return _adaptive_max(op, x, unbatched, out, return_indices)
    pooled = _max_pool(op, n_dims, x, window, window, 0, 1, False, return_indices)
    if not return_indices:
        return _unbatch(pooled, unbatched)
    result, index = pooled
    return _unbatch(result, unbatched), Tensor(index.data[0] if unbatched else index.data)


def _adaptive_max(op, x, unbatched, out, return_indices):
    """Adaptive max pooling of a checked batch x to ``out`` (all ones: global pooling)."""
    passes = _adaptive_passes(x, out)
    if 0 in out:  # an empty output (no window to take a maximum of)
        y = np.empty(x.shape[:2] + out, dtype=x.dtype)
        index = np.empty(y.shape, dtype=np.int64)
    else:
        y, index = passes.adaptive_max_forward(x.data, out)

    def backward(g):
        return (passes.scatter_to_planes(g, index, x.shape),)
    result = _unbatch(Tensor._make(y, (x,), backward, op), unbatched)
    if return_indices:
        return result, Tensor(index[0] if unbatched else index)
    return result


@computes_float16_in_float32
def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool1d", 1, input, output_size, return_indices)


@computes_float16_in_float32
def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling to a fixed (H', W') with PyTorch's adaptive windows."""
    return _adaptive_max_pool("adaptive_max_pool2d", 2, input, output_size, return_indices)


@computes_float16_in_float32
def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool3d", 3, input, output_size, return_indices)
