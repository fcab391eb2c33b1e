"""Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``."""
from __future__ import annotations

from .optimizer import Optimizer, check_bool, check_real


class SGD(Optimizer):
    r"""Stochastic gradient descent, step for step the algorithm of ``torch.optim.SGD``.

    For each parameter :math:`\theta` with gradient :math:`g_t` at step :math:`t`::

        g_t ← -g_t                                  if maximize
        g_t ← g_t + weight_decay · θ                if weight_decay ≠ 0
        if momentum ≠ 0:
            b_t = g_t                               at the parameter's first step
            b_t = momentum · b_{t-1} + (1 - dampening) · g_t      afterwards
            g_t ← g_t + momentum · b_t              if nesterov
            g_t ← b_t                               otherwise
        θ ← θ - lr · g_t

    The buffer starts as the raw gradient (no dampening on the first step), as in PyTorch.
    Parameters whose ``.grad`` is None are skipped and get no state.

    Parameters
    ----------
    params : iterable of Parameter or of param-group dicts
    lr : float, default 1e-3
        Learning rate, >= 0.
    momentum : float, default 0
        Momentum factor, >= 0.
    dampening : float, default 0
        Dampening for momentum.
    weight_decay : float, default 0
        L2 penalty, >= 0 (added to the gradient).
    nesterov : bool, default False
        Nesterov momentum; needs momentum > 0 and dampening = 0.
    maximize : bool, default False
        Ascend the objective instead of descending it.

    State per parameter: ``momentum_buffer`` (ndarray of the parameter's shape and dtype), once
    momentum is nonzero and the parameter has had a gradient.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, maximize: bool = False):
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                    "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}
        # Checked once here so that a bad default fails even if every group overrides it.
        self._validate_group(defaults)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict) -> None:
        check_real("lr", group["lr"])
        check_real("momentum", group["momentum"])
        check_real("dampening", group["dampening"], minimum=float("-inf"))
        check_real("weight_decay", group["weight_decay"])
        check_bool("nesterov", group["nesterov"])
        check_bool("maximize", group["maximize"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening (got "
                             f"momentum={group['momentum']}, dampening={group['dampening']})")

    def state_entries(self, group: dict) -> dict:
        return {"momentum_buffer": "array"} if group["momentum"] != 0 else {}

    def _update_group(self, group: dict) -> None:
        # Python floats are "weak" in NumPy's promotion: the math stays in the parameter's dtype.
        lr, momentum = float(group["lr"]), float(group["momentum"])
        dampening, weight_decay = float(group["dampening"]), float(group["weight_decay"])
        nesterov = group["nesterov"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = self._gradient(p, group["maximize"])
            if weight_decay != 0:
                grad = grad + weight_decay * p.data
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buffer = state.get("momentum_buffer")
                if buffer is None:
                    buffer = state["momentum_buffer"] = grad.copy()
                else:
                    buffer *= momentum
                    buffer += (1 - dampening) * grad
                grad = grad + momentum * buffer if nesterov else buffer
            p.data -= lr * grad
