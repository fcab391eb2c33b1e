"""Process settings for speed, made when cnnkit is imported (``cnnkit/__init__.py`` imports
this first): thread-pool spinning (OpenBLAS, OpenMP), the compiled kernels' thread count and
glibc's malloc; and Numba's cache files named safely for processes compiling at once
(``_numba_cache``). A value the user has
set in the environment is never changed. The spin settings are read by each library when it
loads. OpenBLAS loaded earlier (``import numpy`` before ``import cnnkit``, the usual order) is
told to re-read them and its idle threads are stopped, so that its next product starts new ones
with the short spin (``_respin_openblas``; without it that order made a training step of the
default model 2× slower: 90 against 46 ms). libgomp, Numba's OpenMP runtime, has no such
call; PyPI's PyTorch wheel loads its own copy of it, so ``import torch`` first leaves Numba's
alone (45 against 46 ms per step), but a PyTorch built against the system's libgomp would
fix the spin count before cnnkit sets it. The malloc setting always applies.

Why (measured on the project's 2-core machine, numbers in BENCHMARKS.md):

* **Idle spinning.** A training step alternates two thread pools on the same cores: OpenBLAS's
  (the matrix products) and OpenMP's (the compiled Numba kernels between them: im2col, pooling,
  batch norm). Once idle, each pool spins waiting for more work before it sleeps: OpenBLAS for
  2**28 cycles (about 0.1 s), libgomp for 300,000 polls. A spinning pool holds the cores the
  other one needs next; shortening both spins made a training step of the default model about
  1.6× faster (187–218 ms to 117–122 ms). The new limits still bridge the short gaps between
  back-to-back calls.
* **Thread count.** ``OMP_NUM_THREADS`` is the usual way to say how many threads a process
  may use, and OpenBLAS, the NumPy passes' pool (``kernels/threads.py``) and PyTorch follow
  it; Numba's pool reads only ``NUMBA_NUM_THREADS`` and otherwise takes every core the
  process may run on. So when only ``OMP_NUM_THREADS`` is set, it sets ``NUMBA_NUM_THREADS``
  too (``_numba_threads_follow_openmp``), at most the cores this process may use, unless
  Numba is loaded already (then it keeps its own count: set ``NUMBA_NUM_THREADS``). Two
  processes at once on 2 cores, each with ``OMP_NUM_THREADS=1`` (res3x3's training step):
  47.5–48.9 ms a step with one Numba thread each, 49.6–52.0 with two (BENCHMARKS.md, "The
  compiled kernels' threads follow OMP_NUM_THREADS").
* **Page faults.** glibc's malloc serves large arrays from fresh pages (mmap) and returns
  freed memory at the top of its heap to the kernel, so each new activation or gradient array
  pays a page fault per 4 KiB page on first write — 2.7 ms for the 6.4 MB of one max-pool
  output, four times the pooling itself. Keeping arrays up to 32 MiB (glibc's limit) on the
  heap and not trimming it lets freed memory be reused: a training step ran 1.1–1.4× faster,
  with the same peak memory (freed memory is reused, not added to). This is glibc's own
  ``mallopt``, the same as setting MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_.
"""
import ctypes
import os
import sys

# Both re-measured by ``python -m cnnkit.bench.spin`` (BENCHMARKS.md, "Spin settings
# re-measured" and "One image: how long threads spin"): 2**24 cycles and more slowed
# vgg_small's and lenet5's training steps, 1,000 polls made one image's pass 1.7–2.0 times as
# slow. A poll lasts as long as the CPU's pause instruction, which differs tenfold between
# CPUs: 10,000 polls were 0.10–0.15 ms on one 2-vCPU host. 100,000 polls there kept the
# threads awake between one image's layers when those were farther apart, but made two
# processes training at once on its 2 cores 1.6–1.9 times slower (each pool spun on the core
# the other process needed); since its layers' calls were planned (``conv.dispatch.
# forward_plan``), one image runs as fast at 10,000.
OPENBLAS_SPIN_LOG2_CYCLES = "20"  # 2**20 cycles: about 0.3 ms at 3 GHz
GOMP_SPIN_POLLS = "10000"
MALLOC_MMAP_THRESHOLD = 32 << 20  # glibc's maximum (HEAP_MAX_SIZE / 2 on 64-bit)
MALLOC_TRIM_THRESHOLD = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)


def configure(environ=os.environ):
    """Fill in the settings above that the environment does not already have, and make
    ``NUMBA_CPU_NAME`` emulate that CPU whole (``cnnkit.cpu.emulate``). Ranks started
    together by ``mpiexec`` share this machine's cores (``distributed.environment``)."""
    from ._numba_cache import name_files_by_key
    from .cpu import emulate
    from .distributed.environment import split_threads
    _numba_threads_follow_openmp(environ)
    split_threads(environ)
    # Before ``emulate``, which may import Numba: the OpenMP runtime reads its spin count once,
    # when it loads (set after it, the count was ignored and a training step ran 2× slower).
    filled = "OPENBLAS_THREAD_TIMEOUT" not in environ
    environ.setdefault("OPENBLAS_THREAD_TIMEOUT", OPENBLAS_SPIN_LOG2_CYCLES)
    environ.setdefault("GOMP_SPINCOUNT", GOMP_SPIN_POLLS)
    if filled and environ is os.environ:
        _respin_openblas()
    emulate()
    name_files_by_key()  # before any kernel is compiled or loaded
    if not any(name.startswith("MALLOC_") for name in environ):
        _tune_malloc()


def _numba_threads_follow_openmp(environ):
    """Set ``NUMBA_NUM_THREADS`` from ``OMP_NUM_THREADS`` (its first level: "4,2" means 4)
    when only the latter is set, at most the cores this process may run on (as OpenBLAS
    caps it). Numba reads it when it loads and again at every compile, where a count other
    than its running pool's is an error: so not once Numba is loaded (imported before
    cnnkit, it keeps its own count)."""
    from .distributed.environment import usable_cores
    wanted = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if "NUMBA_NUM_THREADS" in environ or not wanted.isdigit() or int(wanted) < 1 or \
            (environ is os.environ and "numba" in sys.modules):
        return
    environ["NUMBA_NUM_THREADS"] = str(min(int(wanted), usable_cores()))


def _loaded_openblas():
    """Paths of the OpenBLAS libraries this process has loaded (Linux), in load order."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = [line.split(None, 5)[-1].strip() for line in maps]
    except OSError:
        return []
    return list(dict.fromkeys(path for path in paths
                              if "openblas" in os.path.basename(path).lower()))


def _respin_openblas():
    """Make an OpenBLAS that was loaded before cnnkit use OPENBLAS_THREAD_TIMEOUT from now on:
    ``openblas_read_env`` re-reads the environment, ``blas_thread_shutdown_`` (what OpenBLAS
    itself calls before a fork) joins its idle threads, and the next threaded product starts
    new ones, which take the new timeout. A library without these symbols (an OpenMP build,
    or another BLAS) is left as it is."""
    for path in _loaded_openblas():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        if hasattr(library, "openblas_read_env") and hasattr(library, "blas_thread_shutdown_"):
            library.openblas_read_env()
            library.blas_thread_shutdown_()


def _tune_malloc():
    """glibc only (musl and other platforms have no mallopt or ignore these numbers)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, libc's among them
        if not hasattr(libc, "gnu_get_libc_version"):
            return
        libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD)
    except OSError:
        pass


configure()
