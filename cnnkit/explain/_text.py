"""Small text helpers for the explanations: numbers and matrices printed side by side."""
import numpy as np


def fmt(value) -> str:
    """A number as short text: integers without '.0', others with up to 4 significant digits."""
    value = float(value)
    if value == 0:
        return "0"  # also turns -0.0 into 0
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def signed_sum(values) -> str:
    """[3, -2, 0] -> '3 + (-2) + 0', the way one writes a sum out by hand."""
    return " + ".join(fmt(v) if float(v) >= 0 else f"({fmt(v)})" for v in np.ravel(values))


def cell_width(*arrays) -> int:
    """The widest formatted number among ``arrays``, to line several matrices up."""
    return max(len(fmt(v)) for a in arrays for v in np.ravel(a))


def matrix_lines(matrix, title: str = "", width: int = 0) -> list:
    """A 2-D array as right-aligned text rows in brackets, with an optional title line on top.

    ``width`` is the minimum cell width (see ``cell_width``)."""
    matrix = np.atleast_2d(np.asarray(matrix))
    cells = [[fmt(v) for v in row] for row in matrix]
    width = max([width] + [len(c) for row in cells for c in row])
    lines = ["[" + " ".join(c.rjust(width) for c in row) + "]" for row in cells]
    return ([title] if title else []) + lines


def beside(blocks, separators=None, gap: int = 2) -> str:
    """Text blocks (lists of lines) side by side; ``separators[i]`` goes between block i and i+1
    on the middle row of the matrices (titles are the first line of each block)."""
    height = max(len(b) for b in blocks)
    widths = [max(len(line) for line in b) for b in blocks]
    padded = [b + [""] * (height - len(b)) for b in blocks]
    middle = 1 + (height - 1) // 2
    rows = []
    for r in range(height):
        parts = []
        for i, block in enumerate(padded):
            parts.append(block[r].ljust(widths[i]))
            if i < len(blocks) - 1:
                sep = (separators[i] if separators else "") if r == middle else ""
                parts.append(" " * gap + sep.center(3) + " " * gap)
        rows.append("".join(parts).rstrip())
    return "\n".join(rows)
