"""``Optimizer``: the base class that owns parameter groups, per-parameter state and checkpoints.

The layout is PyTorch's. ``param_groups`` is a list of dicts, each holding ``'params'`` (a list of
Parameters) and that group's hyperparameters. ``state`` maps a Parameter to a dict of its
running buffers (momentum, Adam's moments, step count). A subclass fills in ``_validate_group``
(check one group's hyperparameters) and ``_update_group`` (apply one step to one group).

Checkpoints never pickle. ``state_dict()`` is PyTorch's structure built from ndarrays and plain
numbers; ``flatten_state_dict`` splits it into ``{name: ndarray}`` (for a safetensors file) and a
JSON-able metadata dict (for everything else), and ``unflatten_state_dict`` puts it back together.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..tensor import Tensor, enable_grad

STATE_DICT_FORMAT = "cnnkit.optim.state_dict/1"


class Optimizer:
    """Base class of all optimizers.

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        The parameters to optimize, or parameter groups: dicts with a ``'params'`` entry and any
        hyperparameters that override ``defaults`` for that group.
    defaults : dict
        Hyperparameters used by groups that do not set them.
    """

    def __init__(self, params, defaults: dict):
        if isinstance(params, (Tensor, np.ndarray, dict)):
            raise TypeError(
                "params must be an iterable of Parameters or of param-group dicts, got "
                f"{type(params).__name__}")
        self.defaults = dict(defaults)
        self.state: dict = {}  # Parameter -> {buffer name: ndarray or number}
        self.param_groups: list[dict] = []
        groups = list(params)
        if not groups:
            raise ValueError("params: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {value}" for key, value in sorted(group.items())
                      if key != "params"]
        return "\n".join(lines) + "\n)"

    # -- parameter groups ---------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Append ``{'params': [...], **hyperparameters}``; missing ones come from ``defaults``."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            # A set's order changes between runs, and state_dict refers to parameters by position.
            raise TypeError("param_group['params'] must be an ordered collection (list or tuple), "
                            "not a set")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if p.dtype.kind != "f":
                raise TypeError(f"optimizer can only optimize floating-point Tensors, got dtype "
                                f"{p.dtype}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor (it is the output of an op)")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("param_group['params'] lists the same parameter more than once")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group = {**self.defaults, **param_group, "params": params}
        self._validate_group(group)
        self.param_groups.append(group)

    def _validate_group(self, group: dict) -> None:
        """Raise ValueError/TypeError if a hyperparameter of ``group`` is out of range."""

    # -- the update ---------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (default) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient; return ``closure()`` if one is given.

        ``closure`` re-evaluates the model and returns the loss (it should call ``backward``).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and np.shape(p.grad) != p.shape:
                    raise ValueError(f"a parameter of shape {p.shape} has a gradient of shape "
                                     f"{np.shape(p.grad)}")
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group: dict) -> None:
        raise NotImplementedError

    @staticmethod
    def _gradient(p: Tensor, maximize: bool) -> np.ndarray:
        """``p.grad`` in ``p``'s dtype, negated when maximizing (never modified in place)."""
        grad = np.asarray(p.grad, dtype=p.dtype)
        return -grad if maximize else grad

    # -- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer's state, with parameters replaced by their position across all groups.

        Returns
        -------
        dict
            ``{'state': {index: {name: ndarray or number}}, 'param_groups': [{**hyperparameters,
            'params': [index, ...]}]}``, as in PyTorch. Arrays are copies, so later steps do not
            change a dict taken earlier (PyTorch hands out references instead).
        """
        index_of = {}
        param_groups = []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = [index_of.setdefault(id(p), len(index_of)) for p in group["params"]]
            param_groups.append(packed)
        state = {}
        for p, entries in self.state.items():
            state[index_of[id(p)]] = {name: value.copy() if isinstance(value, np.ndarray) else value
                                      for name, value in entries.items()}
        return {"state": dict(sorted(state.items())), "param_groups": param_groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore state and hyperparameters saved by ``state_dict`` (checked before any change).

        Parameters are matched by position, so the optimizer must have been built with the same
        group sizes. Floating-point buffers are copied and cast to their parameter's dtype.
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("state_dict must be a dict with exactly the keys 'state' and "
                             "'param_groups'")
        saved_groups = state_dict["param_groups"]
        if not isinstance(saved_groups, (list, tuple)):
            raise TypeError("state_dict['param_groups'] must be a list of dicts")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(saved_groups)} parameter groups, the optimizer "
                             f"has {len(self.param_groups)}")
        param_of, group_of = {}, {}
        new_groups = []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if not isinstance(saved, dict) or len(saved.get("params", ())) != len(group["params"]):
                raise ValueError(f"state_dict param_groups[{i}] does not have the "
                                 f"{len(group['params'])} parameters of the optimizer's group {i}")
            missing = set(self.defaults) - set(saved)
            if missing:
                raise ValueError(f"state_dict param_groups[{i}] lacks hyperparameters "
                                 f"{sorted(missing)}")
            param_of.update(zip(saved["params"], group["params"]))
            new_group = {**saved, "params": group["params"]}
            self._validate_group(new_group)
            new_groups.append(new_group)
            group_of.update(dict.fromkeys(saved["params"], new_group))
        if not isinstance(state_dict["state"], dict):
            raise TypeError("state_dict['state'] must be a dict {param_index: {name: value}}")
        new_state = {}
        for index, entries in state_dict["state"].items():
            if not isinstance(entries, dict):
                raise TypeError(f"state_dict['state'][{index!r}] must be a dict, got "
                                f"{type(entries).__name__}")
            if index not in param_of:
                raise ValueError(f"state_dict['state'] has an entry for parameter {index!r}, "
                                 "which no parameter group lists")
            p = param_of[index]
            self._check_state_entry(entries, self.state_entries(group_of[index]),
                                    f"state_dict['state'][{index}]")
            new_state[p] = {}
            for name, value in entries.items():
                if isinstance(value, np.ndarray):
                    if value.shape != p.shape:
                        raise ValueError(f"state_dict['state'][{index}][{name!r}] has shape "
                                         f"{value.shape}, its parameter has shape {p.shape}")
                    value = value.astype(p.dtype if value.dtype.kind == "f" else value.dtype)
                elif not _is_number(value):
                    raise TypeError(f"state_dict['state'][{index}][{name!r}] must be an ndarray "
                                    f"or a number, got {type(value).__name__}")
                new_state[p][name] = value
        self.param_groups = new_groups
        self.state = new_state

    def state_entries(self, group: dict):
        """The per-parameter state one step leaves for a parameter of ``group``: a dict name ->
        "array" (the parameter's shape) or "count" (an int >= 0); None if not declared. A saved
        entry must be empty (no step yet) or hold exactly these, or ``step`` would fail later."""
        return None

    @staticmethod
    def _check_state_entry(entries: dict, expected, where: str) -> None:
        if expected is None or not entries:
            return
        if set(entries) != set(expected):
            raise ValueError(f"{where} holds {sorted(entries)}, expected {sorted(expected)}")
        for name, kind in expected.items():
            value = entries[name]
            if kind == "count" and (isinstance(value, (bool, np.bool_)) or not isinstance(
                    value, (numbers.Integral, np.integer)) or value < 0):
                raise ValueError(f"{where}[{name!r}] must be an int >= 0, got {value!r}")
            if kind == "array" and not (isinstance(value, np.ndarray)
                                        and value.dtype.kind == "f"):
                raise ValueError(f"{where}[{name!r}] must be a float array, got "
                                 f"{type(value).__name__}")


def check_real(name: str, value, minimum: float = 0.0, below: float | None = None) -> None:
    """Raise unless ``value`` is a real number with ``minimum <= value`` (``< below`` if given)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if below is None and not minimum <= value:  # written so that NaN fails too
        raise ValueError(f"Invalid {name}: expected {name} >= {minimum}, got {value}")
    if below is not None and not minimum <= value < below:
        raise ValueError(f"Invalid {name}: expected {minimum} <= {name} < {below}, got {value}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _is_number(value) -> bool:
    return isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, np.ndarray)


def _json_value(value, where: str):
    """``value`` as plain JSON types: numbers, bools, strings, None, and lists of those."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(item, where) for item in value]
    raise TypeError(f"{where} must be a number, bool, string, None or a list of those, got "
                    f"{type(value).__name__}")


def flatten_state_dict(state_dict: dict) -> tuple[dict, dict]:
    """Split an optimizer ``state_dict`` into arrays and JSON-able metadata.

    Returns
    -------
    tensors : dict of str -> ndarray
        Every array buffer, named ``"state.{param_index}.{buffer_name}"`` (C-contiguous, ready for
        ``safetensors.numpy.save_file``).
    metadata : dict
        ``{'format', 'state': {str(param_index): {name: number}}, 'param_groups': [...]}``, made
        only of JSON types (``json.dumps`` works on it). Tuples such as ``betas`` become lists.
    """
    if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
        raise ValueError("state_dict must be a dict with exactly the keys 'state' and "
                         "'param_groups'")
    tensors, numbers_by_param = {}, {}
    for index, entries in state_dict["state"].items():
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"state_dict['state'] keys must be parameter indices (int), got "
                            f"{index!r}")
        scalars = {}
        for name, value in entries.items():
            if not isinstance(name, str):
                raise TypeError(f"state buffer names must be strings, got {name!r}")
            if isinstance(value, np.ndarray):
                tensors[f"state.{int(index)}.{name}"] = np.ascontiguousarray(value)
            else:
                scalars[name] = _json_value(value, f"state_dict['state'][{index}][{name!r}]")
        numbers_by_param[str(int(index))] = scalars  # present even when empty: marks the entry
    param_groups = [{key: _json_value(value, f"param_groups[{i}][{key!r}]")
                     for key, value in group.items()}
                    for i, group in enumerate(state_dict["param_groups"])]
    return tensors, {"format": STATE_DICT_FORMAT, "state": numbers_by_param,
                     "param_groups": param_groups}


def unflatten_state_dict(tensors: dict, metadata: dict) -> dict:
    """Inverse of ``flatten_state_dict``: rebuild the ``state_dict`` from arrays and metadata.

    Lists in the group hyperparameters (other than ``'params'``) come back as tuples, as
    ``betas`` was saved.
    """
    if not isinstance(metadata, dict) or metadata.get("format") != STATE_DICT_FORMAT:
        raise ValueError(f"metadata is not an optimizer state dict (expected format "
                         f"{STATE_DICT_FORMAT!r})")
    if not isinstance(metadata.get("state"), dict) or not all(
            isinstance(index, str) and index.isdigit() and isinstance(scalars, dict)
            for index, scalars in metadata["state"].items()):
        raise ValueError("metadata['state'] must map parameter indices to dicts of numbers")
    if not isinstance(metadata.get("param_groups"), list) or not all(
            isinstance(group, dict) for group in metadata["param_groups"]):
        raise ValueError("metadata['param_groups'] must be a list of dicts")
    state = {int(index): dict(scalars) for index, scalars in metadata["state"].items()}
    for key, array in tensors.items():
        prefix, index, name = (key.split(".", 2) + ["", ""])[:3]
        if prefix != "state" or not index.isdigit() or int(index) not in state or not name:
            raise ValueError(f"tensors: unexpected entry {key!r} (expected 'state.<index>.<name>' "
                             "for an index listed in metadata['state'])")
        state[int(index)][name] = np.asarray(array)
    param_groups = []
    for group in metadata["param_groups"]:
        param_groups.append({key: (list(value) if key == "params" else tuple(value))
                             if isinstance(value, list) else value
                             for key, value in group.items()})
    return {"state": dict(sorted(state.items())), "param_groups": param_groups}
