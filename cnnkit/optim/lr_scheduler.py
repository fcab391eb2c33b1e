"""Learning-rate schedules, as ``torch.optim.lr_scheduler``: StepLR, CosineAnnealingLR, OneCycleLR.

A scheduler rewrites ``group['lr']`` of every parameter group of its optimizer. Building one sets
the lr for step 0; call ``scheduler.step()`` after each ``optimizer.step()`` to move to the next.

StepLR and CosineAnnealingLR use PyTorch's *recursive* updates (the new lr is computed from the
group's current lr), not the closed forms in their docstrings: the two agree mathematically but
not to the last bit, and the recursive form is what ``torch`` produces when stepped, so these
schedules reproduce its lr sequences exactly. It is also what lets a schedule compose with other
changes made to ``group['lr']``. OneCycleLR is computed in closed form, as in PyTorch.

``state_dict()`` is a flat dict of JSON types (no optimizer inside); ``load_state_dict`` restores
it. To resume, rebuild optimizer and scheduler, then load the optimizer's state dict (which holds
the groups' ``lr``) and the scheduler's.
"""
from __future__ import annotations

import math
import numbers

from .optimizer import Optimizer, check_bool, check_real


class LRScheduler:
    """Base class: subclasses implement ``_lrs_at(epoch)``, the lrs for step index ``epoch``."""

    _hyperparameters: tuple[str, ...] = ()  # attributes saved in state_dict besides the epoch

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a cnnkit.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def _lrs_at(self, epoch: int) -> list[float]:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and write the new learning rates into the optimizer's groups."""
        lrs = self._lrs_at(self.last_epoch + 1)
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the latest ``step()``, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """``{'last_epoch', 'base_lrs', 'last_lr', **hyperparameters}``, all JSON types."""
        state = {"last_epoch": self.last_epoch, "base_lrs": [float(lr) for lr in self.base_lrs],
                 "last_lr": [float(lr) for lr in self._last_lr]}
        state.update({name: getattr(self, name) for name in self._hyperparameters})
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict()`` returned (checked before any change)."""
        expected = {"last_epoch", "base_lrs", "last_lr", *self._hyperparameters}
        if not isinstance(state_dict, dict) or set(state_dict) != expected:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"state_dict for {type(self).__name__} must have the keys "
                             f"{sorted(expected)}, got {got}")
        groups = len(self.optimizer.param_groups)
        for key in ("base_lrs", "last_lr"):
            if len(state_dict[key]) != groups:
                raise ValueError(f"state_dict[{key!r}] has {len(state_dict[key])} values, the "
                                 f"optimizer has {groups} parameter groups")
        for name, value in state_dict.items():
            setattr(self, "_last_lr" if name == "last_lr" else name,
                    list(value) if isinstance(value, list) else value)


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"Expected positive integer {name}, but got {value!r}")


class StepLR(LRScheduler):
    r"""Multiply the lr by ``gamma`` every ``step_size`` steps.

    Closed form: :math:`lr_t = base\_lr \cdot \gamma^{\lfloor t / step\_size \rfloor}`; stepping
    applies it recursively, :math:`lr_t = \gamma \cdot lr_{t-1}` when ``t`` is a nonzero multiple
    of ``step_size``, else :math:`lr_t = lr_{t-1}` (PyTorch's rounding).

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int
        Period of the decay, > 0.
    gamma : float, default 0.1
        Multiplicative factor, >= 0.
    """

    _hyperparameters = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        _check_positive_int("step_size", step_size)
        check_real("gamma", gamma)
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer)

    def _lrs_at(self, epoch: int) -> list[float]:
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        if epoch == 0 or epoch % self.step_size != 0:
            return lrs
        return [lr * self.gamma for lr in lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Anneal the lr along a half cosine from its initial value to ``eta_min`` in ``T_max`` steps.

    Closed form: :math:`lr_t = \eta_{min} + (base\_lr - \eta_{min})(1 + \cos(\pi t/T_{max}))/2`.
    Stepping applies PyTorch's recursion,

    .. math:: lr_t = \eta_{min} + (lr_{t-1} - \eta_{min})
              \frac{1 + \cos(\pi t / T_{max})}{1 + \cos(\pi (t - 1) / T_{max})},

    with the additive form
    :math:`lr_t = lr_{t-1} + (base\_lr - \eta_{min})(1 - \cos(\pi/T_{max}))/2`
    on the steps just after a minimum, where the ratio would be 0/0. Past ``T_max`` the lr climbs
    back up (a cosine of period ``2 T_max``), as in PyTorch.

    Parameters
    ----------
    optimizer : Optimizer
    T_max : int
        Number of steps from the initial lr to ``eta_min``, > 0.
    eta_min : float, default 0
        Minimum learning rate, >= 0.
    """

    _hyperparameters = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        _check_positive_int("T_max", T_max)
        check_real("eta_min", eta_min)
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer)

    def _lrs_at(self, epoch: int) -> list[float]:
        groups, eta_min, t_max = self.optimizer.param_groups, self.eta_min, self.T_max
        if epoch == 0:
            return [group["lr"] for group in groups]
        if (epoch - 1 - t_max) % (2 * t_max) == 0:
            return [group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
                    for base_lr, group in zip(self.base_lrs, groups)]
        ratio = ((1 + math.cos(math.pi * epoch / t_max))
                 / (1 + math.cos(math.pi * (epoch - 1) / t_max)))
        return [ratio * (group["lr"] - eta_min) + eta_min for group in groups]



class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith & Topin, 2017): warm the lr up to ``max_lr``, then anneal it down.

    With ``N = total_steps`` and ``p = pct_start``, the phases end at these step indices::

        three_phase=False:  p·N - 1 (initial → max),  N - 1 (max → min)
        three_phase=True:   p·N - 1 (initial → max),  2·p·N - 2 (max → initial),
                            N - 1 (initial → min)

    where ``initial = max_lr / div_factor`` and ``min = initial / final_div_factor``. Within a
    phase that runs from step ``a`` to ``b`` the lr at step ``t`` is
    ``anneal(start, end, (t - a) / (b - a))`` with
    ``cos: end + (start - end)/2 · (1 + cos(π·pct))`` or ``linear: start + (end - start)·pct``.
    A phase of zero length (``b == a``, where PyTorch divides by zero) gives ``pct = 1``.

    With ``cycle_momentum`` the momentum (SGD's ``momentum``, Adam's ``beta1``) follows the
    inverse cycle between ``max_momentum`` and ``base_momentum`` by the same anneal function.
    Like PyTorch, this scheduler writes ``initial_lr``, ``max_lr``, ``min_lr`` (and
    ``max_momentum``, ``base_momentum``) into each parameter group, and stepping beyond
    ``total_steps`` raises ValueError.

    Parameters
    ----------
    optimizer : Optimizer
    max_lr : float or list of float
        Peak learning rate, one value or one per parameter group.
    total_steps : int, optional
        Length of the cycle; otherwise ``epochs * steps_per_epoch``.
    epochs, steps_per_epoch : int, optional
    pct_start : float, default 0.3
        Fraction of the cycle spent warming up, in [0, 1].
    anneal_strategy : {'cos', 'linear'}, default 'cos'
    cycle_momentum : bool, default True
    base_momentum, max_momentum : float or list of float, default 0.85 and 0.95
    div_factor : float, default 25
    final_div_factor : float, default 1e4
    three_phase : bool, default False
    """

    _hyperparameters = ("total_steps", "pct_start", "anneal_strategy", "three_phase",
                        "cycle_momentum", "use_beta1")

    def __init__(self, optimizer: Optimizer, max_lr, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a cnnkit.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        if total_steps is not None:
            _check_positive_int("total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            _check_positive_int("epochs", epochs)
            _check_positive_int("steps_per_epoch", steps_per_epoch)
            total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        check_real("pct_start", pct_start)
        if not pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got "
                             f"{anneal_strategy!r}")
        check_bool("cycle_momentum", cycle_momentum)
        check_bool("three_phase", three_phase)
        check_real("div_factor", div_factor)
        check_real("final_div_factor", final_div_factor)
        if div_factor == 0 or final_div_factor == 0:
            raise ValueError("div_factor and final_div_factor must be > 0")
        groups = optimizer.param_groups
        max_lrs = _per_group("max_lr", max_lr, len(groups))
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` "
                                 "option enabled")
            max_momentums = _per_group("max_momentum", max_momentum, len(groups))
            base_momentums = _per_group("base_momentum", base_momentum, len(groups))

        self.total_steps, self.pct_start = int(total_steps), float(pct_start)
        self.anneal_strategy, self.three_phase = anneal_strategy, bool(three_phase)
        self.cycle_momentum = bool(cycle_momentum)
        self.use_beta1 = "betas" in optimizer.defaults
        for i, group in enumerate(groups):
            group["initial_lr"] = max_lrs[i] / div_factor
            group["max_lr"] = max_lrs[i]
            group["min_lr"] = group["initial_lr"] / final_div_factor
            if self.cycle_momentum:
                self._set_momentum(group, max_momentums[i])
                group["max_momentum"] = max_momentums[i]
                group["base_momentum"] = base_momentums[i]
        super().__init__(optimizer)

    def _phases(self) -> list[tuple[float, str, str, str, str]]:
        """(end step, start lr key, end lr key, start momentum key, end momentum key) per phase."""
        n, pct = self.total_steps, self.pct_start
        if self.three_phase:
            return [(float(pct * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                    (float(2 * pct * n) - 2, "max_lr", "initial_lr", "base_momentum",
                     "max_momentum"),
                    (n - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        return [(float(pct * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (n - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _set_momentum(self, group: dict, momentum: float) -> None:
        if self.use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum

    def _lrs_at(self, epoch: int) -> list[float]:
        if epoch > self.total_steps:
            raise ValueError(f"Tried to step {epoch} times. The specified number of total steps "
                             f"is {self.total_steps}")
        phases = self._phases()
        start_step = 0.0
        for i, (end_step, *_) in enumerate(phases):
            if epoch <= end_step or i == len(phases) - 1:
                break
            start_step = end_step
        _, start_lr, end_lr, start_momentum, end_momentum = phases[i]
        pct = (epoch - start_step) / (end_step - start_step) if end_step != start_step else 1.0
        lrs = []
        for group in self.optimizer.param_groups:
            lrs.append(self._anneal(group[start_lr], group[end_lr], pct))
            if self.cycle_momentum:
                self._set_momentum(group, self._anneal(group[start_momentum],
                                                       group[end_momentum], pct))
        return lrs


def _per_group(name: str, value, groups: int) -> list[float]:
    """One value per parameter group from a scalar or a list of ``groups`` values."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * groups
    if len(values) != groups:
        raise ValueError(f"expected {groups} values for {name}, got {len(values)}")
    for v in values:
        check_real(name, v)
    return [float(v) for v in values]
