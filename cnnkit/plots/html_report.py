"""One static HTML page that shows a model at work on one image (``cnnkit report``):

    input → each layer's feature maps (name, type, shape) → class probabilities

The page is self-contained: every picture is a PNG embedded as a ``data:`` URI, styles are
inline, nothing is fetched, so it opens offline and can be mailed as one file.
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np
from PIL import Image

from ..tensor import Tensor, no_grad
from .features import _leaves

__all__ = ["model_report_html", "png_data_uri"]

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.layer { margin: 0.8em 0; padding-left: 0.6em; border-left: 3px solid #9bc; }
.layer .name { font-family: monospace; } .note { color: #666; font-size: 0.85em; }
.maps figure { display: inline-block; margin: 0 6px 6px 0; text-align: center; }
.maps figcaption { font-size: 0.75em; color: #555; }
img { image-rendering: pixelated; border: 1px solid #ccc; }
.arrow { font-size: 1.4em; color: #9bc; margin: 0.2em 0 0.2em 1em; }
table.probs td { padding: 2px 8px; font-size: 0.9em; }
.bar { background: #9bc; height: 0.9em; } .best .bar { background: #e74; }
.best td { font-weight: bold; }
"""


def png_data_uri(image, scale: int = 1) -> str:
    """A (H, W) or (H, W, 3) array in [0, 1] as a PNG ``data:`` URI, enlarged ``scale`` times
    (nearest neighbour, so pixels stay visible)."""
    pixels = np.round(np.clip(np.asarray(image, dtype=np.float64), 0, 1) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale),
                                 Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _scale_for(height: int, width: int, target: int = 96) -> int:
    return max(1, target // max(height, width, 1))


def _unit(array, low, high):
    return (np.asarray(array, dtype=np.float64) - low) / (high - low if high > low else 1.0)


def _input_section(image) -> str:
    image = np.asarray(image, dtype=np.float64)
    shown = image.transpose(1, 2, 0) if image.shape[0] == 3 else image[0]
    picture = png_data_uri(_unit(shown, shown.min(), shown.max()),
                           _scale_for(*image.shape[1:], target=192))
    shape = "×".join(map(str, image.shape))
    return (f'<h2>Input</h2><div class="layer"><img src="{picture}" alt="input image">'
            f'<div class="note">{shape} (C×H×W), as the model sees it (normalised, shown '
            f'min–max)</div></div>')


def _layer_section(name, kind, maps, max_channels) -> str:
    shown = min(max_channels, maps.shape[0])
    low, high = float(maps[:shown].min()), float(maps[:shown].max())
    scale = _scale_for(*maps.shape[1:])
    figures = "".join(
        f'<figure><img src="{png_data_uri(_unit(maps[ch], low, high), scale)}" '
        f'alt="channel {ch}"><figcaption>ch {ch}</figcaption></figure>' for ch in range(shown))
    shape = "×".join(map(str, maps.shape))
    return (f'<div class="arrow">↓</div><div class="layer"><span class="name">'
            f'{html.escape(name)}</span> ({html.escape(kind)}) → {shape}'
            f'<div class="note">{shown} of {maps.shape[0]} channels shown; one grey scale '
            f'for the layer: black {low:.3g}, white {high:.3g}</div>'
            f'<div class="maps">{figures}</div></div>')


def _vector_section(name, kind, vector) -> str:
    """A layer whose output is a vector (Flatten, Linear): one strip, a cell per value."""
    low, high = float(vector.min()), float(vector.max())
    cells = _unit(vector[None, :512], low, high)
    picture = png_data_uri(np.repeat(cells, 12, axis=0), max(1, 4 if len(vector) <= 128 else 1))
    more = f" (first 512 of {len(vector)})" if len(vector) > 512 else ""
    return (f'<div class="arrow">↓</div><div class="layer"><span class="name">'
            f'{html.escape(name)}</span> ({html.escape(kind)}) → {len(vector)}'
            f'<div class="note">a vector{more}: one cell per value, black {low:.3g}, white '
            f'{high:.3g}</div><img src="{picture}" alt="{html.escape(name)} values"></div>')


def layer_outputs(model, image) -> tuple:
    """([(name, type, output without the batch axis)] for every leaf layer in forward order,
    scores (classes,)) for one image (C, H, W); the model is left in eval mode."""
    recorded = []

    def hook_for(name):
        def hook(module, args, output):
            if isinstance(output, Tensor):
                recorded.append((name, type(module).__name__, np.array(output.data[0])))
        return hook
    handles = [m.register_forward_hook(hook_for(name)) for name, m in _leaves(model)]
    try:
        with no_grad():
            scores = model.eval()(Tensor(np.asarray(image, dtype=np.float32)[None])).data[0]
    finally:
        for handle in handles:
            handle.remove()
    return recorded, scores


def _probabilities_section(probabilities, classes) -> str:
    order = np.argsort(-probabilities, kind="stable")
    rows = []
    for rank, k in enumerate(order):
        width = 100 * float(probabilities[k])
        rows.append(f'<tr class="{"best" if rank == 0 else ""}"><td>{html.escape(classes[k])}'
                    f'</td><td>{width:.2f}%</td><td style="width: 320px"><div class="bar" '
                    f'style="width: {width:.1f}%"></div></td></tr>')
    return (f'<div class="arrow">↓</div><h2>Class probabilities (softmax)</h2>'
            f'<table class="probs">{"".join(rows)}</table>')


def model_report_html(model, image, classes=None, title: str = "model report",
                      notes=(), max_channels: int = 8) -> str:
    """The page as a string.

    model : a cnnkit.nn Module; image : (C, H, W) float, normalised as the model expects
    classes : class names (default 'class k'); notes : lines shown under the title
    """
    outputs, scores = layer_outputs(model, image)
    scores = scores.astype(np.float64)
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    classes = [str(c) for c in classes] if classes else \
        [f"class {k}" for k in range(len(probabilities))]
    if len(classes) != len(probabilities):
        raise ValueError(f"classes: {len(classes)} names for {len(probabilities)} outputs")
    best = int(np.argmax(probabilities))
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>predicted: <b>{html.escape(classes[best])}</b> "
             f"({100 * probabilities[best]:.2f}%)</p>"]
    parts += [f'<p class="note">{html.escape(line)}</p>' for line in notes]
    parts.append(_input_section(image))
    parts.append("<h2>Layer by layer: feature maps and their shapes (C×H×W)</h2>")
    for name, kind, output in outputs:
        if output.ndim == 3:
            parts.append(_layer_section(name, kind, output, max_channels))
        elif output.ndim == 1:
            parts.append(_vector_section(name, kind, output))
    parts.append(_probabilities_section(probabilities, classes))
    parts.append("</body></html>")
    return "\n".join(parts)
