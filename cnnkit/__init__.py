"""cnnkit: convolutional neural networks in NumPy — exact, fast and readable.

    import cnnkit
    import cnnkit.nn as nn
    import cnnkit.nn.functional as F

The layout follows the architecture: ``tensor`` (autograd engine) and ``ops`` (differentiable
tensor ops); ``kernels`` (fast plain-array convolution and pooling, several algorithms) beside
``reference`` (the same formulas as literal loops); ``functional`` (differentiable ops with
PyTorch's names); ``nn`` (layers that own parameters); ``optim``, ``data``, ``models``,
``train``; ``signal`` (scipy-compatible true convolution); ``cli`` and ``bench``.
"""
from . import _runtime  # noqa: F401 - first: thread and malloc settings, before NumPy loads
from .tensor import Tensor, as_tensor, enable_grad, is_grad_enabled, no_grad, tensor
from . import ops
from .ops import (abs, clip, concatenate, exp, flatten, log, matmul, maximum, mean, pad,  # noqa
                  permute, reshape, sqrt, stack, sum, transpose, where)
from .conv_arithmetic import conv_output_shape
from .random import manual_seed
from . import functional, nn, optim, data, signal, reference  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Tensor", "abs", "as_tensor", "clip", "concatenate", "conv_output_shape", "data",
           "enable_grad", "exp", "flatten", "functional", "is_grad_enabled", "log", "manual_seed",
           "matmul", "maximum", "mean", "nn", "no_grad", "ops", "optim", "pad", "permute",
           "reference", "reshape", "signal", "sqrt", "stack", "sum", "tensor", "transpose",
           "where"]


# The other subpackages and modules load on first use, as scipy's do (``import cnnkit`` then
# ``cnnkit.vision.filter_image``): some pull in matplotlib, Pillow or compilers that a training
# script need not pay for.


def _submodules() -> set:
    import pkgutil
    return {info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")}


def __getattr__(name):
    if name in _submodules():
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _submodules())
