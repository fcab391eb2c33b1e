"""The explorer's JSON API: plain functions of a parsed request body, testable without HTTP.

    GET  /api/info          presets, samples, data sets, limits
    POST /api/filter        {image, kernel, convolve} -> input, raw response, its bound
    POST /api/pixel         {image, kernel, convolve, row, col} -> window ⊙ kernel = products → sum
    POST /api/shape         {size, kernel, stride, padding, dilation} -> output size, formula, taps
    GET  /api/model         the model's name, origin and layers
    POST /api/model/forward {image} -> every layer's output, filters, class probabilities
    POST /api/model/unit    {layer, channel, row, col} -> receptive field, the kernel behind it
    POST /api/upload        image file bytes -> {id, shape}

Every number is computed here with cnnkit (``cnnkit.vision.filter_image``, which runs
``cnnkit.functional.conv2d``; ``cnnkit.conv_output_shape``; the model's own layers); the page
only draws. Refusals raise ``BadRequest`` naming the field.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..conv_arithmetic import conv_output_shape, resolve_padding
from ..vision import KERNELS, filter_image, response_bound
from .errors import BadRequest
from .images import MAX_SIDE, MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, SAMPLES, fit_to, to_grey

MAX_KERNEL = 7
SHAPE_LIMITS = {"size": (1, 32), "kernel": (1, 9), "stride": (1, 6), "dilation": (1, 4),
                "padding": (0, 8)}


def integer(body: dict, name: str, low: int, high: int) -> int:
    """body[name] as an int in [low, high], or BadRequest naming it."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not low <= value <= high:
        raise BadRequest(f"{name}: expected an int in [{low}, {high}], got {value!r}")
    return int(value)


def _flag(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name}: expected true or false, got {value!r}")
    return value


def _kernel(body: dict) -> np.ndarray:
    """body["kernel"]: a preset name or rows of numbers, at most MAX_KERNEL² -> (kh, kw)."""
    value = body.get("kernel")
    if isinstance(value, str):
        if value not in KERNELS:
            raise BadRequest(f"kernel: unknown preset {value!r}; expected one of "
                             f"{', '.join(KERNELS)} or rows of numbers")
        return np.array(KERNELS[value])
    if not isinstance(value, list) or not value or len(value) > MAX_KERNEL or not all(
            isinstance(row, list) and row and len(row) == len(value[0]) for row in value):
        raise BadRequest(f"kernel: expected rows of numbers, at most {MAX_KERNEL}×{MAX_KERNEL}, "
                         "all rows the same length")
    if len(value[0]) > MAX_KERNEL or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for row in value
            for v in row):
        raise BadRequest(f"kernel: expected rows of numbers, at most {MAX_KERNEL}×{MAX_KERNEL}")
    kernel = np.array(value, dtype=np.float64)
    if not np.all(np.isfinite(kernel)) or np.abs(kernel).max() > 1e6:
        raise BadRequest("kernel: entries must be finite numbers of magnitude at most 1e6")
    return kernel


def _grey_input(store, body: dict) -> np.ndarray:
    image, _ = store.get(body.get("image"))
    return to_grey(image).astype(np.float64)


def _same_padding(kernel_shape, convolve: bool):
    """scipy's 'same' zero padding per axis ((lo, hi) pairs), as ``cnnkit.vision.filter_image``."""
    if convolve:
        return tuple((k // 2, (k - 1) // 2) for k in kernel_shape)
    return tuple(((k - 1) // 2, k // 2) for k in kernel_shape)


def info(store) -> dict:
    return {"presets": {name: kernel.tolist() for name, kernel in KERNELS.items()},
            "samples": list(SAMPLES), "datasets": store.datasets(),
            "limits": {"upload_bytes": MAX_UPLOAD_BYTES, "upload_pixels": MAX_UPLOAD_PIXELS,
                       "side": MAX_SIDE, "kernel": MAX_KERNEL, "shape": SHAPE_LIMITS}}


def filter_(store, body: dict) -> dict:
    """The grey input (H, W), the raw ('same' mode, zero-padded) response (H, W) and its bound
    B = max(Σ K⁺, Σ K⁻), the largest |response| an image in [0, 1] can give."""
    kernel, convolve = _kernel(body), _flag(body, "convolve")
    grey = _grey_input(store, body)
    response = filter_image(grey, kernel, mode="same", convolve=convolve, output_range=None)
    return {"input": np.round(grey, 5).tolist(), "output": np.round(response, 6).tolist(),
            "bound": response_bound(kernel), "kernel": kernel.tolist(), "convolve": convolve}


def pixel(store, body: dict) -> dict:
    """Output pixel (row, col) in full: the window under the kernel (zero padding included),
    the kernel as applied (flipped for convolution), their products and the sum."""
    kernel, convolve = _kernel(body), _flag(body, "convolve")
    grey = _grey_input(store, body)
    row = integer(body, "row", 0, grey.shape[0] - 1)
    col = integer(body, "col", 0, grey.shape[1] - 1)
    padded = np.pad(grey, _same_padding(kernel.shape, convolve))
    window = padded[row:row + kernel.shape[0], col:col + kernel.shape[1]]
    applied = kernel[::-1, ::-1] if convolve else kernel
    products = window * applied
    response = filter_image(grey, kernel, mode="same", convolve=convolve, output_range=None)
    return {"row": row, "col": col, "window": window.tolist(), "kernel": applied.tolist(),
            "products": products.tolist(), "sum": float(products.sum()),
            "value": float(response[row, col]), "bound": response_bound(kernel),
            "flipped": convolve}


def shape(body: dict) -> dict:
    """A square convolution's output size by ``cnnkit.conv_output_shape`` and, per output index,
    the padded-input positions its (dilated) window covers."""
    size, kernel, stride, dilation = (integer(body, name, *SHAPE_LIMITS[name]) for name in
                                      ("size", "kernel", "stride", "dilation"))
    padding = body.get("padding")
    if padding not in ("same", "valid", "full"):
        padding = integer(body, "padding", *SHAPE_LIMITS["padding"])
    try:
        out = conv_output_shape((size, size), kernel, stride, padding, dilation)[0]
    except ValueError as err:
        raise BadRequest(str(err)) from None
    (lo, hi), _ = resolve_padding(padding, (size, size), (kernel,) * 2, (stride,) * 2,
                                  (dilation,) * 2)
    span = size + lo + hi - dilation * (kernel - 1) - 1
    formula = (f"⌊({size} + {lo} + {hi} − {dilation}·({kernel} − 1) − 1) / {stride}⌋ + 1 = "
               f"⌊{span} / {stride}⌋ + 1 = {out}")
    taps = [[i * stride + t * dilation for t in range(kernel)] for i in range(out)]
    return {"size": size, "kernel": kernel, "stride": stride, "dilation": dilation,
            "padding": padding, "pad": [lo, hi], "output": out, "formula": formula, "taps": taps}


def model_forward(store, view, body: dict) -> dict:
    image, label = store.get(body.get("image"))
    result = view.forward(fit_to(image, view.input_shape))
    result["label"] = label
    return result


def model_unit(view, body: dict) -> dict:
    return view.unit(*(body.get(name) for name in ("layer", "channel", "row", "col")))
