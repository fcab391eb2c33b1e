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
import threading

import numpy as np

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


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

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "_op", "_retain_grad",
                 "__weakref__")
    __array_priority__ = 1000  # so that ``ndarray + Tensor`` calls Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _to_array(data, dtype)
        self.grad = None
        self._parents = ()
        self._backward = None
        self._op = ""
        self._retain_grad = False
        self.requires_grad = False
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
        out.requires_grad = is_grad_enabled() and any(p.requires_grad for p in parents)
        if out.requires_grad:
            out._parents = parents
            out._backward = backward
        else:
            out._parents = ()
            out._backward = None
        return out

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.data.dtype.kind not in "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
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
        return len(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """A tensor sharing this one's data, cut off from the graph."""
        return Tensor(self.data)

    def __array__(self, dtype=None, copy=None):
        if dtype is None:
            return self.data
        return self.data.astype(dtype, copy=False)

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

        grads = {id(self): gradient}
        for node in reversed(_topological_order(self)):
            grad = grads.pop(id(node), None)
            if grad is None:
                continue
            if node._backward is None or node._retain_grad:
                node.grad = grad.copy() if node.grad is None else node.grad + grad
            if node._backward is None:
                continue
            parent_grads = node._backward(grad)
            for parent, parent_grad in zip(node._parents, parent_grads):
                if parent_grad is None or not parent.requires_grad:
                    continue
                key = id(parent)
                # A new array, never in-place: the first gradient may alias another node's.
                grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
            node._parents = ()
            node._backward = _released

    def zero_grad(self) -> None:
        self.grad = None


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


def as_tensor(value, like: Tensor | None = None) -> Tensor:
    """``value`` as a Tensor without copying; Python scalars take ``like``'s dtype."""
    if isinstance(value, Tensor):
        return value
    if like is not None and not isinstance(value, np.ndarray) and np.ndim(value) == 0:
        return Tensor(np.asarray(value, dtype=like.dtype))
    return Tensor(value)


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
