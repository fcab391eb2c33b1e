"""A convolution whose kernel covers the whole padded input: a fully connected layer.

With the kernel as large as the padded map (dilation 1), each image has one output position,
whose window is all of the image's values, and the layer is ``F.linear`` on the flattened
images: docs/concepts.md's "fully connected layer" and a convolution are then the same sums.
Each pass is one matrix product, any dtype. Only the taps that meet the input inside its zero
padding (``_inside``) enter the products, so no padded copy is made:

    forward  Y (N, K)     = X (N, C·P) @ Wᵢ (K, C·P)ᵀ      P = prod(spatial), Wᵢ those taps
    input    dX (N, C·P)  = dY (N, K) @ Wᵢ
    weight   dWᵢ (K, C·P) = dY (N, K)ᵀ @ X,  the other taps' gradients Σ dY · 0

The other taps meet the padding's zeros, which the sums take as values (docs/ieee.md): an
output whose outside weights hold an inf or NaN is NaN, as are the outside weights'
gradients of a channel whose dY does. The passes put those NaN in after the product.

Such layers are classifier heads written as convolutions (a 1×1 convolution after global
pooling, squeeze-and-excitation's 1×1 convolutions, LeNet-5's C5, VGG's first fully
connected layer as a 7 × 7 convolution) and 3 × 3 convolutions padded by one on 1 × 1 maps.
Every other algorithm tiles output positions, of which there is one per image here
(BENCHMARKS.md, "Convolutions over the whole input as one product").
"""
import math

import numpy as np

from ..bias_numba import add_bias
from ..finite import all_finite


def applies(geometry, pass_name):
    """One group, and a kernel as large as the padded input: one output position per image."""
    g = geometry
    return g.groups == 1 and tuple(g.kernel) == tuple(g.padded) and all(o == 1 for o in g.out)


def wins(geometry, pass_name):
    """Always, where it applies: the product has no copies around it, and every other
    algorithm tiles the output positions, of which there is one per image."""
    return True


def _inside(g):
    """The kernel's taps that read the input inside its zero padding: a slice per dim."""
    return tuple(slice(lo, k - hi) for k, (lo, hi) in zip(g.kernel, g.pad_widths))


def _rows(a, n):
    """a (N, ...) as an N-row matrix (explicit sizes: an empty batch has no −1 to infer)."""
    return a.reshape(n, math.prod(a.shape[1:]))


def _padded(g):
    return any(lo or hi for lo, hi in g.pad_widths)


def _outside(g):
    """A mask of the kernel's taps that read only the padding."""
    mask = np.ones(g.kernel, bool)
    mask[_inside(g)] = False
    return mask


def _within(xp, g):
    """The inside of a padded input (a view)."""
    return xp[(slice(None), slice(None)) + _inside(g)]


def _forward(x, w, g):
    """y (N, K, 1, ...) from x, the input inside its padding."""
    y = _rows(x, g.batch) @ _rows(_within(w, g), g.out_channels).T
    if _padded(g):
        # Σ 0 · w over the outside taps: NaN for an output whose outside weights are not all
        # finite (the inside weights' inf and NaN reach y through the product itself)
        outside = w[:, :, _outside(g)]
        if not all_finite(outside):
            y[:, ~np.isfinite(outside).all(axis=(1, 2))] = np.nan
    return y.reshape((g.batch, g.out_channels) + (1,) * len(g.out))


def forward_from(source, w, g, bias=None):
    y = _forward(source.data, w, g)
    if bias is not None:
        add_bias(y, bias)
    return y


def forward_pass(xp, w, g):
    return _forward(_within(xp, g), w, g)


def input_pass(dy, w, g):
    inside = _within(w, g)
    dx = _rows(dy, g.batch) @ _rows(inside, g.out_channels)
    return dx.reshape((g.batch, g.in_channels) + inside.shape[2:])


def _weight(x, dy, g):
    """dw (K, C, *kernel) from x, the input inside its padding."""
    rows = _rows(dy, g.batch)
    inside = (rows.T @ _rows(x, g.batch)).reshape((g.out_channels, g.in_channels) + x.shape[2:])
    if not _padded(g):
        return inside
    dw = np.zeros((g.out_channels, g.in_channels) + tuple(g.kernel), inside.dtype)
    dw[(slice(None), slice(None)) + _inside(g)] = inside
    # Σ dy · 0 over the images: NaN for a channel whose dy is not all finite
    unfinite = ~np.isfinite(rows).all(axis=0)
    if unfinite.any():
        dw[unfinite] = np.where(_outside(g), np.nan, dw[unfinite])
    return dw


def weight_from(source, dy, g, with_bias=False):
    """(dw, None): the dispatcher sums the bias gradient."""
    return _weight(source.data, dy, g), None


def weight_pass(xp, dy, g):
    return _weight(_within(xp, g), dy, g)
