"""Model summary: per layer, the output shape, parameters, multiply-adds and receptive field.

Nothing is run: shapes come from the convolution arithmetic (``cnnkit.conv_output_shape``),

    out = floor((in + 2·pad − dilation·(k − 1) − 1) / stride) + 1,

and the receptive field (the input window one output value depends on) from the recursion over
layers, with ``r`` its size and ``j`` its jump (the input distance between neighbouring outputs):

    r_out = r_in + dilation·(k − 1)·j_in,    j_out = j_in·stride,    starting from r = j = 1.

The ``dense equiv.`` column makes the case for convolution concrete: the number of weights a fully
connected layer would need for the same input → output mapping, in_numel·out_numel (+ out_numel
biases). A convolution needs far fewer because of sparse connectivity (each output sees only its
window: out_numel·(C/groups)·∏k connections — the multiply-adds column) and parameter sharing
(all positions use the same K·(C/groups)·∏k weights).

Containers: ``Sequential`` is walked in order; a block with a ``branches()`` method (e.g.
``cnnkit.models.BasicBlock``) is read as the sum of its branches' outputs, then its other children.
A torchvision-style block with a ``downsample`` attribute (``cnnkit.models.resnet18``) is read as
its other children in order (the main path) plus ``downsample`` (or the identity) beside it. Other
containers are walked in registration order; their ``forward`` may flatten a (C, 1, 1) map before
a Linear layer (torchvision's ``x.flatten(1)``), so a Linear there accepts it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import nn
from .conv_arithmetic import conv_output_shape, to_tuple

__all__ = ["LayerInfo", "Summary", "format_summary", "summarize"]

_SHAPE_PRESERVING = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Softmax,
                     nn.LogSoftmax, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                     nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Identity)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                   nn.AdaptiveMaxPool2d)


@dataclass
class LayerInfo:
    """One row: ``output_shape`` excludes the batch axis; ``receptive_field``/``jump`` are per
    spatial dim, or None once every output depends on the whole input (after a dense layer)."""
    name: str
    kind: str
    output_shape: tuple
    params: int = 0
    macs: int = 0
    receptive_field: tuple | None = None
    jump: tuple | None = None
    dense_equivalent: int | None = None


@dataclass
class Summary:
    input_shape: tuple
    layers: list = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def output_shape(self) -> tuple:
        return self.layers[-1].output_shape if self.layers else self.input_shape


@dataclass
class _State:
    shape: tuple             # (C, *spatial) or (features,) after flattening
    rf: tuple | None         # receptive field size per spatial dim; None = whole input
    jump: tuple | None


def _own_params(module) -> int:
    return sum(p.size for p in module.parameters(recurse=False))


def _spatial_rule(module):
    """(kernel, stride, padding, dilation, ceil_mode) of a conv or pooling layer."""
    n = module._spatial_dims
    kernel = to_tuple(module.kernel_size, n, "kernel_size")
    stride = to_tuple(module.stride, n, "stride")
    dilation = to_tuple(getattr(module, "dilation", 1), n, "dilation")
    padding = module.padding
    if not isinstance(padding, str):
        padding = to_tuple(padding, n, "padding")
    return kernel, stride, padding, dilation, bool(getattr(module, "ceil_mode", False))


def _window_layer(name, module, state, kind):
    """Rows for convolutions and pools: arithmetic output size and receptive-field recursion."""
    n = module._spatial_dims
    if len(state.shape) != n + 1:
        raise ValueError(f"summary: layer {name} ({kind}) expects a (C, {n} spatial dims) input, "
                         f"got shape {state.shape}")
    channels, spatial = state.shape[0], state.shape[1:]
    kernel, stride, padding, dilation, ceil_mode = _spatial_rule(module)
    out_spatial = conv_output_shape(spatial, kernel, stride, padding, dilation, ceil_mode)
    rf = jump = None
    if state.rf is not None:
        rf = tuple(r + d * (k - 1) * j for r, d, k, j in zip(state.rf, dilation, kernel,
                                                                state.jump))
        jump = tuple(j * s for j, s in zip(state.jump, stride))
    if isinstance(module, _CONVS):
        if channels != module.in_channels:
            raise ValueError(f"summary: layer {name} ({kind}) expects {module.in_channels} input "
                             f"channels, got {channels} (input shape {state.shape})")
        out_shape = (module.out_channels,) + out_spatial
        out_numel = math.prod(out_shape)
        taps = module.in_channels // module.groups * math.prod(kernel)
        macs = out_numel * taps
        dense = math.prod(state.shape) * out_numel + (out_numel if module.bias is not None else 0)
        info = LayerInfo(name, kind, out_shape, _own_params(module), macs, rf, jump, dense)
    else:
        out_shape = (channels,) + out_spatial
        info = LayerInfo(name, kind, out_shape, 0, 0, rf, jump)
    return info, _State(out_shape, rf, jump)


def _adaptive_pool(name, module, state, kind):
    n = module._spatial_dims
    spatial = state.shape[1:]
    sizes = to_tuple(module.output_size, n, "output_size") if module.output_size is not None \
        else spatial
    sizes = tuple(s if o is None else o for s, o in zip(spatial, sizes))
    rf = jump = None
    if state.rf is not None:
        # Windows split each dim into near-equal parts: at most ceil(in/out) wide, starting
        # every floor(in/out) (exact when out divides in).
        widths = [-(-s // o) for s, o in zip(spatial, sizes)]
        strides = [max(s // o, 1) for s, o in zip(spatial, sizes)]
        rf = tuple(r + (w - 1) * j for r, w, j in zip(state.rf, widths, state.jump))
        jump = tuple(j * s for j, s in zip(state.jump, strides))
    out_shape = (state.shape[0],) + sizes
    return LayerInfo(name, kind, out_shape, 0, 0, rf, jump), _State(out_shape, rf, jump)


def _leaf(name, module, state, flattens=False):
    kind = type(module).__name__
    if isinstance(module, _CONVS + _MAX_POOLS + _AVG_POOLS):
        return _window_layer(name, module, state, kind)
    if isinstance(module, _ADAPTIVE_POOLS):
        return _adaptive_pool(name, module, state, kind)
    if isinstance(module, nn.Linear):
        if flattens and len(state.shape) > 1 and all(s == 1 for s in state.shape[1:]):
            state = _State(state.shape[:1], state.rf, state.jump)
        if state.shape[-1] != module.in_features:
            raise ValueError(f"summary: layer {name} (Linear) expects {module.in_features} input "
                             f"features, got shape {state.shape}")
        out_shape = state.shape[:-1] + (module.out_features,)
        macs = math.prod(state.shape) * module.out_features
        info = LayerInfo(name, kind, out_shape, _own_params(module), macs)
        return info, _State(out_shape, None, None)
    if isinstance(module, nn.Flatten):
        if module.start_dim != 1 or module.end_dim != -1:
            raise ValueError(f"summary: layer {name}: only Flatten(start_dim=1, end_dim=-1) is "
                             "supported")
        out_shape = (math.prod(state.shape),)
        return LayerInfo(name, kind, out_shape, 0, 0, state.rf, state.jump), \
            _State(out_shape, state.rf, state.jump)
    if isinstance(module, _SHAPE_PRESERVING):
        return LayerInfo(name, kind, state.shape, _own_params(module), 0, state.rf,
                         state.jump), state
    raise ValueError(f"summary: no shape rule for layer {name} ({kind}); supported are "
                     "convolutions, pools, Linear, Flatten, batch norm, activations, dropout")


def _branch_sum(module, name, state, rows, branches):
    """Walk each branch from ``state`` and add a row for their sum; returns the summed state.

    branches : [(label, [(child name, child module)] walked in order)]; an empty list of
    children is the identity."""
    outs = []
    for _, children in branches:
        out = state
        for child_name, child in children:
            out = _walk(child, f"{name}.{child_name}" if name else child_name, out, rows)
        outs.append(out)
    if len({out.shape for out in outs}) != 1:
        raise ValueError(f"summary: the branches of {name} give different shapes "
                         f"{[out.shape for out in outs]}")
    rf = jump = None
    if all(out.rf is not None for out in outs):
        rf = tuple(max(sizes) for sizes in zip(*(out.rf for out in outs)))
        jump = outs[0].jump
    summed = _State(outs[0].shape, rf, jump)
    rows.append(LayerInfo(name, f"{type(module).__name__} (sum)", summed.shape, 0, 0, rf, jump))
    return summed


def _walk(module, name, state, rows, flattens=False):
    children = list(module.named_children())
    if hasattr(module, "branches"):
        branches = list(module.branches())
        named = [(next((n for n, child in children if child is branch), f"[{k}]"), branch)
                 for k, branch in enumerate(branches)]
        state = _branch_sum(module, name, state, rows, [(n, [(n, b)]) for n, b in named])
        rest = [(n, child) for n, child in children
                if all(child is not branch for branch in branches)]
    elif hasattr(module, "downsample") and children:
        # torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)); its
        # one relu module serves both activations, and neither changes the shape.
        main = [(n, child) for n, child in children if n != "downsample"]
        shortcut = [("downsample", module.downsample)] if module.downsample is not None else []
        return _branch_sum(module, name, state, rows, [("main", main), ("shortcut", shortcut)])
    elif isinstance(module, nn.Sequential) or (children and not _own_params(module)):
        rest, flattens = children, not isinstance(module, nn.Sequential)
    else:
        info, state = _leaf(name, module, state, flattens)
        rows.append(info)
        return state
    for child_name, child in rest:
        state = _walk(child, f"{name}.{child_name}" if name else child_name, state, rows,
                      flattens)
    return state


def summarize(model, input_shape) -> Summary:
    """Summarise ``model`` for one input of ``input_shape`` = (C, *spatial), without a batch axis.

    Raises ValueError when a layer does not accept the shape it would receive.
    """
    input_shape = tuple(input_shape)
    if not input_shape or not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise ValueError(f"input_shape: expected positive ints (C, *spatial), got {input_shape!r}")
    spatial = len(input_shape) - 1
    state = _State(input_shape, (1,) * spatial, (1,) * spatial)
    summary = Summary(input_shape)
    _walk(model, "", state, summary.layers)
    return summary


def _shape_text(shape) -> str:
    return "×".join(str(s) for s in shape)


def format_summary(summary: Summary, dtype_bytes: int = 4) -> str:
    """The summary as a fixed-width text table with totals."""
    header = ("layer", "type", "output shape", "params", "mult-adds", "receptive field", "jump",
              "dense equiv.")
    rows = []
    for layer in summary.layers:
        rows.append((layer.name, layer.kind, _shape_text(layer.output_shape),
                     f"{layer.params:,}" if layer.params else "",
                     f"{layer.macs:,}" if layer.macs else "",
                     _shape_text(layer.receptive_field) if layer.receptive_field else "all",
                     _shape_text(layer.jump) if layer.jump else "",
                     f"{layer.dense_equivalent:,}" if layer.dense_equivalent else ""))
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    right = {3, 4, 7}

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-" * len(line(header))
    out = [f"input shape: {_shape_text(summary.input_shape)}", rule, line(header), rule]
    out += [line(r) for r in rows]
    out.append(rule)
    total = summary.total_params
    out.append(f"total params: {total:,} ({total * dtype_bytes / 2**20:.2f} MiB as float32)")
    out.append(f"total mult-adds per input: {summary.total_macs:,}")
    out.append(f"output shape: {_shape_text(summary.output_shape)}")
    convs = [layer for layer in summary.layers if layer.dense_equivalent]
    if convs:
        conv_params = sum(layer.params for layer in convs)
        dense = sum(layer.dense_equivalent for layer in convs)
        out.append(f"the {len(convs)} convolution layers hold {conv_params:,} params; fully "
                   f"connected layers with the same input/output sizes would need {dense:,} "
                   f"({dense / max(conv_params, 1):,.0f}× as many)")
    return "\n".join(out)
