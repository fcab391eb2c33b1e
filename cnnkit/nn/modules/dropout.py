"""Dropout layers: active in training mode, the identity after ``eval()``.

Masks are drawn from ``cnnkit.random.default_generator`` (``cnnkit.manual_seed`` makes them
reproducible).
"""
from ... import functional as F
from ..module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d"]


class _DropoutNd(Module):
    _function = "dropout"

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p!r}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):  # noqa: A002 - PyTorch's argument name
        return getattr(F, self._function)(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero each element with probability p; scale the rest by 1/(1 − p)."""


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) with probability p."""
    _function = "dropout1d"


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) with probability p."""
    _function = "dropout2d"


class Dropout3d(_DropoutNd):
    """Zero whole channels of (N, C, D, H, W) with probability p."""
    _function = "dropout3d"
