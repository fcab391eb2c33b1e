"""Timing helpers: interleaved best-of runs, thread limits, the machine's sgemm ceiling."""
import time

import numpy as np


def best_of_interleaved(functions, repeats=5, warmup=1, budget_s=20.0, back_to_back=1):
    """Best wall time (s) of each function, run round-robin after ``warmup`` rounds.

    Round-robin (A, B, A, B, ...) rather than A×n then B×n, so load changes affect both sides.
    With ``back_to_back`` = 2, each turn times two calls in a row (A, A, B, B, ...), so that
    each function also has a call that does not follow another's: on a virtual machine the
    first call after a long one of another library (PyTorch's 2.4 s 1-D convolution) or
    after a pause can run several times slower, whatever it is (NumPy's own rfft of 2^20
    values: 202 against 31 ms after 2 s idle). Stops early once ``budget_s`` is spent (but
    after at least two timed rounds).
    """
    for _ in range(warmup):
        for f in functions:
            f()
    best = [float("inf")] * len(functions)
    start = time.perf_counter()
    for r in range(repeats):
        for i, f in enumerate(functions):
            for _ in range(back_to_back):
                t = time.perf_counter()
                f()
                best[i] = min(best[i], time.perf_counter() - t)
        if r >= 1 and time.perf_counter() - start > budget_s:
            break
    return best


def limit_threads(threads):
    """Give PyTorch the thread count NumPy's BLAS was started with (set via the environment)."""
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass


def sgemm_rate(n=2048, repeats=3):
    """NumPy's float32 matrix-product rate (GFLOP/s): the practical ceiling for a GEMM layer."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    (best,) = best_of_interleaved([lambda: a @ b], repeats=repeats)
    return 2 * n ** 3 / best / 1e9

