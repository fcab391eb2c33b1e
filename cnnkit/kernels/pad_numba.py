"""Zero padding of 2-D image planes (Numba), with the finiteness check in the same pass.

A conv layer's padded input is one copy of the batch, and some algorithms also need to know
whether it holds inf or NaN (docs/ieee.md): two passes over 16 MB for dw3x3's input, on one
thread each (NumPy's copy 2.6 ms, its isfinite 1.1 ms). Here both happen in one parallel pass:
each (image, channel) plane is copied into its padded place as the floats' bits, and the
largest exponent field is kept on the way: all its bits are set only for inf and NaN.
"""
import numba
import numpy as np

# The exponent bits of each float type, all set for inf and NaN, by the unsigned integer type
# its bits are read as.
_EXPONENT_BITS = {np.dtype(np.float16): (np.uint16, 0x7C00),
                  np.dtype(np.float32): (np.uint32, 0x7F800000),
                  np.dtype(np.float64): (np.uint64, 0x7FF0000000000000)}
# float32's, for the other compiled copies that test their values as they go (a largest
# exponent field of all ones: an inf or NaN was copied)
FLOAT32_EXPONENT = np.uint32(_EXPONENT_BITS[np.dtype(np.float32)][1])


@numba.njit(parallel=True, cache=True)
def _pad_planes(x, out, top, left, depth, front, padded_depth, exponent_bits, nonfinite):
    """out[q, top + i, left + j] = x[p, i, j], zeros elsewhere in plane q, for q = (p // depth)
    · padded_depth + front + p % depth (the planes of a volume's depth axis, padded there by
    ``front``; depth 1 for images); nonfinite[p] is True where plane p holds an inf or NaN.
    x (P, H, W), out (Q, Hp, Wp): the floats' bits, as unsigned integers. The largest
    exponent field seen is kept as the values are copied: an integer maximum vectorises with
    the copy, and needs no per-plane scratch (a per-column float sum of v − v, allocated per
    plane, made small planes cost twice a copy: 0.41 against 0.19 ms for 128 × 32 planes of
    14 × 14). Flat unsigned indices, no view per row: BENCHMARKS.md, "Copy loops on unsigned
    indices"."""
    planes, height, width = x.shape
    padded_height, padded_width = out.shape[1], out.shape[2]
    plane = numba.uint64(padded_height * padded_width)
    pitch, first = numba.uint64(padded_width), numba.uint64(left)
    after = numba.uint64(left + width)  # a row's first cell past the values
    head = numba.uint64(top * padded_width)  # the top rows' cells
    tail = numba.uint64((top + height) * padded_width)  # the first cell of the bottom rows
    source, target = x.reshape(-1), out.reshape(-1)
    zero = exponent_bits - exponent_bits
    for p in numba.prange(planes):
        base = numba.uint64((p // depth) * padded_depth + front + p % depth) * plane
        at = numba.uint64(p * height * width)
        exponent = zero
        for i in range(head):
            target[base + i] = zero
        for i in range(tail, plane):
            target[base + i] = zero
        for r in range(height):
            row = base + head + numba.uint64(r) * pitch
            for j in range(first):
                target[row + j] = zero
            for j in range(after, pitch):
                target[row + j] = zero
            for j in range(numba.uint64(width)):
                value = source[at + j]
                target[row + first + j] = value
                exponent = max(exponent, value & exponent_bits)
            at += numba.uint64(width)
        nonfinite[p] = exponent == exponent_bits


def pad_planes(x, pads):
    """Zero-pad the spatial axes of x (N, C, H, W) by pads ((top, bottom), (left, right)), all
    ≥ 0; likewise x (N, C, L) by ((left, right),) and x (N, C, D, H, W) by three pairs.
    Returns (the padded x, whether x is all finite)."""
    if x.ndim == 3:  # signals: planes of one row
        padded, finite = pad_planes(x[:, :, None, :], ((0, 0),) + tuple(pads))
        return padded[:, :, 0, :], finite
    (front, back), (top, bottom), (left, right) = ((0, 0),) * (5 - x.ndim) + tuple(pads)
    n, c, *spatial = x.shape
    d, h, w = [1] * (5 - x.ndim) + spatial
    padded_depth = d + front + back
    out = np.empty((n, c) + (padded_depth,) * (x.ndim - 4) + (h + top + bottom, w + left + right),
                   dtype=x.dtype)
    volumes = out.reshape(n * c, padded_depth, h + top + bottom, w + left + right)
    volumes[:, :front] = 0
    volumes[:, front + d:] = 0
    if x.dtype not in _EXPONENT_BITS:  # integers (always finite), complex, long double
        volumes[:, front:front + d] = 0
        volumes[:, front:front + d, top:top + h, left:left + w] = x.reshape(n * c, d, h, w)
        return out, x.dtype.kind not in "fc" or bool(np.isfinite(x).all())
    bits, mask = _EXPONENT_BITS[x.dtype]
    nonfinite = np.empty(n * c * d, dtype=np.bool_)
    _pad_planes(np.ascontiguousarray(x).reshape(n * c * d, h, w).view(bits),
                out.reshape(-1, h + top + bottom, w + left + right).view(bits), top, left,
                d, front, padded_depth, bits(mask), nonfinite)
    return out, not nonfinite.any()
