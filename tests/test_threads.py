"""NumPy passes cut into a piece per thread (``kernels.threads.elementwise``): every element
once, and the activations that use it the same to the bit whatever the thread count."""

import numpy as np
import pytest

import cnnkit
import cnnkit.functional as F
from cnnkit import tuning
from cnnkit.kernels import threads


@pytest.fixture(params=[1, 2, 3], ids=lambda t: f"{t}threads")
def thread_count(request, monkeypatch):
    monkeypatch.setattr(threads, "count", lambda: request.param)
    with tuning.override(compiled_min_size=0):
        yield request.param


@pytest.mark.parametrize("size", [0, 1, 2, 5, 1001])
def test_every_element_is_passed_once(thread_count, size):
    seen = np.zeros(size, np.int64)
    sizes = []

    def passes(piece):
        sizes.append(piece.size)
        piece += 1
    threads.elementwise(passes, seen)
    np.testing.assert_array_equal(seen, 1)
    assert sum(sizes) == size
    assert len(sizes) == (1 if size < thread_count else thread_count)


@pytest.mark.parametrize("activation", [F.sigmoid, lambda x: F.elu(x, 1.5), F.tanh],
                         ids=["sigmoid", "elu", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_are_the_same_in_pieces(thread_count, activation, dtype):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(997) * 5,
                        [np.nan, np.inf, -np.inf, -0.0, 0.0, -100.0, 100.0]]).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    results = []
    for count in (1, thread_count):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(threads, "count", lambda count=count: count)
            xc = cnnkit.tensor(x, requires_grad=True)
            y = activation(xc)
            y.backward(g)
            results.append((y.data, xc.grad))
    for whole, pieces in zip(*results):
        np.testing.assert_array_equal(whole, pieces)
