"""Arrays -> PNG files, written atomically, and side-by-side composites.

Images are float arrays of shape (H, W) or (C, H, W) with C in {1, 3} and values in [0, 1]
(values outside are clipped); they are stored as 8-bit PNG (value v -> round(255·v)).
"""
import io
import os

import numpy as np
from PIL import Image

from ..io import atomic_write_bytes

__all__ = ["image_format", "save_image", "save_png", "side_by_side", "to_uint8"]

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def to_uint8(image) -> np.ndarray:
    """(H, W) or (C, H, W) floats in [0, 1] -> uint8 (H, W) or (H, W, 3), as Pillow wants it."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim == 3:
        if image.shape[0] != 3:
            raise ValueError(f"image: expected 1 or 3 channels (C, H, W), got shape {image.shape}")
        image = image.transpose(1, 2, 0)
    elif image.ndim != 2:
        raise ValueError(f"image: expected shape (H, W) or (C, H, W), got {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError("image: values must be finite")
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def save_png(path, image) -> None:
    """Write ``image`` ((H, W) or (C, H, W), values in [0, 1]) to ``path`` as PNG, atomically."""
    pixels = to_uint8(image)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    atomic_write_bytes(os.fspath(path), buffer.getvalue())


def image_format(path) -> str:
    """'PNG' or 'JPEG' from the file name's extension; ValueError naming the path otherwise."""
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension not in FORMATS:
        raise ValueError(f"{path}: unknown image extension {extension!r}; expected one of "
                         f"{', '.join(FORMATS)}")
    return FORMATS[extension]


def save_image(path, image, quality: int = 92) -> None:
    """Write ``image`` ((H, W) or (C, H, W) in [0, 1]) as PNG or JPEG by ``path``'s extension."""
    pixels = to_uint8(image)
    buffer = io.BytesIO()
    options = {"quality": quality} if image_format(path) == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, format=image_format(path), **options)
    atomic_write_bytes(os.fspath(path), buffer.getvalue())


def side_by_side(*images, gap: int = 4, background: float = 1.0) -> np.ndarray:
    """Images next to each other, left to right, on one canvas of shape (C, H_max, ΣW + gaps).

    Grey images are repeated to 3 channels when any image has colour; shorter images are
    centred vertically on the ``background`` value.
    """
    arrays = [np.asarray(im, dtype=np.float64) for im in images]
    arrays = [a[None] if a.ndim == 2 else a for a in arrays]
    if not arrays or any(a.ndim != 3 or a.shape[0] not in (1, 3) for a in arrays):
        raise ValueError(f"side_by_side: expected images of shape (H, W) or (C, H, W) with C in "
                         f"(1, 3), got {[a.shape for a in arrays]}")
    channels = max(a.shape[0] for a in arrays)
    height = max(a.shape[1] for a in arrays)
    width = sum(a.shape[2] for a in arrays) + gap * (len(arrays) - 1)
    canvas = np.full((channels, height, width), background)
    left = 0
    for a in arrays:
        top = (height - a.shape[1]) // 2
        canvas[:, top:top + a.shape[1], left:left + a.shape[2]] = a  # grey broadcasts to RGB
        left += a.shape[2] + gap
    return canvas
