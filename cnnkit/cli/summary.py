"""``cnnkit summary``: per-layer shapes, parameters, multiply-adds and receptive fields."""
from __future__ import annotations

import os

from .common import UsageError, build_model, int_in, one_line, parse_shape


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "summary", help="layer table: output shapes, params, mult-adds, receptive fields",
        description="Print a table of MODEL's layers: output shape (by the convolution "
                    "arithmetic), parameters, multiply-adds, receptive field (size and jump), "
                    "and for each convolution the weights a fully connected layer would need "
                    "for the same input→output mapping. MODEL is a model name or a saved "
                    "model/checkpoint file.")
    parser.add_argument("model", metavar="MODEL", nargs="?", help="model name or .safetensors file")
    parser.add_argument("--input-shape", metavar="C,H,W",
                        help="input shape without the batch axis (default 1,28,28; 1,128 for "
                             "cnn1d; a saved model's own shape)")
    parser.add_argument("--num-classes", type=int_in(1, 1_000_000), default=10,
                        help="default 10")
    parser.add_argument("--list", action="store_true", help="list the model names and exit")
    parser.set_defaults(run=run)


def run(args) -> int:
    from .. import models
    from ..summary import format_summary, summarize
    from .evaluate import load_model_or_fail

    if args.list:
        print("\n".join(models.names()))
        return 0
    if args.model is None:
        raise UsageError("give a MODEL (one of: " + ", ".join(models.names()) + ") or --list")
    if args.model.endswith(".safetensors") or os.path.isfile(args.model):
        model, config = load_model_or_fail(args.model, args.input_shape)
        shape = tuple(config["input_shape"])
    else:
        if args.model not in models.names():
            raise UsageError(f"unknown model {args.model!r}; available: "
                             f"{', '.join(models.names())}")
        image = models.is_image_model(args.model)
        shape = parse_shape(args.input_shape or ("1,28,28" if image else "1,128"))
        if len(shape) != (3 if image else 2):
            raise UsageError(f"--input-shape: {args.model} takes "
                             f"{'(C, H, W) images' if image else '(C, L) signals'}, got {shape}")
        kwargs = {"in_channels": shape[0], "num_classes": args.num_classes}
        if args.model in ("lenet5", "vgg_small"):
            kwargs["input_size"] = shape[1:]
        model = build_model(args.model, **kwargs)
    try:
        print(format_summary(summarize(model, shape)))
    except ValueError as err:
        raise UsageError(f"{args.model} does not accept input shape {shape}: "
                         f"{one_line(err)}") from err
    return 0
