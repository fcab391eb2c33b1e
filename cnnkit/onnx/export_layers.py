"""How each ``cnnkit.nn`` layer becomes ONNX nodes (opset >= 13), one rule per layer family.

A rule gets the exporter (``ctx``: the graph builder plus ``ctx.run``), the layer, its dotted
name and its input ``x`` (``x.name`` in the graph, ``x.array`` the value it has for the example
input, so rules see exact shapes). It returns the output as the same kind of pair. Layers ONNX
cannot express raise ``NotExportable`` saying why.

Padding is resolved with ``cnnkit.conv_arithmetic.resolve_padding`` exactly as the forward pass
does, so ``'same'`` (any stride, TensorFlow's rule: odd totals pad the high side) becomes explicit
``pads``. Non-zero padding modes become a ``Pad`` node before an unpadded convolution (reflect →
'reflect', replicate → 'edge', circular → 'wrap', the latter from opset 19).
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ..conv_arithmetic import output_size, resolve_padding, to_tuple

PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class NotExportable(ValueError):
    """A layer (or a setting of it) that ONNX cannot express."""


def _ints(values) -> list:
    return [int(v) for v in values]


def _onnx_pads(pairs) -> list:
    """((lo, hi), ...) per spatial dim -> ONNX's [lo_1, ..., lo_n, hi_1, ..., hi_n]."""
    return [lo for lo, _ in pairs] + [hi for _, hi in pairs]


def conv(ctx, m, name, x):
    n = m._spatial_dims
    pairs = resolve_padding(m.padding, x.array.shape[2:], m.kernel_size, m.stride, m.dilation)
    source = x.name
    if m.padding_mode != "zeros" and any(lo or hi for lo, hi in pairs):
        if m.padding_mode == "circular" and ctx.opset < 19:
            raise NotExportable(f"padding_mode='circular' needs Pad mode 'wrap' (opset >= 19); "
                                f"opset {ctx.opset} was asked for")
        widths = ctx.g.initializer(f"{name}/pads", _onnx_pads(((0, 0), (0, 0)) + pairs))
        source = ctx.g.node("Pad", [x.name, widths], name, mode=PAD_MODES[m.padding_mode])
        pairs = ((0, 0),) * n
    inputs = [source, ctx.param(m, name, "weight")]
    if m.bias is not None:
        inputs.append(ctx.param(m, name, "bias"))
    out = ctx.g.node("Conv", inputs, name, kernel_shape=_ints(m.kernel_size),
                     strides=_ints(m.stride), dilations=_ints(m.dilation), group=m.groups,
                     pads=_onnx_pads(pairs))
    return ctx.run(m, x, out)


def conv_transpose(ctx, m, name, x):
    """PyTorch crops ``p`` cells from both ends of the full transposed convolution, then adds
    ``output_padding`` cells at the high end; ONNX's asymmetric ``pads`` say the same as
    (p, p − output_padding) where that is non-negative, and ``output_padding`` covers the rest.
    onnxruntime refuses an output_padding >= stride (which dilation > stride allows); those
    cells lie beyond every window, so they are zeros plus the bias: a Pad node, then the bias."""
    n = m._spatial_dims
    begin = _ints(m.padding)
    end = [max(p - op, 0) for p, op in zip(m.padding, m.output_padding)]
    rest = [max(op - p, 0) for p, op in zip(m.padding, m.output_padding)]
    beyond = [r if r >= s else 0 for r, s in zip(rest, m.stride)]
    inputs = [x.name, ctx.param(m, name, "weight")]
    bias_after = m.bias is not None and any(beyond)
    if m.bias is not None and not bias_after:
        inputs.append(ctx.param(m, name, "bias"))
    out = ctx.g.node("ConvTranspose", inputs, name, kernel_shape=_ints(m.kernel_size),
                     strides=_ints(m.stride), dilations=_ints(m.dilation), group=m.groups,
                     pads=begin + end,
                     output_padding=[r - b for r, b in zip(rest, beyond)])
    if any(beyond):
        widths = ctx.g.initializer(f"{name}/pads", [0] * (n + 2) + [0, 0] + beyond)
        out = ctx.g.node("Pad", [out, widths], name)
    if bias_after:
        shape = ctx.g.initializer(f"{name}/bias_shape", np.array([-1] + [1] * n, np.int64))
        bias = ctx.g.node("Reshape", [ctx.param(m, name, "bias"), shape], name)
        out = ctx.g.node("Add", [out, bias], name)
    return ctx.run(m, x, out)


def _window(m, n, x):
    """(kernel, stride, padding, dilation, ceil_mode) of a pool, as ONNX attribute lists.

    PyTorch's ceil mode drops a last window that would start in the high padding
    (``conv_arithmetic.output_size``), leaving the floor-mode size; ONNX's ceil mode keeps it.
    So ONNX gets ceil_mode=1 only where PyTorch's ceil-mode size exceeds the floor-mode one.
    """
    kernel = to_tuple(m.kernel_size, n, "kernel_size")
    stride = kernel if m.stride is None else to_tuple(m.stride, n, "stride")
    padding = to_tuple(m.padding, n, "padding")
    dilation = to_tuple(getattr(m, "dilation", 1), n, "dilation")
    ceil = set()
    for args in zip(x.array.shape[2:], kernel, stride, ((p, p) for p in padding), dilation):
        ceil.add(m.ceil_mode and output_size(*args, True) > output_size(*args, False))
    if len(ceil) > 1:
        raise NotExportable("ceil_mode: PyTorch's output size is the ceiling in some dims and "
                            "the floor in others (a dropped last window); one ONNX ceil_mode "
                            "cannot say both")
    return dict(kernel_shape=_ints(kernel), strides=_ints(stride), pads=_ints(padding) * 2,
                ceil_mode=int(ceil.pop())), _ints(dilation)


def max_pool(ctx, m, name, x):
    if m.return_indices:
        raise NotExportable("return_indices=True: ONNX MaxPool's indices are flat offsets into "
                            "the whole tensor, not PyTorch's per-plane indices")
    window, dilation = _window(m, m._spatial_dims, x)
    out = ctx.g.node("MaxPool", [x.name], name, dilations=dilation, **window)
    return ctx.run(m, x, out)


def avg_pool(ctx, m, name, x):
    if getattr(m, "divisor_override", None) is not None:
        raise NotExportable("divisor_override: ONNX AveragePool divides by the window's size")
    window, _ = _window(m, m._spatial_dims, x)
    out = ctx.g.node("AveragePool", [x.name], name, count_include_pad=int(m.count_include_pad),
                     **window)
    return ctx.run(m, x, out)


def adaptive_pool(ctx, m, name, x):
    """Global pooling when every output size is 1; a plain pool when each size divides."""
    if getattr(m, "return_indices", False):
        raise NotExportable("return_indices=True has no ONNX equivalent")
    n, spatial = m._spatial_dims, x.array.shape[2:]
    wanted = m.output_size if isinstance(m.output_size, (tuple, list)) else (m.output_size,) * n
    sizes = tuple(s if w is None else int(w) for w, s in zip(wanted, spatial))
    kind = "Average" if m._kind == "avg" else "Max"
    if all(size == 1 for size in sizes):
        return ctx.run(m, x, ctx.g.node(f"Global{kind}Pool", [x.name], name))
    if any(s % size for s, size in zip(spatial, sizes)):
        raise NotExportable(f"output size {sizes} does not divide the input size "
                            f"{tuple(spatial)}: adaptive windows of unequal size are no ONNX "
                            "pool (export with an input size that is a multiple)")
    kernel = [s // size for s, size in zip(spatial, sizes)]
    return ctx.run(m, x, ctx.g.node(f"{kind}Pool", [x.name], name, kernel_shape=kernel,
                                    strides=kernel))


def batch_norm(ctx, m, name, x):
    if m.running_mean is None:
        raise NotExportable("track_running_stats=False normalises with batch statistics even "
                            "in eval mode; ONNX BatchNormalization needs running statistics")
    dtype = m.running_mean.data.dtype
    scale = ctx.param(m, name, "weight") if m.weight is not None else ctx.g.initializer(
        f"{name}/scale", np.ones(m.num_features, dtype))
    shift = ctx.param(m, name, "bias") if m.bias is not None else ctx.g.initializer(
        f"{name}/shift", np.zeros(m.num_features, dtype))
    statistics = [ctx.param(m, name, "running_mean"), ctx.param(m, name, "running_var")]
    out = ctx.g.node("BatchNormalization", [x.name, scale, shift, *statistics], name,
                     epsilon=float(m.eps))
    return ctx.run(m, x, out)


def linear(ctx, m, name, x):
    weight = ctx.param(m, name, "weight")
    if x.array.ndim == 2:
        inputs = [x.name, weight] + ([ctx.param(m, name, "bias")] if m.bias is not None else [])
        return ctx.run(m, x, ctx.g.node("Gemm", inputs, name, transB=1))
    out = ctx.g.node("MatMul", [x.name, ctx.g.node("Transpose", [weight], name, perm=[1, 0])],
                     name)
    if m.bias is not None:
        out = ctx.g.node("Add", [out, ctx.param(m, name, "bias")], name)
    return ctx.run(m, x, out)


def flatten(ctx, m, name, x):
    ndim = x.array.ndim
    start, end = m.start_dim % ndim, m.end_dim % ndim
    if start == 1 and end == ndim - 1:
        return ctx.run(m, x, ctx.g.node("Flatten", [x.name], name, axis=1))
    # Reshape: 0 copies a dim (the symbolic batch among them), -1 is the merged one.
    shape = [0] * start + [-1] + list(x.array.shape[end + 1:])
    if start == 0:
        shape = [-1] + list(x.array.shape[end + 1:])
    target = ctx.g.initializer(f"{name}/shape", np.array(shape, np.int64))
    return ctx.run(m, x, ctx.g.node("Reshape", [x.name, target], name))


def passthrough(ctx, m, name, x):
    return x


def _softmax_axis(m, ndim):
    # PyTorch's legacy implicit dim (torch.nn.functional._get_softmax_dim).
    return m.dim if m.dim is not None else (0 if ndim in (0, 1, 3) else 1)


def _gelu_before_opset_20(ctx, m, name, x):
    """GELU from elementary nodes (ONNX has Gelu from opset 20): x·½(1 + erf(x/√2)), or
    with approximate='tanh' x·½(1 + tanh(√(2/π)(x + 0.044715x³)))."""
    def const(what, value):
        return ctx.g.initializer(f"{name}/{what}", np.array(value, x.array.dtype))

    def node(op, *inputs):
        return ctx.g.node(op, inputs, name)
    if m.approximate == "tanh":
        cube = node("Mul", node("Mul", x.name, x.name), x.name)
        inner = node("Add", x.name, node("Mul", cube, const("cubic", 0.044715)))
        core = node("Tanh", node("Mul", inner, const("sqrt_2_over_pi", np.sqrt(2 / np.pi))))
    else:
        core = node("Erf", node("Mul", x.name, const("sqrt_half", np.sqrt(0.5))))
    half = node("Mul", node("Add", core, const("one", 1.0)), const("half", 0.5))
    return node("Mul", x.name, half)


def activation(ctx, m, name, x):
    ndim = x.array.ndim
    if isinstance(m, nn.GELU):
        if ctx.opset < 20:
            out = _gelu_before_opset_20(ctx, m, name, x)
        else:
            out = ctx.g.node("Gelu", [x.name], name, approximate=m.approximate)
    elif isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        if _softmax_axis(m, ndim) % ndim == 0:
            raise NotExportable("softmax over the batch dimension (dim=0) mixes the examples of "
                                "a batch, which an exported model must not do")
        out = ctx.g.node(type(m).__name__, [x.name], name, axis=_softmax_axis(m, ndim))
    elif isinstance(m, nn.LeakyReLU):
        out = ctx.g.node("LeakyRelu", [x.name], name, alpha=float(m.negative_slope))
    elif isinstance(m, nn.ELU):
        out = ctx.g.node("Elu", [x.name], name, alpha=float(m.alpha))
    else:
        op = {nn.ReLU: "Relu", nn.Sigmoid: "Sigmoid", nn.Tanh: "Tanh"}[type(m)]
        out = ctx.g.node(op, [x.name], name)
    return ctx.run(m, x, out)


RULES = {
    **{cls: conv for cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d)},
    **{cls: conv_transpose for cls in (nn.ConvTranspose1d, nn.ConvTranspose2d,
                                       nn.ConvTranspose3d)},
    **{cls: max_pool for cls in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)},
    **{cls: avg_pool for cls in (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)},
    **{cls: adaptive_pool for cls in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                                      nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
                                      nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)},
    **{cls: batch_norm for cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)},
    **{cls: passthrough for cls in (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
                                    nn.Dropout3d)},
    **{cls: activation for cls in (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Sigmoid, nn.Tanh,
                                   nn.Softmax, nn.LogSoftmax)},
    nn.Linear: linear,
    nn.Flatten: flatten,
}
