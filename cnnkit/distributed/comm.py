"""The ranks of a data-parallel run and the few collectives training needs, each bounded in time.

``Communicator`` wraps mpi4py's ``COMM_WORLD``; every operation works in place on contiguous
NumPy arrays (MPI's buffer interface: no pickling). ``SingleProcess`` has the same methods for a
run of one rank, where they do nothing, so callers need no special case.

A collective that does not complete within ``timeout`` seconds means another rank died, hangs
or never reached it; waiting longer would hang the run for ever. A watchdog thread then prints
which operation timed out and calls ``MPI_Abort``, which makes ``mpiexec`` stop every rank.
(mpi4py releases the GIL inside blocking MPI calls, so the watchdog runs while the main
thread waits.) A rank that exits or is killed is noticed sooner: ``mpiexec`` itself then ends
the others.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np

__all__ = ["DEFAULT_TIMEOUT", "TIMEOUT_VARIABLE", "Communicator", "SingleProcess",
           "timeout_from_environment"]

# Longer than any legitimate wait between two collectives (rank 0 writing a checkpoint while
# the others wait at the next step's gradient sum, or one machine loading its data later).
DEFAULT_TIMEOUT = 300.0
TIMEOUT_VARIABLE = "CNNKIT_MPI_TIMEOUT"
ABORT_GRACE_S = 0.5  # seconds between a failing rank's message and MPI_Abort (``abort``)


def timeout_from_environment(environ=os.environ) -> float:
    text = environ.get(TIMEOUT_VARIABLE)
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be a positive number of seconds, got {text!r}")
    return value


def _check_buffer(array, name="array"):
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous \
            or not array.flags.writeable:
        raise TypeError(f"{name} must be a writeable C-contiguous ndarray, got "
                        f"{type(array).__name__}")


class SingleProcess:
    """One rank: every collective is the identity."""

    rank, world_size, is_main = 0, 1, True

    def allreduce_(self, array, op="sum"):
        """Sum (or max) ``array`` (any shape, C-contiguous) over the ranks, in place."""
        _check_buffer(array)
        return array

    def bcast_(self, array, root=0):
        """Overwrite ``array`` with rank ``root``'s, in place."""
        _check_buffer(array)
        return array

    def allgather(self, array) -> np.ndarray:
        """``array`` of every rank stacked: shape (world_size, *array.shape)."""
        return np.asarray(array)[None].copy()

    def abort(self, message: str, code: int = 1):
        sys.exit(message)


class Communicator:
    """``mpi4py.MPI.COMM_WORLD`` with bounded collectives (see the module docstring)."""

    def __init__(self, mpi_comm, timeout: float = DEFAULT_TIMEOUT):
        from mpi4py import MPI
        self._MPI = MPI
        self._comm = mpi_comm
        self.rank = mpi_comm.Get_rank()
        self.world_size = mpi_comm.Get_size()
        self.is_main = self.rank == 0
        self.timeout = float(timeout)
        self._deadline = None
        self._waiting_in = ""
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, name="cnnkit-mpi-watchdog", daemon=True).start()

    # -- the watchdog ----------------------------------------------------------------------
    @contextmanager
    def _bounded(self, what: str):
        with self._lock:
            self._deadline, self._waiting_in = time.monotonic() + self.timeout, what
        try:
            yield
        finally:
            with self._lock:
                self._deadline = None

    def _watch(self):
        period = min(1.0, self.timeout / 10)
        while True:
            time.sleep(period)
            with self._lock:
                late = self._deadline is not None and time.monotonic() > self._deadline
                what = self._waiting_in
            if late:
                self.abort(f"{what} did not complete within {self.timeout:g} s: another rank "
                           f"died, hangs or stopped early (timeout: ${TIMEOUT_VARIABLE})")

    # -- collectives -----------------------------------------------------------------------
    def _op(self, op):
        return {"sum": self._MPI.SUM, "max": self._MPI.MAX}[op]

    def allreduce_(self, array, op="sum"):
        """Sum (or max) ``array`` (any shape, C-contiguous) over the ranks, in place."""
        _check_buffer(array)
        with self._bounded(f"Allreduce of {array.nbytes} bytes"):
            self._comm.Allreduce(self._MPI.IN_PLACE, array, op=self._op(op))
        return array

    def iallreduce_(self, array):
        """Start summing ``array`` in place; returns the request (``wait_all`` completes it)."""
        _check_buffer(array)
        return self._comm.Iallreduce(self._MPI.IN_PLACE, array, op=self._MPI.SUM)

    def wait_all(self, requests):
        with self._bounded(f"{len(requests)} Iallreduce(s)"):
            self._MPI.Request.Waitall(requests)

    def bcast_(self, array, root=0):
        """Overwrite ``array`` with rank ``root``'s, in place."""
        _check_buffer(array)
        with self._bounded(f"Bcast of {array.nbytes} bytes"):
            self._comm.Bcast(array, root=root)
        return array

    def allgather(self, array) -> np.ndarray:
        """``array`` of every rank stacked: shape (world_size, *array.shape)."""
        array = np.ascontiguousarray(array)
        out = np.empty((self.world_size,) + array.shape, array.dtype)
        with self._bounded(f"Allgather of {array.nbytes} bytes"):
            self._comm.Allgather(array, out)
        return out

    def abort(self, message: str, code: int = 1):
        """Print ``message`` (one line, naming this rank) and end every rank of the run."""
        sys.stderr.write(f"cnnkit: rank {self.rank} of {self.world_size}: {message}\n")
        sys.stderr.flush()
        # The line is in the pipe to mpiexec's proxy, not yet on the terminal; MPI_Abort tears
        # the proxies down and could drop it (seen once in about seven runs of the MPI tests:
        # exit code 2, empty stderr). A moment to forward it first.
        time.sleep(ABORT_GRACE_S)
        self._comm.Abort(code)
        os._exit(code)  # MPICH's Abort returns while mpiexec ends the ranks; print nothing more
