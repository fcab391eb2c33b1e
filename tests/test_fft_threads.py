"""The threaded multi-dimensional FFTs give NumPy's results to the bit, whatever the split."""
import numpy as np
import pytest

from cnnkit.kernels import fft_threads


@pytest.fixture(params=[1, 2, 3], ids=lambda t: f"{t}threads")
def threads(request, monkeypatch):
    monkeypatch.setattr(fft_threads, "_threads", lambda: request.param)
    monkeypatch.setattr(fft_threads, "_PARALLEL_MIN_SIZE", 0)
    return request.param


@pytest.mark.parametrize("shape, s, axes", [
    ((6, 7), (8, 9), (0, 1)),
    ((5, 4, 6), (5, 8, 10), (0, 1, 2)),
    ((2, 3, 7, 5), (9, 6), (2, 3)),      # batch and channel axes are not transformed
    ((1, 9), (12, 10), (0, 1)),          # a length-1 axis cannot be split
    ((4, 1, 6), (4, 6), (0, 2)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_ffts_equal_numpy(threads, shape, s, axes, dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(dtype)
    spectrum = fft_threads.rfftn(a, s, axes)
    np.testing.assert_array_equal(spectrum, np.fft.rfftn(a, s, axes=axes))
    np.testing.assert_array_equal(fft_threads.irfftn(spectrum, s, axes),
                                  np.fft.irfftn(spectrum, s, axes=axes))
    c = (a + 1j * rng.standard_normal(shape)).astype(np.result_type(dtype, np.complex64))
    full = fft_threads.fftn(c, s, axes)
    np.testing.assert_array_equal(full, np.fft.fftn(c, s, axes=axes))
    np.testing.assert_array_equal(fft_threads.ifftn(full, s, axes),
                                  np.fft.ifftn(full, s, axes=axes))
    assert spectrum.dtype == np.result_type(dtype, np.complex64)
