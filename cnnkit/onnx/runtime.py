"""``OnnxModule``: an ONNX graph as a trainable ``cnnkit.nn.Module``; ``load`` and ``to_module``.

The graph's nodes run in their (topological) file order through ``ops.OPS``. Its initializers
become the module's state: float arrays read as weights are Parameters, BatchNormalization's
running mean and variance (and every non-float array) buffers. Dotted initializer names become
nested modules, so a graph that ``cnnkit.onnx.export`` wrote gives back the exported model's own
state_dict keys (``features.0.weight``), and ``load_state_dict`` / ``cnnkit.io.load_torch``
work on it unchanged.

In training mode BatchNormalization nodes use batch statistics and update the running ones
(PyTorch's rule, momentum = 1 − the node's), and Dropout nodes drop; in eval mode the graph
computes exactly what the ONNX file says.
"""
from __future__ import annotations

import os

import numpy as np

from ..nn.module import Module
from ..nn.parameter import Parameter
from ..tensor import Tensor, as_tensor, no_grad
from ._deps import require
from .ops import OPS, UnsupportedOperator

__all__ = ["OnnxModule", "load", "to_module"]

# Node inputs that hold statistics, not weights: (op_type, input index).
_BUFFER_SLOTS = {("BatchNormalization", 3), ("BatchNormalization", 4)}


def _as_proto(model):
    onnx = require("onnx")
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
        try:
            # External data would make the file name other files to read: refused below.
            proto = onnx.load(path, load_external_data=False)
        except Exception as err:  # protobuf's DecodeError and friends
            raise ValueError(f"{path}: not a readable ONNX model ({err})") from err
        _check_self_contained(onnx, proto, path)
        return proto
    raise TypeError(f"model: expected a path or an onnx.ModelProto, got {type(model).__name__}")


def _check_self_contained(onnx, proto, where) -> None:
    external = [t.name for t in proto.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ValueError(f"{where}: initializers stored in external files are not supported "
                         f"({', '.join(external[:3])}...); save the model as one file")


def _check_graph(graph, known) -> None:
    """Every node reads names defined before it (inputs, initializers, earlier outputs)."""
    known = set(known) | {""}
    for node in graph.node:
        missing = [name for name in node.input if name not in known]
        if missing:
            raise ValueError(f"ONNX graph: node {node.name or node.op_type!r} reads "
                             f"{', '.join(missing)}, which no earlier node, input or "
                             "initializer defines")
        known.update(node.output)
    undefined = [o.name for o in graph.output if o.name not in known]
    if undefined:
        raise ValueError(f"ONNX graph: outputs {', '.join(undefined)} are never computed")


class OnnxModule(Module):
    """Runs an ONNX graph with cnnkit's ops: ``forward(*inputs)`` -> Tensor (one output) or a
    tuple of Tensors, the inputs in the graph's order."""

    def __init__(self, model):
        super().__init__()
        onnx = require("onnx")
        proto = _as_proto(model)
        _check_self_contained(onnx, proto, "model")
        graph = proto.graph
        for opset in proto.opset_import:
            if opset.domain not in ("", "ai.onnx"):
                raise UnsupportedOperator(f"operator domain {opset.domain!r} is not supported")
        unknown = sorted({node.op_type for node in graph.node} - set(OPS))
        if unknown:
            raise UnsupportedOperator(f"ONNX operators not supported by cnnkit: "
                                      f"{', '.join(unknown)} (supported: {', '.join(sorted(OPS))})")
        buffers = {node.input[i] for node in graph.node for op, i in _BUFFER_SLOTS
                   if node.op_type == op and len(node.input) > i}
        self._state = {}  # initializer name -> (owning module, attribute)
        for init in graph.initializer:
            array = onnx.numpy_helper.to_array(init).copy()
            self._add_state(init.name, array, as_parameter=array.dtype.kind == "f"
                            and init.name not in buffers)
        self.input_names = [i.name for i in graph.input if i.name not in self._state]
        _check_graph(graph, [*self._state, *self.input_names])
        self.output_names = [o.name for o in graph.output]
        self._nodes = [(node.op_type, list(node.input), list(node.output),
                        {a.name: _attribute(onnx, a) for a in node.attribute})
                       for node in graph.node]

    def _add_state(self, name: str, array: np.ndarray, as_parameter: bool) -> None:
        *path, leaf = name.split(".")
        owner = self
        try:
            for part in path:
                child = owner._modules.get(part)
                if child is None:
                    child = Module()
                    owner.add_module(part, child)
                owner = child
            if not leaf or leaf in owner._modules:
                raise KeyError(leaf)
        except (KeyError, ValueError, TypeError):
            owner, leaf = self, name.replace(".", "_")  # a name that cannot nest
        if as_parameter:
            owner.register_parameter(leaf, Parameter(array))
        else:
            owner.register_buffer(leaf, Tensor(array))
        self._state[name] = (owner, leaf)

    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise ValueError(f"expected {len(self.input_names)} inputs "
                             f"({', '.join(self.input_names)}), got {len(inputs)}")
        values = {name: getattr(owner, leaf) for name, (owner, leaf) in self._state.items()}
        values[""] = None  # an omitted optional input
        values.update((name, as_tensor(x)) for name, x in zip(self.input_names, inputs))
        for op_type, names, outputs, attrs in self._nodes:
            results = OPS[op_type]([values[n] for n in names], attrs, self.training)
            values.update(zip(outputs, results))
        outputs = tuple(values[name] for name in self.output_names)
        return outputs[0] if len(outputs) == 1 else outputs

    def run(self, *arrays) -> list:
        """Inference on NumPy arrays: the graph's outputs as a list of ndarrays."""
        with no_grad():
            outputs = self(*[np.asarray(a) for a in arrays])
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return [np.asarray(o.data) for o in outputs]


def _attribute(onnx, attribute):
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, list):
        return tuple(v.decode("utf-8") if isinstance(v, bytes) else v for v in value)
    return value


def to_module(model) -> OnnxModule:
    """A trainable cnnkit model computing the ONNX graph ``model`` (a path or ModelProto).

    The returned module is in training mode, like a freshly built cnnkit model. Raises
    UnsupportedOperator (a ValueError) listing any operators cnnkit cannot run.
    """
    return OnnxModule(model)


def load(model) -> OnnxModule:
    """The ONNX graph ``model`` (a path or ModelProto) ready for inference (eval mode):
    ``load(path).run(x)`` -> list of output arrays; ``load(path)(tensor)`` -> Tensor."""
    return OnnxModule(model).eval()
