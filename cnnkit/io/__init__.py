"""Saving and loading: safetensors files (arrays + JSON metadata), written atomically, no pickle."""
from .atomic import atomic_write_bytes, atomic_write_text, jsonable
from .safetensors_io import load_file, save_file
from .torch_io import load_torch, read_torch_state, save_torch

__all__ = ["atomic_write_bytes", "atomic_write_text", "jsonable", "load_file", "load_torch",
           "read_torch_state", "save_file", "save_torch"]
