"""Numba's cache files named by their keys (``cnnkit._numba_cache``): processes that compile
different specialisations of one function at once never write the same file."""
import subprocess
import sys

import numpy as np
from numba.core import caching

import cnnkit  # noqa: F401 - patches the cache on import
from cnnkit import _numba_cache


def test_two_writers_of_one_stale_index_keep_their_own_files(tmp_path, monkeypatch):
    """Both read the index before either writes it (the race): each key still loads its own
    data, where Numba's counter gave both the same file."""
    cache = caching.IndexDataCacheFile(str(tmp_path), "kernel-10.py311", "stamp")
    stale = cache._load_index()
    monkeypatch.setattr(cache, "_load_index", lambda: dict(stale))
    cache.save(("sig", 1), "code for 1")
    cache.save(("sig", 2), "code for 2")
    monkeypatch.undo()
    names = sorted(path.name for path in tmp_path.glob("*.nbc"))
    assert len(names) == 2
    assert cache._load_data(cache._data_name(_numba_cache.key_number(("sig", 1)))) == \
        "code for 1"
    assert cache._load_data(cache._data_name(_numba_cache.key_number(("sig", 2)))) == \
        "code for 2"


def test_a_saved_entry_loads_and_a_saved_key_keeps_its_file(tmp_path):
    cache = caching.IndexDataCacheFile(str(tmp_path), "kernel-10.py311", "stamp")
    cache.save(("sig", 1), "first")
    cache.save(("sig", 1), "again")
    assert cache.load(("sig", 1)) == "again" and cache.load(("sig", 2)) is None
    assert len(list(tmp_path.glob("*.nbc"))) == 1


def test_the_patch_is_made_once_on_import():
    assert caching.IndexDataCacheFile.save.names_by_key
    save = caching.IndexDataCacheFile.save
    _numba_cache.name_files_by_key()
    assert caching.IndexDataCacheFile.save is save


def test_specialisations_compiled_by_two_processes_at_once_load_as_themselves(tmp_path):
    """Two processes compile different specialisations of one cached function on an empty
    cache at the same moment; a third loads both from the cache (compiling nothing) and gets
    each one's own result. (Whether the two collide depends on timing; the stale-index test
    above makes the collision happen.)"""
    source = tmp_path / "kernels_under_test.py"
    source.write_text("import numba\n\n@numba.njit(cache=True)\n"
                      "def scaled(x, k):\n    return x * k\n")
    run = ("import sys; sys.path.insert(0, {path!r}); import cnnkit, kernels_under_test as m; "
           "print(m.scaled({value}, {k}))")
    started = [subprocess.Popen([sys.executable, "-c", run.format(
        path=str(tmp_path), value=value, k=k)], stdout=subprocess.PIPE, text=True)
        for value, k in (("1.5", "2"), ("3", "4.0"))]
    outputs = [process.communicate(timeout=120)[0].strip() for process in started]
    assert outputs == ["3.0", "12.0"]
    check = subprocess.run([sys.executable, "-c", (
        "import sys; sys.path.insert(0, {path!r}); import cnnkit, kernels_under_test as m; "
        "print(m.scaled(1.5, 2), m.scaled(3, 4.0), sum(m.scaled.stats.cache_hits.values()))"
    ).format(path=str(tmp_path))], capture_output=True, text=True, timeout=120)
    assert check.stdout.split() == ["3.0", "12.0", "2"], check.stderr
    assert np.unique([p.name for p in (tmp_path / "__pycache__").glob("*.nbc")]).size >= 2
