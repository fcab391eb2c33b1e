"""cnnkit.tuning.precompile: ``cnnkit tune``'s kernels compiled by several processes, each
measurement by the one process that claims it."""
import signal
import subprocess
import sys

import pytest

from cnnkit.tuning import calibrate, precompile

NAMES = [name for name, _, _ in calibrate.MEASUREMENTS]


def _claimed(claims):
    return sorted(path.name for path in claims.iterdir())


def test_each_measurement_is_claimed_once(tmp_path):
    assert len(set(NAMES)) == len(NAMES)
    assert [precompile._claim(str(tmp_path), name) for name in NAMES] == [True] * len(NAMES)
    assert [precompile._claim(str(tmp_path), name) for name in NAMES] == [False] * len(NAMES)
    assert precompile.compile_claimed(str(tmp_path), fast=True) == []  # all taken: none run


def test_a_helper_process_runs_only_what_is_left(tmp_path):
    for name in NAMES:
        if name != "npconvolve":  # left for the helper (NumPy only: nothing to compile)
            (tmp_path / name).touch()
    done = subprocess.run([sys.executable, "-m", "cnnkit.tuning.precompile", "--claims",
                           str(tmp_path), "--fast"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _claimed(tmp_path) == sorted(NAMES)


def test_this_process_compiles_what_it_claims(tmp_path, monkeypatch):
    runs = []
    monkeypatch.setattr(precompile, "_compile", lambda name, fast: runs.append((name, fast)))
    (tmp_path / NAMES[0]).touch()  # another process's
    assert precompile.compile_claimed(str(tmp_path), fast=True) == NAMES[1:]
    assert runs == [(name, True) for name in NAMES[1:]]


def test_one_process_starts_no_helper(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a helper process was started")
    monkeypatch.setattr(precompile.subprocess, "Popen", refuse)
    assert precompile.run(fast=True, processes=1) == []


def test_helpers_are_waited_for_and_killed_when_interrupted(monkeypatch):
    started = []

    def helper(claims, fast):
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return started[-1]

    def interrupted(claims, fast):
        raise KeyboardInterrupt
    monkeypatch.setattr(precompile, "_start_helper", helper)
    monkeypatch.setattr(precompile, "compile_claimed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        precompile.run(fast=True, processes=3)
    assert [p.returncode for p in started] == [-signal.SIGKILL] * 2  # not left running

    started.clear()
    monkeypatch.setattr(precompile, "_start_helper", lambda claims, fast: started.append(
        subprocess.Popen([sys.executable, "-c", "pass"])) or started[-1])
    monkeypatch.setattr(precompile, "compile_claimed", lambda claims, fast: ["fft"])
    assert precompile.run(fast=True, processes=2) == ["fft"]
    assert [p.returncode for p in started] == [0]  # waited for


def test_times_prints_each_measurement(monkeypatch, capsys):
    monkeypatch.setattr(precompile, "_compile", lambda name, fast: None)
    assert precompile.main(["--times", "--fast"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == NAMES


def test_a_helper_that_cannot_start_leaves_the_work_here(tmp_path, monkeypatch):
    def cannot(*args, **kwargs):
        raise FileNotFoundError("no interpreter")
    monkeypatch.setattr(precompile.subprocess, "Popen", cannot)
    monkeypatch.setattr(precompile, "_compile", lambda name, fast: None)
    assert precompile.run(fast=True, processes=2) == NAMES
