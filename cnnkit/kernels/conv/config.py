"""Which algorithm to force and whether to autotune: context-local settings, not globals.

Settings live in ``contextvars``: a ``with using(...)`` block changes them for the code it runs
(its thread or asyncio task) and restores them on exit, so two threads can force different
algorithms at once. A new thread starts from the defaults (heuristic, no autotune).
"""
import contextlib
import contextvars
import types

from .registry import ALGORITHMS, PASSES

_algorithm = contextvars.ContextVar("cnnkit_conv_algorithm", default=None)
_autotune = contextvars.ContextVar("cnnkit_conv_autotune", default=False)
_KEEP = object()


def _checked(algorithm):
    """None, a name, or {pass name: name} (the passes not named go by the heuristic)."""
    if algorithm is None or (isinstance(algorithm, str) and algorithm in ALGORITHMS):
        return algorithm
    if isinstance(algorithm, dict):
        if not algorithm:
            return None  # no pass forced
        for pass_name, name in algorithm.items():
            if pass_name not in PASSES or name not in ALGORITHMS:
                break
        else:
            return types.MappingProxyType(dict(algorithm))
    raise ValueError(f"algorithm: expected None, one of {ALGORITHMS} or a dict from "
                     f"{PASSES} to those, got {algorithm!r}")


@contextlib.contextmanager
def using(algorithm=_KEEP, autotune=_KEEP):
    """Within the block: ``algorithm`` forced (a name, {pass: name}, or None for the
    heuristic), and/or ``autotune`` on or off. A forced algorithm that does not apply to a
    call raises ``NotApplicable``.

        with cnnkit.kernels.conv.using(algorithm="implicit"):
            y = F.conv2d(x, w)
    """
    tokens = []
    if algorithm is not _KEEP:
        tokens.append((_algorithm, _algorithm.set(_checked(algorithm))))
    if autotune is not _KEEP:
        tokens.append((_autotune, _autotune.set(bool(autotune))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def force_algorithm(name):
    """Force ``name`` (or {pass: name}; None restores the heuristic) from now on in this
    thread or task — the unscoped form of ``using(algorithm=name)``, for scripts and old
    callers; prefer the ``with`` block, which restores the setting."""
    _algorithm.set(_checked(name))


def set_autotune(enabled=True):
    """Measure instead of guessing, from now on in this thread or task (the unscoped form of
    ``using(autotune=...)``), and forget earlier measurements (see ``autotune``)."""
    from . import autotune
    _autotune.set(bool(enabled))
    autotune.clear()


def forced(pass_name):
    """The algorithm forced for this pass, or None."""
    setting = _algorithm.get()
    if setting is None or isinstance(setting, str):
        return setting
    return setting.get(pass_name)


def anything_forced():
    return _algorithm.get() is not None


def autotune_enabled():
    return _autotune.get()
