"""Convolution as a matrix: without an activation, a convolution layer is a linear map.

For input x of shape (C, *spatial) and weights w of shape (K, C, *k), ``conv_matrix`` builds the
matrix M of shape (K · Π out, C · Π spatial) with

    conv(x, w).ravel() = M @ x.ravel()          M[(k, o), (c, o·S + t·D − P)] = w[k, c, t]

for every output position o and kernel tap t that lands on a real (not padding) input. Each
row holds one receptive field's weights; most entries are zero (sparse connectivity) and the
same weights repeat along the diagonals (parameter sharing). In 1-D, M is Toeplitz (banded:
constant along each diagonal); in 2-D, it is *doubly block Toeplitz*: an OH × H grid of blocks,
block (i, r) = the 1-D Toeplitz matrix of kernel row r − i·S + P (zero if there is no such
row).

Backward is the transpose (JAX's comment: "Forward: [m, j] [j, k] -> [m, k]; LHS transpose"):

    dL/dx.ravel() = Mᵀ @ dL/dy.ravel()          (the transposed convolution)
"""
import numpy as np

from ..conv_arithmetic import conv_output_shape, positive_tuple, resolve_padding
from ._text import beside, fmt, matrix_lines

__all__ = ["conv_matrix", "explain_matrix", "toeplitz_blocks"]


def _layout(input_shape, kernel):
    """(input (C, *spatial), weight (K, C, *k), single_channel) from the accepted forms."""
    shape = (int(input_shape),) if np.ndim(input_shape) == 0 else tuple(int(s) for s in input_shape)
    kernel = np.asarray(kernel)
    if kernel.dtype.kind not in "biuf":
        raise TypeError(f"kernel: expected a real numeric array, got dtype {kernel.dtype}")
    if kernel.ndim == len(shape) and kernel.ndim >= 1:
        return (1,) + shape, kernel[None, None], True
    if kernel.ndim == len(shape) + 1 and kernel.ndim >= 3 and kernel.shape[1] == shape[0]:
        return shape, kernel, False
    raise ValueError(f"kernel: expected shape (*k) for input_shape (*spatial) or (K, C, *k) for "
                     f"input_shape (C, *spatial), got kernel {kernel.shape} and input_shape "
                     f"{shape}")


def conv_matrix(input_shape, kernel, stride=1, padding=0, dilation=1, convolve=False,
                max_entries=50_000_000) -> np.ndarray:
    """The dense matrix M with ``conv(x).ravel() == M @ x.ravel()``.

    Parameters
    ----------
    input_shape : (*spatial) with kernel (*k) — one channel in, one out; or (C, *spatial) with
        kernel (K, C, *k), as ``cnnkit.functional.convNd``'s weight
    kernel : ndarray
    stride, padding, dilation : as ``cnnkit.functional.conv2d`` (zero padding; padding may be
        'same', 'valid', 'full')
    convolve : bool, flip the kernel (true convolution) instead of correlating
    max_entries : refuse to build matrices with more entries than this (memory guard)

    Returns
    -------
    M : ndarray of shape (K · Π out, C · Π spatial), dtype of the kernel (float64 for ints)
    """
    shape, weight, _ = _layout(input_shape, kernel)
    channels, spatial = shape[0], shape[1:]
    n = len(spatial)
    ksize = weight.shape[2:]
    strides = positive_tuple(stride, n, "stride")
    dilations = positive_tuple(dilation, n, "dilation")
    pads = resolve_padding(padding, spatial, ksize, strides, dilations)
    out = conv_output_shape(spatial, ksize, strides, pads, dilations)
    n_rows, n_cols = weight.shape[0] * int(np.prod(out)), channels * int(np.prod(spatial))
    if n_rows * n_cols > max_entries:
        raise ValueError(f"conv_matrix: the matrix would be {n_rows} × {n_cols} "
                         f"({n_rows * n_cols:,} entries > max_entries={max_entries:,}); use a "
                         f"smaller input")
    if convolve:
        weight = weight[(Ellipsis,) + (slice(None, None, -1),) * n]
    dtype = weight.dtype if weight.dtype.kind == "f" else np.float64

    # Grids over (output position o, tap t) per dim: the input index each tap lands on.
    grids = np.meshgrid(*[np.arange(o) for o in out], *[np.arange(k) for k in ksize],
                        indexing="ij")
    outputs, taps = grids[:n], grids[n:]
    inputs = [o * s + t * d - p[0] for o, t, s, d, p in zip(outputs, taps, strides, dilations,
                                                           pads)]
    real = np.logical_and.reduce([(i >= 0) & (i < size) for i, size in zip(inputs, spatial)])
    row = np.ravel_multi_index([o[real] for o in outputs], out)
    col = np.ravel_multi_index([i[real] for i in inputs], spatial)
    tap_values = weight[(slice(None), slice(None)) + tuple(t[real] for t in taps)]  # (K, C, L)

    k_index = np.arange(weight.shape[0])[:, None, None]
    c_index = np.arange(channels)[None, :, None]
    matrix = np.zeros((n_rows, n_cols), dtype=dtype)
    # Every (row, col) pair is distinct — one tap per input within a receptive field — so plain
    # fancy assignment places each weight once; nothing needs adding up.
    matrix[k_index * int(np.prod(out)) + row, c_index * int(np.prod(spatial)) + col] = tap_values
    return matrix


def toeplitz_blocks(matrix, input_hw, output_hw) -> np.ndarray:
    """A single-channel 2-D conv matrix as its grid of blocks: (OH, H, OW, W).

    ``blocks[i, r]`` (shape (OW, W)) maps input row r to output row i; for stride 1 it depends
    only on r − i (block Toeplitz) and is itself Toeplitz.
    """
    (h, w), (oh, ow) = input_hw, output_hw
    matrix = np.asarray(matrix)
    if matrix.shape != (oh * ow, h * w):
        raise ValueError(f"toeplitz_blocks: expected a matrix of shape ({oh * ow}, {h * w}), got "
                         f"{matrix.shape}")
    return matrix.reshape(oh, ow, h, w).transpose(0, 2, 1, 3)


def _vector(values) -> str:
    return "[" + ", ".join(fmt(v) for v in values) + "]"


def _symbolic(matrix_of_taps, names) -> list:
    """Rows of tap names ('w12') where the matrix holds tap number n + 1, '·' where zero."""
    cells = [[names[int(v) - 1] if v else "·" for v in row] for row in matrix_of_taps]
    width = max(len(c) for row in cells for c in row)
    return ["[" + " ".join(c.rjust(width) for c in row) + "]" for row in cells]


def explain_matrix(input_shape=(4, 4), kernel_size=3, stride=1, padding=0, seed=0) -> str:
    """Text: the conv matrix of a small 1-D or 2-D example, by tap name and in numbers, checked."""
    from .. import functional as F
    from ..tensor import Tensor

    shape = tuple(input_shape)
    n = len(shape)
    if n not in (1, 2):
        raise ValueError(f"input_shape: expected 1 or 2 sizes, got {input_shape!r}")
    ksize = positive_tuple(kernel_size, n, "kernel_size")
    size = int(np.prod(ksize))
    names = ([f"w{a + 1}" for a in range(ksize[0])] if n == 1 else
             [f"w{a + 1}{b + 1}" for a in range(ksize[0]) for b in range(ksize[1])])
    taps = conv_matrix(shape, np.arange(1, size + 1).reshape(ksize), stride, padding)
    rng = np.random.default_rng(seed)
    # Non-zero taps, so every connection shows up in the numeric matrix too.
    kernel = rng.choice([-2.0, -1.0, 1.0, 2.0], size=ksize)
    x = rng.integers(0, 4, size=shape).astype(np.float64)
    matrix = conv_matrix(shape, kernel, stride, padding)
    conv = getattr(F, f"conv{n}d")(Tensor(x[None, None]), Tensor(kernel[None, None]),
                                   stride=stride, padding=padding).data[0, 0]
    ok = np.allclose(matrix @ x.ravel(), conv.ravel())
    lines = [(f"convolution of a {'×'.join(map(str, shape))} input with a "
              f"{'×'.join(map(str, ksize))} kernel (stride {stride}, padding {padding}) as a "
              f"{matrix.shape[0]}×{matrix.shape[1]} matrix acting on x.ravel():"), ""]
    lines += _symbolic(taps, names)
    lines += ["", "each row is one output's receptive field; '·' = no connection (sparse);",
              "the same taps repeat down the diagonals (shared weights)" +
              ("; blocks of rows repeat shifted: doubly block Toeplitz" if n == 2 else "") + ".",
              "", "with numbers:"]
    lines.append(beside([matrix_lines(kernel, "kernel"), matrix_lines(x, "x")]))
    lines += [""] + matrix_lines(matrix, "M")
    lines += ["", f"M @ x.ravel()       = {_vector(matrix @ x.ravel())}",
              f"conv{n}d(x, kernel)   = {_vector(conv.ravel())} {'✓' if ok else '✗ MISMATCH'}",
              "", "and dL/dx = Mᵀ @ dL/dy: the input gradient is the transposed matrix."]
    return "\n".join(lines)
