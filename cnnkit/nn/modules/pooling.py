"""Pooling layers: MaxPool1d/2d/3d, AvgPool1d/2d/3d, AdaptiveAvgPool1d/2d/3d,
AdaptiveMaxPool1d/2d/3d.

Thin wrappers over ``cnnkit.functional``'s pooling functions. They keep their arguments as given
(``MaxPool2d(2).kernel_size == 2``) except AvgPool1d, which, like PyTorch, stores 1-tuples; so
the reprs are PyTorch's exactly. Input (N, C, *spatial) or (C, *spatial).
"""
from ... import functional as F
from ..module import Module

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
           "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
           "AdaptiveMaxPool2d", "AdaptiveMaxPool3d"]


class _MaxPoolNd(Module):
    _spatial_dims = 0

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        pool = getattr(F, f"max_pool{self._spatial_dims}d")
        return pool(input, self.kernel_size, self.stride, self.padding, self.dilation,
                    ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Max over windows of (N, C, L)."""
    _spatial_dims = 1


class MaxPool2d(_MaxPoolNd):
    """Max over windows of (N, C, H, W)."""
    _spatial_dims = 2


class MaxPool3d(_MaxPoolNd):
    """Max over windows of (N, C, D, H, W)."""
    _spatial_dims = 3


class _AvgPoolNd(Module):
    _spatial_dims = 0

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):  # noqa: A002
        pool = getattr(F, f"avg_pool{self._spatial_dims}d")
        extra = {} if self._spatial_dims == 1 else {"divisor_override": self.divisor_override}
        return pool(input, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode,
                    count_include_pad=self.count_include_pad, **extra)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """Mean over windows of (N, C, L)."""
    _spatial_dims = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        def single(v):
            return tuple(v) if isinstance(v, (tuple, list)) else (v,)
        super().__init__(single(kernel_size), single(stride if stride is not None
                                                      else kernel_size),
                         single(padding), ceil_mode, count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """Mean over windows of (N, C, H, W)."""
    _spatial_dims = 2


class AvgPool3d(_AvgPoolNd):
    """Mean over windows of (N, C, D, H, W)."""
    _spatial_dims = 3


class _AdaptivePoolNd(Module):
    _spatial_dims = 0
    _kind = ""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):  # noqa: A002
        pool = getattr(F, f"adaptive_{self._kind}_pool{self._spatial_dims}d")
        return pool(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptivePoolNd):
    """Mean over the windows that split L into ``output_size`` near-equal parts."""
    _spatial_dims, _kind = 1, "avg"


class AdaptiveAvgPool2d(_AdaptivePoolNd):
    """Mean over the windows that split (H, W) into ``output_size`` near-equal parts."""
    _spatial_dims, _kind = 2, "avg"


class AdaptiveAvgPool3d(_AdaptivePoolNd):
    """Mean over the windows that split (D, H, W) into ``output_size`` near-equal parts."""
    _spatial_dims, _kind = 3, "avg"


class _AdaptiveMaxPoolNd(_AdaptivePoolNd):
    _kind = "max"

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, input):  # noqa: A002
        pool = getattr(F, f"adaptive_max_pool{self._spatial_dims}d")
        return pool(input, self.output_size, return_indices=self.return_indices)


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max over the windows that split L into ``output_size`` near-equal parts."""
    _spatial_dims = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max over the windows that split (H, W) into ``output_size`` near-equal parts."""
    _spatial_dims = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Max over the windows that split (D, H, W) into ``output_size`` near-equal parts."""
    _spatial_dims = 3
