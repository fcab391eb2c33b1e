"""Arrays + JSON metadata in one safetensors file, written atomically and verified on load.

Why safetensors: the format is a JSON header followed by raw little-endian array bytes, so loading
a file can never run code (unlike pickle) and any tool that speaks safetensors can read cnnkit's
weights. On disk::

    8 bytes   little-endian u64: header length n
    n bytes   JSON header: {"__metadata__": {str: str}, name: {dtype, shape, data_offsets}, ...}
    ...       the arrays' bytes

safetensors' own metadata is a flat ``{str: str}`` map; cnnkit stores three entries in it:
``format = "cnnkit"``, ``cnnkit`` = the caller's metadata as JSON, and ``sha256`` = a digest of
that JSON and of every array (name, dtype, shape, bytes), so a flipped byte anywhere in the file is
caught on load, not only a broken header. Every failure is a ``ValueError`` naming the file, and
nothing is returned unless the whole file checked out.

Writes go to a temporary file in the same directory, are flushed to disk, then ``os.replace``d
over the target: a crash mid-write leaves the old file intact, never a half-written one.
"""
from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import safetensors.numpy

from .atomic import atomic_write_bytes, atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_text", "load_file", "save_file"]

FORMAT = "cnnkit"
# JSON nesting deeper than this is refused before parsing: Python's json recurses per level, so a
# crafted header of 100,000 "[" raised RecursionError. cnnkit's own metadata nests 6 deep.
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
# dtype kinds safetensors stores: bool, signed/unsigned ints, floats.
_STORABLE_KINDS = "biuf"


def _checked_tensors(tensors) -> dict:
    """Validate ``tensors`` and return C-contiguous little-endian copies safetensors accepts."""
    if not isinstance(tensors, dict):
        raise TypeError(f"tensors: expected a dict of str -> ndarray, got {type(tensors).__name__}")
    out = {}
    for name, array in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"tensors: names must be non-empty strings other than "
                             f"'__metadata__', got {name!r}")
        if not isinstance(array, np.ndarray):
            raise TypeError(f"tensors[{name!r}]: expected an ndarray, got {type(array).__name__}")
        if array.dtype.kind not in _STORABLE_KINDS:
            raise TypeError(f"tensors[{name!r}]: dtype {array.dtype} cannot be stored in "
                            "safetensors (bool, int, uint or float only)")
        # astype(order="C") rather than ascontiguousarray, which would turn 0-d arrays into 1-d.
        out[name] = array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)
    return out


def _digest(tensors: dict, metadata_json: str) -> str:
    h = hashlib.sha256(metadata_json.encode("utf-8"))
    for name in sorted(tensors):
        array = tensors[name]
        h.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def save_file(path, tensors: dict, metadata=None) -> None:
    """Save named arrays and JSON-able ``metadata`` to ``path`` (atomically).

    Parameters
    ----------
    path : str or os.PathLike
    tensors : dict of str -> ndarray (bool, int, uint or float; any shape)
    metadata : JSON-able object (dicts, lists, str, int, float, bool, None) or None

    Raises TypeError/ValueError before writing anything if an argument cannot be stored.
    """
    arrays = _checked_tensors(tensors)
    try:
        metadata_json = json.dumps(metadata, allow_nan=True, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise TypeError(f"metadata: must be JSON-serialisable ({err})") from err
    header = {"format": FORMAT, FORMAT: metadata_json, "sha256": _digest(arrays, metadata_json)}
    atomic_write_bytes(path, safetensors.numpy.save(arrays, metadata=header))


def json_depth(text) -> int:
    """The deepest nesting of ``[``/``{`` in JSON ``text`` (str or bytes), strings ignored."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    codes = np.frombuffer(_JSON_STRING.sub(b'""', raw), dtype=np.uint8)
    steps = (np.isin(codes, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(codes, (ord("]"), ord("}"))))
    return int(np.cumsum(steps).max(initial=0))


def _parse_json(path: str, text, what: str):
    """``json.loads(text)``, refusing nesting beyond ``MAX_JSON_DEPTH``; ValueError naming
    ``path``."""
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{path}: {what} nests {depth} levels deep (at most {MAX_JSON_DEPTH} "
                         "are read)")
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: corrupt {what} ({err})") from err


def _read_header(path: str, f) -> tuple[dict, bytes]:
    """The JSON header of the safetensors file open as ``f`` (at its start), read and checked
    before any of the arrays' bytes are: (header, the bytes read so far). ValueError naming
    ``path`` if it is malformed."""
    size = os.fstat(f.fileno()).st_size
    prefix = f.read(8)
    if len(prefix) < 8:
        raise ValueError(f"{path}: not a safetensors file (only {len(prefix)} bytes; "
                         "truncated?)")
    n = int.from_bytes(prefix, "little")
    if n > size - 8:
        raise ValueError(f"{path}: not a valid safetensors file (header length {n} exceeds the "
                         f"file's {size} bytes; truncated or not safetensors)")
    text = f.read(n)
    header = _parse_json(path, text, "safetensors header")
    if not isinstance(header, dict):
        raise ValueError(f"{path}: corrupt safetensors header (not a JSON object)")
    return header, prefix + text


def load_file(path) -> tuple[dict, object]:
    """Load what ``save_file`` wrote: ``(tensors, metadata)``.

    Returns
    -------
    tensors : dict of str -> ndarray (writable copies)
    metadata : the JSON metadata given to ``save_file``

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated, has a malformed header, was not written by cnnkit, or fails its
        checksum. The message starts with the file's path.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        header, head = _read_header(path, f)
        info = header.get("__metadata__") or {}
        if not isinstance(info, dict) or info.get("format") != FORMAT or FORMAT not in info:
            raise ValueError(f"{path}: a safetensors file, but not one written by cnnkit (its "
                             "metadata lacks format='cnnkit')")
        data = head + f.read()  # the arrays, read once the header checked out
    try:
        tensors = safetensors.numpy.load(data)
    except Exception as err:  # safetensors raises its own SafetensorError for every defect
        raise ValueError(f"{path}: corrupt or truncated safetensors file ({err})") from err
    metadata_json = info[FORMAT]
    if _digest(tensors, metadata_json) != info.get("sha256"):
        raise ValueError(f"{path}: checksum mismatch: the file is corrupt (its bytes changed "
                         "after it was written)")
    if not isinstance(metadata_json, str):
        raise ValueError(f"{path}: corrupt metadata (not a JSON string)")
    metadata = _parse_json(path, metadata_json, "metadata")
    return {name: np.array(array) for name, array in tensors.items()}, metadata
