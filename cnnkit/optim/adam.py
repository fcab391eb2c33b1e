"""Adam and AdamW, as ``torch.optim.Adam`` and ``torch.optim.AdamW``."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, check_bool, check_real


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``start += weight · (end - start)`` in place, rounded as ``torch.lerp`` rounds it.

    For weights >= 0.5 torch evaluates ``end - (1 - weight) · (end - start)`` instead, which is
    more accurate there; the weight is first rounded to the arrays' dtype.
    """
    weight = start.dtype.type(weight)
    difference = end - start
    if abs(weight) < 0.5:
        difference *= weight
        start += difference
    else:
        difference *= start.dtype.type(1) - weight  # rounded in the arrays' dtype, as torch does
        np.subtract(end, difference, out=start)


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), step for step the algorithm of ``torch.optim.Adam``.

    For each parameter :math:`\theta` with gradient :math:`g_t` at its step :math:`t = 1, 2, …`::

        g_t ← -g_t                                   if maximize
        θ   ← θ · (1 - lr · weight_decay)            AdamW (decoupled decay)
        g_t ← g_t + weight_decay · θ                 Adam (L2 penalty in the gradient)
        m_t = β1 · m_{t-1} + (1 - β1) · g_t
        v_t = β2 · v_{t-1} + (1 - β2) · g_t²
        v̂_t = max(v̂_{t-1}, v_t)   if amsgrad,   else  v̂_t = v_t
        θ   ← θ - lr / (1 - β1^t) · m_t / (sqrt(v̂_t) / sqrt(1 - β2^t) + eps)

    Note where ``eps`` sits: added to the bias-corrected root, as in PyTorch. Moments start at
    zero and are kept in the parameter's dtype (float32 parameters keep float32 state); the bias
    corrections are computed in Python floats (float64). Parameters whose ``.grad`` is None are
    skipped and their step count does not advance.

    Parameters
    ----------
    params : iterable of Parameter or of param-group dicts
    lr : float, default 1e-3
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates (β1, β2) of the first and second moment averages, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator for numerical stability, >= 0.
    weight_decay : float, default 0 (Adam) or 1e-2 (AdamW)
        >= 0. Adam adds it as an L2 term to the gradient; AdamW decays the weights directly.
    amsgrad : bool, default False
        Use the running maximum of v_t (Reddi et al., 2018).
    maximize : bool, default False
        Ascend the objective instead of descending it.

    State per parameter: ``step`` (int), ``exp_avg`` and ``exp_avg_sq`` (ndarrays of the
    parameter's shape and dtype), and ``max_exp_avg_sq`` when amsgrad.
    """

    _decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False,
                 maximize: bool = False):
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize}
        self._validate_group(defaults)
        defaults["betas"] = tuple(betas)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict) -> None:
        check_real("lr", group["lr"])
        check_real("eps", group["eps"])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_real("betas[0]", betas[0], below=1.0)
        check_real("betas[1]", betas[1], below=1.0)
        check_real("weight_decay", group["weight_decay"])
        check_bool("amsgrad", group["amsgrad"])
        check_bool("maximize", group["maximize"])

    def state_entries(self, group: dict) -> dict:
        entries = {"step": "count", "exp_avg": "array", "exp_avg_sq": "array"}
        return {**entries, "max_exp_avg_sq": "array"} if group["amsgrad"] else entries

    def _update_group(self, group: dict) -> None:
        # Python floats are "weak" in NumPy's promotion: the math stays in the parameter's dtype.
        lr, eps = float(group["lr"]), float(group["eps"])
        weight_decay = float(group["weight_decay"])
        beta1, beta2 = (float(beta) for beta in group["betas"])
        amsgrad = group["amsgrad"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = self._gradient(p, group["maximize"])
            state = self.state.setdefault(p, {})
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
                if amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]

            if weight_decay != 0:
                if self._decoupled_weight_decay:
                    p.data *= 1 - lr * weight_decay
                else:
                    grad = grad + weight_decay * p.data

            _lerp_(exp_avg, grad, 1 - beta1)
            exp_avg_sq *= beta2
            exp_avg_sq += (1 - beta2) * grad * grad

            bias_correction1 = 1 - beta1 ** step
            bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
            if amsgrad:
                second_moment = state.setdefault("max_exp_avg_sq", np.zeros_like(p.data))
                np.maximum(second_moment, exp_avg_sq, out=second_moment)
            else:
                second_moment = exp_avg_sq
            denominator = np.sqrt(second_moment)
            denominator /= bias_correction2_sqrt
            denominator += eps
            # torch's addcdiv rounds (value · m) / denominator, in that order.
            update = (-lr / bias_correction1) * exp_avg
            update /= denominator
            p.data += update


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    Identical to :class:`Adam` except that ``weight_decay`` (default 1e-2) shrinks the weights,
    ``θ ← θ · (1 - lr · weight_decay)``, before the moment update, instead of being added
    to the gradient.
    """

    _decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
