"""Training runs under faults: a second run on the same directory, a run killed mid-write, a
directory that cannot be written. Real processes where the fault needs one (kill -9)."""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cnnkit.train import RunLockedError, fit, run_lock

TINY_RUN = ["train", "--model", "lenet5", "--dataset", "digits", "--limit-train", "64",
            "--limit-test", "32", "--batch-size", "32", "--scheduler", "none", "--no-progress"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code, env_extra=None, args=(), **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
               **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _one_line_error(err, command="train"):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cnnkit {command}: error: "), err
    return lines[0]


def test_a_second_run_on_the_same_directory_is_refused(tmp_path, run_cli):
    out = tmp_path / "run"
    holder = _python(f"""
        import sys, time
        from cnnkit.train import run_lock
        with run_lock({str(out)!r}):
            print("locked", flush=True)
            sys.stdin.readline()
        """, stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_cli(*TINY_RUN, "--epochs", "1", "--out", out)
        assert code == 1
        assert f"in use by another training run (pid {holder.pid})" in _one_line_error(err)
        assert not (out / "checkpoint.safetensors").exists()
        with pytest.raises(RunLockedError, match=str(holder.pid)):
            fit(None, None, None, None, epochs=1, out_dir=out, config={})
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    assert not (out / ".lock").exists()  # released: the next run may go
    code, _, err = run_cli(*TINY_RUN, "--epochs", "1", "--out", out)
    assert code == 0, err


def test_lock_is_reentrant_within_a_process_and_released(tmp_path):
    with run_lock(tmp_path / "run") as outer:
        with run_lock(tmp_path / "run") as inner:
            assert inner is outer
        assert (tmp_path / "run" / ".lock").read_text().strip() == str(os.getpid())
    assert not (tmp_path / "run").exists()  # created for a run that wrote nothing


def test_a_stale_lock_and_orphaned_temporary_files_are_cleared(tmp_path, run_cli):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (out / ".lock").write_text(dead + "\n")
    orphans = [".checkpoint.safetensors.a1b2c3d4.tmp", ".metrics.json.zz_9x8y7.tmp"]
    for name in orphans:
        (out / name).write_bytes(b"half a file")
    (out / "notes.tmp").write_text("mine")  # not a name cnnkit writes: kept
    code, stdout, err = run_cli(*TINY_RUN, "--epochs", "1", "--out", out)
    assert code == 0, err
    assert f"(pid {dead}) stopped abruptly; removed 2 unfinished" in stdout
    names = {p.name for p in out.iterdir()}
    assert not names & set(orphans) and "notes.tmp" in names and ".lock" not in names


def test_out_that_cannot_be_written_is_refused_before_any_work(tmp_path, run_cli, monkeypatch):
    import cnnkit.cli.train as cli_train

    def no_work(*args, **kwargs):
        raise AssertionError("data loaded before --out was checked")

    monkeypatch.setattr(cli_train, "load_datasets", no_work)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out in (a_file, a_file / "run"):
        code, _, err = run_cli(*TINY_RUN, "--epochs", "1", "--out", out)
        assert code == 2
        assert f"--out {out}: cannot write there" in _one_line_error(err)


def test_out_on_a_read_only_file_system(tmp_path, run_cli):
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs",
                              str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        code, _, err = run_cli(*TINY_RUN, "--epochs", "1", "--out", mount_point / "run")
        assert code == 2
        assert "cannot write there (Read-only file system)" in _one_line_error(err)
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_kill_during_the_checkpoint_fsync_leaves_nothing_behind(tmp_path, run_cli):
    """kill -9 inside the checkpoint's fsync (the temporary file is complete but not yet
    renamed): the run is resumable and the next start removes the orphan."""
    out = tmp_path / "run"
    argv = [*TINY_RUN, "--epochs", "2", "--out", str(out)]
    victim = _python(f"""
        import os, signal
        import cnnkit.io.atomic as atomic
        real_fsync, calls = os.fsync, []

        def fsync_then_die(fd):
            real_fsync(fd)
            if os.readlink(f"/proc/self/fd/{{fd}}").split("/")[-1].startswith(".checkpoint"):
                calls.append(fd)
                if len(calls) == 2:  # the second epoch's checkpoint
                    os.kill(os.getpid(), signal.SIGKILL)

        atomic.os.fsync = fsync_then_die
        from cnnkit.cli import main
        main({argv!r})
        """)
    victim.communicate(timeout=300)
    assert victim.returncode == -9
    names = {p.name for p in out.iterdir()}
    orphans = [n for n in names if n.startswith(".checkpoint.safetensors.") and n.endswith(".tmp")]
    assert len(orphans) == 1 and ".lock" in names
    code, stdout, err = run_cli("train", "--out", out, "--resume", "--no-progress")
    assert code == 0, err
    assert "removed 1 unfinished temporary file" in stdout and "epoch 2/2" in stdout
    assert {p.name for p in out.iterdir()} == {"checkpoint.safetensors", "model.safetensors",
                                               "metrics.csv", "metrics.json",
                                               "batch_losses.csv"}


KILLABLE_RUN = """
import os, signal, sys
import cnnkit.optim.optimizer as optimizer
from cnnkit.cli import main

kill_at, events = int(os.environ["KILL_AT"]), [0]

def event():
    events[0] += 1
    if events[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

def counted(function):
    def wrapper(*args, **kwargs):
        event()  # before: a kill at an fsync leaves its temporary file unfinished
        return function(*args, **kwargs)
    return wrapper

optimizer.Optimizer.step = counted(optimizer.Optimizer.step)
os.fsync = counted(os.fsync)
sys.exit(main(sys.argv[1:]))
"""


def _weights(path):
    from cnnkit.io import load_file
    return load_file(path)[0]


def test_killed_three_times_at_random_points_then_resumed_is_bit_identical(tmp_path, run_cli):
    """kill -9 at three seeded random points (optimizer steps and fsyncs, so also mid-write);
    each time the run is resumed (or restarted, if no checkpoint was written yet). The final
    weights are bit for bit those of a run never stopped."""
    argv = TINY_RUN + ["--epochs", "3", "--augment", "--seed", "5"]
    code, _, err = run_cli(*argv, "--out", tmp_path / "whole")
    assert code == 0, err
    out = tmp_path / "killed"
    rng = np.random.default_rng(2026)
    kills = 0
    for attempt in range(8):
        resume = ["--resume"] if (out / "checkpoint.safetensors").exists() else []
        kill_at = int(rng.integers(1, 12)) if kills < 3 else 0
        process = _python(KILLABLE_RUN, env_extra={"KILL_AT": str(kill_at)},
                          args=[*argv, "--out", str(out), *resume])
        _, stderr = process.communicate(timeout=300)
        if process.returncode == 0:
            break
        assert process.returncode == -9, stderr
        kills += 1
    assert kills == 3
    whole, resumed = _weights(tmp_path / "whole" / "model.safetensors"), \
        _weights(out / "model.safetensors")
    assert sorted(whole) == sorted(resumed)
    for key in whole:
        assert np.array_equal(whole[key], resumed[key]), key
    assert {p.name for p in out.iterdir()} == {"checkpoint.safetensors", "model.safetensors",
                                               "metrics.csv", "metrics.json",
                                               "batch_losses.csv"}


def _mount_tmpfs(mount_point, options):
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")


def test_a_full_disk_keeps_the_last_checkpoint(tmp_path, run_cli):
    """On a 512 KiB file system, epoch 1's files fit (a 260 KB checkpoint, an 87 KB model) but
    epoch 2's new checkpoint does not: the write fails, one line is printed, and epoch 1's
    checkpoint is intact and resumable elsewhere."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=512k")
    try:
        out = disk / "run"
        code, stdout, err = run_cli(*TINY_RUN, "--epochs", "3", "--out", out)
        assert code == 1 and "epoch 1/3" in stdout
        assert "No space left on device" in _one_line_error(err)
        from cnnkit.train import load_checkpoint
        assert load_checkpoint(out / "checkpoint.safetensors").epoch == 1
        assert {p.name for p in out.iterdir()} == {"checkpoint.safetensors",
                                                   "model.safetensors", "metrics.csv",
                                                   "metrics.json", "batch_losses.csv"}
        shutil.copytree(out, tmp_path / "moved")
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    code, stdout, err = run_cli("train", "--out", tmp_path / "moved", "--resume",
                                "--no-progress")
    assert code == 0 and "epoch 2/3" in stdout, err
