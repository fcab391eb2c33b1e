"""cnnkit.plots and ``cnnkit plot``: the data behind each picture, and valid PNG files written."""
import json
import os

import numpy as np
import pytest
from PIL import Image

import cnnkit
from cnnkit import nn
from cnnkit.plots import (
    confusion_matrix,
    feature_maps,
    first_conv_weight,
    format_receptive_fields,
    plot_confusion,
    plot_curves,
    plot_features,
    plot_filters,
    plot_receptive_field,
    predict_labels,
    read_metrics,
    receptive_fields,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"



def assert_png(path, min_size=(50, 50)):
    with open(path, "rb") as f:
        data = f.read()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 0  # something was drawn
    leftovers = [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".")]
    assert not leftovers  # the atomic write cleaned up its temporary file


def tiny_model():
    cnnkit.random.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 3))


@pytest.fixture
def image(rng):
    return rng.random((1, 8, 8)).astype(np.float32)


# -- filters ---------------------------------------------------------------------------------------

def test_first_conv_weight_and_filter_grid(tmp_path):
    model = tiny_model()
    weight = first_conv_weight(model)
    assert weight.shape == (4, 1, 3, 3)
    np.testing.assert_array_equal(weight, model[0].weight.data)
    plot_filters(model, tmp_path / "f.png")
    assert_png(tmp_path / "f.png")
    rgb = np.random.default_rng(1).standard_normal((5, 3, 5, 5))
    figure = plot_filters(rgb, tmp_path / "rgb.png")
    assert len([ax for ax in figure.axes if ax.images]) == 5
    many = plot_filters(np.ones((2, 6, 3, 3)), max_channels=4)
    assert len([ax for ax in many.axes if ax.images]) == 2 * 4
    with pytest.raises(ValueError, match="no Conv"):
        first_conv_weight(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="K, C, kh, kw"):
        plot_filters(np.ones((3, 3)))


# -- features --------------------------------------------------------------------------------------

def test_feature_maps_are_the_layer_outputs(image, tmp_path):
    model = tiny_model()
    model.train()
    maps = feature_maps(model, image)
    assert [(name, kind) for name, kind, _ in maps] == [
        ("0", "Conv2d"), ("1", "ReLU"), ("2", "MaxPool2d"), ("3", "Conv2d"), ("4", "ReLU")]
    assert [m.shape for _, _, m in maps] == [(4, 8, 8), (4, 8, 8), (4, 4, 4), (3, 2, 2),
                                             (3, 2, 2)]
    with cnnkit.no_grad():
        first = model[0](cnnkit.tensor(image[None])).data[0]
    np.testing.assert_allclose(maps[0][2], first, rtol=1e-6)
    np.testing.assert_array_equal(maps[1][2], np.maximum(first, 0))
    assert model.training  # the mode is restored
    assert [n for n, _, _ in feature_maps(model, image, layers=["3"])] == ["3"]
    with pytest.raises(ValueError, match="unknown layer names"):
        feature_maps(model, image, layers=["nope"])
    figure = plot_features(model, image, tmp_path / "maps.png", max_channels=2)
    assert_png(tmp_path / "maps.png")
    assert len([ax for ax in figure.axes if ax.images]) == 1 + 5 * 2


def test_feature_maps_of_a_1d_model(rng):
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 2))
    maps = feature_maps(model, rng.random((2, 8)).astype(np.float32))
    assert [m.shape for _, _, m in maps] == [(3, 1, 6), (3, 1, 6)]
    plot_features(model, rng.random((2, 8)).astype(np.float32))


# -- curves ----------------------------------------------------------------------------------------

ROWS = [{"epoch": e, "lr": 0.1, "train_loss": 2.0 / e, "train_accuracy": 0.5 + e / 10,
         "test_loss": 2.2 / e, "test_accuracy": 0.4 + e / 10} for e in (1, 2, 3)]


def test_read_metrics_json_csv_and_errors(tmp_path):
    from cnnkit.train.metrics import MetricsLog
    run = tmp_path / "run"
    log = MetricsLog(run)
    for row in ROWS:
        log.append(row)
    from_json = read_metrics(run)
    from_csv = read_metrics(run / "metrics.csv")
    for columns in (from_json, from_csv):
        np.testing.assert_allclose(columns["test_loss"], [2.2, 1.1, 2.2 / 3])
        np.testing.assert_array_equal(columns["epoch"], [1, 2, 3])
    columns = {k: [r[k] for r in ROWS] for k in ROWS[0]}
    (tmp_path / "cols.json").write_text(json.dumps(columns))
    np.testing.assert_allclose(read_metrics(tmp_path / "cols.json")["train_accuracy"],
                               [0.6, 0.7, 0.8])
    with pytest.raises(FileNotFoundError, match="no metrics.json or metrics.csv"):
        read_metrics(tmp_path)
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match="bad.json"):
        read_metrics(tmp_path / "bad.json")


def test_plot_curves(tmp_path):
    metrics = {k: np.array([r[k] for r in ROWS], dtype=float) for k in ROWS[0]}
    figure = plot_curves(metrics, tmp_path / "c.png")
    assert_png(tmp_path / "c.png")
    loss_ax, acc_ax = figure.axes
    assert {line.get_label() for line in loss_ax.lines} == {"train_loss", "test_loss"}
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata(), [60, 70, 80])  # in percent
    with pytest.raises(ValueError, match="no loss or accuracy"):
        plot_curves({"epoch": np.arange(3)})


# -- confusion -------------------------------------------------------------------------------------

def test_confusion_matrix_and_predictions(tmp_path, rng):
    labels = np.array([0, 0, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 2, 0, 2])
    m = confusion_matrix(predicted, labels, 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    model = tiny_model()
    images = rng.random((7, 1, 8, 8)).astype(np.float32)
    with cnnkit.no_grad():
        expected = model(cnnkit.tensor(images)).data.argmax(1)
    np.testing.assert_array_equal(predict_labels(model, images, batch_size=3), expected)
    figure = plot_confusion(m, ["a", "b", "c"], tmp_path / "cm.png")
    assert "accuracy 66.67% of 6" in figure.axes[0].get_title()
    assert_png(tmp_path / "cm.png")
    plot_confusion(m, normalize=True)
    with pytest.raises(ValueError, match="square"):
        plot_confusion(np.ones((2, 3)))
    with pytest.raises(ValueError, match="class_names"):
        plot_confusion(m, ["a"])


# -- receptive field -------------------------------------------------------------------------------

def gradient_support(model, input_shape):
    """Rows and columns of the input that the centre unit of the output depends on, by autograd."""
    x = cnnkit.tensor(np.ones((1,) + input_shape), requires_grad=True)
    y = model(x)
    g = np.zeros(y.shape)
    g[(0, 0) + tuple(s // 2 for s in y.shape[2:])] = 1
    y.backward(g)
    rows, cols = np.nonzero(np.abs(x.grad[0]).sum(axis=0))
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


@pytest.mark.parametrize("layers, expected", [
    ([nn.Conv2d(1, 1, 3)] * 3, [3, 5, 7]),
    ([nn.Conv2d(1, 1, 3), nn.AvgPool2d(2), nn.Conv2d(1, 1, 3)], [3, 4, 8]),
    ([nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3, dilation=2)], [3, 11]),
])
def test_receptive_fields_match_autograd(layers, expected):
    fresh = []
    for layer in layers:  # distinct modules with positive weights, so no gradient cancels
        if isinstance(layer, nn.Conv2d):
            layer = nn.Conv2d(1, 1, layer.kernel_size, stride=layer.stride,
                              dilation=layer.dilation)
            layer.weight.data[...] = 1.0
        fresh.append(layer)
    shape = (1, 23, 23)
    rows = receptive_fields(nn.Sequential(*fresh), shape)
    assert [rf[0] for _, _, _, rf, _ in rows] == expected
    for depth in range(1, len(fresh) + 1):
        if isinstance(fresh[depth - 1], nn.Conv2d):
            size = gradient_support(nn.Sequential(*fresh[:depth]).double(), shape)
            assert size == (expected[depth - 1],) * 2
    assert "receptive field" in format_receptive_fields(rows, shape)


def test_plot_receptive_field(tmp_path, image):
    model = tiny_model()
    figure = plot_receptive_field(model, (1, 8, 8), tmp_path / "rf.png", image=image)
    assert_png(tmp_path / "rf.png")
    assert len(figure.axes[0].patches) == 1 + 3  # the input frame + conv, pool, conv
    with pytest.raises(ValueError, match="no convolution"):
        plot_receptive_field(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), (1, 8, 8))


# -- the commands ----------------------------------------------------------------------------------

@pytest.fixture
def model_file(tmp_path):
    from cnnkit import models
    from cnnkit.train import save_model
    model = models.get("lenet5", input_size=8)
    path = tmp_path / "model.safetensors"
    save_model(path, model, {"model": {"name": "lenet5", "kwargs": {"input_size": [8, 8]}},
                             "input_shape": [1, 8, 8], "dataset": "digits",
                             "normalize": {"mean": [0.3], "std": [0.4]},
                             "classes": [str(d) for d in range(10)]})
    return path


@pytest.fixture
def digit_png(tmp_path, rng):
    path = tmp_path / "digit.png"
    Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(path)
    return path


def test_plot_commands_write_pngs(run_cli, tmp_path, model_file, digit_png):
    from cnnkit.train.metrics import MetricsLog
    log = MetricsLog(tmp_path / "run")
    for row in ROWS:
        log.append(row)
    out = tmp_path / "out"
    out.mkdir()
    commands = {
        "filters.png": ["filters", model_file],
        "features.png": ["features", model_file, digit_png],
        "curves.png": ["curves", tmp_path / "run"],
        "confusion.png": ["confusion", model_file, "--limit-test", "40"],
        "rf.png": ["receptive-field", model_file, "--image", digit_png],
        "rf_name.png": ["receptive-field", "vgg_small", "--input-shape", "1,16,16"],
        "filters_name.png": ["filters", "lenet5"],
        "filters_dir.png": ["filters", tmp_path],  # a run directory holding model.safetensors
    }
    for name, args in commands.items():
        code, stdout, stderr = run_cli("plot", *args, "-o", out / name)
        assert code == 0, (args, stderr)
        assert f"wrote {out / name}" in stdout
        assert_png(out / name)
        if name == "confusion.png":
            assert "40 test images" in stdout


@pytest.mark.parametrize("args, message", [
    (["filters", "no_such_model"], "no such model/checkpoint file"),
    (["curves", "no_such_dir"], "no such run directory"),
    (["receptive-field", "lenet5", "--input-shape", "1,x"], "--input-shape"),
    (["filters", "lenet5", "-o", "/no/such/dir/f.png"], "does not exist"),
])
def test_plot_errors_are_one_line(run_cli, args, message):
    code, _, err = run_cli("plot", *args)
    assert code in (1, 2) and message in err and err.startswith("cnnkit plot: error:")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_plot_features_wrong_image_size_and_unreadable(run_cli, tmp_path, model_file):
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(big)
    code, _, err = run_cli("plot", "features", model_file, big, "-o", tmp_path / "x.png")
    assert code == 1 and "--resize" in err
    assert run_cli("plot", "features", model_file, big, "--resize", "-o",
                   tmp_path / "x.png")[0] == 0
    junk = tmp_path / "junk.png"
    junk.write_text("nope")
    code, _, err = run_cli("plot", "features", model_file, junk, "-o", tmp_path / "y.png")
    assert code == 1 and "cannot read image" in err and "Traceback" not in err


def test_plot_help(run_cli):
    for kind in ("filters", "features", "curves", "confusion", "receptive-field"):
        code, out, _ = run_cli("plot", kind, "--help")
        assert code == 0 and "-o OUT.png" in out
