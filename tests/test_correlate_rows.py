"""The compiled direct correlation (``kernels.correlate_rows``) against literal loops, float64.

    out[q] = Σ_v k[v] · x[start + q + v]      (x read as zero outside its bounds)

Random 1-, 2- and 3-D shapes with windows that start before and end past the input, so every
tile (MR = 1 or 4 rows, 16, 32 or 64 lanes) meets ragged rows and columns, zero padding and
kernels larger than the input; plus the signal functions that route float32 through it.
"""
import itertools

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given
from hypothesis import strategies as st

import cnnkit.signal as cs
from cnnkit.kernels import correlate_rows, correlate_rows_numba


def reference(x, k, start, sizes):
    """The formula, one output at a time, in float64."""
    x, k = x.astype(np.float64), k.astype(np.float64)
    out = np.zeros(sizes)
    for q in itertools.product(*(range(s) for s in sizes)):
        total = 0.0
        for v in itertools.product(*(range(n) for n in k.shape)):
            i = tuple(s + a + b for s, a, b in zip(start, q, v))
            if all(0 <= j < n for j, n in zip(i, x.shape)):
                total += k[v] * x[i]
        out[q] = total
    return out


@st.composite
def windows(draw):
    dims = draw(st.integers(1, 3))
    longest = {1: 80, 2: 40, 3: 9}[dims]
    x_shape = tuple(draw(st.lists(st.integers(1, longest), min_size=dims, max_size=dims)))
    k_shape = tuple(draw(st.lists(st.integers(1, 6), min_size=dims, max_size=dims)))
    start = tuple(draw(st.integers(-k - 1, n)) for n, k in zip(x_shape, k_shape))
    sizes = tuple(draw(st.integers(0, n + 2)) for n in x_shape)
    return x_shape, k_shape, start, sizes


@given(windows(), st.integers(0, 2**32 - 1))
def test_matches_the_formula(window, seed):
    x_shape, k_shape, start, sizes = window
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    k = rng.standard_normal(k_shape, dtype=np.float32)
    out = correlate_rows.correlate(x, k, start, sizes)
    assert out.shape == sizes and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, reference(x, k, start, sizes), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_rows,out_cols", [(1, 10), (1, 20), (1, 70), (3, 10), (3, 20),
                                                  (3, 70)])
def test_every_tile_against_a_moved_tap(kernel_rows, out_cols):
    """A kernel with one 1 at (a, b) moves the input by (a, b): each output lands where the
    formula says, so a tile row or column written in the wrong place cannot pass."""
    rng = np.random.default_rng(kernel_rows * 100 + out_cols)
    x = rng.standard_normal((11, out_cols + 4), dtype=np.float32)
    rows, vectors = correlate_rows.tile(kernel_rows, out_cols)
    assert (rows, vectors) in correlate_rows_numba.TILES
    for a, b in [(0, 0), (kernel_rows - 1, 2), (kernel_rows // 2, 4)]:
        k = np.zeros((kernel_rows, 5), np.float32)
        k[a, b] = 1
        out = correlate_rows.correlate(x, k, (0, 0), (11 - kernel_rows + 1, out_cols))
        np.testing.assert_array_equal(out, x[a:a + 11 - kernel_rows + 1, b:b + out_cols])


def test_every_plane_gets_its_outer_taps():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 7, 33), dtype=np.float32)
    k = rng.standard_normal((3, 2, 4), dtype=np.float32)
    out = correlate_rows.correlate(x, k, (-1, 0, -2), (6, 6, 33))
    np.testing.assert_allclose(out, reference(x, k, (-1, 0, -2), (6, 6, 33)), atol=1e-5)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("shapes", [((64, 70), (5, 7)), ((7, 5), (64, 70)), ((9, 12, 40), (3, 5, 4)),
                                    ((300,), (17,)), ((3, 100), (100, 3))])
def test_signal_float32_goes_compiled_and_matches_scipy(mode, shapes, rng, monkeypatch):
    if mode == "valid" and not (all(m >= n for m, n in zip(*shapes))
                                or all(m <= n for m, n in zip(*shapes))):
        return  # no valid output: both inputs are larger on some axis
    a = rng.standard_normal(shapes[0]).astype(np.float32)
    b = rng.standard_normal(shapes[1]).astype(np.float32)
    calls = []
    compiled = correlate_rows.correlate
    monkeypatch.setattr(correlate_rows, "correlate", lambda *args: calls.append(1) or compiled(*args))
    for ours, theirs in [(cs.convolve, ss.convolve), (cs.correlate, ss.correlate)]:
        got = ours(a, b, mode, method="direct")
        expected = theirs(a.astype(np.float64), b.astype(np.float64), mode, method="direct")
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert len(calls) == 2


def test_cost_model_picks_direct_for_medium_kernels_and_fft_for_long_ones():
    f32 = np.float32
    assert cs.choose_conv_method(np.zeros((512, 512), f32), np.ones((11, 11), f32), "same") == "direct"
    assert cs.choose_conv_method(np.zeros((64,) * 3, f32), np.ones((5,) * 3, f32), "same") == "direct"
    assert cs.choose_conv_method(np.zeros(1_000_000, f32), np.ones(1024, f32), "same") == "fft"
    # float64 has no compiled kernel: a 31×31 kernel on a large image stays with the FFT
    assert cs.choose_conv_method(np.zeros((512, 512)), np.ones((31, 31)), "same") == "fft"
