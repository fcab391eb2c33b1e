"""cnnkit.tuning: the constants table, the per-user cache of measured values, overrides and
the calibration command."""
import json
import os
import threading

import pytest

from cnnkit import tuning
from cnnkit.tuning import calibrate, store


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """The per-user cache under tmp_path, read afresh; returns the cache file's path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("CNNKIT_TUNING")
    tuning.reload()
    yield tuning.cache_file()
    tuning.reload()


def _cpu_and_version():
    return tuning._key()


def test_every_constant_is_described_and_its_default_valid():
    for name, constant in tuning.CONSTANTS.items():
        assert constant.meaning and constant.unit, name
        assert store.check_value(name, constant.default) == constant.default


def test_cache_round_trip(cache, tmp_path):
    cpu, version = _cpu_and_version()
    assert cache == str(tmp_path / "cnnkit" / f"tuning-{cpu}-{version}.json")
    assert tuning.value("rows_overhead_ns") == 12_000.0 and tuning.source().startswith("defaults")
    assert tuning.save({"rows_overhead_ns": 5000.0, "compiled_min_size": 1 << 12}) == cache
    assert tuning.value("rows_overhead_ns") == 5000.0
    assert tuning.value("compiled_min_size") == 1 << 12
    assert tuning.value("shift_min_map") == 400  # not measured: the default
    tuning.save({"rows_overhead_ns": 6000.0})  # later saves keep the other measurements
    tuning.reload()
    assert (tuning.value("rows_overhead_ns"), tuning.value("compiled_min_size")) == (6000.0, 4096)
    assert tuning.source() == cache
    content = json.loads(open(cache).read())
    assert (content["cpu"], content["version"]) == (cpu, version)


def test_key_includes_cpu_name_and_version(cache):
    assert store.cache_path("haswell", "0.1.0") != store.cache_path("skylake-avx512", "0.1.0")
    assert store.cache_path("haswell", "0.1.0") != store.cache_path("haswell", "0.2.0")
    assert "haswell" in store.cache_path("haswell", "0.1.0")
    assert "/" not in os.path.basename(store.cache_path("a/../b", "1"))
    cpu, version = _cpu_and_version()
    for other in (("not-" + cpu, version), (cpu, version + ".dev")):  # measured elsewhere
        store.write(cache, {"rows_overhead_ns": 1.0}, *other)
        tuning.reload()
        with pytest.warns(RuntimeWarning, match="made for"):
            assert tuning.value("rows_overhead_ns") == 12_000.0


def test_write_is_atomic(cache, monkeypatch):
    tuning.save({"rows_overhead_ns": 5000.0})
    before = open(cache).read()

    def crash(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        tuning.save({"rows_overhead_ns": 7000.0})
    assert open(cache).read() == before
    assert os.listdir(os.path.dirname(cache)) == [os.path.basename(cache)]  # no temp file left


@pytest.mark.parametrize("content", [
    b"\x00\xff garbage", b"[1, 2]", b'{"format": 1}', b"",
    "values: bool", "values: string", "values: NaN", "values: out of range",
    "values: unknown", "values: fractional int", "values: not an object", "huge"])
def test_corrupt_or_hostile_cache_is_ignored_with_a_warning(cache, content):
    cpu, version = _cpu_and_version()
    values = {"bool": {"rows_overhead_ns": True}, "string": {"rows_overhead_ns": "1"},
              "NaN": {"rows_overhead_ns": float("nan")},
              "out of range": {"rows_ns_per_element_copied": 1e9},
              "unknown": {"rows_overhead_ns": 1.0, "evil": 1},
              "fractional int": {"compiled_min_size": 1.5}, "not an object": [1]}
    if isinstance(content, str) and content.startswith("values: "):
        content = json.dumps({"format": 1, "cpu": cpu, "version": version,
                              "values": values[content[8:]]}).encode()
    elif content == "huge":
        content = b" " * (store.MAX_BYTES + 1)
    os.makedirs(os.path.dirname(cache))
    with open(cache, "wb") as f:
        f.write(content)
    with pytest.warns(RuntimeWarning, match="ignoring the tuning cache"):
        assert tuning.values() == tuning.defaults()
    assert tuning.source() == "defaults (cache ignored)"


def test_environment_turns_the_cache_off_or_points_elsewhere(cache, monkeypatch, tmp_path):
    tuning.save({"rows_overhead_ns": 5000.0})
    monkeypatch.setenv("CNNKIT_TUNING", "off")
    tuning.reload()
    assert tuning.value("rows_overhead_ns") == 12_000.0 and tuning.cache_file() is None
    elsewhere = str(tmp_path / "mine.json")
    store.write(elsewhere, {"rows_overhead_ns": 3000.0}, *_cpu_and_version())
    monkeypatch.setenv("CNNKIT_TUNING", elsewhere)
    tuning.reload()
    assert tuning.value("rows_overhead_ns") == 3000.0


def test_the_cache_is_read_once(cache, monkeypatch):
    tuning.save({"rows_overhead_ns": 5000.0})
    reads = []
    real = store.read
    monkeypatch.setattr(store, "read", lambda *a: reads.append(1) or real(*a))
    tuning.reload()
    for _ in range(100):
        tuning.value("rows_overhead_ns")
    assert reads == [1]


def test_override_is_checked_nested_and_per_thread():
    with pytest.raises(ValueError, match="unknown constant"):
        with tuning.override(no_such_constant=1):
            pass
    with pytest.raises(ValueError, match="outside"):
        with tuning.override(winograd_max_waste=0.5):
            pass
    seen = []
    with tuning.override(shift_min_map=10):
        with tuning.override(shift_fold_max_rows=3):
            assert (tuning.value("shift_min_map"), tuning.value("shift_fold_max_rows")) == (10, 3)
            thread = threading.Thread(target=lambda: seen.append(tuning.value("shift_min_map")))
            thread.start()
            thread.join()
        assert tuning.value("shift_fold_max_rows") == 64
    assert tuning.value("shift_min_map") == 400 and seen == [400]



def test_kept_answers_follow_the_values_and_the_thread_count(cache):
    """``tuning.kept``: asked again, a decision is not worked out again, until a value it may
    read changes (an override, a reload) or, with ``threads``, Numba's thread count; an
    argument that cannot be hashed is answered afresh each time."""
    import numba
    asked = []

    @tuning.kept(threads=True)
    def decide(shape, extra=None):
        asked.append(shape)
        return tuning.value("shift_min_map") * len(shape) + numba.get_num_threads()

    threads = numba.get_num_threads()
    assert decide((2, 3)) == decide((2, 3)) == 800 + threads and len(asked) == 1
    with tuning.override(shift_min_map=10):
        assert decide((2, 3)) == 20 + threads and len(asked) == 2
    assert decide((2, 3)) == 800 + threads and len(asked) == 2  # the answer kept before
    tuning.reload()
    decide((2, 3))
    assert len(asked) == 3
    if threads > 1:
        numba.set_num_threads(1)
        try:
            assert decide((2, 3)) == 801 and len(asked) == 4
        finally:
            numba.set_num_threads(threads)
    before = len(asked)
    assert decide([2, 3], [1]) == decide([2, 3], extra=[1]) == 800 + threads
    assert len(asked) == before + 2
    assert decide((2, 3), extra=1) == decide((2, 3), extra=1) and len(asked) == before + 3


def test_fast_calibration_gives_valid_values():
    lines = []
    measured = calibrate.calibrate(fast=True, log=lines.append)
    assert len(lines) == len(tuning.CONSTANTS)  # one line per constant
    for name, number in measured.items():
        assert tuning.CONSTANTS[name].measured_by, name
        assert store.check_value(name, number) == number
    for name, constant in tuning.CONSTANTS.items():
        line = next(line for line in lines if line.strip().startswith(name + ":"))
        assert ("->" in line) == (name in measured)
        if constant.measured_by is None:
            assert "default kept" in line


def test_cli_dry_run_saves_nothing(run_cli, cache):
    code, out, err = run_cli("tune", "--fast", "--dry-run")
    assert code == 0 and "dry run: nothing saved" in out and " -> " in out
    assert not os.path.exists(cache)


def test_cli_saves_to_output(run_cli, tmp_path):
    target = tmp_path / "t.json"
    code, out, _ = run_cli("tune", "--fast", "--output", target)
    assert code == 0 and f"saved to {target}" in out
    assert store.read(target, *_cpu_and_version())


def test_cli_errors_are_one_line(run_cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for args in (("--output", blocker / "t.json"), ("--output", tmp_path), ("--nope",)):
        code, out, err = run_cli("tune", "--fast", *args)
        assert code == 2, args
        assert len(err.strip().splitlines()) == 1 or args == ("--nope",)
        assert "Traceback" not in err
    code, _, err = run_cli("tune", "--fast", "--output", blocker / "t.json")
    assert err.startswith("cnnkit tune: error: --output")


def test_one_fits_values_are_kept_or_left_together():
    names = ["window_ns_per_mac", "window_ns_per_output", "window_overhead_ns"]
    assert calibrate._together(names, [1.0, 6.0, 2e4]) == dict(zip(names, [1.0, 6.0, 2e4]))
    assert calibrate._together(names, [1.0, -6.0, 2e4]) == dict.fromkeys(names)
