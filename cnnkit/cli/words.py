"""How the commands write counts and sizes and read pixel positions, all the same way.

Sizes are height × width (rows × columns), the order of the arrays' shapes (C, H, W); pixel
positions are ROW,COL in that order too; counts take the singular for one ("1 epoch").
"""
from __future__ import annotations

__all__ = ["count", "row_col", "size_text"]


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 epoch', '2 epochs'; ``plural`` for nouns that do not just add an s."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def size_text(shape) -> str:
    """'600×512' (H×W) from a shape (..., H, W); the last two axes of an image array."""
    height, width = tuple(shape)[-2:]
    return f"{height}×{width}"


def row_col(text: str, option: str) -> tuple:
    """'12,7' -> (12, 7); UsageError naming ``option`` otherwise."""
    from .common import UsageError
    try:
        row, col = (int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option}: expected ROW,COL (two integers), got {text!r}") from None
    return row, col
