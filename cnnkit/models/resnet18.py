"""``resnet18``: ResNet-18 (He et al., 2015) with torchvision's module names and architecture.

The state_dict keys are exactly those of ``torchvision.models.resnet18()`` (``conv1.weight``,
``layer2.0.downsample.0.weight``, ``fc.bias``, ...), so its weights, saved with
``safetensors.torch.save_file``, load with ``cnnkit.io.load_torch`` unchanged. The network::

    stem:    conv1 7×7 stride 2 (pad 3) → bn1 → relu → maxpool 3×3 stride 2 (pad 1)
    layer1:  2 blocks, 64 channels        layer2: 2 blocks, 128 channels, first stride 2
    layer3:  2 blocks, 256 channels, /2   layer4: 2 blocks, 512 channels, /2
    head:    avgpool (adaptive, 1×1) → flatten → fc 512 → num_classes

A 224×224 image shrinks to 7×7 before the pooling; any size of at least 32×32 works.
"""
from .. import nn
from ._common import check_int

__all__ = ["ResNet", "ResNetBasicBlock", "resnet18"]


class ResNetBasicBlock(nn.Module):
    """torchvision's ``BasicBlock``: x (N, C_in, H, W) → (N, C_out, ⌈H/s⌉, ⌈W/s⌉).

        relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))

    with shortcut = ``downsample`` (conv 1×1 stride s → BN) when the shape changes, else the
    identity. One ``relu`` module serves both activations, as in torchvision.
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        else:
            self.downsample = None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ``ResNet`` with basic blocks: (N, C, H, W) → (N, num_classes)."""

    def __init__(self, blocks_per_layer=(2, 2, 2, 2), in_channels: int = 3,
                 num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for i, (width, blocks) in enumerate(zip((64, 128, 256, 512), blocks_per_layer)):
            stride = 1 if i == 0 else 2
            layer = [ResNetBasicBlock(channels, width, stride)]
            layer += [ResNetBasicBlock(width, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            channels = width
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(in_channels: int = 3, num_classes: int = 1000, input_size=None) -> ResNet:
    """Build ResNet-18 (torchvision's layout and keys; see the module docstring).

    Parameters
    ----------
    in_channels : int, image channels C (3 in torchvision)
    num_classes : int (1000 in torchvision)
    input_size : ignored (adaptive pooling takes any H, W >= 32); accepted so every image
        model takes the same arguments

    Returns
    -------
    ResNet mapping (N, C, H, W) to (N, num_classes).
    """
    return ResNet((2, 2, 2, 2), check_int(in_channels, "in_channels"),
                  check_int(num_classes, "num_classes"))
