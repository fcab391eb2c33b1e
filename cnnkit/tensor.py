"""The Tensor and its reverse-mode autograd engine.

The idea is micrograd's, on arrays: every differentiable op returns a new Tensor that remembers
its parents and a ``backward`` function mapping the output gradient to one gradient per parent.
``Tensor.backward`` walks the graph in reverse topological order and *adds* gradients, so a
tensor that feeds several ops receives the sum of all their contributions.

The ops themselves live in ``cnnkit.ops`` (one family per file, forward and backward side by side);
this file only holds the container, the graph walk and ``no_grad``.
"""
from __future__ import annotations

import contextlib
import sys
import threading

import numpy as np

from .kernels.aligned import LINE
from .kernels.arithmetic_numba import binary


class _GradMode(threading.local):
    """Whether ops record the graph, per thread. A new thread reads the class attribute,
    True, until it sets its own: a ``getattr`` with a default instead raised and caught an
    AttributeError inside every op of a thread that never entered ``no_grad`` (0.6–0.9 µs)."""
    grad_enabled = True


_state = _GradMode()


def is_grad_enabled() -> bool:
    return _state.grad_enabled


@contextlib.contextmanager
def no_grad():
    """Context manager in which ops record no graph (like ``torch.no_grad``)."""
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    previous = is_grad_enabled()
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = previous


def _released(_grad):
    raise RuntimeError(
        "Trying to backward through the graph a second time: the graph is released after "
        "backward() to free memory."
    )


def _to_array(data, dtype=None) -> np.ndarray:
    """Turn ``data`` into an ndarray with PyTorch's dtype rules.

    Python floats become float32 (the default dtype); NumPy arrays keep their dtype, so float64
    stays float64; Python ints become int64 and bools stay bool.
    """
    if isinstance(data, Tensor):
        data = data.data
    from_python = not isinstance(data, (np.ndarray, np.generic))
    array = np.asarray(data, dtype=dtype)
    if dtype is None and from_python and array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"tensor data must be numeric or bool, got dtype {array.dtype}")
    return array


class Tensor:
    """An ndarray with an optional gradient and a link to the op that made it.

    Attributes:
        data: ndarray holding the values.
        grad: ndarray of ``data.shape`` or None; backward adds into it (``+=``), as PyTorch does.
        requires_grad: whether gradients flow to (and are stored for) this tensor.
    """

    __slots__ = ("data", "grad", "_requires_grad", "_parents", "_backward", "_op", "_retain_grad",
                 "__weakref__")
    # NumPy 2 still honours the legacy priority for operators: ``ndarray * Tensor`` returns
    # NotImplemented, so Python calls Tensor.__rmul__ and the result stays in the graph. We do not
    # define ``__array_ufunc__``: that would take over this deferral (``None`` would also make
    # ``np.exp(t)`` raise); without it, NumPy functions see the plain array via ``__array__``.
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _to_array(data, dtype)
        self.grad = None
        self._parents = ()
        self._backward = None
        self._op = ""
        self._retain_grad = False
        self._requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- construction from ops ------------------------------------------------------------
    @classmethod
    def _make(cls, data: np.ndarray, parents: tuple, backward, op: str = "") -> "Tensor":
        """The output of an op: ``backward(grad) -> tuple`` of one gradient (or None) per parent."""
        out = cls.__new__(cls)
        out.data = data
        out.grad = None
        out._op = op
        out._retain_grad = False
        # An integer or bool output (a cast, say) is never differentiable, as in PyTorch.
        out._requires_grad = (is_grad_enabled() and data.dtype.kind == "f"
                              and any(p.requires_grad for p in parents))
        if out._requires_grad:
            out._parents = parents
            out._backward = backward
        else:
            out._parents = ()
            out._backward = None
        return out

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, requires_grad: bool) -> None:
        # A property, so that ``t.requires_grad = True`` is checked like ``requires_grad_``.
        self.requires_grad_(requires_grad)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.data.dtype.kind not in "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        self._requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retain_grad = True

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    # -- array-like attributes ------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        # Without this, Python would iterate through __getitem__ and a 0-d tensor would look empty.
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        return self.data.item()

    def __float__(self) -> float:
        return float(self.data.item())  # item(): NumPy 2 refuses float() of a 1-element array

    def __int__(self) -> int:
        return int(self.data.item())

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """A tensor sharing this one's data, cut off from the graph."""
        return Tensor(self.data)

    def __array__(self, dtype=None, copy=None):
        # NumPy 2 passes ``copy`` and trusts the answer: True must copy (``np.array(t)`` must not
        # alias the tensor), False must not, None copies only for a dtype change.
        if copy is False and dtype is not None and np.dtype(dtype) != self.data.dtype:
            raise ValueError(f"cannot view a {self.data.dtype} tensor as {np.dtype(dtype)} "
                             f"without a copy")
        if dtype is not None:
            return self.data.astype(dtype, copy=bool(copy))
        return self.data.copy() if copy else self.data

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="tensor(")
        extra = ""
        if self.data.dtype != np.float32:
            extra += f", dtype={self.data.dtype}"
        if self.requires_grad:
            extra += f", grad_fn=<{self._op}>" if self._backward is not None and self._op else (
                ", requires_grad=True")
        return f"tensor({body}{extra})"

    def __hash__(self):
        return id(self)

    def __bool__(self):
        return bool(self.data)

    # -- the engine -----------------------------------------------------------------------
    def backward(self, gradient=None) -> None:
        """Accumulate d(self)/d(leaf) · gradient into every leaf's ``.grad``.

        ``gradient`` is dL/d(self); it may be omitted only when ``self`` holds a single value.
        The graph is released afterwards, as in PyTorch without ``retain_graph``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a single-value output, got shape "
                    f"{self.shape}; pass gradient= with that shape")
            gradient = np.ones_like(self.data)
        else:
            gradient = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient)
            if gradient.shape != self.shape:
                raise ValueError(
                    f"backward(gradient): gradient has shape {gradient.shape}, expected "
                    f"{self.shape} (the shape of the tensor)")
            gradient = gradient.astype(self.dtype, copy=False)

        # Gradients through log(0), 0·inf and the like are inf/NaN, as in PyTorch, and silently so.
        with np.errstate(all="ignore"):
            _backpropagate(self, gradient)

    def zero_grad(self) -> None:
        self.grad = None


def _backpropagate(root: Tensor, gradient: np.ndarray) -> None:
    """The reverse walk of ``Tensor.backward``: sum gradients per node, hand them to parents."""
    grads = {id(root): gradient}
    for node in reversed(_topological_order(root)):
        grad = grads.pop(id(node), None)
        if grad is None:
            continue
        if node._backward is None or node._retain_grad:
            if node.grad is None:
                # ``grad`` may alias another node's gradient or the caller's array: a copy,
                # unless this walk holds the only reference to a leaf's fresh gradient.
                node.grad = grad if node._backward is None and _sole(grad) else grad.copy()
            else:
                node.grad += grad  # in place, as PyTorch accumulates
        if node._backward is not None:
            _send_to_parents(node, grad, grads)


def _send_to_parents(node: Tensor, grad: np.ndarray, grads: dict) -> None:
    """Add node's backward's gradients to its parents' entries in ``grads`` and release the
    node's graph. (A function of its own, so that no stale local of this step still holds a
    gradient when ``_sole`` counts its references at the next.)"""
    for parent, parent_grad in zip(node._parents, node._backward(grad)):
        if parent_grad is None or not parent.requires_grad:
            continue
        # Each gradient takes its tensor's dtype (a float32 leaf gets float32 gradients even
        # when it met float64 on the way) and is an ndarray, never a NumPy scalar.
        parent_grad = np.asarray(parent_grad, dtype=parent.data.dtype)
        if parent_grad.shape != parent.data.shape:
            raise RuntimeError(
                f"backward of {node._op or 'an op'} returned a gradient of shape "
                f"{parent_grad.shape} for an input of shape {parent.data.shape}")
        key = id(parent)
        # A new array, never in-place: the first gradient may alias another node's.
        grads[key] = parent_grad if key not in grads else binary(np.add, grads[key], parent_grad)
    node._parents = ()
    node._backward = _released


def _references(array) -> int:
    return sys.getrefcount(array)


def _fresh_references():
    """What ``_references`` counts for an array held by one local of its caller, and for the
    owner of a whole-array view held only by that view (calibrated on this interpreter)."""
    fresh = np.empty(2)
    view = np.empty(2).reshape(1, 2)
    return _references(fresh), _references(view.base)


_SOLE_ARRAY, _SOLE_BASE = _fresh_references()


def _sole(grad: np.ndarray) -> bool:
    """Whether nothing but the caller's one local holds ``grad``'s memory: an array that owns
    it, or a whole-array view (a reshape) of one that nothing else holds. Such a gradient can
    become a leaf's ``.grad`` without the copy (one input-sized copy per leaf and step, 1.5 ms
    for dw3x3's input); PyTorch's AccumulateGrad takes a gradient it alone holds the same way.
    Anything else, a view of a part, a buffer owned elsewhere, an array another entry of the
    walk or the caller also holds, is copied. "Whole" allows what ``_nearly_whole`` does."""
    base = grad.base
    if base is None:
        return grad.flags.owndata and _references(grad) <= _SOLE_ARRAY + 1
    return (type(base) is np.ndarray and base.base is None and base.flags.owndata
            and _nearly_whole(grad, base)
            and _references(grad) <= _SOLE_ARRAY + 1 and _references(base) <= _SOLE_BASE + 1)


def _nearly_whole(view: np.ndarray, base: np.ndarray) -> bool:
    """Whether ``view`` covers all of ``base``'s memory but the few bytes before it where
    ``kernels.aligned`` starts an array on a cache line, and, if it is one contiguous run,
    at most a sixteenth of its own size after it: the spare rows a compiled kernel writes a
    ragged tile's spill to (a 1×1 weight gradient computed by output rows, 1280 × 320, was
    copied every step behind 8 such rows). Both were copied before: pw1x1's input gradient,
    8 MB, 1.1 ms a step."""
    extra = base.nbytes - view.nbytes
    if 0 <= extra <= LINE:
        return True
    start = view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    return view.flags.c_contiguous and 0 <= start <= LINE and extra - start <= view.nbytes // 16


def _topological_order(root: Tensor) -> list:
    """Nodes reachable from ``root``, each after all of its parents (iterative, no recursion)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    return order


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Make a Tensor (float32 for Python floats; NumPy arrays keep their dtype)."""
    return Tensor(np.array(_to_array(data, dtype)), requires_grad=requires_grad)


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}  # PyTorch's type categories: bool < integer < float


def as_tensor(value, like: Tensor | None = None) -> Tensor:
    """``value`` as a Tensor without copying.

    A Python (or NumPy) scalar next to ``like`` takes ``like``'s dtype when it is of the same or
    a lower category (so ``t * 2.0`` stays float32), else the default dtype of its own category
    (int64, float32), as in PyTorch: ``int_tensor * 2.5`` is float32, ``bool_tensor + 1`` int64.
    """
    if isinstance(value, Tensor):
        return value
    if like is not None and not isinstance(value, np.ndarray) and np.ndim(value) == 0:
        kind = np.asarray(value).dtype.kind
        if kind in _CATEGORY and _CATEGORY[kind] > _CATEGORY[like.data.dtype.kind]:
            return Tensor(value)  # Python float -> float32, int -> int64
        return Tensor(np.asarray(value, dtype=like.data.dtype))
    return Tensor(value)


def result_dtype(a: Tensor, b: Tensor) -> np.dtype:
    """The dtype of a binary op on ``a`` and ``b``, by PyTorch's promotion rules.

    The higher category (bool < integer < float) wins; within a category the wider dtype does,
    except that a 0-d tensor does not widen a dimensioned one (float32 (3,) with float64 () is
    float32) unless it brings a higher category.
    """
    cat_a, cat_b = _CATEGORY[a.data.dtype.kind], _CATEGORY[b.data.dtype.kind]
    if (a.ndim == 0) != (b.ndim == 0):
        dimensioned, zero_d = (a, b) if b.ndim == 0 else (b, a)
        if _CATEGORY[zero_d.data.dtype.kind] > _CATEGORY[dimensioned.data.dtype.kind]:
            return zero_d.data.dtype
        return dimensioned.data.dtype
    if cat_a != cat_b:
        return (a if cat_a > cat_b else b).data.dtype
    return np.promote_types(a.data.dtype, b.data.dtype)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
