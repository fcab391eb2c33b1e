"""ONNX operators computed with cnnkit's differentiable ops (``cnnkit.functional``,
``cnnkit.ops``), for ``cnnkit.onnx.load``/``to_module`` and the ONNX backend.

Each operator is ``op(inputs, attrs, training) -> list of Tensor``: ``inputs`` the node's input
Tensors (None for an omitted optional input), ``attrs`` its attributes as Python values (ONNX's
defaults filled in here). Semantics follow the ONNX operator documentation
(https://onnx.ai/onnx/operators/); where PyTorch and ONNX agree (ceil-mode pooling drops a last
window that starts in the high padding) ``cnnkit.conv_arithmetic`` decides the output size.
Pools are built so every ONNX case runs through one path: the input is padded explicitly
(with −inf for max, zeros for average; extra high padding where ceil mode adds a window), then
max-pooled, or for averages summed by a depthwise convolution with a ones kernel (dilations
included) and divided by the count of cells each window covers (the same convolution of a mask).
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import ops
from ..conv_arithmetic import output_size, same_padding
from ..tensor import Tensor, no_grad

__all__ = ["OPS", "UnsupportedOperator"]


class UnsupportedOperator(ValueError):
    """An operator, or an attribute value, that cnnkit's ONNX runtime does not implement."""


def _spatial_attrs(x, attrs, kernel):
    """strides, dilations and (lo, hi) pads per spatial dim, auto_pad resolved."""
    n = len(kernel)
    strides = tuple(attrs.get("strides", (1,) * n))
    dilations = tuple(attrs.get("dilations", (1,) * n))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pairs = [same_padding(size, k, s, d) for size, k, s, d in
                 zip(x.shape[2:], kernel, strides, dilations)]
        if auto_pad == "SAME_LOWER":
            pairs = [(hi, lo) for lo, hi in pairs]
    elif auto_pad == "VALID":
        pairs = [(0, 0)] * n
    elif auto_pad == "NOTSET":
        pads = attrs.get("pads", (0,) * (2 * n))
        pairs = list(zip(pads[:n], pads[n:]))
    else:
        raise UnsupportedOperator(f"auto_pad={auto_pad!r}")
    return strides, dilations, tuple(pairs)


def conv(inputs, attrs, training):
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    kernel = tuple(attrs.get("kernel_shape", w.shape[2:]))
    strides, dilations, pairs = _spatial_attrs(x, attrs, kernel)
    conv_nd = getattr(F, f"conv{len(kernel)}d")
    return [conv_nd(x, w, bias, strides, pairs, dilations, attrs.get("group", 1))]


def conv_transpose(inputs, attrs, training):
    """The full transposed convolution, then cropped (pads) and zero-extended (output_padding)
    at each end; ``output_shape`` or SAME auto_pad fix the pads as the ONNX document says."""
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    kernel = tuple(attrs.get("kernel_shape", w.shape[2:]))
    n = len(kernel)
    strides = tuple(attrs.get("strides", (1,) * n))
    dilations = tuple(attrs.get("dilations", (1,) * n))
    extra = tuple(attrs.get("output_padding", (0,) * n))
    groups = attrs.get("group", 1)
    full_y = getattr(F, f"conv_transpose{n}d")(x, w, None, strides, 0, 0, groups, dilations)
    full = full_y.shape[2:]
    auto_pad = attrs.get("auto_pad", "NOTSET")
    wanted = attrs.get("output_shape")
    if wanted is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        wanted = [size * s for size, s in zip(x.shape[2:], strides)]
    if wanted is not None:
        wanted = list(wanted)[-n:]
        pairs = []
        for f, op, size in zip(full, extra, wanted):
            total = f + op - size
            small, large = total // 2, total - total // 2
            pairs.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
    else:
        pads = attrs.get("pads", (0,) * (2 * n))
        pairs = list(zip(pads[:n], pads[n:]))
    widths = ((0, 0), (0, 0)) + tuple((-lo, op - hi) for (lo, hi), op in zip(pairs, extra))
    y = ops.pad(full_y, widths)
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * n)
    return [y]


def _pool_plan(x, attrs):
    """(kernel, strides, dilations, widths): the explicit padding that turns the ONNX pool into
    an unpadded floor-mode one, the ceil mode's extra window included."""
    kernel = tuple(attrs["kernel_shape"])
    strides, dilations, pairs = _spatial_attrs(x, attrs, kernel)
    ceil = bool(attrs.get("ceil_mode", 0))
    widths = []
    for size, k, s, d, (lo, hi) in zip(x.shape[2:], kernel, strides, dilations, pairs):
        out = output_size(size, k, s, (lo, hi), d, ceil)
        if out <= 0:
            raise UnsupportedOperator(f"kernel {kernel} does not fit the input {x.shape}")
        widths.append((lo, max(hi, (out - 1) * s + d * (k - 1) + 1 - size - lo)))
    return kernel, strides, dilations, widths, pairs


def _as_float(x):
    return x if x.dtype.kind == "f" else Tensor(x.data.astype(np.float64))


def max_pool(inputs, attrs, training):
    """Outputs Y and Indices: flat offsets into the whole (unpadded) input, the plane
    row-major (storage_order=0) or column-major (1)."""
    x = inputs[0]
    kernel, strides, dilations, widths, _ = _pool_plan(x, attrs)
    padded = ops.pad(_as_float(x), ((0, 0), (0, 0)) + tuple(widths), value=-np.inf)
    y, plane_index = getattr(F, f"max_pool{len(kernel)}d")(padded, kernel, strides, 0, dilations,
                                                           return_indices=True)
    y = y if y.dtype == x.dtype else Tensor(y.data.astype(x.dtype))
    # cnnkit's indices are per (padded) plane; ONNX's count over N, C and the input plane.
    cells = np.unravel_index(plane_index.data, padded.shape[2:])
    spatial = x.shape[2:]
    flat = np.ravel_multi_index(tuple(c - lo for c, (lo, _) in zip(cells, widths)), spatial,
                                order="F" if attrs.get("storage_order", 0) else "C")
    planes = np.arange(x.shape[0] * x.shape[1]).reshape(x.shape[:2] + (1,) * len(spatial))
    return [y, Tensor(planes * math.prod(spatial) + flat)]


def average_pool(inputs, attrs, training):
    x = _as_float(inputs[0])
    kernel, strides, dilations, widths, pairs = _pool_plan(x, attrs)
    n, channels = len(kernel), x.shape[1]
    conv_nd = getattr(F, f"conv{n}d")
    full = ((0, 0), (0, 0)) + tuple(widths)
    ones = Tensor(np.ones((channels, 1) + kernel, x.dtype))
    sums = conv_nd(ops.pad(x, full), ones, None, strides, 0, dilations, channels)
    # Which padded cells a window counts: the input, plus the declared pads when
    # count_include_pad (never the extra cells ceil mode adds).
    counted = x.shape[2:]
    if attrs.get("count_include_pad", 0):
        counted = tuple(size + lo + hi for size, (lo, hi) in zip(x.shape[2:], pairs))
    offsets = tuple(w[0] - (p[0] if attrs.get("count_include_pad", 0) else 0)
                    for w, p in zip(widths, pairs))
    mask = np.zeros((1, 1) + tuple(size + lo + hi for size, (lo, hi) in
                                   zip(x.shape[2:], widths)), x.dtype)
    mask[(0, 0) + tuple(slice(o, o + c) for o, c in zip(offsets, counted))] = 1
    with no_grad():
        counts = conv_nd(Tensor(mask), Tensor(np.ones((1, 1) + kernel, x.dtype)), None, strides,
                         0, dilations).data
    return [sums / Tensor(np.maximum(counts, 1))]


def global_pool(reduce):
    def op(inputs, attrs, training):
        x = inputs[0]
        return [reduce(x, axis=tuple(range(2, x.ndim)), keepdims=True)]
    return op


def batch_normalization(inputs, attrs, training):
    """Eval: running statistics. ``training_mode=1`` (or a cnnkit model in training mode):
    batch statistics; the node's optional outputs 2-3 are the updated running statistics with
    ONNX's rule running = running·momentum + batch·(1 − momentum), where the batch variance is
    the population one (divided by the count, as in ONNX's reference implementation)."""
    x, scale, shift, mean, var = inputs[:5]
    eps, momentum = attrs.get("epsilon", 1e-5), attrs.get("momentum", 0.9)
    if not (attrs.get("training_mode", 0) or training):
        return [F.batch_norm(x, mean.data, var.data, scale, shift, False, 0.0, eps)]
    if training and not attrs.get("training_mode", 0):
        # A trainable cnnkit model: PyTorch's semantics (momentum = 1 − ONNX's), in place.
        return [F.batch_norm(x, mean.data, var.data, scale, shift, True, 1.0 - momentum, eps)]
    axes = (0,) + tuple(range(2, x.ndim))
    y = F.batch_norm(x, None, None, scale, shift, True, 0.0, eps)
    batch_mean, batch_var = x.data.mean(axis=axes), x.data.var(axis=axes)
    return [y, Tensor((mean.data * momentum + batch_mean * (1 - momentum)).astype(x.dtype)),
            Tensor((var.data * momentum + batch_var * (1 - momentum)).astype(x.dtype))]


def gemm(inputs, attrs, training):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    a = a.transpose() if attrs.get("transA", 0) else a
    b = b.transpose() if attrs.get("transB", 0) else b
    y = ops.matmul(a, b)
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return [y]


def flatten(inputs, attrs, training):
    x = inputs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis  # in [-ndim, ndim]; ndim gives (size, 1)
    return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


def reshape(inputs, attrs, training):
    x, shape = inputs[0], [int(v) for v in inputs[1].data]
    if attrs.get("allowzero", 0) and 0 in shape:
        raise UnsupportedOperator("Reshape with allowzero=1 and a 0 in the shape")
    return [x.reshape(*[x.shape[i] if v == 0 else v for i, v in enumerate(shape)])]


PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
             "wrap": "circular"}


def pad(inputs, attrs, training):
    x, pads = inputs[0], [int(v) for v in inputs[1].data]
    value = float(inputs[2].data) if len(inputs) > 2 and inputs[2] is not None else 0.0
    axes = list(range(x.ndim))
    if len(inputs) > 3 and inputs[3] is not None:
        axes = [int(a) % x.ndim for a in inputs[3].data]
    mode = attrs.get("mode", "constant")
    if mode not in PAD_MODES:
        raise UnsupportedOperator(f"Pad mode {mode!r}")
    widths = [(0, 0)] * x.ndim
    for i, axis in enumerate(axes):
        widths[axis] = (pads[i], pads[i + len(axes)])
    return [ops.pad(x, tuple(widths), PAD_MODES[mode], value)]


def _axes(inputs, attrs):
    """Squeeze/Unsqueeze axes: an attribute before opset 13, the second input since."""
    if len(inputs) > 1 and inputs[1] is not None:
        return [int(a) for a in inputs[1].data]
    return list(attrs.get("axes", ()))


def squeeze(inputs, attrs, training):
    x, axes = inputs[0], _axes(inputs, attrs)
    return [ops.squeeze(x, tuple(a % x.ndim for a in axes) if axes else None)]


def unsqueeze(inputs, attrs, training):
    x, axes = inputs[0], _axes(inputs, attrs)
    ndim = x.ndim + len(axes)
    shape = list(x.shape)
    for axis in sorted(a % ndim for a in axes):
        shape.insert(axis, 1)
    return [x.reshape(*shape)]


def softmax(function):
    def op(inputs, attrs, training):
        return [function(inputs[0], attrs.get("axis", -1))]
    return op


def dropout(inputs, attrs, training):
    x = inputs[0]
    ratio = float(inputs[1].data) if len(inputs) > 1 and inputs[1] is not None else 0.5
    active = training or (len(inputs) > 2 and inputs[2] is not None and bool(inputs[2].data))
    return [F.dropout(x, ratio, active) if active else x]


def gelu(inputs, attrs, training):
    return [F.gelu(inputs[0], approximate=attrs.get("approximate", "none"))]


def elementwise(function):
    def op(inputs, attrs, training):
        return [function(*inputs)]
    return op


def activation(function, attribute=None, default=None):
    def op(inputs, attrs, training):
        if attribute is None:
            return [function(inputs[0])]
        return [function(inputs[0], attrs.get(attribute, default))]
    return op


def constant(inputs, attrs, training):
    if "value" not in attrs:
        raise UnsupportedOperator(f"Constant with {sorted(attrs)}")
    return [Tensor(np.array(attrs["value"]))]


def cast_like(inputs, attrs, training):
    x, like = inputs[0], inputs[1]
    return [x if x.dtype == like.dtype else Tensor(x.data.astype(like.dtype))]


def maximum(inputs, attrs, training):
    y = inputs[0]
    for other in inputs[1:]:
        y = ops.maximum(y, other)
    return [y]


OPS = {
    "Conv": conv, "ConvTranspose": conv_transpose, "MaxPool": max_pool,
    "AveragePool": average_pool, "GlobalAveragePool": global_pool(ops.mean),
    "GlobalMaxPool": global_pool(ops.max), "BatchNormalization": batch_normalization,
    "Gemm": gemm, "Flatten": flatten, "Reshape": reshape, "Pad": pad,
    "MatMul": elementwise(ops.matmul), "Add": elementwise(ops.add),
    "Mul": elementwise(ops.mul), "Max": maximum, "Erf": activation(F.erf),
    "Transpose": lambda inputs, attrs, training: [
        ops.permute(inputs[0], *attrs.get("perm", range(inputs[0].ndim - 1, -1, -1)))],
    "Relu": activation(F.relu), "Sigmoid": activation(F.sigmoid), "Tanh": activation(F.tanh),
    "LeakyRelu": activation(F.leaky_relu, "alpha", 0.01), "Elu": activation(F.elu, "alpha", 1.0),
    "Gelu": gelu, "Softmax": softmax(F.softmax), "LogSoftmax": softmax(F.log_softmax),
    "Dropout": dropout, "Identity": activation(lambda x: x), "Constant": constant,
    "CastLike": cast_like, "Squeeze": squeeze, "Unsqueeze": unsqueeze,
}
