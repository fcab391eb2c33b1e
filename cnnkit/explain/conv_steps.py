"""One convolution layer, step by step: the CS231n figure in numbers.

For filter k and output position (i, j) of a layer with stride S and zero padding P, the
output is (cross-correlation, as in every CNN layer and ``cnnkit.functional.conv2d``)

    z[k, i, j] = b[k] + Σ_c Σ_a Σ_b w[k, c, a, b] · x_pad[c, i·S + a, j·S + b]
                        ╰ per-channel sums ╯

The patch x_pad[c, i·S : i·S + kh, j·S : j·S + kw] is the *receptive field* of z[k, i, j].
Each spatial output size is  H' = ⌊(H + 2P − K)/S⌋ + 1.
The default example is CS231n's figure: a 5×5×3 input padded by 1 (a 7×7×3 grid), two 3×3×3
filters, stride 2 -> a 3×3×2 output, with small integers (inputs 0..2, weights and biases
−1..1) from a seeded generator.
"""
from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..conv_arithmetic import conv_output_shape
from ..tensor import Tensor, no_grad
from ._text import beside, cell_width, fmt, matrix_lines, signed_sum

__all__ = [
    "ConvExample",
    "ConvSteps",
    "conv_steps",
    "explain_conv",
    "make_example",
    "output_size_formula",
]


@dataclass
class ConvExample:
    """x : (C, H, W); weight : (K, C, kh, kw); bias : (K,); stride, padding : int."""
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    stride: int = 1
    padding: int = 0


@dataclass
class ConvSteps:
    """Every intermediate of the chosen outputs, P positions × K filters.

    positions : (P, 2) int, output (row, col); patches : (P, C, kh, kw), the receptive fields
    products : (P, K, C, kh, kw); channel_sums : (P, K, C); results : (P, K), sums + bias
    output : (K, H', W'), the whole layer output from ``cnnkit.functional.conv2d``
    """
    positions: np.ndarray
    patches: np.ndarray
    products: np.ndarray
    channel_sums: np.ndarray
    results: np.ndarray
    output: np.ndarray
    padded: np.ndarray


def _positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def make_example(input_size=5, channels=3, kernel_size=3, filters=2, stride=2, padding=1,
                 seed=0) -> ConvExample:
    """A small integer example (the CS231n figure by default), reproducible from ``seed``.

    input_size : int or (H, W). Inputs are drawn from {0, 1, 2}, weights and biases from
    {−1, 0, 1}, as in the figure.
    """
    size = (input_size, input_size) if np.ndim(input_size) == 0 else tuple(input_size)
    if len(size) != 2:
        raise ValueError(f"input_size: expected an int or (H, W), got {input_size!r}")
    h, w = (_positive_int(s, "input_size") for s in size)
    channels = _positive_int(channels, "channels")
    kernel_size = _positive_int(kernel_size, "kernel_size")
    filters = _positive_int(filters, "filters")
    stride = _positive_int(stride, "stride")
    padding = _positive_int(padding, "padding", minimum=0)
    conv_output_shape((h, w), kernel_size, stride, padding)  # the kernel must fit
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(channels, h, w)).astype(np.float64)
    weight = rng.integers(-1, 2, size=(filters, channels, kernel_size, kernel_size))
    bias = rng.integers(-1, 2, size=filters)
    return ConvExample(x, weight.astype(np.float64), bias.astype(np.float64), stride, padding)


def output_size_formula(size: int, kernel: int, stride: int = 1, padding: int = 0) -> str:
    """The output-size formula with the numbers filled in: '(5 + 2·1 − 3)/2 + 1 = 3'."""
    out = conv_output_shape(size, kernel, stride, padding)[0]
    numerator = size + 2 * padding - kernel
    text = f"({size} + 2·{padding} − {kernel})/{stride}"
    if numerator % stride:
        return f"⌊{text}⌋ + 1 = ⌊{fmt(numerator / stride)}⌋ + 1 = {out}"
    return f"{text} + 1 = {out}"


def conv_steps(x, weight, bias=None, stride=1, padding=0, positions=None) -> ConvSteps:
    """The receptive fields, products, per-channel sums and results at the chosen outputs.

    Parameters
    ----------
    x : ndarray of shape (C, H, W); weight : (K, C, kh, kw); bias : (K,) or None
    stride, padding : int
    positions : None (every output position) or a sequence of (row, col) output positions
    """
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if x.ndim != 3 or weight.ndim != 4 or weight.shape[1] != x.shape[0]:
        raise ValueError(f"conv_steps: expected x (C, H, W) and weight (K, C, kh, kw) with the "
                         f"same C, got {x.shape} and {weight.shape}")
    k, _, kh, kw = weight.shape
    bias = np.zeros(k) if bias is None else np.asarray(bias, dtype=np.float64)
    if bias.shape != (k,):
        raise ValueError(f"conv_steps: bias must have shape ({k},), got {bias.shape}")
    out_h, out_w = conv_output_shape(x.shape[1:], (kh, kw), stride, padding)
    if positions is None:
        positions = np.stack(np.meshgrid(np.arange(out_h), np.arange(out_w), indexing="ij"),
                             -1).reshape(-1, 2)
    positions = np.asarray(positions, dtype=np.int64).reshape(-1, 2)
    bad = (positions < 0).any(1) | (positions[:, 0] >= out_h) | (positions[:, 1] >= out_w)
    if bad.any():
        raise ValueError(f"positions: {positions[bad].tolist()} outside the {out_h}×{out_w} "
                         f"output (rows and cols count from 0)")

    with no_grad():
        output = F.conv2d(Tensor(x), Tensor(weight), Tensor(bias), stride, padding).data
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    # Gather all receptive fields at once: rows (P, kh) and cols (P, kw) index the padded input.
    rows = positions[:, :1] * stride + np.arange(kh)
    cols = positions[:, 1:] * stride + np.arange(kw)
    patches = padded[:, rows[:, :, None], cols[:, None, :]].transpose(1, 0, 2, 3)
    products = patches[:, None] * weight[None]                   # (P, K, C, kh, kw)
    channel_sums = products.sum(axis=(-2, -1))                    # (P, K, C)
    results = channel_sums.sum(axis=-1) + bias                    # (P, K)
    return ConvSteps(positions, patches, products, channel_sums, results, output, padded)


def _header(ex: ConvExample, out_shape) -> list:
    c, h, w = ex.x.shape
    k, _, kh, kw = ex.weight.shape
    p, s = ex.padding, ex.stride
    return [
        "Convolution layer, step by step (cross-correlation: the kernel is not flipped)",
        "",
        f"input x: {c} channel(s) of {h}×{w}" + (
            f", zero-padded by {p} -> {c}×{h + 2 * p}×{w + 2 * p}" if p else ""),
        (f"{k} filter(s) w0..w{k - 1} of {c}×{kh}×{kw} (channels × rows × cols), one bias each, "
         f"stride {s}"),
        "",
        "output size per axis: ⌊(N + 2P − K)/S⌋ + 1",
        f"  H' = {output_size_formula(h, kh, s, p)}",
        f"  W' = {output_size_formula(w, kw, s, p)}",
        (f"  output: {k} channel(s) (one per filter) of {out_shape[0]}×{out_shape[1]}  "
         f"-> {out_shape[0]}×{out_shape[1]}×{k}"),
        "",
        "padded input:" if p else "input:",
    ]


def explain_conv(example: ConvExample, positions=((0, 0),), source: str | None = None) -> str:
    """Text: each step for the chosen output positions (all filters), checked against conv2d.

    source : a line saying where the input comes from (e.g. a crop of a photo)."""
    ex = example
    steps = conv_steps(ex.x, ex.weight, ex.bias, ex.stride, ex.padding, positions)
    k, c = ex.weight.shape[:2]
    lines = _header(ex, steps.output.shape[1:])
    if source:
        lines.insert(2, source)
    lines.append(beside([matrix_lines(steps.padded[ci], f"x[{ci}]") for ci in range(c)]))
    for f in range(k):
        lines += ["", f"filter w{f} (bias b{f} = {fmt(ex.bias[f])}):",
                  beside([matrix_lines(ex.weight[f, ci], f"w{f}[{ci}]") for ci in range(c)])]
    kh, kw = ex.weight.shape[2:]
    width = cell_width(steps.patches, ex.weight, steps.products)
    for p, (i, j) in enumerate(steps.positions):
        r0, c0 = i * ex.stride, j * ex.stride
        for f in range(k):
            lines += ["", f"── output[{f}, {i}, {j}]: filter w{f} at output row {i}, col {j} ──",
                      (f"receptive field: rows {r0}..{r0 + kh - 1}, cols {c0}..{c0 + kw - 1} of "
                       f"the {'padded ' if ex.padding else ''}input (top-left = "
                       f"({i}·{ex.stride}, {j}·{ex.stride}))")]
            for ci in range(c):
                lines.append(beside(
                    [matrix_lines(steps.patches[p, ci], f"x[{ci}] patch", width),
                     matrix_lines(ex.weight[f, ci], f"w{f}[{ci}]", width),
                     matrix_lines(steps.products[p, f, ci], "products", width),
                     ["sum"] + [""] * (kh // 2) + [fmt(steps.channel_sums[p, f, ci])]],
                    ["⊙", "=", "→"]))
            expected = steps.output[f, i, j]
            mark = "✓" if np.isclose(steps.results[p, f], expected) else "✗ MISMATCH"
            lines += [(f"sum over channels: {signed_sum(steps.channel_sums[p, f])} = "
                       f"{fmt(steps.channel_sums[p, f].sum())}"),
                      (f"+ bias b{f} = {fmt(ex.bias[f])}  ->  output[{f}, {i}, {j}] = "
                       f"{fmt(steps.results[p, f])}"),
                      f"cnnkit.functional.conv2d gives {fmt(expected)} {mark}"]
    lines += ["", "whole output (cnnkit.functional.conv2d):",
              beside([matrix_lines(steps.output[f], f"output[{f}]") for f in range(k)])]
    return "\n".join(lines)
