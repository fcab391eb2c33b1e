"""Reflect, replicate and circular padding of the last three axes (Numba), both directions.

NumPy's ``pad`` makes these modes one thread's passes, slice by slice: 2.4 ms to reflect-pad a
32 × 64 × 32² batch by one, against PyTorch's 0.5, and the backward pass's folds 5 ms more
(BENCHMARKS.md, "Reflect, replicate and circular padding compiled"). Here the array is seen
as (P, D, H, W), its last three axes padded (``padding._source_index`` gives the input
position each output position reads along one axis):

    forward   out[p, d, r, j] = x[p, depth[d], row[r], column[j]]

the output rows in parallel (shares of each (p, d)'s rows: ``_chunks``): a row's interior
copied as one run, its few border cells from the column table. The backward pass sums each
input cell's gradient over the outputs that read it, in the outputs' order (depth, row,
column: the order PyTorch's CPU kernels add them in). Each row of dL/dx belongs to one task,
which visits the output rows reading it through an inverse table (``_readers``), so the rows
run in parallel with no two tasks adding into one cell, however few images there are.
"""
import functools

import numba
import numpy as np

_JIT = dict(parallel=True, cache=True)


@numba.njit(**_JIT)
def _pad_rows(x, out, depth_source, row_source, column_source, first, last, start, chunks):
    """out (P, Do, Ho, Wo) from x (P, D, H, W); output columns first:last read x's columns
    start:start + last − first, the others ``column_source``. A task: one of ``chunks``
    shares of one (p, d)'s rows. Flat unsigned indices, no view per row: with a view and a
    slice per row, a 16 × 64 × 14² batch padded by one took 0.083–0.088 ms, against 0.050 now
    (BENCHMARKS.md, "Reflect, replicate and circular padding on flat unsigned indices")."""
    planes, depth_out, height_out, width_out = out.shape
    depth, height, width = x.shape[1], x.shape[2], x.shape[3]
    source, target = x.reshape(-1), out.reshape(-1)
    u = numba.uint64
    begin, end, run, at = u(first), u(last), u(last - first), u(start)
    plane_in, plane_out, row_out = u(height * width), u(height_out * width_out), u(width_out)
    for task in numba.prange(planes * depth_out * chunks):
        volume, chunk = divmod(np.int64(task), chunks)  # prange's index is unsigned
        p, d = divmod(volume, depth_out)
        source_plane = u(p * depth + depth_source[d]) * plane_in
        target_plane = u(volume) * plane_out
        for r in range(chunk * height_out // chunks, (chunk + 1) * height_out // chunks):
            src = source_plane + u(row_source[r]) * u(width)
            dst = target_plane + u(r) * row_out
            for j in range(begin):
                target[dst + j] = source[src + u(column_source[j])]
            for j in range(run):
                target[dst + begin + j] = source[src + at + j]
            for j in range(end, row_out):
                target[dst + j] = source[src + u(column_source[j])]


@numba.njit(**_JIT)
def _fold_rows(g, dx, depth_starts, depth_readers, row_starts, row_readers, column_source,
               first, last, start, chunks):
    """dx (P, D, H, W) = the sums of g (P, Do, Ho, Wo) onto the cells each output read. Input
    row i of an axis is read by output rows ``readers[starts[i]:starts[i + 1]]``, in order. A
    task: one of ``chunks`` shares of one (p, k)'s rows of dx."""
    planes, depth, height, width = dx.shape
    for task in numba.prange(planes * depth * chunks):
        volume, chunk = divmod(np.int64(task), chunks)
        p, k = divmod(volume, depth)
        for i in range(chunk * height // chunks, (chunk + 1) * height // chunks):
            dst = dx[p, k, i]
            dst[:] = 0
            inner = dst[start:start + last - first]
            for a in range(depth_starts[k], depth_starts[k + 1]):
                for b in range(row_starts[i], row_starts[i + 1]):
                    src = g[p, depth_readers[a], row_readers[b]]
                    for j in range(first):
                        dst[column_source[j]] += src[j]
                    inner += src[first:last]
                    for j in range(last, src.size):
                        dst[column_source[j]] += src[j]


@functools.lru_cache(maxsize=256)
def _tables(shape, widths, mode):
    """The padded (P, D, H, W) view's tables, kept per call shape (read-only): per axis D, H
    and W the source of each output position, and for D and H the readers of each input
    position (``_readers``); the columns' interior ``(first, last, start)``."""
    from .padding import _interior, _source_index  # padding imports this module
    sources = [_frozen(_source_index(n, lo, hi, mode).astype(np.int64))
               for n, (lo, hi) in zip(shape[1:], widths)]
    first, last, start = _interior(shape[3], *widths[2])
    readers = [_readers(source, n) for source, n in zip(sources[:2], shape[1:3])]
    return sources, readers, (first, last, start)


def _readers(source, n):
    """(starts, readers): the output positions reading input position i are
    readers[starts[i]:starts[i + 1]], in increasing order."""
    readers = _frozen(np.argsort(source, kind="stable"))
    starts = _frozen(np.concatenate(([0], np.cumsum(np.bincount(source, minlength=n)))))
    return starts, readers


def _frozen(table):
    table.flags.writeable = False
    return table


def applies(shape, widths):
    """Whether the compiled passes take this padding: only the last three axes padded, and
    some output at all."""
    leading = len(shape) - 3
    return all(tuple(pair) == (0, 0) for pair in widths[:max(leading, 0)]) and \
        all(n + lo + hi > 0 for n, (lo, hi) in zip(shape, widths)) and 0 not in shape


def _volume(shape, widths):
    """(the (P, D, H, W) shape, the three trailing axes' widths) of an array of ``shape``."""
    shape, widths = tuple(shape), tuple((int(lo), int(hi)) for lo, hi in widths)
    lead = (1,) * max(3 - len(shape), 0)
    shape, widths = lead + shape, ((0, 0),) * len(lead) + widths
    return (int(np.prod(shape[:-3], dtype=np.int64)),) + shape[-3:], widths[-3:]


def _chunks(volumes, rows):
    """Shares of each volume's rows: enough tasks for every thread four times over, when the
    volumes alone are too few (one 512² image of 3 channels)."""
    return max(1, min(rows, -(-4 * numba.get_num_threads() // volumes)))


def pad(x, widths, mode):
    """``padding.pad_array(x, widths, mode)`` for a float array ``applies`` accepts."""
    volume, trailing = _volume(x.shape, widths)
    (depth, rows, columns), _, interior = _tables(volume, trailing, mode)
    out_shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, widths))
    out = np.empty(out_shape, x.dtype)
    _pad_rows(np.ascontiguousarray(x).reshape(volume), out.reshape(
        volume[:1] + (depth.size, rows.size, columns.size)), depth, rows, columns, *interior,
        _chunks(volume[0] * depth.size, rows.size))
    return out


def pad_backward(g, in_shape, widths, mode):
    """``padding.pad_array_backward`` for a padding ``applies`` accepts."""
    volume, trailing = _volume(in_shape, widths)
    (depth, rows, columns), readers, interior = _tables(volume, trailing, mode)
    dx = np.empty(tuple(in_shape), g.dtype)
    _fold_rows(np.ascontiguousarray(g).reshape(volume[:1] + (depth.size, rows.size,
                                                             columns.size)),
               dx.reshape(volume), *readers[0], *readers[1], columns, *interior,
               _chunks(volume[0] * volume[1], volume[2]))
    return dx
