"""Property tests: drawn shapes, axes, permutations, indices and pad widths, against PyTorch.

Every test builds the same float64 inputs for cnnkit and torch, runs the op, back-propagates one
random upstream gradient and compares the value and every input's gradient tightly. Hypothesis
draws the structure (shapes, axes, indices, widths) and a seed for the values; the profile in
conftest.py makes the runs derandomized, so failures reproduce.
"""
import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import cnnkit
from cnnkit import tensor, tuning

TOL = {"rtol": 1e-10, "atol": 1e-12}
seeds = st.integers(0, 2**32 - 1)
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


def compare(our_fn, torch_fn, arrays, seed):
    """Run both sides on ``arrays`` (float64), back-propagate one upstream gradient, compare."""
    ours = [tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = our_fn(*ours), torch_fn(*theirs)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), **TOL)
    upstream = np.random.default_rng(seed + 1).standard_normal(out.shape)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.grad.shape == a.shape and a.grad.dtype == np.float64
        np.testing.assert_allclose(a.grad, b.grad.numpy(), **TOL, err_msg=f"gradient {i}")


def normal(rng, shape):
    return rng.standard_normal(shape)


def away_from_zero(rng, shape):
    """Magnitudes in [0.5, 2] with random signs: safe denominators."""
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


# -- binary ops with broadcasting ---------------------------------------------------------------
BINARY = {
    "add": (lambda a, b: a + b, normal, normal),
    "sub": (lambda a, b: a - b, normal, normal),
    "mul": (lambda a, b: a * b, normal, normal),
    "div": (lambda a, b: a / b, normal, away_from_zero),
    "pow": (lambda a, b: a ** b, lambda rng, s: rng.uniform(0.5, 2.0, s), normal),
    "maximum": (None, normal, normal),
}


@settings(max_examples=100)
@given(name=st.sampled_from(sorted(BINARY)),
       shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
       seed=seeds, swap=st.booleans())
def test_binary_ops_broadcast(name, shapes, seed, swap):
    fn, make_a, make_b = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = make_a(rng, shapes.input_shapes[0]), make_b(rng, shapes.input_shapes[1])
    if name == "maximum":
        b = np.where(rng.random(b.shape) < 0.2, 0.0, b)
        a = np.where(rng.random(a.shape) < 0.2, 0.0, a)  # some exact ties: half to each side
        compare(cnnkit.maximum, torch.maximum, [a, b], seed)
    else:
        compare(fn, fn, [a, b], seed)


@settings(max_examples=60)
@given(data=st.data(), seed=seeds)
def test_matmul_shapes(data, seed):
    n, k, m = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch = data.draw(mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    a_shape = data.draw(st.sampled_from([(k,), batch.input_shapes[0] + (n, k)]))
    b_shape = data.draw(st.sampled_from([(k,), batch.input_shapes[1] + (k, m)]))
    rng = np.random.default_rng(seed)
    compare(cnnkit.matmul, torch.matmul, [normal(rng, a_shape), normal(rng, b_shape)], seed)


@settings(max_examples=60)
@given(shape=shapes, seed=seeds, scalar=st.floats(0.1, 3) | st.floats(-3, -0.1),
       op=st.sampled_from(["radd", "rsub", "rmul", "rdiv", "rpow", "pow"]))
def test_python_scalar_on_the_left_and_right(shape, seed, scalar, op):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 2.0, shape)
    fn = {"radd": lambda t: scalar + t, "rsub": lambda t: scalar - t, "rmul": lambda t: scalar * t,
          "rdiv": lambda t: scalar / t, "rpow": lambda t: abs(scalar) ** t,
          "pow": lambda t: t ** scalar}[op]
    compare(fn, fn, [x], seed)


# -- reductions ---------------------------------------------------------------------------------
@st.composite
def shape_and_axis(draw):
    shape = draw(shapes)
    ndim = len(shape)
    axis = draw(st.one_of(
        st.none(), st.integers(-ndim, ndim - 1),
        st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim,
                 unique_by=lambda a: a % ndim).map(tuple)))
    return shape, axis


@settings(max_examples=100)
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(),
       name=st.sampled_from(["sum", "mean", "max", "min"]), seed=seeds, ties=st.booleans())
def test_reductions(shape_axis, keepdims, name, seed, ties):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    if ties:  # few distinct values: over one dim the first extreme takes the gradient (as
        x = np.round(x)  # torch.max(x, dim)), over several they share it (as amax/amin)
    dim = tuple(range(len(shape))) if axis is None else axis
    torch_fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}[name]
    if name in ("max", "min") and isinstance(axis, int) and len(shape) > 0:
        def torch_fn(t, dim, keepdim, extreme=getattr(torch, name)):
            return extreme(t, dim=dim, keepdim=keepdim).values
    compare(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims),
            lambda t: torch_fn(t, dim=dim, keepdim=keepdims), [x], seed)


@settings(max_examples=50)
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), correction=st.integers(0, 1),
       seed=seeds)
def test_var(shape_axis, keepdims, correction, seed):
    shape, axis = shape_axis
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
    assume(int(np.prod([shape[a] for a in axes])) > correction)
    dim = tuple(range(len(shape))) if axis is None else axis
    compare(lambda t: t.var(axis=axis, keepdims=keepdims, correction=correction),
            lambda t: torch.var(t, dim=dim, keepdim=keepdims, correction=correction),
            [normal(np.random.default_rng(seed), shape)], seed)


# -- shape ops ----------------------------------------------------------------------------------
@settings(max_examples=80)
@given(data=st.data(), shape=shapes, seed=seeds)
def test_permute_transpose_reshape_flatten(data, shape, seed):
    ndim = len(shape)
    perm = tuple(data.draw(st.permutations(range(ndim))))
    signed = tuple(p - ndim if data.draw(st.booleans()) else p for p in perm)
    d0, d1 = data.draw(st.integers(-ndim, ndim - 1)), data.draw(st.integers(-ndim, ndim - 1))
    start = data.draw(st.integers(0, ndim - 1))
    end = data.draw(st.integers(start, ndim - 1))
    new_shape = tuple(data.draw(st.permutations(list(shape))))  # same size, another layout

    def chain(t):
        t = t.permute(*signed).transpose(d0, d1) * 1.5
        return t.reshape(new_shape).flatten(start, end)
    compare(chain, chain, [normal(np.random.default_rng(seed), shape)], seed)


@st.composite
def basic_index(draw, shape):
    """A tuple of ints, slices (positive steps: torch has no others), None and one Ellipsis."""
    parts = []
    for n in shape[:draw(st.integers(0, len(shape)))]:
        parts.append(draw(st.one_of(
            st.integers(-n, n - 1),
            st.builds(slice, st.none() | st.integers(-n - 1, n + 1),
                      st.none() | st.integers(-n - 1, n + 1), st.none() | st.integers(1, 3)))))
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), None)
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), Ellipsis)
    return tuple(parts)


@settings(max_examples=100)
@given(data=st.data(), shape=shapes, seed=seeds)
def test_basic_indexing(data, shape, seed):
    index = data.draw(basic_index(shape))
    compare(lambda t: t[index], lambda t: t[index],
            [normal(np.random.default_rng(seed), shape)], seed)


@settings(max_examples=100)
@given(data=st.data(), shape=shapes, seed=seeds)
def test_advanced_indexing(data, shape, seed):
    """Integer arrays (repeats, negatives) on one or two axes mixed with slices, or a bool mask."""
    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["one_array", "two_arrays", "mask"]))
    if kind == "mask":
        lead = data.draw(st.integers(1, len(shape)))
        index = rng.random(shape[:lead]) < 0.5  # a mask over the leading dims
        torch_index = torch.tensor(index)
    else:
        count = 1 if kind == "one_array" or len(shape) < 2 else 2
        axes = sorted(data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=count,
                                         max_size=count, unique=True)))
        length = data.draw(st.integers(1, 6))
        index, torch_index = [slice(None)] * len(shape), [slice(None)] * len(shape)
        for a in axes:  # arrays broadcast together; negatives and repeats allowed
            picks = rng.integers(-shape[a], shape[a], length)
            index[a], torch_index[a] = picks, torch.tensor(picks)
        index, torch_index = tuple(index), tuple(torch_index)
    compare(lambda t: t[index] * 2.0, lambda t: t[torch_index] * 2.0,
            [normal(rng, shape)], seed)


@settings(max_examples=60)
@given(data=st.data(), base=shapes, count=st.integers(1, 4), seed=seeds)
def test_concatenate_and_stack(data, base, count, seed):
    ndim = len(base)
    axis = data.draw(st.integers(-ndim, ndim - 1))
    rng = np.random.default_rng(seed)
    sizes = [data.draw(st.integers(1, 3)) for _ in range(count)]
    parts = [normal(rng, base[:axis % ndim] + (s,) + base[axis % ndim + 1:]) for s in sizes]
    compare(lambda *ts: cnnkit.concatenate(ts, axis=axis), lambda *ts: torch.cat(ts, dim=axis),
            parts, seed)
    stack_axis = data.draw(st.integers(-ndim - 1, ndim))
    same = [normal(rng, base) for _ in range(count)]
    compare(lambda *ts: cnnkit.stack(ts, axis=stack_axis),
            lambda *ts: torch.stack(ts, dim=stack_axis), same, seed)


# -- padding ------------------------------------------------------------------------------------
def _valid(n, lo, hi, mode):
    """Widths PyTorch accepts and computes correctly (it returns garbage for circular padding
    of a fully cropped axis, which cnnkit rejects)."""
    kept = n - max(-lo, 0) - max(-hi, 0)
    if n + lo + hi < 1:
        return False
    if mode == "reflect":
        return max(lo, 0) < n and max(hi, 0) < n
    if mode == "circular":
        return kept >= 1 and max(lo, 0) <= kept and max(hi, 0) <= kept
    return True


@settings(max_examples=100)
@given(data=st.data(), mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]),
       seed=seeds)
def test_pad(data, mode, seed):
    """Non-constant modes pad 1-3 spatial dims of (N, C, ...) (what torch supports); constant
    pads any dims. Widths may be negative (crop)."""
    if mode == "constant":
        shape = data.draw(shapes)
        padded_axes = range(len(shape))
    else:
        spatial = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
        shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)), *spatial)
        padded_axes = range(2, len(shape))
    widths = [(0, 0)] * len(shape)
    for a in padded_axes:
        n = shape[a]
        reach = n - 1 if mode == "reflect" else n  # the widest pad worth drawing
        widths[a] = (data.draw(st.integers(-reach, reach)), data.draw(st.integers(-reach, reach)))
        assume(_valid(n, *widths[a], mode))
    flat = [w for a in reversed(padded_axes) for w in widths[a]]  # torch: last dim first
    value = data.draw(st.sampled_from([0.0, -1.5]))
    kwargs = {"value": value} if mode == "constant" else {}
    # the non-constant modes' compiled passes (pad_modes_numba) from compiled_min_size on
    with tuning.override(compiled_min_size=data.draw(st.sampled_from([0, 1 << 60]))):
        compare(lambda t: cnnkit.pad(t, widths, mode=mode, **kwargs),
                lambda t: F.pad(t, flat, mode=mode, **kwargs),
                [normal(np.random.default_rng(seed), shape)], seed)


@settings(max_examples=60)
@given(data=st.data(), mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]))
def test_pad_rejects_exactly_the_invalid_widths(data, mode):
    """Outside torch's garbage cases, cnnkit raises ValueError exactly where torch refuses."""
    n = data.draw(st.integers(1, 5))
    lo, hi = data.draw(st.integers(-n - 2, n + 2)), data.draw(st.integers(-n - 2, n + 2))
    kept = n - max(-lo, 0) - max(-hi, 0)
    assume(not (mode == "circular" and kept < 1))  # torch reads out of bounds there
    assume(n + lo + hi != 0)  # an empty result: cnnkit allows it, torch does not
    x = np.arange(float(n)).reshape(1, 1, n)
    try:
        expected = F.pad(torch.tensor(x), (lo, hi), mode=mode).numpy()
    except RuntimeError:
        expected = None
    if expected is None:
        try:
            cnnkit.pad(tensor(x), ((0, 0), (0, 0), (lo, hi)), mode=mode)
        except ValueError:
            return
        raise AssertionError(f"cnnkit accepted {(lo, hi)} on size {n} in mode {mode}")
    np.testing.assert_array_equal(cnnkit.pad(tensor(x), ((0, 0), (0, 0), (lo, hi)),
                                             mode=mode).data, expected)
