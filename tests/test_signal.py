"""cnnkit.signal against scipy.signal (values, dtypes, shapes) and its gradients against float64
central differences and PyTorch autograd."""
import itertools
import zlib

import numpy as np
import pytest
import scipy.fft
import scipy.signal as ss
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkit
import cnnkit.signal as cs
from cnnkit.kernels.fft_conv import fft_convolve, next_fast_len
from cnnkit.signal import direct as direct_module
from cnnkit.signal.boundary import pad_boundary, source_indices

MODES = ("full", "same", "valid")
METHODS = ("auto", "direct", "fft")
INT_DTYPES = (np.int8, np.uint8, np.int32, np.int64)

# Shape pairs per number of dims: odd/even sizes, either input larger, mixed, size-1 axes.
SHAPE_PAIRS = {
    1: [((7,), (3,)), ((8,), (4,)), ((3,), (7,)), ((4,), (6,)), ((5,), (5,)), ((1,), (4,)),
        ((6,), (1,))],
    2: [((6, 7), (3, 2)), ((3, 2), (6, 7)), ((5, 4), (4, 5)), ((4, 4), (4, 4)), ((1, 6), (3, 1)),
        ((8, 9), (1, 1)), ((2, 3), (5, 6))],
    3: [((4, 5, 3), (2, 3, 2)), ((2, 2, 3), (4, 3, 5)), ((3, 4, 2), (2, 2, 4)),
        ((1, 4, 3), (2, 1, 2))],
}


# -- helpers -----------------------------------------------------------------------------------
def random_array(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        low = 0 if dtype.kind == "u" else -4
        return rng.integers(low, 5, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def scipy_reference(func, a, b, mode, method):
    """scipy's answer, except where scipy has no answer or a wrong one for bools: its N-D direct
    method rejects bool, and its FFT method casts unrounded noise (5e-17) to True. The exact bool
    result is "some product is true", i.e. the integer convolution of 0/1 values is positive."""
    if np.result_type(a, b) == np.bool_:
        exact = func(a.astype(np.int64), b.astype(np.int64), mode, "direct") > 0
        if method == "fft" or a.ndim > 1 or (mode == "same" and a.size < b.size):
            return exact
        np.testing.assert_array_equal(func(a, b, mode, method), exact)  # np.convolve path
        return exact
    return func(a, b, mode, method)


def assert_matches(result, expected, rtol=None):
    assert isinstance(result, np.ndarray)
    assert result.dtype == expected.dtype, (result.dtype, expected.dtype)
    assert result.shape == expected.shape, (result.shape, expected.shape)
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(result, expected)
        return
    if rtol is None:
        rtol = 1e-4 if expected.dtype in (np.float32, np.complex64) else 1e-10
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    np.testing.assert_allclose(result, expected, rtol=rtol, atol=rtol * scale)


def full_region(shape1, shape2, mode):
    """The mode's window of the full output, written out from scipy's docs (test oracle)."""
    full = [n + k - 1 for n, k in zip(shape1, shape2)]
    size = {"full": full, "same": list(shape1),
            "valid": [abs(n - k) + 1 for n, k in zip(shape1, shape2)]}[mode]
    return tuple(slice((f - s) // 2, (f - s) // 2 + s) for f, s in zip(full, size))


def torch_convolve(a, b, mode):
    """True N-D convolution (N = 1, 2, 3) from torch's cross-correlating conv: zero-pad by K - 1,
    flip the kernel, then crop the mode's window."""
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[a.ndim]
    pad = [p for k in reversed(b.shape) for p in (k - 1, k - 1)]
    full = conv(F.pad(a[None, None], pad), torch.flip(b, list(range(b.ndim)))[None, None])[0, 0]
    return full[full_region(a.shape, b.shape, mode)]


def central_differences(f, x, weights, eps=1e-6):
    """d(sum(f(x) * weights))/dx by central differences, float64."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        plus = np.sum(f(x) * weights)
        x[index] = saved - eps
        minus = np.sum(f(x) * weights)
        x[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def autograd(func, a, b, weights, **kwargs):
    ta = cnnkit.tensor(a, requires_grad=True)
    tb = cnnkit.tensor(b, requires_grad=True)
    out = func(ta, tb, **kwargs)
    out.backward(weights.astype(out.dtype))
    return out, ta.grad, tb.grad


# -- convolve / correlate against scipy ----------------------------------------------------------
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.float32, np.float64,
                                   np.bool_, "int16+float32", "float32+float64", "bool+int32"])
@pytest.mark.parametrize("func", ["convolve", "correlate"])
def test_matches_scipy_grid(ndim, dtype, func, rng):
    dtype1, dtype2 = dtype.split("+") if isinstance(dtype, str) else (dtype, dtype)
    ours, theirs = getattr(cs, func), getattr(ss, func)
    for (shape1, shape2), mode, method in itertools.product(SHAPE_PAIRS[ndim], MODES, METHODS):
        a, b = random_array(rng, shape1, dtype1), random_array(rng, shape2, dtype2)
        if mode == "valid" and not (all(n >= k for n, k in zip(shape1, shape2))
                                    or all(k >= n for n, k in zip(shape1, shape2))):
            with pytest.raises(ValueError, match="valid"):
                ours(a, b, mode, method)
            continue
        expected = scipy_reference(theirs, a, b, mode, method)
        # scipy's FFT transforms a float32 input in single precision even for a float64 result
        single = np.float32 in (a.dtype, b.dtype)
        assert_matches(ours(a, b, mode, method), expected, rtol=1e-4 if single else None)


@settings(max_examples=150)
@given(data=st.data())
def test_matches_scipy_random_shapes(data):
    ndim = data.draw(st.integers(1, 3), label="ndim")
    shape1 = tuple(data.draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    shape2 = tuple(data.draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    mode = data.draw(st.sampled_from(MODES), label="mode")
    method = data.draw(st.sampled_from(METHODS), label="method")
    dtype = data.draw(st.sampled_from([np.int64, np.int32, np.float32, np.float64]), label="dtype")
    func = data.draw(st.sampled_from(["convolve", "correlate"]), label="func")
    if mode == "valid":
        # make one input at least as large as the other on every axis
        shape1 = tuple(max(n, k) for n, k in zip(shape1, shape2))
        if data.draw(st.booleans(), label="swap"):
            shape1, shape2 = shape2, shape1
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    a, b = random_array(rng, shape1, dtype), random_array(rng, shape2, dtype)
    expected = getattr(ss, func)(a, b, mode, method)
    assert_matches(getattr(cs, func)(a, b, mode, method), expected)


def test_integer_fft_is_rounded_and_exact():
    rng = np.random.default_rng(1)
    a = rng.integers(-1000, 1000, size=(40, 30))
    b = rng.integers(-1000, 1000, size=(7, 9))
    for mode in MODES:
        result = cs.convolve(a, b, mode, method="fft")
        assert result.dtype == np.int64
        np.testing.assert_array_equal(result, ss.convolve(a, b, mode, method="direct"))


@pytest.mark.parametrize("func", ["convolve", "correlate"])
def test_integer_fft_with_a_length_one_axis_everywhere_is_exact_like_scipy(func):
    # Where every axis has a length-1 input, scipy's FFT method multiplies in the integer
    # dtype (nothing is transformed), so values beyond float64's 2**53 stay exact.
    cases = [(np.array([2**64 - 1, 1], np.uint64), np.array([1], np.uint64)),
             (np.array([[2**64 - 1, 1]], np.uint64), np.array([[1], [2]], np.uint64)),
             (np.array([2**63 - 1, -2**63], np.int64), np.array([3])),
             (np.array([[True, False]]), np.array([[True], [True]]))]
    for a, b in cases:
        for mode in MODES if a.ndim == 1 else ("full", "same"):  # 2-D shapes cross: no 'valid'
            expected = getattr(ss, func)(a, b, mode, method="fft")
            result = getattr(cs, func)(a, b, mode, method="fft")
            assert result.dtype == expected.dtype
            np.testing.assert_array_equal(result, expected)


def test_integer_overflow_wraps_like_numpy_in_direct():
    a = np.full(50, 100, dtype=np.int8)
    b = np.full(3, 100, dtype=np.int8)
    expected = ss.convolve(a, b, method="direct")  # np.convolve: int8 arithmetic, wrapping
    np.testing.assert_array_equal(cs.convolve(a, b), expected)  # auto must not round an FFT
    a2, b2 = a.reshape(5, 10), b.reshape(1, 3)
    np.testing.assert_array_equal(cs.convolve(a2, b2), ss.convolve(a2, b2, method="direct"))


def test_zero_dim_inputs_multiply():
    for x, y in [(np.int8(3), np.float32(2.5)), (3, 4), (np.array(2.0), np.array(-1.5))]:
        for func, theirs in [(cs.convolve, ss.convolve), (cs.correlate, ss.correlate)]:
            result, expected = func(x, y), np.asarray(theirs(x, y))
            assert result.shape == () and result.dtype == expected.dtype and result == expected


def test_scipys_own_zero_rank_and_fillvalue_tests():
    """scipy's test_signaltools ``test_zero_rank`` and ``test_fillvalue_errors``, verbatim but
    for the module: 0-d inputs give a NumPy scalar, and the error messages match scipy's."""
    from scipy._lib._array_api import xp_assert_equal
    a, b = np.asarray(1289), np.asarray(4567)
    xp_assert_equal(cs.convolve(a, b), a * b)
    xp_assert_equal(cs.correlate(a, b), ss.correlate(a, b))
    assert cs.convolve(1289, 4567) == 1289 * 4567
    with pytest.raises(ValueError, match="could not cast `fillvalue` directly to the output "):
        cs.convolve2d([[1]], [[1, 2]], fillvalue=1j)
    with pytest.raises(ValueError, match="`fillvalue` must be scalar or an array with "):
        cs.convolve2d([[1]], [[1, 2]], fillvalue=[1, 2])


def test_lists_float16_and_complex_inputs(rng):
    assert_matches(cs.convolve([1, 2, 3], [0, 1, 0.5]), ss.convolve([1, 2, 3], [0, 1, 0.5]))
    a, b = rng.standard_normal((6, 5)), rng.standard_normal((3, 4))
    for method in METHODS:
        result = cs.convolve(a.astype(np.float16), b.astype(np.float16), "same", method)
        assert result.dtype == np.float16
        np.testing.assert_allclose(result, ss.convolve(a, b, "same"), rtol=1e-2, atol=2e-2)
        ca, cb = a + 1j * a[::-1], b - 2j * b
        for mode in MODES[:2]:
            assert_matches(cs.correlate(ca, cb, mode, method), ss.correlate(ca, cb, mode, method))


def test_direct_strategies_agree_on_every_region(rng):
    """The kernel-offset loop and the sliding-window einsum give the same regions."""
    for shape1, shape2 in [((6, 7), (3, 4)), ((3, 5, 4), (4, 2, 2)), ((5, 5), (5, 5))]:
        x, k = rng.standard_normal(shape1), rng.standard_normal(shape2)
        for mode in MODES:
            region = full_region(shape1, shape2, mode)
            starts = tuple(r.start for r in region)
            sizes = tuple(r.stop - r.start for r in region)
            big, small = (x, k) if x.size >= k.size else (k, x)
            loop = direct_module._offset_loop(big, small, starts, sizes)
            windowed = direct_module._windowed(big, small, starts, sizes)
            expected = ss.convolve(x, k, mode) if mode != "valid" else None
            np.testing.assert_allclose(loop, windowed, rtol=1e-12, atol=1e-12)
            if expected is not None:
                np.testing.assert_allclose(loop, expected, rtol=1e-12, atol=1e-12)


def test_long_signal_overlap_add_matches_scipy(rng):
    x = rng.standard_normal(70_000)
    for taps in (5, 300):
        k = rng.standard_normal(taps)
        for mode in MODES:
            for a, b in [(x, k), (k, x)]:
                assert_matches(cs.convolve(a, b, mode, "fft"), ss.convolve(a, b, mode), rtol=1e-9)
        r32 = cs.correlate(x.astype(np.float32), k.astype(np.float32), "same", "fft")
        assert r32.dtype == np.float32
        np.testing.assert_allclose(r32, ss.correlate(x, k, "same"), rtol=1e-3, atol=1e-3)


def test_fft_kernel_full_output_and_float32(rng):
    a = rng.standard_normal((9, 1, 4)).astype(np.float32)
    b = rng.standard_normal((3, 5, 1)).astype(np.float32)
    out = fft_convolve(a, b)
    assert out.dtype == np.float32 and out.shape == (11, 5, 4)
    np.testing.assert_allclose(out, ss.convolve(a.astype(float), b.astype(float)), atol=1e-4)


def test_next_fast_len_matches_scipy():
    for n in itertools.chain(range(1, 3000), [10**6 + 1, 2**30 + 1, 3**19 + 7, 10**12 + 1]):
        assert next_fast_len(n) == scipy.fft.next_fast_len(n, real=True), n


# -- choose_conv_method ------------------------------------------------------------------------
def test_choose_conv_method_cost_model(rng):
    image, small = np.zeros((512, 512)), np.ones((3, 3))
    assert cs.choose_conv_method(image, small, "same") == "direct"
    assert cs.choose_conv_method(image, np.ones((31, 31)), "same") == "fft"
    assert cs.choose_conv_method(np.zeros(1_000_000), np.ones(1024), "same") == "fft"
    assert cs.choose_conv_method(np.zeros(1_000_000), np.ones(4), "same") == "direct"
    assert cs.choose_conv_method(np.zeros(64), np.ones(3), "full") == "direct"
    assert cs.choose_conv_method(cnnkit.tensor(image), small, "valid") == "direct"


def test_choose_conv_method_keeps_integers_and_bools_exact():
    big = np.full((200, 200), 2**26, dtype=np.int64)
    assert cs.choose_conv_method(big, big, "full") == "direct"  # 2**52 * 40000 > 2**52
    small = np.ones((200, 200), dtype=np.int64)
    assert cs.choose_conv_method(small, small, "full") == "fft"
    narrow = np.full((200, 200), 100, dtype=np.int16)  # sums overflow int16
    assert cs.choose_conv_method(narrow, narrow, "full") == "direct"
    flags = np.ones((200, 200), dtype=bool)
    assert cs.choose_conv_method(flags, flags, "full") == "direct"


# -- convolve2d / correlate2d ------------------------------------------------------------------
PAIRS_2D = [((6, 7), (3, 2)), ((5, 4), (4, 4)), ((3, 2), (6, 7)), ((4, 5), (2, 7)), ((1, 1), (3, 3)),
            ((2, 3), (5, 4)), ((7, 7), (7, 7))]


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm", "pad", "circular", "symmetric"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32, np.float64])
def test_2d_matches_scipy(boundary, dtype, rng):
    for (shape1, shape2), mode, fillvalue in itertools.product(PAIRS_2D, MODES, (0, 3, -1.5)):
        a, b = random_array(rng, shape1, dtype), random_array(rng, shape2, dtype)
        for ours, theirs in [(cs.convolve2d, ss.convolve2d), (cs.correlate2d, ss.correlate2d)]:
            try:
                expected = theirs(a, b, mode, boundary, fillvalue)
            except ValueError:
                with pytest.raises(ValueError):
                    ours(a, b, mode, boundary, fillvalue)
                continue
            assert_matches(ours(a, b, mode, boundary, fillvalue), expected)


@settings(max_examples=100)
@given(data=st.data())
def test_2d_random_shapes(data):
    shape1 = tuple(data.draw(st.lists(st.integers(1, 8), min_size=2, max_size=2)))
    shape2 = tuple(data.draw(st.lists(st.integers(1, 8), min_size=2, max_size=2)))
    mode = data.draw(st.sampled_from(("full", "same")), label="mode")
    boundary = data.draw(st.sampled_from(("fill", "wrap", "symm")), label="boundary")
    fillvalue = data.draw(st.integers(-3, 3), label="fillvalue")
    func = data.draw(st.sampled_from(["convolve2d", "correlate2d"]), label="func")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    a, b = random_array(rng, shape1, np.int64), random_array(rng, shape2, np.int64)
    expected = getattr(ss, func)(a, b, mode, boundary, fillvalue)
    assert_matches(getattr(cs, func)(a, b, mode, boundary, fillvalue), expected)


def test_2d_fillvalue_casting_follows_scipy():
    a, b = np.ones((3, 3), dtype=np.int64), np.ones((2, 2), dtype=np.int64)
    for fillvalue in (2.7, -2.7, np.array([4])):
        assert_matches(cs.convolve2d(a, b, fillvalue=fillvalue),
                       ss.convolve2d(a, b, fillvalue=fillvalue))
    nan_fill = cs.convolve2d(a * 1.0, b * 1.0, fillvalue=np.nan)
    np.testing.assert_array_equal(np.isnan(nan_fill), np.isnan(ss.convolve2d(a * 1.0, b * 1.0,
                                                                              fillvalue=np.nan)))
    for bad, dtype in [(300, np.int8), (-1, np.uint8), (1j, np.float64), ([1, 2], np.float64),
                       ([], np.float64)]:
        with pytest.raises(ValueError, match="fillvalue"):
            cs.convolve2d(a.astype(dtype), b.astype(dtype), fillvalue=bad)


def test_boundary_pad_is_numpy_symmetric_and_wrap(rng):
    x = rng.standard_normal((3, 4))
    for widths in [((2, 1), (0, 3)), ((7, 5), (9, 1))]:  # wider than the array too
        np.testing.assert_array_equal(pad_boundary(x, widths, "symm", None, x.dtype),
                                      np.pad(x, widths, mode="symmetric"))
        np.testing.assert_array_equal(pad_boundary(x, widths, "wrap", None, x.dtype),
                                      np.pad(x, widths, mode="wrap"))
    np.testing.assert_array_equal(source_indices(3, 4, 4, "symm"),
                                  [2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0])


# -- gradients ---------------------------------------------------------------------------------
GRAD_PAIRS = {1: [((5,), (3,)), ((4,), (6,)), ((6,), (2,))],
              2: [((4, 5), (2, 3)), ((3, 2), (4, 4)), ((4, 4), (3, 2))],
              3: [((3, 4, 2), (2, 2, 2)), ((2, 3, 2), (3, 3, 2))]}


def _grad_cases():
    for pairs in GRAD_PAIRS.values():
        for (shape1, shape2), mode, func in itertools.product(pairs, MODES,
                                                             ("convolve", "correlate")):
            if mode == "valid" and not (all(n >= k for n, k in zip(shape1, shape2))
                                        or all(k >= n for n, k in zip(shape1, shape2))):
                continue
            yield shape1, shape2, mode, func


@pytest.mark.parametrize("shape1,shape2,mode,func", list(_grad_cases()))
def test_gradients_match_central_differences(shape1, shape2, mode, func):
    rng = np.random.default_rng(zlib.crc32(repr((shape1, shape2, mode, func)).encode()))
    a, b = rng.standard_normal(shape1), rng.standard_normal(shape2)
    ours = getattr(cs, func)
    weights = rng.standard_normal(ours(a, b, mode).shape)
    for method in ("direct", "fft"):
        _, dLda, dLdb = autograd(ours, a, b, weights, mode=mode, method=method)
        assert dLda.shape == a.shape and dLdb.shape == b.shape
        expected_a = central_differences(lambda x: ours(x, b, mode, "direct"), a.copy(), weights)
        expected_b = central_differences(lambda y: ours(a, y, mode, "direct"), b.copy(), weights)
        np.testing.assert_allclose(dLda, expected_a, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dLdb, expected_b, rtol=1e-6, atol=1e-7)


def test_wrong_gradient_formulas_would_fail():
    """The checks above can fail: an unflipped kernel or an off-by-one embedding of the upstream
    gradient gives values far from the finite differences."""
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((6, 5)), rng.standard_normal((3, 2))
    weights = rng.standard_normal((6, 5))  # 'same'
    expected_a = central_differences(lambda x: cs.convolve(x, b, "same"), a.copy(), weights)
    full = np.zeros((8, 6))
    full[1:7, 0:5] = weights  # 'same' window starts at ((3-1)//2, (2-1)//2) = (1, 0)
    right = cs.correlate(full, b, "valid")
    np.testing.assert_allclose(right, expected_a, rtol=1e-6, atol=1e-7)
    unflipped = cs.convolve(full, b, "valid")
    shifted = np.zeros((8, 6))
    shifted[0:6, 0:5] = weights
    off_by_one = cs.correlate(shifted, b, "valid")
    for wrong in (unflipped, off_by_one):
        assert not np.allclose(wrong, expected_a, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-9), (np.float32, 1e-4)])
def test_gradients_match_torch(ndim, dtype, rtol):
    rng = np.random.default_rng(ndim)
    shape_pairs = {1: [((17,), (5,)), ((6,), (9,))], 2: [((9, 8), (3, 4)), ((4, 5), (6, 6))],
                   3: [((6, 5, 4), (3, 2, 3)), ((3, 3, 3), (4, 4, 4))]}[ndim]
    for (shape1, shape2), mode in itertools.product(shape_pairs, MODES):
        a = rng.standard_normal(shape1).astype(dtype)
        b = rng.standard_normal(shape2).astype(dtype)
        ta = torch.tensor(a, requires_grad=True)
        tb = torch.tensor(b, requires_grad=True)
        expected = torch_convolve(ta, tb, mode)
        weights = rng.standard_normal(tuple(expected.shape)).astype(dtype)
        (expected * torch.tensor(weights)).sum().backward()
        for method in METHODS:
            out, dLda, dLdb = autograd(cs.convolve, a, b, weights, mode=mode, method=method)
            assert out.dtype == dtype and dLda.dtype == dtype and dLdb.dtype == dtype
            for ours, theirs in [(out.data, expected), (dLda, ta.grad), (dLdb, tb.grad)]:
                theirs = theirs.detach().numpy()
                scale = max(float(np.abs(theirs).max()), 1.0)
                np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale)


@settings(max_examples=40)
@given(data=st.data())
def test_correlate_gradients_random_shapes_vs_torch(data):
    ndim = data.draw(st.integers(1, 3), label="ndim")
    shape1 = tuple(data.draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    shape2 = tuple(data.draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    mode = data.draw(st.sampled_from(("full", "same")), label="mode")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    a, b = rng.standard_normal(shape1), rng.standard_normal(shape2)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    # correlate(a, b) = convolve(a, flip(b)): torch's flip carries the gradient back to b
    expected = torch_convolve(ta, torch.flip(tb, list(range(ndim))), mode)
    weights = rng.standard_normal(tuple(expected.shape))
    (expected * torch.tensor(weights)).sum().backward()
    out, dLda, dLdb = autograd(cs.correlate, a, b, weights, mode=mode)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dLda, ta.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dLdb, tb.grad.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("func", ["convolve2d", "correlate2d"])
def test_2d_gradients_match_central_differences(boundary, func):
    rng = np.random.default_rng(3)
    ours = getattr(cs, func)
    for (shape1, shape2), mode in itertools.product([((4, 5), (2, 3)), ((3, 2), (4, 3))], MODES):
        if mode == "valid" and shape1 == (3, 2):
            continue
        a, b = rng.standard_normal(shape1), rng.standard_normal(shape2)
        kwargs = {"mode": mode, "boundary": boundary, "fillvalue": 1.5}
        weights = rng.standard_normal(ours(a, b, **kwargs).shape)
        out, dLda, dLdb = autograd(ours, a, b, weights, **kwargs)
        assert_matches(out.data, getattr(ss, func)(a, b, **kwargs))
        expected_a = central_differences(lambda x, b=b, kw=kwargs: ours(x, b, **kw), a.copy(),
                                         weights)
        expected_b = central_differences(lambda y, a=a, kw=kwargs: ours(a, y, **kw), b.copy(),
                                         weights)
        np.testing.assert_allclose(dLda, expected_a, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dLdb, expected_b, rtol=1e-6, atol=1e-7)


def test_2d_gradients_match_torch_circular_and_constant():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((7, 6)), rng.standard_normal((3, 4))
    for boundary, torch_mode in [("wrap", "circular"), ("fill", "constant")]:
        ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        # full mode: pad by K - 1 on every side, then torch's (cross-correlating) conv
        padded = F.pad(ta[None, None], (3, 3, 2, 2), mode=torch_mode,
                       **({"value": 0.5} if torch_mode == "constant" else {}))
        expected = F.conv2d(padded, tb[None, None])[0, 0]
        weights = rng.standard_normal(tuple(expected.shape))
        (expected * torch.tensor(weights)).sum().backward()
        out, dLda, dLdb = autograd(cs.correlate2d, a, b, weights, mode="full",
                                   boundary=boundary, fillvalue=0.5)
        np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dLda, ta.grad.numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dLdb, tb.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_gradient_dtypes_with_mixed_inputs(rng):
    a = cnnkit.tensor(rng.standard_normal((5, 4)).astype(np.float32), requires_grad=True)
    b64 = rng.standard_normal((2, 3))
    out = cs.convolve(a, b64, "same")
    assert isinstance(out, cnnkit.Tensor) and out.dtype == np.float64  # np.result_type
    out.sum().backward()
    assert a.grad.dtype == np.float32 and a.grad.shape == (5, 4)
    expected = cs.correlate(_embed_same(np.ones((5, 4)), (2, 3)), b64, "valid")
    np.testing.assert_allclose(a.grad, expected, rtol=1e-5)
    c = cnnkit.tensor(rng.standard_normal(6), requires_grad=True)
    ints = np.array([1, -2, 3])
    out = cs.correlate(ints, c, "valid")  # only the second input is a Tensor
    assert out.dtype == np.float64
    out.sum().backward()
    np.testing.assert_allclose(c.grad, cs.convolve(np.ones(4), ints, "full"))
    x, y = cnnkit.tensor(np.array(3.0), requires_grad=True), cnnkit.tensor(np.array(-2.0),
                                                                           requires_grad=True)
    product = cs.correlate(x, y)
    product.backward()
    assert product.item() == -6.0 and x.grad == -2.0 and y.grad == 3.0


def _embed_same(g, kernel_shape):
    full = np.zeros([n + k - 1 for n, k in zip(g.shape, kernel_shape)])
    full[tuple(slice((k - 1) // 2, (k - 1) // 2 + n) for n, k in zip(g.shape, kernel_shape))] = g
    return full


def test_no_grad_and_plain_arrays_give_no_graph():
    a = cnnkit.tensor(np.ones((3, 3)), requires_grad=True)
    with cnnkit.no_grad():
        out = cs.convolve(a, np.ones((2, 2)))
    assert not out.requires_grad
    assert isinstance(cs.convolve(np.ones(3), np.ones(2)), np.ndarray)


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("func", [cs.convolve, cs.correlate])
def test_bad_arguments_raise(func):
    a, b = np.ones((4, 4)), np.ones((2, 2))
    with pytest.raises(ValueError, match="mode"):
        func(a, b, mode="circular")
    with pytest.raises(ValueError, match="mode"):
        func(a, b, mode=1)
    with pytest.raises(ValueError, match="method"):
        func(a, b, method="fast")
    with pytest.raises(ValueError, match="method"):
        func(3, 4, method="fast")
    with pytest.raises(ValueError, match="dimensions"):
        func(a, np.ones(2))
    with pytest.raises(ValueError, match="dimensions"):
        func(3, np.ones(2))
    with pytest.raises(ValueError, match="valid"):
        func(np.ones((2, 5)), np.ones((3, 3)), "valid")
    with pytest.raises(ValueError, match="empty"):
        func(np.ones((0, 3)), b)
    with pytest.raises(ValueError, match="empty"):
        func(a, np.ones((2, 0)), "same")
    with pytest.raises(TypeError, match="in1"):
        func(np.array(["a", "b"]), np.ones(2))
    with pytest.raises(ValueError, match="mode"):
        cs.choose_conv_method(a, b, mode="nope")


@pytest.mark.parametrize("func", [cs.convolve2d, cs.correlate2d])
def test_bad_2d_arguments_raise(func):
    a, b = np.ones((4, 4)), np.ones((2, 2))
    with pytest.raises(ValueError, match="boundary"):
        func(a, b, boundary="reflect")
    with pytest.raises(ValueError, match="boundary"):
        func(a, b, "valid", boundary="nope")
    with pytest.raises(ValueError, match="2-D"):
        func(np.ones(4), np.ones(2))
    with pytest.raises(ValueError, match="2-D"):
        func(np.ones((2, 2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="mode"):
        func(a, b, mode="sane")
    with pytest.raises(ValueError, match="valid"):
        func(np.ones((2, 5)), np.ones((3, 3)), "valid")
    with pytest.raises(ValueError, match="empty"):
        func(np.ones((0, 3)), b)


def test_direct_window_cost_counts_each_output_value():
    """The sliding-window einsum's estimate: a fixed cost, one per output value and one per
    multiply-add (``cnnkit tune`` measures all three)."""
    from cnnkit import tuning
    from cnnkit.signal import direct
    shape, kernel, out = (40, 40), (9, 9), (48, 48)
    costs = {}
    for per_output in (0.0, 5.0):
        with tuning.override(loop_overhead_ns_per_offset=1e8, window_overhead_ns=100.0,
                             window_ns_per_mac=2.0, window_ns_per_output=per_output):
            costs[per_output] = direct._strategy(shape, kernel, out, np.dtype(np.float64))
    assert [plan for plan, _ in costs.values()] == ["window", "window"]
    assert costs[0.0][1] == 100.0 + 2.0 * 48 * 48 * 81
    assert costs[5.0][1] - costs[0.0][1] == 5.0 * 48 * 48
