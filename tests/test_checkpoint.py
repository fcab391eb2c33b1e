"""Safetensors I/O, model files and checkpoints: round trips, corruption, refusal before work."""
import json
import os

import numpy as np
import pytest
import safetensors.numpy

import cnnkit
from cnnkit import models, optim
from cnnkit.data import DataLoader, TensorDataset
from cnnkit.io import load_file, save_file
from cnnkit.train import (
    load_checkpoint,
    load_model,
    restore_training_state,
    save_checkpoint,
    save_model,
)


@pytest.fixture
def arrays(rng):
    return {"w": rng.standard_normal((3, 4)).astype(np.float32),
            "d": rng.standard_normal(5),
            "n": np.array(7, dtype=np.int64),
            "mask": rng.random(6) > 0.5,
            "u8": np.arange(10, dtype=np.uint8),
            "empty": np.zeros((0, 3), dtype=np.float32),
            "strided": np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2]}


def test_save_load_round_trip(tmp_path, arrays):
    path = tmp_path / "a.safetensors"
    meta = {"epoch": 3, "nested": {"lr": 0.1, "list": [1, 2.5, None, True]},
            "big": 2**127 + 12345, "name": "ünïcode"}
    save_file(path, arrays, meta)
    tensors, loaded_meta = load_file(path)
    assert loaded_meta == meta
    assert set(tensors) == set(arrays)
    for key, value in arrays.items():
        assert tensors[key].dtype == value.dtype and tensors[key].shape == value.shape
        np.testing.assert_array_equal(tensors[key], value)
        assert tensors[key].flags.writeable
    assert os.listdir(tmp_path) == ["a.safetensors"]  # no temporary file left behind


def test_overwrite_is_atomic_replacement(tmp_path):
    path = tmp_path / "a.safetensors"
    save_file(path, {"x": np.ones(3)}, {"v": 1})
    save_file(path, {"y": np.zeros(2)}, {"v": 2})
    tensors, meta = load_file(path)
    assert list(tensors) == ["y"] and meta == {"v": 2}


def test_readable_by_plain_safetensors(tmp_path, arrays):
    path = tmp_path / "a.safetensors"
    save_file(path, arrays, {"k": 1})
    plain = safetensors.numpy.load_file(str(path))
    np.testing.assert_array_equal(plain["w"], arrays["w"])


@pytest.mark.parametrize("bad, error", [
    ({"x": [1, 2]}, TypeError),
    ({"x": np.array(["a"])}, TypeError),
    ({"": np.ones(1)}, ValueError),
    ({"__metadata__": np.ones(1)}, ValueError),
    ([np.ones(1)], TypeError),
])
def test_bad_tensors_rejected_before_writing(tmp_path, bad, error):
    path = tmp_path / "a.safetensors"
    with pytest.raises(error):
        save_file(path, bad)
    assert not path.exists()


def test_unserialisable_metadata_rejected_before_writing(tmp_path):
    path = tmp_path / "a.safetensors"
    with pytest.raises(TypeError, match="metadata"):
        save_file(path, {"x": np.ones(1)}, {"f": object()})
    assert not path.exists()


def _saved_bytes(tmp_path):
    path = tmp_path / "good.safetensors"
    save_file(path, {"w": np.arange(64, dtype=np.float32)}, {"epoch": 1})
    return path.read_bytes()


@pytest.mark.parametrize("cut", [0, 5, 8, 40, -1, -100])
def test_truncated_file_is_a_clear_error(tmp_path, cut):
    data = _saved_bytes(tmp_path)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:cut] if cut >= 0 else data[:len(data) + cut])
    with pytest.raises(ValueError, match=str(path)):
        load_file(path)


def test_flipped_data_byte_fails_checksum(tmp_path):
    data = bytearray(_saved_bytes(tmp_path))
    data[-10] ^= 0x01
    path = tmp_path / "flip.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        load_file(path)


def test_garbage_header_and_foreign_files(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes((20).to_bytes(8, "little") + b"not json at all!!!!!" + b"\0" * 8)
    with pytest.raises(ValueError, match="junk.safetensors.*header"):
        load_file(path)
    foreign = tmp_path / "foreign.safetensors"
    safetensors.numpy.save_file({"x": np.ones(2, np.float32)}, str(foreign))
    with pytest.raises(ValueError, match="not one written by cnnkit"):
        load_file(foreign)
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "missing.safetensors")


# -- model files ---------------------------------------------------------------------------------
def _config(name="lenet5", **kwargs):
    return {"model": {"name": name, "kwargs": kwargs}, "input_shape": [1, 28, 28],
            "classes": [str(k) for k in range(10)], "normalize": {"mean": [0.5], "std": [0.25]}}


@pytest.mark.parametrize("name, kwargs, shape", [
    ("lenet5", {"input_size": 8}, (2, 1, 8, 8)),
    ("vgg_small", {"stages": [[4], [8]], "hidden": 16}, (2, 1, 28, 28)),
    ("resnet_small", {"widths": [4, 8]}, (2, 1, 12, 12)),
    ("cnn1d", {"widths": [4, 8]}, (2, 1, 32)),
])
def test_model_file_rebuilds_the_same_network(tmp_path, rng, name, kwargs, shape):
    cnnkit.manual_seed(1)
    model = models.get(name, **kwargs)
    for buffer_name, buffer in model.named_buffers():  # non-trivial BN statistics
        if buffer.dtype.kind == "f":
            buffer.data[...] = rng.random(buffer.shape) + 0.5
    model.eval()
    path = tmp_path / "model.safetensors"
    save_model(path, model, _config(name, **kwargs))
    cnnkit.manual_seed(2)  # a different initialisation: the file must override it
    rebuilt, config = load_model(path)
    assert config["model"]["name"] == name and not rebuilt.training
    x = cnnkit.tensor(rng.standard_normal(shape).astype(np.float32))
    np.testing.assert_array_equal(rebuilt(x).data, model(x).data)
    tensors, _ = load_file(path)
    assert sorted(tensors) == sorted(model.state_dict())  # plain, PyTorch-style keys


def test_model_file_loads_into_torch_twin(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as torch_load_file

    from tests.test_models import torch_lenet5
    model = models.get("lenet5")
    path = tmp_path / "model.safetensors"
    save_model(path, model, _config())
    twin = torch_lenet5()
    twin.load_state_dict(torch_load_file(str(path)))
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        expected = twin.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.eval()(cnnkit.tensor(x)).data, expected, rtol=1e-4,
                               atol=1e-5)


def test_load_model_errors_name_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(path, models.get("lenet5"), _config())
    data = path.read_bytes()
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt.safetensors"):
        load_model(corrupt)
    unknown = tmp_path / "unknown.safetensors"
    save_model(unknown, models.get("lenet5"), _config("no_such_model"))
    with pytest.raises(ValueError, match="unknown.safetensors.*no_such_model"):
        load_model(unknown)
    mismatched = tmp_path / "mismatched.safetensors"
    save_model(mismatched, models.get("lenet5"), _config("lenet5", num_classes=3))
    with pytest.raises(ValueError, match="mismatched.safetensors"):
        load_model(mismatched)
    other = tmp_path / "other.safetensors"
    save_file(other, {"x": np.ones(1)}, {"kind": "something else"})
    with pytest.raises(ValueError, match="other.safetensors"):
        load_model(other)
    with pytest.raises(ValueError, match="config"):
        save_model(path, models.get("lenet5"), {"no": "model"})


# -- checkpoints ---------------------------------------------------------------------------------
def _training_objects(seed):
    cnnkit.manual_seed(seed)
    model = models.get("vgg_small", input_size=8, stages=[[4]], hidden=8)
    optimizer = optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=20)
    data = np.random.default_rng(0).random((32, 1, 8, 8), dtype=np.float32)
    labels = np.arange(32) % 10
    loader = DataLoader(TensorDataset(data, labels), batch_size=8, shuffle=True, seed=seed)
    return model, optimizer, scheduler, loader


def _step(model, optimizer, scheduler, loader):
    for images, labels in loader:
        loss = cnnkit.functional.cross_entropy(model(cnnkit.tensor(images)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def test_checkpoint_round_trip_restores_everything(tmp_path):
    model, optimizer, scheduler, loader = _training_objects(seed=0)
    _step(model, optimizer, scheduler, loader)
    path = tmp_path / "checkpoint.safetensors"
    history = [{"epoch": 1, "test_accuracy": 0.5}]
    save_checkpoint(path, model, optimizer, scheduler, epoch=1, config=_config("vgg_small"),
                    train_loader=loader, history=history)
    rng_state = cnnkit.random.get_rng_state()
    cnnkit.random.default_generator.random(10)  # move the global RNG on

    model2, optimizer2, scheduler2, loader2 = _training_objects(seed=5)
    checkpoint = load_checkpoint(path)
    assert checkpoint.epoch == 1 and checkpoint.history == history
    restore_training_state(checkpoint, model2, optimizer2, scheduler2, loader2)
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert k1 == k2
        np.testing.assert_array_equal(v1, v2)
    s1, s2 = optimizer.state_dict(), optimizer2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for index, entries in s1["state"].items():
        for name, value in entries.items():
            np.testing.assert_array_equal(value, s2["state"][index][name])
    assert scheduler.state_dict() == scheduler2.state_dict()
    assert loader.state_dict() == loader2.state_dict()
    assert cnnkit.random.get_rng_state() == rng_state


def test_restore_checks_everything_before_changing_anything(tmp_path):
    model, optimizer, scheduler, loader = _training_objects(seed=0)
    _step(model, optimizer, scheduler, loader)
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, model, optimizer, scheduler, epoch=1, config=_config("vgg_small"),
                    train_loader=loader)
    checkpoint = load_checkpoint(path)

    cnnkit.manual_seed(3)
    other = models.get("vgg_small", input_size=8, stages=[[6]], hidden=8)  # other widths
    before = {k: v.copy() for k, v in other.state_dict().items()}
    other_optimizer = optim.AdamW(other.parameters(), lr=0.5)
    with pytest.raises(ValueError, match="checkpoint.safetensors"):
        restore_training_state(checkpoint, other, other_optimizer)
    for key, value in other.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    assert other_optimizer.param_groups[0]["lr"] == 0.5

    model2, _, _, _ = _training_objects(seed=1)
    sgd = optim.SGD(model2.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="AdamW"):
        restore_training_state(checkpoint, model2, sgd)
    model3, optimizer3, _, _ = _training_objects(seed=1)
    with pytest.raises(ValueError, match="scheduler"):
        restore_training_state(checkpoint, model3, optimizer3, None)


def test_load_checkpoint_rejects_model_files(tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(path, models.get("lenet5"), _config())
    with pytest.raises(ValueError, match="model.safetensors.*checkpoint"):
        load_checkpoint(path)


def test_checkpoint_metadata_is_plain_json(tmp_path):
    model, optimizer, scheduler, loader = _training_objects(seed=0)
    _step(model, optimizer, scheduler, loader)
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, model, optimizer, scheduler, epoch=1, config=_config("vgg_small"),
                    train_loader=loader)
    n = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8:8 + n])
    meta = json.loads(header["__metadata__"]["cnnkit"])
    assert meta["kind"] == "checkpoint" and meta["epoch"] == 1
    assert meta["optimizer"]["class"] == "AdamW"
    assert meta["scheduler"]["class"] == "OneCycleLR"
    assert any(key.startswith("optimizer/state.") for key in header)
    assert any(key.startswith("model/features.1.running_mean") for key in header)
