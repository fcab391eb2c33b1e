"""Image transforms on ndarrays: one image ``(C, H, W)`` or, batch-aware, ``(B, C, H, W)``.

Every transform is a callable on a single image. Each also has ``apply_batch(batch, rng=None)``,
which ``DataLoader`` calls once per batch instead of once per image. Random transforms draw from
``rng`` when given (the loader passes its own, so its ``state_dict`` captures the augmentation
too) and otherwise from their own ``np.random.default_rng(seed)``, so standalone use is
reproducible as well.
"""
import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _check_image(x, name):
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ValueError(f"{name}: expected an ndarray image of shape (C, H, W), got "
                         f"{type(x).__name__} of shape {getattr(x, 'shape', None)}")


def _check_batch(batch, name):
    if not isinstance(batch, np.ndarray) or batch.ndim != 4:
        raise ValueError(f"{name}: expected an ndarray batch of shape (B, C, H, W), got "
                         f"{type(batch).__name__} of shape {getattr(batch, 'shape', None)}")


def _check_seed(seed, name):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError(f"{name}: seed must be None or a non-negative int, got {seed!r}")


def apply_to_batch(transform, batch, rng=None):
    """Apply ``transform`` to a ``(B, C, H, W)`` batch: its ``apply_batch`` if it has one,
    otherwise image by image (plain callables such as lambdas)."""
    if hasattr(transform, "apply_batch"):
        return transform.apply_batch(batch, rng)
    return np.stack([transform(image) for image in batch])


class Compose:
    """Apply ``transforms`` in order (torchvision's ``Compose``)."""

    def __init__(self, transforms):
        transforms = list(transforms)
        for k, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"Compose: transforms[{k}] is not callable: {t!r}")
        self.transforms = transforms

    def __call__(self, image):
        for t in self.transforms:
            image = t(image)
        return image

    def apply_batch(self, batch, rng=None):
        for t in self.transforms:
            batch = apply_to_batch(t, batch, rng)
        return batch

    def __repr__(self):
        return f"Compose({self.transforms!r})"


class ToFloat:
    """Cast to float32; uint8 images are also scaled by 1/255 into [0, 1] (like ``ToTensor``)."""

    def __call__(self, image):
        if image.dtype == np.uint8:
            return image.astype(np.float32) / np.float32(255)
        return np.asarray(image, dtype=np.float32)

    def apply_batch(self, batch, rng=None):
        return self(batch)

    def __repr__(self):
        return "ToFloat()"


class Normalize:
    """Per-channel standardisation ``out[c] = (x[c] - mean[c]) / std[c]``.

    Parameters
    ----------
    mean, std : float or sequence of C floats
        A single value applies to every channel. ``std`` must be positive.
    """

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
                raise ValueError(f"Normalize: {name} must be a finite float or a 1-D sequence "
                                 f"of finite floats, got {v.tolist()}")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")
        if self.mean.size != self.std.size and 1 not in (self.mean.size, self.std.size):
            raise ValueError(f"Normalize: mean has {self.mean.size} channels but std has "
                             f"{self.std.size}")

    def _apply(self, x, name):
        channels = x.shape[-3]
        for v in (self.mean, self.std):
            if v.size not in (1, channels):
                raise ValueError(f"{name}: mean/std have {v.size} values but the image has "
                                 f"{channels} channels")
        # Keep the input's float dtype: float64 mean/std must not promote a float32 batch.
        dtype = x.dtype if x.dtype.kind == "f" else np.float32
        mean = self.mean.astype(dtype)[:, None, None]
        scale = (1.0 / self.std).astype(dtype)[:, None, None]
        return (x.astype(dtype, copy=False) - mean) * scale

    def __call__(self, image):
        _check_image(image, "Normalize")
        return self._apply(image, "Normalize")

    def apply_batch(self, batch, rng=None):
        _check_batch(batch, "Normalize.apply_batch")
        return self._apply(batch, "Normalize.apply_batch")

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _pair(value, name):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, numbers.Integral) for v in value):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
    return int(value[0]), int(value[1])


def _padding_lrtb(padding):
    """torchvision's padding forms -> (left, top, right, bottom)."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        p = (int(padding),) * 4
    else:
        p = tuple(padding)
        if len(p) == 2:  # (left/right, top/bottom)
            p = (p[0], p[1], p[0], p[1])
        if len(p) != 4 or not all(isinstance(v, numbers.Integral) for v in p):
            raise ValueError(f"RandomCrop: padding must be an int, (left/right, top/bottom) "
                             f"or (left, top, right, bottom), got {padding!r}")
    if any(v < 0 for v in p):
        raise ValueError(f"RandomCrop: padding must be non-negative, got {padding!r}")
    return tuple(int(v) for v in p)


_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect",
              "symmetric": "symmetric"}


class RandomCrop:
    """Crop a random ``size`` window, after optionally padding the image (torchvision semantics).

    Each image of a batch gets its own offset. The batch path takes a strided sliding-window view
    ``windows[b, c, i, j] = padded[b, c, i:i+h, j:j+w]`` (no copy) and picks window
    ``(top[b], left[b])`` per image with one fancy index, so nothing loops over images or pixels.

    Parameters
    ----------
    size : int or (h, w)
    padding : int, (left/right, top/bottom) or (left, top, right, bottom)
    fill : float, value for ``padding_mode="constant"``
    padding_mode : "constant", "edge", "reflect" or "symmetric"
    seed : int or None, seed of this transform's own Generator
    """

    def __init__(self, size, padding=0, fill=0.0, padding_mode="constant", seed=None):
        self.size = _pair(size, "RandomCrop: size")
        if min(self.size) <= 0:
            raise ValueError(f"RandomCrop: size must be positive, got {size!r}")
        self.padding = _padding_lrtb(padding)
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {sorted(_PAD_MODES)}, "
                             f"got {padding_mode!r}")
        _check_seed(seed, "RandomCrop")
        self.fill = float(fill)
        self.padding_mode = padding_mode
        self.rng = np.random.default_rng(seed)

    def _pad(self, batch):
        left, top, right, bottom = self.padding
        if not any(self.padding):
            return batch
        widths = ((0, 0), (0, 0), (top, bottom), (left, right))
        if self.padding_mode == "constant":
            return np.pad(batch, widths, mode="constant", constant_values=self.fill)
        return np.pad(batch, widths, mode=_PAD_MODES[self.padding_mode])

    def apply_batch(self, batch, rng=None):
        """batch : ndarray of shape (B, C, H, W) -> ndarray of shape (B, C, h, w)."""
        _check_batch(batch, "RandomCrop.apply_batch")
        rng = self.rng if rng is None else rng
        padded = self._pad(batch)
        h, w = self.size
        n, _, ph, pw = padded.shape
        if h > ph or w > pw:
            raise ValueError(f"RandomCrop: crop size {(h, w)} is larger than the padded image "
                             f"{(ph, pw)}")
        top = rng.integers(0, ph - h + 1, size=n)
        left = rng.integers(0, pw - w + 1, size=n)
        windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # (B, C, ph-h+1, pw-w+1, h, w)
        # Advanced indices on axes 0, 2, 3 split by a slice: their broadcast axis (B) goes first,
        # then the sliced C, then the window's (h, w).
        return windows[np.arange(n), :, top, left]

    def __call__(self, image):
        _check_image(image, "RandomCrop")
        return self.apply_batch(image[None])[0]

    def __repr__(self):
        return (f"RandomCrop(size={self.size}, padding={self.padding}, fill={self.fill}, "
                f"padding_mode={self.padding_mode!r})")


class RandomHorizontalFlip:
    """Mirror the width axis with probability ``p``, independently per image."""

    def __init__(self, p=0.5, seed=None):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        _check_seed(seed, "RandomHorizontalFlip")
        self.p = float(p)
        self.rng = np.random.default_rng(seed)

    def apply_batch(self, batch, rng=None):
        """batch : ndarray of shape (B, C, H, W) -> same shape, a new array."""
        _check_batch(batch, "RandomHorizontalFlip.apply_batch")
        rng = self.rng if rng is None else rng
        flip = rng.random(len(batch)) < self.p
        out = batch.copy()
        out[flip] = batch[flip, :, :, ::-1]
        return out

    def __call__(self, image):
        _check_image(image, "RandomHorizontalFlip")
        return self.apply_batch(image[None])[0]

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"
