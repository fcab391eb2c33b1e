"""Labelled pictures of a filter: input and outputs side by side with the kernel, and one
output pixel's window (``cnnkit filter --side-by-side/--compare/--explain``).

Images are (C, H, W) or (H, W) floats in [0, 1]; figures are matplotlib Figures (Agg) saved as
PNG or JPEG by the file's extension.
"""
from __future__ import annotations

import io
import os

import numpy as np

from ..io import atomic_write_bytes
from .io import image_format

__all__ = ["explain_pixel", "filter_figure", "save_figure_as", "window_figure"]

_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "wrap"}


def _rgb(image):
    image = np.asarray(image, dtype=np.float64)
    image = image[None] if image.ndim == 2 else image
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


def _draw_kernel(ax, kernel, title):
    bound = np.abs(kernel).max() or 1.0
    ax.imshow(kernel, cmap="RdBu_r", vmin=-bound, vmax=bound)
    if kernel.size <= 49:
        for (i, j), v in np.ndenumerate(kernel):
            ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=9,
                    color="white" if abs(v) > 0.6 * bound else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def filter_figure(panels, kernel, kernel_name: str, key: str | None = None,
                  title: str | None = None):
    """One row of labelled images and the kernel matrix.

    panels : [(label, image (C, H, W) or (H, W) in [0, 1])], drawn left to right
    kernel : ndarray (kh, kw), drawn last with its entries (red +, blue −)
    key : a line under the pictures, e.g. how grey levels map to the response
    """
    from ..plots._figure import new_figure
    height, width = np.shape(panels[0][1])[-2:]
    panel_width = 3.2 * min(width / height, 2.0)
    figure = new_figure(panel_width * len(panels) + 2.2, 3.6)
    axes = figure.subplots(1, len(panels) + 1,
                           width_ratios=[panel_width] * len(panels) + [1.6])
    for ax, (label, image) in zip(axes, panels):
        ax.imshow(_rgb(image), cmap="gray", vmin=0, vmax=1, interpolation="antialiased")
        ax.set_title(label, fontsize=9)
        ax.set_axis_off()
    _draw_kernel(axes[-1], kernel, f"kernel {kernel_name}\n{kernel.shape[0]}×{kernel.shape[1]}")
    if title:
        figure.suptitle(title, fontsize=10)
    if key:
        figure.supxlabel(key, fontsize=8)
    return figure


def save_figure_as(figure, path, dpi: int = 100) -> None:
    """Write ``figure`` as PNG or JPEG (by ``path``'s extension), atomically."""
    buffer = io.BytesIO()
    kind = image_format(path)
    figure.savefig(buffer, format="jpeg" if kind == "JPEG" else "png", dpi=dpi)
    atomic_write_bytes(os.fspath(path), buffer.getvalue())


def _window(source, kernel_shape, row, col, convolve, padding_mode):
    """The (kh, kw) window of ``source`` (H, W) under the kernel for output (row, col) in 'same'
    mode, with scipy's padding (``filter.py``): correlation pads (k−1)//2 before, convolution
    k//2."""
    pads = tuple((k // 2, (k - 1) // 2) if convolve else ((k - 1) // 2, k // 2)
                 for k in kernel_shape)
    padded = np.pad(source, pads, mode=_PAD_MODES[padding_mode])
    return padded[row:row + kernel_shape[0], col:col + kernel_shape[1]]


def explain_pixel(source, kernel, row: int, col: int, convolve: bool = False,
                  padding_mode: str = "zeros"):
    """The sum behind output pixel (row, col): (text, window (kh, kw), applied kernel, sum).

    source : (H, W) the channel that was filtered; kernel (kh, kw) as given (flipped here for
    convolution, which is correlation with the flipped kernel).
    """
    from ..explain._text import fmt
    source = np.asarray(source, dtype=np.float64)
    height, width = source.shape
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"explain: pixel ({row}, {col}) is outside the {height}×{width} image "
                         f"(rows 0..{height - 1}, columns 0..{width - 1})")
    applied = kernel[::-1, ::-1] if convolve else kernel
    window = _window(source, kernel.shape, row, col, convolve, padding_mode)
    products = window * applied
    total = float(products.sum())

    def grid(array):
        return "\n".join("  " + " ".join(fmt(round(v, 4)).rjust(8) for v in line)
                         for line in array)
    operation = "convolution (kernel flipped)" if convolve else "correlation"
    text = (f"output pixel (row {row}, column {col}), {operation}:\n"
            f"input window (pixel values in [0, 1]):\n{grid(window)}\n"
            f"kernel as applied:\n{grid(applied)}\n"
            f"products window × kernel:\n{grid(products)}\n"
            f"sum = {total:.6g}")
    return text, window, applied, total


def window_figure(source, kernel, row: int, col: int, convolve: bool = False, margin: int = 6,
                  title: str = ""):
    """An enlarged crop around (row, col) with the kernel's window outlined (nearest pixels)."""
    from matplotlib.patches import Rectangle

    from ..plots._figure import new_figure
    source = np.asarray(source, dtype=np.float64)
    kh, kw = kernel.shape
    top, left = (row - kh // 2, col - kw // 2) if convolve else \
        (row - (kh - 1) // 2, col - (kw - 1) // 2)
    r0, c0 = max(0, top - margin), max(0, left - margin)
    r1 = min(source.shape[0], top + kh + margin)
    c1 = min(source.shape[1], left + kw + margin)
    figure = new_figure(4.5, 4.8)
    ax = figure.subplots()
    ax.imshow(source[r0:r1, c0:c1], cmap="gray", vmin=0, vmax=1, interpolation="nearest",
              extent=(c0 - 0.5, c1 - 0.5, r1 - 0.5, r0 - 0.5))
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), kw, kh, fill=False, lw=2, color="red",
                           label=f"{kh}×{kw} window"))
    ax.plot([col], [row], marker="+", color="yellow", markersize=12)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or f"window of output pixel (row {row}, column {col})", fontsize=9)
    return figure
