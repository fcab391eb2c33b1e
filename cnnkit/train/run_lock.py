"""One training run per run directory: an exclusive lock held for the whole run.

Two runs writing the same ``checkpoint.safetensors`` would each overwrite the other's epochs,
and both would report success. ``run_lock(out_dir)`` takes an ``fcntl.flock`` on
``out_dir/.lock`` (the file holds the owner's pid, for the error message) or raises
``RunLockedError`` at once, naming that pid.

A lock can never be stale in the dangerous sense: the kernel releases a flock when its process
dies, however it dies. What a dead run leaves behind is the lock *file* with its pid, and the
temporary files of a write it was killed in; the next run takes the lock, reports the dead pid
(``RunLock.stale_pid``) and removes those temporary files (``RunLock.removed``).

Creating the lock file is also the check that ``out_dir`` is writable, before any work.
The lock is re-entrant within a process (``cnnkit train`` holds it and ``fit`` asks again).
"""
from __future__ import annotations

import contextlib
import fcntl
import os

from ..io.atomic import remove_orphaned_temp_files

__all__ = ["LOCK_FILE", "RunLock", "RunLockedError", "run_lock"]

LOCK_FILE = ".lock"
_held = {}  # real path of a run directory -> RunLock held by this process


class RunLockedError(RuntimeError):
    """Another process holds the run directory's lock."""


class RunLock:
    """A held lock: ``directory``, ``stale_pid`` (pid left by a run that died, or None) and
    ``removed`` (names of its orphaned temporary files, now deleted)."""

    def __init__(self, directory: str, fd: int, stale_pid, removed: list):
        self.directory, self.fd, self.stale_pid, self.removed = directory, fd, stale_pid, removed


def _read_pid(fd: int):
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _acquire(directory: str) -> RunLock:
    path = os.path.join(directory, LOCK_FILE)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            owner = f"pid {pid}" if pid else "another process"
            raise RunLockedError(f"{directory} is in use by another training run ({owner}); "
                                 "wait for it to finish or choose another --out") from None
        except BaseException:
            os.close(fd)
            raise
        # The previous owner unlinks the file on release: if it did so between our open and
        # our flock, we hold a lock on a deleted file, and must lock the new one instead.
        try:
            same_file = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)
    try:
        stale_pid = _read_pid(fd)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        removed = remove_orphaned_temp_files(directory)
    except BaseException:
        os.close(fd)
        raise
    return RunLock(directory, fd, stale_pid, removed)


def _release(lock: RunLock, remove_if_empty: bool) -> None:
    try:
        os.unlink(os.path.join(lock.directory, LOCK_FILE))  # while still locked: see _acquire
        if remove_if_empty and not os.listdir(lock.directory):
            os.rmdir(lock.directory)  # a run that failed before writing anything
    except OSError:
        pass
    os.close(lock.fd)  # releases the flock


@contextlib.contextmanager
def run_lock(out_dir):
    """Hold ``out_dir``'s lock (creating the directory) for the ``with`` block; yields the
    ``RunLock``. Raises RunLockedError if another process holds it, OSError if ``out_dir``
    cannot be created or written."""
    directory = os.path.realpath(os.fspath(out_dir))
    if directory in _held:
        yield _held[directory]
        return
    created = not os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    lock = _held[directory] = _acquire(directory)
    try:
        yield lock
    finally:
        del _held[directory]
        _release(lock, remove_if_empty=created)
