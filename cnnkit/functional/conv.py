"""Convolution and transposed convolution on Tensors, as ``torch.nn.functional.convNd``.

These are cross-correlations (the kernel is not flipped), which is what networks use and what
PyTorch calls convolution; ``cnnkit.signal.convolve`` is the true, flipped convolution.

Padding accepts everything PyTorch does plus more:
  * an int, or one int per spatial dim (symmetric);
  * explicit per-side pairs ``((lo, hi), ...)``;
  * ``'valid'`` (none), ``'full'`` (``d·(k−1)`` each side: every partial overlap);
  * ``'same'``: output size ``ceil(in / stride)`` for any kernel parity, dilation and stride; an
    odd total puts the extra cell on the high (right/bottom) side, as TensorFlow. PyTorch allows
    ``'same'`` only for stride 1, where both conventions agree.
``padding_mode`` is ``'zeros' | 'reflect' | 'replicate' | 'circular'``, as ``torch.nn.ConvNd``.

The gradients (see ``cnnkit.kernels.conv``) are convolutions again: dL/dx is the transposed
convolution of dL/dy with the weights, dL/dw the correlation of the input with dL/dy, and
dL/db = Σ_n Σ_i dL/dy[n, k, i]. A transposed convolution swaps the first two roles.
"""
import numpy as np

from ..conv_arithmetic import (answers_kept, conv_output_shape, positive_tuple, resolve_padding,
                               to_tuple)
from ..kernels.conv import PaddedInput, conv_backward_input, conv_backward_weight, conv_forward
from ..kernels.bias_numba import add_bias, bias_grad
from ..kernels.padding import check_pad_widths, pad_array, pad_array_backward
from ..tensor import Tensor, is_grad_enabled
from .half import computes_float16_in_float32

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _check_tensors(op, input, weight, bias, n_dims):
    for name, t in (("input", input), ("weight", weight)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a cnnkit Tensor, got {type(t).__name__}")
        if t.dtype.kind != "f":
            raise TypeError(f"{op}: {name} must be floating point, got dtype {t.dtype}")
    if input.ndim not in (n_dims + 1, n_dims + 2):
        raise ValueError(f"{op}: input must be {n_dims + 2}-D (N, C, {_dims(n_dims)}) or "
                         f"{n_dims + 1}-D unbatched, got shape {input.shape}")
    if weight.ndim != n_dims + 2:
        raise ValueError(f"{op}: weight must be {n_dims + 2}-D, got shape {weight.shape}")
    if input.dtype != weight.dtype:
        raise TypeError(f"{op}: input ({input.dtype}) and weight ({weight.dtype}) must have the "
                        f"same dtype")
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"{op}: bias must be a cnnkit Tensor or None")
        if bias.dtype != weight.dtype:
            raise TypeError(f"{op}: bias ({bias.dtype}) and weight ({weight.dtype}) must have the "
                            f"same dtype")


def _dims(n):
    return ", ".join(("D", "H", "W")[3 - n:]) if n <= 3 else f"{n} spatial dims"


def _check_groups(op, groups, in_channels, out_channels=None):
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool):
        raise TypeError(f"{op}: groups must be a positive int, got {groups!r}")  # as torch
    if groups <= 0:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if in_channels % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels ({in_channels})")
    if out_channels is not None and out_channels % groups:
        raise ValueError(f"{op}: groups={groups} must divide the output channels "
                         f"({out_channels})")
    if out_channels is not None and out_channels < groups:  # no filters: refused, as torch
        raise ValueError(f"{op}: weight.shape[0] (the output channels, {out_channels}) must "
                         f"be at least groups={groups}")


@answers_kept
def _conv_arguments(op, n_dims, x_shape, w_shape, bias_shape, stride, padding, dilation, groups,
                    padding_mode):
    """A convolution's arguments checked against its shapes: (stride, dilation, pads, the
    padding mode as ``pad_array`` names it, whether anything is padded). Every call of a
    layer asks the same: the answers are kept (``answers_kept``)."""
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{op}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    k, c = w_shape[0], x_shape[1]
    _check_groups(op, groups, c, k)
    if w_shape[1] != c // groups:
        raise ValueError(f"{op}: expected weight.shape[1] = {c // groups} (input channels / "
                         f"groups), got {w_shape[1]}")
    if bias_shape is not None and bias_shape != (k,):
        raise ValueError(f"{op}: bias must have shape ({k},), got {bias_shape}")
    kernel, spatial = w_shape[2:], x_shape[2:]
    stride = positive_tuple(stride, n_dims, "stride")
    dilation = positive_tuple(dilation, n_dims, "dilation")
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    conv_output_shape(spatial, kernel, stride, pads, dilation)  # validates the kernel fits
    mode = "constant" if padding_mode == "zeros" else padding_mode
    if mode != "constant":
        check_pad_widths(spatial, pads, mode, name=f"{op}: padding")
    return stride, dilation, pads, mode, any(lo or hi for lo, hi in pads)


def _batched(input, n_dims):
    """Unbatched (C, *spatial) input is run as a batch of one, like PyTorch."""
    return (input, False) if input.ndim == n_dims + 2 else (input.reshape((1,) + input.shape), True)


def _conv(op, n_dims, input, weight, bias, stride, padding, dilation, groups, padding_mode):
    _check_tensors(op, input, weight, bias, n_dims)
    x, unbatched = _batched(input, n_dims)
    stride, dilation, pads, mode, padded = _conv_arguments(
        op, n_dims, x.shape, weight.shape, None if bias is None else bias.shape, stride,
        padding, dilation, groups, padding_mode)
    kernel = weight.shape[2:]
    widths = ((0, 0), (0, 0)) + pads

    # Zero padding is handed to the kernels as widths (a ``PaddedInput``): the algorithms that
    # read a padded array share one copy between the forward pass and the weight gradient
    # (held until backward only when that gradient will be wanted), and the row correlation
    # and the compiled depthwise weight gradient read the input unpadded. The input gradient
    # takes the zero padding as widths too (the Winograd, implicit and rows paths skip the
    # padding cells). Other padding modes are padded here.
    zero_pads = pads if mode == "constant" and padded else None
    wants_dw = weight.requires_grad and is_grad_enabled()
    source = PaddedInput(x.data if zero_pads or not padded else
                         pad_array(x.data, widths, mode), zero_pads, shared=wants_dw)
    # Which operands hold inf or NaN, found out by whichever pass first needs to know (the
    # choice of algorithm depends on it, docs/ieee.md) and kept for this step's other passes.
    finite = {}
    y = conv_forward(source, weight.data, stride, dilation, groups, finite=finite,
                     bias=None if bias is None else bias.data)
    padded_spatial = source.padded_shape[2:]
    if not wants_dw:
        source.release()

    def backward(g):
        dx = dw = db = None
        if x.requires_grad:
            dx = conv_backward_input(g, weight.data, padded_spatial, stride, dilation, groups,
                                     zero_pads, finite)
            if padded and zero_pads is None:
                dx = pad_array_backward(dx, x.shape, widths, mode)
        wants_db = bias is not None and bias.requires_grad
        if weight.requires_grad and wants_db:
            dw, db = conv_backward_weight(source, g, kernel, stride, dilation, groups, None,
                                          finite, with_bias=True)
        elif weight.requires_grad:
            dw = conv_backward_weight(source, g, kernel, stride, dilation, groups, None, finite)
        elif wants_db:
            db = bias_grad(g)
        return dx, dw, db

    parents = (x, weight) if bias is None else (x, weight, bias)
    out = Tensor._make(y, parents, backward, op)
    return out.reshape(out.shape[1:]) if unbatched else out


@computes_float16_in_float32
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros"):
    """1-D cross-correlation. input (N, C, L), weight (K, C/groups, k) -> (N, K, L_out)."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups, padding_mode)


@computes_float16_in_float32
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros"):
    """2-D cross-correlation. input (N, C, H, W), weight (K, C/groups, kh, kw) -> (N, K, H', W').

    z[n, k, i, j] = b[k] + Σ_c Σ_a Σ_b w[k, c, a, b] · x[n, c, i·s + a·d, j·s + b·d]
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups, padding_mode)


@computes_float16_in_float32
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros"):
    """3-D cross-correlation. input (N, C, D, H, W), weight (K, C/groups, kd, kh, kw)."""
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups, padding_mode)


def _conv_transpose(op, n_dims, input, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    _check_tensors(op, input, weight, bias, n_dims)
    x, unbatched = _batched(input, n_dims)
    c_in = x.shape[1]
    if weight.shape[0] != c_in:
        raise ValueError(f"{op}: expected weight.shape[0] = {c_in} (the input channels), got "
                         f"{weight.shape[0]}")
    _check_groups(op, groups, c_in)  # C_out = weight.shape[1] · groups is always divisible
    c_out = weight.shape[1] * groups
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"{op}: bias must have shape ({c_out},), got {bias.shape}")
    kernel, spatial = weight.shape[2:], x.shape[2:]
    stride = positive_tuple(stride, n_dims, "stride")
    dilation = positive_tuple(dilation, n_dims, "dilation")
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int, a tuple or (lo, hi) pairs, got {padding!r}")
    pads = resolve_padding(padding, spatial, kernel, stride, dilation)
    extra = to_tuple(output_padding, n_dims, "output_padding")
    out = conv_output_shape(spatial, kernel, stride, pads, dilation, transposed=True,
                            output_padding=extra)
    # The uncropped output: every input pixel spreads its kernel-sized footprint into it.
    full = tuple(o + lo + hi for o, (lo, hi) in zip(out, pads))
    crop = (slice(None), slice(None)) + tuple(slice(lo, lo + o) for o, (lo, _) in zip(out, pads))

    y = conv_backward_input(x.data, weight.data, full, stride, dilation, groups)[crop]
    y = np.ascontiguousarray(y)
    if bias is not None:
        add_bias(y, bias.data)

    def backward(g):
        dx = dw = db = None
        gp = np.zeros(g.shape[:2] + full, dtype=g.dtype)
        gp[crop] = g
        if x.requires_grad:
            dx = conv_forward(gp, weight.data, stride, dilation, groups)
            # output_padding ≥ stride (allowed when < dilation) can add rows no input reached.
            dx = np.ascontiguousarray(dx[(slice(None), slice(None)) + tuple(map(slice, spatial))])
        if weight.requires_grad:
            dw = conv_backward_weight(gp, x.data, kernel, stride, dilation, groups)
        if bias is not None and bias.requires_grad:
            db = bias_grad(g)
        return dx, dw, db

    parents = (x, weight) if bias is None else (x, weight, bias)
    result = Tensor._make(y, parents, backward, op)
    return result.reshape(result.shape[1:]) if unbatched else result


@computes_float16_in_float32
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 1-D convolution. input (N, C_in, L), weight (C_in, C_out/groups, k)."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


@computes_float16_in_float32
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 2-D convolution. input (N, C_in, H, W), weight (C_in, C_out/groups, kh, kw)."""
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


@computes_float16_in_float32
def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 3-D convolution. input (N, C_in, D, H, W), weight (C_in, C_out/groups, *k)."""
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)
