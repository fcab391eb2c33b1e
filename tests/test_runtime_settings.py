"""Process settings made at import (``cnnkit._runtime``) and the benchmark's report tables."""
from cnnkit import _runtime
from cnnkit.bench import report


def test_thread_settings_fill_in_defaults_only():
    env = {}
    _runtime.configure(env)
    assert env["OPENBLAS_THREAD_TIMEOUT"] == _runtime.OPENBLAS_SPIN_LOG2_CYCLES
    assert env["GOMP_SPINCOUNT"] == _runtime.GOMP_SPIN_POLLS
    mine = {"OPENBLAS_THREAD_TIMEOUT": "28", "GOMP_SPINCOUNT": "300000", "MALLOC_ARENA_MAX": "2"}
    _runtime.configure(mine)
    assert mine == {"OPENBLAS_THREAD_TIMEOUT": "28", "GOMP_SPINCOUNT": "300000",
                    "MALLOC_ARENA_MAX": "2"}


def test_openmp_thread_count_sets_numba_threads_unless_given():
    from cnnkit.distributed.environment import usable_cores
    cores = usable_cores()
    for wanted, numba_threads in (("1", "1"), (" 2,1", str(min(2, cores))),
                                  (str(cores + 7), str(cores))):
        env = {"OMP_NUM_THREADS": wanted}
        _runtime.configure(env)
        assert env["NUMBA_NUM_THREADS"] == numba_threads, wanted
    for env in ({"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2"}, {"OMP_NUM_THREADS": "0"},
                {"OMP_NUM_THREADS": "four"}, {}):
        before = env.get("NUMBA_NUM_THREADS")
        _runtime.configure(env)
        assert env.get("NUMBA_NUM_THREADS") == before, env


def test_openmp_thread_count_limits_every_pool_of_a_fresh_process():
    """Numba reads NUMBA_NUM_THREADS once, when it loads: set by ``import cnnkit``, it holds
    for the compiled kernels and the NumPy passes' pool (``kernels/threads.py``) alike."""
    probe = ("import cnnkit, numba\n"
             "from cnnkit.kernels import threads\n"
             "print(numba.get_num_threads(), threads.count())\n")
    assert _printed_with_one_openmp_thread(probe) == ["1", "1"]


def _printed_with_one_openmp_thread(probe):
    """What ``probe`` prints, run by a fresh Python with OMP_NUM_THREADS=1 and no
    NUMBA_NUM_THREADS, split into words."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, check=True).stdout.split()


def test_numba_loaded_before_cnnkit_keeps_its_thread_count():
    """Numba reads NUMBA_NUM_THREADS again at every compile, and a count other than its
    running pool's is an error there: with Numba's pool started before ``import cnnkit``,
    OMP_NUM_THREADS must leave it alone, and compiling must still work."""
    probe = ("import os, numba\n"
             "threads = numba.get_num_threads()\n"
             "import cnnkit\n"
             "f = numba.njit(lambda a: a + 1)\n"
             "assert f(1) == 2 and numba.get_num_threads() == threads\n"
             "print(os.environ.get('NUMBA_NUM_THREADS'))\n")
    assert _printed_with_one_openmp_thread(probe) == ["None"]


def test_end_to_end_table_reports_both_memory_figures():
    row = {"name": "vgg_small", "batch_size": 128, "cnnkit_images_per_s": 1500.0,
           "torch_images_per_s": 2000.0, "cnnkit_peak_mib": 100.0, "torch_peak_mib": 80.0,
           "cnnkit_cold_peak_mib": 200.0, "torch_cold_peak_mib": 160.0}
    line = report.e2e_table([row]).splitlines()[-1]
    assert line == "| vgg_small | 128 | 1500 | 2000 | 0.75 | 100 | 80 | 1.25 | 200 / 160 (1.25) |"
    del row["cnnkit_cold_peak_mib"], row["torch_cold_peak_mib"]
    assert report.e2e_table([row]).splitlines()[-1].endswith("| 1.25 | — |")


def test_spin_settings_are_in_place_before_numba_loads():
    """OpenMP reads GOMP_SPINCOUNT once, when Numba loads it; ``emulate`` imports Numba when
    NUMBA_CPU_NAME is set alone, so the spin settings must be made before it is called."""
    import os
    import subprocess
    import sys
    probe = (
        "import importlib.abc, os, sys\n"
        "seen = []\n"
        "class Watch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'numba' and not seen:\n"
        "            seen.append(os.environ.get('GOMP_SPINCOUNT'))\n"
        "        return None\n"
        "sys.meta_path.insert(0, Watch())\n"
        "import cnnkit\n"
        "print(seen[0] if seen else 'numba not loaded')\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOMP_SPINCOUNT", "NUMBA_CPU_FEATURES")}
    env["NUMBA_CPU_NAME"] = "haswell"
    printed = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
    assert printed in (_runtime.GOMP_SPIN_POLLS, "numba not loaded")


_SPIN_PROBE = (
    "import resource, time\n"
    "import numpy as np\n"
    "a = np.ones((600, 600), np.float32)\n"
    "a @ a  # OpenBLAS starts its threads before cnnkit is imported\n"
    "import cnnkit\n"
    "a @ a\n"
    "before = resource.getrusage(resource.RUSAGE_SELF)\n"
    "time.sleep(0.2)\n"
    "after = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)\n")


def _cpu_seconds_while_idle(**settings):
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env.update(OPENBLAS_NUM_THREADS="2", **settings)
    return float(subprocess.run([sys.executable, "-c", _SPIN_PROBE], env=env,
                                capture_output=True, text=True, check=True).stdout)


def test_openblas_loaded_before_cnnkit_stops_spinning_soon():
    """``import numpy`` first is the usual order: cnnkit restarts OpenBLAS's thread pool so that
    its idle threads spin for about 0.3 ms, not OpenBLAS's default 0.1 s, which held the cores
    the compiled kernels needed next. The control (the user's own timeout, 2**28 cycles, which
    cnnkit keeps) shows the probe sees the spinning. The control takes the most of three
    probes: beside another test process on the same cores, a spinning thread gets less of a
    core (one CI run read 0.012 s), while that only lowers the first reading."""
    import os

    import pytest
    if (os.cpu_count() or 1) < 2:
        pytest.skip("OpenBLAS starts no threads on one core")
    assert _cpu_seconds_while_idle() < 0.02
    assert max(_cpu_seconds_while_idle(OPENBLAS_THREAD_TIMEOUT="28") for _ in range(3)) > 0.03
