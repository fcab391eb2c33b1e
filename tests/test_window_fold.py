"""A strided input gradient as its windows' columns folded into dx (``conv.window_fold``)
against PyTorch's float64 gradient: values, NaN and ±inf positions, every way a task cuts its
work (chunks of positions, blocks of terms, shares of channels, a last short strip), 1-D and
grouped layers, and where the heuristic takes it."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ieee import conv_reference
from torch_oracle import assert_close

from cnnkit import tuning
from cnnkit.kernels import conv, implicit_gemm_numba
from cnnkit.kernels.conv import implicit, strided_input, window_fold


def _layer(rng, n, c, k, spatial, kernel, stride, dilation=None, pads=None, groups=1):
    dims = len(kernel)
    dilation = dilation or (1,) * dims
    pads = pads or [(0, 0)] * dims
    x = rng.standard_normal((n, c) + tuple(spatial))
    w = rng.standard_normal((k, c // groups) + tuple(kernel))
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, pads))
    out = tuple((p - d * (kk - 1) - 1) // s + 1
                for p, kk, s, d in zip(padded, kernel, stride, dilation))
    dy = rng.standard_normal((n, k) + out)
    return x, w, dy, padded, tuple(stride), tuple(dilation), pads


def _expected(x, w, dy, stride, dilation, pads, groups=1):
    return conv_reference(x, w, dy, stride, dilation, groups, pads)[1]


def _fold(w, dy, padded, stride, dilation, pads, groups=1):
    return window_fold.input_gradient(dy.astype(np.float32), w.astype(np.float32), padded,
                                      stride, dilation, pads, groups)


@st.composite
def layers(draw):
    dims = draw(st.integers(1, 2))
    kernel = tuple(draw(st.lists(st.integers(1, 7), min_size=dims, max_size=dims)))
    stride = tuple(draw(st.lists(st.integers(1, 5), min_size=dims, max_size=dims)))
    dilation = tuple(draw(st.lists(st.integers(1, 3), min_size=dims, max_size=dims)))
    pads = [tuple(draw(st.lists(st.integers(0, 3), min_size=2, max_size=2)))
            for _ in range(dims)]
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 30))
                    for k, d in zip(kernel, dilation))
    groups = draw(st.sampled_from([1, 1, 2]))
    return dict(n=draw(st.integers(1, 3)), c=groups * draw(st.integers(1, 5)),
                k=groups * draw(st.sampled_from([1, 3, 8, 17])), spatial=spatial, kernel=kernel,
                stride=stride if any(s > 1 for s in stride) else (2,) + stride[1:],
                dilation=dilation, pads=pads, groups=groups)


@settings(max_examples=60, deadline=None)
@given(layer=layers(), seed=st.integers(0, 2**16),
       chunk=st.sampled_from([1 << 12, 1 << 18]), block=st.sampled_from([5, 128]))
def test_fold_matches_torch(layer, seed, chunk, block):
    """Chunks of one strip or many, blocks of 5 terms (each tile's sums stored and added to)
    or all of K at once."""
    rng = np.random.default_rng(seed)
    groups = layer.pop("groups")
    x, w, dy, padded, stride, dilation, pads = _layer(rng, groups=groups, **layer)
    with tuning.override(implicit_fold_chunk_bytes=chunk, implicit_tap_block=block):
        dx = _fold(w, dy, padded, stride, dilation, pads, groups)
    assert_close(dx, _expected(x, w, dy, stride, dilation, pads, groups), np.float32,
                 terms=w.shape[0] * np.prod(w.shape[2:]), name="dx")


@pytest.mark.parametrize("chunk", [1 << 12, 1 << 18])
def test_alexnet_and_resnet_first_layers(chunk):
    """11 × 11 at stride 4 and 7 × 7 at stride 2, 3 input channels: chunks that cut rows of
    dy anywhere, a last strip of dy shorter than the tile, the phases interleaved a vector at
    a time and the row's edges cell by cell."""
    rng = np.random.default_rng(3)
    for n, k, spatial, kernel, stride, pad in ((2, 64, 67, 11, 4, 2), (2, 20, 45, 7, 2, 3)):
        x, w, dy, padded, stride, dilation, pads = _layer(
            rng, n, 3, k, (spatial, spatial + 4), (kernel, kernel), (stride, stride),
            pads=[(pad, pad), (pad, pad + 1)])
        with tuning.override(implicit_fold_chunk_bytes=chunk):
            dx = _fold(w, dy, padded, stride, dilation, pads)
        assert_close(dx, _expected(x, w, dy, stride, dilation, pads), np.float32,
                     terms=w.size, name="dx")


def test_shares_of_channels_give_the_same_bits(monkeypatch):
    """One image: its channels in one task or split between tasks, each cell's sum in the same
    order."""
    rng = np.random.default_rng(5)
    _, w, dy, padded, stride, dilation, pads = _layer(rng, 1, 6, 16, (30, 31), (5, 5), (2, 3))
    whole = _fold(w, dy, padded, stride, dilation, pads)
    original = window_fold.fold_windows_with
    for shares in (1, 2, 6):
        def with_shares(rows, vectors, shares=shares):
            kernel = original(rows, vectors)
            return lambda *arguments: kernel(*arguments[:-1], shares)
        monkeypatch.setattr(window_fold, "fold_windows_with", with_shares)
        np.testing.assert_array_equal(_fold(w, dy, padded, stride, dilation, pads), whole)


@pytest.mark.parametrize("tile, error", [((0, 5), ValueError), ((5, -1), ValueError),
                                         ((5.0, 5), TypeError), ((True, 1), TypeError),
                                         ([5, 5], TypeError), ((5,), TypeError)])
def test_a_tile_that_is_not_two_positive_integers_is_refused(tile, error):
    rng = np.random.default_rng(12)
    _, w, dy, padded, stride, dilation, pads = _layer(rng, 1, 3, 4, (9, 9), (3, 3), (2, 2))
    with pytest.raises(error, match="tile"):
        window_fold.input_gradient(dy.astype(np.float32), w.astype(np.float32), padded,
                                   stride, dilation, pads, tile=tile)


@pytest.mark.parametrize("tile", [(2, 1), (4, 3), (5, 5), (6, 2)])
def test_every_tile_gives_the_gradient(tile):
    """The product's tile (``cpu.Tiles.fold``, other tiles timed by ``python -m
    cnnkit.bench.window_fold --tiles``): taps rounded up to its MR, positions to its strips."""
    rng = np.random.default_rng(11)
    x, w, dy, padded, stride, dilation, pads = _layer(rng, 2, 3, 12, (27, 33), (7, 5), (3, 2),
                                                      pads=[(3, 3), (2, 2)])
    dx = window_fold.input_gradient(dy.astype(np.float32), w.astype(np.float32), padded,
                                    stride, dilation, pads, tile=tile)
    assert_close(dx, _expected(x, w, dy, stride, dilation, pads), np.float32,
                 terms=w.shape[0] * np.prod(w.shape[2:]), name="dx")


@pytest.mark.parametrize("where", ["w inf", "w nan", "dy inf", "dy nan"])
def test_nan_and_inf_land_where_pytorch_puts_them(where):
    """Every product is one of the gradient's terms: an inf weight meets dy's zeros only where
    the sum has them (NaN there), and nothing needs checking first."""
    rng = np.random.default_rng(7)
    x, w, dy, padded, stride, dilation, pads = _layer(rng, 2, 3, 8, (21, 23), (5, 5), (2, 2),
                                                      pads=[(2, 2), (1, 3)])
    dy[0, :, 3, :] = 0  # zeros for an inf weight to meet
    value = np.inf if "inf" in where else np.nan
    if where.startswith("w"):
        w[5, 1, 2, 3] = -value
    else:
        dy[1, 4, 2, 7] = value
    expected = _expected(x, w, dy, stride, dilation, pads)
    assert_close(_fold(w, dy, padded, stride, dilation, pads), expected, np.float32,
                 terms=w.size, name="dx")
    g = conv.ConvGeometry.of((2, 3) + padded, w.shape, stride, dilation, 1, np.float32, pads)
    assert implicit._strided_arrangement(g) is window_fold.input_gradient
    assert implicit.needs_finite(g, "input") == frozenset()
    with conv.using(algorithm="implicit"):  # forced: the dispatcher refuses nothing
        dx = conv.conv_backward_input(dy.astype(np.float32), w.astype(np.float32), padded,
                                      stride, dilation, 1, pads)
    assert_close(dx, expected, np.float32, terms=w.size, name="dx")


def test_gain_rounds_each_product_to_its_own_tiles_strips(monkeypatch):
    """The product over all phases in strips of the planar GEMM's tile where it runs planar
    (taken planar here whatever this target's rule says), the fold's product in strips of the
    fold's tile (``cpu.Tiles.fold``)."""
    g = conv.ConvGeometry.of((16, 1, 32, 32), (32, 1, 5, 5), (2, 2), (1, 1), 1, np.float32,
                             ((2, 2), (2, 2)))
    monkeypatch.setattr(implicit, "planar_wins", lambda *shape: True)
    gain = window_fold.gain(g)
    with monkeypatch.context() as patch:
        patch.setattr(implicit, "planar_strip_width", lambda: 1 << 20)
        assert window_fold.gain(g) > 100 * gain
    monkeypatch.setattr(window_fold, "strip_width", lambda: 1 << 20)
    assert window_fold.gain(g) < gain / 100


def test_heuristic_folds_where_the_phases_would_compute_zeros():
    """Few input channels: folded from ``implicit_fold_min_gain`` on (ResNet's stem,
    AlexNet's first layer, a 3 × 3 layer at stride 2 that went to im2col; a 4 × 4 kernel at
    stride 4, whose phases compute no zero weights, stays below); a vector of input channels
    stays on the products per phase, and so does a 3-D layer; a constant above every gain
    turns the fold off, and one below every gain folds every layer of few channels."""
    lanes = implicit_gemm_numba.LANES
    threshold = tuning.value("implicit_fold_min_gain")

    def geometry(c, size, kernel, stride, pad, n=8, k=64):
        padded = (size + 2 * pad,) * 2
        return conv.ConvGeometry.of((n, c) + padded, (k, c, kernel, kernel), (stride, stride),
                                    (1, 1), 1, np.float32, ((pad, pad), (pad, pad)))
    stem, alexnet = geometry(3, 224, 7, 2, 3), geometry(3, 224, 11, 4, 2)
    small, patches = geometry(3, 224, 3, 2, 1, k=32), geometry(3, 224, 4, 4, 0, k=96)
    assert window_fold.gain(alexnet) > 1.2 and window_fold.gain(patches) <= 1.0
    for g in (stem, alexnet, small, patches):
        folded = window_fold.gain(g) >= threshold
        assert window_fold.wins(g) == folded
        assert (implicit._strided_arrangement(g) is window_fold.input_gradient) == folded
        if folded:
            assert conv.select(g, "input") == "implicit"
        with tuning.override(implicit_fold_min_gain=0.5):
            assert implicit._strided_arrangement(g) is window_fold.input_gradient
        with tuning.override(implicit_fold_min_gain=window_fold.NEVER):
            assert implicit._strided_arrangement(g) is not window_fold.input_gradient
    assert implicit._strided_arrangement(patches) is strided_input.subpixel
    wide = geometry(lanes, 56, 3, 2, 1, k=32)
    with tuning.override(implicit_fold_min_gain=0.5):
        assert implicit._strided_arrangement(wide) is strided_input.by_phases
        volume = conv.ConvGeometry.of((2, 3, 20, 20, 20), (8, 3, 3, 3, 3), (2, 2, 2),
                                      (1, 1, 1), 1, np.float32)
        assert not window_fold.applies(volume) and not window_fold.wins(volume)
        for empty, out in (((0, 3, 7, 7), None), ((8, 0, 7, 7), None),
                           ((8, 3, 7, 7), (0, 12))):  # no channels, no positions: no fold
            g = conv.ConvGeometry.of((2, empty[1], 30, 30), empty, (2, 2), (1, 1), 1,
                                     np.float32, out=out)
            assert not window_fold.wins(g)
            assert conv.select(g, "input") in conv.ALGORITHMS


def test_dy_of_fewer_positions_than_the_input_allows():
    """An input whose last rows and columns no window reaches (a forward pass that cropped
    them, as a transposed convolution's output padding does): zeros there."""
    rng = np.random.default_rng(13)
    x, w, dy, padded, stride, dilation, pads = _layer(rng, 2, 3, 8, (24, 27), (5, 5), (3, 2),
                                                      dilation=(1, 2))
    dy = dy[:, :, :-2, :-1]
    expected = _expected(x[:, :, :-6, :-2], w, dy, stride, dilation, pads)
    dx = _fold(w, dy, padded, stride, dilation, pads)
    assert_close(dx[:, :, :-6, :-2], expected, np.float32, terms=w.size, name="dx")
    assert not dx[:, :, -6:].any() and not dx[:, :, :, -2:].any()


def test_shapes_that_do_not_fit_are_refused_before_the_kernel():
    """The kernel reads and writes through addresses: dy and w that do not fit each other and
    the padded input raise ValueError naming them; no channels or no images give zeros."""
    rng = np.random.default_rng(9)
    _, w, dy, padded, stride, dilation, pads = _layer(rng, 2, 3, 8, (21, 21), (5, 5), (2, 2))
    w32, dy32 = w.astype(np.float32), dy.astype(np.float32)
    with pytest.raises(ValueError, match="dy"):
        window_fold.input_gradient(np.zeros((2, 8, 10, 9), np.float32), w32, padded, stride,
                                   dilation)
    with pytest.raises(ValueError, match="dy"):
        window_fold.input_gradient(np.zeros((2, 8, 40, 9), np.float32), w32, padded, stride,
                                   dilation)
    with pytest.raises(ValueError, match="K = 8"):
        window_fold.input_gradient(dy32[:, :7], w32, padded, stride, dilation)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        window_fold.input_gradient(dy32[..., None], w32[..., None], padded + (1,), stride + (1,),
                                   dilation + (1,))
    with pytest.raises(ValueError, match="groups"):
        window_fold.input_gradient(dy32, w32, padded, stride, dilation, groups=3)
    for empty_dy, empty_w in ((dy32[:0], w32), (dy32[:, :0], w32[:0]), (dy32, w32[:, :0])):
        dx = window_fold.input_gradient(empty_dy, empty_w, padded, stride, dilation)
        assert dx.shape == (empty_dy.shape[0], empty_w.shape[1]) + padded and not dx.any()
