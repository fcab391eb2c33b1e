"""The one place that decides which convolution algorithm runs: ``select`` and its settings.

Forced algorithms are refused where they do not apply (never replaced), settings are
per-thread context managers, and the autotune table is shared safely between threads.
"""
import threading

import numpy as np
import pytest

from cnnkit import tuning
from cnnkit.kernels import conv
from cnnkit.kernels.conv import winograd

RES3X3 = conv.ConvGeometry.of((4, 16, 10, 10), (16, 16, 3, 3), (1, 1), (1, 1))
STRIDED = conv.ConvGeometry.of((4, 16, 11, 11), (16, 16, 3, 3), (2, 2), (1, 1))


def test_forced_algorithm_that_does_not_apply_is_refused():
    with conv.using(algorithm="winograd"):
        assert conv.select(RES3X3, "forward") == "winograd"
        with pytest.raises(conv.NotApplicable, match="'winograd' does not apply to the forward"):
            conv.select(STRIDED, "forward")
        x = np.zeros((4, 16, 11, 11), np.float32)
        w = np.zeros((16, 16, 3, 3), np.float32)
        with pytest.raises(ValueError, match="applicable: implicit, depthwise|applicable: "):
            conv.conv_forward(x, w, (2, 2), (1, 1))


def test_non_finite_weight_refuses_forced_algorithms_for_the_input_gradient():
    w = np.ones((16, 16, 3, 3), np.float32)
    w[0, 0, 1, 1] = np.inf
    dy = np.ones((4, 16, 8, 8), np.float32)
    with conv.using(algorithm="implicit"):
        with pytest.raises(conv.NotApplicable, match="not finite"):
            conv.conv_backward_input(dy, w, (10, 10), (1, 1), (1, 1))
    with conv.using(algorithm="gemm"):  # PyTorch's: inf where the tap reaches, no NaN
        dx = conv.conv_backward_input(dy, w, (10, 10), (1, 1), (1, 1))
    assert np.isinf(dx).any() and not np.isnan(dx).any()


def test_forced_algorithm_is_the_one_that_runs(monkeypatch):
    calls = []
    real = winograd.forward_pass
    monkeypatch.setattr(winograd, "forward_pass", lambda *a: calls.append(1) or real(*a))
    x = np.random.default_rng(0).standard_normal((4, 16, 10, 10)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((16, 16, 3, 3)).astype(np.float32)
    with conv.using(algorithm={"forward": "winograd"}):
        y = conv.conv_forward(x, w, (1, 1), (1, 1))
        assert conv.select(RES3X3, "input") == "implicit"  # not forced: the heuristic's
    assert calls == [1]
    with conv.using(algorithm="gemm"):
        np.testing.assert_allclose(y, conv.conv_forward(x, w, (1, 1), (1, 1)), atol=1e-4)


def test_unknown_names_are_refused_before_any_work():
    for bad in ("winograd2", {"backward": "gemm"}, {"forward": "nope"}, 3):
        with pytest.raises(ValueError, match="algorithm: expected"):
            with conv.using(algorithm=bad):
                pass
    with pytest.raises(ValueError, match="pass_name"):
        conv.select(RES3X3, "backward")


def test_force_algorithm_and_set_autotune_still_work():
    try:
        conv.force_algorithm("shift")
        assert conv.select(RES3X3, "weight") == "shift"
        with conv.using(algorithm=None):
            assert conv.select(RES3X3, "weight") == "implicit"
        assert conv.select(RES3X3, "weight") == "shift"
    finally:
        conv.force_algorithm(None)
    assert conv.select(RES3X3, "weight") == "implicit"


def test_two_threads_forcing_different_algorithms_do_not_see_each_other():
    both_inside = threading.Barrier(2, timeout=30)
    seen, errors = {}, []

    def work(name):
        try:
            with conv.using(algorithm=name):
                both_inside.wait()  # both settings are active at once from here
                seen[name] = [conv.select(RES3X3, p) for p in conv.PASSES]
                both_inside.wait()
            seen[name + " after"] = conv.select(RES3X3, "forward")
        except Exception as err:  # reported below: a thread's assertion would be lost
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("winograd", "shift")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert seen["winograd"] == ["winograd"] * 3 and seen["shift"] == ["shift"] * 3
    assert seen["winograd after"] == seen["shift after"] == "implicit"
    with conv.using(algorithm="fft"):  # and a new thread starts from the heuristic
        other = []
        thread = threading.Thread(target=lambda: other.append(conv.select(RES3X3, "forward")))
        thread.start()
        thread.join()
        assert other == ["implicit"]


def test_autotune_table_is_filled_safely_from_threads():
    rng = np.random.default_rng(3)
    shapes = [((2, 8, 7, 7), (4, 8, 3, 3)), ((2, 4, 6, 9), (6, 4, 3, 3))]
    errors = []

    def work(x_shape, w_shape):
        try:
            with conv.using(autotune=True):
                x = rng.standard_normal(x_shape).astype(np.float32)
                w = rng.standard_normal(w_shape).astype(np.float32)
                conv.conv_forward(x, w, (1, 1), (1, 1))
        except Exception as err:
            errors.append(err)

    conv.autotune.clear()
    try:
        threads = [threading.Thread(target=work, args=shape) for shape in shapes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        table = conv.autotune.measured()
        assert len(table) == 2
        for geometry, choice in table.items():
            for pass_name, name in choice.items():
                assert conv.applies(name, geometry, pass_name)
    finally:
        conv.autotune.clear()


def test_geometry_is_computed_once_and_ignores_pads_for_equality():
    a = conv.ConvGeometry.of((2, 3, 9, 9), (4, 3, 3, 3), (1, 1), (1, 1), pads=((1, 1), (1, 1)))
    b = conv.ConvGeometry.of((2, 3, 9, 9), (4, 3, 3, 3), (1, 1), (1, 1))
    assert a == b and hash(a) == hash(b) and a.out == (7, 7) and a.exact
    with pytest.raises(Exception):
        a.batch = 3  # frozen


def test_the_heuristic_follows_the_tuning_values_after_answering():
    """Its answers are kept per tuning state: an override, and values read again, are seen."""
    assert conv.select(RES3X3, "forward") == "implicit"
    with tuning.override(implicit_min_taps=10_000):
        assert conv.select(RES3X3, "forward") != "implicit"
        with tuning.override(implicit_min_taps=16):
            assert conv.select(RES3X3, "forward") == "implicit"
    assert conv.select(RES3X3, "forward") == "implicit"
    state = tuning.state()
    tuning.reload()
    assert tuning.state() != state


def test_geometries_with_other_pads_keep_their_own():
    """Equal geometries, shared between calls, but each call's pads are its own."""
    shape, w_shape = (2, 3, 9, 9), (4, 3, 3, 3)
    a = conv.ConvGeometry.of(shape, w_shape, (1, 1), (1, 1), pads=((1, 1), (1, 1)))
    b = conv.ConvGeometry.of(shape, w_shape, (1, 1), (1, 1), pads=((0, 2), (2, 0)))
    c = conv.ConvGeometry.of(shape, w_shape, (1, 1), (1, 1), pads=[[0, 2], [2, 0]])
    assert a == b == c and a.pads == ((1, 1), (1, 1)) and b.pads == c.pads == ((0, 2), (2, 0))
    assert conv.ConvGeometry.of(shape, w_shape, (1, 1), (1, 1), pads=((1, 1), (1, 1))) is a
    assert a.per_group() is a.per_group() and a.per_group().pads == a.pads


# Forward passes the dispatcher plans once per geometry (``dispatch.forward_plan``): the
# implicit GEMM's channels-last product over the batch, and the stencil of 3 × 3 (× 3)
# kernels of one input channel per group. (algorithm, x, w, stride, dilation, pads, groups)
PLANNED = [
    ("implicit", (1, 16, 28, 28), (16, 16, 3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), 1),
    ("implicit", (1, 16, 28, 28), (32, 16, 1, 1), (2, 2), (1, 1), None, 1),
    ("implicit", (1, 32, 14, 14), (64, 32, 3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)), 1),
    ("implicit", (2, 8, 12), (24, 8, 3), (1,), (2,), ((2, 1),), 1),
    ("implicit", (1, 4, 7, 8, 9), (16, 4, 3, 3, 3), (1, 1, 1), (1, 1, 1),
     ((1, 1), (0, 1), (1, 0)), 1),
    ("implicit", (3, 24, 10, 10), (40, 24, 3, 3), (1, 1), (1, 1), ((0, 0), (0, 0)), 1),
    ("rows", (1, 1, 28, 28), (16, 1, 3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), 1),
    ("rows", (2, 6, 9, 10), (12, 1, 3, 3), (1, 1), (1, 1), ((2, 0), (1, 1)), 6),
    ("rows", (1, 3, 5, 6, 7), (3, 1, 3, 3, 3), (1, 1, 1), (1, 1, 1), ((1, 1),) * 3, 3),
]


def _geometry(x_shape, w_shape, stride, dilation, pads, groups=1):
    padded = x_shape[:2] + tuple(n + lo + hi for n, (lo, hi) in
                                 zip(x_shape[2:], pads or ((0, 0),) * len(stride)))
    return conv.ConvGeometry.of(padded, w_shape, stride, dilation, groups, pads=pads)


@pytest.mark.parametrize("algorithm, x_shape, w_shape, stride, dilation, pads, groups", PLANNED)
def test_a_planned_forward_pass_gives_the_floats_of_the_unplanned_one(
        algorithm, x_shape, w_shape, stride, dilation, pads, groups, monkeypatch):
    """The plan runs the same kernel as the algorithm's ``forward_from`` (forced, which is
    never planned), bit for bit, with and without a bias, NaN and inf where the sums put
    them; and it is what runs: ``forward_from`` is not called."""
    from cnnkit.kernels.conv import dispatch, implicit, rows
    g = _geometry(x_shape, w_shape, stride, dilation, pads, groups)
    plan = dispatch.forward_plan(g, g.pad_widths)
    assert conv.select(g, "forward") == algorithm
    assert isinstance(plan, {"implicit": implicit.ChannelsLastForward,
                             "rows": rows.StencilForward}[algorithm])
    rng = np.random.default_rng(len(x_shape) + w_shape[0])
    x = rng.standard_normal(x_shape).astype(np.float32)
    x.reshape(-1)[[3, 17]] = np.nan, np.inf
    w = rng.standard_normal(w_shape).astype(np.float32)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    with conv.using(algorithm=algorithm):
        expected = [conv.conv_forward(x, w, stride, dilation, groups, pads, bias=b)
                    for b in (None, bias)]
    monkeypatch.setattr({"implicit": implicit, "rows": rows}[algorithm], "forward_from", None)
    for b, want in zip((None, bias), expected):
        got = conv.conv_forward(x, w, stride, dilation, groups, pads, bias=b)
        np.testing.assert_array_equal(got, want)
        assert got.shape == want.shape and got.dtype == np.float32


def test_forward_plans_are_made_only_where_nothing_but_the_shapes_decides(monkeypatch):
    """No plan for a grouped layer, a planar product, one image per task, the row correlation
    (a 5 × 5 kernel of one channel) or float64; a forced algorithm and autotune skip the
    plans; and a plan is kept per tuning state."""
    from cnnkit.kernels.conv import dispatch
    for x_shape, w_shape, groups in (((1, 16, 30, 30), (16, 4, 3, 3), 4),
                                     ((1, 64, 32, 32), (8, 64, 3, 3), 1),
                                     ((16, 16, 30, 30), (16, 16, 3, 3), 1),
                                     ((1, 1, 32, 32), (6, 1, 5, 5), 1)):
        g = conv.ConvGeometry.of(x_shape, w_shape, (1, 1), (1, 1), groups)
        assert dispatch.forward_plan(g, g.pad_widths) is None
    g64 = conv.ConvGeometry.of((1, 16, 30, 30), (16, 16, 3, 3), (1, 1), (1, 1), dtype=np.float64)
    assert dispatch.forward_plan(g64, g64.pad_widths) is None
    g = _geometry(*PLANNED[0][1:])
    plan = dispatch.forward_plan(g, g.pad_widths)
    assert dispatch.forward_plan(g, g.pad_widths) is plan
    with tuning.override(implicit_tap_block=36):
        other = dispatch.forward_plan(g, g.pad_widths)
        assert other is not plan and other.product.tap_block == 36
    calls = []
    x = np.ones((1, 16, 28, 28), np.float32)
    w = np.ones((16, 16, 3, 3), np.float32)
    real = type(plan).__call__
    monkeypatch.setattr(type(plan), "__call__", lambda *a: calls.append(1) or real(*a))
    conv.conv_forward(x, w, (1, 1), (1, 1), pads=((1, 1), (1, 1)))
    assert calls == [1]
    with conv.using(algorithm="implicit"):
        conv.conv_forward(x, w, (1, 1), (1, 1), pads=((1, 1), (1, 1)))
    with conv.using(autotune=True):
        conv.conv_forward(x, w, (1, 1), (1, 1), pads=((1, 1), (1, 1)))
    assert calls == [1]


def test_a_planned_forward_pass_keeps_the_padded_copy_for_the_weight_gradient():
    """A training step's source (``shared``): the plan pads x once, keeps the copy, and the
    weight gradient reads that copy instead of padding again."""
    from cnnkit.kernels.conv import dispatch
    x = np.random.default_rng(9).standard_normal((1, 16, 28, 28)).astype(np.float32)
    w = np.random.default_rng(10).standard_normal((16, 16, 3, 3)).astype(np.float32)
    pads = ((1, 1), (1, 1))
    g = _geometry(x.shape, w.shape, (1, 1), (1, 1), pads)
    assert dispatch.forward_plan(g, g.pad_widths) is not None
    source = conv.PaddedInput(x, pads, shared=True)
    y = conv.conv_forward(source, w, (1, 1), (1, 1))
    assert source.is_padded
    copy = source.padded()
    dw = conv.conv_backward_weight(source, y, (3, 3), (1, 1), (1, 1))
    assert source.padded() is copy
    with conv.using(algorithm="implicit"):
        expected = conv.conv_backward_weight(conv.PaddedInput(x, pads), y, (3, 3), (1, 1), (1, 1))
    np.testing.assert_array_equal(dw, expected)


def test_forward_plans_follow_the_thread_count_and_the_operands_finiteness(monkeypatch):
    """A plan is kept per Numba thread count (its tasks split by it); and an algorithm that
    needs an operand finite is never planned (the pick would depend on the data)."""
    import numba

    from cnnkit.kernels.conv import dispatch, registry
    g = _geometry(*PLANNED[0][1:])
    threads = numba.get_num_threads()
    plan = dispatch.forward_plan(g, g.pad_widths)
    if threads > 1:
        numba.set_num_threads(1)
        try:
            single = dispatch.forward_plan(g, g.pad_widths)
            assert single is not plan and single.product.tasks != plan.product.tasks
        finally:
            numba.set_num_threads(threads)
    assert dispatch.forward_plan(g, g.pad_widths) is plan
    monkeypatch.setitem(registry.NEEDS_FINITE, "implicit", {"forward": frozenset({"x"})})
    with tuning.override(implicit_tap_block=40):  # a tuning state of its own: asked afresh
        assert conv.select(g, "forward") == "implicit"
        assert dispatch.forward_plan(g, g.pad_widths) is None
