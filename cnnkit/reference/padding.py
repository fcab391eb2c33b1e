"""Padding, one output cell at a time: which input cell does each padded position copy?

Modes and their PyTorch names (``torch.nn.functional.pad(..., mode=...)``):

================  ============  ===========================================  ===============
cnnkit            torch         source of padded position i (axis length n)  example, pad 2
================  ============  ===========================================  ===============
``'zeros'``       'constant'    none: the cell is 0                          0 0 | a b c | 0 0
``'reflect'``     'reflect'     mirror about the edge cell (not repeated)    c b | a b c | b a
``'replicate'``   'replicate'   the nearest edge cell                        a a | a b c | c c
``'circular'``    'circular'    i mod n (wrap around)                        b c | a b c | a b
================  ============  ===========================================  ===============
"""
import numpy as np

from ._args import _is_int, positions

PAD_MODES = ("zeros", "constant", "reflect", "replicate", "circular")


def source_index(i, n, mode):
    """The input index copied into position ``i`` (input coordinates, may lie outside ``[0, n)``).

    Returns ``None`` where the padded value is a zero.
    """
    if 0 <= i < n:
        return i
    if mode in ("zeros", "constant"):
        return None
    if mode == "reflect":
        return -i if i < 0 else 2 * (n - 1) - i
    if mode == "replicate":
        return 0 if i < 0 else n - 1
    return i % n  # circular


def pad_input(x, padding_pairs, mode="zeros"):
    """Pad the trailing ``len(padding_pairs)`` axes of ``x``.

    Parameters
    ----------
    x : ndarray of shape (N, C, *in_size)
        Any leading axes are kept; the last ``len(padding_pairs)`` axes are padded.
    padding_pairs : sequence of (lo, hi) int pairs
        One pair per padded axis, in axis order (unlike ``torch.nn.functional.pad``, which lists
        the *last* axis first).
    mode : {'zeros', 'constant', 'reflect', 'replicate', 'circular'}

    Returns
    -------
    x_pad : ndarray of shape (N, C, *(in_size[i] + lo[i] + hi[i]))
        ``x_pad[..., p] = x[..., source_index(p - lo, n, mode)]`` (0 where there is no source).
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x: expected a numpy ndarray, got {type(x).__name__}")
    if mode not in PAD_MODES:
        raise ValueError(f"mode: expected one of {PAD_MODES}, got {mode!r}")
    pairs = tuple(tuple(p) for p in padding_pairs)
    if len(pairs) > x.ndim or any(len(p) != 2 or not all(map(_is_int, p)) for p in pairs):
        raise ValueError(
            f"padding_pairs: expected at most {x.ndim} (lo, hi) int pairs, got {padding_pairs!r}")
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise ValueError(f"padding_pairs: expected non-negative padding, got {padding_pairs!r}")
    in_size = x.shape[x.ndim - len(pairs):]
    for axis, (n, (lo, hi)) in enumerate(zip(in_size, pairs)):
        if mode == "reflect" and max(lo, hi) >= n:
            raise ValueError(f"padding_pairs: reflect padding {(lo, hi)} must be < the size {n} "
                             f"of padded axis {axis}")
        if mode == "circular" and max(lo, hi) > n:
            raise ValueError(f"padding_pairs: circular padding {(lo, hi)} must be <= the size {n} "
                             f"of padded axis {axis}")
        if mode == "replicate" and n == 0 and (lo or hi):
            raise ValueError(f"padding_pairs: cannot replicate-pad the empty axis {axis}")

    out_size = tuple(n + lo + hi for n, (lo, hi) in zip(in_size, pairs))
    x_pad = np.zeros(x.shape[:x.ndim - len(pairs)] + out_size, dtype=x.dtype)
    for p in positions(out_size):
        src = tuple(source_index(p_i - lo, n, mode) for p_i, n, (lo, _) in zip(p, in_size, pairs))
        if None in src:
            continue  # a zero-padding cell: x_pad already holds 0 there
        # `...` copies the whole (N, C) column at once; the loop is over padded positions only.
        x_pad[(Ellipsis,) + p] = x[(Ellipsis,) + src]
    return x_pad
