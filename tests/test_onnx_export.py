"""cnnkit.onnx.export and ``cnnkit export``: the exported graph, run by onnxruntime, gives
cnnkit's eval output (float32, rtol 1e-4, atol 1e-5) for every registered model and for
hypothesis-drawn single layers (test_onnx_export_layers.py)."""
import numpy as np
import pytest

import cnnkit
from cnnkit import models, nn
from tests.onnx_helpers import assert_runtime_matches, onnx, randomize_batchnorm

from cnnkit.onnx import NotExportable, export  # noqa: E402 - after the importorskip

MODEL_SHAPES = {"lenet5": (1, 28, 28), "vgg_small": (1, 28, 28), "resnet_small": (1, 20, 20),
                "cnn1d": (1, 64), "resnet18": (3, 32, 32)}


def test_every_registered_model_is_covered():
    assert sorted(MODEL_SHAPES) == models.names()


@pytest.mark.parametrize("name", sorted(MODEL_SHAPES))
def test_model_matches_onnxruntime(name):
    cnnkit.manual_seed(0)
    kwargs = {"num_classes": 7} if name == "resnet18" else {}
    model = randomize_batchnorm(models.get(name, **kwargs), np.random.default_rng(1))
    proto = assert_runtime_matches(model, MODEL_SHAPES[name], batch=3)
    names = {init.name for init in proto.graph.initializer}
    trained = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert trained <= names  # every weight under its state_dict key
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_file_written_atomically_and_checked(tmp_path):
    model = models.lenet5()
    path = tmp_path / "m.onnx"
    proto = export(model, (1, 28, 28), path, opset=17)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.opset_import[0].version == 17
    assert loaded.ir_version == proto.ir_version == onnx.helper.find_min_ir_version_for(
        [onnx.helper.make_opsetid("", 17)])
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_training_mode_is_restored_after_export():
    model = models.vgg_small()
    model.train()
    export(model, (1, 28, 28))
    assert all(m.training for m in model.modules())


def test_residual_add_in_graph():
    proto = export(models.resnet_small(), (1, 16, 16))
    assert sum(node.op_type == "Add" for node in proto.graph.node) == 3


@pytest.mark.parametrize("layer, shape, reason", [
    (nn.Sequential(nn.ReLU(), nn.MSELoss()), (3,), "layer '1' \\(MSELoss\\) has no ONNX export"),
    (nn.Sequential(nn.Conv2d(1, 1, 3), nn.BatchNorm2d(1, track_running_stats=False)), (1, 5, 5),
     "layer '1' \\(BatchNorm2d\\): track_running_stats=False"),
    (nn.AdaptiveAvgPool2d(3), (1, 5, 5), "does not divide"),
    (nn.MaxPool2d(2, return_indices=True), (1, 4, 4), "return_indices"),
    (nn.AvgPool2d(2, divisor_override=3), (1, 4, 4), "divisor_override"),
    (nn.Softmax(dim=0), (3,), "batch dimension"),
])
def test_unexportable_layers_are_named_with_the_reason(layer, shape, reason):
    with pytest.raises(NotExportable, match=reason):
        export(layer, shape)


def test_opset_limits():
    with pytest.raises(NotExportable, match="circular.*opset >= 19"):
        export(nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular"), (1, 5), opset=18)
    with pytest.raises(ValueError, match="opset: expected an int from 13"):
        export(nn.ReLU(), (4,), opset=12)
    with pytest.raises(ValueError, match="input_shape"):
        export(nn.ReLU(), 4)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_before_opset_20_from_elementary_nodes(approximate):
    proto = assert_runtime_matches(nn.GELU(approximate), (3, 5), opset=18)
    assert "Gelu" not in {node.op_type for node in proto.graph.node}


def test_conv_transpose_output_padding_beyond_stride():
    """dilation 2 > stride 1 allows output_padding 1 = stride: onnxruntime's ConvTranspose
    refuses that, so the export pads and adds the bias itself."""
    cnnkit.manual_seed(0)
    layer = nn.ConvTranspose2d(2, 3, 3, stride=(1, 2), dilation=2, output_padding=(1, 1))
    proto = assert_runtime_matches(layer, (2, 4, 3))
    assert [node.op_type for node in proto.graph.node] == ["ConvTranspose", "Pad", "Reshape",
                                                           "Add"]


def _saved_model(tmp_path):
    from cnnkit.train import save_model
    cnnkit.manual_seed(0)
    model = models.lenet5(input_size=16)
    path = tmp_path / "model.safetensors"
    save_model(path, model, {"model": {"name": "lenet5", "kwargs": {"input_size": 16}},
                             "input_shape": [1, 16, 16], "normalize": {"mean": [0], "std": [1]}})
    return model.eval(), path


def test_cli_export_matches_model(tmp_path, run_cli):
    from tests.onnx_helpers import ort_session
    model, path = _saved_model(tmp_path)
    code, out, err = run_cli("export", path, "-o", tmp_path / "m.onnx", "--opset", "19")
    assert code == 0, err
    assert "opset 19" in out and "(N, 1, 16, 16)" in out
    x = np.random.default_rng(0).standard_normal((4, 1, 16, 16)).astype(np.float32)
    (actual,) = ort_session(onnx.load(str(tmp_path / "m.onnx"))).run(None, {"input": x})
    np.testing.assert_allclose(actual, model(cnnkit.tensor(x)).data, rtol=1e-4, atol=1e-5)


def test_cli_export_errors_are_one_line(tmp_path, run_cli):
    _, path = _saved_model(tmp_path)
    code, _, err = run_cli("export", tmp_path / "nope.safetensors", "-o", tmp_path / "m.onnx")
    assert code == 1 and "no such file" in err and "Traceback" not in err
    code, _, err = run_cli("export", path, "-o", tmp_path / "m.onnx", "--opset", "3")
    assert code == 1 and err.count("\n") == 1 and "opset" in err
