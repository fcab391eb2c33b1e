"""``cnnkit filter``: apply an image kernel (blur, sharpen, Sobel, ... or your own) to an image."""
from __future__ import annotations

import os

from .common import CommandError, UsageError, add_max_pixels_argument, one_line
from .words import row_col

PRESETS = ("identity, sharpen, blur, box-blur, emboss, outline, sobel-left, sobel-right, "
           "sobel-top, sobel-bottom")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "filter", help="filter an image with a 3×3 preset or a custom kernel",
        description="Correlate (or, with --convolve, convolve) every channel of IMAGE with a "
                    "kernel, through cnnkit's own conv2d, and write a PNG. Presets (setosa.io "
                    f"image kernels): {PRESETS}. Edge kernels (weights summing to 0: sobel-*, "
                    "outline) work on the luminance and show their signed response with "
                    "mid-grey = 0, light = positive, dark = negative, stretched so the 99th "
                    "percentile of |r| reaches black/white (the scale is printed; --range "
                    "signed uses the largest possible |r| instead); other kernels are clipped "
                    "to [0, 1].")
    parser.add_argument("image", metavar="IMAGE", nargs="?", help="PNG/JPEG file")
    parser.add_argument("-k", "--kernel", default=None,
                        help="a preset name or rows like '0,-1,0;-1,5,-1;0,-1,0' (entries may "
                             "be fractions: '1/16'); write --kernel='-1,0;0,1' when the first "
                             "entry is negative")
    parser.add_argument("-o", "--output", metavar="OUT.png",
                        help="file to write: PNG, or JPEG for .jpg/.jpeg")
    parser.add_argument("--mode", choices=("same", "valid", "full"), default="same",
                        help="output size as scipy.signal.correlate2d: same (default), valid "
                             "(no padding) or full")
    parser.add_argument("--convolve", action="store_true",
                        help="true convolution (kernel flipped) instead of correlation")
    parser.add_argument("--range", dest="output_range", default="auto",
                        choices=("auto", "clip", "stretch", "signed", "abs"),
                        help="map the response to [0, 1]: clip, stretch (mid-grey = 0, the "
                             "99th percentile of |r| at black/white), signed (mid-grey = 0, the "
                             "largest possible |r| at black/white), abs (edge strength); auto "
                             "= stretch for edge kernels, else clip")
    colour = parser.add_mutually_exclusive_group()
    colour.add_argument("--gray", dest="grayscale", action="store_const", const=True,
                        default="auto", help="filter the luminance, also for smoothing kernels")
    colour.add_argument("--color", dest="grayscale", action="store_const", const=False,
                        help="filter each colour channel, also for edge kernels")
    parser.add_argument("--padding-mode", default="zeros",
                        choices=("zeros", "reflect", "replicate", "circular"),
                        help="how the border is extended in same/full mode (default zeros, as "
                             "scipy; replicate avoids dark frames)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="write the input and the output next to each other, labelled, "
                             "with the kernel")
    parser.add_argument("--compare", action="store_true",
                        help="write input | correlation | convolution, labelled, with the "
                             "kernel")
    parser.add_argument("--explain", metavar="ROW,COL",
                        help="print output pixel (ROW, COL)'s window, products and sum, and "
                             "write an enlarged crop with the window outlined to "
                             "OUT_window.png")
    parser.add_argument("--list-kernels", action="store_true",
                        help="print the preset kernels and exit")
    add_max_pixels_argument(parser)
    parser.set_defaults(run=run)


def _kernel_text(name, kernel) -> str:
    from ..explain._text import fmt
    rows = [" ".join(fmt(v).rjust(6) for v in row) for row in kernel]
    return f"{name}:\n" + "\n".join("  " + row for row in rows)


def run(args) -> int:
    import numpy as np

    from ..data import load_image
    from ..vision import KERNELS, get_kernel
    from ..vision.io import image_format

    if args.list_kernels:
        print("\n".join(_kernel_text(name, kernel) for name, kernel in KERNELS.items()))
        return 0
    if args.image is None or args.kernel is None or args.output is None:
        missing = [flag for flag, value in (("IMAGE", args.image), ("--kernel", args.kernel),
                                            ("-o/--output", args.output)) if value is None]
        raise UsageError(f"missing {', '.join(missing)} (see 'cnnkit filter --help')")
    try:
        kernel = get_kernel(args.kernel)
        image_format(args.output)
    except (TypeError, ValueError) as err:
        raise UsageError(f"-o: {one_line(err)}" if "extension" in str(err) else one_line(err)) \
            from err
    pixel = row_col(args.explain, "--explain") if args.explain else None
    if pixel is not None and args.mode != "same":
        raise UsageError("--explain works with --mode same (output pixel = input pixel)")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        raise CommandError(f"-o {args.output}: directory {out_dir} does not exist")
    try:
        image = load_image(args.image, max_pixels=args.max_pixels)
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(one_line(err)) from err
    if np.array_equal(image[0], image[1]) and np.array_equal(image[0], image[2]):
        image = image[:1]  # a grey picture stays grey
    try:
        from .filter_pictures import write_filter_pictures
        return write_filter_pictures(args, image, kernel, pixel)
    except ValueError as err:
        raise UsageError(one_line(err)) from err
