"""A model seen layer by layer: every layer's output, the filter behind each map, receptive fields.

The model is cut into *steps* run one after the other: the leaves of its ``Sequential``
containers, and blocks with ``branches()`` (``cnnkit.models.BasicBlock``) kept whole, since their
output is a sum. This is the walk ``cnnkit.summary`` does; ``LayerView`` checks once, on a
random input, that the steps compose to the model's own output, so a model whose ``forward``
does something else is refused rather than shown wrongly.

Receptive field of one unit: the input rows/cols its value depends on, found by mapping an index
interval back through the steps. A window layer (kernel k, stride s, dilation d, low padding p)
maps output [a, b] to input [a·s − p, b·s − p + d·(k − 1)] (the ``cnnkit.summary`` recursion
r_out = r_in + d·(k − 1)·j_in, with offsets), keeping only taps inside that layer's input, since
padding cells hold no pixel; a block maps through each branch and takes the union; Flatten and
Linear make it the whole input.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .. import nn
from ..conv_arithmetic import resolve_padding, to_tuple
from ..tensor import Tensor, no_grad
from .errors import BadRequest

_WINDOWS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_WHOLE = (nn.Flatten, nn.Linear)
DEFAULT_UNTRAINED = {"name": "vgg_small", "input_shape": (1, 28, 28), "classes": 10}


def load_run(path):
    """(model, config, source) for a run directory or a model/checkpoint file; None -> an
    untrained ``vgg_small`` for 1×28×28 images, with ``source`` None.

    Raises ValueError (FileNotFoundError for a missing path) with a message naming the path.
    """
    from .. import manual_seed, models
    from ..train import CHECKPOINT_FILE, MODEL_FILE, load_model
    if path is None:
        manual_seed(0)
        spec = DEFAULT_UNTRAINED
        channels, height, width = spec["input_shape"]
        model = models.get(spec["name"], in_channels=channels, num_classes=spec["classes"],
                           input_size=(height, width)).eval()
        config = {"model": {"name": spec["name"]}, "input_shape": list(spec["input_shape"]),
                  "classes": [str(k) for k in range(spec["classes"])],
                  "normalize": {"mean": [0.0], "std": [1.0]}}
        return model, config, None
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in (MODEL_FILE, CHECKPOINT_FILE):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise FileNotFoundError(f"{path}: no {MODEL_FILE} or {CHECKPOINT_FILE} in this run "
                                    "directory")
    elif not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such run directory or model file")
    model, config = load_model(path)
    if not isinstance(config.get("input_shape"), list) or len(config["input_shape"]) != 3:
        raise ValueError(f"{path}: the explorer shows image models (input C×H×W), this one "
                         f"takes {config.get('input_shape')!r}")
    return model, config, path


def _steps(module, name, out):
    """Append (name, module) for each step of ``module`` in forward order."""
    if hasattr(module, "branches"):
        out.append((name, module))
    elif isinstance(module, nn.Sequential) or (list(module.children()) and
                                               not list(module.parameters(recurse=False))):
        for child_name, child in module.named_children():
            _steps(child, f"{name}.{child_name}" if name else child_name, out)
    else:
        out.append((name, module))
    return out


def _window_back(module, in_spatial, rows, cols):
    """Per axis, ((first, last) input index any window of outputs rows/cols reads, whether some
    tap fell on padding). With dilation the taps have holes, so the ends are found among the
    taps o·s − p + t·d themselves, not by clipping the span."""
    kernel = to_tuple(module.kernel_size, 2, "kernel_size")
    stride = to_tuple(module.stride, 2, "stride")
    dilation = to_tuple(getattr(module, "dilation", 1), 2, "dilation")
    padding = module.padding if isinstance(module.padding, str) else \
        to_tuple(module.padding, 2, "padding")
    pads = resolve_padding(padding, in_spatial, kernel, stride, dilation)
    found = []
    for (a, b), k, s, d, p, n in zip((rows, cols), kernel, stride, dilation, pads, in_spatial):
        taps = {o * s - p[0] + t * d for o in range(a, b + 1) for t in range(k)}
        inside = [tap for tap in taps if 0 <= tap < n] or [min(max(a * s - p[0], 0), n - 1)]
        found.append(((min(inside), max(inside)), len(inside) < len(taps)))
    return found


def _back(module, in_shapes, interval, padded):
    """Map an output interval ((r0, r1), (c0, c1)) back through one module to the interval of
    its input that the outputs read (padding holds zeros, not pixels, so it is left out; a pool
    may leave the last row unread). None means "the whole input". Appends True to ``padded``
    when some window reads padding."""
    if interval is None or isinstance(module, _WHOLE):
        return None
    in_spatial = in_shapes[id(module)][-2:]
    if isinstance(module, _WINDOWS):
        found = _window_back(module, in_spatial, *interval)
        if any(on_padding for _, on_padding in found):
            padded.append(True)
        return tuple(span for span, _ in found)
    if isinstance(module, _ADAPTIVE):
        out_size = to_tuple(module.output_size, 2, "output_size")
        return tuple((a * n // o, -(-(b + 1) * n // o) - 1)
                     for (a, b), n, o in zip(interval, in_spatial, out_size))
    if hasattr(module, "branches"):
        branches = list(module.branches())
        rest = [child for child in module.children() if all(child is not b for b in branches)]
        interval = _back_chain(rest, in_shapes, interval, padded)
        found = [_back(branch, in_shapes, interval, padded) for branch in branches]
        if any(f is None for f in found):
            return None
        return tuple((min(f[axis][0] for f in found), max(f[axis][1] for f in found))
                     for axis in range(2))
    return _back_chain(list(module.children()), in_shapes, interval, padded)


def _back_chain(modules, in_shapes, interval, padded):
    for module in reversed(modules):
        interval = _back(module, in_shapes, interval, padded)
    return interval


def _record_input_shapes(model, x):
    """({id(module): input shape} for every module, the model's output) of one forward pass."""
    shapes = {}
    handles = [module.register_forward_pre_hook(
        lambda module, args: shapes.__setitem__(id(module), tuple(args[0].shape)))
        for module in model.modules()]
    try:
        with no_grad():
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes, out


def _rounded(array) -> list:
    """float values rounded to 5 decimals, as nested lists (short JSON)."""
    return np.round(np.asarray(array, dtype=np.float64), 5).tolist()


class LayerView:
    """A loaded model, its steps, and what the explorer asks of it."""

    def __init__(self, model, config: dict, source=None):
        self.model, self.config, self.source = model, config, source
        self.input_shape = tuple(int(s) for s in config["input_shape"])
        self.steps = _steps(model, "", [])
        norm = config.get("normalize") or {"mean": [0.0], "std": [1.0]}
        self.mean = np.asarray(norm["mean"], np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(norm["std"], np.float32).reshape(-1, 1, 1)
        probe = Tensor(np.random.default_rng(0).standard_normal((1,) + self.input_shape)
                       .astype(np.float32))
        self.in_shapes, expected = _record_input_shapes(model, probe)
        outputs = self._run(probe.data)
        got = outputs[-1]
        self.out_shapes = [out.shape[1:] for out in outputs]
        if not np.allclose(got, expected.data, rtol=1e-4, atol=1e-5):
            raise ValueError(f"{config['model'].get('name')}: its forward is not the chain of "
                             "its layers; the explorer cannot show it layer by layer")
        self.classes = list(config.get("classes") or range(got.shape[1]))

    def _run(self, batch: np.ndarray) -> list:
        """Outputs of every step for ``batch`` (1, C, H, W) already normalised."""
        outputs, x = [], Tensor(batch)
        with no_grad():
            for _, module in self.steps:
                x = module(x)
                outputs.append(np.asarray(x.data))
        return outputs

    def describe(self) -> dict:
        """The model's name, origin and layers (name, kind, output shape), for GET /api/model."""
        return {"name": self.config["model"].get("name"), "trained": self.source is not None,
                "source": self.source, "input_shape": list(self.input_shape),
                "classes": [str(c) for c in self.classes],
                "layers": [{"index": i, "name": name, "kind": type(module).__name__,
                            "shape": list(shape)}
                           for i, ((name, module), shape) in enumerate(zip(self.steps,
                                                                           self.out_shapes))]}

    def forward(self, image: np.ndarray) -> dict:
        """Every step's output for ``image`` (C, H, W) in [0, 1] already fitted to the input.

        Returns {"input": (C, H, W), "layers": [{"maps": (C, H, W) or "vector": (F,),
        "filters": (out, in, kh, kw) for convolutions, "scale": max |value|}], "probabilities"}.
        """
        batch = ((image - self.mean) / self.std)[None].astype(np.float32)
        outputs = self._run(batch)
        logits = outputs[-1][0].astype(np.float64)
        exp = np.exp(logits - logits.max())
        layers = []
        for (name, module), out in zip(self.steps, outputs):
            value = out[0]
            entry = {"name": name, "kind": type(module).__name__, "shape": list(value.shape),
                     "scale": float(np.round(np.abs(value).max(), 5)) if value.size else 0.0}
            entry["maps" if value.ndim == 3 else "vector"] = _rounded(value)
            if isinstance(module, nn.Conv2d):
                entry["filters"] = _rounded(module.weight.data)
            layers.append(entry)
        return {"input": _rounded(image), "layers": layers,
                "probabilities": _rounded(exp / exp.sum()),
                "classes": [str(c) for c in self.classes]}

    def unit(self, layer: int, channel: int, row: int, col: int) -> dict:
        """The receptive field of one unit (on the input, clipped and as computed) and the
        filter that made its channel (the last convolution at or before ``layer``)."""
        if isinstance(layer, bool) or not isinstance(layer, int) \
                or not 0 <= layer < len(self.steps):
            raise BadRequest(f"layer: expected an int in [0, {len(self.steps)}), got {layer!r}")
        shape = self.out_shapes[layer]
        limits = shape if len(shape) == 3 else (shape[0], 1, 1)
        for name, value, limit in (("channel", channel, limits[0]), ("row", row, limits[1]),
                                   ("col", col, limits[2])):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
                raise BadRequest(f"{name}: expected an int in [0, {limit}), got {value!r}")
        interval = ((row, row), (col, col)) if len(shape) == 3 else None
        padded = []
        interval = _back_chain([module for _, module in self.steps[:layer + 1]], self.in_shapes,
                               interval, padded)
        height, width = self.input_shape[1:]
        if interval is None:
            field = {"rows": [0, height - 1], "cols": [0, width - 1], "whole": True,
                     "padding": False}
        else:
            field = {"rows": list(interval[0]), "cols": list(interval[1]), "whole": False,
                     "padding": bool(padded)}
        kernel = None
        for index in range(layer, -1, -1):
            name, module = self.steps[index]
            if isinstance(module, nn.Conv2d):
                if module.out_channels == limits[0] and len(shape) == 3:
                    kernel = {"layer": index, "name": name, "weights":
                              _rounded(module.weight.data[channel]),
                              "bias": None if module.bias is None else
                              float(module.bias.data[channel])}
                break
            if hasattr(module, "branches") or isinstance(module, _WHOLE):
                break
        return {"layer": layer, "channel": channel, "row": row, "col": col,
                "receptive_field": field, "size": [field["rows"][1] - field["rows"][0] + 1,
                                                   field["cols"][1] - field["cols"][0] + 1],
                "kernel": kernel, "input_pixels": math.prod(self.input_shape[1:])}
