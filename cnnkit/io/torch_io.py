"""PyTorch weights in and out without pickle: safetensors files with a model's state_dict.

``load_torch(model, path)`` reads what ``safetensors.torch.save_file(torch_model.state_dict(),
path)`` writes; ``save_torch(model, path)`` writes what ``torch_model.load_state_dict(
safetensors.torch.load_file(path))`` accepts. cnnkit's layers use PyTorch's state_dict keys and
shapes (``cnnkit.models``), so the arrays move unchanged.

PyTorch's own ``.pt``/``.pth`` files are pickles: loading one can run arbitrary code, so they are
refused, with the two lines of PyTorch that convert them. The file is parsed here rather than by
``safetensors.numpy`` because NumPy has no bfloat16: a bf16 value is the upper half of a float32,
so ``uint16 << 16`` viewed as float32 is exact. Every header entry is checked (dtype, shape,
byte range) before any array is made.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .atomic import atomic_write_bytes
from .safetensors_io import _read_header

__all__ = ["load_torch", "save_torch", "read_torch_state"]

# safetensors dtype name -> NumPy dtype (little-endian); BF16 is widened to float32 on load.
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
           "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_ACCEPTED_FORMATS = (None, "pt", "np", "cnnkit")
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")
# Older PyTorch checkpoints lack this counter; PyTorch itself tolerates its absence.
_OPTIONAL_KEY_SUFFIX = "num_batches_tracked"

_CONVERT_HINT = (
    "convert it once, where you trust the file, with PyTorch: "
    "import torch, safetensors.torch; "
    "safetensors.torch.save_file(torch.load('{path}', weights_only=True), "
    "'{stem}.safetensors') (for a whole pickled model, save model.state_dict() instead)")


def _pickle_error(path: str) -> ValueError:
    stem = os.path.splitext(path)[0]
    return ValueError(f"{path}: a PyTorch pickle file; cnnkit never unpickles (loading a pickle "
                      "can run arbitrary code). " + _CONVERT_HINT.format(path=path, stem=stem))


def _entry_layout(path: str, name: str, entry, data_bytes: int) -> tuple:
    """(dtype, shape, first byte) of the array header ``entry`` describes, validated against
    the ``data_bytes`` that follow the header, before any of them is read."""
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: tensor {name!r}: malformed header entry")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _DTYPES:
        raise ValueError(f"{path}: tensor {name!r}: unsupported dtype {dtype!r} (supported: "
                         f"{', '.join(_DTYPES)})")
    if not isinstance(shape, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ValueError(f"{path}: tensor {name!r}: malformed shape {shape!r}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(
            isinstance(o, int) and not isinstance(o, bool) for o in offsets):
        raise ValueError(f"{path}: tensor {name!r}: malformed data_offsets {offsets!r}")
    itemsize = np.dtype(_DTYPES[dtype]).itemsize
    lo, hi = offsets
    if not 0 <= lo <= hi <= data_bytes or hi - lo != math.prod(shape) * itemsize:
        raise ValueError(f"{path}: tensor {name!r}: data_offsets {offsets} do not hold a "
                         f"{dtype} array of shape {tuple(shape)} within the file's "
                         f"{data_bytes} data bytes (truncated or corrupt)")
    return dtype, tuple(shape), lo


def _entry_array(data: bytes, layout) -> np.ndarray:
    """The array at ``layout`` (from ``_entry_layout``) in the data bytes ``data``."""
    dtype, shape, lo = layout
    array = np.frombuffer(data, _DTYPES[dtype], math.prod(shape), lo).reshape(shape)
    if dtype == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(array.dtype.newbyteorder("="))  # a writable, native-order copy


def read_torch_state(path) -> dict:
    """The arrays of a PyTorch-style safetensors file: dict of key -> ndarray.

    float16 stays float16 (``load_state_dict`` casts it to the model's dtype); bfloat16 becomes
    float32. Raises FileNotFoundError, or ValueError naming the file for a pickle, a malformed
    or truncated file, or metadata that names a framework with other layouts (e.g. ``tf``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    if path.lower().endswith(_PICKLE_SUFFIXES):
        raise _pickle_error(path)
    with open(path, "rb") as f:
        try:
            header, head = _read_header(path, f)
        except ValueError:
            # torch.save writes a zip archive ("PK") or, in its legacy format, a bare pickle
            # (0x80).
            f.seek(0)
            magic = f.read(2)
            if magic == b"PK" or magic[:1] == b"\x80":
                raise _pickle_error(path) from None
            raise
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or metadata.get("format") not in _ACCEPTED_FORMATS:
            raise ValueError(f"{path}: metadata format {metadata.get('format')!r} is not "
                             "PyTorch's ('pt'); its arrays may use another framework's layouts")
        data_bytes = os.fstat(f.fileno()).st_size - len(head)
        layouts = {name: _entry_layout(path, name, entry, data_bytes)
                   for name, entry in header.items()}
        data = f.read()  # the arrays, read once every entry fits the file
    return {name: _entry_array(data, layout) for name, layout in layouts.items()}


def load_torch(model, path):
    """Load a PyTorch state_dict saved with ``safetensors.torch.save_file`` into ``model``.

    Every key is checked before anything is copied; missing keys (except BatchNorm's
    ``num_batches_tracked``, absent from old checkpoints), unexpected keys and shape mismatches
    are all reported in one ValueError naming the file. Returns ``model``.
    """
    if not hasattr(model, "state_dict") or not hasattr(model, "load_state_dict"):
        raise TypeError(f"model: expected a cnnkit.nn.Module, got {type(model).__name__}")
    path = os.fspath(path)
    state = read_torch_state(path)
    own = model.state_dict()
    problems = []
    missing = [k for k in own if k not in state and not k.endswith(_OPTIONAL_KEY_SUFFIX)]
    unexpected = [k for k in state if k not in own]
    if missing:
        problems.append("missing keys: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    for key, array in state.items():
        if key in own:
            expected = tuple(own[key].shape)
            if tuple(array.shape) != expected and not (expected == () and array.shape == (1,)):
                problems.append(f"{key}: shape {tuple(array.shape)} in the file, "
                                f"{expected} in the model")
    if problems:
        raise ValueError(f"{path}: does not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=False)
    return model


def save_torch(model, path) -> None:
    """Write ``model.state_dict()`` (atomically) as ``safetensors.torch.save_file`` would, with
    metadata ``format = "pt"``, so ``torch_model.load_state_dict(safetensors.torch.load_file(
    path))`` accepts it."""
    if not hasattr(model, "state_dict"):
        raise TypeError(f"model: expected a cnnkit.nn.Module, got {type(model).__name__}")
    import safetensors.numpy

    arrays = {key: np.ascontiguousarray(value) if np.ndim(value) else np.array(value)
              for key, value in model.state_dict().items()}
    atomic_write_bytes(path, safetensors.numpy.save(arrays, metadata={"format": "pt"}))
