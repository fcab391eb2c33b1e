"""Compile the kernels ``cnnkit tune`` times before it times them, on several processes at once.

On a cold Numba cache nearly all of a ``cnnkit tune`` run is compiling, where the timings
themselves take about 2 s: on a 2-core Intel Xeon (``emeraldrapids``), 44.5–45.8 s without
this step against 22.2–22.6 s with it and the row correlation's kernels compiled per tile
(BENCHMARKS.md, "``cnnkit tune`` on a cold Numba cache"). Numba compiles one function at a time in a process (its compiler holds a lock), so
the work is spread over processes instead. Each process takes the next measurement of
``calibrate.MEASUREMENTS`` that no other has taken (it claims it by creating a file of that
name in a shared directory, which only one process can create) and runs it once, untimed:
every kernel it calls is compiled and saved to Numba's cache. The measuring process is one of
them, and once all are done it loads the others' kernels from the cache. Nothing is timed
while another process compiles. A kernel that did not reach the cache (a helper process that
failed, a cache Numba cannot write) is compiled by the measurement's own first call, as
without this step.

    python -m cnnkit.tuning.precompile --times [--fast]   # each measurement's compile time
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time


def default_processes():
    """How many processes ``run`` uses by default: Numba's thread count (the cores cnnkit may
    use, ``NUMBA_NUM_THREADS``), at most one per measurement."""
    import numba

    from .calibrate import MEASUREMENTS
    return min(numba.get_num_threads(), len(MEASUREMENTS))


def run(fast=False, processes=None):
    """Compile the kernels of every measurement (``fast``: of ``cnnkit tune --fast``'s) on
    ``processes`` processes, this one among them (default: ``default_processes()``); returns the
    names of the measurements this process compiled. With fewer than two processes it does
    nothing: each measurement then compiles its kernels as it runs."""
    processes = default_processes() if processes is None else processes
    if processes < 2:
        return []  # each measurement compiles its kernels as it runs
    with tempfile.TemporaryDirectory(prefix="cnnkit-precompile-") as claims:
        helpers = []
        for _ in range(processes - 1):
            try:
                helpers.append(_start_helper(claims, fast))
            except OSError:  # no interpreter to start (an embedded Python): compile here
                break
        finished = False
        try:
            compiled = compile_claimed(claims, fast)
            for helper in helpers:
                helper.wait()
            finished = True
        finally:
            if not finished:  # interrupted: no helper outlives the command
                for helper in helpers:
                    helper.kill()
                    helper.wait()
    return compiled


def _start_helper(claims, fast):
    command = [sys.executable, "-m", __name__, "--claims", claims] + (["--fast"] if fast else [])
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def compile_claimed(claims, fast):
    """Run once, untimed, each measurement this process claims in the directory ``claims``;
    returns their names."""
    from .calibrate import MEASUREMENTS
    compiled = []
    for name, _, _ in MEASUREMENTS:
        if _claim(claims, name):
            _compile(name, fast)
            compiled.append(name)
    return compiled


def _claim(claims, name):
    """Whether this process is the first to claim ``name`` (creating a file is atomic)."""
    try:
        os.close(os.open(os.path.join(claims, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _compile(name, fast):
    """Measurement ``name`` run once, untimed: its kernels compiled and cached."""
    from .calibrate import measure

    def once(call):
        call()
        return 1.0  # every call "takes" the same time: the fits and crossovers are not used
    measure(name, fast, once)


def _times(fast):
    """Seconds of each measurement's untimed run in turn, in this process: on a cold Numba
    cache (NUMBA_CACHE_DIR set to an empty directory), its compile time."""
    from .calibrate import MEASUREMENTS
    for name, _, _ in MEASUREMENTS:
        start = time.perf_counter()
        _compile(name, fast)
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnkit.tuning.precompile",
                                     description="Compile cnnkit tune's kernels: as a helper "
                                                 "process (--claims), or each measurement in "
                                                 "turn, timed (--times).")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--claims", metavar="DIR",
                        help="the directory where the processes claim the measurements")
    action.add_argument("--times", action="store_true",
                        help="print each measurement's untimed run's seconds (compile time "
                             "when Numba's cache is cold)")
    parser.add_argument("--fast", action="store_true", help="cnnkit tune --fast's shapes")
    args = parser.parse_args(argv)
    if args.times:
        _times(args.fast)
    else:
        compile_claimed(args.claims, args.fast)
    return 0


if __name__ == "__main__":
    sys.exit(main())
