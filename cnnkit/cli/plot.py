"""``cnnkit plot``: pictures of a model and its training, as PNG files (matplotlib, Agg).

MODEL/CHECKPOINT arguments take a file written by ``cnnkit train`` (model.safetensors or
checkpoint.safetensors) or a model name (``cnnkit.models.get``, freshly initialised weights),
so the pictures can be drawn before anything is trained.
"""
from __future__ import annotations

import os

from .common import (
    CommandError,
    UsageError,
    add_data_root_argument,
    add_max_pixels_argument,
    build_model,
    one_line,
    parse_shape,
    positive_int,
)
from .samples import add_test_index_argument
from .words import count

DEFAULT_INPUT_SHAPE = "1,28,28"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot", help="draw filters, feature maps, curves, confusion matrix, receptive field",
        description="Write a PNG picture (atomically) of one aspect of a model or a run.")
    kinds = parser.add_subparsers(dest="kind", metavar="<kind>", required=True)

    filters = kinds.add_parser("filters", help="first-layer kernels as a grid",
                               description="The first convolution's kernels, one tile each.")
    _model_argument(filters, "CHECKPOINT")
    filters.add_argument("--max-filters", type=positive_int, default=64, help="default 64")
    _output_argument(filters, "filters.png")
    filters.set_defaults(run=run_filters)

    features = kinds.add_parser(
        "features", help="feature maps of an image, layer by layer",
        description="Run the model on IMAGE (converted as for 'cnnkit predict') and draw the "
                    "output channels of every convolution, activation and pooling layer.")
    _model_argument(features, "CHECKPOINT")
    features.add_argument("image", metavar="IMAGE", nargs="?", help="PNG/JPEG file")
    add_test_index_argument(features)
    add_data_root_argument(features)
    features.add_argument("--resize", action="store_true",
                          help="resize the image to the model's input size")
    features.add_argument("--invert", action="store_true", help="invert brightness")
    features.add_argument("--max-channels", type=positive_int, default=8,
                          help="maps per layer (8)")
    features.add_argument("--layers", help="comma-separated layer names (default: all)")
    add_max_pixels_argument(features)
    _output_argument(features, "features.png")
    features.set_defaults(run=run_features)

    curves = kinds.add_parser("curves", help="loss and accuracy per epoch of a run",
                              description="Read RUN_DIR/metrics.json (or metrics.csv), as "
                                          "written by 'cnnkit train', and plot every loss and "
                                          "accuracy column against the epoch, with the loss "
                                          "of every batch (RUN_DIR/batch_losses.csv) when "
                                          "the run has it.")
    curves.add_argument("run_dir", metavar="RUN_DIR", help="run directory or metrics file")
    _output_argument(curves, "curves.png")
    curves.set_defaults(run=run_curves)

    confusion = kinds.add_parser(
        "confusion", help="confusion matrix on the test set",
        description="Predict the test split of the data set the model was trained on (or "
                    "--dataset) and draw true vs predicted classes.")
    _model_argument(confusion, "CHECKPOINT")
    confusion.add_argument("--dataset", help="data set name or folder (default: the saved one)")
    confusion.add_argument("--data-root", metavar="DIR", default=None,
                           help="directory with the IDX files of (Fashion-)MNIST")
    confusion.add_argument("--limit-test", type=positive_int, metavar="N",
                           help="use a random subset of N test images")
    confusion.add_argument("--batch-size", type=positive_int, default=500, help="default 500")
    confusion.add_argument("--normalize", action="store_true",
                           help="show row fractions instead of counts")
    add_max_pixels_argument(confusion)
    _output_argument(confusion, "confusion.png")
    confusion.set_defaults(run=run_confusion)

    field = kinds.add_parser(
        "receptive-field", help="how stacking layers widens what one output sees",
        description="Trace the receptive field of the centre unit through the model's "
                    "convolution and pooling layers: nested squares on the input and the "
                    "field's width per layer; the table is printed too.")
    _model_argument(field, "MODEL")
    field.add_argument("--image", help="draw the squares on this image")
    add_max_pixels_argument(field)
    _output_argument(field, "receptive_field.png")
    field.set_defaults(run=run_receptive_field)


def _model_argument(parser, metavar):
    parser.add_argument("model", metavar=metavar,
                        help="model/checkpoint file (or run directory) from 'cnnkit train', "
                             "or a model name (untrained weights)")
    parser.add_argument("--input-shape", default=None,
                        help=f"C,H,W for a model name (default {DEFAULT_INPUT_SHAPE}; a "
                             "file knows its own)")


def _output_argument(parser, default):
    parser.add_argument("-o", "--output", metavar="OUT.png", default=default,
                        help=f"PNG file to write (default {default})")


def load_model(text, input_shape=None, require_input_shape=True):
    """(model, config) from a model/checkpoint file, a run directory holding model.safetensors,
    or a model name (random weights)."""
    from .. import models
    if os.path.exists(text):
        from .evaluate import load_model_or_fail
        return load_model_or_fail(text, input_shape, require_input_shape)
    if text not in models.names():
        raise CommandError(f"{text}: no such model/checkpoint file, nor a model name (known: "
                           f"{', '.join(models.names())})")
    shape = parse_shape(input_shape or DEFAULT_INPUT_SHAPE)
    kwargs = {"in_channels": shape[0]}
    if models.is_image_model(text):
        if len(shape) != 3:
            raise UsageError(f"--input-shape: model {text!r} takes images C,H,W, got {shape}")
        kwargs["input_size"] = shape[1:]
    elif len(shape) != 2:
        raise UsageError(f"--input-shape: model {text!r} takes signals C,L, got {shape}")
    model = build_model(text, **kwargs)
    return model.eval(), {"model": {"name": text, "kwargs": kwargs}, "input_shape": list(shape),
                          "normalize": None, "untrained": True}


def _untrained(config) -> str:
    return ", untrained (random weights)" if config.get("untrained") else ""


def _check_output(path):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"-o {path}: directory {directory} does not exist")


def _wrote(path, what):
    print(f"wrote {path}: {what}")
    return 0


def run_filters(args) -> int:
    from ..plots import first_conv_weight, plot_filters
    _check_output(args.output)
    model, config = load_model(args.model, args.input_shape, require_input_shape=False)
    weight = first_conv_weight(model)
    plot_filters(weight, args.output, max_filters=args.max_filters,
                 title=f"first-layer filters of {args.model}{_untrained(config)}")
    shown = min(len(weight), args.max_filters)
    return _wrote(args.output, f"{count(shown, 'first-layer filter')} of shape "
                               f"{'×'.join(map(str, weight.shape[1:]))}")


def run_features(args) -> int:
    from ..plots import plot_features
    from .samples import check_one_input, one_input
    check_one_input(args)
    _check_output(args.output)
    model, config = load_model(args.model, args.input_shape)
    source, image = one_input(args, config)
    layers = [name.strip() for name in args.layers.split(",")] if args.layers else None
    label, _ = predicted_class(model, config, image)
    plot_features(model, image, args.output, max_channels=args.max_channels, layers=layers,
                  title=f"{source}: predicted {label}{_untrained(config)}")
    return _wrote(args.output, f"feature maps of {source} (predicted {label})")


def predicted_class(model, config, image):
    """('shirt (83.1%)', probabilities (classes,)) for one normalised image (C, H, W)."""
    import numpy as np

    from .. import functional as F
    from ..tensor import Tensor, no_grad
    with no_grad():
        scores = model.eval()(Tensor(np.asarray(image, dtype=np.float32)[None]))
        probabilities = F.softmax(scores, dim=1).data[0]
    classes = config.get("classes") or [f"class {k}" for k in range(len(probabilities))]
    best = int(np.argmax(probabilities))
    return f"{classes[best]} ({100 * probabilities[best]:.1f}%)", probabilities


def run_curves(args) -> int:
    from ..plots import plot_curves, read_metrics
    _check_output(args.output)
    try:
        metrics = read_metrics(args.run_dir)
    except FileNotFoundError as err:
        raise CommandError(one_line(err)) from err
    batch_losses = None
    if os.path.isdir(args.run_dir):
        from ..train.batch_losses import read_batch_losses
        try:
            batch_losses = read_batch_losses(args.run_dir)
        except ValueError as err:
            raise CommandError(one_line(err)) from err
    plot_curves(metrics, args.output, title=f"training curves: {args.run_dir}",
                batch_losses=batch_losses)
    return _wrote(args.output, count(len(next(iter(metrics.values()))), "epoch"))


def run_confusion(args) -> int:
    import numpy as np

    from ..data import DataLoader
    from ..data import transforms as T
    from ..plots import confusion_matrix, plot_confusion, predict_labels
    from .common import dataset_classes, limited, load_datasets

    _check_output(args.output)
    model, config = load_model(args.model, args.input_shape)
    name = args.dataset or config.get("dataset")
    if name is None:
        raise CommandError(f"{args.model} does not name its data set; pass --dataset")
    image_size = (config.get("train") or {}).get("image_size")
    _, test_set = load_datasets(name, args.data_root, image_size, max_pixels=args.max_pixels)
    classes = dataset_classes(test_set)
    test_set = limited(test_set, args.limit_test)
    if tuple(test_set[0][0].shape) != tuple(config["input_shape"]):
        raise CommandError(f"the model expects {tuple(config['input_shape'])} inputs, {name} "
                           f"gives {tuple(test_set[0][0].shape)}")
    norm = config.get("normalize")
    transform = T.Normalize(norm["mean"], norm["std"]) if norm else None
    predicted, labels = [], []
    for images, batch_labels in DataLoader(test_set, args.batch_size, transform=transform):
        predicted.append(predict_labels(model, np.asarray(images), args.batch_size))
        labels.append(np.asarray(batch_labels))
    classes = config.get("classes") or classes
    matrix = confusion_matrix(np.concatenate(predicted), np.concatenate(labels), len(classes))
    plot_confusion(matrix, classes, args.output, normalize=args.normalize,
                   title=f"confusion matrix ({name} test)")
    return _wrote(args.output, f"{matrix.sum()} test images, accuracy "
                               f"{100 * np.trace(matrix) / max(matrix.sum(), 1):.2f}%")


def run_receptive_field(args) -> int:
    from ..plots import format_receptive_fields, plot_receptive_field, receptive_fields
    _check_output(args.output)
    model, config = load_model(args.model, args.input_shape)
    shape = tuple(config["input_shape"])
    image = None
    if args.image:
        from .common import image_input
        image = image_input(args.image, config, resize=True, max_pixels=args.max_pixels)
    print(format_receptive_fields(receptive_fields(model, shape), shape))
    plot_receptive_field(model, shape, args.output, image=image,
                         title=f"receptive field growth: {args.model}")
    return _wrote(args.output, "receptive field per layer")
