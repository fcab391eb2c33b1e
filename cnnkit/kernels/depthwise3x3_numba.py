"""The forward pass of a 2-D depthwise layer with a 3 × 3 kernel (stride 1, dilation 1), the
commonest depthwise layer (MobileNet's), as one fused stencil per plane.

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
