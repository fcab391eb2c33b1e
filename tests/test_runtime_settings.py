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


def test_end_to_end_table_reports_both_memory_figures():
    row = {"name": "vgg_small", "batch_size": 128, "cnnkit_images_per_s": 1500.0,
           "torch_images_per_s": 2000.0, "cnnkit_peak_mib": 100.0, "torch_peak_mib": 80.0,
           "cnnkit_cold_peak_mib": 200.0, "torch_cold_peak_mib": 160.0}
    line = report.e2e_table([row]).splitlines()[-1]
    assert line == "| vgg_small | 128 | 1500 | 2000 | 0.75 | 100 | 80 | 1.25 | 200 / 160 (1.25) |"
    del row["cnnkit_cold_peak_mib"], row["torch_cold_peak_mib"]
    assert report.e2e_table([row]).splitlines()[-1].endswith("| 1.25 | — |")
