"""Filter an image with a kernel, through cnnkit's own convolution (``cnnkit.functional.conv2d``).

Layout: an image is a float array of shape (H, W) (grey) or (C, H, W) (channels first, as
``cnnkit.data.load_image`` returns it and as networks take it). Every channel is filtered on its
own with the same kernel (a depthwise convolution, ``groups = C``).

Correlation (default) and convolution, for a kernel K of shape (kh, kw):

    correlation:  out[i, j] = Σ_a Σ_b K[a, b] · x[i + a − p_top,  j + b − p_left]
    convolution:  out[i, j] = Σ_a Σ_b K[a, b] · x[i − a + p'_top, j − b + p'_left]
                            = correlation with K flipped on both axes.

The modes and their zero padding are ``scipy.signal.correlate2d``/``convolve2d``'s, so the
results match scipy number for number (even kernels included):

    'valid': no padding, (H − kh + 1, W − kw + 1)
    'same':  output (H, W); per axis correlation pads ((k−1)//2, k//2), convolution (k//2, (k−1)//2)
    'full':  pads k − 1 on both sides, (H + kh − 1, W + kw − 1)

Output range (``output_range``), for an input in [0, 1]:

    'clip'   : clip to [0, 1] — for kernels that keep brightness (weights sum to ≠ 0: blur,
               sharpen, emboss, identity);
    'signed' : 0.5 + r / (2·B), with B = max(Σ K⁺, Σ K⁻) the largest |response| an image in
               [0, 1] can give. Zero response is mid-grey, positive edges light, negative dark,
               so sobel-left and sobel-right are exact negatives (1 − each other);
    'abs'    : |r| / B — edge strength, black where flat;
    'stretch': 0.5 + r / (2·S), with S the 99th percentile of |r| over the image: like
               'signed' (mid-grey = 0), but scaled to this image's edges, which on a photo are
               far below B (an outline of a photo spans a few percent of [0, 1] with B);
    'auto'   : 'signed' for zero-sum kernels (edge detectors: sobel-*, outline), else 'clip';
    None     : the raw response r, unscaled.
With ``grayscale='auto'`` zero-sum kernels first turn a colour image into one luminance channel
(ITU-R 601: 0.299 R + 0.587 G + 0.114 B), since an edge map per colour channel is hard to read.
"""
import numpy as np

from .. import functional as F
from ..tensor import Tensor, no_grad
from .kernels import get_kernel

__all__ = ["filter_image", "is_edge_kernel", "map_response", "response_bound", "stretch_scale",
           "to_grayscale"]

MODES = ("same", "valid", "full")
OUTPUT_RANGES = ("auto", "clip", "signed", "abs", "stretch", None)
STRETCH_PERCENTILE = 99.0
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


def is_edge_kernel(kernel) -> bool:
    """Whether the kernel's weights sum to zero: it answers 0 on flat image regions."""
    kernel = get_kernel(kernel)
    return bool(abs(kernel.sum()) <= 1e-9 * max(np.abs(kernel).sum(), 1.0))


def response_bound(kernel) -> float:
    """B = max(Σ K⁺, Σ K⁻): the largest |response| to an image with values in [0, 1]."""
    kernel = get_kernel(kernel)
    return float(max(kernel[kernel > 0].sum(), -kernel[kernel < 0].sum(), 0.0))


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """(3, H, W) RGB -> (1, H, W) luminance; (1, H, W) and (H, W) are returned as they are."""
    image = np.asarray(image)
    if image.ndim == 2 or image.shape[0] == 1:
        return image
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"to_grayscale: expected (H, W), (1, H, W) or (3, H, W), got shape "
                         f"{image.shape}")
    return np.tensordot(LUMA_WEIGHTS.astype(image.dtype), image, axes=(0, 0))[None]


def stretch_scale(response: np.ndarray, kernel) -> float:
    """S for ``output_range='stretch'``: the 99th percentile of |response| (B if that is 0)."""
    scale = float(np.percentile(np.abs(response), STRETCH_PERCENTILE)) if np.size(response) else 0
    return scale if scale > 0 else (response_bound(kernel) or 1.0)


def map_response(response: np.ndarray, kernel, output_range="auto") -> np.ndarray:
    """Map a raw filter response to display values in [0, 1] (see the module docstring)."""
    if output_range not in OUTPUT_RANGES:
        raise ValueError(f"output_range: expected one of {OUTPUT_RANGES}, got {output_range!r}")
    if output_range is None:
        return response
    if output_range == "auto":
        output_range = "signed" if is_edge_kernel(kernel) else "clip"
    if output_range == "clip":
        return np.clip(response, 0.0, 1.0)
    if output_range == "stretch":
        return np.clip(0.5 + response / (2 * stretch_scale(response, kernel)), 0.0, 1.0)
    bound = response_bound(kernel) or 1.0  # an all-zero kernel answers 0 everywhere
    if output_range == "signed":
        return np.clip(0.5 + response / (2 * bound), 0.0, 1.0)
    return np.clip(np.abs(response) / bound, 0.0, 1.0)


def _padding(kernel_shape, mode, convolve):
    if mode == "valid":
        return ((0, 0), (0, 0))
    if mode == "full":
        return tuple((k - 1, k - 1) for k in kernel_shape)
    if convolve:
        return tuple((k // 2, (k - 1) // 2) for k in kernel_shape)
    return tuple(((k - 1) // 2, k // 2) for k in kernel_shape)


def _check_image(image):
    if isinstance(image, Tensor):
        image = image.data
    image = np.asarray(image)
    if image.dtype.kind not in "biuf":
        raise TypeError(f"filter_image: image must be a real numeric array, got dtype "
                        f"{image.dtype}")
    if image.ndim not in (2, 3) or 0 in image.shape:
        raise ValueError(f"filter_image: image must have shape (H, W) or (C, H, W) (channels "
                         f"first, as load_image returns), got {image.shape}")
    return image


def filter_image(image, kernel, mode="same", convolve=False, output_range="auto",
                 grayscale="auto", padding_mode="zeros") -> np.ndarray:
    """Filter every channel of an image with one 2-D kernel.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (C, H, W), values usually in [0, 1]
    kernel : str or array_like of shape (kh, kw)
        A name from ``KERNELS`` ('sobel-left', 'blur', ...), a row string
        ``"0,-1,0;-1,5,-1;0,-1,0"`` or an array (any size, odd or even).
    mode : {'same', 'valid', 'full'}, as ``scipy.signal.correlate2d``
    convolve : bool, True for true convolution (kernel flipped), False for correlation
    output_range : {'auto', 'clip', 'signed', 'abs', 'stretch', None}, see the module docstring
    grayscale : {'auto', True, False}; True converts (3, H, W) to luminance first, 'auto' does
        so for zero-sum (edge) kernels
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'} for the 'same'/'full' border;
        'zeros' matches scipy

    Returns
    -------
    out : float64 ndarray of shape (H', W') or (C', H', W'), C' = 1 after a grey conversion,
        (H', W') by ``mode``
    """
    image = _check_image(image)
    kernel = get_kernel(kernel)
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if grayscale not in ("auto", True, False):
        raise ValueError(f"grayscale: expected 'auto', True or False, got {grayscale!r}")
    if output_range not in OUTPUT_RANGES:
        raise ValueError(f"output_range: expected one of {OUTPUT_RANGES}, got {output_range!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode: expected one of {PADDING_MODES}, got {padding_mode!r}")
    spatial = image.shape[-2:]
    if mode == "valid" and (kernel.shape[0] > spatial[0] or kernel.shape[1] > spatial[1]):
        raise ValueError(f"kernel: a {kernel.shape} kernel does not fit the {spatial} image in "
                         f"'valid' mode")
    if grayscale is True or (grayscale == "auto" and is_edge_kernel(kernel)):
        if image.ndim == 3 and image.shape[0] not in (1, 3):
            raise ValueError(f"grayscale: needs 1 or 3 channels, got shape {image.shape}")
        image = to_grayscale(image)

    channels_first = image if image.ndim == 3 else image[None]
    c = channels_first.shape[0]
    # One depthwise conv2d over all channels: weight (C, 1, kh, kw), groups = C.
    weight = kernel[::-1, ::-1] if convolve else kernel
    weight = np.ascontiguousarray(np.broadcast_to(weight, (c, 1) + kernel.shape))
    with no_grad():
        out = F.conv2d(Tensor(channels_first.astype(np.float64)[None]), Tensor(weight),
                       padding=_padding(kernel.shape, mode, convolve), groups=c,
                       padding_mode=padding_mode).data[0]
    out = map_response(out, kernel, output_range)
    return out if image.ndim == 3 else out[0]
