"""The boundary extensions of ``scipy.signal.convolve2d``, as a differentiable pad.

- ``'fill'`` (alias ``'pad'``): a constant ``fillvalue`` outside the array.
- ``'wrap'`` (alias ``'circular'``): periodic, ``x[i mod n]``.
- ``'symm'`` (alias ``'symmetric'``): mirrored *with* the edge repeated (NumPy's 'symmetric'
  pad, period ``2n``): ``... x1 x0 | x0 x1 ... x_{n-1} | x_{n-1} x_{n-2} ...``.

Pads may be wider than the array (a kernel larger than the image); the extensions then repeat,
as in scipy. The non-constant modes copy input values, so the gradient of every padded cell
goes back to the cell it was copied from: a scatter-add done with one ``np.bincount``.
"""
import numpy as np

from ..tensor import Tensor

BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
              "symm": "symm", "symmetric": "symm"}


def check_boundary(boundary) -> str:
    """The canonical name ('fill', 'wrap' or 'symm') of a scipy boundary flag."""
    if not isinstance(boundary, str) or boundary not in BOUNDARIES:
        raise ValueError(
            f"boundary: expected 'fill' (or 'pad'), 'wrap' (or 'circular') or 'symm' "
            f"(or 'symmetric'), got {boundary!r}")
    return BOUNDARIES[boundary]


def fill_scalar(fillvalue, dtype) -> np.ndarray:
    """``fillvalue`` as a 0-d array of ``dtype``, with scipy's rules: a value NumPy cannot store
    in ``dtype`` (300 in int8, 1j in float64) is an error; floats truncate into ints."""
    try:
        fill = np.array(fillvalue, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as error:
        # scipy's own wording (its test suite matches on it), with the values named.
        raise ValueError(
            f"could not cast `fillvalue` directly to the output type {np.dtype(dtype)} "
            f"(fillvalue={fillvalue!r})") from error
    if fill.size != 1:
        raise ValueError(
            f"`fillvalue` must be scalar or an array with one element, got shape {fill.shape}")
    return fill.reshape(())


def source_indices(n: int, lo: int, hi: int, boundary: str) -> np.ndarray:
    """For each of the ``lo + n + hi`` padded positions along an axis, the input index it copies."""
    i = np.arange(-lo, n + hi)
    if boundary == "wrap":
        return i % n
    j = i % (2 * n)  # symm: period 2n, the second half mirrored
    return np.where(j < n, j, 2 * n - 1 - j)


def pad_boundary(x, widths, boundary: str, fill, dtype):
    """Pad ``x`` by ``widths`` (one ``(lo, hi)`` per axis) with a scipy boundary extension.

    Parameters
    ----------
    x : ndarray or Tensor of shape (N_1, ..., N_d)
    widths : d pairs of non-negative ints
    boundary : 'fill' | 'wrap' | 'symm' (canonical names)
    fill : 0-d ndarray, the constant for 'fill' (ignored otherwise)
    dtype : dtype of the result (the convolution's output dtype; ``x`` is cast to it first)

    Returns
    -------
    out : ndarray (or Tensor if ``x`` is one) of shape (lo_1 + N_1 + hi_1, ...)
    """
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    data = data.astype(dtype, copy=False)
    if boundary == "fill":
        out = np.pad(data, widths, mode="constant", constant_values=fill)
        sources = None
    else:
        sources = [source_indices(n, lo, hi, boundary) for n, (lo, hi) in zip(data.shape, widths)]
        out = data[np.ix_(*sources)]
    if not isinstance(x, Tensor):
        return out

    def backward(g):
        if sources is None:  # the interior; the constant border has no source
            interior = tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape, widths))
            return (g[interior].astype(x.dtype, copy=False),)
        # Each padded cell adds its gradient to the input cell it copies.
        flat_sources = np.ravel_multi_index(np.ix_(*sources), x.shape)
        grad = np.bincount(np.broadcast_to(flat_sources, g.shape).ravel(), weights=g.ravel(),
                           minlength=x.size)
        return (grad.reshape(x.shape).astype(x.dtype, copy=False),)

    return Tensor._make(out, (x,), backward, f"pad_{boundary}")
