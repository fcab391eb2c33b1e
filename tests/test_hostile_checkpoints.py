"""Crafted model and checkpoint files with a valid checksum (the checksum is not a signature):
each is refused with a ValueError naming the file (one line on the command line), before the
allocation or the loop its metadata asks for."""
import json
import shutil
import struct

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkit.cli import main
from cnnkit.io import load_file, save_file
from cnnkit.io.safetensors_io import _digest
from cnnkit.train import load_checkpoint, load_model

ARGV = ["train", "--model", "lenet5", "--dataset", "digits", "--limit-train", "64",
        "--limit-test", "32", "--batch-size", "32", "--scheduler", "none", "--optimizer", "adam",
        "--no-progress", "--epochs", "1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(ARGV + ["--out", str(out)]) == 0
    return out


def _crafted(source, target, edit):
    """Copy ``source`` to ``target`` with ``edit(tensors, metadata)`` applied, re-checksummed."""
    tensors, metadata = load_file(source)
    edit(tensors, metadata)
    save_file(target, tensors, metadata)
    return target


def _one_line_error(capsys, command):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cnnkit {command}: error: "), err
    return lines[0]


def _deep_metadata_file(path, depth):
    text = "[" * depth + "]" * depth
    arrays = {"w": np.zeros(2, np.float32)}
    header = {"format": "cnnkit", "cnnkit": text, "sha256": _digest(arrays, text)}
    path.write_bytes(safetensors.numpy.save(arrays, metadata=header))
    return path


def _deep_header_file(path, depth):
    header = ('{"__metadata__": {"format": "cnnkit", "cnnkit": "null"}, "x": '
              + "[" * depth + "]" * depth + "}").encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


@pytest.mark.parametrize("make", [_deep_metadata_file, _deep_header_file])
def test_deeply_nested_json_is_refused_before_parsing(tmp_path, make):
    path = make(tmp_path / "deep.safetensors", 100_000)
    with pytest.raises(ValueError, match=r"deep\.safetensors: .* nests 10000[01] levels deep"):
        load_file(path)
    assert load_file(_deep_metadata_file(tmp_path / "ok.safetensors", 60))[1] == \
        json.loads("[" * 60 + "]" * 60)


@pytest.mark.parametrize("num_classes", [10**12, 10**6])
def test_hyperparameters_cannot_ask_for_more_than_the_file_holds(run_dir, tmp_path, num_classes,
                                                                 capsys):
    def edit(tensors, metadata):
        metadata["config"]["model"]["kwargs"]["num_classes"] = num_classes

    path = _crafted(run_dir / "model.safetensors", tmp_path / "big.safetensors", edit)
    with pytest.raises(ValueError, match=r"big\.safetensors: cannot rebuild model 'lenet5'"):
        load_model(path)
    assert main(["evaluate", str(path)]) == 1
    assert "big.safetensors" in _one_line_error(capsys, "evaluate")


def _model_edit(field, value):
    def edit(tensors, metadata):
        if value is KeyError:
            del metadata["config"][field]
        else:
            metadata["config"][field] = value
    return edit


@pytest.mark.parametrize("field, value, message", [
    ("classes", ["a", "b", "c"], "3 names for 10 model outputs"),
    ("classes", [1, 2], "config.classes"),
    ("input_shape", [1, 10**6, 10**6], "config.input_shape"),
    ("input_shape", [1, -8, 8], "config.input_shape"),
    ("normalize", {"mean": [0.5], "std": [0.0]}, "config.normalize.std"),
    ("normalize", {"mean": ["x"], "std": [1.0]}, "config.normalize.mean"),
    ("model", {"name": "lenet5", "kwargs": {"num_classes": {"a": 1}}}, "num_classes"),
    ("model", {"name": "__import__"}, "unknown model"),
])
def test_model_config_is_checked(run_dir, tmp_path, field, value, message, capsys):
    path = _crafted(run_dir / "model.safetensors", tmp_path / "m.safetensors",
                    _model_edit(field, value))
    with pytest.raises(ValueError, match=r"m\.safetensors: "):
        load_model(path)
    image = tmp_path / "x.png"
    from PIL import Image
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    assert main(["predict", str(path), str(image)]) == 1
    assert message in _one_line_error(capsys, "predict")


def _checkpoint_edit(key, value):
    def edit(tensors, metadata):
        metadata[key] = value
    return edit


def _drop_optimizer_array(tensors, metadata):
    del tensors[next(k for k in tensors if k.endswith(".exp_avg"))]


def _drop_train_settings(tensors, metadata):
    del metadata["config"]["train"]


def _bad_train_setting(tensors, metadata):
    metadata["config"]["train"]["batch_size"] = "32"


@pytest.mark.parametrize("edit, message", [
    (_checkpoint_edit("epoch", 1.5), "invalid epoch in metadata: expected an int, got 1.5"),
    (_checkpoint_edit("epoch", "abc"), "invalid epoch"),
    (_checkpoint_edit("epoch", -3), "invalid epoch in metadata: expected >= 1, got -3"),
    (_checkpoint_edit("epoch", 10**6), "1000000 epochs done, but the run has 1"),
    (_checkpoint_edit("history", [{}] * 5), "invalid history"),
    (_checkpoint_edit("optimizer", "adam"), "invalid optimizer"),
    (_drop_optimizer_array, "expected ['exp_avg', 'exp_avg_sq', 'step']"),
    (_drop_train_settings, "no 'train' settings"),
    (_bad_train_setting, "config.train.batch_size"),
])
def test_resume_from_a_crafted_checkpoint_is_one_line_error(run_dir, tmp_path, edit, message,
                                                           capsys):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    _crafted(run_dir / "checkpoint.safetensors", out / "checkpoint.safetensors", edit)
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 1
    line = _one_line_error(capsys, "train")
    assert "checkpoint.safetensors" in line and message in line, line


def test_the_untouched_checkpoint_still_resumes(run_dir, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    _crafted(run_dir / "checkpoint.safetensors", out / "checkpoint.safetensors",
             lambda tensors, metadata: None)
    assert load_checkpoint(out / "checkpoint.safetensors").epoch == 1


def _partial_train_settings(tensors, metadata):
    del metadata["config"]["train"]["seed"]


def test_partial_train_settings_load_but_do_not_resume(run_dir, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    _crafted(run_dir / "checkpoint.safetensors", out / "checkpoint.safetensors",
             _partial_train_settings)
    assert load_checkpoint(out / "checkpoint.safetensors").epoch == 1  # a library user's config
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 1
    assert "config.train in metadata: lacks ['seed']" in _one_line_error(capsys, "train")


_JSON = st.recursive(
    st.none() | st.booleans() | st.sampled_from([0, -1, 1, 3, 10**12, 2**63, -(2**70)])
    | st.sampled_from([0.5, -0.0, float("nan"), float("inf"), 1e308]) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=8)
_FIELDS = [("config",), ("config", "model"), ("config", "model", "name"),
           ("config", "model", "kwargs"), ("config", "model", "kwargs", "num_classes"),
           ("config", "model", "kwargs", "input_size"),
           ("config", "model", "kwargs", "in_channels"),
           ("config", "input_shape"), ("config", "classes"), ("config", "normalize"),
           ("config", "normalize", "mean"), ("config", "normalize", "std"), ("config", "train"),
           ("config", "train", "epochs"), ("kind",), ("version",)]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(_FIELDS), value=_JSON)
def test_any_metadata_value_is_loaded_or_refused_with_value_error(run_dir, tmp_path, field,
                                                                  value):
    def edit(tensors, metadata):
        target = metadata
        for key in field[:-1]:
            target = target[key]
        target[field[-1]] = value

    path = _crafted(run_dir / "model.safetensors", tmp_path / "fuzz.safetensors", edit)
    try:
        load_model(path)
    except ValueError as err:
        assert str(err).startswith(str(path))


_CHECKPOINT_FIELDS = [("epoch",), ("history",), ("optimizer",), ("optimizer", "param_groups"),
                      ("optimizer", "state"), ("optimizer", "class"), ("scheduler",),
                      ("train_loader",), ("rng_state",), ("rng_state", "state"),
                      ("config", "train", "batch_size"), ("config", "train", "lr"),
                      ("config", "train", "seed"), ("config", "train", "limit_train"),
                      ("config", "input_shape"), ("config", "normalize")]


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(_CHECKPOINT_FIELDS), value=_JSON)
def test_any_checkpoint_value_resumes_or_is_one_line(run_dir, tmp_path_factory, field, value,
                                                     capsys):
    out = tmp_path_factory.mktemp("resume") / "run"
    shutil.copytree(run_dir, out)

    def edit(tensors, metadata):
        target = metadata
        for key in field[:-1]:
            target = target[key]
        target[field[-1]] = value

    _crafted(run_dir / "checkpoint.safetensors", out / "checkpoint.safetensors", edit)
    code = main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code in (0, 1, 2), err
    if code:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "internal error" not in lines[0], (field, value, err)


@pytest.mark.parametrize("reader", ["cnnkit", "torch"])
def test_a_large_file_with_a_bad_header_is_refused_before_its_body_is_read(tmp_path, reader):
    """A 1 GiB file (sparse: no disk used) whose header is not cnnkit's, or whose entry points
    past the end: refused after reading the header, not the gigabyte."""
    import tracemalloc

    from cnnkit.io import read_torch_state
    header = {"__metadata__": {"format": "other"}} if reader == "cnnkit" else \
        {"w": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 1 << 32]}}
    text = json.dumps(header).encode()
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(1 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="big.safetensors"):
            (load_file if reader == "cnnkit" else read_torch_state)(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
