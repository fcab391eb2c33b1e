"""Checkpoints and model files: everything needed to resume a run, or to use its model, in one
safetensors file each (``cnnkit.io``: atomic, checksummed, no pickle).

``checkpoint.safetensors`` (written after every epoch) resumes a run bit for bit:
    arrays    ``model/<key>``      the model's state_dict (weights and BN buffers)
              ``optimizer/<key>``  the optimizer's buffers (``flatten_state_dict``)
    metadata  ``kind = "checkpoint"``, ``epoch`` (epochs completed), ``config``, the optimizer's
              numbers and hyperparameters, the scheduler's state, the training DataLoader's
              state (shuffling and augmentation RNG), the global ``cnnkit.random`` state
              (dropout masks) and the metrics ``history``.

``model.safetensors`` holds only what inference needs: the state_dict under its plain keys (the
same as a PyTorch twin's: ``safetensors.torch.load_file`` gives a dict ``load_state_dict``
accepts) and ``config`` = {"model": {"name", "kwargs"}, "input_shape", "classes",
"normalize": {"mean", "std"}, ...}, from which ``load_model`` rebuilds the network.
"""
from __future__ import annotations

import os

import numpy as np

from .. import models
from .. import random as cnnkit_random
from ..io import jsonable, load_file, save_file
from ..nn.parameter import parameter_budget
from ..optim import flatten_state_dict, unflatten_state_dict
from .schema import check_checkpoint_metadata, check_model_config

__all__ = ["Checkpoint", "load_checkpoint", "load_model", "model_state_arrays",
           "restore_training_state", "save_checkpoint", "save_model"]

FORMAT_VERSION = 1
_MODEL, _OPTIMIZER = "model/", "optimizer/"


def model_state_arrays(model) -> dict:
    """The model's state_dict as a dict of ndarray copies (plain keys)."""
    return {key: np.array(value) for key, value in model.state_dict().items()}


def save_model(path, model, config: dict) -> None:
    """Write ``model``'s weights and buffers plus ``config`` to ``path`` (see module docstring)."""
    _check_config(config)
    save_file(path, model_state_arrays(model),
              {"kind": "model", "version": FORMAT_VERSION, "config": config})


def save_checkpoint(path, model, optimizer, scheduler=None, *, epoch: int, config: dict,
                    train_loader=None, history=()) -> None:
    """Write a resumable checkpoint of a run that has completed ``epoch`` epochs."""
    _check_config(config)
    tensors = {_MODEL + key: value for key, value in model_state_arrays(model).items()}
    optimizer_arrays, optimizer_meta = flatten_state_dict(optimizer.state_dict())
    tensors.update({_OPTIMIZER + key: value for key, value in optimizer_arrays.items()})
    metadata = {
        "kind": "checkpoint", "version": FORMAT_VERSION, "epoch": int(epoch), "config": config,
        "optimizer": {"class": type(optimizer).__name__, **optimizer_meta},
        "scheduler": None if scheduler is None else {"class": type(scheduler).__name__,
                                                     "state": scheduler.state_dict()},
        "train_loader": None if train_loader is None else train_loader.state_dict(),
        "rng_state": jsonable(cnnkit_random.get_rng_state()),
        "history": list(history),
    }
    save_file(path, tensors, metadata)


class Checkpoint:
    """A loaded ``checkpoint.safetensors``: ``model_state`` (dict of ndarray), ``epoch``,
    ``config``, ``history`` and the raw pieces ``restore_training_state`` puts back."""

    def __init__(self, path, tensors: dict, metadata: dict):
        self.path = path
        self.model_state = {k[len(_MODEL):]: v for k, v in tensors.items() if k.startswith(_MODEL)}
        self.optimizer_arrays = {k[len(_OPTIMIZER):]: v for k, v in tensors.items()
                                 if k.startswith(_OPTIMIZER)}
        self.epoch = metadata["epoch"]
        self.config = metadata["config"]
        self.optimizer_meta = metadata["optimizer"]
        self.scheduler = metadata["scheduler"]
        self.train_loader = metadata["train_loader"]
        self.rng_state = metadata["rng_state"]
        self.history = metadata["history"]


def _read(path, kinds=("checkpoint", "model")):
    """(tensors, metadata) of a cnnkit model or checkpoint file; ValueError naming the file."""
    path = os.fspath(path)
    tensors, metadata = load_file(path)
    kind = metadata.get("kind") if isinstance(metadata, dict) else None
    if kind not in kinds:
        raise ValueError(f"{path}: expected a cnnkit {' or '.join(kinds)} file, found "
                         f"kind={kind!r}")
    if metadata.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported file version {metadata.get('version')!r} "
                         f"(this cnnkit reads version {FORMAT_VERSION})")
    check_model_config(metadata.get("config"), path)
    return tensors, metadata


def load_checkpoint(path) -> Checkpoint:
    """Read and verify a checkpoint file (nothing is applied to any object yet)."""
    tensors, metadata = _read(path, kinds=("checkpoint",))
    required = ("epoch", "optimizer", "scheduler", "train_loader", "rng_state", "history")
    missing = [key for key in required if key not in metadata]
    if missing:
        raise ValueError(f"{os.fspath(path)}: checkpoint metadata lacks {missing}")
    check_checkpoint_metadata(metadata, os.fspath(path))
    return Checkpoint(os.fspath(path), tensors, metadata)


def restore_training_state(checkpoint: Checkpoint, model, optimizer, scheduler=None,
                           train_loader=None) -> None:
    """Put a checkpoint back into freshly built objects, so training continues exactly.

    Everything is checked before anything changes: model keys and shapes, optimizer class and
    groups, scheduler class. Raises ValueError naming the checkpoint file on any mismatch.
    """
    path = checkpoint.path
    own = model.state_dict()
    if set(own) != set(checkpoint.model_state):
        missing = sorted(set(own) - set(checkpoint.model_state))
        extra = sorted(set(checkpoint.model_state) - set(own))
        raise ValueError(f"{path}: the checkpoint's weights do not fit this model (missing "
                         f"{missing[:5]}, unexpected {extra[:5]})")
    for key, value in own.items():
        if checkpoint.model_state[key].shape != value.shape:
            raise ValueError(f"{path}: {key} has shape {checkpoint.model_state[key].shape} in the "
                             f"checkpoint but {value.shape} in the model")
    optimizer_meta = dict(checkpoint.optimizer_meta)
    saved_class = optimizer_meta.pop("class", None)
    if saved_class != type(optimizer).__name__:
        raise ValueError(f"{path}: the checkpoint holds {saved_class} state, the optimizer is "
                         f"{type(optimizer).__name__}")
    saved_scheduler = checkpoint.scheduler
    scheduler_class = None if scheduler is None else type(scheduler).__name__
    if (saved_scheduler or {}).get("class") != scheduler_class:
        raise ValueError(f"{path}: the checkpoint was saved with scheduler "
                         f"{(saved_scheduler or {}).get('class')}, resuming with {scheduler_class}")
    try:
        optimizer.load_state_dict(unflatten_state_dict(checkpoint.optimizer_arrays,
                                                       optimizer_meta))
        model.load_state_dict(checkpoint.model_state)
        if scheduler is not None:
            scheduler.load_state_dict(saved_scheduler["state"])
        if train_loader is not None and checkpoint.train_loader is not None:
            train_loader.load_state_dict(checkpoint.train_loader)
        cnnkit_random.set_rng_state(checkpoint.rng_state)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as err:
        # The states' own loaders check what they read; a value of the wrong JSON type can
        # still surface as any of these. To the caller: this file cannot be resumed.
        raise ValueError(f"{path}: cannot restore the training state "
                         f"({type(err).__name__}: {err})") from err


def load_model(path):
    """Rebuild the model stored in a model or checkpoint file: returns ``(model, config)``.

    The model is in eval mode. Raises FileNotFoundError, or ValueError naming the file if it is
    corrupt, names an unknown model, or its weights do not fit the architecture.
    """
    path = os.fspath(path)
    tensors, metadata = _read(path)
    config = metadata["config"]
    if metadata["kind"] == "checkpoint":
        tensors = {k[len(_MODEL):]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    spec = config["model"]
    try:
        # The file's hyperparameters decide the allocation: no more than the weights it holds.
        with parameter_budget(sum(array.size for array in tensors.values())):
            model = models.get(spec["name"], **spec.get("kwargs", {}))
        model.load_state_dict(tensors)
    except (TypeError, ValueError, MemoryError) as err:
        raise ValueError(f"{path}: cannot rebuild model {spec.get('name')!r} "
                         f"({type(err).__name__ if isinstance(err, MemoryError) else err})"
                         ) from err
    model.eval()
    _check_classes(model, config, path)
    return model, config


def _check_classes(model, config, path) -> None:
    """One class name per model output: every model here ends in a Linear layer, the last 2-D
    weight of its state_dict, with one row per output."""
    classes = config.get("classes")
    weights = [v for k, v in model.state_dict().items() if k.endswith("weight") and v.ndim == 2]
    if classes is not None and weights and len(classes) != weights[-1].shape[0]:
        raise ValueError(f"{path}: invalid config.classes in metadata: {len(classes)} names for "
                         f"{weights[-1].shape[0]} model outputs")


def _check_config(config) -> None:
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) \
            or not isinstance(config["model"].get("name"), str):
        raise ValueError("config must be a dict with config['model'] = {'name': str, "
                         "'kwargs': dict}")
