"""Every convolution algorithm (fc, lanes, rows, implicit, fft, depthwise, winograd, shift, gemm)
against PyTorch on the same grid.

The dispatcher normally picks one algorithm per shape; here each is forced in turn, so a fast
path that only rarely wins the heuristic is still checked on every configuration it can run.
A forced algorithm is refused (NotApplicable) on a pass it does not apply to: those passes go
by the heuristic, and a case it applies to on no pass is skipped.
"""
import dataclasses
import types
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import cnnkit
import cnnkit.functional as F
from cnnkit import cpu, tuning
from cnnkit.kernels import conv as conv_kernels
from cnnkit.kernels.conv import lanes as lanes_conv
from cnnkit.kernels.conv import window_fold

# (dims, N, C, K, spatial, kernel, stride, padding, dilation, groups)
CASES = [
    (2, 2, 3, 4, (7, 6), (3, 2), 1, 1, 1, 1),
    (2, 2, 4, 6, (9, 8), (3, 3), 2, 1, 2, 2),
    (2, 2, 4, 8, (9, 8), (3, 3), (2, 1), (1, 2), 1, 4),
    (2, 3, 8, 8, (6, 7), (3, 3), 1, 1, 1, 8),
    (2, 2, 16, 12, (10, 9), (3, 3), 1, 1, 1, 1),
    (2, 3, 5, 7, (7, 8), (3, 3), 1, ((1, 2), (0, 1)), 1, 1),
    (2, 2, 4, 5, (6, 5), (3, 3), 1, ((3, 0), (2, 3)), 1, 1),  # pads > 2: Winograd crops
    (2, 2, 9, 6, (8, 8), (4, 4), 1, ((2, 1), (1, 2)), (2, 1), 3),
    (1, 2, 3, 4, (20,), (5,), 3, 2, 2, 1),
    (1, 2, 1, 4, (60,), (17,), 1, 8, 1, 1),
    (3, 2, 2, 4, (5, 6, 4), (3, 2, 2), 1, 1, 1, 2),
    (3, 1, 4, 4, (6, 5, 6), (3, 3, 3), (2, 1, 1), 1, (1, 2, 1), 1),
    # a dilation that leaves phases of dx no tap reaches, on a vector of input channels
    (2, 2, 16, 8, (11, 11), (3, 3), 2, 2, 2, 1),
    # 1×1: shift's products per image, its weight gradient summed over the images' products
    # or, where its weights outnumber the positions, one product over channel-major copies
    (2, 3, 16, 12, (5, 6), (1, 1), 1, 0, 1, 1),
    (2, 2, 32, 32, (2, 2), (1, 1), 1, 0, 1, 2),
    (1, 2, 8, 16, (3,), (1,), 1, 0, 1, 1),
    (2, 2, 8, 24, (2, 3), (1, 1), 1, 1, 1, 1),
    # a kernel as large as the padded input (one output per image): fc's one product
    (2, 3, 5, 4, (3, 4), (3, 4), 1, 0, 1, 1),
    (2, 2, 4, 3, (1, 2), (3, 4), 2, 1, 1, 1),
    (1, 3, 2, 5, (4,), (7,), 1, ((2, 1),), 1, 1),
    (3, 2, 3, 2, (1, 1, 1), (1, 1, 1), 1, 0, 1, 1),
    (2, 4, 3, 6, (2, 2), (2, 2), 1, 0, 1, 3),  # grouped: not fc's
]
TRANSPOSED = [
    (2, 2, 4, 6, (5, 4), (3, 3), 2, 1, 1, 1, 2),
    (2, 2, 4, 4, (5, 4), (3, 2), (3, 2), (1, 0), (2, 1), (1, 2), 4),
    (2, 2, 8, 4, (5, 4), (3, 3), 1, 0, 1, 2, 1),
    (1, 2, 3, 4, (10,), (4,), 2, 1, 1, 1, 1),
    (1, 2, 8, 3, (10,), (3,), 1, 1, 0, 1, 1),
    (3, 1, 2, 2, (3, 4, 3), (2, 3, 2), 2, 1, 0, 1, 2),
]
# "gemm-compiled": the im2col GEMM with its compiled (Numba) copies, which real 2-D layers take
# but these small cases would not (they also read the zero padding in place); "depthwise-numpy":
# the depthwise layers' NumPy sums, which only 3-D layers take by default.
ALGORITHMS = [None, *conv_kernels.ALGORITHMS, "depthwise-numpy", "gemm-compiled"]
assert set(conv_kernels.ALGORITHMS) <= set(ALGORITHMS)  # a new algorithm joins the grid
# depthwise_compiled_min_work's largest value: NumPy's sums at every size
NUMPY_SUMS = tuning.CONSTANTS["depthwise_compiled_min_work"].high


@pytest.fixture(params=ALGORITHMS, ids=lambda a: a or "auto")
def algorithm(request):
    name = request.param
    settings = {}
    if name == "gemm-compiled":
        name, settings = "gemm", dict(compiled_min_size=0)
    if name == "depthwise-numpy":
        name, settings = "depthwise", dict(depthwise_compiled_min_work=NUMPY_SUMS)
    with tuning.override(**settings):
        yield name


def run_forced(name, compute):
    """``compute()`` with ``name`` forced on every pass it applies to (the others by the
    heuristic); skipped where it applies to no pass. None: the heuristic throughout."""
    if name is None:
        return compute()
    forced = dict.fromkeys(conv_kernels.PASSES, name)
    while forced:
        try:
            with conv_kernels.using(algorithm=forced):
                return compute()
        except conv_kernels.NotApplicable as refusal:
            assert refusal.algorithm == name
            assert not conv_kernels.applies(name, refusal.geometry, refusal.pass_name)
            del forced[refusal.pass_name]
    pytest.skip(f"{name} applies to no pass of this case")


def _torch_padding(padding, n_dims):
    """Explicit (lo, hi) pairs for torch.nn.functional.pad (last dim first)."""
    if isinstance(padding, int):
        padding = (padding,) * n_dims
    pairs = [p if isinstance(p, tuple) else (p, p) for p in padding]
    return [v for pair in reversed(pairs) for v in pair]


def _compare(ours, theirs, scale, dtype):
    tol = 1e-10 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}d-{c[4]}-k{c[5]}-s{c[6]}-g{c[9]}")
def test_conv_every_algorithm(case, dtype, algorithm):
    run_forced(algorithm, lambda: _conv_against_torch(case, dtype))


def _conv_against_torch(case, dtype):
    n_dims, n, c, k, spatial, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, c) + spatial).astype(dtype)
    w = rng.standard_normal((k, c // groups) + kernel).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    xc, wc, bc = (cnnkit.tensor(a, requires_grad=True) for a in (x, w, b))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = getattr(F, f"conv{n_dims}d")(xc, wc, bc, stride, padding, dilation, groups)
    yt = getattr(TF, f"conv{n_dims}d")(TF.pad(xt, _torch_padding(padding, n_dims)), wt, bt,
                                       stride, 0, dilation, groups)
    g = rng.standard_normal(yt.shape).astype(dtype)
    y.backward(g)
    yt.backward(torch.tensor(g))
    scale = np.sqrt(w[0].size)
    _compare(y.data, yt, scale, dtype)
    _compare(xc.grad, xt.grad, scale, dtype)
    _compare(wc.grad, wt.grad, np.sqrt(g[:, 0].size) * scale, dtype)
    _compare(bc.grad, bt.grad, np.sqrt(g[:, 0].size), dtype)


@pytest.mark.parametrize("case", TRANSPOSED, ids=lambda c: f"{c[0]}d-{c[4]}-s{c[6]}-op{c[8]}")
def test_conv_transpose_every_algorithm(case, algorithm):
    run_forced(algorithm, lambda: _conv_transpose_against_torch(case))


def _conv_transpose_against_torch(case):
    n_dims, n, c, k, spatial, kernel, stride, padding, out_pad, dilation, groups = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, c) + spatial)
    w = rng.standard_normal((c, k // groups) + kernel)
    b = rng.standard_normal(k)
    xc, wc, bc = (cnnkit.tensor(a, requires_grad=True) for a in (x, w, b))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    args = (stride, padding, out_pad, groups, dilation)
    y = getattr(F, f"conv_transpose{n_dims}d")(xc, wc, bc, *args)
    yt = getattr(TF, f"conv_transpose{n_dims}d")(xt, wt, bt, *args)
    g = rng.standard_normal(yt.shape)
    y.backward(g)
    yt.backward(torch.tensor(g))
    for ours, theirs in ((y.data, yt), (xc.grad, xt.grad), (wc.grad, wt.grad), (bc.grad, bt.grad)):
        _compare(ours, theirs, 10.0, np.float64)


def test_wrong_weight_gradient_is_caught():
    """The comparison above is sharp enough to see a sign error in one algorithm's gradient."""
    from cnnkit.kernels.conv import shift as conv_shift
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 6, 6))
    w = rng.standard_normal((4, 8, 3, 3))
    dy = rng.standard_normal((2, 4, 4, 4))
    right = conv_shift.backward_weight(x, dy, (3, 3), (1, 1), 1)
    xt, wt = torch.tensor(x), torch.tensor(w, requires_grad=True)
    TF.conv2d(xt, wt).backward(torch.tensor(dy))
    _compare(right, wt.grad, 10.0, np.float64)
    with pytest.raises(AssertionError):
        _compare(-right, wt.grad, 10.0, np.float64)
    with pytest.raises(AssertionError):  # an off-by-one kernel offset
        _compare(np.roll(right, 1, axis=-1), wt.grad, 10.0, np.float64)


def test_heuristic_choices():
    """The dispatcher's picks for typical layers (documented in BENCHMARKS.md)."""
    def pick(c, k, kernel, stride, groups, batch, padded, dilation=None, dtype=np.float32,
             pass_name="forward"):
        geometry = conv_kernels.ConvGeometry.of(
            (batch, c) + padded, (k, c // groups) + kernel, stride,
            dilation or (1,) * len(kernel), groups, dtype)
        return conv_kernels.select(geometry, pass_name)

    # a kernel as large as the padded map: one product per pass, any dtype (a classifier
    # head on pooled features, LeNet-5's C5, a 3 × 3 layer padded by one on 1 × 1 maps)
    for pass_name in conv_kernels.PASSES:
        assert pick(512, 10, (1, 1), (1, 1), 1, 1024, (1, 1), pass_name=pass_name) == "fc"
        assert pick(16, 120, (5, 5), (1, 1), 1, 64, (5, 5), pass_name=pass_name) == "fc"
        assert pick(64, 64, (3, 3), (1, 1), 1, 8, (3, 3), dtype=np.float64,
                    pass_name=pass_name) == "fc"
    assert pick(64, 64, (3, 3), (1, 1), 1, 8, (4, 3)) != "fc"   # two output rows
    assert pick(64, 64, (1, 1), (1, 1), 2, 8, (1, 1)) != "fc"   # grouped
    assert pick(128, 128, (3, 3), (1, 1), 128, 32, (34, 34)) == "rows"
    assert pick(128, 128, (3, 3), (1, 1), 128, 32, (34, 34), pass_name="input") == "rows"
    # depthwise, channels on the lanes: every weight gradient of a block of channels or more;
    # forward passes and input gradients of small maps (the 3 × 3 stencil's only the smallest)
    assert pick(128, 128, (3, 3), (1, 1), 128, 32, (34, 34), pass_name="weight") == "lanes"
    for pass_name in conv_kernels.PASSES:
        assert pick(960, 960, (3, 3), (1, 1), 960, 16, (9, 9), pass_name=pass_name) == "lanes"
    assert pick(96, 96, (5, 5), (1, 1), 96, 16, (32, 32)) == "lanes"
    assert pick(96, 96, (3, 3), (2, 2), 96, 16, (30, 30)) == "lanes"
    assert pick(240, 240, (3, 3), (1, 1), 240, 16, (18, 18)) == "rows"
    # ... and the 3 × 3 input gradients the stencil takes (``rows.stencil_runs``), where a
    # 5 × 5 kernel's, on the row correlation, stays on the lanes up to wider maps
    assert pick(240, 240, (3, 3), (1, 1), 240, 16, (18, 18), pass_name="input") == "rows"
    assert pick(240, 240, (3, 3), (1, 1), 240, 16, (16, 16), pass_name="input") == "lanes"
    assert pick(240, 240, (5, 5), (1, 1), 240, 16, (20, 20), pass_name="input") == "lanes"
    # a stride-1 kernel of more than 9 taps: on the lanes up to depthwise_lanes_wide_max_width
    # columns, beyond on the row correlation; 0, its default, takes the CPU table's entry
    with tuning.override(depthwise_lanes_wide_max_width=64):
        assert pick(64, 64, (5, 5), (1, 1), 64, 8, (60, 60)) == "lanes"
        assert pick(64, 64, (5, 5), (1, 1), 64, 8, (68, 68)) == "rows"
        assert pick(64, 64, (7, 7), (1, 1), 64, 8, (64, 64), pass_name="input") == "lanes"
        assert pick(64, 64, (7, 7), (1, 1), 64, 8, (66, 66), pass_name="input") == "rows"
        assert pick(64, 64, (3, 3), (1, 1), 64, 8, (60, 60), pass_name="input") == "rows"
    for registers, lanes_up_to, rows_from in ((32, 48, 50), (16, 132, None)):
        table = cpu.TILES[registers]
        with tuning.override(depthwise_lanes_wide_max_width=0), \
                mock.patch.object(lanes_conv, "host", lambda: types.SimpleNamespace(tiles=table)):
            assert lanes_conv.wide_kernel_max_width() == table.lanes_wide_width >= lanes_up_to
            assert pick(64, 64, (5, 5), (1, 1), 64, 8, (lanes_up_to,) * 2) == "lanes"
            if rows_from:
                assert pick(64, 64, (5, 5), (1, 1), 64, 8, (rows_from,) * 2) == "rows"
    # strided depthwise forward passes on the lanes up to wider maps than the other passes
    # (``depthwise_lanes_strided_forward_max_width``); their input gradients on the phases
    assert pick(96, 96, (3, 3), (2, 2), 96, 8, (114, 114)) == "lanes"
    assert pick(96, 96, (3, 3), (2, 2), 96, 8, (114, 114), pass_name="input") == "depthwise"
    assert pick(96, 96, (3, 3), (2, 2), 96, 8, (226, 226)) == "depthwise"
    with tuning.override(depthwise_lanes_strided_forward_max_width=100):
        assert pick(96, 96, (3, 3), (2, 2), 96, 8, (114, 114)) == "depthwise"
    assert pick(4, 4, (3, 3), (1, 1), 4, 16, (9, 9), pass_name="weight") == "depthwise"
    assert pick(32, 64, (3, 3), (1, 1), 32, 16, (9, 9), pass_name="weight") == "depthwise"
    # grouped, 4 channels per group (a ResNeXt block's 32 groups): every pass on the lanes at
    # any map size
    for padded in ((30, 30), (114, 114)):
        for pass_name in conv_kernels.PASSES:
            assert pick(128, 128, (3, 3), (1, 1), 32, 16, padded, pass_name=pass_name) == "lanes"
    assert pick(128, 128, (3, 3), (1, 1), 128, 32, (34, 34), dtype=np.float64) == "depthwise"
    for pass_name in conv_kernels.PASSES:  # float32, groups 1: the implicit GEMM
        assert pick(64, 128, (3, 3), (1, 1), 1, 128, (9, 9), pass_name=pass_name) == "implicit"
    # a strided input gradient on the implicit GEMM while every phase has taps: per phase,
    # or for few channels the windows' columns folded where the phases would compute zeros
    # (conv.window_fold), else one product over all phases when it has enough terms
    assert pick(64, 128, (3, 3), (2, 2), 1, 32, (34, 34), pass_name="input") == "implicit"
    assert pick(3, 64, (11, 11), (4, 4), 1, 8, (228, 228), pass_name="input") == "implicit"
    assert pick(2, 32, (3, 3), (2, 2), 1, 32, (34, 34), pass_name="input") == "implicit"
    with tuning.override(implicit_fold_min_gain=window_fold.NEVER):
        assert pick(3, 64, (11, 11), (4, 4), 1, 8, (228, 228), pass_name="input") == "implicit"
        assert pick(2, 32, (3, 3), (2, 2), 1, 32, (34, 34), pass_name="input") == "gemm"
    # ... and with phases of zeros (1 × 1 at stride 2): per phase up to
    # implicit_empty_phases_max_terms output channels, beyond on im2col + col2im's BLAS
    assert pick(16, 32, (1, 1), (2, 2), 1, 128, (28, 28), pass_name="input") == "implicit"
    assert pick(64, 128, (1, 1), (2, 2), 1, 32, (32, 32), pass_name="input") == "implicit"
    assert pick(512, 1024, (1, 1), (2, 2), 1, 8, (14, 14), pass_name="input") == "gemm"
    # taps apart, few channels: one product over the phases from implicit_min_taps terms on
    # (a 4 × 4 patch at stride 4, a 1 × 1 kernel at stride 2), not below, unless the windows'
    # columns are folded (off here: the gain of these depends on the ISA's lanes)
    with tuning.override(implicit_fold_min_gain=window_fold.NEVER):
        assert pick(3, 96, (4, 4), (4, 4), 1, 32, (224, 224), pass_name="input") == "implicit"
        assert pick(3, 32, (1, 1), (2, 2), 1, 64, (32, 32), pass_name="input") == "implicit"
        assert pick(3, 8, (2, 2), (2, 2), 1, 64, (32, 32), pass_name="input") == "gemm"
    # ... and a dilation that makes taps of one position meet (3 × 3, d = 2 at stride 2),
    # leaving phases of zeros, per phase too (8 images, 64 → 64 channels on 28 × 28: 0.646
    # against im2col's 1.455 ms, 2 threads, AVX-512)
    assert pick(64, 128, (3, 3), (2, 2), 1, 32, (34, 34), dilation=(2, 2),
                pass_name="input") == "implicit"
    # one input channel per group: forward and input gradient on the row correlation, except
    # the forward of several filters with a large kernel (the planar implicit GEMM)
    assert pick(1, 32, (5, 5), (1, 1), 1, 64, (32, 32), pass_name="input") == "rows"
    assert pick(1, 16, (101,), (1,), 1, 8, (16100,), pass_name="input") == "rows"
    assert pick(1, 32, (5, 5), (1, 1), 1, 64, (32, 32)) == "implicit"
    assert pick(1, 16, (101,), (1,), 1, 8, (16100,)) == "implicit"
    assert pick(1, 32, (3, 3), (1, 1), 1, 64, (32, 32)) == "rows"
    assert pick(1, 1, (5, 5), (1, 1), 1, 64, (32, 32)) == "rows"
    assert pick(1, 16, (101,), (1,), 1, 8, (16100,), pass_name="weight") == "implicit"
    # ... few filters: below rows_forward_min_terms, the row correlation (LeNet's first
    # layer: 6 filters of 5 × 5, 150 terms; 16 of 5 × 5 make 400)
    assert pick(1, 6, (5, 5), (1, 1), 1, 64, (32, 32)) == "rows"
    assert pick(1, 16, (5, 5), (1, 1), 1, 64, (32, 32)) == "implicit"
    assert pick(1, 8, (7, 7), (1, 1), 1, 64, (34, 34)) == "rows"
    assert pick(1, 4, (101,), (1,), 1, 8, (16100,)) == "implicit"
    # and their weight gradients, on 2-D maps, on the depthwise kernels (a pass per tap)
    # up to depthwise_weight_max_filters and _terms; signals and wider layers stay implicit
    assert pick(1, 6, (5, 5), (1, 1), 1, 64, (32, 32), pass_name="weight") == "depthwise"
    assert pick(1, 8, (3, 3), (1, 1), 1, 64, (30, 30), pass_name="weight") == "depthwise"
    assert pick(1, 8, (5, 5), (1, 1), 1, 64, (32, 32), pass_name="weight") == "implicit"
    assert pick(1, 16, (3, 3), (1, 1), 1, 64, (30, 30), pass_name="weight") == "implicit"
    assert pick(1, 4, (9,), (1,), 1, 64, (1008,), pass_name="weight") == "implicit"
    assert pick(1, 6, (5, 5), (1, 1), 1, 64, (32, 32), dtype=np.float64,
                pass_name="weight") != "depthwise"
    # strided, 25 terms per output: the implicit GEMM (0.33-0.41 against 0.63-0.65 ms by
    # im2col, one core, AVX-512 and AVX2); below implicit_min_taps, im2col unless the output
    # is large (64 images of 1 → 32 channels, 32 × 32 padded by 1: 0.36 against 0.64 ms, 2
    # threads, AVX-512)
    assert pick(1, 32, (5, 5), (2, 2), 1, 64, (32, 32)) == "implicit"
    assert pick(1, 32, (3, 3), (2, 2), 1, 64, (32, 32)) == "implicit"
    assert pick(1, 32, (3, 3), (2, 2), 1, 4, (32, 32)) == "gemm"
    # float64 (no compiled kernel): the BLAS paths
    assert pick(64, 64, (3, 3), (1, 1), 1, 32, (34, 34), dtype=np.float64) == "winograd"
    assert pick(64, 128, (3, 3), (1, 1), 1, 128, (9, 9), dtype=np.float64) == "gemm"  # odd map
    assert pick(64, 64, (3, 3), (1, 1), 1, 32, (36, 36), (2, 2), dtype=np.float64) == "shift"
    assert pick(64, 128, (3, 3), (2, 2), 1, 32, (34, 34), dtype=np.float64) == "gemm"
    assert pick(1, 16, (101,), (1,), 1, 8, (16100,), dtype=np.float64) == "fft"
    # thin products (fewer than implicit_min_taps terms per output): the implicit GEMM from
    # implicit_thin_min_outputs output values of a group on (a stride-1 input gradient's
    # too), unless shift takes the 1 × 1 layer; below, im2col or Winograd
    assert pick(4, 64, (1, 1), (2, 2), 1, 32, (56, 56)) == "implicit"
    assert pick(4, 64, (1, 1), (2, 2), 1, 8, (16, 16)) == "gemm"
    assert pick(3, 64, (1, 1), (1, 1), 1, 32, (56, 56)) == "implicit"
    assert pick(8, 64, (1, 1), (1, 1), 1, 32, (56, 56)) == "shift"
    assert pick(8, 128, (1, 1), (1, 1), 2, 64, (56, 56)) == "implicit"  # 4 channels a group
    assert pick(8, 128, (1, 1), (1, 1), 2, 1, (40, 40)) == "gemm"  # 102 400 values a group
    assert pick(32, 1, (3, 3), (1, 1), 1, 32, (30, 30), pass_name="input") == "implicit"
    assert pick(32, 1, (3, 3), (1, 1), 1, 2, (10, 10), pass_name="input") == "winograd"
    assert pick(32, 1, (3, 3), (1, 1), 1, 32, (30, 30), dtype=np.float64,
                pass_name="input") == "winograd"
    assert pick(128, 8, (1, 1), (2, 2), 1, 16, (56, 56), pass_name="input") == "gemm"
    with tuning.override(implicit_thin_min_outputs=1 << 40):
        assert pick(3, 64, (1, 1), (1, 1), 1, 32, (56, 56)) == "gemm"
    # dilated strided input gradients, whose dilation leaves phases with no tap: per phase
    # for C of a vector or more, up to implicit_empty_phases_max_terms output channels, as
    # where the taps lie apart; not where a kernel narrower than its stride leaves them
    assert pick(64, 128, (3, 3), (2, 2), 1, 8, (32, 32), (2, 2), pass_name="input") == "implicit"
    assert pick(64, 512, (3, 3), (2, 2), 1, 8, (32, 32), (2, 2), pass_name="input") == "gemm"
    assert pick(64, 128, (1, 3), (2, 2), 1, 8, (32, 32), pass_name="input") == "gemm"
    # the input gradient of a single-channel map (groups 1), 1-D or 2-D and dilated: the
    # depthwise kernels' sums (depthwise.claims, ahead of the row correlation and the
    # implicit GEMM); 2-D undilated stays on the row correlation, the forward pass too
    assert pick(1, 32, (5,), (1,), 1, 8, (1028,), pass_name="input") == "depthwise"
    assert pick(1, 32, (5,), (1,), 1, 8, (1032,), (2,), pass_name="input") == "depthwise"
    assert pick(1, 32, (3, 3), (1, 1), 1, 8, (32, 32), (2, 2), pass_name="input") == "depthwise"
    assert pick(1, 32, (3, 3), (1, 1), 1, 8, (30, 30), pass_name="input") == "rows"
    assert pick(1, 32, (5,), (1,), 1, 8, (1028,)) != "depthwise"
    assert pick(2, 32, (5,), (1,), 1, 8, (1028,), pass_name="input") != "depthwise"
    longest = tuning.value("depthwise_input_max_kernel")
    assert pick(1, 32, (longest,), (1,), 1, 8, (1100,), pass_name="input") == "depthwise"
    assert pick(1, 32, (longest + 2,), (1,), 1, 8, (1100,), pass_name="input") == "rows"
    # fc, a kernel as large as the padded map, is asked before the claims
    assert pick(1, 32, (5,), (1,), 1, 8, (5,), pass_name="input") == "fc"
    assert pick(1, 32, (1, 1), (1, 1), 1, 8, (1, 1), pass_name="input") == "fc"
    # a claim needs its algorithm to apply: shift needs w finite where dy's padding meets it
    one_by_one = conv_kernels.ConvGeometry.of((8, 1, 28, 28), (64, 1, 1, 1), (1, 1), (1, 1))
    assert conv_kernels.select(one_by_one, "input") == "shift"
    assert conv_kernels.registry.heuristic(one_by_one, "input", {"w"}) != "shift"
    # a 1×1 layer's input gradient to a single-channel map (shift.claims, ahead of the row
    # correlation): one product per image on shift; not with two input channels, a larger
    # kernel, or its forward pass
    for spatial in ((1024,), (28, 28), (12, 12, 12)):
        ones = (1,) * len(spatial)
        assert pick(1, 64, ones, ones, 1, 8, spatial, pass_name="input") == "shift"
        assert pick(1, 64, ones, ones, 1, 8, spatial) != "shift"
        assert pick(2, 64, ones, ones, 1, 8, spatial, pass_name="input") != "shift"
    assert pick(1, 64, (3, 3), (1, 1), 1, 8, (30, 30), pass_name="input") == "rows"
    assert pick(1, 64, (1, 1), (1, 1), 1, 8, (28, 28), pass_name="input",
                dtype=np.float64) != "shift"
    # deep 3-D stride-1 input gradients of few input channels whose planar strips idle lanes
    # (gemm.takes_input, ahead of the row correlation and the FFT): im2col; not 1-D signals
    # (every lane used) or 2-D maps, shallow products, or a lane use above the threshold
    lanes = conv_kernels.implicit.compiled.LANES
    assert pick(1, 256, (7, 7, 7), (1, 1, 1), 1, 4, (22, 22, 22), (2, 2, 2),
                pass_name="input") == "gemm"
    assert pick(1, 256, (7, 7, 7), (1, 1, 1), 1, 4, (16, 16, 16), pass_name="input") == "gemm"
    assert pick(lanes // 2, 256, (3, 3, 3), (1, 1, 1), 1, 4, (12, 12, 12), (2, 2, 2),
                pass_name="input") == "gemm"
    assert pick(lanes, 256, (3, 3, 3), (1, 1, 1), 1, 4, (12, 12, 12), (2, 2, 2),
                pass_name="input") != "gemm"
    gemm_conv = conv_kernels.gemm
    # only 3-D layers: a short 1-D signal whose strips idle lanes, deep enough, is not claimed
    one_d = conv_kernels.ConvGeometry.of((8, 2, 29), (256, 2, 7), (1,), (2,), pads=((6, 6),))
    use = conv_kernels.implicit.input_lane_use(one_d)
    assert gemm_conv.idle_and_deep(2, 256, use, 0.85, 8) and not gemm_conv.takes_input(one_d)
    assert pick(3, 24, (3, 3), (1, 1), 1, 8, (16, 16), pass_name="input") == "implicit"
    assert pick(2, 8, (3, 3, 3), (1, 1, 1), 1, 4, (12, 12, 12), pass_name="input") == "implicit"
    # the input's own padding, which the geometry's identity leaves out, is read (dx leaves
    # it out): 1 → 32 channels, 3 × 3 × 3 at dilation 2, on 8³ maps padded by 2 (dx 8³ of a
    # 12³ grid) and on 12³ maps not padded (dx 12³ of a 20³ grid, more of the lanes used)
    padded = conv_kernels.ConvGeometry.of((4, 1, 12, 12, 12), (32, 1, 3, 3, 3), (1,) * 3,
                                          (2,) * 3, pads=((2, 2),) * 3)
    whole = dataclasses.replace(padded, pads=None)
    uses = [conv_kernels.implicit.input_lane_use(g) for g in (padded, whole)]
    assert padded == whole and uses[0] < uses[1] <= 0.85
    with tuning.override(implicit_input_gemm_min_depth=2 * 32 / sum(uses)):  # between the two
        assert conv_kernels.select(padded, "input") == "gemm"
        assert conv_kernels.select(whole, "input") == "implicit"
    # the thresholds hold at equality; the columns' bound
    edge = conv_kernels.ConvGeometry.of((4, 2, 14, 14, 14), (64, 2, 3, 3, 3), (1,) * 3,
                                        (2,) * 3, pads=((2, 2),) * 3)
    use = conv_kernels.implicit.input_lane_use(edge)
    with tuning.override(implicit_input_gemm_max_lane_use=use,
                         implicit_input_gemm_min_depth=64 / (2 * use)):
        assert gemm_conv.takes_input(edge)
    with tuning.override(implicit_input_gemm_max_lane_use=use * 0.999):
        assert not gemm_conv.takes_input(edge)
    with tuning.override(implicit_input_gemm_min_depth=64 / (2 * use) * 1.001):
        assert not gemm_conv.takes_input(edge)
    columns = 4 * 2 * 27 * 4 * 10 ** 3
    with tuning.override(implicit_input_gemm_max_column_bytes=columns):
        assert gemm_conv.takes_input(edge)
    with tuning.override(implicit_input_gemm_max_column_bytes=columns - 1):
        assert not gemm_conv.takes_input(edge)
    with tuning.override(implicit_input_gemm_max_lane_use=0.0):
        assert pick(1, 256, (7, 7, 7), (1, 1, 1), 1, 4, (16, 16, 16),
                    pass_name="input") == "rows"
    with tuning.override(implicit_input_gemm_min_depth=1e6):
        assert pick(2, 256, (3, 3, 3), (1, 1, 1), 1, 4, (12, 12, 12), (2, 2, 2),
                    pass_name="input") == "implicit"
    # large kernels, float32: the implicit GEMM unless the FFT's estimate beats it by the
    # measured factor (implicit.fft_beats): a few images of a 15 × 15 kernel stay on it, as
    # do strided ones (no FFT); a large batch of a 31 × 31 kernel goes to the FFT, and a
    # smaller factor hands the FFT the few images too
    for pass_name in conv_kernels.PASSES:
        assert pick(16, 16, (15, 15), (1, 1), 1, 8, (78, 78), pass_name=pass_name) == "implicit"
        assert pick(16, 32, (15, 15), (2, 2), 1, 4, (78, 78), pass_name=pass_name) == "implicit"
        assert pick(16, 16, (31, 31), (1, 1), 1, 64, (94, 94), pass_name=pass_name) == "fft"
        with tuning.override(implicit_fft_cost_factor=1.0):
            assert pick(16, 16, (15, 15), (1, 1), 1, 8, (78, 78), pass_name=pass_name) == "fft"
        # a grouped layer's estimate is the whole layer's, as fft's own rule reads it
        assert pick(64, 64, (31, 31), (1, 1), 2, 16, (94, 94), pass_name=pass_name) == "fft"
    # 1×1 on fewer than implicit_pointwise_min_images images: shift's products per image for
    # the forward pass and input gradient, the implicit GEMM for the weight gradient
    for batch, expected in ((1, "shift"), (7, "shift"), (8, "implicit"), (32, "implicit")):
        for pass_name in ("forward", "input"):
            assert pick(320, 1280, (1, 1), (1, 1), 1, batch, (7, 7),
                        pass_name=pass_name) == expected
    assert pick(320, 1280, (1, 1), (1, 1), 1, 1, (7, 7), pass_name="weight") == "implicit"
    # ... unless its products would be too thin for BLAS (4 channels: shift does not win),
    # where a thin product that large stays on the implicit GEMM (forward: 0.072 ms against
    # im2col's 0.110, 2 threads, AVX-512)
    assert pick(4, 64, (1, 1), (1, 1), 1, 1, (56, 56), pass_name="input") == "implicit"
    assert pick(4, 64, (1, 1), (1, 1), 1, 1, (56, 56)) == "implicit"
    with tuning.override(implicit_pointwise_min_images=1):
        assert pick(320, 1280, (1, 1), (1, 1), 1, 1, (7, 7)) == "implicit"
    # groups narrower than a vector: at a stride, the input gradient on dense blocks of
    # groups; the forward pass and stride 1 on the implicit GEMM (the weight gradient's blocks
    # are its own, ``implicit.lane_groups``)
    # (groups of 2 channels: narrower than a vector on every target, SSE's 4 lanes included),
    # where the lanes are not taken (they take these layers first, below)
    def pick_without_lanes(*args, pass_name="forward"):
        geometry = conv_kernels.ConvGeometry.of(
            (args[5], args[0]) + args[6], (args[1], args[0] // args[4]) + args[2], args[3],
            (1, 1), args[4], np.float32)
        return next(name for name in conv_kernels.ALGORITHMS if name != "lanes"
                    and conv_kernels.applies(name, geometry, pass_name) and
                    conv_kernels.REGISTRY[name].wins(geometry, pass_name))
    assert pick_without_lanes(128, 128, (3, 3), (2, 2), 64, 16, (30, 30),
                              pass_name="input") == "blocked"
    assert pick_without_lanes(128, 128, (3, 3), (2, 2), 64, 16, (30, 30)) == "implicit"
    assert pick_without_lanes(128, 128, (3, 3), (1, 1), 64, 16, (30, 30),
                              pass_name="input") == "implicit"
    assert pick(128, 128, (3, 3), (2, 2), 64, 16, (30, 30), pass_name="input") == "lanes"
    assert pick(128, 128, (3, 3), (2, 2), 4, 16, (30, 30), pass_name="input") == "implicit"
    # a non-finite weight: gemm for the input gradient (implicit pads dy), x still implicit's
    geometry = conv_kernels.ConvGeometry.of((2, 64, 9, 9), (128, 64, 3, 3), (1, 1), (1, 1))
    assert conv_kernels.select(geometry, "input", nonfinite={"w"}) == "gemm"
    assert conv_kernels.select(geometry, "weight", nonfinite={"x", "dy"}) == "implicit"


@pytest.mark.parametrize("stride, dilation, mult", [((1, 1), (1, 1), 1), ((2, 1), (1, 2), 2),
                                                     ((2, 2), (2, 2), 1), ((1, 3), (1, 1), 3)])
def test_compiled_depthwise_matches_numpy_depthwise(stride, dilation, mult):
    """The Numba kernels compute the same sums as the NumPy ones (and so as PyTorch)."""
    from cnnkit.kernels import depthwise_numba
    from cnnkit.kernels.conv import depthwise as conv_depthwise
    rng = np.random.default_rng(5)
    c, spatial, kernel = 5, (11, 12), (3, 2)
    xp = rng.standard_normal((3, c) + spatial).astype(np.float32)
    w = rng.standard_normal((c * mult, 1) + kernel).astype(np.float32)
    out = conv_kernels.output_spatial(spatial, kernel, stride, dilation)
    dy = rng.standard_normal((3, c * mult) + out).astype(np.float32)
    for fast, slow in (
            (depthwise_numba.forward(xp, w, stride, dilation, out),
             conv_depthwise.forward(xp, w, stride, dilation, out)),
            (depthwise_numba.backward_input(dy, w, spatial, stride, dilation, c),
             conv_depthwise.backward_input(dy, w, spatial, stride, dilation, c)),
            (depthwise_numba.backward_weight(xp, dy, kernel, stride, dilation),
             conv_depthwise.backward_weight(xp, dy, kernel, stride, dilation))):
        np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-4)


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="long double is float64 here")
def test_depthwise_layer_in_long_double_takes_numpy_sums():
    """NumPy's long double, which Numba does not compile for, takes NumPy's sums (the compiled
    kernels take float32 and float64 at every size): the float64 layer's values, kept in the
    wider type, and its gradients."""
    rng = np.random.default_rng(8)
    x64 = rng.standard_normal((2, 4, 6, 5))
    w64 = rng.standard_normal((8, 1, 3, 3))
    results = []
    for dtype in (np.float64, np.longdouble):
        x = cnnkit.tensor(x64.astype(dtype), requires_grad=True)
        w = cnnkit.tensor(w64.astype(dtype), requires_grad=True)
        y = F.conv2d(x, w, stride=(1, 2), padding=1, groups=4)
        y.backward(cnnkit.tensor(np.ones(y.shape, dtype)))
        assert y.dtype == x.grad.dtype == w.grad.dtype == dtype
        results.append([np.asarray(t.data, np.float64) for t in (y, x.grad, w.grad)])
    for wide, plain in zip(*results):
        np.testing.assert_allclose(wide, plain, rtol=1e-12, atol=1e-12)


def test_depthwise_layer_of_real_size_against_torch():
    """A layer of real size on the dispatcher's own choice of kernels."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 32, 24, 24)).astype(np.float32)
    w = rng.standard_normal((32, 1, 3, 3)).astype(np.float32)
    _layer_against_torch(x, w, rng, 1, 1, 1, 32)


def _layer_against_torch(x, w, rng, *arguments):
    """A float32 layer's output and gradients (x, w) against PyTorch's; ``arguments``:
    stride, padding, dilation, groups."""
    ours, theirs = getattr(F, f"conv{x.ndim - 2}d"), getattr(TF, f"conv{x.ndim - 2}d")
    xc, wc = cnnkit.tensor(x, requires_grad=True), cnnkit.tensor(w, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = ours(xc, wc, None, *arguments)
    yt = theirs(xt, wt, None, *arguments)
    g = rng.standard_normal(yt.shape).astype(np.float32)
    y.backward(g)
    yt.backward(torch.tensor(g))
    _compare(y.data, yt, 3.0, np.float32)
    _compare(xc.grad, xt.grad, 3.0, np.float32)
    _compare(wc.grad, wt.grad, 100.0, np.float32)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("stride, dilation, mult, picks", [
    (1, 1, 1, ("lanes", "lanes", "lanes")),
    ((1, 2, 2), 1, 1, ("lanes", "lanes", "lanes")),
    (2, 1, 2, ("blocked", "blocked", "implicit")),
    (1, 2, 1, ("lanes", "lanes", "lanes"))])
def test_3d_depthwise_layers_leave_numpys_sums(stride, dilation, mult, picks):
    """A 3-D depthwise layer's passes go to the compiled kernels (depthwise.sums_on_numpy):
    with K = C the lanes (a volume this narrow, at most 2 threads: 2 images of one block of
    channels, ``lanes._volume_too_few_tasks``), the blocks and the implicit GEMM for two
    outputs a channel. They match PyTorch, and keep its NaN where x holds one (the blocks,
    whose zeros would meet it, give the pass back to an exact algorithm)."""
    threads = conv_kernels.implicit.numba.get_num_threads()
    conv_kernels.implicit.numba.set_num_threads(min(2, threads))
    try:
        _check_3d_depthwise_layer(stride, dilation, mult, picks)
    finally:
        conv_kernels.implicit.numba.set_num_threads(threads)


def _check_3d_depthwise_layer(stride, dilation, mult, picks):
    rng = np.random.default_rng(8)
    c = 16
    x = rng.standard_normal((2, c, 6, 9, 8)).astype(np.float32)
    w = rng.standard_normal((c * mult, 1, 3, 3, 3)).astype(np.float32)
    pads = dilation
    geometry = conv_kernels.ConvGeometry.of(
        (2, c) + tuple(s + 2 * pads for s in x.shape[2:]), w.shape,
        stride if isinstance(stride, tuple) else (stride,) * 3, (dilation,) * 3, c)
    assert tuple(conv_kernels.select(geometry, p) for p in conv_kernels.PASSES) == picks
    _layer_against_torch(x, w, rng, stride, pads, dilation, c)
    x[1, 3, 2, 4, 4] = np.nan
    _layer_against_torch(x, w, rng, stride, pads, dilation, c)


def test_winograd_float32_error_bound():
    """Winograd's transforms add rounding; in float32 its error against the exact (float64)
    result stays within a small multiple of direct summation's error, for all three passes."""
    from cnnkit.kernels.conv import gemm as conv_gemm, winograd as conv_winograd
    rng = np.random.default_rng(11)
    xp = rng.standard_normal((4, 32, 18, 17))
    w = rng.standard_normal((16, 32, 3, 3)) / np.sqrt(32 * 9)
    out = (16, 15)
    dy = rng.standard_normal((4, 16) + out)
    exact = (conv_gemm.forward(xp, w, (1, 1), (1, 1), out, 1),
             conv_gemm.backward_input(dy, w, xp.shape[2:], (1, 1), (1, 1), 1),
             conv_gemm.backward_weight(xp, dy, (3, 3), (1, 1), (1, 1), 1))
    x32, w32, dy32 = (a.astype(np.float32) for a in (xp, w, dy))
    direct = (conv_gemm.forward(x32, w32, (1, 1), (1, 1), out, 1),
              conv_gemm.backward_input(dy32, w32, xp.shape[2:], (1, 1), (1, 1), 1),
              conv_gemm.backward_weight(x32, dy32, (3, 3), (1, 1), (1, 1), 1))
    winograd = (conv_winograd.forward(x32, w32, out),
                conv_winograd.backward_input(dy32, w32, xp.shape[2:]),
                conv_winograd.backward_weight(x32, dy32))
    for e, d, wg in zip(exact, direct, winograd):
        assert wg.dtype == np.float32
        scale = np.abs(e).max()
        direct_error = np.abs(d - e).max() / scale
        winograd_error = np.abs(wg - e).max() / scale
        assert winograd_error < max(8 * direct_error, 2e-6), (winograd_error, direct_error)


@pytest.mark.parametrize("stack_bytes", [1, 1 << 13])
def test_winograd_in_image_groups_matches_one_group(stack_bytes):
    """Large batches are transformed a few images at a time; the result must not depend on it."""
    from cnnkit.kernels.conv import winograd as conv_winograd
    rng = np.random.default_rng(12)
    xp = rng.standard_normal((5, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    out = (7, 6)
    dy = rng.standard_normal((5, 4) + out)
    whole = (conv_winograd.forward(xp, w, out), conv_winograd.backward_input(dy, w, xp.shape[2:]),
             conv_winograd.backward_weight(xp, dy))
    with tuning.override(winograd_stack_bytes=stack_bytes):
        assert len(conv_winograd._image_groups(5, 4, out, 8)) > 1
        grouped = (conv_winograd.forward(xp, w, out),
                   conv_winograd.backward_input(dy, w, xp.shape[2:]),
                   conv_winograd.backward_weight(xp, dy))
    for a, b in zip(whole, grouped):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_autotune_measures_once_per_shape_and_stays_exact():
    """With autotune on, the first call times the applicable algorithms and caches a choice
    that every later call of that shape uses; results still match PyTorch."""
    conv_kernels.set_autotune(True)
    try:
        rng = np.random.default_rng(8)
        x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
        w = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
        xc, wc = cnnkit.tensor(x, requires_grad=True), cnnkit.tensor(w, requires_grad=True)
        y = F.conv2d(xc, wc, padding=1)
        assert len(conv_kernels.autotune.measured()) == 1
        choice = next(iter(conv_kernels.autotune.measured().values()))
        assert set(choice) == {"forward", "input", "weight"}
        assert set(choice.values()) <= {"gemm", "shift", "fft", "winograd", "implicit"}
        F.conv2d(xc, wc, padding=1)
        assert len(conv_kernels.autotune.measured()) == 1  # measured once
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        yt = TF.conv2d(xt, wt, padding=1)
        g = rng.standard_normal(yt.shape).astype(np.float32)
        y.backward(g)
        yt.backward(torch.tensor(g))
        for ours, theirs in ((y.data, yt), (xc.grad, xt.grad), (wc.grad, wt.grad)):
            _compare(ours, theirs, 10.0, np.float32)
    finally:
        conv_kernels.set_autotune(False)
