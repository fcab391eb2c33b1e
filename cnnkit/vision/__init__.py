"""Image filtering with the classic kernels: blur, sharpen, emboss, outline and Sobel edges.

    from cnnkit.data import load_image
    from cnnkit.vision import KERNELS, filter_image, save_png
    edges = filter_image(load_image("cat.png"), "sobel-left")      # (1, H, W) in [0, 1]
    save_png("edges.png", edges)

Images are (H, W) or (C, H, W), channels first. See ``docs/image-kernels.md``.
"""
from .filter import (filter_image, is_edge_kernel, map_response, response_bound, stretch_scale,
                     to_grayscale)
from .io import save_image, save_png, side_by_side, to_uint8
from .kernels import KERNELS, get_kernel, parse_kernel

__all__ = ["KERNELS", "filter_image", "get_kernel", "is_edge_kernel", "map_response",
           "parse_kernel", "response_bound", "save_image", "save_png", "side_by_side",
           "stretch_scale", "to_grayscale", "to_uint8"]
