"""The sliding window as an animation: one GIF frame per output position of a convolution.

Each frame shows the (padded) input with the kernel's window outlined, and the output filled in
up to the current position, whose sum is written out: z[i, j] = Σ window ⊙ kernel (+ bias).
Frames are drawn with matplotlib (Agg) and joined by Pillow.
"""
import io
import os

import numpy as np
from matplotlib.patches import Rectangle
from PIL import Image

from ..io import atomic_write_bytes
from ._text import fmt
from .conv_steps import ConvExample, conv_steps

__all__ = ["MAX_FRAMES", "sliding_window_frames", "save_sliding_gif"]

MAX_FRAMES = 144


def _grid(ax, values, title, mask=None, window=None, current=None):
    """Draw a matrix of numbers as grey cells with their values (hidden where ``mask`` is
    False), a red window (top, left, h, w) and a highlighted cell (row, col)."""
    shown = np.where(mask, values, np.nan) if mask is not None else values
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    ax.imshow(shown, cmap="gray", vmin=low, vmax=high if high > low else low + 1,
              interpolation="nearest")
    if values.size <= 196:
        middle = (low + high) / 2
        for (i, j), v in np.ndenumerate(values):
            if mask is None or mask[i, j]:
                ax.text(j, i, fmt(round(float(v), 2)), ha="center", va="center", fontsize=7,
                        color="black" if v > middle else "white")
    if window is not None:
        top, left, h, w = window
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, lw=2.5, color="red"))
    if current is not None:
        ax.add_patch(Rectangle((current[1] - 0.5, current[0] - 0.5), 1, 1, fill=False, lw=2.5,
                               color="orange"))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def sliding_window_frames(example: ConvExample, title: str = "", dpi: int = 70) -> list:
    """One RGB PIL image per output position of filter 0 and input channel 0, row by row."""
    from ..plots._figure import new_figure
    steps = conv_steps(example.x, example.weight, example.bias, example.stride, example.padding)
    if len(steps.positions) > MAX_FRAMES:
        raise ValueError(f"gif: {len(steps.positions)} output positions would make as many "
                         f"frames (at most {MAX_FRAMES}); use a smaller input or a larger stride")
    kh, kw = example.weight.shape[2:]
    output = steps.output[0]
    frames = []
    for p, (i, j) in enumerate(steps.positions):
        figure = new_figure(9.5, 4.4)
        left, middle, right = figure.subplots(
            1, 3, width_ratios=[steps.padded.shape[2], kw, output.shape[1]])
        _grid(left, steps.padded[0], "input" + (" (zero-padded)" if example.padding else ""),
              window=(i * example.stride, j * example.stride, kh, kw))
        _grid(middle, example.weight[0, 0], "kernel ⊙")
        filled = np.zeros(output.shape, dtype=bool)
        filled.flat[:i * output.shape[1] + j + 1] = True
        _grid(right, output, f"output {output.shape[0]}×{output.shape[1]}", mask=filled,
              current=(i, j))
        total = steps.results[p, 0]
        figure.suptitle(f"{title}\noutput[{i}, {j}] = Σ window ⊙ kernel"
                        f"{' + bias' if example.bias[0] else ''} = {fmt(round(float(total), 4))}",
                        fontsize=9)
        figure.canvas.draw()
        frames.append(Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3]))
    return frames


def save_sliding_gif(path, example: ConvExample, title: str = "", frame_ms: int = 700) -> int:
    """Write the animation to ``path`` (GIF, looping, atomically); returns the frame count."""
    frames = [frame.convert("P", palette=Image.Palette.ADAPTIVE)
              for frame in sliding_window_frames(example, title)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:],
                   duration=frame_ms, loop=0)
    atomic_write_bytes(os.fspath(path), buffer.getvalue())
    return len(frames)
