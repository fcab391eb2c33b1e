"""What ``cnnkit filter`` writes: the filtered image, or labelled figures (--side-by-side,
--compare), and the worked sum of one output pixel (--explain)."""
from __future__ import annotations

import os

import numpy as np

from .words import size_text


def _display_range(args, kernel) -> str:
    from ..vision import is_edge_kernel
    if args.output_range != "auto":
        return args.output_range
    return "stretch" if is_edge_kernel(kernel) else "clip"


def _scale_note(raw, kernel, display) -> tuple:
    """(printed line, figure key) saying how grey levels map to the response."""
    from ..vision import response_bound, stretch_scale
    bound = response_bound(kernel)
    if display == "stretch":
        scale = stretch_scale(raw, kernel)
        line = (f"contrast: response ±{scale:.3g} shown as white/black (the 99th percentile of "
                f"|response|); the largest possible is ±{bound:g}, which --range signed uses")
    elif display == "signed":
        scale = bound or 1.0
        line = f"contrast: response ±{scale:g} (the largest possible) shown as white/black"
    elif display == "abs":
        line = f"contrast: |response| {bound:g} (the largest possible) shown as white"
        return line, f"black = 0, white = |response| ≥ {bound:g}"
    else:
        return "contrast: response clipped to [0, 1]", "values clipped to [0, 1]"
    return line, (f"mid-grey = 0, light = positive, dark = negative; white/black = "
                  f"±{scale:.3g}")


def write_filter_pictures(args, image, kernel, pixel) -> int:
    """image : (C, H, W) in [0, 1]; kernel : (kh, kw); pixel : (row, col) or None."""
    from ..vision import filter_image, map_response, save_image, to_grayscale
    from ..vision.figures import (explain_pixel, filter_figure, save_figure_as, window_figure)

    def raw_response(convolve):
        return filter_image(image, kernel, mode=args.mode, convolve=convolve, output_range=None,
                            grayscale=args.grayscale, padding_mode=args.padding_mode)

    display = _display_range(args, kernel)
    raw = raw_response(args.convolve)
    result = map_response(raw, kernel, display)
    line, key = _scale_note(raw, kernel, display)
    name = args.kernel if args.kernel.strip().lower().replace("_", "-") in _presets() \
        else "custom"
    operation = "convolution" if args.convolve else "correlation"
    if args.compare:
        other = raw_response(not args.convolve)
        correlation, convolution = (other, raw) if args.convolve else (raw, other)
        panels = [("input", image),
                  ("correlation (kernel as printed)", map_response(correlation, kernel, display)),
                  ("convolution (kernel flipped)", map_response(convolution, kernel, display))]
        figure = filter_figure(panels, kernel, name, key,
                               title=f"{name}: correlation vs convolution ({args.mode})")
        save_figure_as(figure, args.output)
    elif args.side_by_side:
        figure = filter_figure([("input", image), (f"{name} {operation}", result)], kernel,
                               name, key, title=f"{name} {operation} ({args.mode})")
        save_figure_as(figure, args.output)
    else:
        save_image(args.output, result)
    print(line)
    print(f"wrote {args.output}: {size_text(result.shape)} (H×W), "
          f"{'grey' if result.shape[0] == 1 else 'colour'}, kernel {size_text(kernel.shape)} "
          f"({operation}, mode {args.mode})")
    if pixel is not None:
        _explain(args, image, kernel, pixel, raw, explain_pixel, window_figure, save_figure_as,
                 to_grayscale)
    return 0


def _presets():
    from ..vision import KERNELS
    return KERNELS


def _explain(args, image, kernel, pixel, raw, explain_pixel, window_figure, save_figure_as,
             to_grayscale):
    grey = raw.shape[0] == 1
    source = to_grayscale(image)[0] if grey else image[0]
    text, _, _, total = explain_pixel(source, kernel, *pixel, convolve=args.convolve,
                                      padding_mode=args.padding_mode)
    channel = "luminance" if grey and image.shape[0] == 3 else ("grey" if grey else "red channel")
    print(f"\n{channel} of {args.image}, " + text)
    filtered = float(raw[0][pixel])
    check = "✓" if np.isclose(total, filtered, rtol=1e-6, atol=1e-9) else "✗"
    print(f"{check} the filtered image holds {filtered:.6g} at ({pixel[0]}, {pixel[1]}) "
          "(before the display mapping)")
    stem, extension = os.path.splitext(args.output)
    window_path = f"{stem}_window{extension}"
    save_figure_as(window_figure(source, kernel, *pixel, convolve=args.convolve,
                                 title=f"{args.image}: window of output pixel ({pixel[0]}, "
                                       f"{pixel[1]}), sum {total:.4g}"), window_path)
    print(f"wrote {window_path}: the window, enlarged")
