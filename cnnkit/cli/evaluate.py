"""``cnnkit evaluate``: test accuracy and loss of a saved model (model or checkpoint file)."""
from __future__ import annotations

import numpy as np

from .common import (
    CommandError,
    add_data_root_argument,
    add_max_pixels_argument,
    dataset_classes,
    limited,
    load_datasets,
    one_line,
    parse_shape,
    positive_int,
    sample_shape,
)
from .words import count


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="test accuracy and loss of a saved model",
        description="Rebuild the model stored in CHECKPOINT (a model.safetensors or "
                    "checkpoint.safetensors written by 'cnnkit train') and evaluate it on the "
                    "test split of the data set it was trained on.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="model or checkpoint file, or a run directory")
    parser.add_argument("--dataset", help="evaluate on this data set instead of the saved one")
    add_data_root_argument(parser)
    parser.add_argument("--batch-size", type=positive_int, default=500, help="default 500")
    parser.add_argument("--limit-test", type=positive_int, metavar="N",
                        help="evaluate on a random subset of N test images")
    add_max_pixels_argument(parser)
    parser.set_defaults(run=run)


def load_model_or_fail(path, input_shape=None, require_input_shape=True):
    """``cnnkit.train.load_model`` with its errors as one-line CommandErrors.

    ``path`` is a model/checkpoint file or a run directory of ``cnnkit train`` (its
    model.safetensors, else its checkpoint.safetensors). ``input_shape`` (an --input-shape
    text) overrides the file's; without either, a command that needs the shape
    (``require_input_shape``) stops with a CommandError.
    """
    import os

    from ..train import CHECKPOINT_FILE, MODEL_FILE, load_model
    if os.path.isdir(path):
        files = [os.path.join(path, name) for name in (MODEL_FILE, CHECKPOINT_FILE)]
        found = [f for f in files if os.path.isfile(f)]
        if not found:
            raise CommandError(f"{path}: a directory without {MODEL_FILE} or {CHECKPOINT_FILE}; "
                               "expected a run directory of 'cnnkit train' or a model file")
        path = found[0]
    try:
        model, config = load_model(path)
    except FileNotFoundError as err:
        raise CommandError(f"{path}: no such file") from err
    except ValueError as err:
        raise CommandError(one_line(err)) from err
    if input_shape is not None:
        config = dict(config, input_shape=list(parse_shape(input_shape)))
    if require_input_shape and config.get("input_shape") is None:
        raise CommandError(f"{path}: its config has no input_shape (files written by cnnkit "
                           "train have one; where the command has --input-shape, give it)")
    return model, config


def run(args) -> int:
    from .. import functional as F
    from ..data import DataLoader
    from ..data import transforms as T
    from ..train import evaluate
    from ..train.metrics import confusion_matrix

    model, config = load_model_or_fail(args.checkpoint)
    dataset_name = args.dataset or config.get("dataset")
    if dataset_name is None:
        raise CommandError(f"{args.checkpoint} does not name its data set; pass --dataset")
    train_settings = config.get("train") or {}
    # The same split seed as in training, so a folder split 80/20 gives the same test images.
    _, test_set = load_datasets(dataset_name, args.data_root, train_settings.get("image_size"),
                                split_seed=train_settings.get("seed", 0),
                                max_pixels=args.max_pixels)
    test_set = limited(test_set, args.limit_test)
    shape = sample_shape(test_set)
    if shape != tuple(config["input_shape"]):
        raise CommandError(f"the model expects {tuple(config['input_shape'])} inputs, "
                           f"{dataset_name} gives {shape}")
    norm = config.get("normalize")
    transform = T.Normalize(norm["mean"], norm["std"]) if norm else None
    loader = DataLoader(test_set, args.batch_size, transform=transform)
    predicted, labels = [], []

    def recording_loss(scores, batch_labels):  # evaluate's own pass also gives the predictions
        predicted.append(scores.data.argmax(axis=1))
        labels.append(np.asarray(batch_labels.data if hasattr(batch_labels, "data")
                                 else batch_labels))
        return F.cross_entropy(scores, batch_labels)

    result = evaluate(model, loader, loss_fn=recording_loss)
    print(f"test accuracy: {100 * result['accuracy']:.2f}%  test loss: {result['loss']:.4f}  "
          f"({count(result['count'], 'image')} of {dataset_name})")
    classes = config.get("classes") or dataset_classes(test_set)
    matrix = confusion_matrix(np.concatenate(predicted), np.concatenate(labels), len(classes))
    print(per_class_table(matrix, classes))
    return 0


def per_class_table(matrix, classes) -> str:
    """Accuracy per true class from a confusion matrix (classes, classes) of counts."""
    width = max(len("class"), *(len(str(name)) for name in classes))
    lines = [f"  {'class':<{width}}  accuracy  correct/total"]
    for name, row, correct in zip(classes, matrix, np.diag(matrix)):
        total = int(row.sum())
        accuracy = f"{100 * correct / total:6.2f}%" if total else "     –"
        lines.append(f"  {str(name):<{width}}  {accuracy:>8}  {int(correct)}/{total}")
    return "\n".join(lines)
