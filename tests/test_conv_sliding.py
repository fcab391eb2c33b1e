"""The implicit GEMM's one-vector tile along output rows (``microkernel.sliding_micro_kernel``,
``implicit_gemm_numba.slide``) against PyTorch and against the plain tile it replaces.

Row lengths are drawn around the tile's MR (``SLIDING_ROWS``, which the target's register
file decides), so every target meets rows of one tile, of whole tiles, and rows whose last
tile overlaps the one before.
"""
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkit
from cnnkit import tuning
from cnnkit.kernels import implicit_gemm_numba as compiled
from cnnkit.kernels.conv import implicit
from cnnkit.nn import functional as F

MR, LANES = compiled.SLIDING_ROWS, compiled.LANES
TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}


def _product(x, w, pads, sliding=True, tap_block=128):
    """``per_image_product`` of x (N, C, *spatial) with w (K, C, *kernel), stride 1, with the
    tile along rows where its rule takes it (or never), in passes of ``tap_block`` taps
    (``tap_block`` // KW runs: the passes after the first add to the rows)."""
    out = tuple(s + lo + hi - k + 1 for s, (lo, hi), k in zip(x.shape[2:], pads, w.shape[2:]))
    rule = implicit.sliding_width if sliding else (lambda *args, **kwargs: 0)
    with mock.patch.object(implicit, "sliding_width", rule), \
            tuning.override(implicit_tap_block=tap_block):
        return implicit.per_image_product(x, pads, implicit._panels(w), w.shape,
                                          (1,) * len(out), out)


def _torch(x, w, pads):
    padding = [p for lo, hi in reversed(pads) for p in (lo, hi)]
    xp = TF.pad(torch.tensor(x), padding)
    return TORCH_CONV[x.ndim - 2](xp, torch.tensor(w)).numpy()


def _recorded_sliding(run):
    """(run's result, the ``sliding`` argument of each ``by_image`` call it made)."""
    seen = []

    def recording(entry):
        def call(*args):
            seen.append(args[-2])
            return entry(*args)
        return call
    entries = {nv: recording(f) for nv, f in compiled.BY_IMAGE.items()}
    with mock.patch.dict(compiled.BY_IMAGE, entries):
        return run(), seen


def test_the_rule_takes_one_vector_stride_1_rows_of_a_tile_or_more():
    kernel, one = (3, 3), (1, 1)
    assert implicit.sliding_width(LANES, kernel, one, one, (9, MR)) == 3
    assert implicit.sliding_width(1, (2, 5), one, one, (4, MR + 3)) == 5
    assert implicit.sliding_width(LANES, (3,), (1,), (1,), (MR,)) == 3
    for k, kern, stride, dilation, out in [
            (LANES + 1, kernel, one, one, (9, MR)),  # two vectors of outputs
            (LANES, (3, 7), one, one, (9, MR)),      # a width it is not compiled for
            (LANES, (3, 1), one, one, (9, MR)),
            (LANES, kernel, (1, 2), one, (9, MR)),   # strided along the rows
            (LANES, kernel, one, (1, 2), (9, MR)),   # dilated along the rows
            (LANES, kernel, one, one, (9, MR - 1))]:  # rows shorter than a tile
        assert implicit.sliding_width(k, kern, stride, dilation, out) == 0
    assert implicit.sliding_width(LANES, kernel, one, one, (9, MR), source=np.zeros(1)) == 0
    assert implicit.sliding_width(LANES, kernel, (2, 1), (2, 1), (9, MR)) == 3  # other axes


@pytest.mark.parametrize("spatial, kernel", [((4, MR + 1), (3, 3)),   # rows under MR
                                             ((4, MR + 4), (1, 2)),   # taps not runs of 3
                                             ((4, MR + 4), (2, 4))])
def test_the_kernel_refuses_rows_or_runs_it_cannot_tile(spatial, kernel):
    """Checked on the shapes before any pointer is read: a caller that asks for tiles along
    rows of fewer outputs than MR, or for runs of 3 taps on a kernel 2 or 4 wide, gets a
    ValueError."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5) + spatial, dtype=np.float32)
    w = rng.standard_normal((LANES, 5) + kernel, dtype=np.float32)
    with mock.patch.object(implicit, "sliding_width", lambda *args, **kwargs: 3), \
            pytest.raises(ValueError, match="tiles along rows"):
        implicit.per_image_product(x, ((0, 0), (0, 0)), implicit._panels(w), w.shape, (1, 1),
                                   tuple(s - k + 1 for s, k in zip(spatial, kernel)))


@pytest.mark.parametrize("row", [MR, 2 * MR, 2 * MR + 3, MR + 1])
@pytest.mark.parametrize("kw", compiled.SLIDING_WIDTHS)
@pytest.mark.parametrize("k", [LANES, max(1, LANES - 3)])
@pytest.mark.parametrize("tap_block", [7, 128])
def test_rows_of_whole_and_overlapping_tiles_match_torch(row, kw, k, tap_block):
    rng = np.random.default_rng(row * kw + k)
    x = rng.standard_normal((3, 5, 4, row + kw - 1 - 2), dtype=np.float32)
    w = rng.standard_normal((k, 5, 2, kw), dtype=np.float32)
    pads = ((1, 0), (1, 1))
    y, seen = _recorded_sliding(lambda: _product(x, w, pads, tap_block=tap_block))
    assert seen == [kw]
    np.testing.assert_allclose(y, _torch(x, w, pads), rtol=2e-5, atol=2e-5 * np.sqrt(w[0].size))


@pytest.mark.parametrize("dims", [1, 3])
def test_1d_and_3d_rows(dims):
    rng = np.random.default_rng(dims)
    spatial = (MR + 5,) if dims == 1 else (3, 2, 2 * MR + 1)
    x = rng.standard_normal((2, 4) + spatial, dtype=np.float32)
    w = rng.standard_normal((LANES, 4) + (2,) * (dims - 1) + (3,), dtype=np.float32)
    pads = ((0, 1),) * (dims - 1) + ((1, 1),)
    y, seen = _recorded_sliding(lambda: _product(x, w, pads))
    assert seen == [3]
    np.testing.assert_allclose(y, _torch(x, w, pads), rtol=2e-5, atol=1e-4)


@pytest.mark.parametrize("kw", compiled.SLIDING_WIDTHS)
@pytest.mark.parametrize("tap_block", [7, 128])
def test_per_image_and_batch_arrangements_give_the_same_floats(kw, tap_block):
    """The tiles along rows (per image) and the plain tile over the batch's positions (which
    the thread count may choose instead, ``per_image_tasks``) sum the taps in the same passes
    (``tap_block``: whole kernel rows) and order: the same floats, on any thread count."""
    rng = np.random.default_rng(kw)
    x = rng.standard_normal((3, 13, 4, 2 * MR + 1), dtype=np.float32)  # 13·3·KW > 128 taps
    w = rng.standard_normal((LANES, 13, 3, kw), dtype=np.float32)
    pads = ((1, 1), (kw // 2, kw // 2))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    with tuning.override(implicit_tap_block=tap_block):
        batch = implicit.forward(xp, w, (1, 1), (1, 1), (xp.shape[2] - 2, xp.shape[3] - kw + 1),
                                 planar=False)
    y, seen = _recorded_sliding(lambda: _product(x, w, pads, tap_block=tap_block))
    assert seen == [kw]
    np.testing.assert_array_equal(y, batch)


def test_a_tap_moved_along_the_row_is_seen():
    """Sharp enough to fail: the weights rolled by one along the rows change the result."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 3, 2 * MR + 2), dtype=np.float32)
    w = rng.standard_normal((LANES, 3, 1, 3), dtype=np.float32)
    pads = ((0, 0), (0, 0))
    reference = _torch(x, w, pads)
    np.testing.assert_allclose(_product(x, w, pads), reference, rtol=2e-5, atol=1e-4)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(_product(x, np.roll(w, 1, axis=-1), pads), reference,
                                   rtol=2e-5, atol=1e-4)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_inf_and_nan_land_where_torch_puts_them():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 5, 2 * MR + 1), dtype=np.float32)
    x[0, 1, 2, 3], x[1, 3, 0, -1], x[1, 0, 4, MR] = np.inf, np.nan, -np.inf
    w = rng.standard_normal((LANES, 4, 3, 3), dtype=np.float32)
    pads = ((1, 1), (1, 1))
    ours, theirs = _product(x, w, pads), _torch(x, w, pads)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs))
    np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=2e-5, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 9), k=st.integers(1, LANES),
       kh=st.integers(1, 3), kw=st.sampled_from(compiled.SLIDING_WIDTHS),
       rows=st.integers(1, 4), extra=st.integers(0, 2 * MR), lo=st.integers(0, 2),
       hi=st.integers(0, 2), tap_block=st.sampled_from([5, 16, 128]),
       seed=st.integers(0, 2 ** 16))
def test_drawn_layers_match_the_plain_tile(n, c, k, kh, kw, rows, extra, lo, hi, tap_block,
                                           seed):
    """The tile along rows and the plain tile it replaces compute the same products."""
    rng = np.random.default_rng(seed)
    width = MR + extra + kw - 1 - lo - hi
    x = rng.standard_normal((n, c, rows + kh - 1, width), dtype=np.float32)
    w = rng.standard_normal((k, c, kh, kw), dtype=np.float32)
    pads = ((0, 0), (lo, hi))
    y, seen = _recorded_sliding(lambda: _product(x, w, pads, tap_block=tap_block))
    assert seen == [kw]
    np.testing.assert_allclose(y, _product(x, w, pads, sliding=False), rtol=2e-5,
                               atol=2e-5 * np.sqrt(w[0].size))


def test_a_training_step_of_a_one_vector_layer_matches_torch():
    """Through the layer: the forward pass and the stride-1 input gradient (the forward
    product on dy, C outputs) both run along rows; the weight gradient as before."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, LANES, 6, MR + 4), dtype=np.float32)
    w = rng.standard_normal((LANES, LANES, 3, 3), dtype=np.float32) / 10
    b = rng.standard_normal(LANES, dtype=np.float32)
    ours = [cnnkit.tensor(a, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]

    def step():
        y = F.conv2d(*ours, padding=1)
        y.backward(np.ones(y.shape, np.float32))
        return y
    y, seen = _recorded_sliding(step)
    yt = TF.conv2d(*theirs, padding=1)
    yt.backward(torch.ones_like(yt))
    if seen:  # the per-image products ran (enough images for the threads)
        assert set(seen) == {3}
    for a, t in [(y.data, yt)] + [(o.grad, t.grad) for o, t in zip(ours, theirs)]:
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=2e-5, atol=1e-3)
