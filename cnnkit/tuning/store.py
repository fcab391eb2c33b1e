"""The per-user cache of measured constants: one JSON file per CPU and cnnkit version.

    $XDG_CACHE_HOME/cnnkit/tuning-<cpu name>-<cnnkit version>.json   (default ~/.cache/cnnkit/)

    {"format": 1, "cpu": "znver4", "version": "0.1.0", "values": {"rows_overhead_ns": 9500.0}}

The CPU name is the compilation target's (``cnnkit.cpu.host().name``, which honours
``NUMBA_CPU_NAME``), so measurements of one CPU are never applied to another, and a new cnnkit
version starts again from its defaults. The file may be hostile: ``read`` checks its size,
structure, key, and every value's type and range before using any of it.
"""
import json
import math
import os
import re

from ..io.atomic import atomic_write_text
from .constants import CONSTANTS

FORMAT = 1
MAX_BYTES = 64 << 10  # the file holds a few dozen numbers


class InvalidCache(ValueError):
    """The cache file is unreadable, malformed, for another CPU or version, or out of range."""


def cache_dir(environ=os.environ):
    """$XDG_CACHE_HOME/cnnkit, or ~/.cache/cnnkit."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cnnkit")


def cache_path(cpu, version, environ=os.environ):
    """The cache file for this CPU name and cnnkit version (both kept file-name safe)."""
    def safe(text):
        return re.sub(r"[^A-Za-z0-9._-]", "_", str(text)) or "unknown"
    return os.path.join(cache_dir(environ), f"tuning-{safe(cpu)}-{safe(version)}.json")


def check_value(name, value):
    """``value`` as the constant's type, or InvalidCache/ValueError naming the constant."""
    constant = CONSTANTS.get(name)
    if constant is None:
        raise InvalidCache(f"unknown constant {name!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidCache(f"{name}: expected a finite number, got {value!r}")
    if constant.integer and value != int(value):
        raise InvalidCache(f"{name}: expected an integer, got {value!r}")
    if not constant.low <= value <= constant.high:
        raise InvalidCache(f"{name}: {value!r} outside [{constant.low}, {constant.high}]")
    return int(value) if constant.integer else float(value)


def read(path, cpu, version):
    """The measured values in ``path`` (name -> number), checked; InvalidCache otherwise."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as err:
        raise InvalidCache(f"cannot read: {err.strerror or err}") from None
    if len(data) > MAX_BYTES:
        raise InvalidCache(f"larger than {MAX_BYTES} bytes")
    try:
        content = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise InvalidCache(f"not JSON ({err})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise InvalidCache(f"not a format-{FORMAT} tuning file")
    if content.get("cpu") != cpu or content.get("version") != version:
        raise InvalidCache(f"made for cpu {content.get('cpu')!r}, cnnkit "
                           f"{content.get('version')!r}, not {cpu!r}, {version!r}")
    values = content.get("values")
    if not isinstance(values, dict):
        raise InvalidCache("'values' is not an object")
    return {name: check_value(name, value) for name, value in values.items()}


def write(path, values, cpu, version):
    """Save ``values`` (name -> number, checked) atomically; returns the path."""
    checked = {name: check_value(name, value) for name, value in values.items()}
    text = json.dumps({"format": FORMAT, "cpu": cpu, "version": version, "values": checked},
                      indent=1, sort_keys=True)
    atomic_write_text(path, text + "\n")
    return path
