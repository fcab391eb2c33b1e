"""A conv layer's input and its zero padding, padded at most once for the passes of a step."""
import numpy as np

from ... import tuning
from ..pad_numba import pad_planes
from ..padding import has_padding, zero_pad


class PaddedInput:
    """The input x (N, C, *spatial) of one layer step, with the zero padding ``pads`` ((lo, hi)
    per spatial dim, or None) that its convolution reads.

    Algorithms that read the padded array (``padded``) share one copy between the forward pass
    and the weight gradient; those that take the padding as widths (the row correlation, the
    compiled depthwise weight gradient) read ``data`` and make none. ``shared``: the weight
    gradient will read the padded array too (a training step's), so a forward pass whose
    tasks pad image by image (``implicit.forward_from``) keeps their padded images as the
    copy (``adopt``); otherwise it keeps none.
    """
    __slots__ = ("data", "pads", "shared", "padded_shape", "_padded")

    def __init__(self, data, pads=None, shared=False):
        if not isinstance(data, np.ndarray):
            raise TypeError(f"x must be a NumPy array, got {type(data).__name__}")
        if pads is not None and len(pads) != data.ndim - 2:
            raise ValueError(f"pads must be one (lo, hi) pair per spatial dim of x "
                             f"{data.shape}, got {pads!r}")
        self.data = data
        self.pads = tuple(tuple(p) for p in pads) if has_padding(pads) else None
        self.shared = shared
        self._padded = None if self.pads else data
        self.padded_shape = data.shape if self.pads is None else data.shape[:2] + tuple(
            n + lo + hi for n, (lo, hi) in zip(data.shape[2:], self.pads))

    @property
    def is_padded(self):
        """Whether the padded array exists: made already, or ``data`` itself (no padding)."""
        return self._padded is not None

    def padded(self, finite=None):
        """The zero-padded input, made on first use. Large 1-, 2- and 3-D inputs are padded
        by one parallel pass that also finds whether x is finite, noted in ``finite`` as "x"."""
        if self._padded is None:
            if 3 <= self.data.ndim <= 5 and self.data.size >= tuning.value("compiled_min_size"):
                self._padded, is_finite = pad_planes(self.data, self.pads)
                if finite is not None:
                    finite.setdefault("x", is_finite)
            else:
                self._padded = zero_pad(self.data, self.pads)
        return self._padded

    def adopt(self, padded):
        """Take ``padded`` as the padded input: made by a pass whose tasks padded x image by
        image as they read it (``implicit.forward_from``)."""
        self._padded = padded

    def release(self):
        """Drop the padded copy (the layer's weight gradient will not be asked for)."""
        if self.pads is not None:
            self._padded = None
