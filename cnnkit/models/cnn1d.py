"""``cnn1d``: a 1-D convolutional network for signals (audio, sensor traces, ECG).

Each stage is ``Conv1d(k, 'same' padding) → BatchNorm1d → ReLU → MaxPool1d(2)``, so the length
halves while the channels grow; adaptive average pooling then reduces any remaining length to
one value per channel, so the network accepts signals of any length ≥ 2^stages.
"""
from collections import OrderedDict

from .. import nn
from ._common import check_int, check_widths

__all__ = ["cnn1d"]


def cnn1d(in_channels: int = 1, num_classes: int = 10, widths=(16, 32, 64),
          kernel_size: int = 7) -> nn.Sequential:
    """Build the network as ``Sequential(features, pool, flatten, fc)``.

    Parameters
    ----------
    in_channels : int, signal channels C
    num_classes : int
    widths : sequence of int, channels of each stage
    kernel_size : odd int, the convolutions' window length

    Returns
    -------
    Sequential mapping (N, C, L) to (N, num_classes).
    """
    check_int(in_channels, "in_channels")
    check_int(num_classes, "num_classes")
    check_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd int (so padding k//2 keeps the length), "
                         f"got {kernel_size}")
    widths = check_widths(widths)
    layers, channels = [], in_channels
    for width in widths:
        layers += [nn.Conv1d(channels, width, kernel_size, padding=kernel_size // 2, bias=False),
                   nn.BatchNorm1d(width), nn.ReLU(), nn.MaxPool1d(2)]
        channels = width
    return nn.Sequential(OrderedDict([
        ("features", nn.Sequential(*layers)), ("pool", nn.AdaptiveAvgPool1d(1)),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(channels, num_classes))]))
