"""``GraphBuilder``: collects ONNX nodes and initializers while the exporter walks a model.

Tensor names: weights keep their state_dict keys (``features.0.weight``), so a reader of the
ONNX file finds the same names as in the safetensors file; constants the export invents (pads,
shapes, BatchNorm's γ = 1 when ``affine=False``) are named ``<layer>/<what>``; activations
``<layer>:out`` (numbered when a layer runs more than once).
"""
from __future__ import annotations

import numpy as np

from ._deps import require


class GraphBuilder:
    """Nodes in execution order plus the initializers they read."""

    def __init__(self, opset: int):
        self.onnx = require("onnx")
        self.opset = opset
        self.nodes = []
        self.initializers = {}
        self._used = set()

    def unique(self, name: str) -> str:
        """``name``, or ``name#2``, ``name#3``, ... if already taken."""
        candidate, k = name, 1
        while candidate in self._used:
            k += 1
            candidate = f"{name}#{k}"
        self._used.add(candidate)
        return candidate

    def initializer(self, name: str, array) -> str:
        """Add ``array`` (a state_dict entry or an invented constant) under ``name``."""
        array = np.asarray(array)
        if name in self.initializers:
            if not np.array_equal(self.initializers[name], array):
                raise ValueError(f"export: two different arrays named {name!r}")
            return name
        self._used.add(name)
        self.initializers[name] = array
        return name

    def node(self, op_type: str, inputs, layer: str, **attributes) -> str:
        """Append one node reading ``inputs``; returns the name of its (single) output."""
        output = self.unique(f"{layer}:out")
        attributes = {k: v for k, v in attributes.items() if v is not None}
        self.nodes.append(self.onnx.helper.make_node(
            op_type, list(inputs), [output], name=self.unique(f"{layer}/{op_type}"), **attributes))
        return output

    def rename_output(self, old: str, new: str) -> None:
        """Call the graph's result ``new`` (the last node producing ``old`` writes it)."""
        for node in self.nodes:
            node.input[:] = [new if name == old else name for name in node.input]
            node.output[:] = [new if name == old else name for name in node.output]

    def tensor_protos(self) -> list:
        return [self.onnx.numpy_helper.from_array(array, name)
                for name, array in self.initializers.items()]
