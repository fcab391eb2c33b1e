"""Convolution layers: Conv1d/2d/3d and ConvTranspose1d/2d/3d.

They own the weight and bias and call ``cnnkit.functional.conv{n}d`` / ``conv_transpose{n}d``.
Shapes, with k the kernel size per spatial dim:
    Conv:          weight (out_channels, in_channels/groups, *k),  bias (out_channels,)
    ConvTranspose: weight (in_channels, out_channels/groups, *k),  bias (out_channels,)
Initialisation is PyTorch's: weight ~ kaiming_uniform_(a=√5), i.e. U(±1/√fan_in), and
bias ~ U(±1/√fan_in), fan_in computed from the weight as ``init._calculate_fan_in_and_fan_out``.
"""

import numpy as np

from ... import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from ._utils import check_positive_int, ntuple

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
           "ConvTranspose3d"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_STRINGS = ("same", "valid", "full")


def _normalize_padding(padding, n: int):
    """'same'/'valid'/'full', an int, n ints, or n (before, after) pairs (per-side padding)."""
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise ValueError(f"padding must be one of {PADDING_STRINGS} or ints, got {padding!r}")
        return padding
    if isinstance(padding, (tuple, list)) and len(padding) == n and all(
            isinstance(p, (tuple, list)) for p in padding):
        return tuple(ntuple(p, 2, "padding (per-side pair)") for p in padding)
    return ntuple(padding, n, "padding")


class _ConvNd(Module):
    _spatial_dims = 0
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", output_padding=0,
                 dtype=None):
        super().__init__()
        n = self._spatial_dims
        dtype = np.float32 if dtype is None else dtype
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.groups = check_positive_int(groups, "groups")
        if in_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by groups "
                             f"({groups})")
        self.kernel_size = ntuple(kernel_size, n, "kernel_size", minimum=1)
        self.stride = ntuple(stride, n, "stride", minimum=1)
        self.dilation = ntuple(dilation, n, "dilation", minimum=1)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.transposed = self._transposed
        if self._transposed:
            if padding_mode != "zeros":
                raise ValueError(f'Only "zeros" padding mode is supported for '
                                 f"{type(self).__name__}")
            self.padding = ntuple(padding, n, "padding")
            self.output_padding = ntuple(output_padding, n, "output_padding")
            for op, s, d in zip(self.output_padding, self.stride, self.dilation):
                if op >= max(s, d):
                    raise ValueError(f"output_padding {self.output_padding} must be smaller than "
                                     f"either stride {self.stride} or dilation {self.dilation}")
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            self.padding = _normalize_padding(padding, n)
            self.output_padding = (0,) * n
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight ~ U(±1/√fan_in) (kaiming_uniform_ with a=√5), bias ~ U(±1/√fan_in)."""
        init.default_(self.weight, self.bias)

    def extra_repr(self) -> str:
        n = self._spatial_dims
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0,) * n:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            text += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class _Conv(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype=dtype)

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        """input : Tensor of shape (N, in_channels, *spatial) -> (N, out_channels, *spatial')."""
        conv = getattr(F, f"conv{self._spatial_dims}d")
        return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                    self.groups, padding_mode=self.padding_mode)


class Conv1d(_Conv):
    """1-D convolution over (N, C_in, L); weight (out_channels, in_channels/groups, k)."""
    _spatial_dims = 1


class Conv2d(_Conv):
    """2-D convolution over (N, C_in, H, W); weight (out_channels, in_channels/groups, kh, kw)."""
    _spatial_dims = 2


class Conv3d(_Conv):
    """3-D convolution over (N, C_in, D, H, W); weight (out, in/groups, kd, kh, kw)."""
    _spatial_dims = 3


class _ConvTranspose(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, dtype=dtype)

    def _output_padding(self, input, output_size):
        """The output_padding that makes the output spatial size equal ``output_size``.

        Without it the output size is (L − 1)·s − 2p + d·(k − 1) + 1 + output_padding, so a
        stride s > 1 leaves s possible sizes; ``output_size`` picks one (PyTorch's rule).
        """
        if output_size is None:
            return self.output_padding
        n = self._spatial_dims
        output_size = tuple(int(v) for v in output_size)
        if len(output_size) == n + (input.ndim - n):  # sizes given with batch/channel dims
            output_size = output_size[input.ndim - n:]
        if len(output_size) != n:
            raise ValueError(f"output_size must have {n} or {input.ndim} elements, got "
                             f"{len(output_size)}")
        spatial_in = input.shape[-n:]
        min_sizes = [(spatial_in[d] - 1) * self.stride[d] - 2 * self.padding[d]
                     + self.dilation[d] * (self.kernel_size[d] - 1) + 1 for d in range(n)]
        max_sizes = [m + self.stride[d] - 1 for d, m in enumerate(min_sizes)]
        if any(not lo <= size <= hi for size, lo, hi in zip(output_size, min_sizes, max_sizes)):
            raise ValueError(f"requested an output size of {list(output_size)}, but valid sizes "
                             f"range from {min_sizes} to {max_sizes} (for an input of "
                             f"{tuple(spatial_in)})")
        return tuple(size - lo for size, lo in zip(output_size, min_sizes))

    def forward(self, input, output_size=None):  # noqa: A002
        """input : Tensor of shape (N, in_channels, *spatial) -> (N, out_channels, *spatial')."""
        conv_transpose = getattr(F, f"conv_transpose{self._spatial_dims}d")
        output_padding = self._output_padding(input, output_size)
        return conv_transpose(input, self.weight, self.bias, self.stride, self.padding,
                              output_padding, self.groups, self.dilation)


class ConvTranspose1d(_ConvTranspose):
    """Transposed 1-D convolution; weight (in_channels, out_channels/groups, k)."""
    _spatial_dims = 1


class ConvTranspose2d(_ConvTranspose):
    """Transposed 2-D convolution; weight (in_channels, out_channels/groups, kh, kw)."""
    _spatial_dims = 2


class ConvTranspose3d(_ConvTranspose):
    """Transposed 3-D convolution; weight (in_channels, out_channels/groups, kd, kh, kw)."""
    _spatial_dims = 3
