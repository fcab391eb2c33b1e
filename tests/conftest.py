"""Shared test settings: seeded, reproducible hypothesis runs."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The kernels' defaults, not this user's measured constants (cnnkit tune): tests that pick
# algorithms or paths by cost must not depend on a cache file. tests/test_tuning.py turns the
# cache back on where it tests it.
os.environ["CNNKIT_TUNING"] = "off"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def run_cli(capsys):
    """``cnnkit ARGS`` -> (exit code, stdout, stderr), run in-process."""
    from cnnkit import cli

    def run(*args):
        code = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return run
