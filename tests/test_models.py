"""Models: same state_dict keys, shapes, parameter counts and outputs as hand-written PyTorch
twins; summary numbers (shapes, params, receptive fields) checked by hand and against forward."""
from collections import OrderedDict

import numpy as np
import pytest

import cnnkit
from cnnkit import models
from cnnkit.summary import format_summary, summarize

torch = pytest.importorskip("torch")
tnn = torch.nn


# -- PyTorch twins, written independently from the cnnkit builders ------------------------------
def torch_lenet5(modern=True, input_size=28, num_classes=10):
    act = tnn.ReLU if modern else tnn.Tanh
    pool = tnn.MaxPool2d if modern else tnn.AvgPool2d
    conv2_padding, flat = {28: (0, 16 * 5 * 5), 32: (0, 16 * 6 * 6), 8: (2, 16 * 2 * 2)}[input_size]
    return tnn.Sequential(OrderedDict([
        ("features", tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), act(), pool(2),
                                    tnn.Conv2d(6, 16, 5, padding=conv2_padding), act(), pool(2))),
        ("flatten", tnn.Flatten()),
        ("classifier", tnn.Sequential(tnn.Linear(flat, 120), act(), tnn.Linear(120, 84), act(),
                                      tnn.Linear(84, num_classes)))]))


def torch_vgg_small(stages, hidden, input_size=28, in_channels=1, num_classes=10, dropout=0.3):
    layers, channels, size = [], in_channels, input_size
    for stage in stages:
        for width in stage:
            layers += [tnn.Conv2d(channels, width, 3, padding=1, bias=False),
                       tnn.BatchNorm2d(width), tnn.ReLU()]
            channels = width
        layers.append(tnn.MaxPool2d(2))
        size //= 2
    return tnn.Sequential(OrderedDict([
        ("features", tnn.Sequential(*layers)), ("flatten", tnn.Flatten()),
        ("classifier", tnn.Sequential(tnn.Dropout(dropout), tnn.Linear(channels * size * size,
                                                                       hidden),
                                      tnn.ReLU(), tnn.Dropout(dropout),
                                      tnn.Linear(hidden, num_classes)))]))


class TorchBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = tnn.Sequential(tnn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                                   tnn.BatchNorm2d(cout), tnn.ReLU(),
                                   tnn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                   tnn.BatchNorm2d(cout))
        self.shortcut = tnn.Identity() if stride == 1 and cin == cout else tnn.Sequential(
            tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))
        self.relu = tnn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def torch_resnet_small(widths=(16, 32, 64), blocks=1, in_channels=1, num_classes=10):
    stem = tnn.Sequential(tnn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                          tnn.BatchNorm2d(widths[0]), tnn.ReLU())
    stages, channels = [], widths[0]
    for i, width in enumerate(widths):
        stage = []
        for b in range(blocks):
            stage.append(TorchBlock(channels, width, 2 if i > 0 and b == 0 else 1))
            channels = width
        stages.append(tnn.Sequential(*stage))
    return tnn.Sequential(OrderedDict([
        ("stem", stem), ("stages", tnn.Sequential(*stages)), ("pool", tnn.AdaptiveAvgPool2d(1)),
        ("flatten", tnn.Flatten()), ("fc", tnn.Linear(channels, num_classes))]))


def torch_cnn1d(widths=(16, 32, 64), kernel_size=7, in_channels=1, num_classes=10):
    layers, channels = [], in_channels
    for width in widths:
        layers += [tnn.Conv1d(channels, width, kernel_size, padding=kernel_size // 2, bias=False),
                   tnn.BatchNorm1d(width), tnn.ReLU(), tnn.MaxPool1d(2)]
        channels = width
    return tnn.Sequential(OrderedDict([
        ("features", tnn.Sequential(*layers)), ("pool", tnn.AdaptiveAvgPool1d(1)),
        ("flatten", tnn.Flatten()), ("fc", tnn.Linear(channels, num_classes))]))


VGG_DEFAULT = models.vgg.DEFAULT_STAGES, models.vgg.vgg_small.__defaults__[4]

CASES = {
    "lenet5": (lambda: models.get("lenet5"), lambda: torch_lenet5(), (3, 1, 28, 28)),
    "lenet5_classic": (lambda: models.get("lenet5", modern=False),
                       lambda: torch_lenet5(modern=False), (3, 1, 28, 28)),
    "lenet5_digits": (lambda: models.get("lenet5", input_size=8),
                      lambda: torch_lenet5(input_size=8), (3, 1, 8, 8)),
    "lenet5_32": (lambda: models.get("lenet5", input_size=32, num_classes=7),
                  lambda: torch_lenet5(input_size=32, num_classes=7), (2, 1, 32, 32)),
    "vgg_small": (lambda: models.get("vgg_small"),
                  lambda: torch_vgg_small(*VGG_DEFAULT), (3, 1, 28, 28)),
    "vgg_small_rgb": (lambda: models.get("vgg_small", in_channels=3, num_classes=4,
                                         input_size=32, stages=[[8], [8, 16]], hidden=32),
                      lambda: torch_vgg_small([[8], [8, 16]], 32, 32, 3, 4), (2, 3, 32, 32)),
    "resnet_small": (lambda: models.get("resnet_small"), lambda: torch_resnet_small(),
                     (3, 1, 28, 28)),
    "resnet_small_2": (lambda: models.get("resnet_small", widths=(8, 16), blocks_per_stage=2,
                                          in_channels=3),
                       lambda: torch_resnet_small((8, 16), 2, 3), (2, 3, 32, 32)),
    "cnn1d": (lambda: models.get("cnn1d"), lambda: torch_cnn1d(), (3, 1, 100)),
    "cnn1d_2ch": (lambda: models.get("cnn1d", in_channels=2, num_classes=5, widths=(8, 8),
                                     kernel_size=3),
                  lambda: torch_cnn1d((8, 8), 3, 2, 5), (2, 2, 64)),
}


def _randomise_buffers(model, rng):
    """Non-trivial BN statistics, so eval mode really uses the loaded running mean/var."""
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.data[...] = rng.standard_normal(buffer.shape) * 0.1
        elif name.endswith("running_var"):
            buffer.data[...] = rng.random(buffer.shape) + 0.5
        elif name.endswith("num_batches_tracked"):
            buffer.data[...] = 3


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch_twin(case, rng):
    build, build_twin, shape = CASES[case]
    cnnkit.manual_seed(0)
    model, twin = build(), build_twin()
    state, twin_state = model.state_dict(), twin.state_dict()
    assert list(state) == list(twin_state)
    for key, value in state.items():
        assert value.shape == tuple(twin_state[key].shape), key
        assert value.dtype == twin_state[key].numpy().dtype, key
    assert sum(p.size for p in model.parameters()) == sum(p.numel() for p in twin.parameters())

    _randomise_buffers(model, rng)
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    x = rng.standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = twin.eval()(torch.from_numpy(x)).numpy()
    out = model.eval()(cnnkit.tensor(x)).data
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", ["resnet_small_2", "vgg_small_rgb"])
def test_training_mode_gradients_match_torch(case, rng):
    """Batch statistics, the residual sum and the backward pass agree with PyTorch."""
    build, build_twin, shape = CASES[case]
    cnnkit.manual_seed(0)
    model, twin = build(), build_twin()
    for module in list(model.modules()) + list(twin.modules()):  # dropout off: masks differ
        if hasattr(module, "p"):
            module.p = 0.0
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                          model.state_dict().items()})
    x = rng.standard_normal(shape).astype(np.float32)
    labels = rng.integers(0, 4, shape[0])
    loss = cnnkit.functional.cross_entropy(model.train()(cnnkit.tensor(x)), labels)
    loss.backward()
    twin_loss = tnn.functional.cross_entropy(twin.train()(torch.from_numpy(x)),
                                             torch.from_numpy(labels))
    twin_loss.backward()
    np.testing.assert_allclose(loss.item(), twin_loss.item(), rtol=1e-5)
    twin_params = dict(twin.named_parameters())
    for name, param in model.named_parameters():
        np.testing.assert_allclose(param.grad, twin_params[name].grad.numpy(), rtol=1e-3,
                                   atol=1e-5, err_msg=name)
    twin_state = twin.state_dict()
    for name, buffer in model.named_buffers():  # running statistics updated alike
        np.testing.assert_allclose(buffer.data, twin_state[name].numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=name)


def test_registry():
    assert models.names() == ["cnn1d", "lenet5", "resnet18", "resnet_small", "vgg_small"]
    with pytest.raises(ValueError, match="unknown model 'nope'.*lenet5"):
        models.get("nope")
    with pytest.raises(ValueError, match="vgg_small.*bogus"):
        models.get("vgg_small", bogus=1)
    with pytest.raises(ValueError, match="num_classes"):
        models.get("lenet5", num_classes=0)
    with pytest.raises(ValueError, match="input_size"):
        models.get("vgg_small", input_size=(3, 3), stages=[[4], [4]])
    with pytest.raises(ValueError, match="kernel_size"):
        models.get("cnn1d", kernel_size=4)
    with pytest.raises(ValueError, match="widths"):
        models.get("resnet_small", widths=())


def test_default_vgg_small_is_sized_for_fashion_mnist():
    model = models.get("vgg_small")
    x = cnnkit.tensor(np.zeros((2, 1, 28, 28), np.float32))
    assert model.eval()(x).shape == (2, 10)
    assert [type(m).__name__ for m in model.features][:3] == ["Conv2d", "BatchNorm2d", "ReLU"]


# -- summary -------------------------------------------------------------------------------------
def test_lenet5_summary_by_hand():
    summary = summarize(models.get("lenet5"), (1, 28, 28))
    rows = {layer.name: layer for layer in summary.layers}
    assert summary.total_params == 61_706  # 156 + 2,416 + 48,120 + 10,164 + 850
    assert rows["features.0"].params == 6 * 1 * 25 + 6
    assert rows["features.0"].output_shape == (6, 28, 28)
    assert rows["features.2"].output_shape == (6, 14, 14)
    assert rows["features.3"].output_shape == (16, 10, 10)
    assert rows["features.5"].output_shape == (16, 5, 5)
    assert rows["flatten"].output_shape == (400,)
    assert rows["classifier.4"].output_shape == (10,)
    # r_out = r_in + (k − 1)·j_in, j_out = j_in·s
    assert [rows[f"features.{i}"].receptive_field for i in (0, 2, 3, 5)] == \
        [(5, 5), (6, 6), (14, 14), (16, 16)]
    assert [rows[f"features.{i}"].jump for i in (0, 2, 3, 5)] == [(1, 1), (2, 2), (2, 2), (4, 4)]
    assert rows["classifier.0"].receptive_field is None
    assert rows["features.0"].macs == 6 * 28 * 28 * 25
    assert rows["features.3"].macs == 16 * 10 * 10 * 6 * 25
    assert rows["classifier.0"].macs == 400 * 120
    # a dense layer for conv1's mapping: (1·28·28)·(6·28·28) weights + 6·28·28 biases
    assert rows["features.0"].dense_equivalent == 784 * 4704 + 4704
    text = format_summary(summary)
    assert "61,706" in text and "16×5×5" in text and "16×16" in text


@pytest.mark.parametrize("name, shape", [("lenet5", (1, 28, 28)), ("vgg_small", (1, 28, 28)),
                                         ("resnet_small", (1, 28, 28)), ("cnn1d", (1, 50))])
def test_summary_agrees_with_forward_and_torch(name, shape):
    model = models.get(name)
    summary = summarize(model, shape)
    recorded = {}
    handles = [module.register_forward_hook(
        lambda m, args, out, key=key: recorded.__setitem__(key, out.shape[1:]))
        for key, module in model.named_modules() if key]
    model.eval()(cnnkit.tensor(np.zeros((1,) + shape, np.float32)))
    for handle in handles:
        handle.remove()
    for layer in summary.layers:
        assert layer.output_shape == recorded[layer.name], layer.name
    assert summary.total_params == sum(p.size for p in model.parameters())


def test_receptive_field_of_resnet_follows_the_longest_branch():
    summary = summarize(models.get("resnet_small", widths=(4, 8)), (1, 16, 16))
    rows = {layer.name: layer for layer in summary.layers}
    # stem 3; block 1 body +2 +2 = 7; block 2: stride-2 conv +2·1 = 9 (jump 2), conv +2·2 = 13
    assert rows["stages.0.0"].receptive_field == (7, 7)
    assert rows["stages.1.0.shortcut.0"].receptive_field == (7, 7)
    assert rows["stages.1.0"].receptive_field == (13, 13)
    assert rows["stages.1.0"].jump == (2, 2)


def test_summary_rejects_a_wrong_input():
    with pytest.raises(ValueError, match="features.0.*3 input channels|expects 1 input channels"):
        summarize(models.get("lenet5"), (3, 28, 28))
    with pytest.raises(ValueError, match="Linear"):
        summarize(models.get("lenet5"), (1, 32, 32))
    with pytest.raises(ValueError, match="input_shape"):
        summarize(models.get("lenet5"), (1, 0, 28))
