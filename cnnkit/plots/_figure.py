"""Figures drawn off-screen with matplotlib's Agg renderer and saved as PNG atomically.

``new_figure`` builds a ``matplotlib.figure.Figure`` with an Agg canvas directly, without pyplot:
no global figure registry to leak into, no GUI backend to pick, safe in tests and servers.
"""
import io
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io import atomic_write_bytes

__all__ = ["new_figure", "save_figure"]


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` × ``height`` inches, rendered by Agg."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path, dpi: int = 100) -> None:
    """Render ``figure`` to PNG bytes, then write them to ``path`` atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(os.fspath(path), buffer.getvalue())


def finish(figure: Figure, path):
    """Save the figure if a path is given; return it either way (for notebooks and tests)."""
    if path is not None:
        save_figure(figure, path)
    return figure
