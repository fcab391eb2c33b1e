"""``cnnkit report``: one static HTML page of a trained model at work on one image."""
from __future__ import annotations

import os

from .common import (
    CommandError,
    add_data_root_argument,
    add_max_pixels_argument,
    positive_int,
)
from .samples import add_test_index_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="an HTML page: input → feature maps per layer → class probabilities",
        description="Run the model of RUN (a run directory of 'cnnkit train', or a model "
                    "file) on IMAGE (or --test-index N) and write one self-contained HTML "
                    "page: the input, every layer's feature maps with their shapes, and the "
                    "class probabilities. Pictures are embedded; the page works offline.")
    parser.add_argument("run_dir", metavar="RUN", help="run directory or model file")
    parser.add_argument("image", metavar="IMAGE", nargs="?", help="PNG/JPEG file")
    add_test_index_argument(parser)
    add_data_root_argument(parser)
    parser.add_argument("--resize", action="store_true",
                        help="resize the image to the model's input size")
    parser.add_argument("--invert", action="store_true", help="invert brightness")
    parser.add_argument("--max-channels", type=positive_int, default=8,
                        help="feature maps per layer (default 8)")
    parser.add_argument("-o", "--output", metavar="OUT.html", default=None,
                        help="HTML file to write (default RUN/report.html, or report.html "
                             "for a model file)")
    add_max_pixels_argument(parser)
    parser.set_defaults(run=run)


def _notes(run_dir) -> list:
    """A line about the training run, from its metrics, when there are any."""
    from ..plots import read_metrics
    try:
        metrics = read_metrics(run_dir)
    except (FileNotFoundError, ValueError):
        return []
    accuracy = metrics.get("test_accuracy")
    if accuracy is None or not len(accuracy):
        return []
    from .words import count
    return [f"trained for {count(len(accuracy), 'epoch')}; test accuracy after the last: "
            f"{100 * accuracy[-1]:.2f}%"]


def run(args) -> int:
    from ..io import atomic_write_bytes
    from ..plots.html_report import model_report_html
    from .evaluate import load_model_or_fail
    from .samples import check_one_input, one_input

    check_one_input(args)
    output = args.output or (os.path.join(args.run_dir, "report.html")
                             if os.path.isdir(args.run_dir) else "report.html")
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise CommandError(f"-o {output}: directory {directory} does not exist")
    model, config = load_model_or_fail(args.run_dir)
    label, image = one_input(args, config)
    name = (config.get("model") or {}).get("name", "model")
    notes = [f"model {name} from {args.run_dir}"] + (
        _notes(args.run_dir) if os.path.isdir(args.run_dir) else [])
    page = model_report_html(model, image, config.get("classes"), f"{name} on {label}", notes,
                             args.max_channels)
    atomic_write_bytes(output, page.encode("utf-8"))
    print(f"wrote {output}: {len(page) // 1024} KiB, input → feature maps → probabilities")
    return 0
