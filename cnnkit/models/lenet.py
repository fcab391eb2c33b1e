"""LeNet-5 (LeCun et al., 1998): two convolution + pooling stages, then three dense layers.

    input (C, H, W) ── conv 6@5×5 (pad 2) ── act ── pool 2 ── conv 16@5×5 ── act ── pool 2
                    ── flatten ── fc 120 ── act ── fc 84 ── act ── fc num_classes

``modern=True`` (the default) uses ReLU and max pooling, which train faster; ``modern=False`` is
the classic tanh + average pooling. For a 28×28 image the sizes run 28 → 28 → 14 → 10 → 5, so the
first dense layer sees 16·5·5 = 400 values. Smaller inputs (the 8×8 Digits) would leave nothing
after the second convolution, so it is padded ('same') when the map entering it is smaller than
10×10; the flatten size is always computed with the convolution arithmetic, never hard-coded.
"""
from collections import OrderedDict

from .. import nn
from ..conv_arithmetic import conv_output_shape
from ._common import check_int, image_size

__all__ = ["lenet5"]


def lenet5(in_channels: int = 1, num_classes: int = 10, input_size=28,
           modern: bool = True) -> nn.Sequential:
    """Build LeNet-5 as ``Sequential(features, flatten, classifier)``.

    Parameters
    ----------
    in_channels : int, image channels C
    num_classes : int, outputs of the last layer
    input_size : int or (H, W), the image size the dense layers are sized for
    modern : bool, ReLU + max pooling (True) or tanh + average pooling (False)

    Returns
    -------
    Sequential mapping (N, C, H, W) to (N, num_classes) scores; state_dict keys
    ``features.{0,3}.*`` and ``classifier.{0,2,4}.*``, as the same ``torch.nn.Sequential``.
    """
    check_int(in_channels, "in_channels")
    check_int(num_classes, "num_classes")
    height, width = image_size(input_size)
    if not isinstance(modern, bool):
        raise TypeError(f"lenet5: modern must be True or False, got {modern!r}")
    act = nn.ReLU if modern else nn.Tanh
    pool = nn.MaxPool2d if modern else nn.AvgPool2d

    size = conv_output_shape((height, width), 5, padding=2)      # conv1
    size = conv_output_shape(size, 2, stride=2)                   # pool1
    conv2_padding = 2 if min(size) < 10 else 0
    size = conv_output_shape(size, 5, padding=conv2_padding)     # conv2
    size = conv_output_shape(size, 2, stride=2)                   # pool2
    features = nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), act(), pool(2),
        nn.Conv2d(6, 16, 5, padding=conv2_padding), act(), pool(2))
    classifier = nn.Sequential(
        nn.Linear(16 * size[0] * size[1], 120), act(),
        nn.Linear(120, 84), act(),
        nn.Linear(84, num_classes))
    return nn.Sequential(OrderedDict([("features", features), ("flatten", nn.Flatten()),
                                      ("classifier", classifier)]))
