"""Measured algorithm choices, like ``torch.backends.cudnn.benchmark``.

With autotune on (``using(autotune=True)`` or ``set_autotune(True)``), the first forward call
of each layer shape times every algorithm that applies, on the real inputs, for each of the
three passes (forward, input gradient, weight gradient), and keeps the fastest per pass for
that shape. Costs one slow first call per shape; pays off when the same shapes repeat, as in
training. (Timing the forward pass alone picked, for the default model's 14×14 layer, an
algorithm whose backward passes made the training step slower than the heuristic's.)

The table is shared by all threads (measurements are facts about the machine) behind a lock.
"""
import math
import threading

from ...tuning.calibrate import best_ns
from ..finite import NotFinite
from .registry import PASSES, REGISTRY, applicable

_table = {}  # ConvGeometry -> {pass name: algorithm measured fastest}
_lock = threading.Lock()


def clear():
    with _lock:
        _table.clear()


def measured():
    """A copy of the table: {ConvGeometry: {pass name: algorithm}}."""
    with _lock:
        return {g: dict(choice) for g, choice in _table.items()}


def lookup(geometry, pass_name):
    """The algorithm measured fastest for this pass, or None if the shape was not measured."""
    with _lock:
        choice = _table.get(geometry)
    return None if choice is None else choice.get(pass_name)


def ensure(geometry, xp, w):
    """Measure this shape's three passes unless already measured.

    xp (N, C, *padded), w (K, C/G, *kernel): the call's own arrays. Two threads may measure
    the same new shape at once; the first result stored stays. The choice is made for finite
    data: ``select`` skips it for a call whose operands it needs finite and are not (and an
    algorithm that checks them itself refuses such data here: ``finite.NotFinite``)."""
    with _lock:
        if geometry in _table:
            return
    dy = REGISTRY["gemm"].forward_pass(xp, w, geometry)  # an output-shaped gradient
    runs = {"forward": lambda module: module.forward_pass(xp, w, geometry),
            "input": lambda module: module.input_pass(dy, w, geometry),
            "weight": lambda module: module.weight_pass(xp, dy, geometry)}
    choice = {}
    for pass_name in PASSES:
        timings = {name: _timed(lambda: runs[pass_name](REGISTRY[name]))
                   for name in applicable(geometry, pass_name)}
        choice[pass_name] = min(timings, key=timings.get)
    with _lock:
        _table.setdefault(geometry, choice)


def _timed(run):
    try:
        return best_ns(run)
    except NotFinite:
        return math.inf
