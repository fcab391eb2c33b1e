"""Differentiable tensor ops, and the operator methods they give ``Tensor``."""
import numpy as np

from ..tensor import Tensor
from . import arithmetic
from .arithmetic import add, div, matmul, mul, neg, power, sub
from .reduction import max, mean, min, sum, var  # noqa: A004
from .shape import (concatenate, flatten, getitem, pad, permute, reshape, squeeze, stack,
                    transpose, unsqueeze)
from .unary import abs, clip, exp, log, maximum, sqrt, where  # noqa: A004


__all__ = ["abs", "add", "clip", "concatenate", "div", "exp", "flatten", "getitem", "log",
           "matmul", "max", "maximum", "mean", "min", "mul", "neg", "pad", "permute", "power",
           "reshape", "sqrt", "squeeze", "stack", "sub", "sum", "transpose", "unsqueeze", "var",
           "where"]


def _install():
    """Give Tensor its operators and methods (kept here so tensor.py stays the engine only)."""
    flip = lambda f: lambda a, b: f(b, a)  # noqa: E731
    methods = {
        "__add__": add, "__radd__": flip(add), "__sub__": sub, "__rsub__": flip(sub),
        "__mul__": mul, "__rmul__": flip(mul), "__truediv__": div, "__rtruediv__": flip(div),
        "__pow__": power, "__rpow__": flip(power), "__matmul__": matmul,
        "__rmatmul__": flip(matmul), "__neg__": neg, "__pos__": lambda a: a,
        "__lt__": arithmetic.lt, "__le__": arithmetic.le, "__gt__": arithmetic.gt,
        "__ge__": arithmetic.ge, "__eq__": arithmetic.eq, "__ne__": arithmetic.ne,
        "__getitem__": getitem, "__abs__": abs,
        "sum": sum, "mean": mean, "max": max, "min": min, "var": var,
        "reshape": reshape, "view": reshape, "flatten": flatten, "permute": permute,
        "transpose": transpose, "squeeze": squeeze, "unsqueeze": unsqueeze, "pad": pad,
        "exp": exp, "log": log, "sqrt": sqrt, "abs": abs, "clip": clip, "clamp": clip,
        "matmul": matmul, "pow": power,
    }
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(lambda self: transpose(self))
    Tensor.argmax = lambda self, axis=None: Tensor(np.argmax(self.data, axis=axis))
    Tensor.float = lambda self: Tensor._make(self.data.astype(np.float32), (self,),
                                             lambda g: (g.astype(self.dtype),), "float")
    Tensor.double = lambda self: Tensor._make(self.data.astype(np.float64), (self,),
                                              lambda g: (g.astype(self.dtype),), "double")


_install()
