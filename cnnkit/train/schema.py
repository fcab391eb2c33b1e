"""What the metadata of a model or checkpoint file may hold, checked before anything is built.

The file's checksum catches corruption, not malice: anyone can write a file with a valid one.
So every number that decides an allocation or a loop is checked here for type and range, and
against the arrays the file really holds (``load_model`` rebuilds the network within a
parameter budget of the elements present, ``cnnkit.nn.parameter_budget``). Each check raises
ValueError naming the file and the field.

Model config (``save_model``)::

    model        {"name": a registered model, "kwargs": {str: JSON scalars or lists}}
    input_shape  [C, H, W] (or [C, L]), positive ints, at most MAX_INPUT_ELEMENTS in all
    classes      [str, ...], one per model output (checked once the model is built)
    normalize    {"mean": [float], "std": [float > 0]}, one per channel
    train        the ``cnnkit train`` settings (``TRAIN_SETTINGS``)

Checkpoint (``save_checkpoint``) adds ``epoch`` (an int from 1 to ``train.epochs``, at most one
history row per epoch) and the optimizer, scheduler, loader and RNG states, which their own
``load_state_dict`` check (the optimizer's per-parameter entries: ``Optimizer.state_entries``).
"""
from __future__ import annotations

import math
import numbers

from .. import models

MAX_INPUT_ELEMENTS = 3 * 4096 * 4096
MAX_CLASSES = 1_000_000

_INT, _REAL, _BOOL, _STR = "int", "real", "bool", "str"
_BOUNDS = {">= 0": lambda v: v >= 0, ">= 1": lambda v: v >= 1, "> 0": lambda v: v > 0}
# name -> (kind, bound or None, may be None): the ranges cnnkit train itself accepts.
TRAIN_SETTINGS = {
    "model": (_STR, None, False), "dataset": (_STR, None, False),
    "epochs": (_INT, ">= 1", False), "batch_size": (_INT, ">= 1", False),
    "lr": (_REAL, "> 0", False), "weight_decay": (_REAL, ">= 0", False),
    "optimizer": (_STR, None, False), "scheduler": (_STR, None, False),
    "seed": (_INT, ">= 0", False), "augment": (_BOOL, None, False),
    "limit_train": (_INT, ">= 1", True), "limit_test": (_INT, ">= 1", True),
    "image_size": (_INT, ">= 1", True),
}


def _fail(path, field, message):
    raise ValueError(f"{path}: invalid {field} in metadata: {message}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_value(path, field, value, kind, bound=None):
    ok = {_INT: _is_int(value), _BOOL: isinstance(value, bool), _STR: isinstance(value, str),
          _REAL: isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value)}[kind]
    if not ok:
        expected = "a finite number" if kind == _REAL else f"an {kind}"
        _fail(path, field, f"expected {expected}, got {value!r}"[:200])
    if bound is not None and not _BOUNDS[bound](value):
        _fail(path, field, f"expected {bound}, got {value!r}")


def _check_kwargs(path, kwargs):
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        _fail(path, "config.model.kwargs", "expected an object of keyword arguments")
    for key, value in kwargs.items():
        items = value if isinstance(value, list) else [value]
        flat = [x for item in items for x in (item if isinstance(item, list) else [item])]
        if not all(x is None or isinstance(x, (bool, str, numbers.Real)) for x in flat):
            _fail(path, f"config.model.kwargs.{key}", "expected numbers, strings or lists of "
                                                      "them")


def check_model_config(config, path) -> None:
    """Check a model file's (or checkpoint's) ``config`` before anything is built from it."""
    if not isinstance(config, dict):
        _fail(path, "config", "expected an object")
    spec = config.get("model")
    if not isinstance(spec, dict) or spec.get("name") not in models.names():
        name = spec.get("name") if isinstance(spec, dict) else None
        _fail(path, "config.model", f"unknown model {name!r}"[:200])
    _check_kwargs(path, spec.get("kwargs", {}))
    shape = config.get("input_shape")
    if shape is not None:
        if not isinstance(shape, list) or len(shape) not in (2, 3) \
                or not all(_is_int(s) and s >= 1 for s in shape):
            _fail(path, "config.input_shape", f"expected 2 or 3 positive ints, got {shape!r}"
                  [:200])
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            _fail(path, "config.input_shape", f"{shape} has more than {MAX_INPUT_ELEMENTS:,} "
                                              "elements")
    classes = config.get("classes")
    if classes is not None and (not isinstance(classes, list) or not classes
                                or len(classes) > MAX_CLASSES
                                or not all(isinstance(c, str) for c in classes)):
        _fail(path, "config.classes", f"expected 1 to {MAX_CLASSES:,} class names")
    _check_normalize(path, config.get("normalize"), shape)
    train = config.get("train")
    if train is not None:
        check_train_settings(train, path, complete=False)


def _check_normalize(path, normalize, shape):
    if normalize is None:
        return
    if not isinstance(normalize, dict) or not all(isinstance(normalize.get(k), list)
                                                  for k in ("mean", "std")):
        _fail(path, "config.normalize", "expected {'mean': [...], 'std': [...]}")
    channels = shape[0] if shape is not None else len(normalize["mean"])
    for key in ("mean", "std"):
        values = normalize[key]
        if len(values) not in (1, channels):
            _fail(path, f"config.normalize.{key}", f"expected 1 or {channels} values, got "
                                                   f"{len(values)}")
        for value in values:
            _check_value(path, f"config.normalize.{key}", value, _REAL,
                         "> 0" if key == "std" else None)


def check_train_settings(train, path, complete: bool = True) -> None:
    """Check saved ``cnnkit train`` settings: those present (all of ``TRAIN_SETTINGS`` if
    ``complete``, as resuming a run needs)."""
    if not isinstance(train, dict):
        _fail(path, "config.train", "expected an object")
    missing = sorted(set(TRAIN_SETTINGS) - set(train))
    if missing and complete:
        _fail(path, "config.train", f"lacks {missing}")
    for key, (kind, bound, nullable) in TRAIN_SETTINGS.items():
        if key in train and not (nullable and train[key] is None):
            _check_value(path, f"config.train.{key}", train[key], kind, bound)


def check_checkpoint_metadata(metadata, path) -> None:
    """Check a checkpoint's own fields (``epoch`` and ``history``; the config separately)."""
    epoch, history = metadata["epoch"], metadata["history"]
    _check_value(path, "epoch", epoch, _INT, ">= 1")
    train = metadata["config"].get("train")
    if isinstance(train, dict) and _is_int(train.get("epochs")) and epoch > train["epochs"]:
        _fail(path, "epoch", f"{epoch} epochs done, but the run has {train['epochs']}")
    if not isinstance(history, list) or len(history) > epoch \
            or not all(isinstance(row, dict) for row in history):
        _fail(path, "history", f"expected at most one row per completed epoch ({epoch})")
    for key in ("optimizer", "rng_state"):
        if not isinstance(metadata[key], dict):
            _fail(path, key, "expected an object")
    for key in ("scheduler", "train_loader"):
        if metadata[key] is not None and not isinstance(metadata[key], dict):
            _fail(path, key, "expected an object or null")
