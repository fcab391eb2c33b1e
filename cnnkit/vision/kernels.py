"""The classic 3×3 image kernels (https://setosa.io/ev/image-kernels/) and kernel strings.

Each kernel is applied by *correlation*, as on setosa.io and in every CNN layer: the output
pixel is Σ_a Σ_b K[a, b] · image[i + a − 1, j + b − 1], the kernel laid on the image as printed.
True convolution flips the kernel first (``filter_image(..., convolve=True)``), which turns
``sobel-left`` into ``sobel-right`` and ``sobel-top`` into ``sobel-bottom``; the symmetric
kernels (identity, blur, box-blur, sharpen, outline) are unchanged by the flip.

Two families, told apart by the sum of their weights (see ``filter.py``):
  * weights summing to 1 keep the brightness of flat regions (identity, blur, box-blur,
    sharpen, emboss): their outputs are images again;
  * weights summing to 0 answer 0 on flat regions (sobel-*, outline): they are edge
    detectors, whose signed response is mapped to grey levels.
"""
from fractions import Fraction
from types import MappingProxyType

import numpy as np

__all__ = ["KERNELS", "get_kernel", "parse_kernel"]


def _frozen(rows, scale=1):
    kernel = np.array(rows, dtype=np.float64) / scale
    kernel.setflags(write=False)
    return kernel


KERNELS = MappingProxyType({
    "identity": _frozen([[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
    "sharpen": _frozen([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    # The binomial 1-2-1 ⊗ 1-2-1 kernel: a 3×3 approximation of a Gaussian (σ ≈ 0.85).
    "blur": _frozen([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 16),
    "box-blur": _frozen([[1, 1, 1], [1, 1, 1], [1, 1, 1]], 9),
    "emboss": _frozen([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
    "outline": _frozen([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
    # Named after the side that must be brighter for a positive (light) response.
    "sobel-left": _frozen([[1, 0, -1], [2, 0, -2], [1, 0, -1]]),
    "sobel-right": _frozen([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel-top": _frozen([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]),
    "sobel-bottom": _frozen([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
})
"""Preset name -> read-only float64 ndarray of shape (3, 3)."""


def _number(entry: str, row: int, col: int, text: str) -> float:
    entry = entry.strip()
    try:
        # Fraction accepts "1/16" as well as "-2", "0.5" and "1e-3"; fractions save typing
        # 0.0625 for the blur kernel.
        value = float(Fraction(entry))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"kernel: entry {entry!r} (row {row + 1}, column {col + 1}) of "
                         f"{text!r} is not a number") from None
    return value


def parse_kernel(text: str) -> np.ndarray:
    """A kernel written as rows: ``"0,-1,0; -1,5,-1; 0,-1,0"`` -> ndarray of shape (rows, cols).

    Rows are separated by ``;``, entries by ``,``; entries are numbers or fractions (``1/16``).
    Any rectangular size works (odd or even). A single row gives a (1, cols) kernel.

    Raises
    ------
    ValueError
        For an empty string, ragged rows (naming the row lengths) or an entry that is not a number.
    """
    if not isinstance(text, str):
        raise TypeError(f"kernel: expected a string of rows like '1,0,-1;2,0,-2;1,0,-1', "
                        f"got {type(text).__name__}")
    rows = [row for row in text.strip().strip(";").split(";")]
    if not text.strip() or any(not row.strip() for row in rows):
        raise ValueError(f"kernel: {text!r} has an empty row; expected rows of comma-separated "
                         f"numbers separated by ';', e.g. '0,-1,0;-1,5,-1;0,-1,0'")
    entries = [row.split(",") for row in rows]
    lengths = [len(row) for row in entries]
    if len(set(lengths)) != 1:
        raise ValueError(f"kernel: rows of {text!r} have different lengths {lengths}; every "
                         f"row needs the same number of comma-separated entries")
    values = [[_number(e, i, j, text) for j, e in enumerate(row)] for i, row in enumerate(entries)]
    kernel = np.array(values, dtype=np.float64)
    if not np.all(np.isfinite(kernel)):
        raise ValueError(f"kernel: {text!r} has non-finite entries")
    return kernel


def get_kernel(kernel) -> np.ndarray:
    """A preset name, a row string or a 2-D array -> float64 ndarray of shape (kh, kw).

    Raises
    ------
    ValueError
        For an unknown name that is not a kernel string either, or an array that is not a
        non-empty, finite, 2-D numeric array.
    """
    if isinstance(kernel, str):
        name = kernel.strip().lower().replace("_", "-")
        if name in KERNELS:
            return np.array(KERNELS[name])
        if not any(ch.isdigit() for ch in kernel):
            raise ValueError(f"kernel: unknown kernel name {kernel!r}; expected one of "
                             f"{', '.join(KERNELS)} or rows like '0,-1,0;-1,5,-1;0,-1,0'")
        return parse_kernel(kernel)
    array = np.asarray(kernel)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"kernel: expected a real numeric array, got dtype {array.dtype}")
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"kernel: expected a non-empty 2-D array (kh, kw), got shape "
                         f"{array.shape}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError("kernel: entries must be finite")
    return array
