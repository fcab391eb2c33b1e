"""A small thread pool for NumPy's passes, which run on one thread but release the GIL while
they work: a pass cut into independent pieces runs on every core (``fft_threads``' FFTs along
one axis, split along another; the elementwise passes of ``elementwise``). A Tensor's + − × ÷
are compiled loops instead (``arithmetic_numba``)."""
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from .. import tuning
from ..distributed.environment import usable_cores

_pool = None
_pool_pid = None
_CORES = usable_cores()  # asked once: the call takes microseconds


def count():
    """As many threads as the compiled kernels use: Numba's, which follow ``OMP_NUM_THREADS``
    as OpenBLAS's do (``cnnkit/_runtime.py``), and ``numba.set_num_threads``; at most the
    cores this process may run on."""
    return min(numba.get_num_threads(), _CORES)


def executor(threads):
    """The pool, made again after a fork (a child process inherits the pool but not its
    threads, and work handed to it would wait forever)."""
    global _pool, _pool_pid
    if _pool is None or _pool._max_workers != threads or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cnnkit")
        _pool_pid = os.getpid()
    return _pool


def elementwise(passes, *arrays):
    """``passes(*pieces)`` on one contiguous piece of the flat ``arrays`` (all of one size)
    per thread, from ``compiled_min_size`` elements on (the crossover at which ReLU's parallel
    pass beats NumPy's, which ``cnnkit tune`` measures), else once on the whole arrays.
    ``passes`` may only work elementwise, writing its results into some of the pieces.
    2 threads, 32 × 64 × 32 × 32 values: sigmoid's four passes 2.23 → 1.34 ms, ELU's 3.57 →
    1.97; more, smaller pieces (8 of them, or blocks of 32 K values per thread, to stay in
    L2) ran slower."""
    size = arrays[0].size
    threads = 1 if size < tuning.value("compiled_min_size") else count()
    if threads == 1 or size < threads:
        passes(*arrays)
        return
    bounds = np.linspace(0, size, threads + 1).astype(int)
    list(executor(threads).map(lambda lo, hi: passes(*(a[lo:hi] for a in arrays)),
                               bounds[:-1], bounds[1:]))

