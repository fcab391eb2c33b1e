"""cnnkit.io.load_torch / save_torch: PyTorch state_dicts through safetensors, never pickle.

The oracle is PyTorch itself: a torchvision-identical ResNet-18 written here in torch.nn (no
torchvision, no downloads) and the torch twin of vgg_small must give the same logits as the
cnnkit model after weights cross in either direction.
"""
import numpy as np
import pytest
import safetensors.torch
import torch
import torch.nn as tnn

import cnnkit
from cnnkit import models
from cnnkit.bench.torch_twin import torch_twin
from cnnkit.io import load_torch, read_torch_state, save_torch


class TorchBasicBlock(tnn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = tnn.Sequential(tnn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                             tnn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class TorchResNet18(tnn.Module):
    """torchvision.models.resnet18, written out."""

    def __init__(self, in_channels=3, num_classes=1000):
        super().__init__()
        self.conv1 = tnn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU(inplace=True)
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        channels = 64
        for i, width in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", tnn.Sequential(TorchBasicBlock(channels, width, stride),
                                                          TorchBasicBlock(width, width)))
            channels = width
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.fc = tnn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _randomize_batchnorm(torch_model, seed=0):
    """Non-trivial running statistics, so a BN buffer that failed to cross would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in torch_model.modules():
            if isinstance(m, tnn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.num_batches_tracked.fill_(7)
    return torch_model.eval()


def _logits(model, x):
    return model(cnnkit.tensor(x)).data


def _assert_close(ours, theirs):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def torch_resnet():
    torch.manual_seed(0)
    return _randomize_batchnorm(TorchResNet18(in_channels=3, num_classes=10))


def test_resnet18_keys_match_torchvision_layout(torch_resnet):
    ours = models.resnet18(num_classes=10)
    assert list(ours.state_dict()) == list(torch_resnet.state_dict())
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in torch_resnet.state_dict().items()}


def test_torch_to_cnnkit_resnet18_same_logits(tmp_path, torch_resnet):
    path = tmp_path / "resnet18.safetensors"
    safetensors.torch.save_file(torch_resnet.state_dict(), str(path))
    ours = load_torch(models.resnet18(num_classes=10), path).eval()
    assert int(ours.layer1[0].bn1.num_batches_tracked.data) == 7
    x = np.random.default_rng(0).standard_normal((2, 3, 40, 40)).astype(np.float32)
    _assert_close(_logits(ours, x), torch_resnet(torch.from_numpy(x)))


def test_cnnkit_to_torch_resnet18_same_logits(tmp_path):
    cnnkit.manual_seed(1)
    ours = models.resnet18(in_channels=1, num_classes=5)
    for name, value in ours.state_dict().items():  # BN statistics away from 0 and 1
        if name.endswith("running_var"):
            value[...] = np.linspace(0.5, 1.5, value.size, dtype=np.float32)
        elif name.endswith("running_mean"):
            value[...] = np.linspace(-0.2, 0.2, value.size, dtype=np.float32)
    path = tmp_path / "ours.safetensors"
    save_torch(ours.eval(), path)
    theirs = TorchResNet18(in_channels=1, num_classes=5)
    theirs.load_state_dict(safetensors.torch.load_file(str(path)))
    x = np.random.default_rng(1).standard_normal((2, 1, 33, 35)).astype(np.float32)
    _assert_close(_logits(ours, x), theirs.eval()(torch.from_numpy(x)))


def test_existing_model_round_trips_both_ways(tmp_path):
    cnnkit.manual_seed(2)
    ours = models.vgg_small(num_classes=10).eval()
    theirs = _randomize_batchnorm(torch_twin(ours), seed=3)
    safetensors.torch.save_file(theirs.state_dict(), str(tmp_path / "t.safetensors"))
    load_torch(ours, tmp_path / "t.safetensors")
    x = np.random.default_rng(2).standard_normal((3, 1, 28, 28)).astype(np.float32)
    _assert_close(_logits(ours, x), theirs(torch.from_numpy(x)))
    back = torch_twin(models.vgg_small(num_classes=10))
    save_torch(ours, tmp_path / "c.safetensors")
    back.load_state_dict(safetensors.torch.load_file(str(tmp_path / "c.safetensors")))
    _assert_close(_logits(ours, x), back.eval()(torch.from_numpy(x)))


def test_half_and_bfloat16_tensors(tmp_path):
    values = torch.tensor([1.0, -2.5, 3.140625, 1e-3, 65504.0])
    safetensors.torch.save_file({"h": values.half(), "b": values.bfloat16(),
                                 "n": torch.tensor(3)}, str(tmp_path / "x.safetensors"))
    state = read_torch_state(tmp_path / "x.safetensors")
    assert state["h"].dtype == np.float16 and state["b"].dtype == np.float32
    np.testing.assert_array_equal(state["h"], values.half().float().numpy().astype(np.float16))
    np.testing.assert_array_equal(state["b"], values.bfloat16().float().numpy())
    assert state["n"].shape == () and state["n"] == 3


def test_half_precision_weights_load_into_float32_model(tmp_path):
    torch.manual_seed(4)
    lin = tnn.Linear(3, 2)
    safetensors.torch.save_file({k: v.bfloat16() for k, v in lin.state_dict().items()},
                                str(tmp_path / "bf.safetensors"))
    ours = load_torch(cnnkit.nn.Linear(3, 2), tmp_path / "bf.safetensors")
    assert ours.weight.dtype == np.float32
    np.testing.assert_array_equal(ours.weight.data, lin.weight.detach().bfloat16().float().numpy())


def test_missing_num_batches_tracked_is_tolerated(tmp_path):
    bn = tnn.BatchNorm2d(4)
    state = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    safetensors.torch.save_file(state, str(tmp_path / "old.safetensors"))
    load_torch(cnnkit.nn.BatchNorm2d(4), tmp_path / "old.safetensors")


def test_every_key_problem_reported_at_once(tmp_path):
    state = {"0.weight": torch.zeros(4, 3), "0.extra": torch.zeros(1)}  # 0.bias missing too
    safetensors.torch.save_file(state, str(tmp_path / "bad.safetensors"))
    model = cnnkit.nn.Sequential(cnnkit.nn.Linear(3, 2))
    before = model[0].weight.data.copy()
    with pytest.raises(ValueError) as err:
        load_torch(model, tmp_path / "bad.safetensors")
    message = str(err.value)
    assert "bad.safetensors" in message and "missing keys: 0.bias" in message
    assert "unexpected keys: 0.extra" in message
    assert "0.weight: shape (4, 3) in the file, (2, 3) in the model" in message
    np.testing.assert_array_equal(model[0].weight.data, before)  # nothing copied


@pytest.mark.parametrize("name", ["model.pt", "model.pth"])
def test_pickle_files_are_refused_with_a_conversion_hint(tmp_path, name):
    path = tmp_path / name
    torch.save(tnn.Linear(2, 2).state_dict(), str(path))
    with pytest.raises(ValueError, match="never unpickles.*safetensors.torch.save_file"):
        load_torch(cnnkit.nn.Linear(2, 2), path)
    renamed = tmp_path / "disguised.safetensors"  # the content gives it away, too
    path.rename(renamed)
    with pytest.raises(ValueError, match="never unpickles"):
        load_torch(cnnkit.nn.Linear(2, 2), renamed)


def test_hostile_header_is_rejected_before_allocation(tmp_path):
    header = b'{"w":{"dtype":"F32","shape":[100000000000],"data_offsets":[0,4]}}'
    path = tmp_path / "evil.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    with pytest.raises(ValueError, match="'w'.*truncated or corrupt"):
        read_torch_state(path)


def test_foreign_format_is_refused(tmp_path):
    import safetensors.numpy
    safetensors.numpy.save_file({"w": np.zeros(2, np.float32)}, str(tmp_path / "tf.safetensors"),
                                metadata={"format": "tf"})
    with pytest.raises(ValueError, match="format 'tf'"):
        read_torch_state(tmp_path / "tf.safetensors")
