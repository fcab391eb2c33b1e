"""An experiment for ``cnnkit.bench.distributed``: start each bucket's Allreduce while backward
is still running, instead of after it.

The autograd engine has no gradient hooks; it assigns each parameter's ``.grad`` once, when the
reverse walk reaches that parameter (``tensor._backpropagate``). During the measured backward
the parameters' class is swapped for a subclass whose ``grad`` setter reports that moment; when
a bucket's parameters are all done, the bucket is packed and its non-blocking ``Iallreduce``
started. MPICH moves a non-blocking collective forward only inside MPI calls, so every
reported gradient also tests the outstanding requests. Afterwards the classes are restored.
"""
from __future__ import annotations

from contextlib import contextmanager

from ..nn import Parameter
from ..tensor import Tensor

_SLOT = Tensor.grad  # the slot descriptor that stores .grad
_READY = {}  # id(parameter) -> callback


class _ReportingParameter(Parameter):
    __slots__ = ()

    @property
    def grad(self):
        return _SLOT.__get__(self)

    @grad.setter
    def grad(self, value):
        _SLOT.__set__(self, value)
        if value is not None:
            _READY[id(self)](self)


class OverlappedAverage:
    """``DataParallel.average_gradients`` with each bucket's sum started during backward."""

    def __init__(self, parallel):
        self.parallel = parallel
        self.bucket_of = {id(p): i for i, bucket in enumerate(parallel.buckets) for p in bucket}

    @contextmanager
    def during_backward(self, count: int):
        """Run ``loss.backward()`` inside; on exit the gradients are averaged over the ranks."""
        parallel, comm = self.parallel, self.parallel.comm
        waiting = [len(bucket) for bucket in parallel.buckets]
        requests = []

        def ready(param):
            i = self.bucket_of[id(param)]
            waiting[i] -= 1
            if waiting[i] == 0:
                requests.append(comm.iallreduce_(parallel.pack(i, count)))
            if requests:
                comm._MPI.Request.Testall(requests)
        classes = {}
        for param in parallel.params:
            classes[id(param)] = param.__class__
            _READY[id(param)] = ready
            param.__class__ = _ReportingParameter
        try:
            yield
        finally:
            for param in parallel.params:
                param.__class__ = classes.pop(id(param))
                _READY.pop(id(param), None)
        for i in range(len(parallel.buckets)):  # buckets with a parameter backward never met
            if waiting[i] > 0:
                requests.append(comm.iallreduce_(parallel.pack(i, count)))
        comm.wait_all(requests)
        parallel.unpack()
