"""The register-block layout changes against NumPy's transpose, on ragged shapes: channel and
position counts that are and are not multiples of the 8 × 8 block, row ranges that start
and end inside an image; the per-channel sums taken on the way (a conv layer's bias
gradient)."""
import numpy as np
import pytest

from cnnkit import tuning
from cnnkit.kernels.transpose_numba import (channel_rows_to_planes, columns_to_panels,
                                            planes_to_rows, rows_to_planes, shares_to_planes,
                                            weight_rows_to_panels)

SHAPES = [(1, 8, 8), (2, 3, 5), (3, 17, 13), (2, 16, 64), (4, 9, 70), (1, 64, 1),
          (2, 4, 37)]


# below ``compiled_min_size`` values the layout runs on the calling thread, above it in
# parallel tasks: both, whatever the shape
ON_ONE_THREAD, IN_PARALLEL = 1 << 62, 0


@pytest.mark.parametrize("least", [ON_ONE_THREAD, IN_PARALLEL])
@pytest.mark.parametrize("n,k,s", SHAPES)
def test_planes_to_rows(n, k, s, least):
    with tuning.override(compiled_min_size=least):
        _check_planes_to_rows(n, k, s)


def _check_planes_to_rows(n, k, s):
    a = np.random.default_rng(k * s).standard_normal((n, k, s), dtype=np.float32)
    kp = -(-k // 8) * 8 + 8
    expected = a.transpose(0, 2, 1).reshape(n * s, k)
    for width in (kp, 8, 16, 12):  # one panel of all columns, or panels of 8, 16 or 12
        if kp % width:
            continue
        out = np.full((kp // width, n * s, width), np.nan, np.float32)
        assert planes_to_rows(a, out) is None
        rows = out.transpose(1, 0, 2).reshape(n * s, kp)
        np.testing.assert_array_equal(rows[:, :k], expected)
        np.testing.assert_array_equal(rows[:, k:], 0)
        summed = np.full(out.shape, np.nan, np.float32)  # the rows, written while summing
        sums = planes_to_rows(a, summed, with_sums=True)
        np.testing.assert_array_equal(summed, out)
        np.testing.assert_allclose(sums, a.astype(np.float64).sum(axis=(0, 2)), rtol=1e-12)
    # views: a block of channels (read in place), and positions not S apart (copied)
    wide = np.concatenate([a, a + 1], axis=2)
    for view in (np.concatenate([a, a], axis=1)[:, k:], wide[:, :, :s]):
        out = np.full((1, n * s, kp), np.nan, np.float32)
        planes_to_rows(view, out)
        np.testing.assert_array_equal(out[0, :, :k], expected)


@pytest.mark.parametrize("least", [ON_ONE_THREAD, IN_PARALLEL])
@pytest.mark.parametrize("n,k,width", [(5, 20, 16), (3, 64, 64), (7, 130, 32), (1, 8, 12)])
def test_columns_to_panels_cuts_the_columns_and_zeroes_the_rest(n, k, width, least):
    a = np.random.default_rng(n * k).standard_normal((n, k), dtype=np.float32)
    out = np.full((-(-k // width), n, width), np.nan, np.float32)
    with tuning.override(compiled_min_size=least):
        columns_to_panels(a, out)
    b = out.transpose(1, 0, 2).reshape(n, -1)
    np.testing.assert_array_equal(b[:, :k], a)
    np.testing.assert_array_equal(b[:, k:], 0)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("n,k,s", SHAPES)
def test_rows_to_planes_copies_exactly_its_rows(n, k, s, with_bias):
    """Optionally adding a bias per channel as it copies (a conv layer's forward): the same
    float32 sums as adding it afterwards, and -0.0 kept when there is none."""
    rng = np.random.default_rng(n + k + s)
    kp = -(-k // 8) * 8
    a = rng.standard_normal((n * s + 3, kp), dtype=np.float32)
    a[0, 0] = -0.0
    bias = rng.standard_normal(k, dtype=np.float32) if with_bias else np.empty(0, np.float32)
    expected = a[:n * s, :k] + bias if with_bias else a[:n * s, :k]
    for p0, p1 in [(0, n * s), (1, n * s - 1), (s - 1, min(n * s, 2 * s + 9))]:
        if p0 >= p1:
            continue
        out = np.full((n, k, s), np.nan, np.float32)
        rows_to_planes(a, out, p0, p1, bias)
        flat = out.transpose(0, 2, 1).reshape(n * s, k)
        np.testing.assert_array_equal(flat[p0:p1], expected[p0:p1])
        assert np.isnan(flat[:p0]).all() and np.isnan(flat[p1:]).all()
    if not with_bias:
        out = np.full((n, k, s), np.nan, np.float32)
        rows_to_planes(a, out, 0, n * s, bias)
        assert np.signbit(out[0, 0, 0])


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("n,k,s", SHAPES)
def test_channel_rows_to_planes_copies_only_its_channels(n, k, s, with_bias):
    """A task that computed some columns copies those alone: ranges from any channel on, of
    whole 8 × 8 blocks and not, meeting the others' exactly."""
    rng = np.random.default_rng(n * k + s)
    kp = -(-k // 8) * 8
    a = rng.standard_normal((n * s + 3, kp), dtype=np.float32)
    bias = rng.standard_normal(k, dtype=np.float32) if with_bias else np.empty(0, np.float32)
    expected = (a[:n * s, :k] + bias if with_bias else a[:n * s, :k]).reshape(n, s, k)
    for k0, k1 in [(0, k), (0, min(k, 8)), (min(k, 3), k), (k // 2, k), (min(k, 12), k)]:
        out = np.full((n, k, s), np.nan, np.float32)
        channel_rows_to_planes(a, out, 0, n * s, bias, k0, k1)
        np.testing.assert_array_equal(out[:, k0:k1], expected[:, :, k0:k1].transpose(0, 2, 1))
        assert np.isnan(out[:, :k0]).all() and np.isnan(out[:, k1:]).all()


@pytest.mark.parametrize("shares,taps,kp,k", [(1, 27, 32, 20), (2, 300, 16, 16), (5, 77, 16, 9),
                                              (3, 513, 48, 40), (8, 256, 64, 64),
                                              (2, 257, 16, 3)])
def test_shares_to_planes_adds_the_shares_in_order(shares, taps, kp, k):
    """The same floats as NumPy's sum over the shares then the transpose; the rows past the
    taps (a ragged tile's spill, NaN here) are not read. Up to 256 rows run as one task on
    the calling thread, more in parallel blocks of 256 (the last one ragged here: 300, 513
    and 257 rows)."""
    rng = np.random.default_rng(taps)
    partial = rng.standard_normal((shares, taps + 8, kp)).astype(np.float32) * np.float32(1e3)
    partial[:, taps:] = np.nan
    expected = partial[:, :taps].sum(axis=0)[:, :k].T
    out = np.full((1, k, taps), np.nan, np.float32)
    shares_to_planes(partial, out)
    np.testing.assert_array_equal(out[0], expected)


@pytest.mark.parametrize("n,k,s", SHAPES)
def test_one_share_is_the_parallel_layout_of_every_image(n, k, s):
    a = np.random.default_rng(n + s).standard_normal((n * s + 5, -(-k // 8) * 8),
                                                       dtype=np.float32)
    out = np.full((n, k, s), np.nan, np.float32)
    shares_to_planes(a[None], out)
    np.testing.assert_array_equal(out, a[:n * s, :k].reshape(n, s, k).transpose(0, 2, 1))


@pytest.mark.parametrize("k,c,taps,groups,width", [(4, 3, 9, 1, 16), (6, 70, 4, 2, 24),
                                                   (8, 64, 1, 1, 64), (2, 5, 121, 2, 8)])
def test_weight_rows_to_panels_takes_each_row_of_each_group(k, c, taps, groups, width):
    """Row r of group g's panel j holds w[g·K/G + k_r, j·W:(j + 1)·W, a_r], zeros past C."""
    rng = np.random.default_rng(k * c + taps)
    w = rng.standard_normal((k * groups, c, taps), dtype=np.float32)
    rows = rng.permutation(k * taps)[:max(1, k * taps // 2)].astype(np.int64)
    panels = -(-c // width)
    out = np.full((groups * panels, rows.size, width), np.nan, np.float32)
    assert weight_rows_to_panels(w, rows, groups, out, True)
    for g in range(groups):
        block = w[g * k:(g + 1) * k].transpose(0, 2, 1).reshape(k * taps, c)[rows]
        laid = out[g * panels:(g + 1) * panels].transpose(1, 0, 2).reshape(rows.size, -1)
        np.testing.assert_array_equal(laid[:, :c], block)
        np.testing.assert_array_equal(laid[:, c:], 0)


@pytest.mark.parametrize("check", [True, False])
def test_weight_rows_to_panels_tests_w_only_when_asked(check):
    """With ``check`` a NaN in a row whose tap 0 is laid out makes it report False; without,
    it reports True and lays w out all the same (NaN in its place)."""
    w = np.ones((4, 3, 9), np.float32)
    w[2, 1, 5] = np.nan
    rows = np.arange(4 * 9, dtype=np.int64)
    out = np.zeros((1, rows.size, 16), np.float32)
    assert weight_rows_to_panels(w, rows, 1, out, check) is (not check)
    assert np.isnan(out[0, 2 * 9 + 5, 1])
