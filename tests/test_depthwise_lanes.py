"""The kernels with channels on the vector lanes (``kernels/depthwise_lanes_numba.py``, the conv
algorithm 'lanes') against PyTorch in float64 and the reference loops: 2-D and 3-D depthwise
layers and grouped layers of 2 to 16 channels per group, of any stride, dilation, kernel and
asymmetric padding (wider than the kernel's reach too), maps from 1 × 1 up, channel counts
around the block of CB lanes (partial blocks' spare lanes), and pixel counts around the tile's
MR (ragged tiles)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch_oracle import assert_close

from cnnkit import reference, tuning
from cnnkit.kernels import conv, depthwise_lanes_numba as lanes

BLOCK = lanes.BLOCK


@st.composite
def layers(draw, dims=2):
    def pair(values):  # one value per spatial dim
        return tuple(draw(st.sampled_from(values)) for _ in range(dims))
    kernel, stride, dilation = pair((1, 2, 3, 5)), pair((1, 2, 3)), pair((1, 2))
    pads = [tuple(draw(st.lists(st.integers(0, 5 if dims == 2 else 3), min_size=2,
                                max_size=2))) for _ in range(dims)]
    spatial = pair((1, 2, 3, 7, 9, 14) if dims == 2 else (1, 2, 3, 5, 7))
    assume(all(s + lo + hi >= d * (k - 1) + 1
               for s, (lo, hi), k, d in zip(spatial, pads, kernel, dilation)))
    width = draw(st.sampled_from(lanes.GROUP_WIDTHS))  # channels per group (1: depthwise)
    block = lanes._channels(width)  # CB: a block of channels, one group if wider than BLOCK
    groups = draw(st.sampled_from(sorted({2, 3, max(2, block // width), block // width + 1,
                                          2 * block // width + 1})))
    return dict(n=draw(st.integers(1, 3)), c=groups * width, width=width, kernel=kernel,
                stride=stride, dilation=dilation, spatial=spatial, pads=pads)


def random_layer(layer, rng):
    n, c = layer["n"], layer["c"]
    x = rng.standard_normal((n, c) + layer["spatial"]).astype(np.float32)
    w = rng.standard_normal((c, layer.get("width", 1)) + layer["kernel"]).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    out = tuple((s + lo + hi - d * (k - 1) - 1) // st + 1 for s, (lo, hi), k, d, st in zip(
        layer["spatial"], layer["pads"], layer["kernel"], layer["dilation"], layer["stride"]))
    return x, w, b, rng.standard_normal((n, c) + out).astype(np.float32)


def torch_passes(x, w, b, dy, layer):
    """y, dx and dw in float64, from x padded first (the kernels' zeros)."""
    flat = [p for lo_hi in reversed(layer["pads"]) for p in lo_hi]
    xt, wt, bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    groups = x.shape[1] // w.shape[1]
    conv_nd = TF.conv2d if x.ndim == 4 else TF.conv3d
    yt = conv_nd(TF.pad(xt, flat), wt, bt, layer["stride"], 0, layer["dilation"], groups)
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    return [t.detach().numpy() for t in (yt, xt.grad, wt.grad)]


def forced_passes(x, w, b, dy, layer):
    """The three passes through the dispatcher with 'lanes' forced."""
    pads, stride, dilation = layer["pads"], layer["stride"], layer["dilation"]
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads))
    groups = x.shape[1] // w.shape[1]
    with conv.using(algorithm="lanes"):
        y = conv.conv_forward(x, w, stride, dilation, groups, pads, bias=b)
        dx = conv.conv_backward_input(dy, w, padded, stride, dilation, groups, pads)
        dw = conv.conv_backward_weight(x, dy, w.shape[2:], stride, dilation, groups, pads)
    return y, dx, dw


def _check_all_passes(layer, seed):
    x, w, b, dy = random_layer(layer, np.random.default_rng(seed))
    taps = int(np.prod(layer["kernel"])) * layer["width"]
    terms = (taps, taps, x.shape[0] * dy[0, 0].size)
    for name, ours, theirs, n_terms in zip(("forward", "input", "weight"),
                                           forced_passes(x, w, b, dy, layer),
                                           torch_passes(x, w, b, dy, layer), terms):
        assert ours.dtype == np.float32
        assert_close(ours, theirs.astype(np.float32), np.float32, terms=n_terms, name=name)


@settings(max_examples=120, deadline=None)
@given(layers(), st.integers(0, 2**32 - 1))
def test_all_passes_match_torch(layer, seed):
    _check_all_passes(layer, seed)


@settings(max_examples=60, deadline=None)
@given(layers(dims=3), st.integers(0, 2**32 - 1))
def test_all_passes_of_volumes_match_torch(layer, seed):
    """3-D layers: a volume's taps and cells are offsets into the same flat buffer."""
    _check_all_passes(layer, seed)


@pytest.mark.parametrize("planes", [1, 2, 3])
@pytest.mark.parametrize("width", lanes.GROUP_WIDTHS)
def test_a_volume_in_tap_blocks_and_ragged_tiles_matches_torch(width, planes):
    """A 3-D layer of two blocks and a partial one, asymmetric padding, stride 1 and (2, 1,
    2), dilation along one dim, against PyTorch in float64, groups of each width: 1 × 11 × 13
    outputs an image at stride 1, a ragged last tile for every MR from 2 to 8, and the
    kernel's 3 planes of taps one, two (then the third: a ragged block) or all three at a
    time (``depthwise_lanes_tap_block_bytes``), each block's sums added to the last's."""
    rng = np.random.default_rng(width)
    c = 2 * lanes._channels(width) + max(3 // width, 1) * width
    x = rng.standard_normal((2, c, 1, 12, 13)).astype(np.float32)
    w = rng.standard_normal((c, width, 3, 3, 2)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    pads, dilation = ((1, 1), (1, 2), (0, 1)), (1, 2, 1)
    mr = lanes._pixels(width)
    assert (1 * 11 * 13) % mr
    pairs = width if lanes.broadcasts(width, lanes.VECTORS) else 1
    plane_bytes = 3 * (mr + 1) * lanes._channels(width) * 4  # KH rows of MR + d(KW − 1) cells
    with tuning.override(depthwise_lanes_tap_block_bytes=planes * plane_bytes):
        assert lanes._tap_block(w, dilation) == planes * 3 * 2 * pairs
        for stride in ((1, 1, 1), (2, 1, 2)):
            layer = dict(pads=pads, stride=stride, dilation=dilation)
            out = [(n + lo + hi - d * (k - 1) - 1) // s + 1 for n, (lo, hi), k, d, s in
                   zip(x.shape[2:], pads, w.shape[2:], dilation, stride)]
            dy = rng.standard_normal((2, c, *out)).astype(np.float32)
            for ours, theirs in zip(forced_passes(x, w, b, dy, layer),
                                    torch_passes(x, w, b, dy, layer)):
                np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


def test_cells_of_a_volume_are_its_buffer_offsets():
    """``_cells`` of a 3-D grid: cell (i, j, k) at ((i·s + f)·B1·B2 + (j·s' + f')·B2 + k·s'' +
    f'')·CB in a buffer of B0 × B1 × B2 cells, row-major, every cell once."""
    shape, first, steps, buffer, block = (2, 3, 4), (1, 0, 2), (2, 1, 3), (5, 4, 12), 16
    cells = lanes._grid_cells(shape, first, steps, buffer, block)
    expected = [((i * 2 + 1) * 4 * 12 + j * 12 + k * 3 + 2) * block
                for i in range(2) for j in range(3) for k in range(4)]
    assert cells.tolist() == expected


@pytest.mark.parametrize("width", lanes.GROUP_WIDTHS)
def test_small_layer_matches_the_reference_loops(width):
    """Two blocks and a partial one, a ragged last tile, asymmetric padding, stride 1 and 2,
    against ``cnnkit.reference``'s literal sums, groups of each width."""
    rng = np.random.default_rng(width)
    c = 2 * lanes._channels(width) + max(3 // width, 1) * width
    x = rng.standard_normal((2, c, 5, 6)).astype(np.float32)
    w = rng.standard_normal((c, width, 3, 2)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    pads = ((1, 2), (0, 1))
    for stride in ((1, 1), (2, 1)):
        layer = dict(pads=pads, stride=stride, dilation=(1, 1))
        ref_y = reference.conv2d_forward(x, w, b, stride, ((1, 2), (0, 1)), 1, c // width)
        dy = rng.standard_normal(ref_y.shape).astype(np.float32)
        y, dx, dw = forced_passes(x, w, b, dy, layer)
        np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dw, reference.conv_backward_weight(
            dy, x, w.shape, stride, ((1, 2), (0, 1)), 1, c // width), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, reference.conv_backward_input(
            dy, x.shape, w, stride, ((1, 2), (0, 1)), 1, c // width), rtol=1e-5, atol=1e-5)


SLIDING_WIDTHS = [width for width in lanes.GROUP_WIDTHS if lanes._slides(width)]


def _sliding_maps():
    """(rows, cols, kernel, stride, dilation) of maps whose forward pass and input gradient can
    run along rows, laid out each way: rows of twice MR (by rows), a ragged last tile, rows
    shorter than MR (one run), the outputs' rows 2 apart, a kernel's rows 2 apart."""
    mr = lanes.sliding_rows(1)
    return [(3, 2 * mr, (3, 3), (1, 1), (1, 1)), (2, mr + 3, (5, 5), (1, 1), (1, 1)),
            (5, 4, (3, 5), (1, 1), (1, 1)), (7, mr + 1, (3, 3), (2, 1), (1, 1)),
            (6, 9, (3, 3), (1, 1), (2, 1))]


@pytest.mark.parametrize("width", SLIDING_WIDTHS or [None])
@pytest.mark.parametrize("rows, cols, kernel, stride, dilation", _sliding_maps())
def test_tile_along_rows_matches_the_reference_loops(width, rows, cols, kernel, stride,
                                                     dilation):
    """The broadcast tile along output rows (``_slide``) against ``cnnkit.reference``'s
    literal sums, forced on and off, for the groups that have it on this target: a block and
    a partial one, asymmetric padding."""
    if width is None:
        pytest.skip("no group width runs along rows on this target")
    rng = np.random.default_rng(rows * cols)
    c = lanes._channels(width) + width
    x = rng.standard_normal((2, c, rows, cols)).astype(np.float32)
    w = rng.standard_normal((c, width) + kernel).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    pads = ((1, 2), (2, 1))
    ref_y = reference.conv2d_forward(x, w, b, stride, pads, dilation, c // width)
    dy = rng.standard_normal(ref_y.shape).astype(np.float32)
    ref_dx = reference.conv_backward_input(dy, x.shape, w, stride, pads, dilation, c // width)
    for slide in (True, False):
        y = lanes.forward(x, w, pads, stride, dilation, ref_y.shape[2:], b, slide=slide)
        dx = lanes.backward_input(dy, w, (rows, cols), pads, stride, dilation, slide=slide)
        np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("width", SLIDING_WIDTHS or [None])
def test_the_rule_runs_along_rows_where_little_is_wasted(width):
    """With the tile's gain set to 1.05: rows of twice MR run along rows (nothing wasted), a
    row of MR + 1 outputs does not (2·MR computed); forced, it does, and a single row shorter
    than MR is refused."""
    if width is None:
        pytest.skip("no group width runs along rows on this target")
    mr = lanes.sliding_rows(1)
    with tuning.override(depthwise_lanes_sliding_gain=1.05):
        def rows(out_shape, buf_cols, slide, kernel=(3, 3)):
            return lanes._along_rows(width, kernel, (1,) * len(kernel), (1,) * len(kernel),
                                     out_shape, (out_shape[0] + 2, buf_cols), slide)
        assert rows((3, 2 * mr), 2 * mr + 2, None) == mr
        assert rows((1, mr + 1), mr + 3, None) == 0
        assert rows((1, mr + 1), mr + 3, True) == mr
        assert rows((3, 2 * mr), 2 * mr + 2, False) == 0
        with pytest.raises(ValueError, match="slide"):  # a row shorter than the tile
            rows((1, mr - 1), mr + 1, True)
        with pytest.raises(ValueError, match="slide"):  # a volume: pixel by pixel only
            lanes._along_rows(width, (3, 3, 3), (1,) * 3, (1,) * 3, (2, 3, 2 * mr),
                              (4, 5, 2 * mr + 2), True)


_NO_ROW_TILE = [(width, kernel, stride, dilation) for width in SLIDING_WIDTHS[:1]
                for kernel, stride, dilation in (((3, 2), (1, 1), (1, 1)),  # KW 2
                                                 ((3, 3), (1, 2), (1, 1)),  # a column stride
                                                 ((3, 3), (1, 1), (1, 2)))]  # column dilation
_NO_ROW_TILE.append((1, (3, 3), (1, 1), (1, 1)))  # depthwise: the lane-wise tile only


@pytest.mark.parametrize("width, kernel, stride, dilation", _NO_ROW_TILE)
def test_slide_is_refused_where_there_is_no_tile_along_rows(width, kernel, stride, dilation):
    """``slide=True`` raises a ValueError naming it where the tile along rows cannot run: a
    kernel neither 3 nor 5 wide, a step or dilation along the rows, a depthwise layer."""
    rng = np.random.default_rng(3)
    c = lanes._channels(width)
    x = rng.standard_normal((1, c, 8, 8)).astype(np.float32)
    w = rng.standard_normal((c, width) + kernel).astype(np.float32)
    pads = ((1, 1), (1, 1))
    y = reference.conv2d_forward(x, w, None, stride, pads, dilation, c // width)
    with pytest.raises(ValueError, match="slide"):
        lanes.forward(x, w, pads, stride, dilation, y.shape[2:], slide=True)
    if stride == (1, 1):  # the input gradient's steps are 1 whatever the stride
        with pytest.raises(ValueError, match="slide"):
            lanes.backward_input(y, w, (8, 8), pads, stride, dilation, slide=True)


@pytest.mark.parametrize("width", lanes.GROUP_WIDTHS)
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("runs", [False, True])
def test_lane_weights_follow_their_definition(width, transposed, runs):
    """Lane c of vector g of tap (a, b): w[c, g, a, b], or for the input gradient
    w[c − c % G + g, c % G] with both kernel axes reversed; zeros past the channels. In runs
    (the tile along rows), the vectors ordered by kernel row, member and column."""
    block = lanes._channels(width)
    c = block + max(3 // width, 1) * width  # a whole block and a partial one
    w = np.random.default_rng(width).standard_normal((c, width, 3, 2)).astype(np.float32)
    out = lanes._lane_weights(w, transposed, block, 2 if runs else 0)
    if runs:  # back to tap order: (block, a, g, b, lanes) -> (block, (a, b), g, lanes)
        out = out.reshape(2, 3, width, 2, block).transpose(0, 1, 3, 2, 4).reshape(
            2, 6, width, block)
    expected = np.zeros((2, 6, width, block), np.float32)
    for channel in range(c):
        for g in range(width):
            for a in range(3):
                for b in range(2):
                    if transposed:
                        value = w[channel - channel % width + g, channel % width, 2 - a, 1 - b]
                    else:
                        value = w[channel, g, a, b]
                    expected[channel // block, a * 2 + b, g, channel % block] = value
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("rows, cols", [(7, 7), (3, 5), (9, 14), (1, 1), (2, 8), (4, 4)])
@pytest.mark.parametrize("steps", [(1, 1), (2, 3)])
@pytest.mark.parametrize("block", sorted({lanes.BLOCK, lanes._channels(16)}))
def test_to_lanes_puts_each_pixel_in_its_cell(rows, cols, steps, block):
    """Each pixel's lanes at its cell (padding and the input gradient's stride between them),
    zeros in a partial block's spare lanes, every other cell untouched; 8 × 8 register blocks
    and the pixels past the last whole block alike; blocks of BLOCK channels and a group wider
    than a vector's (AVX2's 16)."""
    top, left = 2, 1
    buf_rows, buf_cols = (rows - 1) * steps[0] + top + 3, (cols - 1) * steps[1] + left + 2
    planes = np.random.default_rng(rows * cols).standard_normal(
        (2, 2 * block + 3, rows * cols)).astype(np.float32)
    cells = lanes._grid_cells((rows, cols), (top, left), steps, (buf_rows, buf_cols), block)
    for c0, count in ((block, block), (2 * block, 3)):
        buf = np.full((buf_rows, buf_cols, block), 7.0, np.float32)
        lanes._to_lanes(planes, 1, c0, count, cells, buf)
        expected = np.full_like(buf, 7.0)
        for i in range(rows):
            for j in range(cols):
                cell = expected[i * steps[0] + top, j * steps[1] + left]
                cell[:] = 0.0
                cell[:count] = planes[1, c0:c0 + count, i * cols + j]
        np.testing.assert_array_equal(buf, expected)


def test_weight_gradient_sums_every_image_share():
    """More shares of images than one (few channel blocks for the threads): each image's
    products counted once."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, BLOCK, 4, 4)).astype(np.float32)
    dy = rng.standard_normal((7, BLOCK, 4, 4)).astype(np.float32)
    dw = lanes.backward_weight(x, dy, (3, 3), ((1, 1), (1, 1)), (1, 1), (1, 1))
    _, _, expected = torch_passes(x, np.zeros((BLOCK, 1, 3, 3), np.float32),
                                  np.zeros(BLOCK, np.float32), dy,
                                  dict(pads=((1, 1), (1, 1)), stride=(1, 1), dilation=(1, 1)))
    np.testing.assert_allclose(dw, expected, rtol=1e-4, atol=1e-4)


def test_fused_bias_gradient_is_the_sum_of_dy():
    """The bias gradient summed from dy's transposed copies: partial blocks, image shares."""
    rng = np.random.default_rng(2)
    for c in (3, BLOCK + 1):
        x = rng.standard_normal((5, c, 6, 5)).astype(np.float32)
        dy = rng.standard_normal((5, c, 3, 3)).astype(np.float32)
        dw, db = lanes.backward_weight(x, dy, (3, 2), ((1, 0), (0, 1)), (2, 2), (1, 1),
                                       with_bias=True)
        np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3), dtype=np.float64), rtol=1e-6)
        np.testing.assert_array_equal(dw, lanes.backward_weight(
            x, dy, (3, 2), ((1, 0), (0, 1)), (2, 2), (1, 1)))


@settings(max_examples=40, deadline=None)
@given(st.one_of(layers(), layers(dims=3)), st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_nan_and_inf_land_where_pytorch_puts_them(layer, seed, count):
    """x and w holding NaN and ±inf (forward), dy holding them (input gradient; w finite, as
    ``registry.NEEDS_FINITE`` asks), x and dy (weight gradient): each group's lanes
    take only their own group's terms, and spare lanes and ragged tiles none."""
    rng = np.random.default_rng(seed)
    x, w, b, dy = random_layer(layer, rng)
    specials = (np.nan, np.inf, -np.inf)
    for a in (x, dy):
        flat = a.reshape(-1)
        flat[rng.integers(0, flat.size, count)] = [specials[i] for i in rng.integers(0, 3, count)]
    w_special = w.copy()
    w_special.reshape(-1)[rng.integers(0, w.size)] = specials[rng.integers(0, 3)]
    taps = int(np.prod(layer["kernel"])) * layer["width"]
    groups = x.shape[1] // w.shape[1]
    with np.errstate(invalid="ignore", over="ignore"):
        with conv.using(algorithm="lanes"):
            y = conv.conv_forward(x, w_special, layer["stride"], layer["dilation"], groups,
                                  layer["pads"], bias=b)
        _, dx, dw = forced_passes(x, w, b, dy, layer)
        expected_y = torch_passes(x, w_special, b, dy, layer)[0]
        _, expected_dx, expected_dw = torch_passes(x, w, b, dy, layer)
    assert_close(y, expected_y.astype(np.float32), np.float32, terms=taps, name="forward")
    assert_close(dx, expected_dx.astype(np.float32), np.float32, terms=taps, name="input")
    assert_close(dw, expected_dw.astype(np.float32), np.float32,
                 terms=x.shape[0] * dy[0, 0].size, name="weight")


@pytest.mark.parametrize("width", lanes.ROTATABLE)
def test_both_weight_gradient_tiles_give_the_gradient(width):
    """dy rotated or x permuted (``rotates`` picks one; the bench times both): the same dw,
    for a partial block and a ragged tile of taps."""
    rng = np.random.default_rng(width)
    c = BLOCK + width
    x = rng.standard_normal((3, c, 7, 6)).astype(np.float32)
    dy = rng.standard_normal((3, c, 4, 6)).astype(np.float32)
    layer = dict(pads=((1, 1), (1, 1)), stride=(2, 1), dilation=(1, 1))
    _, _, expected = torch_passes(x, np.zeros((c, width, 3, 3), np.float32),
                                  np.zeros(c, np.float32), dy, layer)
    for rotate in (False, True):
        dw = lanes.backward_weight(x, dy, (3, 3), layer["pads"], (2, 1), (1, 1), width,
                                   rotate=rotate)
        np.testing.assert_allclose(dw, expected, rtol=1e-4, atol=1e-4)


def test_dy_is_rotated_for_groups_of_three_to_a_vector_only():
    x = np.zeros((1, 2 * BLOCK, 4, 4), np.float32)
    with pytest.raises(ValueError, match="rotate: dy is rotated for groups of"):
        lanes.backward_weight(x, x, (3, 3), ((1, 1), (1, 1)), (1, 1), (1, 1), 2, rotate=True)


@pytest.mark.skipif(conv.implicit.numba.config.NUMBA_NUM_THREADS < 2, reason="one thread")
def test_volumes_on_the_lanes_leave_wide_stencils_few_tasks_and_strided_grouped_gradients():
    """3-D layers at 2 threads: a 3 × 3 × 3 stride-1 depthwise layer's passes go to the lanes
    up to the stencil's width (``depthwise_lanes_stencil_max_width`` padded columns), to the
    volume stencil ('rows') past it; 5 × 5 × 5, grouped and strided ones to the lanes, except
    a strided input gradient in groups (``lanes._zeros_outweigh``) and the forward pass and
    input gradient of fewer images × channel blocks than threads
    (``lanes._volume_too_few_tasks``), whose weight gradient still goes to the lanes."""
    def picks(width, kernel, stride, images=4, cols=8):
        c, pad = 4 * BLOCK, kernel // 2
        spatial = (8 + 2 * pad, 8 + 2 * pad, cols + 2 * pad)
        g = conv.ConvGeometry.of((images, c) + spatial, (c, width) + (kernel,) * 3,
                                 (stride,) * 3, (1,) * 3, c // width, np.float32,
                                 ((pad, pad),) * 3)
        return tuple(conv.select(g, p) for p in conv.PASSES)
    threads = conv.implicit.numba.get_num_threads()
    conv.implicit.numba.set_num_threads(2)
    try:
        limit = tuning.value("depthwise_lanes_stencil_max_width")
        assert picks(1, 3, 1, cols=limit - 2) == ("lanes",) * 3
        assert picks(1, 3, 1, cols=limit - 1) == ("rows",) * 3
        assert picks(1, 5, 1) == picks(1, 3, 2) == ("lanes",) * 3
        forward, input_gradient, weight = picks(1, 5, 1, images=1)  # 4 blocks: 4 tasks
        assert forward == input_gradient == weight == "lanes"
        g = conv.ConvGeometry.of((1, BLOCK, 12, 12, 12), (BLOCK, 1, 5, 5, 5), (1,) * 3,
                                 (1,) * 3, BLOCK, np.float32, ((2, 2),) * 3)  # one task
        assert [conv.select(g, p) == "lanes" for p in conv.PASSES] == [False, False, True]
        if 4 in lanes.GROUP_WIDTHS:
            assert picks(4, 3, 1) == ("lanes",) * 3
            forward, input_gradient, weight = picks(4, 3, 2)
            assert forward == weight == "lanes" and input_gradient != "lanes"
    finally:
        conv.implicit.numba.set_num_threads(threads)
