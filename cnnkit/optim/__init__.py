"""Optimizers and learning-rate schedules with PyTorch's names, defaults and algorithms.

``SGD``, ``Adam`` and ``AdamW`` update ``Parameter.data`` in place from ``Parameter.grad``;
``lr_scheduler`` holds ``StepLR``, ``CosineAnnealingLR`` and ``OneCycleLR``. Optimizer state
saves without pickle: ``flatten_state_dict`` gives arrays (for safetensors) plus JSON metadata.
"""
from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer, flatten_state_dict, unflatten_state_dict
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "flatten_state_dict", "lr_scheduler",
           "unflatten_state_dict"]
