"""How the commands write counts and sizes, so every command says them the same way.

Sizes are height × width (rows × columns), the order of the arrays' shapes (C, H, W); counts
take the singular for one ("1 epoch", "3 epochs").
"""
from __future__ import annotations

__all__ = ["count", "size_text"]


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 epoch', '2 epochs'; ``plural`` for nouns that do not just add an s."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def size_text(shape) -> str:
    """'600×512' (H×W) from a shape (..., H, W); the last two axes of an image array."""
    height, width = tuple(shape)[-2:]
    return f"{height}×{width}"
