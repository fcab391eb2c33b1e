"""Model exchange through ONNX (needs the ``onnx`` extra: ``pip install 'cnnkit[onnx]'``).

    cnnkit.onnx.export(model, (1, 28, 28), "model.onnx")   # cnnkit → ONNX file

Importing this package needs neither onnx nor onnxruntime; the functions import them on first
use and raise an ImportError naming the extra if they are missing.
"""
from ._deps import require
from .export import DEFAULT_OPSET, NotExportable, export

__all__ = ["DEFAULT_OPSET", "NotExportable", "export", "require_onnx"]


def require_onnx():
    """The ``onnx`` module; ImportError saying how to install it if it is missing."""
    return require("onnx")
