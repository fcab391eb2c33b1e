"""cnnkit as an ``onnx.backend.base.Backend``, so ONNX's own backend test suite can check it
(tests/test_onnx_backend.py). ``prepare`` builds an ``OnnxModule`` in eval mode."""
from __future__ import annotations

from ._deps import require
from .ops import OPS
from .runtime import OnnxModule

require("onnx")
import onnx.backend.base as _base  # noqa: E402 - after the check that names the extra

__all__ = ["CnnkitBackend", "CnnkitRep"]


class CnnkitRep(_base.BackendRep):
    """A prepared graph: ``run(inputs)`` -> outputs by name and position."""

    def __init__(self, module: OnnxModule):
        self.module = module

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            inputs = [inputs[name] for name in self.module.input_names]
        elif not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        outputs = self.module.run(*inputs)
        return _base.namedtupledict("Outputs", self.module.output_names)(*outputs)


class CnnkitBackend(_base.Backend):
    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs) -> bool:
        return all(node.op_type in OPS for node in model.graph.node)

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs) -> CnnkitRep:
        super().prepare(model, device, **kwargs)
        return CnnkitRep(OnnxModule(model).eval())

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"
