"""``cnnkit predict``: classify image files with a saved model and print the top-k classes."""
from __future__ import annotations

import numpy as np

from .common import (
    UsageError,
    add_data_root_argument,
    add_max_pixels_argument,
    image_input,
    positive_int,
)
from .samples import add_test_index_argument, pick_test_images


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="classify image files with a saved model",
        description="Load each IMAGE with Pillow, convert it to the model's input (grayscale "
                    "or RGB, the training normalisation) and print the top-k classes with their "
                    "probabilities. An image of another size than the model's is an error "
                    "unless --resize is given.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="model or checkpoint file, or a run directory")
    parser.add_argument("images", metavar="IMAGE", nargs="*", help="PNG/JPEG files")
    add_test_index_argument(parser)
    add_data_root_argument(parser)
    parser.add_argument("--top-k", type=positive_int, default=3,
                        help="classes to show (default 3)")
    parser.add_argument("--resize", action="store_true",
                        help="resize images to the model's input size (bilinear)")
    parser.add_argument("--invert", action="store_true",
                        help="invert brightness (Fashion-MNIST/MNIST are light on black)")
    add_max_pixels_argument(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    import cnnkit

    from .. import functional as F
    from .evaluate import load_model_or_fail

    model, config = load_model_or_fail(args.checkpoint)
    classes = config.get("classes") or [str(k) for k in range(model(cnnkit.tensor(
        np.zeros((1, *config["input_shape"]), np.float32))).shape[1])]
    if not args.images and not args.test_index:
        raise UsageError("give IMAGE files or --test-index N")
    # Check every image before running any, so a bad one fails fast and alone.
    inputs = [(path, image_input(path, config, args.resize, args.invert, args.max_pixels), None)
              for path in args.images]
    inputs += pick_test_images(config, args.test_index or [], args.data_root,
                               args.max_pixels)
    with cnnkit.no_grad():
        probabilities = F.softmax(model(cnnkit.tensor(np.stack([x for _, x, _ in inputs]))),
                                  dim=1).data
    k = min(args.top_k, len(classes))
    width = max(len(name) for name in classes)
    for (label, _, true), p in zip(inputs, probabilities):
        print(label if true is None else f"{label} (true class: {true})")
        for rank, index in enumerate(np.argsort(-p, kind="stable")[:k], start=1):
            print(f"  {rank}. {classes[index]:<{width}}  {100 * p[index]:6.2f}%")
    return 0
