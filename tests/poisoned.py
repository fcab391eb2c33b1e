"""np.empty whose float arrays hold NaN: a pass that leaves a cell unwritten shows."""
import numpy as np

_REAL_EMPTY = np.empty


def poisoned_empty(*args, **kwargs):
    """np.empty's array, its float cells NaN (patch it in for ``np.empty``)."""
    out = _REAL_EMPTY(*args, **kwargs)
    if out.dtype.kind == "f":
        out.fill(np.nan)
    return out
