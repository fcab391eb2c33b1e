"""The three convolution passes on plain ndarrays, each run by the algorithm ``select`` picks."""
import numpy as np

from . import autotune, config
from .geometry import ConvGeometry
from .registry import REGISTRY, NotApplicable, applies, check_pass, heuristic
from ..padding import zero_pad


def select(geometry, pass_name, finite_weights=True):
    """The algorithm that runs this pass ("forward", "input" or "weight") of this call: the
    forced one (``using``), else the measured one (autotune), else the heuristic's.

    ``finite_weights`` False (a weight is inf or NaN) leaves only gemm for the input gradient
    (``registry.applies``). Raises NotApplicable when a forced algorithm does not apply.
    """
    check_pass(pass_name)
    name = config.forced(pass_name)
    if name is not None:
        if not applies(name, geometry, pass_name, finite_weights):
            reason = "" if finite_weights or pass_name != "input" else \
                " (a weight is not finite: only gemm gives PyTorch's input gradient)"
            raise NotApplicable(name, geometry, pass_name, reason)
        return name
    if config.autotune_enabled():
        name = autotune.lookup(geometry, pass_name)
        if name is not None and applies(name, geometry, pass_name, finite_weights):
            return name
    return heuristic(geometry, pass_name, finite_weights)


def conv_forward(x, w, stride, dilation, groups=1, pads=None):
    """Cross-correlation of an input with a bank of kernels.

    x  : ndarray of shape (N, C, *spatial) — already padded, or to be zero-padded by ``pads``
         (one (lo, hi) pair per spatial dim)
    w  : ndarray of shape (K, C // groups, *kernel)
    Returns y : ndarray of shape (N, K, *out), out = floor((padded − d·(k−1) − 1)/s) + 1
    """
    xp = zero_pad(x, pads)
    g = ConvGeometry.of(xp.shape, w.shape, stride, dilation, groups, xp.dtype, pads)
    if config.autotune_enabled() and not config.anything_forced() and g.batch:
        autotune.ensure(g, xp, w)
    return REGISTRY[select(g, "forward")].forward_pass(xp, w, g)


def conv_backward_input(dy, w, spatial, stride, dilation, groups=1, pads=None):
    """dL/dx of ``conv_forward``: the transposed convolution of ``dy`` with ``w``.

    dy : ndarray of shape (N, K, *out);  w : ndarray of shape (K, C // groups, *kernel)
    spatial : the padded input's spatial shape.
    Returns ndarray of shape (N, C, *spatial), or with ``pads`` the gradient of the input
    inside the zero padding, (N, C, *(spatial − lo − hi)).

    Winograd, implicit and rows compute just the inside (they pad dy less); the others
    compute the whole padded gradient and crop it. (Compiled kernels that skipped the padding
    cells by bounds tests in their inner loops measured slower than the crop: the tests stop
    LLVM from vectorising.)
    """
    x_shape = (dy.shape[0], w.shape[1] * groups) + tuple(spatial)
    g = ConvGeometry.of(x_shape, w.shape, stride, dilation, groups, dy.dtype, pads,
                        out=dy.shape[2:])
    name = select(g, "input")
    if name != "gemm" and not np.isfinite(w).all():  # checked only where it matters
        name = select(g, "input", finite_weights=False)
    return REGISTRY[name].input_pass(dy, w, g)


def conv_backward_weight(x, dy, kernel, stride, dilation, groups=1, pads=None):
    """dL/dw of ``conv_forward``: the correlation of the input with ``dy``.

    x : ndarray of shape (N, C, *spatial) — as for ``conv_forward`` (padded, or ``pads``)
    dy : ndarray of shape (N, K, *out)
    Returns ndarray of shape (K, C // groups, *kernel).
    """
    xp = zero_pad(x, pads)
    w_shape = (dy.shape[1], xp.shape[1] // groups) + tuple(kernel)
    g = ConvGeometry.of(xp.shape, w_shape, stride, dilation, groups, xp.dtype, pads,
                        out=dy.shape[2:])
    return REGISTRY[select(g, "weight")].weight_pass(xp, dy, g)


__all__ = ["NotApplicable", "conv_backward_input", "conv_backward_weight", "conv_forward",
           "select"]
