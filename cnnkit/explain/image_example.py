"""A convolution example on real pixels: a small crop of a photo and one image kernel.

The crop's luminance is taken as 8-bit values 0..255 (what the file holds), so the products
and sums can be followed by hand; the kernel is a ``cnnkit.vision`` preset or row string, used
as one filter of one channel with bias 0.
"""
import numpy as np

from ..data import load_image
from ..vision import get_kernel
from .conv_steps import ConvExample

__all__ = ["image_example"]


def image_example(path, kernel, crop_size=(7, 7), center=None, stride=1, padding=1,
                  max_pixels=None):
    """(example, description) for ``explain_conv``: a crop of ``path`` and ``kernel``.

    crop_size : (H, W) of the crop; center : (row, col) in the photo (default its centre),
    clamped so the crop stays inside. Returns a ConvExample with x (1, H, W) of 0..255 values
    and weight (1, 1, kh, kw), and a line saying where the crop comes from.
    """
    kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
    luminance = load_image(path, grayscale=True, **kwargs)[0]
    height, width = luminance.shape
    crop_h, crop_w = crop_size
    if crop_h > height or crop_w > width:
        raise ValueError(f"input_size: a {crop_h}×{crop_w} crop does not fit the {height}×"
                         f"{width} image {path}")
    row, col = (height // 2, width // 2) if center is None else center
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"at: ({row}, {col}) is outside the {height}×{width} image {path}")
    top = min(max(row - crop_h // 2, 0), height - crop_h)
    left = min(max(col - crop_w // 2, 0), width - crop_w)
    crop = np.round(luminance[top:top + crop_h, left:left + crop_w] * 255)
    weight = get_kernel(kernel)[None, None]
    example = ConvExample(crop[None].astype(np.float64), weight, np.zeros(1), stride, padding)
    description = (f"input: the {crop_h}×{crop_w} crop of {path} at rows {top}..{top + crop_h - 1}"
                   f", columns {left}..{left + crop_w - 1} (its luminance, 0..255)")
    return example, description
