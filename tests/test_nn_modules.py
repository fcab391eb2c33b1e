"""cnnkit.nn against torch.nn: every layer with torch's weights copied in through load_state_dict
(so the key names must agree), outputs and all gradients in float32 and float64, batch-norm
running statistics over several steps, state_dict/load_state_dict rules, reprs, initialisation."""
import math

import numpy as np
import pytest
import torch

import cnnkit
import cnnkit.random
from cnnkit import nn
from cnnkit.nn import init

tnn = torch.nn
DTYPES = [np.float32, np.float64]
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def close(actual, expected, dtype, scale=1.0, name="value"):
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    actual = np.asarray(actual)
    assert actual.shape == tuple(expected.shape), f"{name}: {actual.shape} != {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"{name}: dtype {actual.dtype}, expected {dtype}"
    rtol, atol = (1e-4, 1e-5 * scale) if dtype == np.float32 else (1e-10, 1e-12 * scale)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=name)


def paired(ours, theirs, dtype):
    """Put both models in ``dtype`` and copy torch's parameters and buffers into ours."""
    theirs.to(TORCH_DTYPE[dtype])
    ours.to(dtype)
    result = ours.load_state_dict(theirs.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    return ours, theirs


def forward_backward(ours, theirs, x, dtype, seed=0, scale=10.0):
    """One forward and backward through both; compare output, input gradient, every parameter
    gradient (by name) and every buffer."""
    xc = cnnkit.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out_c, out_t = ours(xc), theirs(xt)
    close(out_c.data, out_t, dtype, scale, "output")
    g = np.random.default_rng(seed).standard_normal(tuple(out_t.shape)).astype(dtype)
    out_c.backward(g)
    out_t.backward(torch.from_numpy(g))
    close(xc.grad, xt.grad, dtype, scale, "input gradient")
    ours_params, torch_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert list(ours_params) == list(torch_params)
    for name, param in ours_params.items():
        assert param.grad is not None, f"{name}: no gradient"
        close(param.grad, torch_params[name].grad, dtype, scale * 10, f"gradient of {name}")
    torch_buffers = dict(theirs.named_buffers())
    for name, buf in ours.named_buffers():
        if buf.dtype.kind == "f":
            close(buf.data, torch_buffers[name], dtype, scale, name)
        else:
            np.testing.assert_array_equal(buf.data, torch_buffers[name].numpy(), err_msg=name)


LAYERS = {
    "conv1d": (lambda m: m.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 9)),
    "conv2d_groups_nobias": (lambda m: m.Conv2d(4, 6, 3, padding=1, groups=2, bias=False),
                             (2, 4, 5, 6)),
    "conv2d_same_dilated": (lambda m: m.Conv2d(3, 4, (3, 2), dilation=2, padding="same"),
                            (2, 3, 7, 6)),
    "conv2d_valid": (lambda m: m.Conv2d(2, 3, 3, padding="valid", stride=(2, 1)), (1, 2, 7, 6)),
    "conv2d_reflect": (lambda m: m.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
                       (2, 2, 5, 5)),
    "conv2d_circular": (lambda m: m.Conv2d(2, 3, 3, padding=(2, 1), padding_mode="circular"),
                        (2, 2, 5, 4)),
    "conv2d_replicate": (lambda m: m.Conv2d(2, 3, 2, padding=1, padding_mode="replicate",
                                            stride=2), (1, 2, 5, 6)),
    "conv3d": (lambda m: m.Conv3d(2, 4, 2, stride=(1, 2, 1), padding=1), (2, 2, 3, 4, 3)),
    "conv_transpose1d": (lambda m: m.ConvTranspose1d(4, 3, 3, stride=2, padding=1,
                                                     output_padding=1), (2, 4, 5)),
    "conv_transpose2d": (lambda m: m.ConvTranspose2d(4, 6, 3, stride=2, groups=2, dilation=2),
                         (2, 4, 3, 4)),
    "conv_transpose2d_nobias": (lambda m: m.ConvTranspose2d(3, 2, (2, 3), padding=(0, 1),
                                                            bias=False), (1, 3, 4, 4)),
    "conv_transpose3d": (lambda m: m.ConvTranspose3d(2, 3, 2, stride=2), (1, 2, 2, 3, 2)),
    "linear": (lambda m: m.Linear(5, 3), (4, 5)),
    "linear_nobias_3d": (lambda m: m.Linear(5, 3, bias=False), (2, 4, 5)),
    "maxpool1d": (lambda m: m.MaxPool1d(2), (2, 3, 8)),
    "maxpool2d": (lambda m: m.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 7, 6)),
    "maxpool3d": (lambda m: m.MaxPool3d(2), (1, 2, 4, 4, 4)),
    "avgpool1d": (lambda m: m.AvgPool1d(3, 2, 1), (2, 3, 8)),
    "avgpool2d": (lambda m: m.AvgPool2d(2, padding=1, count_include_pad=False), (2, 3, 5, 5)),
    "avgpool3d": (lambda m: m.AvgPool3d(2), (1, 2, 4, 4, 2)),
    "adaptive_avg1d": (lambda m: m.AdaptiveAvgPool1d(3), (2, 3, 7)),
    "adaptive_avg2d": (lambda m: m.AdaptiveAvgPool2d((2, 3)), (2, 3, 5, 7)),
    "adaptive_avg3d": (lambda m: m.AdaptiveAvgPool3d(2), (1, 2, 3, 5, 4)),
    "adaptive_max1d": (lambda m: m.AdaptiveMaxPool1d(4), (2, 3, 9)),
    "adaptive_max2d": (lambda m: m.AdaptiveMaxPool2d(3), (2, 3, 7, 5)),
    "adaptive_max3d": (lambda m: m.AdaptiveMaxPool3d((1, 2, 3)), (1, 2, 3, 5, 4)),
    "flatten": (lambda m: m.Flatten(), (2, 3, 4, 5)),
    "flatten_0_2": (lambda m: m.Flatten(0, 2), (2, 3, 4, 5)),
    "relu": (lambda m: m.ReLU(), (3, 4)),
    "leaky_relu": (lambda m: m.LeakyReLU(0.1), (3, 4)),
    "elu": (lambda m: m.ELU(0.5), (3, 4)),
    "gelu": (lambda m: m.GELU(), (3, 4)),
    "gelu_tanh": (lambda m: m.GELU("tanh"), (3, 4)),
    "sigmoid": (lambda m: m.Sigmoid(), (3, 4)),
    "tanh": (lambda m: m.Tanh(), (3, 4)),
    "softmax": (lambda m: m.Softmax(dim=1), (3, 4)),
    "log_softmax": (lambda m: m.LogSoftmax(dim=-1), (3, 4)),
    "identity": (lambda m: m.Identity(54, unused=1), (3, 4)),
    "batchnorm1d_2d_input": (lambda m: m.BatchNorm1d(4), (6, 4)),
    "batchnorm1d_3d_input": (lambda m: m.BatchNorm1d(3, momentum=None), (4, 3, 5)),
    "batchnorm2d": (lambda m: m.BatchNorm2d(3), (2, 3, 4, 5)),
    "batchnorm2d_no_affine": (lambda m: m.BatchNorm2d(3, affine=False), (2, 3, 4, 5)),
    "batchnorm2d_no_stats": (lambda m: m.BatchNorm2d(3, track_running_stats=False),
                             (2, 3, 4, 5)),
    "batchnorm3d": (lambda m: m.BatchNorm3d(2, eps=1e-3, momentum=0.3), (2, 2, 3, 2, 3)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_matches_torch_in_train_and_eval_mode(name, dtype):
    build, shape = LAYERS[name]
    ours, theirs = paired(build(nn), build(tnn), dtype)
    rng = np.random.default_rng(1)
    for step in range(2):  # batch-norm statistics move between the steps
        x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
        forward_backward(ours, theirs, x, dtype, seed=step)
    ours.eval()
    theirs.eval()
    forward_backward(ours, theirs, rng.standard_normal(shape).astype(dtype), dtype, seed=5)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_running_statistics_over_several_steps(momentum):
    ours, theirs = paired(nn.BatchNorm2d(3, momentum=momentum),
                          tnn.BatchNorm2d(3, momentum=momentum), np.float64)
    rng = np.random.default_rng(2)
    for step in range(4):
        x = rng.standard_normal((4, 3, 2, 3)) * (step + 1) + step
        ours(cnnkit.tensor(x))
        theirs(torch.tensor(x))
    assert int(ours.num_batches_tracked.data) == 4
    assert ours.num_batches_tracked.dtype == np.int64
    for key in ("running_mean", "running_var"):
        close(getattr(ours, key).data, getattr(theirs, key), np.float64, name=key)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 3, 2, 3))
    close(ours(cnnkit.tensor(x)).data, theirs(torch.tensor(x)), np.float64)
    assert int(ours.num_batches_tracked.data) == 4  # eval mode does not count


def test_conv_transpose_output_size_matches_torch():
    ours, theirs = paired(nn.ConvTranspose2d(2, 3, 3, stride=3, padding=1),
                          tnn.ConvTranspose2d(2, 3, 3, stride=3, padding=1), np.float64)
    x = np.random.default_rng(3).standard_normal((1, 2, 4, 3))
    for size in [(10, 8), (11, 9), (1, 3, 12, 7)]:
        close(ours(cnnkit.tensor(x), output_size=size).data,
              theirs(torch.tensor(x), output_size=size), np.float64)
    with pytest.raises(ValueError, match="output size"):
        ours(cnnkit.tensor(x), output_size=(13, 8))


@pytest.mark.parametrize("padding, stride", [(((1, 2), (0, 1)), 1), ("same", 2), ("full", 1)])
def test_conv_module_passes_cnnkit_padding_extensions_through(padding, stride):
    layer = nn.Conv2d(2, 3, 3, stride=stride, padding=padding).double()
    x = cnnkit.tensor(np.random.default_rng(7).standard_normal((1, 2, 7, 6)))
    expected = cnnkit.functional.conv2d(x, layer.weight, layer.bias, stride, padding)
    np.testing.assert_array_equal(layer(x).data, expected.data)
    assert f"padding={padding}" in repr(layer)


def test_small_cnn_trains_like_torch():
    """Three SGD steps of a conv-bn-relu-pool-dropout-linear net: same weights afterwards."""
    def build(m):
        return m.Sequential(m.Conv2d(1, 4, 3, padding=1), m.BatchNorm2d(4), m.ReLU(),
                            m.MaxPool2d(2), m.Flatten(), m.Dropout(0.0), m.Linear(36, 5))
    ours, theirs = paired(build(nn), build(tnn), np.float32)
    rng = np.random.default_rng(4)
    loss_c, loss_t = nn.CrossEntropyLoss(label_smoothing=0.1), tnn.CrossEntropyLoss(
        label_smoothing=0.1)
    for _ in range(3):
        x = rng.standard_normal((6, 1, 6, 6)).astype(np.float32)
        y = rng.integers(0, 5, 6)
        ours.zero_grad()
        theirs.zero_grad()
        lc = loss_c(ours(cnnkit.tensor(x)), y)
        lt = loss_t(theirs(torch.tensor(x)), torch.from_numpy(y))
        close(lc.data, lt, np.float32, name="loss")
        lc.backward()
        lt.backward()
        with torch.no_grad():
            for p in theirs.parameters():
                p -= 0.1 * p.grad
        for p in ours.parameters():
            p.data -= 0.1 * p.grad
    for key, value in theirs.state_dict().items():
        if value.dtype == torch.float32:
            close(ours.state_dict()[key], value, np.float32, scale=10, name=key)


# -- losses as modules -------------------------------------------------------------------------

def test_loss_modules_match_torch_and_register_weights():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3))
    y = np.array([0, 2, -100, 1])
    w = np.array([1.0, 2.0, 0.5])
    pairs = [
        (nn.CrossEntropyLoss(w, reduction="sum", label_smoothing=0.2),
         tnn.CrossEntropyLoss(torch.tensor(w), reduction="sum", label_smoothing=0.2), y),
        (nn.NLLLoss(w), tnn.NLLLoss(torch.tensor(w)), y),
        (nn.MSELoss(reduction="none"), tnn.MSELoss(reduction="none"), x[::-1].copy()),
        (nn.BCEWithLogitsLoss(pos_weight=w), tnn.BCEWithLogitsLoss(pos_weight=torch.tensor(w)),
         rng.uniform(0, 1, (4, 3))),
    ]
    for ours, theirs, target in pairs:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert repr(ours) == repr(theirs)
        target_t = torch.from_numpy(target)
        close(ours(cnnkit.tensor(x), target).data, theirs(torch.tensor(x), target_t),
              np.float64, name=type(ours).__name__)
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


# -- state_dict --------------------------------------------------------------------------------

class _Nested:
    """The same nested architecture in either library (m = cnnkit.nn or torch.nn)."""

    @staticmethod
    def build(m):
        class Block(m.Module):
            def __init__(self):
                super().__init__()
                self.conv = m.Conv2d(3, 3, 3, padding=1, bias=False)
                self.bn = m.BatchNorm2d(3)

            def forward(self, x):
                return m.functional.relu(self.bn(self.conv(x)) + x)

        class Net(m.Module):
            def __init__(self):
                super().__init__()
                self.stem = m.Sequential(m.Conv2d(1, 3, 3, padding=1), m.BatchNorm2d(3),
                                         m.ReLU())
                self.blocks = m.ModuleList([Block(), Block()])
                self.head = m.Sequential()
                self.head.append(m.AdaptiveAvgPool2d(1))
                self.head.append(m.Flatten())
                self.fc = m.Linear(3, 2)

            def forward(self, x):
                x = self.stem(x)
                for block in self.blocks:
                    x = block(x)
                return self.fc(self.head(x))
        return Net()


def test_state_dict_keys_and_shapes_equal_torch():
    seq = [lambda m: m.Sequential(m.Conv2d(1, 8, 3), m.BatchNorm2d(8), m.ReLU(), m.Flatten(),
                                  m.Linear(8, 2)), _Nested.build]
    for build in seq:
        ours, theirs = build(nn), build(tnn)
        sd_c, sd_t = ours.state_dict(), theirs.state_dict()
        assert list(sd_c) == list(sd_t)
        for key in sd_t:
            assert sd_c[key].shape == tuple(sd_t[key].shape), key
            assert isinstance(sd_c[key], np.ndarray)
        assert sd_c["1.num_batches_tracked" if "1.num_batches_tracked" in sd_c else
                    "stem.1.num_batches_tracked"].dtype == np.int64
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in
                                                          theirs.named_parameters()]
        assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
        assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
        assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]


@pytest.mark.parametrize("dtype", DTYPES)
def test_nested_model_matches_torch_after_loading_its_state_dict(dtype):
    ours, theirs = paired(_Nested.build(nn), _Nested.build(tnn), dtype)
    x = np.random.default_rng(6).standard_normal((2, 1, 5, 5)).astype(dtype)
    forward_backward(ours, theirs, x, dtype)
    ours.eval()
    theirs.eval()
    forward_backward(ours, theirs, x, dtype)


def test_load_state_dict_errors_like_torch_and_copies_nothing_on_error():
    ours, theirs = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), tnn.Sequential(
        tnn.Linear(3, 2), tnn.BatchNorm1d(2))
    before = {k: v.copy() for k, v in ours.state_dict().items()}
    state = {k: v.numpy() for k, v in theirs.state_dict().items()}
    del state["1.running_var"]
    state["extra.weight"] = np.zeros(1)
    with pytest.raises(RuntimeError) as ours_error:
        ours.load_state_dict(state)
    with pytest.raises(RuntimeError) as torch_error:
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    assert str(ours_error.value) == str(torch_error.value)
    assert isinstance(ours_error.value, ValueError)  # cnnkit's rule for bad input, too
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=f"{key} changed")

    result = ours.load_state_dict(state, strict=False)
    assert result.missing_keys == ["1.running_var"]
    assert result.unexpected_keys == ["extra.weight"]
    np.testing.assert_array_equal(ours[0].weight.data, state["0.weight"])

    state = {k: v.numpy() for k, v in theirs.state_dict().items()}
    state["0.weight"] = np.zeros((3, 2))
    for strict in (True, False):
        with pytest.raises(ValueError, match=r"size mismatch for 0.weight: copying a param with "
                                             r"shape \(3, 2\) from checkpoint, the shape in "
                                             r"current model is \(2, 3\)"):
            ours.load_state_dict(state, strict=strict)


def test_load_state_dict_copies_into_the_existing_arrays():
    layer = nn.Linear(2, 2)
    weight_array = layer.weight.data
    layer.load_state_dict({"weight": np.eye(2), "bias": np.ones(2)})
    assert layer.weight.data is weight_array and weight_array.dtype == np.float32
    np.testing.assert_array_equal(weight_array, np.eye(2))
    assert repr(layer.load_state_dict(layer.state_dict())) == "<All keys matched successfully>"
    bn = nn.BatchNorm1d(2)
    state = {k: v.copy() for k, v in bn.state_dict().items()}
    state["num_batches_tracked"] = np.array([7])  # 1-element 1-D into 0-d, as PyTorch allows
    bn.load_state_dict(state)
    assert bn.num_batches_tracked.data.shape == () and int(bn.num_batches_tracked.data) == 7


def test_non_persistent_buffers_and_none_entries_stay_out_of_state_dict():
    m = nn.Module()
    m.register_buffer("kept", np.zeros(2))
    m.register_buffer("scratch", np.zeros(2), persistent=False)
    m.register_buffer("absent", None)
    m.register_parameter("bias", None)
    assert list(m.state_dict()) == ["kept"]
    assert sorted(n for n, _ in m.named_buffers()) == ["kept", "scratch"]
    assert m.bias is None and isinstance(m.kept, cnnkit.Tensor)


# -- Module mechanics --------------------------------------------------------------------------

def test_module_registration_modes_and_grads():
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(3)))
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert model[2][0].training
    with pytest.raises(TypeError, match="boolean"):
        model.train("no")
    assert len(list(model.parameters())) == 4
    assert len(list(model.children())) == 3 and len(list(model.modules())) == 5
    out = model(cnnkit.tensor(np.ones((4, 2), np.float32)))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    visited = []
    assert model.apply(lambda m: visited.append(type(m).__name__)) is model
    assert visited == ["Linear", "Dropout", "BatchNorm1d", "Sequential", "Sequential"]


def test_shared_parameters_are_listed_once_and_reassignment_keeps_order():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    model[1] = nn.Tanh()
    assert [type(m).__name__ for m in model] == ["Linear", "Tanh", "Linear"]
    with pytest.raises(TypeError, match="parameter"):
        shared.weight = np.zeros((2, 2))
    with pytest.raises(TypeError, match="Module or None"):
        model.__setattr__("1", 5)


def test_sequential_and_module_list_behave_like_lists():
    seq = nn.Sequential(nn.ReLU(), nn.Tanh(), nn.Sigmoid())
    assert len(seq) == 3 and isinstance(seq[-1], nn.Sigmoid)
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    assert [type(m) for m in seq] == [nn.ReLU, nn.Tanh, nn.Sigmoid]
    del seq[0]
    assert list(seq._modules) == ["0", "1"] and isinstance(seq[0], nn.Tanh)
    seq.append(nn.Identity())
    assert len(seq) == 3
    with pytest.raises(IndexError):
        seq[3]
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.ReLU())
    assert len(layers) == 4 and len(list(layers.parameters())) == 6
    assert list(nn.Sequential().state_dict()) == []


def test_forward_hooks_see_and_replace_outputs():
    layer = nn.ReLU()
    seen = []
    handle = layer.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    pre = layer.register_forward_pre_hook(lambda m, args: (args[0] * -1,))
    out = layer(cnnkit.tensor(np.array([1.0, -2.0])))
    np.testing.assert_array_equal(out.data, [0.0, 2.0])
    assert seen == [(2,)]
    handle.remove()
    pre.remove()
    layer(cnnkit.tensor(np.array([1.0])))
    assert seen == [(2,)]


def test_deepcopy_gives_an_independent_model():
    import copy
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    clone = copy.deepcopy(model)
    clone[0].weight.data += 1
    clone[1].num_batches_tracked.data += 1
    assert not np.array_equal(clone[0].weight.data, model[0].weight.data)
    assert int(model[1].num_batches_tracked.data) == 0
    assert isinstance(clone[0].weight, nn.Parameter) and list(clone.state_dict()) == list(
        model.state_dict())


def test_to_double_casts_floating_state_only():
    bn = nn.BatchNorm2d(2).double()
    assert bn.weight.dtype == np.float64 and bn.running_mean.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64
    assert bn.float().weight.dtype == np.float32


# -- repr --------------------------------------------------------------------------------------

REPR_LAYERS = [
    lambda m: m.Conv2d(1, 32, 3, padding=1),
    lambda m: m.Conv2d(4, 8, (3, 5), stride=2, padding="same" if False else (1, 2), dilation=2,
                       groups=4, bias=False, padding_mode="reflect"),
    lambda m: m.Conv1d(2, 4, 3, padding="same"),
    lambda m: m.Conv3d(2, 4, 3, padding="valid"),
    lambda m: m.ConvTranspose2d(4, 2, 2, stride=2, output_padding=1),
    lambda m: m.ConvTranspose1d(4, 2, 3),
    lambda m: m.Linear(10, 5), lambda m: m.Linear(10, 5, bias=False),
    lambda m: m.MaxPool2d(2), lambda m: m.MaxPool1d(3, 2, 1, ceil_mode=True),
    lambda m: m.AvgPool2d(2), lambda m: m.AvgPool1d(3), lambda m: m.AvgPool3d((2, 2, 1)),
    lambda m: m.AdaptiveAvgPool2d((1, 1)), lambda m: m.AdaptiveMaxPool2d(4),
    lambda m: m.BatchNorm2d(32), lambda m: m.BatchNorm1d(8, momentum=None, affine=False),
    lambda m: m.ReLU(), lambda m: m.ReLU(inplace=True), lambda m: m.LeakyReLU(0.2),
    lambda m: m.ELU(), lambda m: m.GELU(), lambda m: m.GELU("tanh"), lambda m: m.Sigmoid(),
    lambda m: m.Tanh(), lambda m: m.Softmax(dim=1), lambda m: m.LogSoftmax(1),
    lambda m: m.Dropout(), lambda m: m.Dropout2d(0.2), lambda m: m.Flatten(),
    lambda m: m.Identity(), lambda m: m.CrossEntropyLoss(),
    lambda m: m.ModuleList([m.ReLU(), m.ReLU(), m.Linear(2, 2), m.ReLU()]),
    _Nested.build,
]


@pytest.mark.parametrize("index", range(len(REPR_LAYERS)))
def test_repr_equals_torch(index):
    build = REPR_LAYERS[index]
    assert repr(build(nn)) == repr(build(tnn))


# -- initialisation ----------------------------------------------------------------------------

def _uniform_check(values, bound):
    """Inside [−bound, bound]; for big samples also filling it (ends and std of U(−b, b))."""
    assert values.min() >= -bound and values.max() <= bound
    if values.size < 1000:
        assert values.max() > bound / 3 and values.min() < -bound / 3
        return
    assert abs(values.max() - bound) < 0.05 * bound and abs(values.min() + bound) < 0.05 * bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.05 * bound


def test_default_initialisation_follows_torch():
    cnnkit.random.manual_seed(0)
    conv = nn.Conv2d(16, 64, 3)  # fan_in = 144
    _uniform_check(conv.weight.data, 1 / math.sqrt(144))
    _uniform_check(conv.bias.data, 1 / math.sqrt(144))
    assert conv.weight.dtype == np.float32
    linear = nn.Linear(200, 300)
    _uniform_check(linear.weight.data, 1 / math.sqrt(200))
    transposed = nn.ConvTranspose2d(64, 16, 3)  # weight (64, 16, 3, 3): fan_in = 16·9
    _uniform_check(transposed.weight.data, 1 / math.sqrt(144))
    _uniform_check(transposed.bias.data, 1 / math.sqrt(144))
    bn = nn.BatchNorm2d(5)
    np.testing.assert_array_equal(bn.weight.data, 1)
    np.testing.assert_array_equal(bn.bias.data, 0)
    np.testing.assert_array_equal(bn.running_var.data, 1)


def test_manual_seed_makes_initialisation_reproducible():
    cnnkit.random.manual_seed(3)
    a = nn.Conv2d(2, 3, 3).weight.data.copy()
    cnnkit.random.manual_seed(3)
    b = nn.Conv2d(2, 3, 3).weight.data.copy()
    c = nn.Conv2d(2, 3, 3).weight.data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
    with pytest.raises(ValueError, match="seed"):
        cnnkit.random.manual_seed(-1)


def test_init_functions_follow_torch_formulas():
    w = cnnkit.tensor(np.empty((300, 100, 2, 2), np.float32))  # fan_in 400, fan_out 1200
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=0)
    assert abs(w.data.std() - math.sqrt(2 / 1200)) < 0.01 * math.sqrt(2 / 1200)
    assert abs(w.data.mean()) < 0.01 * math.sqrt(2 / 1200)
    init.kaiming_uniform_(w, a=0.2)
    _uniform_check(w.data, math.sqrt(3) * math.sqrt(2 / (1 + 0.04)) / math.sqrt(400))
    init.xavier_uniform_(w, gain=2.0)
    _uniform_check(w.data, 2.0 * math.sqrt(6 / 1600))
    init.xavier_normal_(w)
    assert abs(w.data.std() - math.sqrt(2 / 1600)) < 0.01 * math.sqrt(2 / 1600)
    init.normal_(w, 3.0, 0.5)
    assert abs(w.data.mean() - 3.0) < 0.01 and abs(w.data.std() - 0.5) < 0.01
    init.uniform_(w, -2, 5)
    assert w.data.min() >= -2 and w.data.max() <= 5 and abs(w.data.mean() - 1.5) < 0.03
    assert init.constant_(w, 0.25) is w and np.all(w.data == 0.25)
    init.zeros_(w)
    assert np.all(w.data == 0)
    init.ones_(w.data)  # plain arrays are filled in place too
    assert np.all(w.data == 1) and w.dtype == np.float32


def test_gain_and_fans_equal_torch():
    for nonlinearity, param in [("linear", None), ("conv2d", None), ("sigmoid", None),
                                ("tanh", None), ("relu", None), ("leaky_relu", None),
                                ("leaky_relu", 0.3), ("selu", None), ("conv_transpose3d", None)]:
        assert init.calculate_gain(nonlinearity, param) == pytest.approx(
            tnn.init.calculate_gain(nonlinearity, param), rel=1e-12)
    for shape in [(3, 4), (5, 2, 3), (6, 3, 2, 2), (2, 4, 1, 2, 3)]:
        assert init._calculate_fan_in_and_fan_out(np.empty(shape)) == \
            tnn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(np.empty(3))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(np.empty((2, 2)), mode="fan_avg")
    with pytest.raises(ValueError, match="nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", True)


# -- argument checks ---------------------------------------------------------------------------

def test_layer_constructors_validate_arguments():
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding"):
        nn.Conv2d(3, 4, 3, padding="half")
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(3, 4, (3, 3, 3))
    with pytest.raises(ValueError, match="zeros"):
        nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="dropout probability"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(cnnkit.tensor(np.ones((2, 3))))
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm1d(3)(cnnkit.tensor(np.ones((2, 4))))
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than 1 value"):
        bn(cnnkit.tensor(np.ones((1, 3))))
    assert int(bn.num_batches_tracked.data) == 0  # the check ran before any update


def test_dropout_module_trains_and_evaluates():
    layer = nn.Dropout(0.5)
    x = cnnkit.tensor(np.ones((50, 40), np.float32))
    y = layer(x).data
    assert set(np.unique(y)) == {0.0, 2.0}
    assert layer.eval()(x) is x
