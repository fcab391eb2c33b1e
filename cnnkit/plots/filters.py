"""The first layer's kernels as a grid of small pictures: what a trained network looks for.

First-layer filters act on pixels directly, so they can be read like the image kernels of
``cnnkit.vision``: a filter light on the left and dark on the right is a vertical-edge detector.
"""
import numpy as np

from .. import nn
from ._figure import finish, new_figure

__all__ = ["first_conv_weight", "plot_filters"]


def first_conv_weight(model) -> np.ndarray:
    """The weight of the first convolution in ``model`` (in registration order), as a copy.

    Returns (K, C, kh, kw); a Conv1d weight (K, C, k) is returned as (K, C, 1, k).
    Raises ValueError if the model has no convolution.
    """
    for _, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            weight = np.array(module.weight.data)
            return weight[:, :, None, :] if weight.ndim == 3 else weight
    raise ValueError(f"model: found no Conv1d/Conv2d layer in {type(model).__name__}")


def _scaled(kernel):
    """Min–max scale one kernel to [0, 1] (a constant kernel becomes mid-grey)."""
    low, high = kernel.min(), kernel.max()
    return np.full_like(kernel, 0.5) if high == low else (kernel - low) / (high - low)


def plot_filters(weight, path=None, max_filters: int = 64, max_channels: int = 8,
                 annotate=None, title: str = "first-layer filters"):
    """Draw kernels as a grid; return the Figure (and write a PNG if ``path`` is given).

    Parameters
    ----------
    weight : ndarray of shape (K, C, kh, kw), or a model (its first convolution is used)
    max_filters : draw at most this many filters
    max_channels : for C not in (1, 3), one column per input channel, at most this many
    annotate : write each weight's value in its cell; None = only for small 1-channel kernels
    Single-channel filters are shown with a diverging map centred on 0 (red +, blue −);
    3-channel filters as RGB pictures, each min–max scaled.
    """
    if not isinstance(weight, np.ndarray) and hasattr(weight, "named_modules"):
        weight = first_conv_weight(weight)
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim != 4 or 0 in weight.shape:
        raise ValueError(f"weight: expected shape (K, C, kh, kw), got {weight.shape}")
    total = len(weight)
    weight = weight[:max_filters]
    k, c, kh, kw = weight.shape
    rgb = c == 3
    if annotate is None:
        annotate = c == 1 and kh * kw <= 25 and k <= 16
    if c in (1, 3):
        cols = int(np.ceil(np.sqrt(k)))
        rows = int(np.ceil(k / cols))
        cells = [(f, None) for f in range(k)]
    else:
        cols, rows = min(c, max_channels), k
        cells = [(f, ch) for f in range(k) for ch in range(cols)]
    figure = new_figure(1.2 * cols + 1.3, 1.2 * rows + 0.8)
    figure.suptitle(f"{title}\n{k} of {total} shown, each {c}×{kh}×{kw}", fontsize=9)
    axes = figure.subplots(rows, cols, squeeze=False)
    bound = np.abs(weight).max() or 1.0
    for ax in axes.ravel():
        ax.set_axis_off()
    for n, (f, ch) in enumerate(cells):
        ax = axes.ravel()[n]
        if rgb:
            ax.imshow(_scaled(weight[f]).transpose(1, 2, 0), interpolation="nearest")
        else:
            kernel = weight[f, 0 if ch is None else ch]
            drawn = ax.imshow(kernel, cmap="RdBu_r", vmin=-bound, vmax=bound,
                              interpolation="nearest")
            if annotate:
                for (i, j), v in np.ndenumerate(kernel):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"filter {f}" if ch is None else f"filter {f} / ch {ch}", fontsize=7)
    if rgb:
        figure.supxlabel("each filter's RGB weights scaled min–max", fontsize=7)
    else:
        colorbar = figure.colorbar(drawn, ax=axes, shrink=0.8, aspect=25)
        colorbar.set_label("weight (red +, blue −)", fontsize=7)
    return finish(figure, path)
