"""Atomic file writes: a temporary file in the same directory, flushed, then ``os.replace``d.

A crash mid-write leaves the old file intact, never a half-written one. Every file cnnkit writes
(models, checkpoints, metrics, pictures, IDX files, benchmark results) goes through here.
A process killed mid-write (kill -9, power loss) cannot unlink its temporary file, so
``remove_orphaned_temp_files`` clears them; call it only where no other writer is at work (a
locked run directory).
"""
import os
import re
import tempfile

# mkstemp names: ".<target name>.<8 random characters>.tmp", beside the target.
_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(_TEMP_SUFFIX) + "$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, with the permissions a plain ``open`` would give."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=_TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; users expect 0644 or the like
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_orphaned_temp_files(directory) -> list:
    """Delete the temporary files that interrupted ``atomic_write_bytes`` calls left in
    ``directory`` (not recursive); returns their names. Other files are never touched."""
    removed = []
    for entry in os.scandir(directory):
        if _TEMP_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
            removed.append(entry.name)
    return sorted(removed)


def atomic_write_text(path, text: str) -> None:
    """``atomic_write_bytes`` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def jsonable(value):
    """A deep copy with NumPy arrays and integers as plain Python types (for JSON metadata such
    as bit-generator states)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # ndarray or NumPy scalar
        return value.tolist()
    return value
