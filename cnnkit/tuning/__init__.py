"""The kernels' thresholds and cost constants, in one place (the table: ``constants.py``).

Kernels read a constant by name, ``tuning.value("rows_overhead_ns")``: a context-local
override first (``override``, for tests and experiments), then this machine's measured value,
then the default. The measured values come from a per-user cache file written by
``cnnkit tune`` (or ``python -m cnnkit.bench --calibrate``), read once per process
(``store.py`` has the format, path and checks). ``CNNKIT_TUNING`` changes where they come from:

    CNNKIT_TUNING=off          defaults only (no cache file is read)
    CNNKIT_TUNING=/some/file   that file instead of the per-user cache (same format and checks)

A cache file that is corrupt, for another CPU or cnnkit version, or holds a value of the wrong
type or out of range is ignored as a whole, with a warning.
"""
import contextlib
import contextvars
import functools
import os
import threading
import warnings

import numba

from . import store
from .constants import CONSTANTS, Constant

__all__ = ["CONSTANTS", "Constant", "cache_file", "defaults", "kept", "override", "reload",
           "save", "source", "state", "value", "values"]

# The overridden values (name -> number) and the same as a sorted tuple, for ``state``.
_overrides = contextvars.ContextVar("cnnkit_tuning_overrides", default=({}, ()))
_lock = threading.Lock()
_loads = 0  # how often the measured values were forgotten (``reload``), for ``state``
_read = None  # (values, source) once read (``_loaded``); ``value`` then reads without the lock


def defaults():
    """name -> default value of every constant."""
    return {name: c.default for name, c in CONSTANTS.items()}


def _key():
    """(cpu name, cnnkit version): what a cache file must have been measured for."""
    from .. import __version__
    from ..cpu import host
    return host().name, __version__


def cache_file():
    """The file measured values are read from and saved to, or None with CNNKIT_TUNING=off."""
    setting = os.environ.get("CNNKIT_TUNING", "")
    if setting.lower() == "off":
        return None
    return setting or store.cache_path(*_key())


def _loaded():
    """(values: name -> number, source: a description), read once per process (until
    ``reload``). Callers hold the lock."""
    global _read
    if _read is None:
        _read = _read_values()
    return _read


def _read_values():
    path = cache_file()
    if path is None:
        return defaults(), "defaults (CNNKIT_TUNING=off)"
    if not os.path.exists(path):
        return defaults(), "defaults (no measurements saved)"
    try:
        measured = store.read(path, *_key())
    except store.InvalidCache as err:
        warnings.warn(f"cnnkit: ignoring the tuning cache {path}: {err}", RuntimeWarning,
                      stacklevel=4)
        return defaults(), "defaults (cache ignored)"
    return {**defaults(), **measured}, path


def value(name):
    """The current value of constant ``name`` (see the module docstring for the order)."""
    overrides = _overrides.get()[0]
    if name in overrides:
        return overrides[name]
    read = _read
    if read is None:
        with _lock:
            read = _loaded()
    return read[0][name]


def state():
    """A hashable token that differs whenever a value may: after each ``reload`` (``save``
    makes one) and inside each ``override`` block of other values. What is computed from the
    values alone may be kept under it (``kernels.conv.registry.heuristic``)."""
    return _loads, _overrides.get()[1]


def kept(function=None, *, threads=False, maxsize=4096):
    """Decorate a decision that reads nothing but its (hashable) arguments, the values here
    and the CPU, and with ``threads`` Numba's thread count too: its answers are kept per
    ``state()`` (and thread count) and given again, the ``maxsize`` most recent. The kernels
    ask such questions on every call of a layer (which orientation, how many tasks, how many
    taps a pass), and asked afresh they cost a small layer's call as much as its arithmetic.
    Arguments that cannot be hashed are answered afresh."""
    if function is None:
        return functools.partial(kept, threads=threads, maxsize=maxsize)
    remembered = functools.lru_cache(maxsize=maxsize)(
        lambda _state, _threads, args, keywords: function(*args, **dict(keywords)))

    @functools.wraps(function)
    def answer(*args, **keywords):
        try:
            return remembered(state(), numba.get_num_threads() if threads else 0, args,
                              tuple(sorted(keywords.items())))
        except TypeError:  # an unhashable argument (or the decision's own error, raised again)
            return function(*args, **keywords)
    return answer


def values():
    """name -> current value of every constant."""
    return {name: value(name) for name in CONSTANTS}


def source():
    """Where the values come from: 'defaults (...)' or the cache file's path."""
    with _lock:
        return _loaded()[1]


def reload():
    """Forget the values read, so the next ``value`` reads the cache file again."""
    global _read, _loads
    with _lock:
        _read = None
        _loads += 1


@contextlib.contextmanager
def override(**new_values):
    """Within the block (this thread or task only), use these values, e.g.
    ``with tuning.override(compiled_min_size=0):``. Names and ranges are checked."""
    for name, number in new_values.items():
        if name not in CONSTANTS:
            raise ValueError(f"override: unknown constant {name!r}")
        store.check_value(name, number)
    merged = {**_overrides.get()[0], **new_values}
    token = _overrides.set((merged, tuple(sorted(merged.items()))))
    try:
        yield
    finally:
        _overrides.reset(token)


def save(measured, path=None):
    """Save measured values (name -> number) for this CPU and version, atomically, keeping the
    other values already saved; returns the path. Later reads in this process see them."""
    path = path or cache_file() or store.cache_path(*_key())
    previous = {}
    if os.path.exists(path):
        try:
            previous = store.read(path, *_key())
        except store.InvalidCache:
            previous = {}
    store.write(path, {**previous, **measured}, *_key())
    reload()
    return path
