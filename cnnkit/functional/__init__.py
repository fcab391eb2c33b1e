"""Differentiable functions on Tensors, with PyTorch's names and semantics.

Also reachable as ``cnnkit.nn.functional``. Each family lives in its own file.
"""
from .activation import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from ..ops.shape import pad as _pad_numpy_style


def pad(input, pad, mode="constant", value=0.0):  # noqa: A002 - PyTorch's names
    """``torch.nn.functional.pad``: ``pad`` lists (lo, hi) pairs from the *last* dim backwards."""
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: expected an even number of values (at most {2 * input.ndim}), "
                         f"got {len(pad)}")
    pairs = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        pairs[input.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return _pad_numpy_style(input, pairs, mode="constant" if mode == "zeros" else mode,
                            value=value)
