"""Build the PyTorch model identical to a cnnkit ``Sequential`` (for the end-to-end suite).

cnnkit layers carry PyTorch's constructor arguments under PyTorch's attribute names, so the
twin is made layer by layer from those, then given the same weights through ``state_dict``
(whose keys are PyTorch's too).
"""
from collections import OrderedDict

import numpy as np

_COPIED = {
    "Conv1d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
               "groups", "padding_mode"),
    "Linear": ("in_features", "out_features"),
    "BatchNorm1d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    "AdaptiveAvgPool2d": ("output_size",),
    "Dropout": ("p",),
    "Flatten": ("start_dim", "end_dim"),
    "LeakyReLU": ("negative_slope",),
    "ELU": ("alpha",),
    "Softmax": ("dim",),
    "LogSoftmax": ("dim",),
}
for _n in ("Conv2d", "Conv3d"):
    _COPIED[_n] = _COPIED["Conv1d"]
for _n in ("BatchNorm2d", "BatchNorm3d"):
    _COPIED[_n] = _COPIED["BatchNorm1d"]
for _n in ("MaxPool1d", "MaxPool3d"):
    _COPIED[_n] = _COPIED["MaxPool2d"]
for _n in ("AvgPool1d", "AvgPool3d"):
    _COPIED[_n] = _COPIED["AvgPool2d"]
for _n in ("AdaptiveAvgPool1d", "AdaptiveAvgPool3d"):
    _COPIED[_n] = _COPIED["AdaptiveAvgPool2d"]


def _layer(module):
    import torch.nn as tnn
    name = type(module).__name__
    if name == "Sequential":
        return tnn.Sequential(OrderedDict((key, _layer(m)) for key, m in module.named_children()))
    if name == "BasicBlock":
        return _residual_block(_layer(module.body), _layer(module.shortcut))
    kwargs = {a: getattr(module, a) for a in _COPIED.get(name, ())}
    if name.startswith(("Conv", "Linear")):
        kwargs["bias"] = module.bias is not None
    return getattr(tnn, name)(**kwargs)


def _residual_block(body, shortcut):
    """``cnnkit.models.resnet.BasicBlock``'s twin: relu(body(x) + shortcut(x)), with its
    ``body`` and ``shortcut`` attributes, so that the state-dict keys are the same."""
    import torch.nn as tnn

    class BasicBlock(tnn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.shortcut, self.relu = body, shortcut, tnn.ReLU()

        def forward(self, x):
            return self.relu(self.body(x) + self.shortcut(x))
    return BasicBlock()


def torch_twin(model):
    """A torch.nn model with the same layers and weights as the cnnkit ``model``."""
    import torch
    twin = _layer(model)
    state = {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}
    twin.load_state_dict(state)
    return twin
