"""Model exchange through ONNX (needs the ``onnx`` extra: ``pip install 'cnnkit[onnx]'``).

    cnnkit.onnx.export(model, (1, 28, 28), "model.onnx")   # cnnkit → ONNX file
    cnnkit.onnx.load("model.onnx").run(x)                   # ONNX file → outputs, by cnnkit
    cnnkit.onnx.to_module("model.onnx")                     # ONNX file → trainable cnnkit model

Importing this package needs neither onnx nor onnxruntime; the functions import them on first
use and raise an ImportError naming the extra if they are missing.
"""
from ._deps import require
from .export import DEFAULT_OPSET, NotExportable, export
from .ops import UnsupportedOperator
from .runtime import OnnxModule, load, to_module

__all__ = ["DEFAULT_OPSET", "NotExportable", "OnnxModule", "UnsupportedOperator", "export",
           "load", "require_onnx", "to_module"]


def require_onnx():
    """The ``onnx`` module; ImportError saying how to install it if it is missing."""
    return require("onnx")
