"""``Parameter``: a leaf tensor that a Module owns and an optimizer updates."""
import numpy as np

from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that requires grad by default and registers itself on the Module that holds it."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        data = data.data if isinstance(data, Tensor) else data
        super().__init__(np.array(data, dtype=np.result_type(data, np.float32)
                                  if np.asarray(data).dtype.kind != "f" else None),
                         requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
