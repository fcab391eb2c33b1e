"""float16 as PyTorch runs it on the CPU: computed in float32, stored in float16.

The compiled kernels (``cnnkit.kernels``) are built for float32 and float64; a float16 input
used to reach them and fail inside Numba with a bare NotImplementedError. Every functional op
that can reach a compiled kernel is wrapped with ``computes_float16_in_float32``: a float16
``input`` is cast to float32 (a differentiable cast), the op runs in float32, and its result is
cast back to float16, so gradients flow float16 -> float32 -> float16 as well. Other float16
arguments (weights, biases) are cast the same way; float16 arrays the op updates in place
(batch norm's running statistics) get their float32 results written back.

Accumulating in float32 is also what makes the results agree with PyTorch's: sums of many
float16 products rounded at every step would not.
"""
import functools

import numpy as np

from ..ops.arithmetic import _cast
from ..tensor import Tensor

__all__ = ["computes_float16_in_float32"]


def computes_float16_in_float32(op):
    """Decorate ``op(input, ...)``: run it in float32 when ``input`` is a float16 Tensor."""
    @functools.wraps(op)
    def wrapper(input, *args, **kwargs):  # noqa: A002 - PyTorch's argument name
        if not (isinstance(input, Tensor) and input.dtype == np.float16):
            return op(input, *args, **kwargs)
        write_back = []
        args = [_widened(value, write_back) for value in args]
        kwargs = {name: _widened(value, write_back) for name, value in kwargs.items()}
        result = op(_cast(input, np.float32), *args, **kwargs)
        for original, widened in write_back:
            np.copyto(original, widened, casting="unsafe")
        return _narrowed(result)
    return wrapper


def _widened(value, write_back):
    if isinstance(value, Tensor) and value.dtype == np.float16:
        if value.requires_grad:
            return _cast(value, np.float32)
        widened = Tensor(value.data.astype(np.float32))
        write_back.append((value.data, widened.data))
        return widened
    if isinstance(value, np.ndarray) and value.dtype == np.float16:
        widened = value.astype(np.float32)
        write_back.append((value, widened))
        return widened
    return value


def _narrowed(result):
    if isinstance(result, tuple):  # e.g. (values, indices) of max pooling
        return tuple(_narrowed(item) for item in result)
    if isinstance(result, Tensor) and result.dtype == np.float32:
        return _cast(result, np.float16)
    return result
