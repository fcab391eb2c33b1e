"""Inverted dropout: zero each value with probability p and scale the survivors by 1/(1 − p),
so the expected output equals the input and evaluation needs no rescaling.

Masks come from ``cnnkit.random.default_generator`` (seed it with ``cnnkit.manual_seed``) unless
an ``rng`` (a ``numpy.random.Generator`` or an int seed) is passed.
"""
import numpy as np

from .. import random as _random
from ..kernels.arithmetic_numba import binary
from ..tensor import Tensor, as_tensor

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d"]


def _check_p(p, name):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) \
            or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: dropout probability p has to be between 0 and 1, got {p!r}")
    return float(p)


def _masked(x: Tensor, p: float, mask_shape: tuple, rng, op: str) -> Tensor:
    """x ⊙ mask/(1 − p) with a Bernoulli(1 − p) mask of ``mask_shape`` (broadcast over x)."""
    generator = _random.resolve_generator(rng)
    if p == 1.0:
        scaled_mask = np.zeros(mask_shape, dtype=x.dtype)
    else:
        # P(u ≥ p) = 1 − p for u ~ U[0, 1); drawing in float32 halves the cost for float32 nets.
        draw_dtype = np.float32 if x.dtype == np.float32 else np.float64
        keep = generator.random(mask_shape, dtype=draw_dtype) >= p
        scaled_mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    # compiled for large float arrays, a channel's mask (N, C, 1, ...) included
    return Tensor._make(binary(np.multiply, x.data, scaled_mask), (x,),
                        lambda g: (binary(np.multiply, g, scaled_mask),), op)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False,  # noqa: A002
            rng=None) -> Tensor:
    """Elementwise inverted dropout.

    Parameters
    ----------
    input : Tensor of any shape
    p : probability of zeroing each element, 0 ≤ p ≤ 1
    training : when False, the input is returned unchanged (as are p = 0 calls)
    inplace : accepted for PyTorch compatibility; cnnkit never overwrites its inputs
    rng : None (the global generator), an int seed, or a ``numpy.random.Generator``

    Returns
    -------
    Tensor of the input's shape: y = x ⊙ m/(1 − p), m ~ Bernoulli(1 − p);  dL/dx = g ⊙ m/(1 − p).
    """
    p = _check_p(p, "dropout")
    x = as_tensor(input)
    if not training or p == 0.0:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: input must be floating point, got dtype {x.dtype}")
    return _masked(x, p, x.shape, rng, "dropout")


def _feature_dropout(name, spatial_dims):
    def feature_dropout(input, p: float = 0.5, training: bool = True,  # noqa: A002
                        inplace: bool = False, rng=None) -> Tensor:
        p = _check_p(p, name)
        x = as_tensor(input)
        if x.ndim not in (spatial_dims + 1, spatial_dims + 2):
            raise ValueError(f"{name}: input must be (N, C, *spatial) or (C, *spatial) with "
                             f"{spatial_dims} spatial dims, got shape {x.shape}")
        if not training or p == 0.0:
            return x
        if x.dtype.kind != "f":
            raise TypeError(f"{name}: input must be floating point, got dtype {x.dtype}")
        # One draw per (sample, channel): whole feature maps are kept or dropped together.
        channel_dims = x.ndim - spatial_dims
        mask_shape = x.shape[:channel_dims] + (1,) * spatial_dims
        return _masked(x, p, mask_shape, rng, name)
    feature_dropout.__name__ = name
    feature_dropout.__doc__ = (
        f"Channel-wise inverted dropout (``torch.nn.functional.{name}``): each channel of\n"
        f"    ``input : Tensor of shape (N, C, *{spatial_dims} spatial dims)`` (or without N) is\n"
        f"    zeroed with probability p, the survivors scaled by 1/(1 − p).")
    return feature_dropout


dropout1d = _feature_dropout("dropout1d", 1)
dropout2d = _feature_dropout("dropout2d", 2)
dropout3d = _feature_dropout("dropout3d", 3)
