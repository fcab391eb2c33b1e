"""``Linear`` (y = x Wᵀ + b) and ``Identity``."""

import numpy as np

from ... import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from ._utils import check_positive_int

__all__ = ["Linear", "Identity"]


class Linear(Module):
    """Fully connected layer: (..., in_features) -> (..., out_features).

    weight : Parameter of shape (out_features, in_features), ~ U(±1/√in_features)
        (PyTorch's kaiming_uniform_ with a=√5)
    bias : Parameter of shape (out_features,), ~ U(±1/√in_features), or None
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        dtype = np.float32 if dtype is None else dtype
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight ~ U(±1/√fan_in) (kaiming_uniform_ with a=√5), bias ~ U(±1/√fan_in)."""
        init.default_(self.weight, self.bias)

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input unchanged (arguments are accepted and ignored, as in PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):  # noqa: A002
        return input
