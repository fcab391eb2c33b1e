"""``cnnkit explain``: convolution step by step, in numbers, checked against cnnkit's own ops."""
from __future__ import annotations

from .common import UsageError, add_max_pixels_argument, int_in, one_line, positive_int, seed_int
from .words import count

# Worked examples print every number: sizes beyond these would print pages (or, for the
# matrix, allocate (out·out) × (in·in) entries) and explain nothing more.
MAX_EXAMPLE_SIZE = 32
MAX_MATRIX_SIZE = 16
# explain params counts exactly, tap by tap along each axis (output size × kernel entries).
MAX_PARAMS_SIZE, MAX_PARAMS_KERNEL, MAX_PARAMS_SPATIAL_DIMS = 1 << 16, 64, 3


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "explain", help="convolution explained in numbers (conv, backprop, params, matrix)",
        description="Print a worked example of one idea, with every intermediate number, "
                    "checked against cnnkit's conv/autograd (✓).")
    topics = parser.add_subparsers(dest="topic", metavar="<topic>", required=True)

    conv = topics.add_parser(
        "conv", help="one conv layer: receptive field, products, sums, bias, output size",
        description="The CS231n figure by default: a 5×5×3 input padded by 1 (the 7×7×3 grid), "
                    "two 3×3×3 filters, stride 2 -> a 3×3×2 output; small integers from a "
                    "seeded generator.")
    conv.add_argument("--input-size", default="5", help="H or HxW (default 5)")
    small = int_in(1, MAX_EXAMPLE_SIZE)
    conv.add_argument("--channels", type=small, default=3, help="input channels (default 3)")
    conv.add_argument("--kernel-size", type=small, default=3, help="default 3")
    conv.add_argument("--filters", type=small, default=2, help="output channels (default 2)")
    conv.add_argument("--stride", type=small, default=None,
                      help="default 2 (the figure), 1 with --image")
    conv.add_argument("--padding", type=int_in(0, MAX_EXAMPLE_SIZE), default=1,
                      help="zero padding (default 1)")
    conv.add_argument("--seed", type=seed_int, default=0, help="random values seed (default 0)")
    conv.add_argument("--positions", default="0,0",
                      help="output positions 'row,col;row,col' or 'all' (default 0,0)")
    conv.add_argument("--image", metavar="PHOTO",
                      help="use real pixels: a crop (--input-size, default 7) of PHOTO's "
                           "luminance (0..255) with one --kernel (1 channel, 1 filter)")
    conv.add_argument("--kernel", metavar="PRESET",
                      help="with --image: a cnnkit filter preset (sobel-left, blur, ...) or "
                           "rows like '0,-1,0;-1,5,-1;0,-1,0' (default sobel-left)")
    conv.add_argument("--at", metavar="ROW,COL",
                      help="with --image: the crop's centre in the photo (default its centre)")
    conv.add_argument("--gif", metavar="OUT.gif",
                      help="also write the sliding window as an animated GIF, one frame per "
                           "output position")
    add_max_pixels_argument(conv)
    conv.set_defaults(run=run_conv)

    back = topics.add_parser(
        "backprop", help="gradients of a 1-D convolution are convolutions",
        description="The 1-D example: x = x1..x5, w = w1..w3, 3 outputs; each input gets "
                    "the output gradients times the kernel taps (dL/dx = dO ∗ w, a true "
                    "convolution), and dL/dw = correlate(x, dO). Checked against autograd.")
    back.add_argument("--inputs", type=small, default=5, help="N, length of x (default 5)")
    back.add_argument("--kernel-size", type=small, default=3, help="K (default 3)")
    back.add_argument("--seed", type=seed_int, default=0, help="default 0")
    back.set_defaults(run=run_backprop)

    params = topics.add_parser(
        "params", help="fully connected vs convolution: weights, connections, sharing",
        description="Count the weights of a conv layer and of a fully connected layer doing "
                    "the same input -> output mapping, connections per output (sparse "
                    "connectivity) and uses per weight (sharing); plus the 5-unit "
                    "example (25 vs 3 weights).")
    params.add_argument("--input", default="224x224x3", help="HxWxC, or N for N 1-D units "
                                                              "(default 224x224x3)")
    params.add_argument("--kernel", type=int_in(1, MAX_PARAMS_KERNEL), default=3,
                        help="kernel size (default 3)")
    params.add_argument("--filters", type=positive_int, default=64,
                        help="output channels (default 64)")
    params.add_argument("--stride", type=positive_int, default=1, help="default 1")
    params.add_argument("--padding", default="same", help="int, same, valid or full "
                                                          "(default same)")
    params.add_argument("--no-bias", action="store_true", help="count no biases")
    params.set_defaults(run=run_params)

    matrix = topics.add_parser(
        "matrix", help="a convolution as a (doubly block Toeplitz) matrix",
        description="Build the matrix M with conv(x).ravel() = M @ x.ravel() for a small 1-D "
                    "or 2-D example, by tap name and in numbers, checked against conv.")
    matrix.add_argument("--input-size", default="4x4", help="N or HxW (default 4x4)")
    matrix.add_argument("--kernel-size", type=int_in(1, MAX_MATRIX_SIZE), default=3,
                        help="default 3")
    matrix.add_argument("--stride", type=int_in(1, MAX_MATRIX_SIZE), default=1, help="default 1")
    matrix.add_argument("--padding", type=int_in(0, MAX_MATRIX_SIZE), default=0,
                        help="default 0")
    matrix.add_argument("--seed", type=seed_int, default=0, help="default 0")
    matrix.set_defaults(run=run_matrix)


def _size(text, option, largest=None):
    """'4x4' -> (4, 4); UsageError naming ``option`` if malformed or a size > ``largest``."""
    from ..explain import parse_shape
    try:
        shape = parse_shape(text)
    except ValueError as err:
        raise UsageError(f"{option}: {one_line(err)}") from err
    if largest is not None and max(shape) > largest:
        raise UsageError(f"{option}: sizes up to {largest} (a worked example), got {text!r}")
    return shape


def _positions(text):
    if text.strip().lower() == "all":
        return None
    try:
        pairs = [tuple(int(v) for v in part.split(",")) for part in text.split(";") if part.strip()]
    except ValueError:
        pairs = [()]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise UsageError(f"--positions: expected 'row,col;row,col' or 'all', got {text!r}")
    return pairs


def _checked(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except ValueError as err:
        raise UsageError(one_line(err)) from err


def run_conv(args) -> int:
    from ..explain import explain_conv, make_example
    size = _size(args.input_size if args.image is None or args.input_size != "5" else "7",
                 "--input-size", MAX_EXAMPLE_SIZE)
    if len(size) > 2:
        raise UsageError(f"--input-size: expected H or HxW, got {args.input_size!r}")
    size = size if len(size) == 2 else (size[0], size[0])
    if args.gif is not None and not args.gif.lower().endswith(".gif"):
        raise UsageError(f"--gif: expected a .gif file name, got {args.gif!r}")
    source = None
    if args.stride is None:
        args.stride = 1 if args.image is not None else 2
    if args.image is not None:
        from .explain_image import image_conv_example
        example, source = image_conv_example(args, size)
    else:
        if args.kernel is not None or args.at is not None:
            raise UsageError("--kernel and --at need --image PHOTO")
        example = _checked(make_example, size, args.channels, args.kernel_size, args.filters,
                           args.stride, args.padding, args.seed)
    print(_checked(explain_conv, example, _positions(args.positions), source))
    if args.gif is not None:
        from ..explain.sliding_gif import save_sliding_gif
        title = source.split(" (")[0] if source else "random integers"
        frames = _checked(save_sliding_gif, args.gif, example, title)
        print(f"wrote {args.gif}: {count(frames, 'frame')}, one per output position")
    return 0


def run_backprop(args) -> int:
    from ..explain import explain_backprop
    print(_checked(explain_backprop, args.inputs, args.kernel_size, args.seed))
    return 0


def run_params(args) -> int:
    from ..explain import explain_params
    shape = _size(args.input, "--input", MAX_PARAMS_SIZE)
    if len(shape) > MAX_PARAMS_SPATIAL_DIMS + 1:
        raise UsageError(f"--input: at most {MAX_PARAMS_SPATIAL_DIMS} spatial sizes and the "
                         f"channels, got {args.input!r}")
    padding = args.padding if args.padding in ("same", "valid", "full") else None
    if padding is None:
        try:
            padding = int(args.padding)
        except ValueError:
            raise UsageError(f"--padding: expected an int, same, valid or full, got "
                             f"{args.padding!r}") from None
    print(_checked(explain_params, shape, args.kernel, args.filters, args.stride, padding,
                   not args.no_bias))
    return 0


def run_matrix(args) -> int:
    from ..explain import explain_matrix
    size = _size(args.input_size, "--input-size", MAX_MATRIX_SIZE)
    if len(size) > 2:
        raise UsageError(f"--input-size: expected N or HxW, got {args.input_size!r}")
    print(_checked(explain_matrix, size, args.kernel_size, args.stride, args.padding, args.seed))
    return 0
