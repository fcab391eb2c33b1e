"""``cnnkit.onnx.export``: a cnnkit model as an ONNX file that onnxruntime (or any runtime) runs.

The graph is built directly with ``onnx.helper`` by walking the model: containers
(``Sequential``, the residual blocks of ``cnnkit.models``) by the rules below, layers by
``export_layers.RULES``. The model is run once on a zero input of the given shape as the walk
goes, so every rule sees its exact input shape ('same' padding, adaptive pooling and Flatten
depend on it). The input's batch dimension stays symbolic (``N``); the model is exported in
eval mode (BatchNorm with running statistics, Dropout removed).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import models, nn
from ..io import atomic_write_bytes
from ..tensor import Tensor, no_grad
from ._deps import require
from .export_layers import RULES, NotExportable
from .graph import GraphBuilder

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "NotExportable", "export"]

DEFAULT_OPSET = 20
MIN_OPSET = 13  # Softmax's per-axis semantics and Pad's pads-as-input start here
INPUT, OUTPUT = "input", "output"

Value = namedtuple("Value", "name array")  # a graph tensor and its value for the example input


class _Exporter:
    def __init__(self, opset: int):
        self.g = GraphBuilder(opset)
        self.opset = opset

    def param(self, module, layer: str, attribute: str) -> str:
        """The initializer of ``module.<attribute>``, named by its state_dict key."""
        key = f"{layer}.{attribute}" if layer else attribute
        return self.g.initializer(key, np.array(getattr(module, attribute).data))

    def run(self, module, x: Value, output: str) -> Value:
        """``output`` paired with what ``module`` computes from ``x``'s example value."""
        return Value(output, module(Tensor(x.array)).data)

    def emit(self, module, name: str, x: Value) -> Value:
        rule = _CONTAINER_RULES.get(type(module)) or RULES.get(type(module))
        if rule is None:
            what = f"layer {name!r} ({type(module).__name__})" if name else type(module).__name__
            raise NotExportable(f"export: {what} has no ONNX export rule; exportable are the "
                                "cnnkit.nn convolutions, pools, BatchNorm, Linear, Flatten, "
                                "Dropout, activations and the residual blocks of cnnkit.models")
        try:
            return rule(self, module, name, x)
        except NotExportable as err:
            if str(err).startswith("export: "):
                raise
            raise NotExportable(f"export: layer {name!r} ({type(module).__name__}): {err}") \
                from None

    def child(self, module, parent: str, child: str, x: Value) -> Value:
        return self.emit(getattr(module, child), f"{parent}.{child}" if parent else child, x)


def _sequential(ctx, module, name, x):
    for child_name, _ in module.named_children():
        x = ctx.child(module, name, child_name, x)
    return x


def _add_relu(ctx, module, name, a: Value, b: Value) -> Value:
    """relu(a + b): the end of every residual block."""
    total = ctx.g.node("Add", [a.name, b.name], name)
    return ctx.emit(module.relu, f"{name}.relu", Value(total, a.array + b.array))


def _basic_block(ctx, module, name, x):
    """cnnkit.models.BasicBlock: relu(body(x) + shortcut(x))."""
    return _add_relu(ctx, module, name, ctx.child(module, name, "body", x),
                     ctx.child(module, name, "shortcut", x))


def _resnet_block(ctx, module, name, x):
    """cnnkit.models.ResNetBasicBlock: relu(bn2(conv2(relu(bn1(conv1 x)))) + downsample(x))."""
    out = x
    for child in ("conv1", "bn1", "relu", "conv2", "bn2"):
        out = ctx.child(module, name, child, out)
    identity = x if module.downsample is None else ctx.child(module, name, "downsample", x)
    return _add_relu(ctx, module, name, out, identity)


def _resnet(ctx, module, name, x):
    for child in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                  "avgpool"):
        x = ctx.child(module, name, child, x)
    x = ctx.emit(nn.Flatten(), f"{name}.flatten" if name else "flatten", x)
    return ctx.child(module, name, "fc", x)


_CONTAINER_RULES = {nn.Sequential: _sequential, models.BasicBlock: _basic_block,
                    models.ResNetBasicBlock: _resnet_block, models.ResNet: _resnet}


def _check_arguments(model, input_shape, opset):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a cnnkit.nn.Module, got {type(model).__name__}")
    if not isinstance(input_shape, (tuple, list)) or not input_shape or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
            for s in input_shape):
        raise ValueError(f"input_shape: expected the shape of one example without the batch "
                         f"dim, e.g. (1, 28, 28), got {input_shape!r}")
    latest = require("onnx").defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= latest:
        raise ValueError(f"opset: expected an int from {MIN_OPSET} to {latest} (the onnx "
                         f"package's newest), got {opset!r}")


def export(model, input_shape, path=None, opset: int = DEFAULT_OPSET):
    """Export ``model`` (in eval mode) to ONNX; returns the ``onnx.ModelProto``.

    Parameters
    ----------
    model : cnnkit.nn.Module, mapping (N, *input_shape) to (N, *output_shape)
    input_shape : tuple of int, one example's shape without the batch dim, e.g. (1, 28, 28)
    path : str or os.PathLike, written atomically; None only returns the model
    opset : int, the ONNX default-domain opset (13 ... the onnx package's newest)

    The graph's input ``input`` is (N, *input_shape) of the parameters' float dtype, its output
    ``output`` (N, *output_shape); initializers carry the state_dict keys. The model passes
    ``onnx.checker.check_model(full_check=True)`` before anything is written. Raises
    NotExportable (a ValueError) naming the first layer ONNX cannot express, and why.
    """
    _check_arguments(model, input_shape, opset)
    onnx = require("onnx")
    helper = onnx.helper
    params = [p.data.dtype for p in model.parameters()]
    dtype = np.dtype(params[0] if params else np.float32)
    exporter = _Exporter(opset)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            x = Value(INPUT, np.zeros((1,) + tuple(input_shape), dtype))
            y = exporter.emit(model, "", x)
    finally:
        for m, training in modes:
            m.training = training
    g = exporter.g
    if y.name == INPUT:  # a model that computes nothing still needs a node
        y = Value(g.node("Identity", [INPUT], "identity"), y.array)
    g.rename_output(y.name, OUTPUT)
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    graph = helper.make_graph(
        g.nodes, type(model).__name__,
        [helper.make_tensor_value_info(INPUT, elem, ["N", *input_shape])],
        [helper.make_tensor_value_info(OUTPUT, elem, ["N", *y.array.shape[1:]])],
        initializer=g.tensor_protos())
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="cnnkit",
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        atomic_write_bytes(path, proto.SerializeToString())
    return proto
