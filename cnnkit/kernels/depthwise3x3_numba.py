"""The forward pass of a 2-D depthwise layer with a 3 × 3 kernel (stride 1, dilation 1), the
commonest depthwise layer (MobileNet's), as one fused stencil per plane; and of a 3-D one with
a 3 × 3 × 3 kernel (``forward_volume``) as three such stencils per output plane. The row
correlation's module (``conv/rows.py``) runs its input gradients on them too (dy read with the
kernel flipped), and a 3 × 3 × 3 layer's weight gradient on ``weight_volume_sums``; where a
3-D plane is run flat rests on ``cnnkit.tuning``.

    y[n, k, r, q] = Σ_{a, b < 3} w[k, 0, a, b] · X(n, k // m, r + a − top, q + b − left) + bias[k]

X is x inside the plane and 0 in the padding (a term of the sum, 0 · w, as in PyTorch's
forward pass on the padded input, and in ``correlate_bands_numba``'s with ``padding_terms``).
Each task pads one input plane into a buffer of its own, in cache, and for its output
channels of that plane holds the nine taps in registers and computes each output row as one
expression of three input rows, which LLVM vectorises along the row: 9 multiply-adds and 9
loads per output vector, where the row correlation's 4-row tile computes 72 products for the
36 of 4 rows (its kernels' zero rows) and broadcasts each tap per tile. 2 threads, against
the row correlation, in one process: dw3x3 (32 images, 128 channels, 32 × 32) 1.11 against
1.65 ms on AVX-512, 1.16 against 2.75 on AVX2; vgg_small's first layer (128 images, 1 → 32
channels, 28 × 28) 0.79 against 0.94 and 0.94 against 1.21 (BENCHMARKS.md, "A 3 × 3
depthwise stencil").
"""
import numba
import numpy as np

from .. import tuning


@numba.njit(parallel=True, cache=True)
def forward(x, w, bias, top, left, out, splits, runs):
    """out (N, K, R, Q) from x (N, C, H, W), w (K, 1, 3, 3) and bias (K,), all float32,
    K = m·C: output channel k reads input channel k // m; the output's (0, 0) reads the
    plane at (−top, −left). The padding is zeros, ``top`` and ``left`` before the plane and
    R + 2 − top − H ≥ 0 and Q + 2 − left − W ≥ 0 after it. Each plane's m output channels
    are ``splits`` tasks (more tasks than planes for the threads when the planes are few);
    the tasks run in ``runs`` parallel runs, each padding its planes into one buffer, whose
    border stays zero (a buffer per plane cost more than a small plane's sums: 32 × 32
    planes 1.98 against 1.30 ms, BENCHMARKS.md)."""
    n_images, channels, height, width = x.shape
    outputs, rows, cols = out.shape[1], out.shape[2], out.shape[3]
    multiplier = outputs // channels
    tasks = n_images * channels * splits
    runs = max(1, min(tasks, runs))
    for run in numba.prange(runs):
        padded = np.zeros((rows + 2, cols + 2), np.float32)
        for task in range(run * tasks // runs, (run + 1) * tasks // runs):
            plane, part = task // splits, task % splits
            n, c = plane // channels, plane % channels
            padded[top:top + height, left:left + width] = x[n, c]
            first = c * multiplier
            for k in range(first + part * multiplier // splits,
                           first + (part + 1) * multiplier // splits):
                y, taps, b = out[n, k], w[k, 0], bias[k]
                w00, w01, w02 = taps[0, 0], taps[0, 1], taps[0, 2]
                w10, w11, w12 = taps[1, 0], taps[1, 1], taps[1, 2]
                w20, w21, w22 = taps[2, 0], taps[2, 1], taps[2, 2]
                for r in range(rows):
                    above, middle, below, row = padded[r], padded[r + 1], padded[r + 2], y[r]
                    for q in range(cols):
                        row[q] = ((w00 * above[q] + w01 * above[q + 1] + w02 * above[q + 2]) +
                                  (w10 * middle[q] + w11 * middle[q + 1] + w12 * middle[q + 2]) +
                                  (w20 * below[q] + w21 * below[q + 1] + w22 * below[q + 2])) + b


# A row's columns past its last whole vector of this many lanes run one by one: AVX2's
# vectors, and the second width LLVM's loops take on AVX-512 after their 16-lane vectors
REMAINDER_LANES = 8


def flat_planes(cols):
    """Whether ``forward_volume`` runs output rows of ``cols`` columns as one flat run per
    plane: where they leave ``depthwise_volume_flat_min_remainder_share`` of their columns or
    more past their last whole vector of ``REMAINDER_LANES`` (a plane's run pays 2 padding
    cells per row and a copy; rows short of whole vectors, their columns one by one).
    ``python -m cnnkit.bench.volume_stencil`` re-measures it."""
    return cols % REMAINDER_LANES >= tuning.value("depthwise_volume_flat_min_remainder_share") \
        * cols


def forward_volume(x, w, bias, front, top, left, out, splits, runs, flat):
    """``forward`` for volumes: out (N, K, P, R, Q) from x (N, C, D, H, W), w (K, 1, 3, 3, 3)
    and bias (K,), all float32, output channel k reading input channel k // m; the output's
    (0, 0, 0) reads the volume at (−front, −top, −left), with zeros around it as in
    ``forward``. Each task pads one input volume into its run's buffer; an output plane is
    the bias plus the 3 × 3 stencils of the three input planes its kernel's depths reach,
    added one depth at a time (9 multiply-adds and 9 loads per output vector each): row by
    row into the output (``_volume_by_rows``), or with ``flat`` (``flat_planes``: short
    rows) over the plane's R·(Q + 2) cells as one run (``_volume_flat``)."""
    kernel = _volume_flat if flat else _volume_by_rows
    kernel(x, w, bias, front, top, left, out, splits, runs)


@numba.njit(parallel=True, cache=True)
def _volume_by_rows(x, w, bias, front, top, left, out, splits, runs):
    n_images, channels, depth, height, width = x.shape
    outputs, planes, rows, cols = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    multiplier = outputs // channels
    tasks = n_images * channels * splits
    runs = max(1, min(tasks, runs))
    for run in numba.prange(runs):
        padded = np.zeros((planes + 2, rows + 2, cols + 2), np.float32)
        for task in range(run * tasks // runs, (run + 1) * tasks // runs):
            volume, part = task // splits, task % splits
            n, c = volume // channels, volume % channels
            padded[front:front + depth, top:top + height, left:left + width] = x[n, c]
            first = c * multiplier
            for k in range(first + part * multiplier // splits,
                           first + (part + 1) * multiplier // splits):
                taps, b = w[k, 0], bias[k]
                for p in range(planes):
                    for r in range(rows):
                        row = out[n, k, p, r]
                        for q in range(cols):
                            row[q] = b
                        for a in range(3):
                            _add_stencil_row(padded[p + a], r, taps[a], row)


@numba.njit(parallel=True, cache=True)
def _volume_flat(x, w, bias, front, top, left, out, splits, runs):
    """The planes of the padded volume are R + 3 rows of Q + 2 columns (the last row spare,
    read past the run's end); each output plane's R·(Q + 2) cells are one run into a buffer,
    whose rows are then copied out, their last 2 cells (which wrap into the next row)
    dropped."""
    n_images, channels = x.shape[0], x.shape[1]
    outputs, planes, rows, cols = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    multiplier = outputs // channels
    tasks = n_images * channels * splits
    runs = max(1, min(tasks, runs))
    pitch = cols + 2
    size = (rows + 3) * pitch
    for run in numba.prange(runs):
        padded = np.zeros((planes + 2) * size, np.float32)
        cells = np.empty(rows * pitch, np.float32)
        for task in range(run * tasks // runs, (run + 1) * tasks // runs):
            volume, part = task // splits, task % splits
            n, c = volume // channels, volume % channels
            _pad_flat(x[n, c], padded, front, top, left, size, pitch)
            first = c * multiplier
            for k in range(first + part * multiplier // splits,
                           first + (part + 1) * multiplier // splits):
                taps, b = w[k, 0], bias[k]
                for p in range(planes):
                    cells[:] = b
                    for a in range(3):
                        _add_stencil(padded[(p + a) * size:], pitch, taps[a], cells)
                    for r in range(rows):
                        row = out[n, k, p, r]
                        for q in range(cols):
                            row[q] = cells[r * pitch + q]


@numba.njit(cache=True, inline="always")
def _pad_flat(volume, padded, front, top, left, size, pitch):
    """Copy ``volume`` (D, H, W) into the flat ``padded`` planes (``size`` cells of rows
    ``pitch`` long each) from plane ``front``, row ``top``, column ``left``; returns the sum
    of v − v over its values: 0, or NaN where one is an inf or NaN."""
    check = np.float32(0.0)
    for d in range(volume.shape[0]):
        for h in range(volume.shape[1]):
            start, source = (front + d) * size + (top + h) * pitch + left, volume[d, h]
            for q in range(volume.shape[2]):
                padded[start + q] = source[q]
                check += source[q] - source[q]
    return check


@numba.njit(cache=True, inline="always")
def _add_stencil(source, pitch, taps, run):
    """run[i] += Σ taps[u, v] · source[i + u·pitch + v] for i < run.size: the 3 × 3 stencil of
    rows ``pitch`` apart."""
    w00, w01, w02 = taps[0, 0], taps[0, 1], taps[0, 2]
    w10, w11, w12 = taps[1, 0], taps[1, 1], taps[1, 2]
    w20, w21, w22 = taps[2, 0], taps[2, 1], taps[2, 2]
    middle, below = source[pitch:], source[2 * pitch:]
    for i in range(run.size):
        run[i] += ((w00 * source[i] + w01 * source[i + 1] + w02 * source[i + 2]) +
                   (w10 * middle[i] + w11 * middle[i + 1] + w12 * middle[i + 2]) +
                   (w20 * below[i] + w21 * below[i + 1] + w22 * below[i + 2]))


@numba.njit(cache=True, inline="always")
def _add_stencil_row(plane, r, taps, row):
    """row += the 3 × 3 stencil ``taps`` of ``plane``'s rows r to r + 2."""
    above, middle, below = plane[r], plane[r + 1], plane[r + 2]
    w00, w01, w02 = taps[0, 0], taps[0, 1], taps[0, 2]
    w10, w11, w12 = taps[1, 0], taps[1, 1], taps[1, 2]
    w20, w21, w22 = taps[2, 0], taps[2, 1], taps[2, 2]
    for q in range(row.size):
        row[q] += ((w00 * above[q] + w01 * above[q + 1] + w02 * above[q + 2]) +
                   (w10 * middle[q] + w11 * middle[q + 1] + w12 * middle[q + 2]) +
                   (w20 * below[q] + w21 * below[q + 1] + w22 * below[q + 2]))


# The weight gradient's sums run over a plane at a time in float32 vectors, then in float64:
# LLVM vectorises a loop's float sums only where it may reassociate them. These flags only:
# "nnan", "ninf" or "nsz" (or fastmath=True) would let LLVM fold _pad_flat's v − v to 0 and
# the check of x for inf and NaN with it.
_SUMS = dict(parallel=True, cache=True, fastmath={"reassoc", "contract"})


@numba.njit(**_SUMS)
def weight_volume_sums(x, dy, front, top, left, sums, chunks):
    """The weight gradient of ``forward_volume``'s layer, in parts: sums[k·chunks + j, t] =
    Σ over images n of chunk j (of ``chunks`` even shares) of Σ_cells dy[n, k, cell] ·
    X(n, k // m, cell + tap t) (t = 9·a + 3·u + v for the kernel's depth, row and column),
    float64; the caller adds the chunks. Returns whether x was finite.

    Each task pads its images' input volume as ``_volume_flat`` does and dy's planes into
    runs of the same pitch, their 2 extra cells per row zero; per output plane and kernel
    depth, nine sums over the run (9 multiply-adds per 9 loads and one of dy). The extra
    cells multiply x's own values (0 · x): exact for finite x, which is why x is checked as
    it is padded (an inf or NaN there would be NaN where the sums have none), and the caller
    raises ``NotFinite`` when it is not."""
    n_images, channels = x.shape[0], x.shape[1]
    outputs, planes, rows, cols = dy.shape[1], dy.shape[2], dy.shape[3], dy.shape[4]
    multiplier = outputs // channels
    pitch = cols + 2
    size = (rows + 3) * pitch
    span = rows * pitch
    checks = np.zeros(outputs * chunks, np.float32)
    for task in numba.prange(outputs * chunks):
        k, part = task // chunks, task % chunks
        c = k // multiplier
        padded = np.zeros((planes + 2) * size, np.float32)
        grads = np.zeros(planes * span, np.float32)
        total = sums[task]
        total[:] = 0.0
        check = np.float32(0.0)
        for n in range(part * n_images // chunks, (part + 1) * n_images // chunks):
            check += _pad_flat(x[n, c], padded, front, top, left, size, pitch)
            for p in range(planes):
                for r in range(rows):
                    start, source = p * span + r * pitch, dy[n, k, p, r]
                    for q in range(cols):
                        grads[start + q] = source[q]
            for p in range(planes):
                plane = grads[p * span:(p + 1) * span]
                for a in range(3):
                    _add_stencil_sums(padded[(p + a) * size:], pitch, plane, total[9 * a:])
        checks[task] = check
    return np.all(checks == 0)


@numba.njit(cache=True, inline="always", fastmath={"reassoc", "contract"})
def _add_stencil_sums(source, pitch, run, total):
    """total[3·u + v] += Σ_i run[i] · source[i + u·pitch + v] for u, v < 3."""
    middle, below = source[pitch:], source[2 * pitch:]
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = t8 = np.float32(0.0)
    for i in range(run.size):
        g = run[i]
        t0 += g * source[i]
        t1 += g * source[i + 1]
        t2 += g * source[i + 2]
        t3 += g * middle[i]
        t4 += g * middle[i + 1]
        t5 += g * middle[i + 2]
        t6 += g * below[i]
        t7 += g * below[i + 1]
        t8 += g * below[i + 2]
    total[0] += t0
    total[1] += t1
    total[2] += t2
    total[3] += t3
    total[4] += t4
    total[5] += t5
    total[6] += t6
    total[7] += t7
    total[8] += t8
