"""cnnkit.onnx.load / to_module: ONNX graphs run, and train, with cnnkit's ops."""
import numpy as np
import pytest

import cnnkit
from cnnkit import models, nn, optim
from tests.onnx_helpers import onnx, randomize_batchnorm

from cnnkit.onnx import export, load, to_module  # noqa: E402
from cnnkit.onnx.ops import UnsupportedOperator  # noqa: E402

SHAPES = {"lenet5": (1, 28, 28), "vgg_small": (1, 28, 28), "resnet_small": (1, 12, 12),
          "cnn1d": (1, 32), "resnet18": (3, 32, 32)}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_exported_model_loads_back(name, tmp_path):
    cnnkit.manual_seed(0)
    model = randomize_batchnorm(models.get(name), np.random.default_rng(0)).eval()
    export(model, SHAPES[name], tmp_path / "m.onnx")
    x = np.random.default_rng(1).standard_normal((2,) + SHAPES[name]).astype(np.float32)
    (y,) = load(tmp_path / "m.onnx").run(x)
    np.testing.assert_allclose(y, model(cnnkit.tensor(x)).data, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opset", [18, 20])
def test_gelu_graphs_of_either_opset_load(opset):
    layer = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2), nn.GELU("tanh"))
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    (y,) = load(export(layer, (3,), opset=opset)).run(x)
    np.testing.assert_allclose(y, layer(cnnkit.tensor(x)).data, rtol=1e-5, atol=1e-6)


def test_to_module_keeps_state_dict_keys_and_trains_like_the_original():
    cnnkit.manual_seed(3)
    original = models.resnet_small(widths=(4, 8), num_classes=3)
    imported = to_module(export(original, (1, 8, 8)))
    assert imported.training
    expected_keys = [k for k in original.state_dict() if not k.endswith("num_batches_tracked")]
    assert sorted(imported.state_dict()) == sorted(expected_keys)
    assert {k for k, _ in imported.named_parameters()} == {
        k for k, _ in original.named_parameters()}
    rng = np.random.default_rng(4)
    x = cnnkit.tensor(rng.standard_normal((4, 1, 8, 8)).astype(np.float32))
    target = cnnkit.tensor(np.array([0, 2, 1, 2]))
    for model in (original, imported):  # one SGD step each, BatchNorm in training mode
        model.train()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(2):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), target).backward()
            opt.step()
    after = imported.state_dict()
    for key in expected_keys:
        np.testing.assert_allclose(after[key], original.state_dict()[key], rtol=1e-5, atol=1e-6,
                                   err_msg=key)


def test_loaded_state_takes_torch_style_weights(tmp_path):
    """The imported module's keys are the model's, so cnnkit.io.save_torch/load_torch apply."""
    from cnnkit.io import load_torch, save_torch
    cnnkit.manual_seed(5)
    source = models.lenet5(input_size=16)
    imported = to_module(export(models.lenet5(input_size=16), (1, 16, 16)))
    save_torch(source, tmp_path / "w.safetensors")
    load_torch(imported, tmp_path / "w.safetensors")
    x = np.random.default_rng(0).standard_normal((1, 1, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(imported.eval().run(x)[0], source.eval()(cnnkit.tensor(x)).data,
                               rtol=1e-6, atol=1e-6)


def test_unsupported_operators_are_listed():
    node = onnx.helper.make_node("Cos", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node, onnx.helper.make_node("Sin", ["y"], ["z"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [2])])
    with pytest.raises(UnsupportedOperator, match="not supported by cnnkit: Cos, Sin"):
        load(onnx.helper.make_model(graph))


def test_malformed_graphs_are_refused_before_running(tmp_path):
    helper, FLOAT = onnx.helper, onnx.TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", FLOAT, [2])
    dangling = helper.make_graph([helper.make_node("Relu", ["nowhere"], ["y"])], "g", [x],
                                 [helper.make_tensor_value_info("y", FLOAT, [2])])
    with pytest.raises(ValueError, match="reads nowhere"):
        load(helper.make_model(dangling))
    weight = onnx.numpy_helper.from_array(np.ones(2, np.float32), "w")
    weight.data_location = onnx.TensorProto.EXTERNAL
    external = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x],
                                 [helper.make_tensor_value_info("y", FLOAT, [2])], [weight])
    with pytest.raises(ValueError, match="external files"):
        load(helper.make_model(external))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "none.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 40)
    with pytest.raises(ValueError, match="junk.onnx: not a readable ONNX model"):
        load(tmp_path / "junk.onnx")
    with pytest.raises(TypeError, match="model"):
        load(42)
