"""Layers that own parameters (``cnnkit.nn``), with PyTorch's names, defaults and state_dict keys.

    import cnnkit.nn as nn
    import cnnkit.nn.functional as F   # the same module as cnnkit.functional
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                          nn.Flatten(), nn.Linear(32 * 28 * 28, 10))
"""
from . import functional, init  # noqa: F401
from .container import ModuleDict, ModuleList, Sequential  # noqa: F401
from .module import Module, StateDictError  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _layer_names
from .parameter import Parameter  # noqa: F401

__all__ = ["functional", "init", "Module", "Parameter", "Sequential", "ModuleList", "ModuleDict",
           "StateDictError", *_layer_names]
del _layer_names
