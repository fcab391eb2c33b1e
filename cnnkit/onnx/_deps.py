"""The optional dependencies of ``cnnkit.onnx``: imported on first use, with an install hint."""
import importlib

INSTALL_HINT = "pip install 'cnnkit[onnx]'"


def require(module: str):
    """Import ``module`` (``onnx`` or ``onnxruntime``); ImportError naming the extra if absent."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{module} is not installed; cnnkit's ONNX support needs the 'onnx' "
                          f"extra: {INSTALL_HINT}") from err
