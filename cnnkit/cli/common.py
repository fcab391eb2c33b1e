"""Helpers shared by the commands: errors, data sets by name, and image → model input.

A command reports a problem the user can fix by raising ``CommandError`` (exit code 1) or
``UsageError`` (exit code 2, like argparse's own errors); ``cnnkit.cli.main`` prints it as one
line, ``cnnkit <command>: error: <message>``, with no traceback.
"""
from __future__ import annotations

import argparse
import math
import os

import numpy as np

from ..data import (
    DEFAULT_MAX_PIXELS,
    MNIST,
    Digits,
    FashionMNIST,
    ImageFolder,
    Subset,
    load_image,
    random_split,
)
from .words import size_text

DATASET_NAMES = ("fashion-mnist", "mnist", "digits")
DEFAULT_DATASET = "fashion-mnist"


class CommandError(Exception):
    """A user-facing error: printed as one line, exit code ``exit_code``."""

    exit_code = 1


class UsageError(CommandError):
    """Wrong arguments (an unknown model, a malformed option): exit code 2, as argparse."""

    exit_code = 2


def one_line(message) -> str:
    """Collapse a possibly multi-line message into one line."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


MAX_SEED = 2**63 - 1


def int_in(low: int, high: int | None = None):
    """argparse type: an integer in [low, high] (argparse names the option in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            expected = f">= {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"expected an integer {expected}, got {text!r}")
        return value
    parse.__name__ = "int"
    return parse


def real_in(low: float, *, inclusive: bool):
    """argparse type: a finite number > low (>= low if ``inclusive``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            relation = ">=" if inclusive else ">"
            raise argparse.ArgumentTypeError(f"expected a finite number {relation} {low:g}, got "
                                             f"{text!r}")
        return value
    parse.__name__ = "float"
    return parse


positive_int = int_in(1)
seed_int = int_in(0, MAX_SEED)


def add_max_pixels_argument(parser) -> None:
    parser.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                        metavar="N", help="refuse image files of more than N pixels, before "
                                          f"decoding them (default {DEFAULT_MAX_PIXELS:,})")


def add_data_root_argument(parser) -> None:
    parser.add_argument("--data-root", metavar="DIR", default=None,
                        help="directory with the IDX files of (Fashion-)MNIST (default: "
                             "$CNNKIT_DATA, then /usr/share/datasets/<name>)")


def load_datasets(name: str, data_root=None, image_size=None, split_seed: int = 0,
                  max_pixels: int = DEFAULT_MAX_PIXELS):
    """``(train, test)`` data sets for ``name``: a built-in name or a folder of class folders.

    A folder with ``train/`` and ``test/`` sub-folders uses them; otherwise its class folders
    are split 80/20 at random (seeded); their image files may have at most ``max_pixels``
    pixels. Raises CommandError for a missing, unknown or empty data set.
    """
    train, test = _load_splits(name, data_root, image_size, split_seed, max_pixels)
    for split, dataset in (("training", train), ("test", test)):
        if len(dataset) == 0:
            raise CommandError(f"data set {name!r}: the {split} split has no images")
    return train, test


def _load_splits(name: str, data_root, image_size, split_seed, max_pixels):
    if name in ("fashion-mnist", "mnist"):
        if data_root is not None and not os.path.isdir(data_root):
            raise UsageError(f"--data-root {data_root}: no such directory")
        cls = FashionMNIST if name == "fashion-mnist" else MNIST
        try:
            splits = cls(root=data_root, train=True), cls(root=data_root, train=False)
        except FileNotFoundError as err:
            raise CommandError(f"data set {name!r} not found: "
                               f"{one_line(err).replace('pass root=', 'pass --data-root ')}"
                               ) from err
        for split in splits if data_root is not None else ():
            # The library falls back to $CNNKIT_DATA and the system copy; an explicit
            # --data-root must not silently be replaced by them.
            if os.path.dirname(os.path.realpath(split.files[0])) != os.path.realpath(data_root):
                raise CommandError(f"--data-root {data_root}: no {name} files there (another "
                                   f"copy is in {os.path.dirname(split.files[0])})")
        return splits
    if name == "digits":
        return Digits(train=True), Digits(train=False)
    if not os.path.isdir(name):
        raise UsageError(f"unknown data set {name!r}: expected one of {', '.join(DATASET_NAMES)} "
                         "or a folder of class folders of images")
    try:
        train_dir, test_dir = os.path.join(name, "train"), os.path.join(name, "test")
        if os.path.isdir(train_dir) and os.path.isdir(test_dir):
            train = ImageFolder(train_dir, image_size=image_size, max_pixels=max_pixels)
            test = ImageFolder(test_dir, image_size=image_size, grayscale=train.grayscale,
                               max_pixels=max_pixels)
            return train, test
        everything = ImageFolder(name, image_size=image_size, max_pixels=max_pixels)
        n_test = max(1, round(0.2 * len(everything)))
        train, test = random_split(everything, [len(everything) - n_test, n_test],
                                   seed=split_seed)
        train.classes = test.classes = everything.classes
        return train, test
    except (ValueError, FileNotFoundError) as err:
        raise CommandError(f"cannot use {name!r} as a data set: {one_line(err)}") from err


def limited(dataset, limit, seed: int = 0):
    """A random (seeded) subset of ``limit`` samples, or the data set itself if None/larger."""
    if limit is None or limit >= len(dataset):
        return dataset
    indices = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:limit])
    subset = Subset(dataset, indices)
    subset.classes = dataset_classes(dataset)
    return subset


def dataset_classes(dataset) -> list:
    classes = getattr(dataset, "classes", None)
    if classes is None and isinstance(dataset, Subset):
        return dataset_classes(dataset.dataset)
    return list(classes)


def sample_shape(dataset) -> tuple:
    """(C, H, W) of the data set's first image (``load_datasets`` refuses empty ones)."""
    image = dataset[0][0]
    return tuple(int(s) for s in np.shape(image))


def channel_stats(dataset, max_samples: int = 2000, seed: int = 0):
    """Per-channel mean and std of the training images (a seeded sample of at most
    ``max_samples`` images), as lists of floats — the ``Normalize`` a model is trained with."""
    count = min(len(dataset), max_samples)
    picks = np.random.default_rng(seed).permutation(len(dataset))[:count]
    images = np.stack([np.asarray(dataset[int(i)][0], dtype=np.float64) for i in picks])
    axes = (0,) + tuple(range(2, images.ndim))
    std = images.std(axis=axes)
    return images.mean(axis=axes).tolist(), np.where(std > 0, std, 1.0).tolist()


def parse_shape(text: str, option: str = "--input-shape") -> tuple:
    """'1,28,28' → (1, 28, 28); UsageError if malformed or larger than a model input may be
    (``cnnkit.train.schema.MAX_INPUT_ELEMENTS``)."""
    from ..train.schema import MAX_INPUT_ELEMENTS
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise UsageError(f"{option}: expected positive integers separated by commas, e.g. "
                         f"1,28,28, got {text!r}")
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise UsageError(f"{option}: {text} has more than {MAX_INPUT_ELEMENTS:,} elements")
    return shape


# Models built from command-line sizes: at most this many parameters (1 GiB of float32).
MAX_MODEL_PARAMETERS = 1 << 28


def build_model(name: str, **kwargs):
    """``cnnkit.models.get`` for sizes given on the command line: UsageError for a bad
    argument or a model of more than ``MAX_MODEL_PARAMETERS`` parameters (refused before its
    weights are allocated)."""
    from .. import models
    from ..nn.parameter import parameter_budget
    try:
        with parameter_budget(MAX_MODEL_PARAMETERS):
            return models.get(name, **kwargs)
    except (ValueError, MemoryError) as err:
        raise UsageError(f"cannot build {name} with {kwargs}: "
                         f"{one_line(err) or type(err).__name__}") from err


def image_input(path, config: dict, resize: bool = False, invert: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load ``path`` as the model's input: float32 (C, H, W), normalised as in training.

    Grayscale or RGB by the model's channel count. An image of another size is a CommandError
    unless ``resize`` (bilinear) is set; ``invert`` maps v → 1 − v (Fashion-MNIST and MNIST
    show light objects on black, photos usually the reverse). A file of more than
    ``max_pixels`` pixels is a CommandError before it is decoded.
    """
    if len(config["input_shape"]) != 3:
        raise CommandError(f"the model takes inputs of shape {tuple(config['input_shape'])}, "
                           "not images (C, H, W)")
    channels, height, width = config["input_shape"]
    try:
        image = load_image(path, grayscale=channels == 1, size=(height, width) if resize else None,
                           max_pixels=max_pixels)
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(one_line(err)) from err
    if image.shape[0] != channels:
        raise CommandError(f"{path}: image has {image.shape[0]} channels, the model expects "
                           f"{channels}")
    if image.shape[1:] != (height, width):
        raise CommandError(f"{path}: image is {size_text(image.shape)} pixels (H×W) but the "
                           f"model expects {height}×{width}; pass --resize to resize it")
    if invert:
        image = 1.0 - image
    norm = config.get("normalize") or {"mean": [0.0], "std": [1.0]}
    mean = np.asarray(norm["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(norm["std"], dtype=np.float32).reshape(-1, 1, 1)
    return ((image - mean) / std).astype(np.float32)
