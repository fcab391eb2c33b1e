"""Compiled depthwise convolution (Numba), 2-D (and 1-D as one row), on the input's stride
phases: every tap is one long, unit-stride vector loop, whatever the stride, dilation, kernel
or map size.

A depthwise plane is small and its kernel tiny, so a direct loop is memory traffic and loop
overhead more than arithmetic. A strided layer reads every s-th input column, a gather that
does not vectorise, and a small map's rows (7 to 28 columns) are too short for a vector loop
of 16 lanes. Both go away on the stride phases of the zero-padded plane X,

    P[p, q][u, v] = X(u·s + p, v·s' + q)        p < s, q < s': s·s' planes of ~1/(s·s') each

Tap (a, b) of output (i, j) reads X(i·s + a·d, j·s' + b·d') = P[a·d mod s, b·d' mod s'][i + a·d
div s, j + b·d' div s']: the same phase for every output, shifted by a constant. With one row
pitch V for the phases and the output (V = the output's width plus the largest column shift),
output f = i·V + j of the flat grid reads the phase's flat index f + shift, so a tap is one
loop over the whole map,

    y_grid[f] += w[k, a, b] · P[phase(a, b)][f + shift(a, b)]        f < rows · V

and each row's V − width extra columns are computed and dropped (the shifted products of
``conv.shift``). Each task builds the phases of one input plane in a buffer of its own, in
cache: no padded copy of the batch is made. For stride 1 the phase is the padded plane itself.

Each pass is exact where the literal sums are (docs/ieee.md):

    forward  y[n, k] = Σ_taps w[k, tap] · P(x[n, k // m]) + b[k]     the padding's zeros are terms
    input    dP[c][phase(tap)][f + shift] += w[k, tap] · dy_grid[n, k][f]   for the k of c, then
             dx[n, c] = dP's cells inside the padding (the full correlation of dy with the
             flipped kernel, docs/concepts.md §13). dy_grid's extra columns are zeros, whose
             terms 0 · w land on real cells: an output channel whose weights are not all
             finite adds its real outputs' terms alone instead.
    weight   dw[k, tap] = Σ_n Σ_f dy_grid[n, k][f] · P(x[n, k // m])[phase(tap)][f + shift],
             summed elementwise into one accumulator per tap, of whole grid rows; only its
             real columns are added up at the end, so the extra columns' products (whatever
             x holds there) never reach dw.

2 threads, in one process, AVX-512 and AVX2, against the kernels before (one task per plane
reading every s-th column of a padded copy; strided input gradients on ``conv.blocked``):
16 images of 96 channels, 56 × 56, 3 × 3 at stride 2, forward 1.5–1.7 against 4.3–4.9 ms,
input gradient 1.9–2.1 against 6.6–8.4, weight gradient 2.2–2.4 against 3.3; 384 channels of
14 × 14, weight gradient 1.3 against 2.4 (BENCHMARKS.md, "Depthwise layers on stride phases").
"""
import numba
import numpy as np

from .. import tuning
from .task_call import Loop

_JIT = dict(parallel=True, cache=True, fastmath={"contract"})


@numba.njit(cache=True)
def _layout(kh, kw, sh, sw, dh, dw, oh, ow):
    """(V, U, phase, shift): the row pitch V, the phases' row count U per image, and per tap
    t = a·kw + b its phase index p·sw + q and its flat shift (a·dh div sh)·V + (b·dw div sw)."""
    v_extra, u_extra = ((kw - 1) * dw) // sw, ((kh - 1) * dh) // sh
    pitch, rows = ow + v_extra, oh + u_extra
    phase = np.empty(kh * kw, np.int64)
    shift = np.empty(kh * kw, np.int64)
    for a in range(kh):
        for b in range(kw):
            phase[a * kw + b] = ((a * dh) % sh) * sw + (b * dw) % sw
            shift[a * kw + b] = ((a * dh) // sh) * pitch + (b * dw) // sw
    return pitch, rows, phase, shift


@numba.njit(cache=True)
def _columns(width, left, sw, pitch):
    """Per phase column q < sw: (first, v0, count), the first input column that falls in
    phase column q (padded by ``left``), its cell v0 there, and how many of the row's columns
    do (up to the pitch)."""
    columns = np.empty((sw, 3), np.int64)
    for q in range(sw):
        first = (q - left) % sw
        v0 = (first + left) // sw
        columns[q, 0], columns[q, 1] = first, v0
        columns[q, 2] = max(0, min((width - first + sw - 1) // sw, pitch - v0))
    return columns


@numba.njit(cache=True)
def _fill_phases(image, top, left, sh, sw, pitch, rows, phases):
    """phases (sh·sw, ≥ rows·pitch) = the stride phases of ``image`` (H, W) zero-padded by
    ``top`` and ``left`` (and zeros past it); cells no output reads are left out. Element by
    element, with no division per row: a slice or a division per row costs more than a small
    map's row."""
    height, width = image.shape
    for p in range(sh * sw):
        for f in range(phases.shape[1]):  # the spare row too: the extra columns read into it
            phases[p, numba.uint64(f)] = 0
    columns = _columns(width, left, sw, pitch)
    u, p = divmod(top, sh)
    even = left % sw  # the phase column of the input's column 0
    for y in range(height):
        if u >= rows:
            break
        done = 0  # columns of each phase column's run copied by the pair loop
        if sw == 2:  # both phase columns in one loop: 2.5× the copy rate of two loops
            odd, start = 1 - even, u * pitch
            s0, s1 = start + columns[even, 1], start + columns[odd, 1]
            t0, t1 = p * 2 + even, p * 2 + odd
            done = min(columns[even, 2], columns[odd, 2])
            for j in range(done):
                phases[t0, numba.uint64(s0 + j)] = image[y, numba.uint64(2 * j)]
                phases[t1, numba.uint64(s1 + j)] = image[y, numba.uint64(2 * j + 1)]
        for q in range(sw):
            first, count = columns[q, 0], columns[q, 2]
            start, target = u * pitch + columns[q, 1], p * sw + q
            if sw == 1:  # a constant stride, which LLVM vectorises
                for j in range(count):
                    phases[target, numba.uint64(start + j)] = image[y, numba.uint64(first + j)]
            else:
                for j in range(done, count):
                    phases[target, numba.uint64(start + j)] = \
                        image[y, numba.uint64(first + j * sw)]
        p += 1
        if p == sh:
            u, p = u + 1, 0


@numba.njit(cache=True)
def _gather_phases(phases, top, left, sh, sw, pitch, rows, plane):
    """plane (H, W) = the cells of ``phases`` (``_fill_phases``' layout) that lie inside the
    padding ``top``, ``left``; 0 where no output reached."""
    height, width = plane.shape
    columns = _columns(width, left, sw, pitch)
    u, p = divmod(top, sh)
    even = left % sw
    for y in range(height):
        for xx in range(width):
            plane[y, xx] = 0
        if u < rows:
            done = 0
            if sw == 2:  # as in ``_fill_phases``
                odd, start = 1 - even, u * pitch
                s0, s1 = start + columns[even, 1], start + columns[odd, 1]
                t0, t1 = p * 2 + even, p * 2 + odd
                done = min(columns[even, 2], columns[odd, 2])
                for j in range(done):
                    plane[y, numba.uint64(2 * j)] = phases[t0, numba.uint64(s0 + j)]
                    plane[y, numba.uint64(2 * j + 1)] = phases[t1, numba.uint64(s1 + j)]
            for q in range(sw):
                first, count = columns[q, 0], columns[q, 2]
                start, source = u * pitch + columns[q, 1], p * sw + q
                if sw == 1:
                    for j in range(count):
                        plane[y, numba.uint64(first + j)] = \
                            phases[source, numba.uint64(start + j)]
                else:
                    for j in range(done, count):
                        plane[y, numba.uint64(first + j * sw)] = \
                            phases[source, numba.uint64(start + j)]
        p += 1
        if p == sh:
            u, p = u + 1, 0


@numba.njit(cache=True)
def _to_grid(plane, pitch, grid):
    """grid[i·V + j] = plane[i, j] (V = ``pitch``): a map on the grid's rows."""
    for i in range(plane.shape[0]):
        for j in range(plane.shape[1]):
            grid[numba.uint64(i * pitch + j)] = plane[i, j]


@numba.njit(cache=True)
def _taps_into(grid, length, weights, phases, phase, shift):
    """grid[f] += Σ_t weights[t] · phases[phase[t], f + shift[t]] for f < length, three taps
    per pass over the grid (fewer loads and stores of it)."""
    taps, t = weights.size, 0
    while t + 3 <= taps:
        w0, w1, w2 = weights[t], weights[t + 1], weights[t + 2]
        p0, p1, p2 = phase[t], phase[t + 1], phase[t + 2]
        o0, o1, o2 = shift[t], shift[t + 1], shift[t + 2]
        for f in range(length):
            grid[numba.uint64(f)] += (w0 * phases[p0, numba.uint64(o0 + f)] +
                                      w1 * phases[p1, numba.uint64(o1 + f)] +
                                      w2 * phases[p2, numba.uint64(o2 + f)])
        t += 3
    while t < taps:
        w0, p0, o0 = weights[t], phase[t], shift[t]
        for f in range(length):
            grid[numba.uint64(f)] += w0 * phases[p0, numba.uint64(o0 + f)]
        t += 1


@numba.njit(**_JIT)
def _forward(x, w, bias, top, left, sh, sw, dh, dw, out, runs):
    """out (N, K, oh, ow) from x (N, C, H, W) zero-padded by ``top``, ``left`` (and as far as
    the output reaches past it), w (K, 1, kh, kw), K = m·C, plus bias (K,).
    A task takes one input plane, for its m output channels; the tasks run in ``runs``
    parallel runs, each reusing its buffers."""
    n_images, channels = x.shape[0], x.shape[1]
    outputs, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    multiplier = outputs // channels
    pitch, rows, phase, shift = _layout(kh, kw, sh, sw, dh, dw, oh, ow)
    size, tasks = oh * pitch, n_images * channels
    runs = max(1, min(tasks, runs))
    for run in numba.prange(runs):
        phases = np.empty((sh * sw, (rows + 1) * pitch), x.dtype)
        grid = np.empty(size, x.dtype)
        for task in range(run * tasks // runs, (run + 1) * tasks // runs):
            n, c = task // channels, task % channels
            _fill_phases(x[n, c], top, left, sh, sw, pitch, rows, phases)
            for k in range(c * multiplier, (c + 1) * multiplier):
                for f in range(size):
                    grid[numba.uint64(f)] = 0
                _taps_into(grid, size, w[k, 0].reshape(-1), phases, phase, shift)
                b = bias[k]
                for i in range(oh):
                    for j in range(ow):
                        out[n, k, i, j] = grid[numba.uint64(i * pitch + j)] + b


@numba.njit(**_JIT)
def _backward_input(dy, w, top, left, sh, sw, dh, dw, dx, runs):
    """dx (N, C, H, W), the gradient of the input that ``_forward`` zero-pads by ``top`` and
    ``left``, from dy (N, K, oh, ow) and w (K, 1, kh, kw). Tasks as ``_forward``'s; an output
    channel whose weights are not all finite adds its real outputs' terms alone (the module
    docstring)."""
    n_images, channels = dx.shape[0], dx.shape[1]
    outputs, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    oh, ow = dy.shape[2], dy.shape[3]
    multiplier = outputs // channels
    pitch, rows, phase, shift = _layout(kh, kw, sh, sw, dh, dw, oh, ow)
    size, taps, tasks = oh * pitch, kh * kw, n_images * channels
    runs = max(1, min(tasks, runs))
    for run in numba.prange(runs):
        phases = np.empty((sh * sw, (rows + 1) * pitch), dx.dtype)
        grid = np.zeros(size, dx.dtype)  # its extra columns stay zero
        for task in range(run * tasks // runs, (run + 1) * tasks // runs):
            n, c = task // channels, task % channels
            phases[:] = 0
            for k in range(c * multiplier, (c + 1) * multiplier):
                weights = w[k, 0].reshape(-1)
                if np.isfinite(weights).all():
                    _to_grid(dy[n, k], pitch, grid)
                    for t in range(taps):
                        w0, p0, o0 = weights[t], phase[t], shift[t]
                        for f in range(size):
                            phases[p0, numba.uint64(o0 + f)] += w0 * grid[numba.uint64(f)]
                else:  # the real outputs' terms alone: 0 · inf would be NaN
                    for t in range(taps):
                        w0, p0, o0 = weights[t], phase[t], shift[t]
                        for i in range(oh):
                            for j in range(ow):
                                phases[p0, numba.uint64(o0 + i * pitch + j)] += \
                                    w0 * dy[n, k, i, j]
            _gather_phases(phases, top, left, sh, sw, pitch, rows, dx[n, c])


@numba.njit(cache=True, fastmath={"contract"})
def _backward_weight_channel(k, x, dy, top, left, sh, sw, dh, dw, dwt, db, band):
    """Task k of ``_backward_weight``, one parallel loop over the output channels:
    dwt (K, 1, kh, kw): dw[k, a, b] = Σ_n Σ_{i, j} dy[n, k, i, j] · X(n, k // m, i·sh + a·dh,
    j·sw + b·dw), X the input x (N, C, H, W) zero-padded by ``top`` and ``left``; with ``db``
    of size K also db[k] = Σ dy[:, k] in float64 (the bias gradient). One task per output
    channel, over every image.

    The products are summed elementwise into one accumulator per tap, a band of whole grid
    rows about ``band`` floats long (``depthwise_weight_band``), every band of every image
    into the same one, and only its real columns are added up at the end."""
    n_images, channels = x.shape[0], x.shape[1]
    outputs, kh, kw = dwt.shape[0], dwt.shape[2], dwt.shape[3]
    oh, ow = dy.shape[2], dy.shape[3]
    multiplier = outputs // channels
    pitch, rows, phase, shift = _layout(kh, kw, sh, sw, dh, dw, oh, ow)
    taps = kh * kw
    band_rows = max(1, min(oh, band // pitch))
    with_bias = db.size > 0
    c = k // multiplier
    phases = np.empty((sh * sw, (rows + 1) * pitch), x.dtype)
    grid = np.zeros(oh * pitch, x.dtype)
    acc = np.zeros((taps, band_rows * pitch), x.dtype)
    sums = np.zeros(ow, np.float64)
    for n in range(n_images):
        _fill_phases(x[n, c], top, left, sh, sw, pitch, rows, phases)
        _to_grid(dy[n, k], pitch, grid)
        if with_bias:
            for i in range(oh):
                for j in range(ow):
                    sums[j] += dy[n, k, i, j]
        for row in range(0, oh, band_rows):
            start, length = row * pitch, min(band_rows, oh - row) * pitch
            for t in range(taps):
                p0, o0 = phase[t], start + shift[t]
                for f in range(length):
                    acc[t, numba.uint64(f)] += grid[numba.uint64(start + f)] * \
                        phases[p0, numba.uint64(o0 + f)]
    # the products at the grid's extra columns (whatever x holds there) are left out
    line = np.empty(ow, np.float64)
    for t in range(taps):
        line[:] = 0  # the rows added elementwise first (vectorised), then the one row
        for i in range(band_rows):
            for j in range(ow):
                line[j] += acc[t, numba.uint64(i * pitch + j)]
        dwt[k, 0, t // kw, t % kw] = line.sum()
    if with_bias:
        db[k] = sums.sum()


_backward_weight = Loop(_backward_weight_channel, lambda x, dy, *rest: dy.shape[1])


def _planes(array):
    """A 1-D layer's (N, C, W) as (N, C, 1, W); a 2-D layer's array as it is."""
    return array[:, :, None] if array.ndim == 3 else array


def _as_2d(values, fill):
    """A 1-D layer's per-axis values with the added axis's first."""
    return (fill,) + tuple(values) if len(values) == 1 else tuple(values)


def _runs():
    return tuning.value("depthwise_runs_per_thread") * numba.get_num_threads()


def forward_unpadded(x, w, pads, stride, dilation, out, bias=None):
    """x (N, C, *spatial), 1-D or 2-D, zero-padded by ``pads`` ((lo, hi) per dim), w (C·m, 1,
    *kernel) -> y (N, C·m, *out), plus ``bias`` (C·m,) when given."""
    dtype = np.result_type(x, w)
    (top, _), (left, _) = _as_2d(pads, (0, 0))
    y = np.empty((x.shape[0], w.shape[0]) + tuple(out), dtype)
    _forward(np.ascontiguousarray(_planes(x), dtype), np.ascontiguousarray(_planes(w), dtype),
             np.zeros(w.shape[0], dtype) if bias is None else
             np.ascontiguousarray(bias, dtype), top, left, *_as_2d(stride, 1),
             *_as_2d(dilation, 1), _planes(y), _runs())
    return y


def backward_input_unpadded(dy, w, channels, spatial, pads, stride, dilation):
    """dL/dx of ``channels`` input channels inside the zero padding ``pads`` of an input
    whose padded shape is ``spatial``: (N, C, *(spatial − lo − hi))."""
    dtype = np.result_type(dy, w)
    inner = tuple(s - lo - hi for s, (lo, hi) in zip(spatial, pads))
    (top, _), (left, _) = _as_2d(pads, (0, 0))
    dx = np.empty((dy.shape[0], channels) + inner, dtype)
    _backward_input(np.ascontiguousarray(_planes(dy), dtype),
                    np.ascontiguousarray(_planes(w), dtype), top, left, *_as_2d(stride, 1),
                    *_as_2d(dilation, 1), _planes(dx), _runs())
    return dx


def backward_weight_unpadded(x, dy, kernel, pads, stride, dilation, with_bias=False):
    """dL/dw (and, with ``with_bias``, dL/db) from the unpadded x (N, C, *spatial) and its zero
    padding ``pads``: no padded copy of the batch is made."""
    dtype = np.result_type(x, dy)
    (top, _), (left, _) = _as_2d(pads, (0, 0))
    dw = np.empty((dy.shape[1], 1) + tuple(kernel), dtype)
    db = np.zeros(dy.shape[1] if with_bias else 0, np.float64)
    _backward_weight(np.ascontiguousarray(_planes(x), dtype),
                     np.ascontiguousarray(_planes(dy), dtype), top, left, *_as_2d(stride, 1),
                     *_as_2d(dilation, 1), _planes(dw), db,
                     tuning.value("depthwise_weight_band"))
    return dw, (db.astype(dtype) if with_bias else None)


def forward(xp, w, stride, dilation, out):
    """xp (N, C, *spatial) padded, w (C·m, 1, *kernel) -> y (N, C·m, *out)."""
    return forward_unpadded(xp, w, ((0, 0),) * (xp.ndim - 2), stride, dilation, out)


def backward_input(dy, w, spatial, stride, dilation, groups):
    """dL/dx of the whole padded input (N, C, *spatial), C = ``groups``."""
    return backward_input_unpadded(dy, w, groups, spatial, ((0, 0),) * len(spatial), stride,
                                   dilation)


def backward_weight(xp, dy, kernel, stride, dilation):
    return backward_weight_unpadded(xp, dy, kernel, ((0, 0),) * len(kernel), stride,
                                    dilation)[0]
