"""``cnnkit explain conv --image PHOTO --kernel PRESET``: the example built from real pixels."""
from __future__ import annotations

from .common import CommandError, UsageError, one_line
from .words import row_col


def image_conv_example(args, size):
    """(ConvExample, description) from the command's options; size is the crop's (H, W)."""
    from ..explain.image_example import image_example
    at = None if args.at is None else row_col(args.at, "--at")
    if args.stride < 1 or args.padding < 0:
        raise UsageError("--stride must be >= 1 and --padding >= 0")
    try:
        return image_example(args.image, args.kernel or "sobel-left", size, at, args.stride,
                             args.padding, args.max_pixels)
    except FileNotFoundError as err:
        raise CommandError(one_line(err)) from err
    except (TypeError, ValueError) as err:
        raise UsageError(one_line(err)) from err
