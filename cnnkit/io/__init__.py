"""Saving and loading: safetensors files (arrays + JSON metadata), written atomically, no pickle."""
from .atomic import atomic_write_bytes, atomic_write_text, jsonable
from .safetensors_io import load_file, save_file

__all__ = ["atomic_write_bytes", "atomic_write_text", "jsonable", "load_file", "save_file"]
