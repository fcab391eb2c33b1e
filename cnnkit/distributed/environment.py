"""Was this process started by ``mpiexec`` as one of several ranks, and how many threads should
each rank use? Both answers come from the launcher's environment variables, so asking them
imports neither mpi4py nor NumPy: ``cnnkit/_runtime.py`` calls ``split_threads`` before NumPy
loads, because OpenBLAS, OpenMP and Numba read their thread counts once, when they load.

Launchers and the variables they set for every rank:
    MPICH (Hydra), Intel MPI   PMI_RANK, PMI_SIZE; MPI_LOCALNRANKS = ranks on this node
    Open MPI                   OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE,
                               OMPI_COMM_WORLD_LOCAL_SIZE
"""
from __future__ import annotations

import os

__all__ = ["THREAD_VARIABLES", "launched_rank", "launched_world_size", "local_ranks",
           "split_threads", "usable_cores"]

_WORLD_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
_RANK = ("OMPI_COMM_WORLD_RANK", "PMI_RANK")
_LOCAL_SIZE = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")
# Every pool a training step uses: OpenBLAS (or MKL) for the matrix products, OpenMP and Numba
# for the compiled kernels.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def _first_int(environ, names) -> int | None:
    for name in names:
        try:
            return int(environ[name])
        except (KeyError, ValueError):
            continue
    return None


def launched_world_size(environ=os.environ) -> int:
    """Ranks the launcher started (1 when not started by mpiexec)."""
    size = _first_int(environ, _WORLD_SIZE)
    return size if size is not None and size >= 1 else 1


def launched_rank(environ=os.environ) -> int:
    """This process's rank as the launcher numbered it (0 when not started by mpiexec)."""
    rank = _first_int(environ, _RANK)
    return rank if rank is not None and rank >= 0 else 0


def local_ranks(environ=os.environ) -> int:
    """Ranks sharing this machine; all of them if the launcher does not say (the cautious
    answer: it never oversubscribes the cores)."""
    local = _first_int(environ, _LOCAL_SIZE)
    return local if local is not None and local >= 1 else launched_world_size(environ)


def usable_cores(pid=0) -> int:
    """The cores process ``pid`` (0: this one) may run on: its affinity (a container's
    cpuset, ``taskset``), or every core where there is none to ask (not Linux)."""
    try:
        return len(os.sched_getaffinity(pid)) or 1
    except (AttributeError, OSError):  # not Linux, or the process is gone
        return os.cpu_count() or 1


def _cores_of_this_process() -> tuple:
    """(cores this process may run on, cores its parent -- the launcher's proxy -- may)."""
    return usable_cores(), usable_cores(os.getppid())


def split_threads(environ=os.environ, cores=None) -> int | None:
    """Give each of the ranks on this machine its share of the cores.

    Sets every variable of ``THREAD_VARIABLES`` the user has not set to the cores this process
    may use (its affinity: a container's cpuset, say) divided by the ranks on this node, at
    least 1. A launcher that bound the rank to fewer cores than it has itself (``mpiexec
    -bind-to socket``) has already shared them out: the rank then uses all the cores it is
    bound to. Returns the thread count set, or None when not started as several ranks on this
    machine.

    cores : (cores of this process, cores of its parent), for tests; default: their affinities
    """
    ranks_here = local_ranks(environ)
    if launched_world_size(environ) <= 1 or ranks_here <= 1:
        return None
    available, parents = _cores_of_this_process() if cores is None else cores
    threads = available if available < parents else max(1, available // ranks_here)
    for name in THREAD_VARIABLES:
        environ.setdefault(name, str(threads))
    return threads
