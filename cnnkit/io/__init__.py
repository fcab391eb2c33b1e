"""Saving and loading: safetensors files (arrays + JSON metadata), written atomically, no pickle."""
from .safetensors_io import atomic_write_bytes, atomic_write_text, load_file, save_file

__all__ = ["atomic_write_bytes", "atomic_write_text", "load_file", "save_file"]
