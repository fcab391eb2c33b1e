"""Data-parallel training over MPI: ``mpiexec -n N cnnkit train ...`` trains on N ranks.

Each rank holds a whole copy of the model and trains on its own shard of every global batch
(``cnnkit.data.sampler``); after each backward pass the gradients are averaged over the ranks
(``data_parallel.DataParallel``), so every replica takes the same optimizer step. See
docs/distributed.md.

    from cnnkit import distributed
    comm = distributed.init()          # once; imports mpi4py only if mpiexec started >1 rank
    distributed.rank, distributed.world_size, distributed.is_main

Importing this package imports neither mpi4py nor NumPy (``cnnkit/_runtime.py`` uses
``environment`` before NumPy loads). A process not started by ``mpiexec``, or started as a
single rank, is one rank of one and never loads MPI.
"""
from __future__ import annotations

from contextlib import contextmanager

from .environment import launched_rank, launched_world_size

__all__ = ["DataParallel", "SyncBatchNorm", "abort_on_error", "convert_sync_batchnorm", "init",
           "is_main", "rank", "world_size"]

_communicator = None


def init(timeout=None):
    """Join the run's ranks (once per process); returns the communicator.

    A ``SingleProcess`` unless ``mpiexec`` started several ranks, then a ``Communicator``
    whose collectives abort the run after ``timeout`` seconds (default ``$CNNKIT_MPI_TIMEOUT``
    or 300). Raises RuntimeError if mpi4py is missing or belongs to another MPI than mpiexec.
    """
    global _communicator
    if _communicator is not None:
        return _communicator
    from .comm import Communicator, SingleProcess, timeout_from_environment
    launched = launched_world_size()
    if launched <= 1:
        _communicator = SingleProcess()
        return _communicator
    timeout = timeout_from_environment() if timeout is None else float(timeout)
    if not timeout > 0:
        raise ValueError(f"init: timeout must be positive, got {timeout!r}")
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise RuntimeError(f"mpiexec started {launched} ranks but mpi4py cannot be imported "
                           f"({err}); pip install 'cnnkit[mpi]'") from err
    comm = Communicator(MPI.COMM_WORLD, timeout)
    if comm.world_size != launched:
        # Each rank would train alone and all would write the same run directory.
        library = MPI.Get_library_version().splitlines()[0]
        raise RuntimeError(f"mpiexec started {launched} ranks but mpi4py's MPI sees "
                           f"{comm.world_size}: mpiexec and mpi4py come from different MPI "
                           f"installations (mpi4py uses {library})")
    _communicator = comm
    return comm


_LAZY = {"DataParallel": "data_parallel", "SyncBatchNorm": "sync_batchnorm",
         "convert_sync_batchnorm": "sync_batchnorm"}


def __getattr__(name):
    # Module attributes that follow init(): before it, what the launcher says. The classes
    # load on first use, so that importing this package loads no NumPy (see above).
    if name in _LAZY:
        from importlib import import_module
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    if name == "rank":
        return launched_rank() if _communicator is None else _communicator.rank
    if name == "world_size":
        return launched_world_size() if _communicator is None else _communicator.world_size
    if name == "is_main":
        return __getattr__("rank") == 0
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextmanager
def abort_on_error(comm, describe=str):
    """Turn an exception on one rank into the end of the whole run, with its cause printed.

    Without this, the other ranks would wait at their next collective until the timeout.
    ``describe(error)`` gives the one-line message. With one rank the exception propagates.
    """
    try:
        yield
    except BaseException as error:
        if comm.world_size <= 1:
            raise
        code = getattr(error, "exit_code", 1)
        comm.abort(describe(error) or type(error).__name__, code if isinstance(code, int) else 1)
        raise
