"""The autograd core against PyTorch: every op's value and gradients, graph semantics, dtypes, errors.

Each op case is a function applied unchanged to cnnkit tensors and to torch tensors (the two share
operator and method names); ``check`` runs both on the same inputs, back-propagates the same random
upstream gradient and compares values, dtypes and every input's gradient.
"""
import threading
import warnings

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit import Tensor, tensor

TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-13}}
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
               np.dtype(np.int32): torch.int32, np.dtype(np.int64): torch.int64,
               np.dtype(np.bool_): torch.bool}


def is_torch(x):
    return isinstance(x, torch.Tensor)


def check(fn, *arrays, dtype=np.float64, grad_of=None, seed=0):
    """Compare ``fn`` on cnnkit and on torch: value, dtype, and dL/d(input) for a random dL/d(out).

    arrays : ndarrays, cast to ``dtype``; ``grad_of`` lists which inputs require grad (default all).
    """
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    grad_of = range(len(arrays)) if grad_of is None else grad_of
    ours = [tensor(a, requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    theirs = [torch.tensor(a, requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    out, expected = fn(*ours), fn(*theirs)
    assert isinstance(out, Tensor)
    assert TORCH_DTYPE[out.dtype] == expected.dtype
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), **TOL[dtype])
    upstream = rng.standard_normal(out.shape).astype(dtype)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    for i in grad_of:
        assert isinstance(ours[i].grad, np.ndarray)
        assert ours[i].grad.dtype == dtype and ours[i].grad.shape == arrays[i].shape
        np.testing.assert_allclose(ours[i].grad, theirs[i].grad.numpy(), **TOL[dtype],
                                   err_msg=f"gradient of input {i}")
    return out


def randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def positive(*shape, seed=2):
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape)


DTYPES = [np.float32, np.float64]

# -- binary ops and broadcasting ----------------------------------------------------------------
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b,
}
SHAPE_PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((5,), ())]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", SHAPE_PAIRS)
@pytest.mark.parametrize("name", BINARY)
def test_binary_ops_broadcast(name, shapes, dtype):
    a = positive(*shapes[0], seed=3)  # positive: pow's exponent gradient needs ln a
    b = positive(*shapes[1], seed=4) * np.where(randn(*shapes[1]) > 0, 1, -1)
    check(BINARY[name], a, b, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", [
    lambda a: a + 2, lambda a: 2 + a, lambda a: a - 1.5, lambda a: 1.5 - a, lambda a: a * 3,
    lambda a: 3 * a, lambda a: a / 4, lambda a: 4 / a, lambda a: a ** 2, lambda a: a ** 0.5,
    lambda a: 2 ** a, lambda a: a ** -1, lambda a: -a, lambda a: +a, lambda a: 2.5 ** a,
], ids=["t+2", "2+t", "t-1.5", "1.5-t", "t*3", "3*t", "t/4", "4/t", "t**2", "t**.5", "2**t",
        "t**-1", "-t", "+t", "2.5**t"])
def test_python_scalars_on_either_side(fn, dtype):
    out = check(fn, positive(2, 3), dtype=dtype)
    assert out.dtype == dtype  # a Python scalar never widens float32


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                                    ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)),
                                    ((2, 3, 4), (4,))])
def test_matmul(shapes, dtype):
    check(lambda a, b: a @ b, randn(*shapes[0]), randn(*shapes[1], seed=5), dtype=dtype)


def test_gradient_only_to_inputs_that_require_it():
    out = check(lambda a, b: a * b + a / b, randn(3), positive(3), grad_of=[0])
    assert out.requires_grad


# -- elementwise functions ----------------------------------------------------------------------
UNARY = {
    "exp": (lambda x: x.exp(), randn), "log": (lambda x: x.log(), positive),
    "sqrt": (lambda x: x.sqrt(), positive), "abs": (lambda x: x.abs(), randn),
    "neg": (lambda x: -x, randn), "clip": (lambda x: x.clip(-0.5, 0.7), randn),
    "clip_min": (lambda x: x.clip(min=0.1), randn), "clip_max": (lambda x: x.clip(max=0.2), randn),
    "clamp": (lambda x: x.clamp(-1.0, 1.0), randn),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", UNARY)
def test_unary(name, dtype):
    fn, make = UNARY[name]
    check(fn, make(3, 5), dtype=dtype)


def test_module_level_functions():
    check(lambda x: (cnnkit if not is_torch(x) else torch).exp(x), randn(4))
    check(lambda x: (cnnkit if not is_torch(x) else torch).sqrt(x), positive(4))
    check(lambda x: (cnnkit if not is_torch(x) else torch).abs(x), randn(4))


def test_clip_passes_gradient_at_the_bounds_and_stops_it_outside():
    x = tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    x.clip(-1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1, 0])  # PyTorch: bounds included
    with pytest.raises(ValueError, match="min and max"):
        x.clip()


def test_abs_gradient_at_zero_is_zero():
    check(lambda x: x.abs(), [-1.0, 0.0, 2.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_maximum_and_where(dtype):
    a, b = randn(3, 4), randn(4, seed=9)
    a[0, 0] = b[0]  # a tie: half the gradient each way
    check(lambda a, b: (cnnkit if not is_torch(a) else torch).maximum(a, b), a, b, dtype=dtype)
    cond = randn(3, 4, seed=7) > 0
    check(lambda a, b: (cnnkit.where(cond, a, b) if not is_torch(a)
                        else torch.where(torch.tensor(cond), a, b)), a, b, dtype=dtype)


# -- reductions ---------------------------------------------------------------------------------
AXES = [None, 0, 1, -1, (0, 2), (2, 0), (-1, -3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_reductions(name, axis, keepdims, dtype):
    def fn(x):
        if not is_torch(x):
            return getattr(x, name)(axis=axis, keepdims=keepdims)
        dim = tuple(range(x.ndim)) if axis is None else axis
        reduce = {"max": torch.amax, "min": torch.amin}.get(name, getattr(torch, name))
        return reduce(x, dim=dim, keepdim=keepdims)
    check(fn, randn(2, 3, 4), dtype=dtype)


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_max_gradient_of_ties_follows_torch(axis):
    """Over one dim, as ``torch.max(x, dim)``: all to the first maximum; over all dims or a
    tuple, as ``x.max()`` and ``amax``: shared equally."""
    x = [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]
    check(lambda t: t.max(axis=axis) if not is_torch(t) else
          torch.max(t, dim=axis).values if isinstance(axis, int) else
          torch.amax(t, dim=(0, 1) if axis is None else axis), x)


@pytest.mark.parametrize("correction", [0, 1])
def test_var(correction):
    check(lambda x: x.var(axis=1, correction=correction) if not is_torch(x)
          else torch.var(x, dim=1, correction=correction), randn(3, 5))


def test_reductions_of_0d_tensors():
    for axis in (None, 0, -1):
        check(lambda x, axis=axis: x.sum(axis=axis) if not is_torch(x) else x.sum(), 2.5)
    check(lambda x: x.max() if not is_torch(x) else x.amax(), 2.5)
    with pytest.raises(ValueError, match="axis"):
        tensor(1.0).sum(axis=1)
    with pytest.raises(ValueError, match="axis"):
        tensor(np.ones((2, 3))).sum(axis=2)
    with pytest.raises(ValueError, match="more than once"):
        tensor(np.ones((2, 3))).sum(axis=(0, -2))


# -- shape ops ----------------------------------------------------------------------------------
SHAPE_OPS = {
    "reshape": lambda x: x.reshape(4, 6), "reshape_tuple": lambda x: x.reshape((6, -1)),
    "view": lambda x: x.view(2, 12), "flatten": lambda x: x.flatten(),
    "flatten_1": lambda x: x.flatten(1), "flatten_0_1": lambda x: x.flatten(0, 1),
    "permute": lambda x: x.permute(2, 0, 1), "permute_tuple": lambda x: x.permute((1, 2, 0)),
    "permute_negative": lambda x: x.permute(-1, 0, -2),
    "transpose": lambda x: x.transpose(0, 2), "transpose_negative": lambda x: x.transpose(-1, 1),
    "unsqueeze": lambda x: x.unsqueeze(1), "squeeze": lambda x: x.unsqueeze(0).squeeze(0),
    "squeeze_other_size_is_noop": lambda x: x.squeeze(1),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SHAPE_OPS)
def test_shape_ops(name, dtype):
    check(SHAPE_OPS[name], randn(2, 3, 4), dtype=dtype)


def test_dot_T_reverses_all_dims():
    x = tensor(randn(2, 3, 4), requires_grad=True)
    y = x.T
    assert y.shape == (4, 3, 2)
    y.backward(np.ones((4, 3, 2)))
    np.testing.assert_array_equal(x.grad, np.ones((2, 3, 4)))


INDICES = {
    "int": 1, "negative_int": -1, "slice": slice(1, 3), "step": slice(None, None, 2),
    "tuple": (1, slice(None), 2), "ellipsis": (Ellipsis, 1), "none": (None, 0),
    "int_to_0d": (1, 2, 3),
    "int_array": [0, 2, 0], "repeated": np.array([1, 1, 1, 0]), "negative_array": [-1, 0, -1],
    "two_arrays": ([0, 1, 1], [2, 2, 0]), "array_then_slice": ([1, 1], slice(0, 2)),
    "slice_then_array": (slice(None), [2, 0, 2]), "separated_arrays": ([0, 1], slice(None), [1, 1]),
    "2d_array": np.array([[0, 1], [1, 1]]), "mask": "mask", "mask_2d": "mask_2d",
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", INDICES)
def test_indexing(name, dtype):
    x = randn(3, 3, 4)
    index = INDICES[name]
    if name == "mask":
        index = x > 0
    elif name == "mask_2d":
        index = x[:, :, 0] > 0

    def fn(t):
        if not is_torch(t):
            return t[index]
        def convert(i):
            return torch.tensor(i) if isinstance(i, (list, np.ndarray)) else i
        return t[tuple(map(convert, index)) if isinstance(index, tuple) else convert(index)]
    check(fn, x, dtype=dtype)


def test_indexing_with_tensors_and_repeats_adds_gradients():
    x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[tensor([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])
    x.grad = None
    x[x > 1.5].sum().backward()  # a bool Tensor as mask
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack(axis, dtype):
    shapes = [(2, 3), (2, 3), (2, 3)]
    cat_shapes = [list(s) for s in shapes]
    for k, s in enumerate(cat_shapes):
        s[axis] += k  # unequal sizes along the joined axis
    check(lambda *ts: cnnkit.concatenate(ts, axis=axis) if not is_torch(ts[0])
          else torch.cat(ts, dim=axis), *[randn(*s, seed=k) for k, s in enumerate(cat_shapes)],
          dtype=dtype)
    check(lambda *ts: cnnkit.stack(ts, axis=axis) if not is_torch(ts[0])
          else torch.stack(ts, dim=axis), *[randn(*s, seed=k) for k, s in enumerate(shapes)],
          dtype=dtype)


PADS = [((1, 2), (2, 1)), ((0, 0), (3, 0)), ((-1, 2), (1, -2)), ((2, -1), (0, 0)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("widths", PADS)
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad(mode, widths, dtype):
    def fn(x):
        if not is_torch(x):
            return cnnkit.pad(x, ((0, 0), (0, 0)) + widths, mode=mode)
        flat = [w for pair in reversed(widths) for w in pair]  # torch: last dim first
        return torch.nn.functional.pad(x, flat, mode=mode)
    check(fn, randn(2, 2, 4, 5), dtype=dtype)


def test_pad_constant_value_and_int_width():
    x = tensor(np.ones((2, 2)), requires_grad=True)
    y = cnnkit.pad(x, 1, value=-3.0)
    assert y.shape == (4, 4) and y.data[0, 0] == -3.0 and y.data[1, 1] == 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 2)))
    assert cnnkit.pad(x, (1, 0)).shape == (3, 3)


@pytest.mark.parametrize("args, error, match", [
    ({"pad_width": ((3, 0),), "mode": "reflect"}, ValueError, "smaller than"),
    ({"pad_width": ((0, 4),), "mode": "circular"}, ValueError, "exceed"),
    ({"pad_width": ((-2, -2),), "mode": "constant"}, ValueError, "crops more"),
    ({"pad_width": ((1, 1),), "mode": "edge"}, ValueError, "mode"),
    ({"pad_width": ((1.5, 1),), "mode": "constant"}, TypeError, "integers"),
    ({"pad_width": ((1, 1), (1, 1)), "mode": "constant"}, ValueError, "pairs"),
])
def test_pad_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        cnnkit.pad(tensor(np.ones(3)), **args)


# -- graph semantics ----------------------------------------------------------------------------
def test_node_feeding_several_ops_gets_the_sum():
    check(lambda x: x * x + x + x.exp() * x, randn(4))


def test_diamond_graph():
    def fn(x):
        a = x * 2
        b, c = a.exp(), a * 3
        return (b + c) * a
    check(fn, randn(3, 2))


def test_same_tensor_on_both_sides():
    check(lambda x: x / x + x @ x, randn(3))


def test_leaf_gradients_accumulate_across_backward_calls():
    x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    first = x.grad
    (x * 3).sum().backward()  # a separately built graph
    assert x.grad is first  # accumulated in place (+=), as PyTorch does
    np.testing.assert_allclose(x.grad, 2 * x.data + 3)
    x.zero_grad()
    assert x.grad is None


def test_graph_is_released_after_backward():
    x = tensor([1.0, 2.0], requires_grad=True)
    hidden = x * 2
    loss = (hidden * hidden).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()
    with pytest.raises(RuntimeError, match="second time"):  # also through a shared, freed node
        hidden.sum().backward()
    np.testing.assert_allclose(x.grad, 8 * x.data)  # unchanged by the failed calls


def test_retain_grad_keeps_intermediate_gradients():
    x = tensor([1.0, 2.0], requires_grad=True)
    kept, dropped = x * 3, x + 1
    kept.retain_grad()
    (kept * dropped).sum().backward()
    np.testing.assert_allclose(kept.grad, dropped.data)
    assert dropped.grad is None
    assert x.is_leaf and not kept.is_leaf
    with pytest.raises(RuntimeError, match="require grad"):
        tensor([1.0]).retain_grad()


def test_no_grad_records_nothing_and_restores_the_mode():
    x = tensor([1.0, 2.0], requires_grad=True)
    with cnnkit.no_grad():
        y = x * 2
        assert not cnnkit.is_grad_enabled()
        with cnnkit.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad
    with pytest.raises(KeyError), cnnkit.no_grad():
        raise KeyError
    assert cnnkit.is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_holds_in_its_own_thread_only():
    """A thread starts with the graph recorded, whatever another thread's mode."""
    x = tensor([1.0], requires_grad=True)
    seen = []

    def record():
        seen.append((cnnkit.is_grad_enabled(), (x * 2).requires_grad))
        with cnnkit.no_grad():
            seen.append((cnnkit.is_grad_enabled(), (x * 2).requires_grad))
    with cnnkit.no_grad():
        thread = threading.Thread(target=record)
        thread.start()
        thread.join()
        assert not cnnkit.is_grad_enabled()
    assert seen == [(True, True), (False, False)] and cnnkit.is_grad_enabled()


def test_detach_shares_data_and_stops_gradient():
    x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and np.shares_memory(d.data, x.data)
    (x * x.detach()).sum().backward()
    np.testing.assert_allclose(x.grad, x.data)  # x, not 2x


def test_constants_and_non_grad_leaves_get_no_gradient():
    x = tensor([1.0, 2.0], requires_grad=True)
    c = tensor([3.0, 4.0])
    (x * c).sum().backward()
    assert c.grad is None and not c.requires_grad


def test_backward_gradient_argument():
    x = tensor([[1.0, 2.0]], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="single-value"):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(2))
    y.backward(tensor([[1.0, 10.0]]))  # a Tensor is accepted too
    np.testing.assert_allclose(x.grad, [[2.0, 20.0]])
    z = tensor(3.0, requires_grad=True)
    (z * z).backward(2.0)  # 0-d output, explicit gradient
    np.testing.assert_allclose(z.grad, 12.0)


def test_deep_chain_does_not_recurse():
    x = tensor(1.0, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0


# -- dtypes -------------------------------------------------------------------------------------
def test_construction_dtypes():
    assert tensor([1.0, 2.0]).dtype == np.float32
    assert tensor(2.5).dtype == np.float32 and tensor(2.5).shape == ()
    assert tensor(np.zeros(2)).dtype == np.float64
    assert tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert tensor([1, 2]).dtype == np.int64
    assert tensor([True]).dtype == np.bool_
    assert tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert Tensor([1.0]).dtype == np.float32
    source = np.ones(2)
    assert not np.shares_memory(tensor(source).data, source)  # tensor() copies
    with pytest.raises(TypeError, match="numeric"):
        tensor(["a"])


@pytest.mark.parametrize("make", [
    lambda: tensor([1, 2], requires_grad=True),
    lambda: tensor([1, 2]).requires_grad_(),
    lambda: setattr(tensor([True]), "requires_grad", True),
])
def test_integer_tensors_cannot_require_grad(make):
    with pytest.raises(TypeError, match="floating-point"):
        make()


@pytest.mark.parametrize("fn", [
    lambda t: t * 2.0, lambda t: t / 3, lambda t: 2 ** t, lambda t: t + np.float64(1.0),
    lambda t: 1 - t, lambda t: t ** 2, lambda t: t.sum(), lambda t: t.mean(axis=0),
    lambda t: t.max(), lambda t: (t * 2).exp().log(), lambda t: t.sqrt(),
    lambda t: t @ t, lambda t: cnnkit.pad(t, 1, mode="reflect"), lambda t: t[[0, 0]],
    lambda t: t * tensor(np.float64(2.0)), lambda t: np.ones(3, np.float32) * t,
])
def test_float32_stays_float32_through_ops_and_backward(fn):
    x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = fn(x)
    assert y.dtype == np.float32
    y.backward(np.ones(y.shape))
    assert x.grad.dtype == np.float32


def test_mixed_float_dtypes_give_each_leaf_its_own_gradient_dtype():
    a = tensor(np.ones(3, np.float32), requires_grad=True)
    b = tensor(np.full(3, 2.0), requires_grad=True)  # float64
    y = a * b
    assert y.dtype == np.float64  # both dimensioned: widen, as PyTorch
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    c = tensor(np.float64(2.0), requires_grad=True)  # 0-d float64 does not widen float32
    a.grad = None
    (a * c).sum().backward()
    assert a.grad.dtype == np.float32 and c.grad.dtype == np.float64 and c.grad.shape == ()
    np.testing.assert_allclose(c.grad, 3.0)


OPERANDS = {
    "bool": np.array([True, False, True]), "int32": np.array([1, -2, 3], np.int32),
    "int64": np.array([1, -2, 3]), "float32": np.array([0.5, -1.5, 2.0], np.float32),
    "float64": np.array([0.5, -1.5, 2.0]), "bool_0d": np.array(True), "int64_0d": np.array(4),
    "float64_0d": np.array(1.25), "float32_0d": np.array(1.25, np.float32),
}
SCALARS = {"py_bool": True, "py_int": 2, "py_float": 2.5}


@pytest.mark.parametrize("op", ["add", "mul", "div", "lt"])
@pytest.mark.parametrize("right", list(OPERANDS) + list(SCALARS))
@pytest.mark.parametrize("left", list(OPERANDS))
def test_type_promotion_matches_torch(left, right, op):
    fn = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
          "lt": lambda a, b: a < b}[op]
    a = OPERANDS[left]
    b = OPERANDS.get(right, SCALARS.get(right))
    wrap = (lambda v, f: f(v) if isinstance(v, np.ndarray) else v)
    try:
        expected = fn(torch.tensor(a), wrap(b, torch.tensor))
    except RuntimeError:  # e.g. torch refuses bool - bool; we only compare what torch allows
        pytest.skip("torch refuses this combination")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = fn(tensor(a), wrap(b, tensor))
    assert TORCH_DTYPE[out.dtype] == expected.dtype
    np.testing.assert_allclose(out.data, expected.numpy())


def test_integer_inputs_to_float_functions_give_float32():
    for fn in (lambda t: t.exp(), lambda t: t.sqrt(), lambda t: t.log(), lambda t: t / 2):
        assert fn(tensor([1, 4])).dtype == np.float32
    with pytest.raises(TypeError, match="floating-point"):
        tensor([1, 2]).mean()
    assert tensor([True, True]).sum().item() == 2


# -- NumPy interoperation -----------------------------------------------------------------------
@pytest.mark.parametrize("fn, expected", [
    (lambda a, t: a * t, [1.0, 1.0, 1.0]), (lambda a, t: a + t, [1.0, 1.0, 1.0]),
    (lambda a, t: a - t, [-1.0, -1.0, -1.0]), (lambda a, t: a / t, [-1.0, -0.25, -1 / 9]),
    (lambda a, t: a @ t, [1.0, 1.0, 1.0]), (lambda a, t: a ** t, [0.0, 0.0, 0.0]),
])
def test_numpy_array_on_the_left_stays_in_the_graph(fn, expected):
    t = tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = fn(np.ones(3), t)
    assert isinstance(out, Tensor) and out.requires_grad
    out.backward(np.ones(out.shape))
    np.testing.assert_allclose(t.grad, expected, rtol=1e-6)
    assert isinstance(np.ones(3) < t, Tensor)
    assert isinstance(np.float64(2.0) * t, Tensor) and (np.float64(2.0) * t).dtype == np.float32


def test_array_protocol():
    t = tensor([1.0, 2.0])
    assert np.shares_memory(np.asarray(t), t.data)
    copy = np.array(t)
    assert not np.shares_memory(copy, t.data)  # np.array copies, as for any array
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert isinstance(np.exp(t), np.ndarray)  # NumPy functions see the plain array
    np.testing.assert_allclose(np.exp(t), np.exp([1.0, 2.0]), rtol=1e-6)


def test_array_like_attributes():
    t = tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float64 and t.requires_grad
    assert t.numpy() is t.data and t.grad is None
    assert len(t) == 2 and [row.shape for row in t] == [(3,), (3,)]
    assert tensor(4.0).item() == 4.0 and float(tensor([4.0])) == 4.0 and int(tensor(3)) == 3
    assert tensor(1.0).ndim == 0
    with pytest.raises(TypeError):
        len(tensor(1.0))
    with pytest.raises(TypeError):
        iter(tensor(1.0))
    assert "grad_fn" in repr(t * 2) and "requires_grad=True" in repr(t)


# -- NaN and Inf --------------------------------------------------------------------------------
@pytest.mark.parametrize("fn, x", [
    (lambda x: x.log(), [0.0, -1.0, 1.0]), (lambda x: x.sqrt(), [0.0, 4.0, -1.0]),
    (lambda x: 1.0 / x, [0.0, -0.0, 2.0]), (lambda x: x / x, [0.0, 1.0, np.inf]),
    (lambda x: (x * 1000).exp(), [1.0, -1.0, 0.0]), (lambda x: x * 0, [np.inf, np.nan, 1.0]),
    (lambda x: x.max(), [1.0, np.nan, 3.0]), (lambda x: x.max(), [1.0, np.inf, 3.0]),
    (lambda x: x.min(), [np.nan, np.nan, -np.inf]), (lambda x: x.sum(), [np.inf, -np.inf, 1.0]),
    (lambda x: x.mean(), [np.inf, 1.0, 1.0]), (lambda x: x + x, [np.inf, -np.inf, np.nan]),
    (lambda x: x ** 0, [0.0, 2.0, -1.0]), (lambda x: x ** -1.0, [0.0, 2.0, -1.0]),
    (lambda x: x ** 0.5, [0.0, 4.0, -1.0]), (lambda x: 2.0 ** x, [np.inf, -np.inf, np.nan]),
    (lambda x: x.abs(), [np.nan, -np.inf, 0.0]), (lambda x: x.clip(0.0, 1.0), [np.nan, 2, 0.5]),
], ids=["log", "sqrt", "recip", "x/x", "exp_overflow", "inf*0", "max_nan", "max_inf", "min_nans",
        "sum_inf", "mean_inf", "inf+inf", "pow0",
        "pow-1", "pow.5", "2**x", "abs", "clip"])
def test_nan_and_inf_propagate_like_torch_without_warnings(fn, x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy RuntimeWarning would fail the test
        check(fn, x)


@pytest.mark.parametrize("base, exponent", [([0.0, 0.0, 2.0, -2.0, 0.0], [0.0, 2.0, 0.0, 2.0, -1.0])])
def test_pow_gradients_at_the_edges(base, exponent):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check(lambda a, b: a ** b, base, exponent)


# -- a leaf's gradient is taken without a copy only when nothing else holds it --------------

def test_leaf_gradient_never_aliases_the_callers_gradient():
    x = tensor(np.ones((2, 3), np.float32), requires_grad=True)
    given = np.full((2, 3), 2.0, np.float32)
    x.backward(given)  # the root is the leaf: its gradient is the caller's array
    assert not np.shares_memory(x.grad, given)
    y = tensor(np.ones((2, 3), np.float32), requires_grad=True)
    (y * 1.0).backward(given)
    assert not np.shares_memory(y.grad, given)
    given[...] = 0
    assert (x.grad == 2).all() and (y.grad == 2).all()


def test_leaf_gradient_held_by_its_op_is_copied():
    kept = []

    def backward(g):
        kept.append(g * 1)  # the op keeps the very array it returns
        return (kept[-1],)
    x = tensor(np.ones(4, np.float32), requires_grad=True)
    Tensor._make(x.data * 1, (x,), backward, "keep").backward(np.ones(4, np.float32))
    assert not np.shares_memory(x.grad, kept[0])


def test_one_gradient_sent_to_two_leaves_gives_each_its_own():
    a = tensor(np.ones(3, np.float32), requires_grad=True)
    b = tensor(np.ones(3, np.float32), requires_grad=True)
    Tensor._make(a.data + b.data, (a, b), lambda g: (g * 1,) * 2,  # one array, both parents
                 "both").backward(np.ones(3, np.float32))
    assert not np.shares_memory(a.grad, b.grad)
    a.grad[...] = 7
    assert (b.grad == 1).all()


@pytest.mark.parametrize("size, taken", [(6, True), (70, False)])
def test_cache_line_aligned_gradient_is_taken_whole_and_a_part_of_one_copied(size, taken):
    """The compiled kernels' outputs start on a cache line (``kernels.aligned``): views of a
    buffer up to a line longer. Such a view is the whole array and is taken as it is; six
    values of a 70-value one are a part, and copied."""
    from cnnkit.kernels import aligned
    made = []

    def backward(g):
        out = aligned.empty(size)
        out[:6] = g * 2
        made.append(out.__array_interface__["data"][0])
        return (out[:6],)
    x = tensor(np.ones(6, np.float32), requires_grad=True)
    Tensor._make(x.data * 2, (x,), backward, "double").backward(np.ones(6, np.float32))
    assert (x.grad.__array_interface__["data"][0] == made[0]) == taken
    assert (x.grad == 2).all()


@pytest.mark.parametrize("part, taken", [(slice(0, 960), True), (slice(0, 900), False),
                                         (slice(40, 1000), False)])
def test_gradient_with_a_kernel_s_spare_rows_after_it_is_taken(part, taken):
    """A view of the leading part of a buffer that nothing else holds, with at most a
    sixteenth of its size after it (a compiled kernel's spare rows), is taken as it is; more
    after it, or a part that does not start the buffer, is copied."""
    made = []

    def backward(g):
        out = np.empty(1000, np.float32)
        view = out[part]
        view[...] = 2
        made.append(view.__array_interface__["data"][0])
        return (view,)
    n = part.stop - part.start
    x = tensor(np.ones(n, np.float32), requires_grad=True)
    Tensor._make(x.data * 2, (x,), backward, "double").backward(np.ones(n, np.float32))
    assert (x.grad.__array_interface__["data"][0] == made[0]) == taken
    assert (x.grad == 2).all()


def test_fresh_leaf_gradient_is_taken_without_a_copy():
    """A gradient that only the walk holds becomes the leaf's .grad as it is (no copy of an
    input-sized array per step): a fresh array, or a reshape of one."""
    for shape in ((6,), (2, 3)):
        made = []

        def backward(g, shape=shape):
            fresh = g * 2
            made.append(fresh.__array_interface__["data"][0])  # its address, not the array
            return (fresh.reshape(shape),)
        x = tensor(np.ones(shape, np.float32), requires_grad=True)
        Tensor._make(x.data.reshape(6) * 2, (x,), backward, "double").backward(
            np.ones(6, np.float32))
        assert x.grad.__array_interface__["data"][0] == made[0]
        assert (x.grad == 2).all()
