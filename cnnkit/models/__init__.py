"""Ready-made networks, built by name: ``cnnkit.models.get("vgg_small", num_classes=10)``.

Every builder returns an ordinary ``cnnkit.nn`` module whose state_dict keys are those of the same
architecture written with ``torch.nn`` (so weights move between the two unchanged). Image models
take ``in_channels``, ``num_classes`` and ``input_size``; ``cnn1d`` takes signals (N, C, L).

To add a model: write a builder function in its own file and add it to ``_BUILDERS`` below.
"""
from .cnn1d import cnn1d
from .lenet import lenet5
from .resnet import BasicBlock, resnet_small
from .resnet18 import ResNet, ResNetBasicBlock, resnet18
from .vgg import vgg_small

__all__ = ["BasicBlock", "ResNet", "ResNetBasicBlock", "cnn1d", "get", "is_image_model", "lenet5",
           "names", "resnet18", "resnet_small", "vgg_small"]

_BUILDERS = {
    "lenet5": lenet5,
    "vgg_small": vgg_small,
    "resnet_small": resnet_small,
    "resnet18": resnet18,
    "cnn1d": cnn1d,
}
DEFAULT_MODEL = "vgg_small"


def names() -> list:
    """The registered model names, sorted."""
    return sorted(_BUILDERS)


def is_image_model(name: str) -> bool:
    """Whether the model takes images (N, C, H, W) rather than signals (N, C, L)."""
    return name != "cnn1d"


def get(name: str, **kwargs):
    """Build the model registered as ``name`` with the builder's keyword arguments.

    Raises ValueError for an unknown name (listing the known ones) or a bad argument.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(names())}")
    builder = _BUILDERS[name]
    try:
        return builder(**kwargs)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise ValueError(f"model {name!r}: {err}") from err
        raise
