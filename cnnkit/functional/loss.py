"""Losses: cross_entropy, nll_loss, mse_loss, binary_cross_entropy_with_logits.

Each is one op with a closed-form backward (cross-entropy's is softmax − one-hot), much cheaper
than differentiating through log_softmax, gather and mean separately.

``reduction`` is ``'mean'``, ``'sum'`` or ``'none'`` as in PyTorch. For the class-index losses
``'mean'`` divides by the total weight of the non-ignored targets, Σᵢ w[yᵢ], not by N.
"""
import numpy as np

from ..kernels import loss_numba, softmax_numba
from ..ops.shape import reshape
from ..tensor import Tensor, as_tensor, unbroadcast
from .activation import _log_softmax_array, _vector_float32

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction, name):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _as_array(value):
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def _class_weight(weight, num_classes, dtype, name):
    """``weight`` as a float array of shape (C,), or None."""
    if weight is None:
        return None
    w = _as_array(weight)
    if w.shape != (num_classes,):
        raise ValueError(f"{name}: weight must have shape ({num_classes},) (one per class), "
                         f"got shape {w.shape}")
    return w.astype(dtype, copy=False)


def _check_scores(x: Tensor, name: str):
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: input must be floating point, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{name}: input must have shape (N, C, ...) or (C,), got a scalar")


def _class_targets(x_shape, target, ignore_index, name):
    """Check class-index ``target`` against input (N, C, *d).

    Returns (target with ignored entries set to 0, valid mask), both of shape (N, *d).
    """
    t = _as_array(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: target must hold integer class indices, got dtype {t.dtype}")
    expected = (x_shape[0],) + tuple(x_shape[2:])
    if t.shape != expected:
        raise ValueError(f"{name}: target must have shape {expected} for input of shape "
                         f"{x_shape}, got shape {t.shape}")
    valid = t != ignore_index
    num_classes = x_shape[1]
    bad = valid & ((t < 0) | (t >= num_classes))
    if bad.any():
        raise ValueError(f"{name}: target values must be class indices in [0, {num_classes}) or "
                         f"ignore_index={ignore_index}, got {t[bad].ravel()[0]}")
    return np.where(valid, t, 0).astype(np.intp), valid


def _weighted_target_terms(x_shape, target, weight, ignore_index, dtype, name):
    """(safe target, valid mask, w[y] (0 where ignored), class weight or None, Σ w[y]):
    everything the class-index losses need, the last being the denominator of 'mean'."""
    safe_t, valid = _class_targets(x_shape, target, ignore_index, name)
    w = _class_weight(weight, x_shape[1], dtype, name)
    w_y = valid.astype(dtype) if w is None else np.where(valid, w[safe_t], 0).astype(dtype)
    return safe_t, valid, w_y, w, w_y.sum()


def _batched(x: Tensor, target):
    """Unbatched (C,) input with a scalar target -> a batch of one; remembers to undo it."""
    if x.ndim == 1:
        t = _as_array(target)
        return reshape(x, (1,) + x.shape), t.reshape((1,) + t.shape), True
    return x, target, False


def _reduce(per_element: np.ndarray, reduction: str, denominator):
    """The forward value and the factor dL/d(per_element) = g·factor for each reduction."""
    if reduction == "none":
        return per_element, None
    total = per_element.sum(dtype=per_element.dtype)
    if reduction == "sum":
        return np.asarray(total), 1.0
    with np.errstate(invalid="ignore", divide="ignore"):  # all-ignored batch: 0/0 = NaN, as torch
        return np.asarray(total / denominator, dtype=per_element.dtype), 1.0 / denominator


def _upstream(g, factor, shape):
    """dL/d(per_element) as an array of ``shape``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.broadcast_to(g if factor is None else g * factor, shape)


def cross_entropy(input, target, weight=None, ignore_index: int = -100,  # noqa: A002
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of softmax(input) over dim 1 against class indices or class probabilities.

    Parameters
    ----------
    input : Tensor of shape (N, C), (N, C, d1, ..., dk) or (C,) — unnormalised scores
    target : int array of shape (N,), (N, d1, ..., dk) or () — class indices (or ``ignore_index``);
        or a float array of input's shape — class probabilities
    weight : array of shape (C,) or None — per-class weight w
    label_smoothing : ε in [0, 1]; the target becomes (1 − ε)·onehot + ε/C

    With p = softmax(x), for one element with target y (not ignored):
        Lᵢ = (1 − ε)·w_y·(−log p_y) + ε/C · Σ_c w_c·(−log p_c)
        dLᵢ/dx_j = p_j·((1 − ε)·w_y + ε/C·Σ_c w_c) − ((1 − ε)·w_y·[j = y] + ε/C·w_j)
    ``'mean'`` divides by Σᵢ w_{yᵢ} over the non-ignored elements (by N·d1···dk for probabilities).
    """
    _check_reduction(reduction, "cross_entropy")
    x = as_tensor(input)
    _check_scores(x, "cross_entropy")
    if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing!r}")
    x, target_b, unbatched = _batched(x, target)
    if _as_array(target_b).dtype.kind == "f":
        out = _cross_entropy_probabilities(x, target, target_b, weight, reduction,
                                           float(label_smoothing))
    else:
        out = _cross_entropy_indices(x, target_b, weight, ignore_index, reduction,
                                     float(label_smoothing))
    if unbatched and reduction == "none":
        out = reshape(out, out.shape[1:])
    return out


def _cross_entropy_indices(x, target, weight, ignore_index, reduction, eps) -> Tensor:
    num_classes = x.shape[1]
    safe_t, valid, w_y, w, denominator = _weighted_target_terms(
        x.shape, target, weight, ignore_index, x.dtype, "cross_entropy")
    log_p = _log_softmax_array(x.data, axis=1)
    picked = np.expand_dims(safe_t, 1)
    log_p_y = np.take_along_axis(log_p, picked, axis=1).squeeze(1)
    # where(): an ignored element contributes 0 even when its log p is -inf (0·-inf would be NaN).
    per_element = np.where(valid, -w_y * log_p_y, 0)
    wshape = (1, num_classes) + (1,) * (x.ndim - 2)
    w_b = None if w is None else w.reshape(wshape)
    if eps > 0:
        smooth = -(log_p if w_b is None else log_p * w_b).sum(axis=1)
        per_element = (1 - eps) * per_element + (eps / num_classes) * np.where(valid, smooth, 0)
    per_element = per_element.astype(x.dtype, copy=False)
    out, factor = _reduce(per_element, reduction, denominator)

    def backward(g):
        upstream = _upstream(g, factor, per_element.shape)  # (N, *d)
        valid_f = valid.astype(x.dtype)
        total_w = num_classes if w is None else w.sum()
        p_scale = (1 - eps) * w_y + (eps / num_classes) * total_w * valid_f
        grad = _softmax_times(log_p, upstream * p_scale)
        if eps > 0:
            smooth_scale = np.expand_dims(upstream * valid_f, 1) * (eps / num_classes)
            grad -= smooth_scale if w_b is None else smooth_scale * w_b
        at_target = np.take_along_axis(grad, picked, axis=1)
        np.put_along_axis(grad, picked, at_target - np.expand_dims((1 - eps) * w_y * upstream, 1),
                          axis=1)
        return (grad.astype(x.dtype, copy=False),)
    return Tensor._make(out, (x,), backward, "cross_entropy")


def _softmax_times(log_p, scale):
    """e^log_p · scale, ``scale`` broadcast along the classes (axis 1): compiled for float32
    (``kernels.softmax_numba.exp_times``, as ``log_softmax``'s passes are), else NumPy's."""
    if _vector_float32(log_p):
        return softmax_numba.exp_times(log_p, scale, 1)
    return np.exp(log_p) * np.expand_dims(scale, 1)


def _cross_entropy_probabilities(x, target, target_b, weight, reduction, eps) -> Tensor:
    num_classes = x.shape[1]
    t_tensor = target if isinstance(target, Tensor) else None
    t = _as_array(target_b)
    if t.shape != x.shape:
        raise ValueError(f"cross_entropy: probability target must have the input's shape "
                         f"{x.shape}, got shape {t.shape}")
    w = _class_weight(weight, num_classes, x.dtype, "cross_entropy")
    w_b = np.ones((), x.dtype) if w is None else w.reshape((1, num_classes) + (1,) * (x.ndim - 2))
    smoothed = (t * (1 - eps) + eps / num_classes).astype(x.dtype, copy=False)
    log_p = _log_softmax_array(x.data, axis=1)
    per_element = -(w_b * smoothed * log_p).sum(axis=1)
    out, factor = _reduce(per_element, reduction, per_element.size)

    def backward(g):
        upstream = np.expand_dims(_upstream(g, factor, per_element.shape), 1)
        weighted_t = w_b * smoothed
        dx = upstream * (np.exp(log_p) * weighted_t.sum(axis=1, keepdims=True) - weighted_t)
        dt = None
        if t_tensor is not None and t_tensor.requires_grad:
            dt = (-(1 - eps) * upstream * w_b * log_p).reshape(t_tensor.shape)
        return dx.astype(x.dtype, copy=False), dt
    parents = (x, t_tensor) if t_tensor is not None else (x,)
    return Tensor._make(out, parents, backward, "cross_entropy")


def nll_loss(input, target, weight=None, ignore_index: int = -100,  # noqa: A002
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: Lᵢ = −w_{yᵢ}·input[i, yᵢ] (input holds log-probabilities).

    Parameters
    ----------
    input : Tensor of shape (N, C), (N, C, d1, ..., dk) or (C,)
    target : int array of shape (N,), (N, d1, ..., dk) or ()
    weight : array of shape (C,) or None

    dL/d input[i, yᵢ] = −w_{yᵢ}, every other entry 0 (times 1/Σw for ``'mean'``).
    """
    _check_reduction(reduction, "nll_loss")
    x = as_tensor(input)
    _check_scores(x, "nll_loss")
    x, target_b, unbatched = _batched(x, target)
    safe_t, valid, w_y, _, denominator = _weighted_target_terms(
        x.shape, target_b, weight, ignore_index, x.dtype, "nll_loss")
    picked = np.expand_dims(safe_t, 1)
    value_y = np.take_along_axis(x.data, picked, axis=1).squeeze(1)
    per_element = np.where(valid, -w_y * value_y, 0).astype(x.dtype, copy=False)
    out, factor = _reduce(per_element, reduction, denominator)

    def backward(g):
        upstream = _upstream(g, factor, per_element.shape)
        grad = np.zeros_like(x.data)
        np.put_along_axis(grad, picked, np.expand_dims(-w_y * upstream, 1), axis=1)
        return (grad,)
    result = Tensor._make(out, (x,), backward, "nll_loss")
    if unbatched and reduction == "none":
        result = reshape(result, result.shape[1:])
    return result


def mse_loss(input, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error: Lᵢ = (xᵢ − tᵢ)²;  dL/dx = 2(x − t)·g,  dL/dt = −2(x − t)·g.

    ``input`` and ``target`` are Tensors (or arrays) of broadcastable shapes.
    """
    _check_reduction(reduction, "mse_loss")
    x = as_tensor(input)
    t = as_tensor(target, like=x)
    try:
        shape = np.broadcast_shapes(x.shape, t.shape)
    except ValueError:
        raise ValueError(f"mse_loss: input shape {x.shape} and target shape {t.shape} do not "
                         f"broadcast") from None
    if reduction != "none" and x.shape == t.shape and x.dtype == t.dtype and \
            _vector_float32(x.data):
        return _compiled_mse_loss(x, t, reduction)
    diff = x.data - t.data
    per_element = diff * diff
    out, factor = _reduce(per_element, reduction, per_element.size)

    def backward(g):
        d = 2 * diff * _upstream(g, factor, shape)
        return (unbroadcast(d, x.shape) if x.requires_grad else None,
                unbroadcast(-d, t.shape) if t.requires_grad else None)
    return Tensor._make(out, (x, t), backward, "mse_loss")


def _compiled_mse_loss(x, t, reduction) -> Tensor:
    """``mse_loss`` summed or averaged, of float32 x and t of one shape, by
    ``kernels.loss_numba``: x − t and the sum of its squares in one pass (in float64, rounded
    once), the gradient in one more. (Per element, NumPy's passes ran as fast.)"""
    diff, total = loss_numba.squared_error(x.data, t.data)
    diff = diff.reshape(x.shape)
    factor = 1.0 if reduction == "sum" else 1.0 / diff.size if diff.size else np.nan
    out = np.asarray(total * factor, dtype=np.float32)

    def backward(g):
        with np.errstate(invalid="ignore", over="ignore"):
            d = loss_numba.scaled(diff, 2 * np.float32(g * factor))
        return (d if x.requires_grad else None, -d if t.requires_grad else None)
    return Tensor._make(out, (x, t), backward, "mse_loss")


def _compiled_logit_cross_entropy(x, t, reduction) -> Tensor:
    """``binary_cross_entropy_with_logits`` summed or averaged, unweighted, of float32 x and
    t of one shape (t not learned), by ``kernels.loss_numba``: one pass each way in float64,
    the sum rounded once."""
    total = loss_numba.logit_cross_entropy(x.data, t.data)
    factor = 1.0 if reduction == "sum" else 1.0 / x.data.size if x.data.size else np.nan
    out = np.asarray(total * factor, dtype=np.float32)

    def backward(g):
        return loss_numba.logit_cross_entropy_backward(x.data, t.data, g * factor), None
    return Tensor._make(out, (x, t), backward, "binary_cross_entropy_with_logits")


def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None,  # noqa: A002
                                     reduction: str = "mean") -> Tensor:
    """Binary cross-entropy on logits, never forming σ(x) and log σ(x) separately.

    With l = 1 + (pos_weight − 1)·t and softplus(−x) = log(1 + e^(−|x|)) + max(−x, 0):
        Lᵢ = wᵢ·((1 − t)·x + l·softplus(−x))
        dL/dx = w·((1 − t) − l·σ(−x)),   dL/dt = w·(−x + (pos_weight − 1)·softplus(−x))

    Parameters
    ----------
    input, target : Tensors of the same shape (any)
    weight : array broadcastable to the input's shape, or None
    pos_weight : array broadcastable to the input's shape (usually (C,) for the last dim), or None

    Large float32 inputs, unweighted and summed or averaged against targets that need no
    gradient, take one compiled pass each way (``_compiled_logit_cross_entropy``).
    """
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    x = as_tensor(input)
    t = as_tensor(target, like=x)
    if t.shape != x.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target size {t.shape} must be the "
                         f"same as input size {x.shape}")
    extras = {}
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is None:
            continue
        array = _as_array(value).astype(x.dtype, copy=False)
        try:
            ok = np.broadcast_shapes(array.shape, x.shape) == x.shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"binary_cross_entropy_with_logits: {name} of shape {array.shape} "
                             f"must broadcast to the input's shape {x.shape}")
        extras[name] = array
    w, pw = extras.get("weight"), extras.get("pos_weight")
    if w is None and pw is None and reduction != "none" and x.dtype == t.dtype and \
            _vector_float32(x.data) and not t.requires_grad:
        return _compiled_logit_cross_entropy(x, t, reduction)
    softplus_neg = np.log1p(np.exp(-np.abs(x.data))) + np.maximum(-x.data, 0)
    log_weight = 1 if pw is None else 1 + (pw - 1) * t.data
    per_element = (1 - t.data) * x.data + log_weight * softplus_neg
    if w is not None:
        per_element = per_element * w
    per_element = per_element.astype(x.dtype, copy=False)
    out, factor = _reduce(per_element, reduction, per_element.size)

    def backward(g):
        upstream = _upstream(g, factor, x.shape)
        if w is not None:
            upstream = upstream * w
        dx = dt = None
        if x.requires_grad:
            e = np.exp(-np.abs(x.data))
            sigmoid_neg = np.where(x.data >= 0, e / (1 + e), 1 / (1 + e))  # σ(−x), stably
            dx = (upstream * ((1 - t.data) - log_weight * sigmoid_neg)).astype(x.dtype, copy=False)
        if t.requires_grad:
            dt = -x.data if pw is None else -x.data + (pw - 1) * softplus_neg
            dt = (upstream * dt).astype(t.dtype, copy=False)
        return dx, dt
    return Tensor._make(out, (x, t), backward, "binary_cross_entropy_with_logits")
