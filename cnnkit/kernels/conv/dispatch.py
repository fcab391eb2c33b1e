"""The three convolution passes on plain ndarrays, each run by the algorithm ``select`` picks.

inf and NaN land as docs/ieee.md says, quietly, as in PyTorch: NumPy's products inside an
algorithm (gemm's, fft's, winograd's) would warn of 0·inf or inf − inf, whatever the caller's
``np.errstate``.
"""
import numpy as np

from ... import tuning
from . import autotune, config
from .geometry import ConvGeometry
from .registry import (REGISTRY, NotApplicable, applies, check_pass, checks_finite, heuristic,
                       needs_finite)
from .padded_input import PaddedInput
from ..bias_numba import add_bias, bias_grad
from ..finite import NotFinite, all_finite

_quiet = np.errstate(all="ignore")  # a decorator: NumPy >= 2 keeps the state per call
KEPT_PLANS = 256  # forward plans kept (each holds a kernel's small tables: ``forward_plan``)


def select(geometry, pass_name, nonfinite=frozenset()):
    """The algorithm that runs this pass ("forward", "input" or "weight") of this call: the
    forced one (``using``), else the measured one (autotune), else the heuristic's.

    ``nonfinite`` names the pass's operands ("x", "w", "dy") known to hold an inf or NaN;
    the algorithms that need them finite (``registry.NEEDS_FINITE``) do not apply. Raises
    NotApplicable when a forced algorithm does not apply.
    """
    check_pass(pass_name)
    name = config.forced(pass_name)
    if name is not None:
        if not applies(name, geometry, pass_name, nonfinite):
            raise NotApplicable(name, geometry, pass_name, nonfinite)
        return name
    if config.autotune_enabled():
        name = autotune.lookup(geometry, pass_name)
        if name is not None and applies(name, geometry, pass_name, nonfinite):
            return name
    return heuristic(geometry, pass_name, nonfinite)


def _run(geometry, pass_name, operands, finite, call):
    """``call(module)`` for the algorithm chosen for this pass, with the operands' finiteness
    looked at only where the choice depends on it: the algorithm chosen for finite data runs
    unless it needs an operand finite that is not (one pass over that operand,
    ``finite.all_finite``), and then the choice is made again. An operand the algorithm checks
    itself as it reads it (``registry.checks_finite``) gets no such pass: the algorithm raises
    ``NotFinite`` instead, and the choice is made again, knowing it.

    operands : {"x" | "w" | "dy": ndarray} of this pass
    finite : {operand: bool} already known (a dict the caller may share between the passes of
             one step: each operand is then checked at most once), or None
    """
    finite = {} if finite is None else finite
    while True:
        nonfinite = frozenset(op for op in operands if finite.get(op) is False)
        name = select(geometry, pass_name, nonfinite)
        itself = needed = needs_finite(name, pass_name, geometry)
        if needed:
            itself = checks_finite(name, pass_name, geometry)
            if not _known_finite(needed - itself, operands, finite):
                continue
        try:
            result = call(REGISTRY[name])
        except NotFinite as found:
            if found.operand not in itself or finite.get(found.operand) is False:
                raise  # an algorithm's own error, which choosing again would not mend
            finite[found.operand] = False
            continue
        for op in itself:
            finite[op] = True
        return result


def _known_finite(needed, operands, finite):
    """Whether the ``needed`` operands are finite: known already, or found by one pass over
    each unknown one (``finite.all_finite``), noted in ``finite``."""
    unknown = [op for op in needed if op not in finite]
    for op in sorted(unknown, key=lambda op: operands[op].size):  # small ones first:
        finite[op] = all_finite(operands[op])  # one that fails may spare the others
        if not finite[op]:
            return False
    return all(finite[op] for op in needed)


def _as_input(x, pads):
    return x if isinstance(x, PaddedInput) else PaddedInput(x, pads)


@tuning.kept(threads=True, maxsize=KEPT_PLANS)
def forward_plan(geometry, pad_widths):
    """The heuristic's forward pass for this geometry planned once, where its algorithm can
    (its module's ``forward_plan(geometry)``: plan(source, w, bias) -> y + bias, every
    decision and table that reads only the shapes, the tuning values, the CPU and the thread
    count made beforehand), else None. Only where the pick cannot depend on the data: no
    forced algorithm, no autotune, and an algorithm that needs no operand finite (one that
    does is picked again for an x or w holding inf or NaN, ``_run``). ``pad_widths``: the
    heuristic's answers depend on the padding, which the geometry's hash leaves out."""
    name = heuristic(geometry, "forward")
    module = REGISTRY[name]
    if needs_finite(name, "forward", geometry) or not hasattr(module, "forward_plan"):
        return None
    return module.forward_plan(geometry)


@_quiet
def conv_forward(x, w, stride, dilation, groups=1, pads=None, finite=None, bias=None):
    """Cross-correlation of an input with a bank of kernels, plus a bias.

    x  : ndarray of shape (N, C, *spatial) — already padded, or to be zero-padded by ``pads``
         (one (lo, hi) pair per spatial dim); or a ``PaddedInput``, which the weight
         gradient can be given too, so that the padding is made at most once
    w  : ndarray of shape (K, C // groups, *kernel);  bias : ndarray of shape (K,), or None
    finite : None, or a {"x" | "w" | "dy": bool} dict shared by the passes of one step, where
             each pass notes what it learnt of its operands' finiteness (``_run``)
    Returns y : ndarray of shape (N, K, *out), out = floor((padded − d·(k−1) − 1)/s) + 1
    """
    source = _as_input(x, pads)
    if bias is not None and bias.shape != w.shape[:1]:
        raise ValueError(f"bias must have shape ({w.shape[0]},) for w {w.shape}, got "
                         f"{bias.shape}")
    g = ConvGeometry.of(source.padded_shape, w.shape, stride, dilation, groups, source.data.dtype,
                        source.pads)
    if not (config.anything_forced() or config.autotune_enabled()):
        plan = forward_plan(g, g.pad_widths)
        if plan is not None:
            return plan(source, w, bias)
    finite = {} if finite is None else finite
    if config.autotune_enabled() and not config.anything_forced() and g.batch:
        autotune.ensure(g, source.padded(finite), w)

    def forward(module):
        if hasattr(module, "forward_from"):
            return module.forward_from(source, w, g, bias)
        y = module.forward_pass(source.padded(finite), w, g)
        if bias is not None:
            add_bias(y, bias)
        return y
    return _run(g, "forward", {"x": source.data, "w": w}, finite, forward)


@_quiet
def conv_backward_input(dy, w, spatial, stride, dilation, groups=1, pads=None, finite=None):
    """dL/dx of ``conv_forward``: the transposed convolution of ``dy`` with ``w``.

    dy : ndarray of shape (N, K, *out);  w : ndarray of shape (K, C // groups, *kernel)
    spatial : the padded input's spatial shape.  finite : as for ``conv_forward``.
    Returns ndarray of shape (N, C, *spatial), or with ``pads`` the gradient of the input
    inside the zero padding, (N, C, *(spatial − lo − hi)).

    Winograd and implicit compute just the inside (they pad dy less), rows too (it reads dy
    unpadded, with the offsets of the inside); the others compute the whole padded gradient
    and crop it. (Compiled kernels that skipped the padding cells by bounds tests in their
    inner loops measured slower than the crop: the tests stop LLVM from vectorising.)
    """
    if dy.ndim != w.ndim or dy.shape[1] != w.shape[0]:
        raise ValueError(f"dy {dy.shape} must be (N, K, *out) for w {w.shape} (K = w.shape[0])")
    x_shape = (dy.shape[0], w.shape[1] * groups) + tuple(spatial)
    g = ConvGeometry.of(x_shape, w.shape, stride, dilation, groups, dy.dtype, pads,
                        out=dy.shape[2:])
    return _run(g, "input", {"dy": dy, "w": w}, finite,
                lambda module: module.input_pass(dy, w, g))


@_quiet
def conv_backward_weight(x, dy, kernel, stride, dilation, groups=1, pads=None, finite=None,
                         with_bias=False):
    """dL/dw of ``conv_forward``: the correlation of the input with ``dy``.

    x : as for ``conv_forward`` (padded, or ``pads``; or a ``PaddedInput``)
    dy : ndarray of shape (N, K, *out);  finite : as for ``conv_forward``
    Returns ndarray of shape (K, C // groups, *kernel); with ``with_bias``, the pair
    (dL/dw, dL/db), db = Σ over images and positions of dy, which an algorithm that reads all
    of dy anyway sums on the way.
    """
    source = _as_input(x, pads)
    if dy.ndim != source.data.ndim or dy.shape[0] != source.data.shape[0]:
        raise ValueError(f"dy {dy.shape} must be (N, K, *out) for x {source.data.shape} (the "
                         f"same N and number of dims)")
    w_shape = (dy.shape[1], source.data.shape[1] // groups) + tuple(kernel)
    g = ConvGeometry.of(source.padded_shape, w_shape, stride, dilation, groups, dy.dtype,
                        source.pads, out=dy.shape[2:])
    finite = {} if finite is None else finite

    def weight(module):
        if hasattr(module, "weight_from"):
            return module.weight_from(source, dy, g, with_bias)
        return module.weight_pass(source.padded(finite), dy, g), None
    dw, db = _run(g, "weight", {"x": source.data, "dy": dy}, finite, weight)
    if not with_bias:
        return dw
    return dw, (bias_grad(dy) if db is None else db)


__all__ = ["NotApplicable", "PaddedInput", "conv_backward_input", "conv_backward_weight",
           "conv_forward", "select"]
