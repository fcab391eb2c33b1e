"""The implicit GEMM's tiles along output rows (``microkernel.sliding_micro_kernel``,
``implicit_gemm_numba.slide``) against PyTorch and against the plain tile they replace, for
each vector count NV the target has them for (one vector everywhere, two on AVX-512).

Row lengths are drawn around the tile's MR (``SLIDING_ROWS[NV]``, which the target's register
file decides), so every target meets rows of one tile, of whole tiles, rows whose last tile
overlaps the one before, and rows shorter than a tile, which run as one run of the map's rows
(a volume's: of each plane's rows; ``sliding_tiles``).
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

LANES = compiled.LANES
# (NV, MR) of each tile along rows this target has
SLIDING = [(vectors, rows) for vectors, rows in enumerate(compiled.SLIDING_ROWS) if rows]
MR = SLIDING[0][1]  # one vector's
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
            seen.append(args[-3])  # sliding, before row_length and chunk
            return entry(*args)
        return call
    entries = {nv: recording(f) for nv, f in compiled.BY_IMAGE.items()}
    with mock.patch.dict(compiled.BY_IMAGE, entries):
        return run(), seen


def _rule(k, kernel, stride, dilation, out, **kwargs):
    padded = tuple((o - 1) * s + d * (k - 1) + 1
                   for o, s, d, k in zip(out, stride, dilation, kernel))
    return implicit.sliding_width(k, kernel, stride, dilation, out, padded, **kwargs)


@pytest.mark.parametrize("vectors, mr", SLIDING)
def test_the_rule_takes_stride_1_rows_that_waste_little(vectors, mr):
    kernel, one, k = (3, 3), (1, 1), LANES * vectors
    assert _rule(k, kernel, one, one, (9, 2 * mr)) == 3
    assert _rule(k - LANES + 1, (2, 5), one, one, (4, 2 * mr)) == 5
    assert _rule(k, (3,), (1,), (1,), (mr,)) == 3
    assert _rule(k, kernel, (2, 1), (2, 1), (9, 2 * mr)) == 3  # other axes
    for k_, kern, stride, dilation, out in [
            (LANES * 4 + 1, kernel, one, one, (9, mr)),  # a tile with no form along rows
            (k, (3, 7), one, one, (9, mr)),              # a width it is not compiled for
            (k, (3, 1), one, one, (9, mr)),
            (k, kernel, (1, 2), one, (9, mr)),           # strided along the rows
            (k, kernel, one, (1, 2), (9, mr)),           # dilated along the rows
            (k, (3,), (1,), (1,), (mr - 1,)),            # one row shorter than a tile
            (k, (3, 3, 3), (1,) * 3, (1,) * 3, (9, 1, mr - 1))]:  # planes of one short row
        assert _rule(k_, kern, stride, dilation, out) == 0, (k_, kern, stride, out)
    # a volume's planes, each of its rows as one run
    assert _rule(k, (3, 3, 3), (1,) * 3, (1,) * 3, (2, 9, mr - 1)) == 3
    assert _rule(k, kernel, one, one, (9, mr), source=np.zeros(1)) == 0


@pytest.mark.parametrize("vectors, mr", SLIDING)
def test_the_rule_weighs_the_outputs_wasted_against_the_gain(vectors, mr):
    """Rows that MR divides waste nothing; others compute outputs they drop, and run along
    rows only while that costs less than the tile gains (``SLIDING_GAIN``)."""
    k, kernel, one = LANES * vectors, (3, 3), (1, 1)
    gains = list(compiled.SLIDING_GAIN)
    gains[vectors] = 1.01
    with mock.patch.object(compiled, "SLIDING_GAIN", tuple(gains)):
        assert _rule(k, kernel, one, one, (5, 2 * mr)) == 3
        assert _rule(k, kernel, one, one, (5, 2 * mr + 1)) == 0
        assert _rule(k, kernel, one, one, (5, mr - 1)) == 0
    gains[vectors] = 100.0
    with mock.patch.object(compiled, "SLIDING_GAIN", tuple(gains)):
        assert _rule(k, kernel, one, one, (5, 2 * mr + 1)) == 3
        assert _rule(k, kernel, one, one, (5, mr - 1)) == 3


@pytest.mark.parametrize("shape, pitch", [((7, 20), 22), ((5, 9), 11), ((3, 4), 8),
                                          ((1, 30), 32), ((4, 17), 19), ((2, 3, 16), 18),
                                          ((3, 4, 5), 7), ((4, 2, 5), 7)])
@pytest.mark.parametrize("mr", sorted({4, 10, 14, 16} | {rows for _, rows in SLIDING}))
def test_sliding_tiles_keep_every_output_once(shape, pitch, mr):
    """Each output is kept by exactly one tile, read from its own corner; the tiles compute
    the fewer of ``sliding_counts``' two counts (each map's rows as one run, a volume's
    planes' likewise, or by rows)."""
    *maps, length = shape
    plane = (maps[-1] + 2) * pitch if maps else pitch
    corner = np.array([((m // maps[-1]) * 3 * plane if len(maps) > 1 else 0) +
                       (m % maps[-1] if maps else 0) * pitch + x
                       for m in range(int(np.prod(maps or [1]))) for x in range(length)],
                      np.int64)
    n_rows = corner.size // length
    counts = compiled.sliding_counts(n_rows, length, pitch if n_rows > 1 else 0, mr,
                                     maps[-1] if maps else 0)
    if max(counts) < 0:
        with pytest.raises(ValueError, match="shorter than the tile"):
            compiled.sliding_tiles(corner, compiled.NO_ROWS, length, mr, 1, -1)
        return
    start, c_row = compiled.sliding_tiles(corner, compiled.NO_ROWS, length, mr, 1, -1)
    assert start.size * mr == min(c for c in counts if c >= 0)
    kept = c_row >= 0
    assert sorted(c_row[kept]) == list(range(corner.size))
    tiles, i = np.nonzero(kept)
    np.testing.assert_array_equal(start[tiles] // 4 + i, corner[c_row[kept]])


@pytest.mark.parametrize("rows", [(0, 7, 14, 100, 107, 119),   # the second run uneven
                                  (0, 7, 14, 100, 107),        # runs of unequal rows
                                  (0, 7, 14, 100, 107, 114)])  # two runs of three rows
def test_sliding_tiles_run_rows_only_where_each_run_is_evenly_spaced(rows):
    """Rows run together only where every run has the first run's rows, a pitch apart; else
    each row is tiled on its own."""
    length, mr = 5, 4
    corner = np.array([r + x for r in rows for x in range(length)], np.int64)
    start, c_row = compiled.sliding_tiles(corner, compiled.NO_ROWS, length, mr, 1, -1)
    by_rows, as_runs = compiled.sliding_counts(len(rows), length, 7, mr, 3)
    assert as_runs < by_rows  # so runs are taken wherever they are allowed
    assert start.size * mr == (as_runs if rows[-1] == 114 else by_rows)
    kept = c_row >= 0
    assert sorted(c_row[kept]) == list(range(corner.size))
    tiles, i = np.nonzero(kept)
    np.testing.assert_array_equal(start[tiles] // 4 + i, corner[c_row[kept]])


@pytest.mark.parametrize("spatial, kernel", [((MR + 1,), (3,)),      # one row under MR
                                             ((4, MR + 4), (1, 2)),   # taps not runs of 3
                                             ((4, MR + 4), (2, 4))])
def test_the_kernel_refuses_rows_or_runs_it_cannot_tile(spatial, kernel):
    """Checked on the shapes before any pointer is read: a caller that asks for tiles along
    rows of a single row shorter than MR, or for runs of 3 taps on a kernel 2 or 4 wide, gets
    a ValueError."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5) + spatial, dtype=np.float32)
    w = rng.standard_normal((LANES, 5) + kernel, dtype=np.float32)
    with mock.patch.object(implicit, "sliding_width", lambda *args, **kwargs: 3), \
            pytest.raises(ValueError, match="tiles along rows|shorter than the tile"):
        implicit.per_image_product(x, ((0, 0),) * len(spatial), implicit._panels(w), w.shape,
                                   (1,) * len(spatial),
                                   tuple(s - k + 1 for s, k in zip(spatial, kernel)))


def _rows_around(mr):
    """Row lengths of one tile, whole tiles, a last tile overlapping, and under a tile."""
    return [mr, 2 * mr, 2 * mr + 3, mr + 1, mr // 2 + 1]


@pytest.mark.parametrize("vectors, row", [(v, row) for v, mr in SLIDING
                                          for row in _rows_around(mr)])
@pytest.mark.parametrize("kw", compiled.SLIDING_WIDTHS)
@pytest.mark.parametrize("fill", [0, 3])  # all of the tile's outputs, or 3 fewer
@pytest.mark.parametrize("tap_block", [7, 128])
def test_rows_of_whole_overlapping_and_short_tiles_match_torch(vectors, row, kw, fill,
                                                               tap_block):
    k = max(1, LANES * vectors - fill)
    rng = np.random.default_rng(row * kw + k)
    x = rng.standard_normal((3, 5, 4, row + kw - 1 - 2), dtype=np.float32)
    w = rng.standard_normal((k, 5, 2, kw), dtype=np.float32)
    pads = ((1, 0), (1, 1))
    with mock.patch.object(compiled, "SLIDING_GAIN", (100.0,) * 5):  # whatever the waste
        y, seen = _recorded_sliding(lambda: _product(x, w, pads, tap_block=tap_block))
    assert seen == [kw]
    np.testing.assert_allclose(y, _torch(x, w, pads), rtol=2e-5, atol=2e-5 * np.sqrt(w[0].size))


@pytest.mark.parametrize("vectors, mr", SLIDING)
@pytest.mark.parametrize("dims, row", [(1, "long"), (3, "long"), (3, "short")])
def test_1d_and_3d_rows(vectors, mr, dims, row):
    """Rows of a signal, and of a volume's planes: longer than a tile, and shorter (each
    plane's rows then run as one run, ``sliding_tiles``)."""
    rng = np.random.default_rng(dims)
    length = 2 * mr + 1 if row == "long" else mr // 2 + 1
    spatial = (mr + 5,) if dims == 1 else (3, 4, length)
    x = rng.standard_normal((2, 4) + spatial, dtype=np.float32)
    w = rng.standard_normal((LANES * vectors, 4) + (2,) * (dims - 1) + (3,), dtype=np.float32)
    pads = ((0, 1),) * (dims - 1) + ((1, 1),)
    with mock.patch.object(compiled, "SLIDING_GAIN", (100.0,) * 5):  # whatever the waste
        y, seen = _recorded_sliding(lambda: _product(x, w, pads))
    assert seen == [3]
    np.testing.assert_allclose(y, _torch(x, w, pads), rtol=2e-5, atol=1e-4)


@pytest.mark.parametrize("vectors, row", [(v, row) for v, mr in SLIDING
                                          for row in (2 * mr + 1, mr - 2)])
@pytest.mark.parametrize("kw", compiled.SLIDING_WIDTHS)
@pytest.mark.parametrize("tap_block", [7, 128])
def test_per_image_and_batch_arrangements_give_the_same_floats(vectors, row, kw, tap_block):
    """The tiles along rows (per image) and the plain tile over the batch's positions (which
    the thread count may choose instead, ``per_image_tasks``) sum the taps in the same passes
    (``tap_block``: whole kernel rows) and order: the same floats, on any thread count."""
    rng = np.random.default_rng(kw)
    x = rng.standard_normal((3, 13, 4, row), dtype=np.float32)  # 13·3·KW > 128 taps
    w = rng.standard_normal((LANES * vectors, 13, 3, kw), dtype=np.float32)
    pads = ((1, 1), (kw // 2, kw // 2))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    with tuning.override(implicit_tap_block=tap_block):
        batch = implicit.forward(xp, w, (1, 1), (1, 1), (xp.shape[2] - 2, xp.shape[3] - kw + 1),
                                 planar=False)
    with mock.patch.object(compiled, "SLIDING_GAIN", (100.0,) * 5):
        y, seen = _recorded_sliding(lambda: _product(x, w, pads, tap_block=tap_block))
    assert seen == [kw]
    np.testing.assert_array_equal(y, batch)


@pytest.mark.parametrize("vectors, mr", SLIDING)
@pytest.mark.parametrize("row", ["whole", "short"])
def test_a_tap_moved_along_the_row_is_seen(vectors, mr, row):
    """Sharp enough to fail: the weights rolled by one along the rows change the result."""
    rng = np.random.default_rng(7)
    length = 2 * mr + 2 if row == "whole" else mr // 2 + 2
    x = rng.standard_normal((2, 3, 6, length), dtype=np.float32)
    w = rng.standard_normal((LANES * vectors, 3, 1, 3), dtype=np.float32)
    pads = ((0, 0), (0, 0))
    reference = _torch(x, w, pads)
    with mock.patch.object(compiled, "SLIDING_GAIN", (100.0,) * 5):
        y, seen = _recorded_sliding(lambda: _product(x, w, pads))
        assert seen == [3]
        np.testing.assert_allclose(y, reference, rtol=2e-5, atol=1e-4)
        with pytest.raises(AssertionError):
            np.testing.assert_allclose(_product(x, np.roll(w, 1, axis=-1), pads), reference,
                                       rtol=2e-5, atol=1e-4)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("vectors, mr", SLIDING)
@pytest.mark.parametrize("row", ["whole", "short"])
def test_inf_and_nan_land_where_torch_puts_them(vectors, mr, row):
    rng = np.random.default_rng(11)
    length = 2 * mr + 1 if row == "whole" else mr // 2 + 2
    x = rng.standard_normal((2, 4, 5, length), dtype=np.float32)
    x[0, 1, 2, 3], x[1, 3, 0, -1], x[1, 0, 4, length // 2] = np.inf, np.nan, -np.inf
    w = rng.standard_normal((LANES * vectors, 4, 3, 3), dtype=np.float32)
    pads = ((1, 1), (1, 1))
    with mock.patch.object(compiled, "SLIDING_GAIN", (100.0,) * 5):
        (ours, seen), theirs = _recorded_sliding(lambda: _product(x, w, pads)), _torch(x, w, pads)
    assert seen == [3]
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs))
    np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=2e-5, atol=1e-4)


_WIDEST = LANES * SLIDING[-1][0]  # the widest tile along rows' outputs


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 9), k=st.integers(1, _WIDEST),
       kh=st.integers(1, 3), kw=st.sampled_from(compiled.SLIDING_WIDTHS),
       rows=st.integers(1, 4), length=st.integers(1, 3 * MR), lo=st.integers(0, 2),
       hi=st.integers(0, 2), tap_block=st.sampled_from([5, 16, 128]),
       seed=st.integers(0, 2 ** 16))
def test_drawn_layers_match_the_plain_tile(n, c, k, kh, kw, rows, length, lo, hi, tap_block,
                                           seed):
    """The tiles along rows, wherever the rule takes them, and the plain tile they replace
    compute the same products."""
    rng = np.random.default_rng(seed)
    width = length + kw - 1 - lo - hi
    if width < 1:
        return
    x = rng.standard_normal((n, c, rows + kh - 1, width), dtype=np.float32)
    w = rng.standard_normal((k, c, kh, kw), dtype=np.float32)
    pads = ((0, 0), (lo, hi))
    y, seen = _recorded_sliding(lambda: _product(x, w, pads, tap_block=tap_block))
    assert seen == [_rule(k, (kh, kw), (1, 1), (1, 1), (rows, length))]
    np.testing.assert_allclose(y, _product(x, w, pads, sliding=False), rtol=2e-5,
                               atol=2e-5 * np.sqrt(w[0].size))


@pytest.mark.parametrize("vectors, mr", SLIDING)
def test_a_training_step_along_rows_matches_torch(vectors, mr):
    """Through the layer: the forward pass and the stride-1 input gradient (the forward
    product on dy, C outputs) both run along rows; the weight gradient as before."""
    rng = np.random.default_rng(5)
    k = LANES * vectors
    x = rng.standard_normal((8, k, 6, mr + 4), dtype=np.float32)
    w = rng.standard_normal((k, k, 3, 3), dtype=np.float32) / 10
    b = rng.standard_normal(k, dtype=np.float32)
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


@pytest.mark.parametrize("vectors, mr", SLIDING)
def test_a_measured_gain_replaces_the_tables(vectors, mr):
    """``cnnkit tune``'s measured gain of a tile (``implicit_sliding_gain_1`` or ``_2``)
    decides instead of the CPU table's entry; 0, the default, leaves the table's."""
    name = compiled.MEASURED_GAIN[vectors]
    k, kernel, one = LANES * vectors, (3, 3), (1, 1)
    wasteful = (5, 2 * mr + 1)  # one run of 5 rows: a few outputs computed and dropped
    with mock.patch.object(compiled, "SLIDING_GAIN", (100.0,) * 5):
        assert compiled.sliding_gain(vectors) == 100.0
        assert _rule(k, kernel, one, one, wasteful) == 3
        with tuning.override(**{name: 1.01}):
            assert compiled.sliding_gain(vectors) == 1.01
            assert _rule(k, kernel, one, one, wasteful) == 0
            assert _rule(k, kernel, one, one, (5, 2 * mr)) == 3  # wastes nothing
        with tuning.override(**{name: 0.0}):
            assert _rule(k, kernel, one, one, wasteful) == 3


@pytest.mark.parametrize("vectors, mr", SLIDING)
def test_slide_forces_the_tiles_along_rows_on_or_off(vectors, mr):
    """``per_image_product(slide=...)``, which ``cnnkit tune`` times: True runs the tiles
    along rows whatever the rule says, False never, and both match PyTorch; True where no
    such tile can run is a ValueError naming ``slide``."""
    rng = np.random.default_rng(vectors)
    x = rng.standard_normal((2, 4, 5, 2 * mr + 1), dtype=np.float32)
    w = rng.standard_normal((LANES * vectors, 4, 3, 3), dtype=np.float32)
    pads = ((1, 1), (1, 1))
    out = x.shape[2:]
    reference = _torch(x, w, pads)
    for gain, slide, expected in ((1.0, True, 3), (1.0, None, 0),       # the rule: never
                                  (8.0, False, 0), (8.0, None, 3)):  # ... always
        with tuning.override(**{compiled.MEASURED_GAIN[vectors]: gain}):
            y, seen = _recorded_sliding(lambda: implicit.per_image_product(
                x, pads, implicit._panels(w), w.shape, (1, 1), out, slide=slide))
        assert seen == [expected], (gain, slide)
        np.testing.assert_allclose(y, reference, rtol=2e-5, atol=1e-4)
    with pytest.raises(ValueError, match="slide"):
        implicit.per_image_product(x, pads, implicit._panels(w), w.shape, (1, 1),
                                   (5, mr + 1), stride=(1, 2), slide=True)
