"""The pictures the explorer works on: procedural samples, data-set test images and uploads.

Every picture is a float32 array of shape (C, H, W) with values in [0, 1], C = 1 (grey) or 3
(RGB), as ``cnnkit.data.load_image`` returns. A request names one with a small JSON object:

    {"source": "sample", "name": "shapes"}           drawn here, nothing to download
    {"source": "digits", "index": 17}                scikit-learn's 8×8 digits, test split
    {"source": "fashion-mnist", "index": 3}          when its IDX files are on disk
    {"source": "upload", "id": "<sha256 prefix>"}    an image POSTed to /api/upload before

Uploads are hostile input: ``decode_upload`` is the one function that turns their bytes into an
array (a byte limit, then Pillow's header-only size check against a pixel limit, then decoding).
"""
from __future__ import annotations

import hashlib
import io
import threading
import warnings
from collections import OrderedDict

import numpy as np
from PIL import Image

from .errors import BadRequest

MAX_UPLOAD_BYTES = 8 * 2**20
# Far below Pillow's own bomb limit (Image.MAX_IMAGE_PIXELS, 89 M pixels), which still applies.
MAX_UPLOAD_PIXELS = 4096 * 4096
# Uploads are shrunk to fit this square: every output pixel of the playground stays inspectable
# and a response stays a few hundred kB of JSON.
MAX_SIDE = 96
SAMPLE_SIZE = 48
_UPLOADS_KEPT = 16
# warnings.catch_warnings swaps process-wide state: concurrent uploads take turns.
_OPEN_LOCK = threading.Lock()


def _shapes(n: int) -> np.ndarray:
    """A disc, a square and a triangle on a left-to-right gradient: edges in every direction."""
    y, x = np.mgrid[0:n, 0:n] / (n - 1)
    image = 0.15 + 0.25 * x
    image = np.where((x - 0.3) ** 2 + (y - 0.32) ** 2 < 0.18 ** 2, 0.95, image)
    image = np.where((abs(x - 0.72) < 0.15) & (abs(y - 0.3) < 0.15), 0.7, image)
    image = np.where((y > 0.55) & (y < 0.9) & (abs(x - 0.5) < (y - 0.55) * 0.9), 0.85, image)
    return image


def _checkerboard(n: int) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n]
    return (((x // 8) + (y // 8)) % 2).astype(np.float64) * 0.8 + 0.1


def _rings(n: int) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n] / (n - 1) - 0.5
    return 0.5 + 0.5 * np.cos(2 * np.pi * 6 * np.hypot(x, y))


SAMPLES = {"shapes": _shapes, "checkerboard": _checkerboard, "rings": _rings}
"""Sample name -> function of the side n giving an (n, n) float array in [0, 1]."""


def sample_image(name: str) -> np.ndarray:
    """The procedural sample ``name`` as float32 (1, SAMPLE_SIZE, SAMPLE_SIZE)."""
    if name not in SAMPLES:
        raise BadRequest(f"image.name: unknown sample {name!r}; expected one of "
                         f"{', '.join(SAMPLES)}")
    return SAMPLES[name](SAMPLE_SIZE).astype(np.float32)[None]


def decode_upload(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES,
                  max_pixels: int = MAX_UPLOAD_PIXELS, max_side: int = MAX_SIDE) -> np.ndarray:
    """Image file bytes -> float32 (C, H, W) in [0, 1], C = 1 or 3, shrunk to fit max_side².

    Checked before decoding: the byte count, then the pixel count the header claims (Pillow's
    ``DecompressionBombError`` above twice ``Image.MAX_IMAGE_PIXELS`` at open, ours above
    ``max_pixels``). Raises BadRequest (413 for too big, 400 for not an image).
    """
    if len(data) > max_bytes:
        raise BadRequest(f"upload: {len(data):,} bytes, more than the limit of {max_bytes:,}",
                         status=413)
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise BadRequest(f"upload: {width}×{height} pixels, more than the limit of "
                                 f"{max_pixels:,}", status=413)
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale
            image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
            grey = image.mode in ("1", "L", "LA", "I", "F") or image.mode.startswith("I;16")
            pixels = np.asarray(image.convert("L" if grey else "RGB"), dtype=np.float32) / 255
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadRequest(f"upload: refused as a decompression bomb ({err})", status=413) from None
    except (OSError, SyntaxError, ValueError) as err:  # Pillow's ways of saying "not an image"
        raise BadRequest(f"upload: not an image Pillow can read ({err})") from None
    return pixels[None] if grey else np.ascontiguousarray(pixels.transpose(2, 0, 1))


class ImageStore:
    """Resolves image requests; keeps the last few uploads in memory, keyed by content."""

    def __init__(self, data_root=None):
        self.data_root = data_root
        self._uploads = OrderedDict()
        self._datasets = {}
        self._lock = threading.Lock()

    def add_upload(self, data: bytes) -> dict:
        """Decode and keep an upload: returns {"id", "shape"}."""
        image = decode_upload(data)
        key = hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest()[:16]
        with self._lock:
            self._uploads[key] = image
            self._uploads.move_to_end(key)
            while len(self._uploads) > _UPLOADS_KEPT:
                self._uploads.popitem(last=False)
        return {"id": key, "shape": list(image.shape)}

    def _dataset(self, name: str):
        with self._lock:
            if name not in self._datasets:
                from ..data import Digits, FashionMNIST
                try:
                    self._datasets[name] = (Digits(train=False) if name == "digits" else
                                            FashionMNIST(root=self.data_root, train=False))
                except FileNotFoundError:
                    self._datasets[name] = None
            return self._datasets[name]

    def datasets(self) -> dict:
        """{name: {"count", "classes"}} of the data sets whose test split can be read."""
        found = {}
        for name in ("digits", "fashion-mnist"):
            dataset = self._dataset(name)
            if dataset is not None:
                found[name] = {"count": len(dataset), "classes": list(dataset.classes)}
        return found

    def get(self, spec) -> tuple:
        """(image float32 (C, H, W) in [0, 1], label or None) for a request's ``image`` object."""
        if not isinstance(spec, dict) or not isinstance(spec.get("source"), str):
            raise BadRequest('image: expected an object like {"source": "sample", "name": '
                             '"shapes"}')
        source = spec["source"]
        if source == "sample":
            return sample_image(spec.get("name")), None
        if source == "upload":
            with self._lock:
                image = self._uploads.get(spec.get("id"))
            if image is None:
                raise BadRequest("image.id: no such upload (uploads are kept in memory, the "
                                 f"last {_UPLOADS_KEPT}); upload the image again", status=404)
            return image, None
        if source in ("digits", "fashion-mnist"):
            dataset = self._dataset(source)
            if dataset is None:
                raise BadRequest(f"image.source: {source} is not available on this machine",
                                 status=404)
            index = spec.get("index")
            if isinstance(index, bool) or not isinstance(index, int) \
                    or not 0 <= index < len(dataset):
                raise BadRequest(f"image.index: expected an int in [0, {len(dataset)}), "
                                 f"got {index!r}")
            image, label = dataset[index]
            return np.asarray(image, dtype=np.float32), dataset.classes[int(label)]
        raise BadRequest(f"image.source: expected sample, digits, fashion-mnist or upload, "
                         f"got {source!r}")


def to_grey(image: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W): the luminance of RGB (``cnnkit.vision.to_grayscale``), or channel 0."""
    from ..vision import to_grayscale
    return np.asarray(to_grayscale(image))[0]


def fit_to(image: np.ndarray, shape) -> np.ndarray:
    """(C, H, W) in [0, 1] -> float32 ``shape`` = (C', H', W'): channels converted (grey ↔ RGB),
    then resized bilinearly (Pillow, per channel) if the size differs."""
    channels, height, width = shape
    if image.shape[0] != channels:
        image = to_grey(image)[None] if channels == 1 else np.repeat(image[:1], channels, 0)
    if image.shape[1:] != (height, width):
        image = np.stack([np.asarray(Image.fromarray(plane.astype(np.float32))
                                     .resize((width, height), Image.Resampling.BILINEAR))
                          for plane in image])
    return np.clip(image, 0.0, 1.0).astype(np.float32)
