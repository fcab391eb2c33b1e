"""The threaded multi-dimensional FFTs give NumPy's results to the bit, whatever the split."""
import numpy as np
import pytest

from cnnkit import tuning
from cnnkit.kernels import fft_threads


@pytest.fixture(params=[1, 2, 3], ids=lambda t: f"{t}threads")
def threads(request, monkeypatch):
    monkeypatch.setattr(fft_threads, "count", lambda: request.param)
    with tuning.override(fft_parallel_min_size=0):
        yield request.param


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


@pytest.fixture
def split_everything():
    with tuning.override(fft_parallel_min_size=0):
        yield


def test_pool_survives_a_fork(monkeypatch, split_everything):
    """A child process gets a pool of its own (the parent's threads do not exist there)."""
    import os
    import select
    import signal
    monkeypatch.setattr(fft_threads, "count", lambda: 2)
    a = np.random.default_rng(1).standard_normal((8, 8))
    expected = np.fft.rfftn(a, (8, 8), axes=(0, 1))
    np.testing.assert_array_equal(fft_threads.rfftn(a, (8, 8), (0, 1)), expected)  # pool made
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: transform, report, leave without running the test session's exit
        ok = np.array_equal(fft_threads.rfftn(a, (8, 8), (0, 1)), expected)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 30.0)  # a stale pool would hang the child
    if not ready:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert ready, "the forked child's transform did not finish"
    assert os.read(read, 1) == b"1" and status == 0
