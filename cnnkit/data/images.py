"""Image files -> float32 ndarrays (C, H, W) in [0, 1]: ``load_image`` and ``ImageFolder``.

Image files may be hostile: a 69-byte PNG can claim 20000×20000 pixels, a 140 KB one can decode
to 144 megapixels. Every file is opened through ``open_image``, which reads the header only and
refuses more than ``max_pixels`` pixels before anything is decoded (default
``DEFAULT_MAX_PIXELS``, 4096×4096; ``--max-pixels`` on the command line).
"""
import contextlib
import numbers
import os
import threading

import numpy as np
from PIL import Image, UnidentifiedImageError

from .datasets import Dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# Single-channel modes; 16/32-bit ones are scaled by their own range, not clipped to 8 bits.
_GRAY_MODES = {"1", "L", "LA", "I", "F"}
_WIDE_GRAY_MAX = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0,
                  "I": 65535.0, "F": 1.0}


DEFAULT_MAX_PIXELS = 4096 * 4096
_PILLOW_LIMIT_LOCK = threading.Lock()


def check_max_pixels(max_pixels, name="max_pixels") -> int:
    """``max_pixels`` as an int >= 1, or ValueError/TypeError naming ``name``."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {max_pixels!r}")
    if max_pixels < 1:
        raise ValueError(f"{name} must be >= 1, got {max_pixels}")
    return int(max_pixels)


@contextlib.contextmanager
def open_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """The Pillow image of ``path``, not yet decoded, for a ``with`` block.

    Raises ValueError naming the file if it is not an image or if its header claims more than
    ``max_pixels`` pixels (width × height), before any pixel is decoded.
    """
    path = os.fspath(path)
    max_pixels = check_max_pixels(max_pixels)
    try:
        with _without_pillows_limit():
            image = Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ValueError(f"image {path} is {height}×{width} = {width * height:,} pixels, "
                             f"more than the limit of {max_pixels:,} (max_pixels; "
                             "--max-pixels on the command line)")
        yield image


@contextlib.contextmanager
def _without_pillows_limit():
    """Pillow's own bomb check (a warning above ``Image.MAX_IMAGE_PIXELS``, an error at twice
    it, both at open) off for the call: ``open_image`` checks against ``max_pixels`` instead.
    The limit is module-wide; the lock keeps concurrent opens from restoring it early."""
    with _PILLOW_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _size_pair(size, name):
    if size is None:
        return None
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    size = tuple(size)
    if len(size) != 2 or not all(isinstance(s, numbers.Integral) and s > 0 for s in size):
        raise ValueError(f"{name}: size must be None, a positive int or (height, width), "
                         f"got {size!r}")
    return int(size[0]), int(size[1])


def is_grayscale_mode(mode: str) -> bool:
    """Whether a Pillow image mode has a single (luminance) channel."""
    return mode in _GRAY_MODES or mode.startswith("I;16")


def _gray_array(image):
    """(H, W) float32 in [0, 1] from any single- or multi-channel image."""
    if image.mode in _WIDE_GRAY_MAX:
        # Converting 16-bit images to "L" would clip at 255; scale by the format's range instead.
        values = np.asarray(image.convert("F"), dtype=np.float32)
        return np.clip(values / np.float32(_WIDE_GRAY_MAX[image.mode]), 0.0, 1.0)
    return np.asarray(image.convert("L"), dtype=np.float32) / np.float32(255)


def load_image(path, grayscale=False, size=None, max_pixels=DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load an image file as a float32 array of shape (C, H, W) with values in [0, 1].

    Parameters
    ----------
    path : str or os.PathLike, a PNG or JPEG (any format Pillow reads)
    grayscale : bool, True -> C = 1 (luminance), False -> C = 3 (RGB; alpha is dropped)
    size : None, int or (height, width); resize (bilinear) to this size if given
    max_pixels : int, the most pixels (width × height) the file may have (see ``open_image``)

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable image, has more than ``max_pixels`` pixels, or ``size``
        is invalid. Messages name the file.
    """
    path = os.fspath(path)
    size = _size_pair(size, "load_image")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_image: no such image file: {path}")
    with open_image(path, max_pixels) as image:
        return _decode(image, path, grayscale, size)


def _decode(image, path, grayscale, size) -> np.ndarray:
    """(C, H, W) float32 in [0, 1] from an opened Pillow image (see ``load_image``)."""
    try:
        image.load()
        if size is not None:
            # Pillow's resize takes (width, height).
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        if grayscale:
            return _gray_array(image)[None]
        if is_grayscale_mode(image.mode):
            return np.repeat(_gray_array(image)[None], 3, axis=0)
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255)
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
            ValueError) as err:
        # Pillow reports truncated or garbled files as OSError / SyntaxError / ValueError, and
        # checks some formats' frames (GIF, ICO) against its own limit as it decodes them.
        raise ValueError(f"cannot read image {path}: {err}") from err


def _image_files(directory):
    """All image files under ``directory`` (recursively), in sorted path order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(dirpath, name))
    return found


class ImageFolder(Dataset):
    """A folder of class folders of images (torchvision's ``ImageFolder``)::

        root/cat/001.png, root/cat/xyz.jpg, root/dog/a.png, ...

    Classes are the sorted sub-folder names; label ``k`` is ``classes[k]``. Images load lazily,
    one file per item, as float32 (C, H, W) in [0, 1].

    Parameters
    ----------
    root : str or os.PathLike
    transform : callable or None, applied to each (C, H, W) image
    image_size : None, int or (height, width); resize every image to this size
    grayscale : None, bool. None decides from the first image (single-channel -> 1 channel,
        otherwise 3) and applies that to all, so the samples can be stacked into batches.
    max_pixels : int, the most pixels an image file may have (see ``open_image``)

    Attributes
    ----------
    classes : list of str
    class_to_idx : dict str -> int
    samples : list of (path, label)
    targets : ndarray of shape (N,), int64
    """

    def __init__(self, root, transform=None, image_size=None, grayscale=None,
                 max_pixels=DEFAULT_MAX_PIXELS):
        root = os.fspath(root)
        self.max_pixels = check_max_pixels(max_pixels, "ImageFolder: max_pixels")
        if transform is not None and not callable(transform):
            raise TypeError(f"ImageFolder: transform must be callable, got {transform!r}")
        if grayscale is not None and not isinstance(grayscale, (bool, np.bool_)):
            raise TypeError(f"ImageFolder: grayscale must be None or a bool, got {grayscale!r}")
        self.image_size = _size_pair(image_size, "ImageFolder")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"ImageFolder: root is not a directory: {root}")
        self.root = root
        self.classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        if not self.classes:
            raise ValueError(f"ImageFolder: {root} has no class sub-folders")
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}
        self.samples = [(path, k) for k, name in enumerate(self.classes)
                        for path in _image_files(os.path.join(root, name))]
        if not self.samples:
            raise ValueError(f"ImageFolder: found no {'/'.join(IMAGE_EXTENSIONS)} images in "
                             f"the class folders of {root}")
        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)
        if grayscale is None:
            with open_image(self.samples[0][0], self.max_pixels) as image:
                grayscale = is_grayscale_mode(image.mode)
        self.grayscale = bool(grayscale)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        image = load_image(path, grayscale=self.grayscale, size=self.image_size,
                           max_pixels=self.max_pixels)
        if self.transform is not None:
            image = self.transform(image)
        return image, np.int64(label)
