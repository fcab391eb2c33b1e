"""Images of a model's own test set, by index: ``--test-index N`` instead of exporting a PNG.

The test split is the one ``cnnkit evaluate`` uses (the data set saved with the model, the
training run's split seed for folders), so index N names the same image in every command.
"""
from __future__ import annotations

import numpy as np

from .common import (
    DEFAULT_MAX_PIXELS,
    CommandError,
    UsageError,
    dataset_classes,
    load_datasets,
)


def add_test_index_argument(parser, help_extra: str = "") -> None:
    parser.add_argument("--test-index", type=_index, action="append", metavar="N",
                        help="use test image N of the model's data set (repeatable; with "
                             f"--data-root for (Fashion-)MNIST){help_extra}")


def _index(text: str) -> int:
    import argparse
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def pick_test_images(config: dict, indices, data_root=None,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> list:
    """[(label text, image (C, H, W) float32 normalised as in training, true class name)].

    config : the model's saved config (``dataset``, ``classes``, ``normalize``, ``input_shape``)
    indices : test-set indices, each checked against the split's length before any loading
    max_pixels : the largest image file of an image-folder data set (refused unread)
    """
    if not indices:
        return []
    name = config.get("dataset")
    if name is None:
        raise UsageError("--test-index: the model does not name its data set")
    train_settings = config.get("train") or {}
    _, test_set = load_datasets(name, data_root, train_settings.get("image_size"),
                                split_seed=train_settings.get("seed", 0), max_pixels=max_pixels)
    for index in indices:
        if index >= len(test_set):
            raise UsageError(f"--test-index {index}: the {name} test split has "
                             f"{len(test_set)} images (0 to {len(test_set) - 1})")
    classes = config.get("classes") or dataset_classes(test_set)
    norm = config.get("normalize") or {"mean": [0.0], "std": [1.0]}
    mean = np.asarray(norm["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(norm["std"], dtype=np.float32).reshape(-1, 1, 1)
    samples = []
    for index in indices:
        image, label = test_set[index]
        image = np.asarray(image, dtype=np.float32)
        if list(image.shape) != list(config["input_shape"]):
            raise CommandError(f"the model expects {tuple(config['input_shape'])} inputs, "
                               f"{name} gives {image.shape}")
        true = classes[int(label)] if int(label) < len(classes) else str(int(label))
        samples.append((f"{name} test image {index}", (image - mean) / std, true))
    return samples


def check_one_input(args) -> None:
    """For commands about one image: exactly one of IMAGE and --test-index N (checked before
    loading anything)."""
    if (args.image is None) == (not args.test_index) or len(args.test_index or []) > 1:
        raise UsageError("give one IMAGE or one --test-index N")


def one_input(args, config) -> tuple:
    """(label, image (C, H, W) normalised as in training) from IMAGE (with --resize, --invert,
    --max-pixels) or --test-index N (with --data-root), after ``check_one_input``."""
    from .common import image_input
    if args.image is not None:
        return args.image, image_input(args.image, config, args.resize, args.invert,
                                       args.max_pixels)
    (label, image, true), = pick_test_images(config, args.test_index, args.data_root,
                                              args.max_pixels)
    return f"{label} (true class: {true})", image
