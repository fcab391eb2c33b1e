"""Batch normalisation layers: BatchNorm1d/2d/3d, with PyTorch's buffers and update rule.

State (names as in PyTorch's state_dict):
    weight, bias : Parameters of shape (num_features,) — γ = 1, β = 0 at start (if ``affine``)
    running_mean, running_var : buffers of shape (num_features,) — 0 and 1 at start
    num_batches_tracked : int64 buffer of shape () — training forward passes seen
Training mode normalises with the batch statistics and updates the running ones with factor
``momentum`` (``momentum=None``: the cumulative average, factor 1/num_batches_tracked). Eval mode
normalises with the running statistics. With ``track_running_stats=False`` there are no buffers
and batch statistics are used in both modes.
"""
import numpy as np

from ... import functional as F
from ...tensor import Tensor
from .. import init
from ..module import Module
from ..parameter import Parameter
from ._utils import check_positive_int

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


class _BatchNorm(Module):
    _input_dims = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=None, *, bias: bool = True):
        super().__init__()
        dtype = np.float32 if dtype is None else dtype
        self.num_features = check_positive_int(num_features, "num_features")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.empty(num_features, dtype=dtype))
            if bias:
                self.bias = Parameter(np.empty(num_features, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input) -> None:
        if input.ndim not in self._input_dims:
            expected = " or ".join(f"{d}D" for d in self._input_dims)
            raise ValueError(f"expected {expected} input (got {input.ndim}D input)")

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        """input : Tensor of shape (N, num_features, *spatial) -> the same shape."""
        self._check_input_dim(input)
        if input.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: input has {input.shape[1]} channels, "
                             f"expected num_features={self.num_features}")
        if self.training and input.size // input.shape[1] == 1:  # channels: checked above
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"of shape {tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1  # in place: the state_dict array stays the same
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch_stats = self.training or (self.running_mean is None
                                            and self.running_var is None)
        # Running statistics are passed only when they are updated (training) or used (eval).
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L); statistics per channel C."""
    _input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W); statistics per channel C."""
    _input_dims = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch norm over (N, C, D, H, W); statistics per channel C."""
    _input_dims = (5,)
