"""The implicit-GEMM kernels (``conv_implicit``) against PyTorch on random configurations.

The grid in test_conv_algorithms forces every algorithm through the dispatcher on
hand-picked shapes with few output channels; these draw 1-, 2- and 3-D layers with up to 70
output channels, so every register-tile width (AVX-512: 16, 32, 48 and 64 lanes; AVX2: 8, 16
and 24) meets ragged channel counts, ragged last tiles of positions and taps, strides,
dilations and asymmetric padding.
"""
import math
from functools import partial
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from poisoned import poisoned_empty

from cnnkit.kernels import aligned
from cnnkit.kernels import conv as conv_kernels
from cnnkit.kernels import implicit_gemm_numba
from cnnkit.kernels.conv import implicit as conv_implicit
from cnnkit.kernels.conv import strided_input, window_fold

TORCH_CONV = {1: TF.conv1d, 2: TF.conv2d, 3: TF.conv3d}


def _check(ours, theirs, scale):
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=2e-5 * scale)


@st.composite
def layers(draw):
    dims = draw(st.integers(1, 3))
    kernel = tuple(draw(st.lists(st.integers(1, 4), min_size=dims, max_size=dims)))
    stride = tuple(draw(st.lists(st.integers(1, 3), min_size=dims, max_size=dims)))
    dilation = tuple(draw(st.lists(st.integers(1, 2), min_size=dims, max_size=dims)))
    pads = [tuple(draw(st.lists(st.integers(0, 3), min_size=2, max_size=2)))
            for _ in range(dims)]
    spatial = tuple(draw(st.lists(st.integers(1, 9 if dims < 3 else 5), min_size=dims,
                                  max_size=dims)))
    padded = [s + lo + hi for s, (lo, hi) in zip(spatial, pads)]
    assume(all(p >= d * (k - 1) + 1 for p, k, d in zip(padded, kernel, dilation)))
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 20)),
                k=draw(st.sampled_from([1, 5, 16, 17, 24, 32, 33, 48, 60, 70])), kernel=kernel,
                stride=stride, dilation=dilation, pads=pads, spatial=spatial)


@pytest.mark.parametrize("planar", [False, True])
@settings(max_examples=60, deadline=None)
@given(layer=layers(), seed=st.integers(0, 2**16))
def test_implicit_matches_torch(planar, layer, seed):
    """Both orientations of the product (channels-last and planar), forced; strided input
    gradients in both arrangements of the phases, and folded."""
    with mock.patch.object(conv_implicit, "planar_wins", lambda *shape: planar):
        _check_layer(layer, seed)


@pytest.mark.parametrize("planar", [False, True])
@pytest.mark.parametrize("layer", [
    dict(n=2, c=3, k=16, kernel=(13, 13), stride=(1, 1), dilation=(1, 1),
         pads=[(6, 6), (6, 5)], spatial=(20, 17)),
    dict(n=2, c=5, k=20, kernel=(15, 15), stride=(2, 3), dilation=(1, 1),
         pads=[(7, 7), (7, 6)], spatial=(24, 21)),
    dict(n=1, c=4, k=8, kernel=(31,), stride=(1,), dilation=(2,), pads=[(3, 30)], spatial=(64,)),
    dict(n=1, c=2, k=17, kernel=(5, 5, 7), stride=(1, 2, 1), dilation=(1, 1, 1),
         pads=[(2, 2), (1, 1), (3, 3)], spatial=(6, 7, 9))])
def test_large_kernels_match_torch(layer, planar):
    """Kernels of 155 to 225 taps, which the heuristic now gives the implicit GEMM (the
    drawn layers above stop at 4 taps per dim)."""
    geometry = conv_kernels.ConvGeometry.of(
        (layer["n"], layer["c"]) + tuple(s + lo + hi for s, (lo, hi) in
                                         zip(layer["spatial"], layer["pads"])),
        (layer["k"], layer["c"]) + layer["kernel"], layer["stride"], layer["dilation"], 1,
        np.float32)
    assert all(conv_kernels.select(geometry, p) == "implicit" for p in conv_kernels.PASSES)
    with mock.patch.object(conv_implicit, "planar_wins", lambda *shape: planar):
        _check_layer(layer, seed=7)


def _check_layer(layer, seed):
    rng = np.random.default_rng(seed)
    n, c, k, kernel = layer["n"], layer["c"], layer["k"], layer["kernel"]
    stride, dilation, pads = layer["stride"], layer["dilation"], layer["pads"]
    x = rng.standard_normal((n, c) + layer["spatial"], dtype=np.float32)
    w = rng.standard_normal((k, c) + kernel, dtype=np.float32)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    xt, wt = torch.tensor(xp, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = TORCH_CONV[len(kernel)](xt, wt, stride=stride, dilation=dilation)
    dy = rng.standard_normal(yt.shape, dtype=np.float32)
    yt.backward(torch.tensor(dy))
    scale = np.sqrt(w[0].size)

    y = conv_implicit.forward(xp, w, stride, dilation, yt.shape[2:])
    _check(y, yt.detach().numpy(), scale)
    # the bias, added as the rows are transposed or a planar strip is done: the same floats
    # as adding it afterwards
    b = rng.standard_normal(k, dtype=np.float32)
    np.testing.assert_array_equal(conv_implicit.forward(xp, w, stride, dilation, yt.shape[2:], b),
                                  y + b.reshape((1, k) + (1,) * len(kernel)))
    dw = conv_implicit.backward_weight(xp, dy, kernel, stride, dilation)
    _check(dw, wt.grad.numpy(), scale * np.sqrt(dy[:, 0].size))
    _check_weight_layouts(xp, dy, kernel, stride, dilation)
    geometry = conv_kernels.ConvGeometry.of(xp.shape, w.shape, stride, dilation, 1, xp.dtype)
    if conv_implicit.applies(geometry, "input") and not geometry.unit_stride:
        # one stride-1 gradient per phase (every s-th input cell)
        # both arrangements of the phases (strided_input), the padding's cells kept or not
        inside = tuple(slice(lo, s - hi) for s, (lo, hi) in zip(xp.shape[2:], pads))
        # (as parallel products, or as parallel tasks per image)
        # (and the windows' columns folded, for 1-D and 2-D layers)
        arrangements = [partial(strided_input.by_phases, per_image=False),
                        partial(strided_input.by_phases, per_image=True),
                        partial(strided_input.subpixel, per_image=False),
                        partial(strided_input.subpixel, per_image=True)]
        if window_fold.applies(geometry):
            arrangements.append(window_fold.input_gradient)
        for arrangement in arrangements:
            dx = arrangement(dy, w, xp.shape[2:], stride, dilation)
            _check(dx, xt.grad.numpy(), scale)
            dx = arrangement(dy, w, xp.shape[2:], stride, dilation, pads)
            _check(dx, xt.grad.numpy()[(slice(None), slice(None)) + inside], scale)
    elif conv_implicit.applies(geometry, "input"):
        inside = tuple(slice(lo, s - hi) for s, (lo, hi) in zip(xp.shape[2:], pads))
        for per_image in (False, True):  # parallel products, or tasks per image
            dx = conv_implicit.backward_input(dy, w, xp.shape[2:], dilation, pads,
                                              per_image=per_image)
            _check(dx, xt.grad.numpy()[(slice(None), slice(None)) + inside], scale)
        whole = conv_implicit.backward_input(dy, w, xp.shape[2:], dilation)
        _check(whole, xt.grad.numpy(), scale)


def _check_weight_layouts(xp, dy, kernel, stride, dilation, **channels):
    """The weight kernel's tiles read dy channels-last: laid out by each task for its own
    positions (one task per share) or once beforehand (groups of taps per share). With one
    share, in blocks of 5 positions (which straddle images and leave ragged runs of 8), both
    give the same floats, and the bias gradient summed on the way is dy's sum."""
    from cnnkit import tuning
    sizes = dict(implicit_position_block=5, implicit_weight_share_positions=1 << 30,
                 implicit_weight_partials_per_dy=0)
    with tuning.override(implicit_weight_shares=1, **sizes):  # one task: laid out in it
        dw, db = conv_implicit.backward_weight(xp, dy, kernel, stride, dilation, True,
                                               **channels)
    with tuning.override(implicit_weight_shares=3, **sizes):  # one share, 3 groups of taps
        laid_out, db_laid_out = conv_implicit.backward_weight(xp, dy, kernel, stride, dilation,
                                                              True, **channels)
    np.testing.assert_array_equal(dw, laid_out)
    expected = dy.sum(axis=(0,) + tuple(range(2, dy.ndim)), dtype=np.float64)
    np.testing.assert_allclose(db, expected, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(db_laid_out, expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("planar", [False, True])
@pytest.mark.parametrize("vectors", [1, 2, 3, 4])
def test_each_tile_width_sees_a_wrong_tap(vectors, planar, monkeypatch):
    """Sharp enough to fail: one weight tap moved by one position changes the forward, on
    each of the target's tile widths (k = one lane short of NV vectors takes NV's tile)."""
    if vectors not in implicit_gemm_numba.VECTOR_COUNTS:
        pytest.skip(f"no {vectors}-vector tile on this target")
    k = implicit_gemm_numba.LANES * vectors - 1
    assert planar or implicit_gemm_numba.tile(k)[1] == vectors
    monkeypatch.setattr(conv_implicit, "planar_wins", lambda *shape: planar)
    rng = np.random.default_rng(k)
    xp = rng.standard_normal((2, 3, 8, 9), dtype=np.float32)
    w = rng.standard_normal((k, 3, 3, 3), dtype=np.float32)
    y = conv_implicit.forward(xp, w, (1, 1), (1, 1), (6, 7))
    reference = TF.conv2d(torch.tensor(xp), torch.tensor(w)).numpy()
    _check(y, reference, 5.0)
    with pytest.raises(AssertionError):
        _check(conv_implicit.forward(xp, np.roll(w, 1, axis=-1), (1, 1), (1, 1), (6, 7)),
               reference, 5.0)


def test_tile_widths_follow_channel_counts():
    """The tile that pads the output channels least, the widest of those, the one-vector tile
    only for at most one vector: on AVX-512, 16 channels take a 16-lane tile, not a 64-lane
    one that computes 48 zeros, and 96 a 48-lane one, not a 64-lane one that pads them to
    128."""
    lanes, counts = implicit_gemm_numba.LANES, implicit_gemm_numba.VECTOR_COUNTS
    for k in range(1, 300):
        rows, vectors, padded = implicit_gemm_numba.tile(k)
        assert rows == implicit_gemm_numba.TILE_ROWS[vectors] > 0
        assert padded >= k and padded % (lanes * vectors) == 0 and padded - k < lanes * vectors
        assert (vectors == 1) == (k <= lanes or counts == (1,))
        others = {nv: -(-k // (lanes * nv)) * lanes * nv for nv in counts
                  if nv > 1 or k <= lanes}
        assert padded == min(others.values())
        assert all(others[nv] > padded for nv in others if nv > vectors)
    tiles = {k: implicit_gemm_numba.tile(k)[1:] for k in (1, 16, 17, 32, 33, 48, 96, 128)}
    expected = {16: {1: (1, 16), 16: (1, 16), 17: (2, 32), 32: (2, 32), 33: (3, 48),
                     48: (3, 48), 96: (3, 96), 128: (4, 128)},
                8: {1: (1, 8), 16: (2, 16), 17: (3, 24), 32: (2, 32), 33: (3, 48),
                    48: (3, 48), 96: (3, 96), 128: (2, 128)}}
    assert tiles == expected.get(lanes, tiles)


def test_planar_where_channels_last_idles_or_transposes():
    lanes = implicit_gemm_numba.LANES
    assert conv_implicit.planar_wins(lanes - 1, 432)    # lanes would idle in channels-last
    assert conv_implicit.planar_wins(256, 64)           # pw1x1's input gradient: thin and wide
    assert not conv_implicit.planar_wins(64, 576)       # res3x3
    assert not conv_implicit.planar_wins(lanes, 576)
    assert not conv_implicit.planar_wins(32, 25)        # lenet_c1's forward
    # thin and wide, but the planar strips would idle on small maps (7×7: 49 of AVX-512's 64
    # lanes), while 16×16 fills its strips on every target
    assert not conv_implicit.planar_wins(1280, 320, (7, 7), (7, 7))
    assert conv_implicit.planar_wins(256, 64, (16, 16), (16, 16))
    # a 1×1 product is planar wherever channels-last would idle more lanes, however many
    # terms: a vector and a half of output channels on a map that fills the planar strips
    ragged = lanes + lanes // 2
    map_ = (2 * lanes, 2 * lanes)
    assert conv_implicit.planar_wins(ragged, 144, map_, map_, (1, 1))
    assert not conv_implicit.planar_wins(ragged, 144, map_, map_)          # kernel unknown
    assert not conv_implicit.planar_wins(ragged, 144 * 9, (2 * lanes + 2,) * 2, map_, (3, 3))
    assert not conv_implicit.planar_wins(2 * lanes, 144, map_, map_, (1, 1))  # no lane idle
    # and on maps of ``implicit_planar_1x1_min_positions`` or more, unless the product is
    # deep (``implicit_large_map_min_terms_per_output``), on channels-last tiles as wide as
    # the planar tile's, over enough images for a task per image
    from cnnkit import tuning
    side = math.isqrt(tuning.value("implicit_planar_1x1_min_positions") - 1) + 1
    large, smaller = (side, side), (side - 1, side - 1)
    full = lanes * implicit_gemm_numba.PLANAR_VECTORS  # outputs on tiles as wide as planar's
    depth = tuning.value("implicit_large_map_min_terms_per_output")
    deep, shallow = math.ceil(depth * full), math.ceil(depth * full) - 1
    images = 4 * conv_implicit.numba.get_num_threads()
    assert conv_implicit.planar_wins(full, shallow, large, large, (1, 1), images)
    assert not conv_implicit.planar_wins(full, deep, large, large, (1, 1), images)
    assert conv_implicit.planar_wins(full, deep, large, large, (1, 1), images - 1)  # too few
    assert conv_implicit.planar_wins(full, deep, large, large, (1, 1))  # images unknown
    assert conv_implicit.planar_wins(full // 2, 2 * deep, large, large, (1, 1), images)  # narrow
    assert not conv_implicit.planar_wins(full, shallow, smaller, smaller, (1, 1), images)
    assert not conv_implicit.planar_wins(2 * lanes, 144 * 9, (side + 2,) * 2, large, (3, 3))
    # fewer output channels than lanes: planar unless its strips idle more of their lanes,
    # as on maps of a few positions (one image per strip)
    few = lanes // 2 + 1
    assert conv_implicit.planar_wins(few, 512, (16, 16), (16, 16), (1, 1))
    assert not conv_implicit.planar_wins(few, 512, (2, 2), (2, 2), (1, 1))
    assert not conv_implicit.planar_wins(few, 576, (6, 6), (4, 4), (3, 3))
    assert conv_implicit.planar_wins(few, 576, (18, 18), (16, 16), (3, 3))
    assert conv_implicit.planar_wins(few, 512)  # the map unknown
    # lanes used alike (a 1-D map that fills the strips, K a multiple of the vector): a
    # kernel of several taps runs channels-last over too few images for a task per image
    strips = lanes * implicit_gemm_numba.PLANAR_VECTORS
    k, length = 4 * lanes, 8 * strips
    per_image = 4 * conv_implicit.numba.get_num_threads()
    assert not conv_implicit.planar_wins(k, 6, (length + 2,), (length,), (3,), 1)
    assert not conv_implicit.planar_wins(k, 6, (length + 2,), (length,), (3,), per_image - 1)
    assert conv_implicit.planar_wins(k, 6, (length + 2,), (length,), (3,), per_image)
    assert conv_implicit.planar_wins(k, 6, (length + 2,), (length,), (3,))  # images unknown
    assert conv_implicit.planar_wins(k, 2, (length,), (length,), (1,), 1)  # one tap
    assert conv_implicit.planar_wins(k, 6, (length + 2,), (length,), (3,), 1, groups=2)
    # the answer is kept per thread count: the images a task per image needs follow it
    threads = conv_implicit.numba.get_num_threads()
    if conv_implicit.numba.config.NUMBA_NUM_THREADS >= 2:
        answers = []
        for count in (2, 1, 2):
            conv_implicit.numba.set_num_threads(count)
            answers.append(conv_implicit.planar_wins(k, 6, (length + 2,), (length,), (3,), 4))
        conv_implicit.numba.set_num_threads(threads)
        assert answers == [False, True, False]
    vol3d = conv_kernels.ConvGeometry.of((4, 8) + (18,) * 3, (16, 8, 3, 3, 3), (1,) * 3, (1,) * 3)
    assert conv_kernels.select(vol3d, "input") == "implicit"


def test_thin_1x1_weight_gradients_go_to_shift_only_below_the_threshold():
    """A 1×1 layer's weight gradient with fewer input channels than
    ``implicit_weight_1x1_min_channels`` goes to shift (one thin product per image on dy as
    it is); by default (1) none does. A spatial kernel or a stride (shift does not apply)
    stays on the implicit GEMM either way."""
    from cnnkit import tuning

    def pick(c, k, size, kernel=1, stride=1):
        g = conv_kernels.ConvGeometry.of((16, c, size, size), (k, c, kernel, kernel),
                                         (stride, stride), (1, 1))
        return conv_kernels.select(g, "weight")
    assert pick(24, 144, 56) == pick(3, 64, 56) == "implicit"   # an inverted residual's
    with tuning.override(implicit_weight_1x1_min_channels=96):
        assert pick(24, 144, 56) == "shift"
        assert pick(128, 512, 7) == "implicit"
        assert pick(256, 64, 16) == "implicit"              # pw1x1
        assert pick(24, 144, 58, kernel=3) == "implicit"
        assert pick(24, 144, 56, stride=2) == "implicit"


def test_float64_falls_back_and_groups_apply():
    def geometry(dtype, groups):
        return conv_kernels.ConvGeometry.of((2, 4, 8, 8), (4, 4 // groups, 3, 3), (1, 1),
                                            (1, 1), groups, dtype)
    for pass_name in conv_kernels.PASSES:
        assert conv_implicit.applies(geometry(np.float32, 1), pass_name)
        assert not conv_implicit.applies(geometry(np.float64, 1), pass_name)
        assert conv_implicit.applies(geometry(np.float32, 2), pass_name)
    # one group's product decides; depthwise layers (one input channel per group) never
    grouped = conv_kernels.ConvGeometry.of((16, 128, 30, 30), (128, 32, 3, 3), (1, 1), (1, 1), 4)
    depthwise = conv_kernels.ConvGeometry.of((16, 96, 32, 32), (96, 1, 5, 5), (1, 1), (1, 1), 96)
    for pass_name in conv_kernels.PASSES:
        assert conv_kernels.select(grouped, pass_name) == "implicit"
        assert conv_kernels.select(depthwise, pass_name) != "implicit"


@pytest.mark.parametrize("planar", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("groups,c,k,dims,size", [(2, 6, 34, 2, 3), (4, 32, 20, 2, 3),
                                                  (3, 9, 6, 1, 3), (2, 4, 8, 2, 1)])
def test_grouped_layers_match_torch(groups, c, k, dims, size, stride, planar):
    """One product per group: each group's input channels (read in place), weights, outputs
    and bias; a 1×1 kernel's input gradient is cropped out of the padding."""
    rng = np.random.default_rng(groups * c + k)
    spatial, pads = (9,) * dims, [(1, 2)] * dims
    x = rng.standard_normal((2, c) + spatial, dtype=np.float32)
    w = rng.standard_normal((k, c // groups) + (size,) * dims, dtype=np.float32)
    b = rng.standard_normal(k, dtype=np.float32)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (xp, w, b))
    yt = TORCH_CONV[dims](xt, wt, bt, stride=stride, groups=groups)
    dy = rng.standard_normal(yt.shape, dtype=np.float32)
    yt.backward(torch.tensor(dy))
    g = conv_kernels.ConvGeometry.of(xp.shape, w.shape, (stride,) * dims, (1,) * dims, groups,
                                     np.float32, pads)
    scale = np.sqrt(w[0].size)
    source = conv_kernels.PaddedInput(xp)
    launches = []  # the planar kernel's groups argument, launch by launch
    planar_kernel = implicit_gemm_numba.planar
    with mock.patch.object(conv_implicit, "planar_wins", lambda *shape: planar), \
            mock.patch.object(implicit_gemm_numba, "planar",
                              lambda *args: launches.append(args[-2]) or planar_kernel(*args)):
        _check(conv_implicit.forward_from(source, w, g, b), yt.detach().numpy(), scale)
        inside = (slice(None), slice(None)) + tuple(slice(lo, s - hi) for s, (lo, hi)
                                                    in zip(xp.shape[2:], pads))
        _check(conv_implicit.input_pass(dy, w, g), xt.grad.numpy()[inside], scale)
    if stride == 1:  # planar, the forward pass and the input gradient each launch every
        # group at once (a second launch when the last image reads from a copy)
        assert set(launches) <= {groups}
        assert len(launches) in ((2, 3, 4) if planar else (0,))
    with mock.patch.object(conv_implicit, "planar_wins", lambda *shape: planar):
        dw, db = conv_implicit.weight_from(source, dy, g, with_bias=True)
        _check(dw, wt.grad.numpy(), scale * np.sqrt(dy[:, 0].size))
        _check(db, bt.grad.numpy(), np.sqrt(dy[:, 0].size))
        np.testing.assert_array_equal(conv_implicit.weight_pass(xp, dy, g), dw)
        # narrow groups computed together (their products' diagonal blocks) or one by one:
        # the same floats
        with mock.patch.object(conv_implicit, "lane_groups", lambda geometry: 1):
            alone = conv_implicit.weight_from(source, dy, g, with_bias=True)
        np.testing.assert_array_equal(alone[0], dw)
        np.testing.assert_array_equal(alone[1], db)
    per_group = c // groups  # each group's dy: a view of its channels
    for j, dy_j in enumerate(np.split(dy, groups, axis=1)):
        _check_weight_layouts(xp, dy_j, (size,) * dims, (stride,) * dims, (1,) * dims,
                              channels=per_group, first_channel=j * per_group)
    if stride == 1 and not planar:
        # the input gradient as tasks per image and group, each padding its group's
        # channels of dy, against the products per group on dy padded as a whole
        with mock.patch.object(conv_implicit, "planar_wins", lambda *shape: False):
            by_image = [conv_implicit.backward_input(dy, w, xp.shape[2:], (1,) * dims, pads,
                                                     groups, per_image=per_image)
                        for per_image in (True, False)]
        np.testing.assert_array_equal(*by_image)
        _check(by_image[0], xt.grad.numpy()[inside], scale)


@pytest.mark.parametrize("groups, c, k, stride, pads", [
    (2, 32, 16, 2, ((1, 1), (1, 1))),
    (4, 64, 32, 2, ((1, 0), (2, 1))),
    (3, 48, 24, 3, ((2, 2), (0, 1)))])
def test_grouped_strided_input_gradient_by_image_and_group(groups, c, k, stride, pads):
    """``by_phases`` of a grouped layer: one task per image and group (dy and dx split by
    group as views) and the groups one after another give PyTorch's gradient."""
    rng = np.random.default_rng(groups * c)
    x = rng.standard_normal((4, c, 11, 10), dtype=np.float32)
    w = rng.standard_normal((k, c // groups, 3, 3), dtype=np.float32)
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    dy, expected = _torch_input_gradient(xp, w, (stride,) * 2, groups, pads, rng)
    calls = []

    def recording(entry):
        def run(*args):
            calls.append(args[-6])  # groups (then clear, finite, sliding, row_length, chunk)
            return entry(*args)
        return run
    by_image = {nv: recording(f) for nv, f in implicit_gemm_numba.BY_IMAGE.items()}
    with mock.patch.dict(implicit_gemm_numba.BY_IMAGE, by_image):
        for per_image in (True, False):
            dx = strided_input.by_phases(dy, w, xp.shape[2:], (stride,) * 2, (1, 1), pads,
                                         per_image=per_image, groups=groups)
            _check(dx, expected, np.sqrt(w[0].size))
    assert calls == [groups]  # per image: one call, tasks by image and group


def _torch_input_gradient(xp, w, stride, groups, pads, rng):
    """(dy, PyTorch's dL/dx less the padding ``pads``) of a conv2d of the padded input xp,
    dy drawn from ``rng``."""
    xt = torch.tensor(xp, requires_grad=True)
    yt = TF.conv2d(xt, torch.tensor(w), stride=stride, groups=groups)
    dy = rng.standard_normal(yt.shape, dtype=np.float32)
    yt.backward(torch.tensor(dy))
    inside = (slice(None), slice(None)) + tuple(slice(lo, n - hi) for n, (lo, hi)
                                                in zip(xp.shape[2:], pads))
    return dy, xt.grad.numpy()[inside]



@pytest.mark.parametrize("groups, c, k, stride", [(1, 70, 20, 2), (2, 140, 18, 3),
                                                (1, 130, 33, (2, 3))])
def test_strided_input_gradient_of_channels_in_several_panels(groups, c, k, stride):
    """``by_phases`` with its input channels over several ragged panels of the tile (AVX-512:
    70 in 2 × 48 lanes, AVX2: 3 × 24), per image and as one product per phase over all
    images, whose weights are views of the phases' rows; PyTorch's gradient either way."""
    stride = (stride,) * 2 if isinstance(stride, int) else stride
    pads = ((1, 2), (0, 1))
    rng = np.random.default_rng(c + k)
    xp = rng.standard_normal((3, c, 13, 12), dtype=np.float32)
    w = rng.standard_normal((k, c // groups, 3, 4), dtype=np.float32)
    dy, expected = _torch_input_gradient(xp, w, stride, groups, pads, rng)
    for per_image in (True, False):
        dx = strided_input.by_phases(dy, w, xp.shape[2:], stride, (1, 1), pads,
                                     per_image=per_image, groups=groups)
        _check(dx, expected, np.sqrt(w[0].size))


@pytest.mark.parametrize("shape, pads", [((3, 1, 4, 5), (0, 1, 2, 1, 2, 1)),
                                         ((2, 2, 0, 3), (1, 1, 0, 0, 1, 2)),
                                         ((1, 3, 2, 1), (2, 0, 3, 1, 0, 0))])
def test_padded_image_is_numpys_pad(shape, pads):
    """A task's padded image (its own buffer, or its place in the kept padded input, zeroed
    first) is np.pad's, empty dims included, and nothing outside the image's place is
    touched; asked to, the copy also tells whether the image holds an inf or NaN."""
    image = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    front, top, left, back, bottom, right = pads
    expected = np.pad(image, ((0, 0), (front, back), (top, bottom), (left, right)))
    pad = np.array([front, top, left] + list(expected.shape[1:]), np.int64)
    for check in (False, True):
        padded, image_finite = implicit_gemm_numba._padded_image(image, pad, check)
        np.testing.assert_array_equal(padded, expected.reshape(-1))
        assert image_finite
    kept = np.full(expected.size + 10, np.nan, np.float32)
    kept[4:-6] = 0
    assert implicit_gemm_numba._pad_into(image, pad, kept, 4, True)
    np.testing.assert_array_equal(kept[4:-6], expected.reshape(-1))
    assert np.isnan(kept[:4]).all() and np.isnan(kept[-6:]).all()
    for where in range(min(image.size, 2)):  # the first value, and one in another row
        for special in (np.nan, np.inf, -np.inf):
            spoilt = image.copy()
            spoilt.reshape(-1)[-where] = special
            assert not implicit_gemm_numba._padded_image(spoilt, pad, True)[1]
            assert implicit_gemm_numba._padded_image(spoilt, pad, False)[1]
            assert not implicit_gemm_numba._finite_values(spoilt.reshape(-1))


def test_per_image_finiteness_flags_need_one_byte_per_task():
    """The kernel writes one flag per task (image and group) and checks no bounds, so a
    flags array of another size is refused before it runs; each task's flag says whether
    its group's channels of its image are finite."""
    x = np.zeros((3, 4, 5, 5), np.float32)
    w = np.zeros((8, 2, 3, 3), np.float32)
    wt = conv_implicit.group_panels(w, 2, conv_implicit._panels)
    for size in (3, 7):
        with pytest.raises(ValueError, match="finite must have one byte per task, 6"):
            conv_implicit.per_image_product(x, [(1, 1), (1, 1)], wt, (4, 2, 3, 3), (1, 1),
                                            (5, 5), groups=2, finite=np.zeros(size, np.uint8))
    x[2, 3, 4, 0] = np.inf  # image 2's second group
    flags = np.zeros(6, np.uint8)
    conv_implicit.per_image_product(x, [(1, 1), (1, 1)], wt, (4, 2, 3, 3), (1, 1), (5, 5),
                                    groups=2, finite=flags)
    assert flags.tolist() == [1, 1, 1, 1, 1, 0]


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("channels", [3, 16, 40])
def test_infinite_weight_gives_torch_nans_in_the_input_gradient(channels):
    """Zero-padded dy times an infinite tap would be NaN where PyTorch has no term at all."""
    rng = np.random.default_rng(channels)
    xp = rng.standard_normal((2, channels, 8, 8), dtype=np.float32)
    w = rng.standard_normal((16, channels, 3, 3), dtype=np.float32)
    w[2, 0, 1, 1] = np.inf
    dy = rng.standard_normal((2, 16, 6, 6), dtype=np.float32)
    xt = torch.tensor(xp, requires_grad=True)
    TF.conv2d(xt, torch.tensor(w)).backward(torch.tensor(dy))
    dx = conv_kernels.conv_backward_input(dy, w, (8, 8), (1, 1), (1, 1))
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(xt.grad.numpy()))


def test_unwritten_buffer_rows_reach_no_result_and_raise_no_warning():
    """The kernels' buffers are np.empty or ``aligned.empty``: rows past the last tap or
    position may hold anything, and neither the results nor a warnings filter (``-W error``)
    may see them (here they hold +inf and -inf, whose sum would warn of an invalid value)."""
    import warnings

    from cnnkit import tuning
    from cnnkit.kernels import aligned
    rng = np.random.default_rng(5)
    xp = rng.standard_normal((4, 3, 12, 12), dtype=np.float32)  # 27 taps: a ragged last tile
    dy = rng.standard_normal((4, 20, 10, 10), dtype=np.float32)
    expected = conv_implicit.backward_weight(xp, dy, (3, 3), (1, 1), (1, 1))
    # both kernels compiled before np.empty is patched (Numba would type the patch, a Python
    # function, and fail on a cold cache)
    conv_implicit.forward(xp, expected, (1, 1), (1, 1), (10, 10))
    real_empty, real_aligned = np.empty, aligned.empty

    def poisoned(empty):
        def infinite_empty(*args, **kwargs):
            out = empty(*args, **kwargs)
            if out.dtype.kind == "f":
                flat = out.reshape(-1)
                flat[:] = np.inf
                flat[np.arange(flat.size) % 3 == 1] = -np.inf
            return out
        return infinite_empty
    with mock.patch.object(np, "empty", poisoned(real_empty)), \
            mock.patch.object(aligned, "empty", poisoned(real_aligned)), \
            warnings.catch_warnings():
        warnings.simplefilter("error")
        for share_positions in (50, 2048):  # several shares, then one
            with tuning.override(implicit_weight_share_positions=share_positions,
                                 implicit_weight_partials_per_dy=0):
                dw = conv_implicit.backward_weight(xp, dy, (3, 3), (1, 1), (1, 1))
            np.testing.assert_allclose(dw, expected, rtol=1e-5, atol=1e-4)
            y = conv_implicit.forward(xp, dw, (1, 1), (1, 1), (10, 10))
            assert np.isfinite(y).all()


@pytest.mark.parametrize("share_positions", [100, 2048])  # 12 shares (8 used) or 1
def test_weight_gradient_is_the_same_on_any_thread_count(share_positions):
    """Bit for bit: the position shares and tap groups are fixed numbers, not one per thread
    (a resumed run must continue exactly whatever the thread settings); and right."""
    import numba

    from cnnkit import tuning
    rng = np.random.default_rng(11)
    xp = rng.standard_normal((4, 6, 20, 20), dtype=np.float32)
    dy = rng.standard_normal((4, 24, 18, 18), dtype=np.float32)
    threads = numba.get_num_threads()
    try:
        results = []
        for count in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(count)
            with tuning.override(implicit_weight_share_positions=share_positions,
                                 implicit_weight_partials_per_dy=0):
                results.append(conv_implicit.backward_weight(xp, dy, (3, 3), (1, 1), (1, 1)))
    finally:
        numba.set_num_threads(threads)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)
    xt = torch.tensor(xp, requires_grad=True)
    wt = torch.zeros((24, 6, 3, 3), requires_grad=True)
    TF.conv2d(xt, wt).backward(torch.tensor(dy))
    _check(results[0], wt.grad.numpy(), np.sqrt(dy[:, 0].size * 54))


@pytest.mark.parametrize("k", [20, 64, 200])
def test_forward_tasks_split_by_channels_too_give_the_same_floats(k):
    """The forward kernel's tasks are chunks of positions times groups of the weights' panels
    (``task_split``): each output's sum is one task's, so every split gives the same floats,
    the bias and the copy to channels-first included."""
    compiled = implicit_gemm_numba
    rng = np.random.default_rng(k)
    xp = rng.standard_normal((3, 16, 7, 7), dtype=np.float32)
    w = rng.standard_normal((k, 16, 3, 3), dtype=np.float32)
    b = rng.standard_normal(k, dtype=np.float32)
    rows, vectors, kp = compiled.tile(k)
    wt = compiled.panels(w.reshape(1, k, -1))
    offset = conv_implicit._offsets(xp.shape, (3, 3), (1, 1))
    corner = conv_implicit._corners(xp.shape, (5, 5), (1, 1))
    expected = TF.conv2d(torch.tensor(xp), torch.tensor(w), torch.tensor(b)).numpy()
    results = []
    for chunks, groups in [(1, 1), (3, 1), (1, 8), (4, 3), (64, 64)]:
        y = np.full((3, k, 25), np.nan, np.float32)
        compiled.ENTRY[vectors][0](xp, wt, offset, corner,
                                   np.empty((corner.size + rows, kp), np.float32), y, chunks,
                                   groups, 128, compiled.NO_ROWS, b)
        results.append(y)
    _check(results[0].reshape(expected.shape), expected, np.sqrt(w[0].size))
    for y in results[1:]:
        np.testing.assert_array_equal(y, results[0])


def _strided_input_geometry(dims, n, c, k, side, kernel):
    pad = kernel // 2
    return conv_kernels.ConvGeometry.of((n, c) + (side + 2 * pad,) * dims,
                                        (k, c) + (kernel,) * dims, (2,) * dims, (1,) * dims,
                                        1, np.float32, ((pad, pad),) * dims)


def test_strided_input_gradients_of_few_channels_over_all_phases_by_their_share_of_taps():
    """Below ``implicit_subpixel_min_terms``, a strided input gradient of fewer channels than
    a vector's lanes that the fold leaves runs over all phases where its kernel's taps are
    ``implicit_subpixel_min_share`` of the product's terms (2-D 5 × 5 and wider at stride
    2), or where it is 3-D; else (a 2-D 3 × 3) im2col + col2im."""
    from cnnkit import tuning
    assert strided_input.subpixel_share(_strided_input_geometry(2, 1, 2, 8, 8, 3)) == 9 / 16
    assert strided_input.subpixel_share(_strided_input_geometry(2, 1, 2, 8, 8, 5)) == \
        pytest.approx(25 / 36)
    assert strided_input.subpixel_share(_strided_input_geometry(1, 1, 2, 8, 8, 7)) == 7 / 8
    cases = [((2, 16, 2, 16, 7, 7), "implicit"), ((2, 8, 2, 48, 7, 5), "implicit"),
             ((3, 4, 2, 8, 8, 3), "implicit"), ((2, 16, 2, 16, 7, 3), "gemm")]
    minimum = tuning.value("implicit_subpixel_min_terms")
    for layer, expected in cases:
        g = _strided_input_geometry(*layer)
        assert not window_fold.wins(g) and strided_input.every_phase_has_taps(g)
        assert strided_input.subpixel_terms(g) < minimum and layer[2] < implicit_gemm_numba.LANES
        assert conv_kernels.select(g, "input") == expected, layer
    with tuning.override(implicit_subpixel_min_share=1.0):
        assert conv_kernels.select(_strided_input_geometry(2, 16, 2, 16, 7, 7), "input") == \
            "gemm"


def test_task_split_divides_channels_only_where_the_weights_outweigh_the_inputs():
    width = implicit_gemm_numba.LANES
    tasks = conv_implicit.tuning.value("implicit_chunks_per_thread") * \
        conv_implicit.numba.get_num_threads()
    assert conv_implicit.task_split(32 * 32 * 32, 64, width)[1] == 1     # res3x3's forward
    chunks, groups = conv_implicit.task_split(8 * 49, 1280, width)        # 320 → 1280 on 7 × 7
    assert groups > 1 and chunks * groups <= tasks


@pytest.mark.parametrize("positions, channels", [
    (49, 16), (64, 256), (256, 128), (8 * 49, 1280), (32 * 256, 64), (32 * 32 * 32, 64),
    (4 * 112 * 112, 192)])
def test_task_split_takes_the_fewest_tasks_whose_rows_stay_in_cache(positions, channels):
    """As many tasks as threads, or a multiple, the fewest whose output rows stay within
    ``implicit_image_chunk`` floats; past the most tasks allowed, that many."""
    width = implicit_gemm_numba.LANES
    threads = conv_implicit.numba.get_num_threads()
    most = conv_implicit.tuning.value("implicit_chunks_per_thread") * threads
    budget = conv_implicit.tuning.value("implicit_image_chunk")

    def rows(chunks, groups):
        return -(-positions // chunks) * -(-(channels // width) // groups) * width

    def fitting(tasks):
        return [g for g in range(1, tasks + 1) if tasks % g == 0 and g <= channels // width
                and rows(tasks // g, g) <= budget]
    chunks, groups = conv_implicit.task_split(positions, channels, width)
    tasks = chunks * groups
    if rows(chunks, groups) <= budget:
        assert tasks % threads == 0 and tasks <= most
        assert not any(fitting(fewer) for fewer in range(threads, tasks, threads))
    else:
        assert not fitting(most) and most // groups == chunks
    if positions == 49:
        assert (chunks, groups) == (threads, 1)  # one panel, a few rows: a task per thread


@pytest.mark.skipif(conv_implicit.numba.config.NUMBA_NUM_THREADS < 2, reason="one thread")
def test_task_split_of_two_threads_reads_least_among_the_splits_that_fit():
    """At 2 threads, 16-float panels and the default bounds (2^17 floats of rows, 8 tasks a
    thread): the split of the fewest tasks that fit, the one reading least (g·P + c·Kp), and
    the formula's past them."""
    from cnnkit import tuning
    threads = conv_implicit.numba.get_num_threads()
    conv_implicit.numba.set_num_threads(2)
    try:
        with tuning.override(implicit_image_chunk=1 << 17, implicit_chunks_per_thread=8):
            splits = {shape: conv_implicit.task_split(*shape, 16) for shape in [
                (392, 1280), (8192, 64), (64, 256), (25088, 64), (32768, 64), (49, 16),
                (4 * 112 * 112, 192)]}
    finally:
        conv_implicit.numba.set_num_threads(threads)
    assert splits == {(392, 1280): (1, 4), (8192, 64): (4, 1), (64, 256): (1, 2),
                      (25088, 64): (14, 1), (32768, 64): (16, 1), (49, 16): (2, 1),
                      (4 * 112 * 112, 192): (16, 1)}


def test_per_image_tasks_need_images_enough_and_positions_for_their_channels():
    n = 4 * conv_implicit.numba.get_num_threads()
    assert conv_implicit.per_image_tasks(n, 32 * 32, 64)         # res3x3's input gradient
    assert not conv_implicit.per_image_tasks(n - 1, 32 * 32, 64)  # too few images
    assert not conv_implicit.per_image_tasks(n, 7 * 7, 320)      # the weights outweigh the image
    assert conv_implicit.per_image_tasks(1, 7 * 7, 320, per_image=True)


@pytest.mark.parametrize("n,k,t", [(5, 20, 1), (3, 40, 1), (2, 7, 9), (1, 33, 4)])
def test_panels_lay_out_b_zero_padded(n, k, t):
    """B[(n, t), k] = a[n, k, t] in panels of the tile's width, rows past K zero; one tap per
    row (t = 1, a 1×1 kernel's input gradient) is copied without transposes."""
    compiled = implicit_gemm_numba
    a = np.random.default_rng(k).standard_normal((n, k, t), dtype=np.float32)
    out = compiled.panels(a)
    width = out.shape[2]
    b = out.transpose(1, 0, 2).reshape(n * t, -1)
    assert width == compiled.LANES * compiled.tile(k)[1] and b.shape[1] == -(-k // width) * width
    np.testing.assert_array_equal(b[:, :k], a.transpose(0, 2, 1).reshape(n * t, k))
    np.testing.assert_array_equal(b[:, k:], 0)


def test_register_tile_operands_start_on_cache_lines():
    """The weight panels (B) and the output rows (C) that the compiled products get are
    ``aligned.LINE``-aligned (NumPy's own arrays are 16-byte aligned), in the forward pass,
    both gradients and a strided input gradient (the weight gradient's B, dy's rows, is laid
    out by its kernel's tasks); the results stay right."""
    from cnnkit.kernels import aligned
    compiled = implicit_gemm_numba
    seen = []

    def recording(entry, operands):
        def run(*args):
            seen.extend(args[i].ctypes.data % aligned.LINE for i in operands(args))
            return entry(*args)
        return run
    # the weight kernel's B is dy laid out (argument 1) only when the caller did it
    entries = {nv: (recording(f, lambda args: (1, 4)),
                    recording(w, lambda args: (1, 5) if args[2] else (5,)))
               for nv, (f, w) in compiled.ENTRY.items()}
    # (the per-image kernel puts its output rows on cache lines itself, in each task's buffer)
    by_image = {nv: recording(f, lambda args: (3,)) for nv, f in compiled.BY_IMAGE.items()}
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 20, 9, 9), dtype=np.float32)
    w = rng.standard_normal((40, 20, 3, 3), dtype=np.float32)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    with mock.patch.dict(compiled.ENTRY, entries), mock.patch.dict(compiled.BY_IMAGE, by_image):
        for stride in ((1, 1), (2, 2)):
            yt = TF.conv2d(xt, wt, stride=stride, padding=1)
            dy = rng.standard_normal(yt.shape, dtype=np.float32)
            dxt, dwt = torch.autograd.grad(yt, (xt, wt), torch.tensor(dy))
            pads = ((1, 1), (1, 1))
            _check(conv_implicit.forward(np.pad(x, ((0, 0), (0, 0)) + pads), w, stride, (1, 1),
                                         yt.shape[2:]), yt.detach().numpy(), 10)
            _check(conv_implicit.backward_weight(np.pad(x, ((0, 0), (0, 0)) + pads), dy,
                                                 (3, 3), stride, (1, 1)), dwt.numpy(), 100)
            dx = (conv_implicit.backward_input(dy, w, (11, 11), (1, 1), pads) if stride == (1, 1)
                  else strided_input.by_phases(dy, w, (11, 11), stride, (1, 1), pads))
            _check(dx, dxt.numpy(), 10)
    assert len(seen) >= 8 and not any(seen)


@pytest.mark.parametrize("shape", [0, 5, (3, 7), (2, 3, 17), (4, 0, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_aligned_arrays_are_numpy_arrays_on_a_line(shape, dtype):
    from cnnkit.kernels import aligned
    for _ in range(4):  # NumPy's own allocations land on a line one time in four
        out = aligned.empty(shape, dtype)
        assert out.shape == np.empty(shape).shape and out.dtype == dtype
        assert out.flags.c_contiguous and out.flags.writeable
        zeros = aligned.zeros(shape, dtype)
        assert not zeros.any()
        if out.size:  # an empty array has no data to align (NumPy may move its pointer)
            assert out.ctypes.data % aligned.LINE == 0 and zeros.ctypes.data % aligned.LINE == 0


@pytest.mark.parametrize("size, launches", [(8, 1), (9, 2)])
def test_planar_reads_stop_at_the_end_of_the_input(size, launches):
    """The planar kernel reads whole strips of positions: an input whose last strip ends
    exactly at its end (8 × 8 maps fill whole strips on every target) is read in place, in
    one launch; one whose last strip would read past its end gives its last image a copy
    with room to spare, in a second launch. Either way y is right."""
    rng = np.random.default_rng(size)
    n, c, k = 3, 4, 32
    xp = rng.standard_normal((n, c, size, size), dtype=np.float32)
    w = rng.standard_normal((k, c, 1, 1), dtype=np.float32)
    calls = []
    planar = implicit_gemm_numba.planar
    with mock.patch.object(conv_implicit, "planar_wins", lambda *shape: True), \
            mock.patch.object(implicit_gemm_numba, "planar",
                              lambda x_flat, *args: calls.append(x_flat.size) or
                              planar(x_flat, *args)):
        y = conv_implicit.forward(xp, w, (1, 1), (1, 1), (size, size))
    assert len(calls) == launches and calls[0] == xp.size
    np.testing.assert_allclose(y, np.einsum("kc,nchw->nkhw", w[:, :, 0, 0], xp), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("shape, w_shape, stride, pads, groups", [
    ((8, 5, 9, 9), (16, 5, 3, 3), (1, 1), ((1, 1), (1, 1)), 1),
    ((8, 8, 19, 17), (24, 8, 3, 3), (2, 2), ((1, 0), (2, 1)), 1),  # strided, uneven padding
    ((8, 16, 60), (16, 16, 5), (2,), ((2, 2),), 1),
    ((8, 2, 6, 5, 5), (16, 2, 3, 3, 3), (1, 1, 1), ((1, 1), (1, 1), (0, 2)), 1),
    ((4, 8, 9, 9), (32, 4, 3, 3), (1, 1), ((1, 1), (1, 1)), 2),  # grouped: tasks per group
    ((4, 6, 19, 17), (12, 2, 3, 3), (2, 2), ((1, 0), (2, 1)), 3),
    ((2, 16, 30), (64, 4, 5), (1,), ((2, 2),), 4)])
def test_forward_tasks_pad_their_own_images(shape, w_shape, stride, pads, groups):
    """The forward pass runs one task per image (and group), which pads its own image (its
    group's channels of it; ``implicit.forward_from``): the same floats, bias included, as the
    products on the input padded as a whole. With no weight gradient to read the padded input
    (inference) nothing else is kept; a training step's source (``shared``) keeps the padded
    input the tasks wrote, image by image, for its weight gradient."""
    from cnnkit.kernels.conv.padded_input import PaddedInput
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    b = rng.standard_normal(w_shape[0], dtype=np.float32)
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    dilation = (1,) * len(stride)
    g = conv_kernels.ConvGeometry.of(xp.shape, w.shape, stride, dilation, groups)
    assert conv_implicit._per_image_forward(g)
    expected = conv_implicit._forward(xp, w, g, b)
    xt = torch.tensor(xp)
    _check(expected, TORCH_CONV[len(stride)](xt, torch.tensor(w), torch.tensor(b), stride,
                                             groups=groups).numpy(), 10)
    pads_seen = []

    def recording(entry):
        def run(*args):
            pads_seen.append(args[1].size)
            return entry(*args)
        return run

    def check(shared):
        source = PaddedInput(x, pads, shared=shared)
        y = conv_implicit.forward_from(source, w, g, b)
        np.testing.assert_array_equal(y, expected)
        assert source.is_padded == shared
        if shared:
            np.testing.assert_array_equal(source.padded(), xp)
    by_image = {nv: recording(f) for nv, f in implicit_gemm_numba.BY_IMAGE.items()}
    with mock.patch.dict(implicit_gemm_numba.BY_IMAGE, by_image):
        for shared in (False, True):
            check(shared)  # compiles the kernels, which Numba cannot with np.empty patched
        with mock.patch.object(conv_implicit.np, "empty", poisoned_empty):
            for shared in (False, True):
                check(shared)
    assert pads_seen == [6, 6, 6, 6]  # the tasks padded the images (groups: their channels)


@pytest.mark.parametrize("shape, w_shape, pads, stride, dilation, groups", [
    ((16, 6, 6), (24, 16, 1, 1), None, 1, 1, 1),              # a 1×1 layer: nothing to pad
    ((4, 9, 7), (20, 4, 3, 3), None, 1, 1, 1),                # valid
    ((4, 9, 7), (20, 4, 3, 3), ((1, 1), (0, 2)), 1, 1, 1),    # padded already, as a whole
    ((16, 12, 12), (24, 16, 1, 1), None, 2, 1, 1),            # a strided 1×1 shortcut
    ((4, 11, 9), (20, 4, 3, 3), None, 1, 2, 1),               # dilated
    ((32, 6, 6), (48, 16, 1, 1), None, 1, 1, 2),              # two groups
    ((16, 40), (24, 16, 1), None, 1, 1, 1),                   # 1-D
    ((4, 6, 7, 8), (20, 4, 3, 3, 3), None, 1, 1, 1)])         # 3-D, valid
def test_forward_tasks_run_per_image_on_inputs_with_nothing_to_pad(shape, w_shape, pads, stride,
                                                                   dilation, groups):
    """An input with no padding to make (none, or padded already) runs per image too, each
    task's rows in a buffer of its own and the next image's lines fetched
    (``implicit_gemm_numba.by_image``), with no padding made: the same floats, bias
    included, as the parallel products and PyTorch's, and every cell written (np.empty
    poisoned). ``shape`` leaves out the batch: enough images for tasks per image."""
    from cnnkit.kernels.conv.padded_input import PaddedInput
    rng = np.random.default_rng(6)
    dims = len(w_shape) - 2
    x = rng.standard_normal((4 * conv_implicit.numba.get_num_threads(),) + shape,
                            dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    b = rng.standard_normal(w_shape[0], dtype=np.float32)
    source = PaddedInput(x, pads)
    xp = source.padded()  # made before the call: nothing is left to pad
    g = conv_kernels.ConvGeometry.of(xp.shape, w.shape, (stride,) * dims, (dilation,) * dims,
                                     groups, np.float32, pads)
    assert conv_implicit._per_image_forward(g)
    expected = conv_implicit._forward(xp, w, g, b, planar=False)
    torch_conv = getattr(TF, f"conv{dims}d")
    _check(expected, torch_conv(torch.tensor(xp), torch.tensor(w), torch.tensor(b), stride, 0,
                                dilation, groups).numpy(), 10)
    calls = []

    def recording(entry):
        def run(*args):
            calls.append(args[1].size)  # the padding the tasks make: none
            return entry(*args)
        return run
    by_image = {nv: recording(f) for nv, f in implicit_gemm_numba.BY_IMAGE.items()}
    with mock.patch.dict(implicit_gemm_numba.BY_IMAGE, by_image):
        np.testing.assert_array_equal(conv_implicit.forward_from(source, w, g, b), expected)
        with mock.patch.object(conv_implicit.np, "empty", poisoned_empty):
            np.testing.assert_array_equal(conv_implicit.forward_from(source, w, g, b), expected)
    assert calls == [0, 0]


def test_no_pass_pads_the_whole_input_and_the_weight_gradient_reads_the_forward_copy():
    """F.conv2d marks its padded input shared when the weight gradient will be wanted: the
    forward pass's tasks pad it image by image into the copy that the weight gradient then
    reads, so no pass pads the whole input, in a training step or under no_grad, or with a
    frozen weight (where nothing is kept)."""
    import cnnkit
    from cnnkit import functional as F
    from cnnkit.kernels.conv import padded_input
    rng = np.random.default_rng(6)
    n = 4 * conv_implicit.numba.get_num_threads()  # enough images for tasks per image
    x = cnnkit.tensor(rng.standard_normal((n, 8, 12, 12), dtype=np.float32))
    w = cnnkit.tensor(rng.standard_normal((32, 8, 3, 3), dtype=np.float32),
                      requires_grad=True)
    wholes = []

    def counting(real):
        def pad(*args):
            wholes.append(args[0].shape)
            return real(*args)
        return pad
    with mock.patch.object(padded_input, "pad_planes", counting(padded_input.pad_planes)), \
            mock.patch.object(padded_input, "zero_pad", counting(padded_input.zero_pad)):
        y = F.conv2d(x, w, padding=1)
        y.backward(np.ones(y.shape, np.float32))
        with cnnkit.no_grad():
            inferred = F.conv2d(x, w, padding=1)
        w.requires_grad = False
        frozen = F.conv2d(x, w, padding=1)
    assert wholes == []
    np.testing.assert_array_equal(inferred.data, y.data)
    np.testing.assert_array_equal(frozen.data, y.data)
    xt, wt = torch.tensor(x.data), torch.tensor(w.data, requires_grad=True)
    TF.conv2d(xt, wt, padding=1).sum().backward()
    _check(w.grad.data, wt.grad.numpy(), 100)


def _reference_offsets(x_shape, kernel, dilation, channels, first_channel):
    """offset[(c, a)] = c·plane + Σ_j a_j·d_j·pitch_j, by loops."""
    plane = int(np.prod(x_shape[2:]))
    pitch = [int(np.prod(x_shape[3 + j:])) for j in range(len(kernel))]
    return np.array([c * plane + sum(a_j * d * p for a_j, d, p in zip(a, dilation, pitch))
                     for c in range(first_channel, first_channel + channels)
                     for a in np.ndindex(*kernel)], np.int64)


def test_index_tables_are_shared_only_when_small():
    """Small tables are built once per shape and handed out again (a layer on one image
    would otherwise rebuild them every call); each key gives its own values; tables past
    ``_SHARED_TABLE_ENTRIES`` are built afresh."""
    shape = (2, 6, 7, 9)
    first = conv_implicit._offsets(shape, (3, 2), (1, 2), 4, 2)
    assert conv_implicit._offsets(list(shape), [3, 2], (1, 2), 4, 2) is first
    np.testing.assert_array_equal(first, _reference_offsets(shape, (3, 2), (1, 2), 4, 2))
    other = conv_implicit._offsets(shape, (3, 2), (1, 2), 4, 1)
    np.testing.assert_array_equal(other, _reference_offsets(shape, (3, 2), (1, 2), 4, 1))
    corners = conv_implicit._corners(shape, (3, 4), (2, 2))
    assert conv_implicit._corners(shape, (3, 4), (2, 2)) is corners
    expected = [n * 6 * 7 * 9 + i * 2 * 9 + j * 2 for n in range(2) for i in range(3)
                for j in range(4)]
    np.testing.assert_array_equal(corners, expected)
    large = (conv_implicit._SHARED_TABLE_ENTRIES + 1, 1, 1)
    assert conv_implicit._corners(large, (1,), (1,)) is not \
        conv_implicit._corners(large, (1,), (1,))


def _off_line(a, floats=1):
    """A copy of ``a`` whose data starts ``floats`` values past a cache line (one: off the
    vector boundaries of every target, SSE's 16 bytes included)."""
    buffer = aligned.empty(a.size + floats)
    out = buffer[floats:].reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("n,c,k,size,groups", [(3, 5, 9, (16, 16), 1), (2, 8, 37, (10, 10), 1),
                                               (2, 12, 30, (16, 16), 3), (1, 4, 6, (7,), 2),
                                               (2, 6, 11, (4, 4, 4), 1)])
@pytest.mark.parametrize("tap_block", [4, 128])
def test_planar_packed_strips_give_the_same_floats(n, c, k, size, groups, tap_block):
    """The planar kernel's copies of its strips (``packed``) change where the tiles read, not
    what: the floats equal the unpacked ones bit for bit, for ragged row tiles, grouped
    products, maps that do not fill whole strips (the last image read from a copy), 1- and
    3-D maps and several blocks of taps (each copied in turn), on an input off the vector
    boundaries, with a bias."""
    rng = np.random.default_rng(11)
    xp = _off_line(rng.standard_normal((n, c) + size, dtype=np.float32))
    w = rng.standard_normal((k, c // groups) + (1,) * len(size), dtype=np.float32)
    bias = rng.standard_normal(k, dtype=np.float32)
    ones = (1,) * len(size)
    results = []
    for packed in (False, True):
        with mock.patch.object(conv_implicit, "_packs_planar", lambda *args: packed), \
                conv_implicit.tuning.override(implicit_tap_block=tap_block):
            results.append(conv_implicit._forward_planar(xp, w, ones, size, bias=bias,
                                                         groups=groups))
    np.testing.assert_array_equal(results[0], results[1])
    expected = TORCH_CONV[len(size)](torch.from_numpy(np.ascontiguousarray(xp)),
                                     torch.from_numpy(w), torch.from_numpy(bias),
                                     groups=groups).numpy()
    _check(results[1], expected, 1.0)


@pytest.mark.parametrize("groups,k", [(1, 9), (1, 64), (3, 30)])
@pytest.mark.parametrize("tap_block", [3, 128])
def test_planar_bias_is_added_as_the_last_tap_block_is_stored(groups, k, tap_block):
    """The planar tiles add the bias to their sums as they store them after the last block of
    taps: the same floats, bit for bit, as adding it to the product afterwards, for one block
    or several (a bias added with an earlier block would round differently), ragged row tiles
    (K not a multiple of the tile's rows) and groups, whose outputs take their own group's
    biases (laid out per row tile like the weights' rows). Infinite and NaN biases land on
    their channels only."""
    rng = np.random.default_rng(13)
    c, size = 6 * groups, (9, 9)
    xp = rng.standard_normal((2, c) + size, dtype=np.float32)
    w = rng.standard_normal((k, c // groups, 1, 1), dtype=np.float32)
    bias = rng.standard_normal(k, dtype=np.float32)
    bias[[1, k - 1]] = [np.inf, np.nan]
    with conv_implicit.tuning.override(implicit_tap_block=tap_block):
        plain = conv_implicit._forward_planar(xp, w, (1, 1), size, groups=groups)
        biased = conv_implicit._forward_planar(xp, w, (1, 1), size, bias=bias, groups=groups)
    np.testing.assert_array_equal(biased, plain + bias[:, None, None])
    expected = TORCH_CONV[2](torch.from_numpy(xp), torch.from_numpy(w), torch.from_numpy(bias),
                             groups=groups).numpy()
    np.testing.assert_array_equal(np.isnan(biased), np.isnan(expected))
    _check(np.nan_to_num(biased), np.nan_to_num(expected), 1.0)


@pytest.mark.parametrize("lanes,vectors,wide", [(16, 4, True), (8, 2, False), (4, 4, False)])
def test_planar_packs_misaligned_or_wide_strips_on_1kb_planes(lanes, vectors, wide):
    """The rule of ``_packs_planar``: strips off vector boundaries, or on them but several
    cache lines wide (AVX-512's planar tile: 4 vectors of 16 lanes; AVX2's 2 of 8 and NEON's
    4 of 4 are one line), 1 KB apart, each read by enough row tiles."""
    many = conv_implicit.tuning.value("implicit_planar_pack_min_row_tiles")
    x = np.zeros(32 * 64 * 256 + 64, np.float32)
    on_line, off_line = aligned.empty(x.size), _off_line(x)
    packs = conv_implicit._packs_planar
    with mock.patch.object(conv_implicit.compiled, "LANES", lanes), \
            mock.patch.object(conv_implicit.compiled, "PLANAR_VECTORS", vectors):
        assert packs(off_line, 64 * 256, 256, 1, many)
        assert packs(on_line, 64 * 256, 256, 1, many) is wide    # on vector boundaries
        assert not packs(off_line, 64 * 256, 256, 1, many - 1)   # too few row tiles
        assert not packs(off_line, 64 * 196, 196, 1, many)       # 14 × 14 planes: 784 bytes
        assert packs(on_line, 3 * 1024, 1024, 3, many) is wide   # 32 × 32 planes, 3 groups
        assert packs(on_line[1:], 3 * 1024, 1024, 3, many)


def test_weight_gradient_on_few_taps_gives_each_task_a_share():
    """Fewer positions than shares of implicit_weight_share_positions leave tasks to groups
    of taps, which lay dy out first; with few taps (their partial sums under
    implicit_weight_partials_per_dy times dy) every task takes a share instead, and dy is not
    laid out. Both give PyTorch's gradients."""
    from unittest import mock

    from cnnkit import tuning
    rng = np.random.default_rng(12)
    xp = rng.standard_normal((16, 64, 6, 6), dtype=np.float32)  # 576 positions: 4 shares
    dy = rng.standard_normal((16, 32, 6, 6), dtype=np.float32)
    xt = torch.tensor(xp, requires_grad=True)
    wt = torch.zeros((32, 64, 1, 1), requires_grad=True)
    torch.nn.functional.conv2d(xt, wt).backward(torch.tensor(dy))
    for ratio, lays_out in ((4.0, False), (0, True)):  # 8 × 64 × Kp against 4 × 576 × 32
        with tuning.override(implicit_weight_share_positions=128,
                             implicit_weight_partials_per_dy=ratio), \
                mock.patch.object(conv_implicit, "planes_to_rows",
                                  wraps=conv_implicit.planes_to_rows) as layout:
            dw, db = conv_implicit.backward_weight(xp, dy, (1, 1), (1, 1), (1, 1), True)
        assert layout.called == lays_out
        np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("groups, pads", [(1, [(0, 0), (0, 0)]), (1, [(1, 0), (0, 2)]),
                                          (2, [(0, 0), (0, 0)]), (8, [(1, 1), (1, 1)])])
def test_pointwise_weight_gradient_by_output_rows(groups, pads):
    """A 1×1 layer at stride 1 with more output than input channels (per group) and enough
    weights per position takes its weight gradient as one product whose rows are the output
    channels: no partial sums, so no shares to add (``shares_to_planes`` is not called). Its
    gradients are PyTorch's, padded input, groups (8 narrow groups: lane_groups' blocks)
    and the bias included; with the rule off (0) the shares give the same, and a layer with
    K ≤ C keeps them."""
    from unittest import mock

    from cnnkit import tuning
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 16, 4, 5), dtype=np.float32)
    w = rng.standard_normal((64, 16 // groups, 1, 1), dtype=np.float32)
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads))
    dy = rng.standard_normal((3, 64) + padded, dtype=np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    flat_pads = [p for pair in reversed(pads) for p in pair]
    TF.conv2d(TF.pad(xt, flat_pads), wt, groups=groups).backward(torch.tensor(dy,
                                                                             dtype=torch.float64))
    for least, by_rows in ((0.01, True), (0, False)):
        with tuning.override(implicit_weight_rows_min_weights_per_position=least), \
                conv_kernels.using(algorithm="implicit"), \
                mock.patch.object(conv_implicit, "shares_to_planes",
                                  wraps=conv_implicit.shares_to_planes) as shares:
            dw, db = conv_kernels.conv_backward_weight(x, dy, (1, 1), (1, 1), (1, 1), groups,
                                                       pads, with_bias=True)
        assert shares.called != by_rows
        np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)
    assert conv_implicit.weight_by_output_rows(3 * 20, 64, 16, (1, 1), (1, 1)) is False
    assert not conv_implicit.weight_by_output_rows(8, 16, 16, (1, 1), (1, 1))  # K ≤ C
    assert not conv_implicit.weight_by_output_rows(8, 64, 16, (3, 3), (1, 1))
    assert not conv_implicit.weight_by_output_rows(8, 64, 16, (1, 1), (2, 2))
    assert conv_implicit.weight_by_output_rows(8, 64, 16, (1, 1), (1, 1))  # 1024 ≥ 64 · 8


@pytest.mark.parametrize("padded,kernel,plane_block", [
    ((16, 16), (1, 1), True),      # 1 KB planes: the same 4 of L1's 64 sets
    ((32, 32), (1, 1), True),      # 4 KB: one set
    ((28, 28), (1, 1), True),      # 3 KB planes: 128 taps span 98 pages
    ((24, 24), (1, 1), True),      # 2.25 KB: 72 pages
    ((15, 15), (1, 1), False),     # 900 bytes: every set, 28 pages
    ((14, 14), (1, 1), False),
    ((8, 8), (1, 1), False),       # 256 bytes: 16 sets hold the block
    ((2, 2), (1, 1), False),       # planes shorter than a line share lines
    ((18, 18), (3, 3), False),     # neighbouring taps of a 3 × 3 kernel share lines
    ((34, 34), (3, 3), False),
    ((4, 16, 16), (1, 1, 1), True),
    ((256,), (1,), True)])
def test_tap_block_is_shorter_where_a_1x1_products_planes_crowd_the_caches(padded, kernel,
                                                                             plane_block):
    outputs = 4 * implicit_gemm_numba.LANES  # a tile of several vectors
    with conv_implicit.tuning.override(implicit_tap_block=128, implicit_plane_tap_block=32):
        assert conv_implicit.tap_block(padded, kernel, outputs) == (32 if plane_block else 128)
    with conv_implicit.tuning.override(implicit_tap_block=16, implicit_plane_tap_block=32):
        assert conv_implicit.tap_block(padded, kernel, outputs) == 16  # never above the default


@pytest.mark.parametrize("block", [5, 32])
def test_1x1_products_in_plane_tap_blocks_match_torch(block):
    """A 1×1 layer on 16 × 16 maps runs its channels-last forward pass and input gradient in
    blocks of ``implicit_plane_tap_block`` taps (the last one ragged: 70 channels in blocks of
    32 or 5), and the blocks are used: the sums are those of PyTorch, and they are not
    bit-equal to one block's (each block's partial sums are stored and added to)."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((3, 70, 16, 16), dtype=np.float32)
    w = rng.standard_normal((24, 70, 1, 1), dtype=np.float32)
    dy = rng.standard_normal((3, 70, 16, 16), dtype=np.float32)
    w_input = rng.standard_normal((70, 24, 1, 1), dtype=np.float32)
    ones, zero = (1, 1), ((0, 0), (0, 0))
    results = {}
    for plane_block in (block, 128):
        with conv_implicit.tuning.override(implicit_plane_tap_block=plane_block), \
                mock.patch.object(conv_implicit, "planar_wins", lambda *shape: False):
            forward = conv_implicit.forward(x, w, ones, ones, (16, 16))
            by_image = conv_implicit.per_image_product(x, zero, conv_implicit._panels(w),
                                                       w.shape, ones, (16, 16))
            dx = conv_implicit.backward_input(dy, w_input, (16, 16), ones, per_image=True)
        results[plane_block] = forward, by_image, dx
    expected = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    expected_dx = TF.conv_transpose2d(torch.from_numpy(dy), torch.from_numpy(w_input)).numpy()
    for ours, theirs in zip(results[block], (expected, expected, expected_dx)):
        _check(ours, theirs, math.sqrt(70))
    assert not np.array_equal(results[block][0], results[128][0])
    assert not np.array_equal(results[block][2], results[128][2])


@pytest.mark.parametrize("groups, stride", [(1, 1), (2, 1), (1, 2)])
def test_per_image_forward_a_chunk_of_rows_at_a_time(groups, stride):
    """``per_image_product`` runs its tiles ``implicit_image_chunk`` floats of output rows at
    a time, each chunk copied into y with the bias as soon as it is done: the same floats as
    the whole image at once (the last chunk ragged), and PyTorch's values."""
    from cnnkit import tuning
    rng = np.random.default_rng(groups + stride)
    x = rng.standard_normal((3, 4 * groups, 23, 21), dtype=np.float32)
    w = rng.standard_normal((16 * groups, 4, 3, 3), dtype=np.float32)
    b = rng.standard_normal(16 * groups, dtype=np.float32)
    out = tuple((n + 2 - 3) // stride + 1 for n in x.shape[2:])
    wt = conv_implicit.group_panels(w, groups, conv_implicit._panels)

    def forward(chunk):
        with tuning.override(implicit_image_chunk=chunk):
            return conv_implicit.per_image_product(x, ((1, 1), (1, 1)), wt, (16,) + w.shape[1:],
                                                   (1, 1), out, stride=(stride,) * 2, bias=b,
                                                   groups=groups)
    rows = implicit_gemm_numba.tile(16)[0]  # chunks of whole tiles: 1 KB, a few tiles each
    assert math.prod(out) > 4 * (1 << 10) // (rows * 16)
    whole, chunked = forward(1 << 30), forward(1 << 10)
    np.testing.assert_array_equal(chunked, whole)
    expected = TF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride, 1, 1, groups)
    _check(chunked, expected.numpy(), np.sqrt(w[0].size))
