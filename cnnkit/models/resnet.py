"""``resnet_small``: a residual network for small images (28×28 or 32×32), after He et al. (2015).

A residual block computes ``relu(body(x) + shortcut(x))`` with

    body     = conv 3×3 (stride s) → BN → ReLU → conv 3×3 → BN
    shortcut = identity, or conv 1×1 (stride s) → BN when the shape changes (s > 1 or new width)

so each block only has to learn a correction to its input, and the gradient reaches early layers
through the identity path undiminished. The network: a 3×3 stem, ``len(widths)`` stages of
``blocks_per_stage`` blocks (every stage after the first halves the map with stride 2), global
average pooling and one linear layer. Because of the global pooling any input size works.
"""
from collections import OrderedDict

from .. import nn
from ._common import check_int, check_widths

__all__ = ["BasicBlock", "resnet_small"]


class BasicBlock(nn.Module):
    """``relu(body(x) + shortcut(x))``: x (N, C_in, H, W) → (N, C_out, ⌈H/s⌉, ⌈W/s⌉).

    Attributes ``body`` and ``shortcut`` are the two branches whose outputs are added (the
    summary table walks them as such); keys ``body.{0,1,3,4}.*`` and ``shortcut.{0,1}.*``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels))
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU()

    def branches(self):
        """The modules whose outputs the block adds (used by ``cnnkit.summary``)."""
        return [self.body, self.shortcut]

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def resnet_small(in_channels: int = 1, num_classes: int = 10, widths=(16, 32, 64),
                 blocks_per_stage: int = 1, input_size=None) -> nn.Sequential:
    """Build the network as ``Sequential(stem, stages, pool, flatten, fc)``.

    Parameters
    ----------
    in_channels : int, image channels C
    num_classes : int
    widths : sequence of int, channels of each stage
    blocks_per_stage : int
    input_size : ignored (any H, W works thanks to global average pooling); accepted so every
        image model takes the same arguments

    Returns
    -------
    Sequential mapping (N, C, H, W) to (N, num_classes).
    """
    check_int(in_channels, "in_channels")
    check_int(num_classes, "num_classes")
    check_int(blocks_per_stage, "blocks_per_stage")
    widths = check_widths(widths)
    stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                         nn.BatchNorm2d(widths[0]), nn.ReLU())
    stages, channels = [], widths[0]
    for i, width in enumerate(widths):
        blocks = []
        for b in range(blocks_per_stage):
            stride = 2 if i > 0 and b == 0 else 1
            blocks.append(BasicBlock(channels, width, stride))
            channels = width
        stages.append(nn.Sequential(*blocks))
    return nn.Sequential(OrderedDict([
        ("stem", stem), ("stages", nn.Sequential(*stages)), ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(channels, num_classes))]))
