"""``Parameter``: a leaf tensor that a Module owns and an optimizer updates.

``parameter_budget(n)`` caps the elements of the Parameters created inside it (in this thread):
a model rebuilt from a file's hyperparameters (``num_classes = 10**12``) is refused before its
weights are written, instead of taking whatever memory the file asks for.
"""
import contextlib
import threading

import numpy as np

from ..tensor import Tensor

_budget = threading.local()  # .remaining: elements still allowed, or absent for no limit


@contextlib.contextmanager
def parameter_budget(max_elements: int):
    """Raise ValueError when Parameters created in the block would exceed ``max_elements``
    elements in total (checked before each one's data is copied)."""
    saved = getattr(_budget, "remaining", None)
    _budget.remaining = int(max_elements)
    try:
        yield
    finally:
        _budget.remaining = saved


def _spend(size: int) -> None:
    remaining = getattr(_budget, "remaining", None)
    if remaining is None:
        return
    if size > remaining:
        raise ValueError(f"the model would need more parameters than the budget allows "
                         f"({size} more, {remaining} left)")
    _budget.remaining = remaining - size


class Parameter(Tensor):
    """A Tensor that requires grad by default and registers itself on the Module that holds it."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        data = data.data if isinstance(data, Tensor) else data
        _spend(int(np.size(data)))
        super().__init__(np.array(data, dtype=np.result_type(data, np.float32)
                                  if np.asarray(data).dtype.kind != "f" else None),
                         requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
