"""Kernels that hand their tasks to the one parallel loop (``cnnkit/kernels/task_call.py``):
every task run once, the task compiled for the kernel's own argument types, found again by a
kernel loaded from Numba's cache in another process, its exceptions raised as from a direct
call, and argument types that do not match refused before anything runs."""
import functools
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from cnnkit.kernels.task_call import Loop, PerTile, Tasks, run_tasks


@numba.njit
def _scaled_rows(tasks, x, out, factor):
    """out[i] = factor · x[i] + i, row by row, one task per row."""
    return run_tasks(tasks, x.shape[0], (x, out, factor))


@numba.njit
def _scaled_row(i, x, out, factor):
    if factor < 0:
        raise ValueError("factor must be at least 0")
    out[i] = factor * x[i] + i


def _row_types(x, out, factor):
    return (numba.int64, numba.typeof(x), numba.typeof(out), numba.typeof(factor))


def test_the_task_runs_for_each_kind_of_operand_and_is_compiled_once_for_each():
    tasks = Tasks(_scaled_row, _row_types)
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    out = np.empty_like(x)
    tasks.run(_scaled_rows, x, out, 2.0)
    np.testing.assert_array_equal(out, 2 * x + np.arange(4)[:, None])
    tasks.run(_scaled_rows, x, out, 3.0)
    assert tasks.table.shape == (2, 2)  # the loop's row and one task's, found again
    x32 = x.astype(np.float32)
    out32 = np.empty_like(x32)
    tasks.run(_scaled_rows, x32, out32, np.float32(0.5))
    np.testing.assert_array_equal(out32, np.float32(0.5) * x32 + np.arange(4)[:, None])
    assert tasks.table.shape == (3, 2) and len(set(tasks.table[:, 0])) == 3


def test_an_exception_in_the_task_reaches_the_caller_as_from_a_direct_call():
    """In a parallel loop Numba hands a callee's exception back under a SystemError (the
    kernel also returns a value); the task's is the same, its cause the task's own."""
    tasks = Tasks(_scaled_row, _row_types)
    x = np.ones((3, 2))
    with pytest.raises(SystemError) as caught:
        tasks.run(_scaled_rows, x, np.empty_like(x), -1.0)
    assert isinstance(caught.value.__cause__, ValueError)
    assert str(caught.value.__cause__) == "factor must be at least 0"


def test_argument_types_that_do_not_match_the_kernels_are_refused_before_anything_runs():
    def wrong_types(x, out, factor):  # float32 for a float64 factor
        return (numba.int64, numba.typeof(x), numba.typeof(out), numba.float32)
    tasks = Tasks(_scaled_row, wrong_types)
    x = np.ones((3, 2))
    out = np.full_like(x, 7.0)
    with pytest.raises(AssertionError, match="other argument types"):
        tasks.run(_scaled_rows, x, out, 2.0)
    np.testing.assert_array_equal(out, 7.0)
    assert tasks.table.shape == (0, 2)


@functools.cache
def _offset_task(offset, unused):
    @numba.njit
    def task(i, x, out, factor):
        out[i] = factor * x[i] + offset
    return task


def test_a_kernel_per_tile_takes_the_tile_after_its_leading_arguments():
    @numba.njit
    def kernel(tasks, x, out, rows, vectors, factor):
        return run_tasks(tasks, x.shape[0] + rows - rows, (x, out, factor))

    def types(x, out, rows, vectors, factor):
        return _row_types(x, out, factor)
    per_tile = {offset: PerTile(kernel, _offset_task, types, 2, offset, 1) for offset in (5, 9)}
    x = np.arange(6.0)
    for offset, run in per_tile.items():
        out = np.empty_like(x)
        run(x, out, 2.0)
        np.testing.assert_array_equal(out, 2 * x + offset)


_CACHED = textwrap.dedent('''
    import numba, numpy as np
    from cnnkit.kernels.task_call import Tasks, run_tasks

    @numba.njit(cache=True)
    def kernel(tasks, x, out):
        return run_tasks(tasks, x.size, (x, out))

    @numba.njit(cache=True)
    def task(i, x, out):
        out[i] = x[i] * x[i] + 1

    x = np.arange(1000, dtype=np.float32)
    out = np.zeros_like(x)
    Tasks(task, lambda x, out: (numba.int64, numba.typeof(x), numba.typeof(out))).run(
        kernel, x, out)
    assert (out == x * x + 1).all()
    print(len(kernel.stats.cache_hits), len(task.stats.cache_hits))
''')


def test_a_kernel_loaded_from_numbas_cache_finds_its_task(tmp_path):
    """The second process loads both the kernel and its task from the cache (no compiling),
    and the kernel's hash finds the task's address there."""
    script = tmp_path / "cached.py"
    script.write_text(_CACHED)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=300) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    assert runs[0].stdout.split() == ["0", "0"]
    assert runs[1].stdout.split() == ["1", "1"]


@numba.njit
def _count_index(i, seen):
    seen[i] += 1


@pytest.mark.parametrize("count", [0, 1, 2, 7, 1000])
def test_a_loop_runs_its_task_once_for_each_index(count):
    loop = Loop(_count_index, lambda seen: seen.size - 3)
    seen = np.zeros(count + 3, np.int64)  # the last three are past the loop's count
    loop(seen)
    np.testing.assert_array_equal(seen, [1] * count + [0, 0, 0])


@numba.njit
def _plane_sum(p, x, out):
    plane = x[p]  # a view of an array the task does not own
    out[p] = plane.sum() + np.ones(2).sum()  # and an array of its own


def test_a_loops_task_reads_views_of_its_arrays_allocates_its_own_and_leaks_none():
    x = np.arange(24.0).reshape(4, 6)
    out = np.zeros(4)
    Loop(_plane_sum, lambda x, out: x.shape[0])(x, out)
    np.testing.assert_array_equal(out, x.sum(axis=1) + 2)
    before = sys.getrefcount(x)
    Loop(_plane_sum, lambda x, out: x.shape[0])(x, out)
    assert sys.getrefcount(x) == before  # none leaked
