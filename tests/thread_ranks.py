"""Several "ranks" as threads of one process, with the collectives of
``cnnkit.distributed.comm.Communicator``: lets the tests check data-parallel arithmetic
(gradient averaging, synchronised batch norm) without MPI."""
import threading

import numpy as np


class ThreadGroup:
    """Shared state of ``world_size`` thread ranks: a barrier and one slot per rank."""

    def __init__(self, world_size):
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=60)
        self.slots = [None] * world_size

    def comms(self):
        return [ThreadComm(self, rank) for rank in range(self.world_size)]

    def run(self, fn):
        """``fn(comm)`` on every rank at once; returns the results in rank order."""
        results, errors = [None] * self.world_size, []

        def target(comm):
            try:
                results[comm.rank] = fn(comm)
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller
                errors.append(err)
                self.barrier.abort()
        threads = [threading.Thread(target=target, args=(c,)) for c in self.comms()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results


class ThreadComm:
    def __init__(self, group, rank):
        self.group, self.rank, self.world_size = group, rank, group.world_size
        self.is_main = rank == 0

    def _exchange(self, array):
        self.group.slots[self.rank] = np.array(array, copy=True)
        self.group.barrier.wait()
        gathered = list(self.group.slots)
        self.group.barrier.wait()
        return gathered

    def allreduce_(self, array, op="sum"):
        gathered = self._exchange(array)
        array[...] = np.max(gathered, axis=0) if op == "max" else np.sum(gathered, axis=0)
        return array

    def bcast_(self, array, root=0):
        array[...] = self._exchange(array)[root]
        return array

    def allgather(self, array):
        return np.stack(self._exchange(np.asarray(array)))
