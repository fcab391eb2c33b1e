"""Feature maps, layer by layer: what each convolution, activation and pooling makes of an image.

Every layer with an image-like output (N, C, H, W) — or (N, C, L) for 1-D models — is recorded
with a forward hook during one forward pass; each of its channels is one feature map. Deeper
maps are smaller (stride, pooling) and respond to larger patterns (wider receptive fields).
"""
import numpy as np

from ..tensor import Tensor, no_grad
from ._figure import finish, new_figure

__all__ = ["feature_maps", "plot_features"]


def _leaves(model):
    return [(name, m) for name, m in model.named_modules() if name and not list(m.children())]


def feature_maps(model, image, layers=None) -> list:
    """Run ``model`` on one image and return [(layer name, layer type, maps)], in forward order.

    Parameters
    ----------
    model : a cnnkit.nn Module
    image : ndarray of shape (C, H, W) (or (C, L) for 1-D models), already normalised as the
        model expects
    layers : None for every leaf layer with an image-like output, or a list of layer names

    Returns
    -------
    list of (str, str, ndarray of shape (C_l, H_l, W_l)); 1-D maps come as (C_l, 1, L_l)
    """
    image = np.asarray(image.data if isinstance(image, Tensor) else image)
    if image.ndim not in (2, 3) or image.dtype.kind != "f":
        raise ValueError(f"image: expected a float array (C, H, W) or (C, L), got "
                         f"{image.dtype} {image.shape}")
    leaves = _leaves(model)
    if layers is not None:
        known = {name for name, _ in leaves}
        unknown = [name for name in layers if name not in known]
        if unknown:
            raise ValueError(f"layers: unknown layer names {unknown}; known: {sorted(known)}")
        leaves = [(name, m) for name, m in leaves if name in set(layers)]
    recorded = []

    def hook_for(name):
        def hook(module, args, output):
            if isinstance(output, Tensor) and output.ndim in (3, 4):
                maps = output.data[0]
                recorded.append((name, type(module).__name__,
                                 maps[:, None, :] if maps.ndim == 2 else maps))
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in leaves]
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            weight = next(iter(model.parameters()), None)
            dtype = weight.dtype if weight is not None else np.float32
            model(Tensor(image[None].astype(dtype)))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return recorded


def plot_features(model, image, path=None, max_channels: int = 8, layers=None,
                  max_layers: int = 12, title: str | None = None):
    """One row per layer: the input, then up to ``max_channels`` feature maps of each layer.

    The maps of one layer share one grey scale (min..max over the layer's shown maps, with a
    colour bar), so they can be compared; each map is titled with its channel number and the
    row with the layer's name, type, shape and "k of N shown". ``title`` goes on top (e.g. the
    predicted class). Returns the Figure (and writes a PNG if ``path`` is given).
    """
    maps = feature_maps(model, image, layers)[:max_layers]
    if not maps:
        raise ValueError("model: no layer produced an image-like (N, C, H, W) output")
    image = np.asarray(image)
    cols = min(max_channels, max(m.shape[0] for _, _, m in maps))
    rows = len(maps) + 1
    aspect = "auto" if image.ndim == 2 else "equal"  # 1-D maps are strips, stretch them
    figure = new_figure(max(1.3 * cols + 1.0, 4.5), 1.6 * rows + 0.6)
    if title:
        figure.suptitle(title, fontsize=9)
    # One subfigure per row: its title spans the row without widening the first column.
    rows_of_axes = [sub.subplots(1, cols, squeeze=False)[0]
                    for sub in figure.subfigures(rows, 1, squeeze=False)[:, 0]]
    for ax in (ax for row_axes in rows_of_axes for ax in row_axes):
        ax.set_axis_off()
    shown = image if image.ndim == 3 else image[:, None, :]
    first = rows_of_axes[0][0]
    if shown.shape[0] == 3:
        first.imshow(_unit(shown).transpose(1, 2, 0), aspect=aspect)
    else:
        first.imshow(shown[0], cmap="gray", aspect=aspect)
    first.figure.suptitle(f"input {'×'.join(map(str, image.shape))}", fontsize=7, x=0.01,
                          ha="left")
    for row_axes, (name, kind, fmaps) in zip(rows_of_axes[1:], maps):
        count = min(max_channels, fmaps.shape[0])
        low, high = float(fmaps[:count].min()), float(fmaps[:count].max())
        high = high if high > low else low + 1.0
        for ch in range(count):
            drawn = row_axes[ch].imshow(fmaps[ch], cmap="gray", vmin=low, vmax=high,
                                        aspect=aspect, interpolation="nearest")
            row_axes[ch].set_title(f"ch {ch}", fontsize=6)
        sub = row_axes[0].figure
        colorbar = sub.colorbar(drawn, ax=list(row_axes), shrink=0.9, aspect=8, pad=0.01)
        colorbar.ax.tick_params(labelsize=6)
        sub.suptitle(f"{name} ({kind}) {'×'.join(map(str, fmaps.shape))}: {count} of "
                     f"{fmaps.shape[0]} channels shown (one grey scale per layer)", fontsize=7,
                     x=0.01, ha="left")
    return finish(figure, path)


def _unit(array):
    array = np.asarray(array, dtype=np.float64)
    low, high = array.min(), array.max()
    return np.zeros_like(array) if high == low else (array - low) / (high - low)
