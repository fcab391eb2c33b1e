"""cnnkit: convolutional neural networks in NumPy — exact, fast and readable."""
from .tensor import Tensor, as_tensor, enable_grad, is_grad_enabled, no_grad, tensor
from . import ops
from .ops import (abs, clip, concatenate, exp, flatten, log, matmul, maximum, mean, pad,  # noqa
                  permute, reshape, sqrt, stack, sum, transpose, where)
from .conv_arithmetic import conv_output_shape
from . import functional

__version__ = "0.1.0"
