"""How stacking layers widens what one output sees: the receptive field, layer by layer.

A unit's receptive field is the input window it depends on. With ``r`` its size and ``j`` its
jump (the input distance between neighbouring units), each convolution or pooling layer with
kernel k, stride s and dilation d gives (``cnnkit.summary``)

    r_out = r_in + d·(k − 1)·j_in,      j_out = j_in·s,      r = j = 1 at the input.

Two stacked 3×3 convolutions see 5×5, three see 7×7; a stride-2 pooling doubles the jump, so
every later layer grows the field twice as fast. This is how a small kernel's *local*
connections still let deep units see the whole image (docs/concepts.md §9: y3 reaching x1..x5).
"""
import numpy as np
from matplotlib import colormaps
from matplotlib.patches import Rectangle

from ..summary import summarize
from ._figure import finish, new_figure

__all__ = ["format_receptive_fields", "plot_receptive_field", "receptive_fields"]


def receptive_fields(model, input_shape) -> list:
    """[(layer name, layer type, output shape, rf, jump)] for every layer that changes the field.

    input_shape : (C, *spatial), one input without the batch axis. rf and jump are tuples with
    one entry per spatial dim. Layers after a dense layer (whole input) are left out.
    """
    input_shape = tuple(int(s) for s in input_shape)
    summary = summarize(model, input_shape)
    ones = (1,) * (len(input_shape) - 1)
    rows, previous = [], (ones, ones)  # the input: each unit sees itself
    for layer in summary.layers:
        if layer.receptive_field is None:
            continue
        key = (layer.receptive_field, layer.jump)
        if key != previous:
            rows.append((layer.name, layer.kind, layer.output_shape, layer.receptive_field,
                         layer.jump))
            previous = key
    return rows


def format_receptive_fields(rows, input_shape) -> str:
    """The rows of ``receptive_fields`` as a text table."""
    spatial = "×".join(map(str, input_shape[1:]))
    out = [f"input {'×'.join(map(str, input_shape))}: receptive field 1, jump 1", ""]
    header = ("layer", "type", "output", "receptive field", "jump")
    table = [header] + [(name, kind, "×".join(map(str, shape)), "×".join(map(str, rf)),
                         "×".join(map(str, jump))) for name, kind, shape, rf, jump in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    if rows:
        last = rows[-1][3]
        covers = all(r >= s for r, s in zip(last, input_shape[1:]))
        out += ["", (f"the last of these layers sees {'×'.join(map(str, last))} input pixels "
                    f"({'the whole' if covers else 'part of the'} {spatial} input)")]
    return "\n".join(out)


def plot_receptive_field(model, input_shape, path=None, image=None,
                         title: str = "receptive field growth"):
    """Left: the centre unit's receptive field after each layer, as nested squares on the input.
    Right: its size per layer (a widening cone). Returns the Figure (PNG written if ``path``).

    image : optional (C, H, W) or (H, W) array drawn under the squares
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) not in (2, 3):
        raise ValueError(f"input_shape: expected (C, L) or (C, H, W), got {input_shape}")
    rows = receptive_fields(model, input_shape)
    if not rows:
        raise ValueError("model: no convolution or pooling layer to trace")
    spatial = input_shape[1:] if len(input_shape) == 3 else (1,) + input_shape[1:]
    h, w = spatial
    figure = new_figure(11, 5)
    figure.suptitle(title)
    left, right = figure.subplots(1, 2)
    colors = [colormaps["viridis"](v) for v in np.linspace(0.0, 0.9, len(rows))]

    if image is not None:
        image = np.asarray(image, dtype=np.float64)
        image = image[0] if image.ndim == 3 and image.shape[0] == 1 else image
        shown = image.transpose(1, 2, 0) if image.ndim == 3 else image
        low, high = shown.min(), shown.max()
        left.imshow((shown - low) / (high - low or 1), cmap="gray",
                    extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    left.add_patch(Rectangle((-0.5, -0.5), w, h, fill=False, lw=2, color="black"))
    ch, cw = (h - 1) / 2, (w - 1) / 2
    biggest = 1
    for (name, kind, _, rf, jump), color in zip(rows, colors):
        rh, rw = (1,) + rf if len(rf) == 1 else rf
        biggest = max(biggest, rh, rw)
        left.add_patch(Rectangle((cw - rw / 2, ch - rh / 2), rw, rh, fill=False, lw=1.5,
                                 color=color, label=f"{name} ({kind}): {rh}×{rw}"))
    margin = max(0.0, (biggest - min(h, w)) / 2) + 1
    left.set_xlim(-0.5 - margin, w - 0.5 + margin)
    left.set_ylim(h - 0.5 + margin, -0.5 - margin)
    left.set_aspect("equal")
    left.set_title(f"input {'×'.join(map(str, input_shape[1:]))} (black) and the centre unit's "
                   "field", fontsize=9)
    left.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)

    # The cone: depth on the y axis, the field's extent along the width on the x axis.
    sizes = [1] + [rf[-1] for _, _, _, rf, _ in rows]
    labels = ["input"] + [name for name, *_ in rows]
    for depth, (size, color) in enumerate(zip(sizes, ["black"] + colors)):
        right.barh(depth, size, left=cw - size / 2, height=0.6, color=color, alpha=0.8)
        right.text(cw + size / 2 + 0.5, depth, f"{size}", va="center", fontsize=8)
    right.axvspan(-0.5, w - 0.5, color="grey", alpha=0.12, label="input width")
    right.set_yticks(range(len(labels)), labels, fontsize=7)
    right.set_xlabel("input columns seen by the centre unit")
    right.set_title("receptive field width per layer (stacking widens it)", fontsize=9)
    right.legend(fontsize=7, loc="lower right")
    return finish(figure, path)
