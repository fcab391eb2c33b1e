"""Hostile or degenerate data files: IDX headers that declare more than they hold or more than
is accepted, overflowing dimensions, empty data sets, a --data-root that is not there."""
import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.data import read_idx, write_idx

IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"


def _idx_header(shape, type_code=0x08):
    return bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def test_gzip_size_is_checked_before_decompressing(tmp_path):
    # A stream cut after its first kilobytes: fully decompressing it first would report a
    # damaged stream; the declared size is refused before any of the payload is read.
    path = tmp_path / "bomb-idx3-ubyte.gz"
    contents = gzip.compress(_idx_header((60000, 28, 28)) + bytes(60000 * 28 * 28))
    path.write_bytes(contents[:len(contents) // 2])
    with pytest.raises(ValueError, match=r"bomb-idx3-ubyte\.gz: IDX header declares shape "
                                         r"\(60000, 28, 28\) of uint8, 47,040,000 bytes, more "
                                         r"than the 1,000,000"):
        read_idx(path, max_bytes=1_000_000)
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        read_idx(path)  # within the default limit: read, and found damaged


def test_default_limit_refuses_a_2_gib_declaration(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(_idx_header((2**31 + 1,)) + bytes(1000)))
    with pytest.raises(ValueError, match=r"huge\.gz: .*2,147,483,649 bytes, more than the "
                                         r"1,073,741,824 read_idx accepts"):
        read_idx(path)


def test_overflowing_dimensions_name_the_file(tmp_path):
    path = tmp_path / "overflow-ubyte"
    path.write_bytes(_idx_header((2**32 - 1,) * 4, 0x0E) + bytes(64))
    with pytest.raises(ValueError, match=r"overflow-ubyte: IDX header declares shape"):
        read_idx(path)
    path.write_bytes(_idx_header((2**16, 2**16, 2**16, 2**16)) + bytes(64))  # 2**64: wraps int64
    with pytest.raises(ValueError, match=r"overflow-ubyte: IDX header declares"):
        read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_streamed_reading_still_checks_length_both_ways(tmp_path, suffix):
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    path = tmp_path / f"a{suffix}"
    write_idx(path, array)
    np.testing.assert_array_equal(read_idx(path), array)
    raw = _idx_header((2, 3, 4), 0x0B) + array.astype(">i2").tobytes()
    for contents, problem in ((raw[:-1], "truncated"), (raw + b"\0", "trailing bytes")):
        path.write_bytes(gzip.compress(contents) if suffix else contents)
        with pytest.raises(ValueError, match=problem):
            read_idx(path)


@pytest.fixture
def empty_mnist(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    root = tmp_path / "empty-mnist"
    for prefix in ("train", "t10k"):
        write_idx(root / f"{prefix}-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte", np.zeros(0, np.uint8))
    return root


def test_an_empty_data_set_is_one_line(run_cli, empty_mnist, tmp_path):
    code, _, err = run_cli("train", "--dataset", "mnist", "--data-root", empty_mnist,
                           "--out", tmp_path / "run", "--no-progress")
    assert code == 1 and "Traceback" not in err
    assert err.strip() == "cnnkit train: error: data set 'mnist': the training split has no images"
    assert not (tmp_path / "run").exists()


def test_limit_test_zero_or_negative_is_a_usage_error(run_cli, tmp_path):
    for command in (["evaluate", "model.safetensors"], ["plot", "confusion", "lenet5"]):
        for value in ("0", "-1"):
            code, _, err = run_cli(*command, "--limit-test", value)
            assert code == 2 and "argument --limit-test: expected an integer >= 1" in err


def test_data_root_must_hold_the_data(run_cli, empty_mnist, tmp_path, monkeypatch):
    code, _, err = run_cli("train", "--dataset", "mnist", "--data-root", tmp_path / "nowhere",
                           "--out", tmp_path / "run")
    assert code == 2 and f"--data-root {tmp_path / 'nowhere'}: no such directory" in err
    # A copy elsewhere ($CNNKIT_DATA) is not silently used instead of the one asked for.
    monkeypatch.setenv("CNNKIT_DATA", str(empty_mnist))
    (tmp_path / "other").mkdir()
    code, _, err = run_cli("train", "--dataset", "mnist", "--data-root", tmp_path / "other",
                           "--out", tmp_path / "run")
    assert code == 1 and f"--data-root {tmp_path / 'other'}: no mnist files there" in err


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_damaged_idx_files_are_read_or_refused_with_value_error(tmp_path_factory, data):
    array = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    raw = _idx_header(array.shape, 0x0B) + array.astype(">i2").tobytes()
    contents = gzip.compress(raw, mtime=0) if data.draw(st.booleans(), "gzip") else raw
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(contents) - 1),
                                         st.integers(0, 255)), max_size=4), "edits")
    damaged = bytearray(contents)
    for position, value in edits:
        damaged[position] = value
    damaged = damaged[:data.draw(st.integers(0, len(damaged)), "length")]
    path = tmp_path_factory.mktemp("idx") / "damaged-idx3-ubyte"
    path.write_bytes(bytes(damaged))
    try:
        read_idx(path, max_bytes=1 << 20)
    except ValueError as err:
        assert str(path) in str(err)
