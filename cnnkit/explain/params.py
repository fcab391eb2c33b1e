"""Fully connected vs convolutional: the same mapping, counted.

A convolution layer maps an input of shape (*spatial, C) to (*spatial', K). A fully connected
layer doing a mapping between the same shapes needs one weight per (input unit, output unit):

    FC:    weights = (Π spatial · C) · (Π spatial' · K),  each used once
    conv:  weights = K · C · Π k,                          each used at up to Π spatial' positions

*Sparse connectivity*: an output unit of the conv layer is connected to at most C · Π k inputs
(its receptive field), against all Π spatial · C for FC. *Parameter sharing*: every output
position reuses the same K · C · Π k weights. The example of docs/concepts.md §10 (5 units,
a 3-tap kernel, padding 1): FC needs 5 · 5 = 25 weights, the convolution 3.

Exact counts with padding: along an axis of size N (padding P, stride S, output size O), tap a
lands on a real input (not on padding) at the output positions o with 0 ≤ o·S + a − P < N.
"""
from dataclasses import dataclass

import numpy as np

from ..conv_arithmetic import conv_output_shape, positive_tuple, resolve_padding

__all__ = ["ParamComparison", "compare_params", "explain_params", "parse_shape", "tap_usage"]


@dataclass
class ParamComparison:
    input_shape: tuple      # (*spatial, C)
    output_shape: tuple     # (*spatial', K)
    kernel_size: tuple
    fc_weights: int
    fc_biases: int
    conv_weights: int
    conv_biases: int
    fc_connections_per_output: int
    conv_connections_per_output: int   # the receptive field, C · Π k (fewer at padded borders)
    fc_links: int                      # input–output pairs with a weight: the multiplications
    conv_links: int                    # exact, padding excluded
    conv_weight_uses_max: int          # Π spatial': a weight applied at every output position
    conv_weight_uses_min: int          # a corner tap that often falls on padding


def parse_shape(text: str) -> tuple:
    """'224x224x3' -> (224, 224, 3); '5' -> (5,). Sizes are separated by 'x', '×' or ','."""
    parts = str(text).lower().replace("×", "x").replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"shape: expected sizes like 224x224x3, got {text!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"shape: sizes must be positive, got {text!r}")
    return shape


def tap_usage(size: int, kernel: int, stride: int, pad: tuple) -> np.ndarray:
    """(kernel,) ints: at how many output positions each tap lands on a real input (one axis)."""
    out = conv_output_shape(size, kernel, stride, (pad,))[0]
    index = np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] - pad[0]
    return ((index >= 0) & (index < size)).sum(axis=0)


def compare_params(input_shape, kernel_size=3, filters=64, stride=1, padding="same",
                   bias=True) -> ParamComparison:
    """Count weights and connections of a conv layer and of the FC layer with the same shapes.

    Parameters
    ----------
    input_shape : (*spatial, C), e.g. (224, 224, 3); a 1-tuple (N,) is N units of one channel
    kernel_size, stride : int or one per spatial dim
    padding : int, per-dim ints, or 'same' / 'valid' / 'full'
    filters : int, K, the number of output channels
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) == 1:
        input_shape = input_shape + (1,)
    if any(s <= 0 for s in input_shape):
        raise ValueError(f"input_shape: sizes must be positive, got {input_shape}")
    *spatial, channels = input_shape
    n = len(spatial)
    kernel = positive_tuple(kernel_size, n, "kernel_size")
    strides = positive_tuple(stride, n, "stride")
    if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
        raise ValueError(f"filters: expected a positive int, got {filters!r}")
    pads = resolve_padding(padding, tuple(spatial), kernel, strides, (1,) * n)
    out_spatial = conv_output_shape(tuple(spatial), kernel, strides, pads)
    n_in = int(np.prod(spatial)) * channels
    n_out = int(np.prod(out_spatial)) * filters
    usage = [tap_usage(*args) for args in zip(spatial, kernel, strides, pads)]
    # Dimensions are independent: a tap (a, b) lands on a real input usage_H[a]·usage_W[b] times.
    per_tap = usage[0]
    for u in usage[1:]:
        per_tap = np.multiply.outer(per_tap, u)
    per_weight_links = int(per_tap.sum())
    return ParamComparison(
        input_shape=input_shape, output_shape=tuple(out_spatial) + (filters,),
        kernel_size=kernel,
        fc_weights=n_in * n_out, fc_biases=n_out if bias else 0,
        conv_weights=filters * channels * int(np.prod(kernel)), conv_biases=filters if bias else 0,
        fc_connections_per_output=n_in,
        conv_connections_per_output=channels * int(np.prod(kernel)),
        fc_links=n_in * n_out, conv_links=filters * channels * per_weight_links,
        conv_weight_uses_max=int(per_tap.max()), conv_weight_uses_min=int(per_tap.min()))


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape)


def explain_params(input_shape=(224, 224, 3), kernel_size=3, filters=64, stride=1,
                   padding="same", bias=True, notes_example=True) -> str:
    """Text: the comparison for the given layer, and (``notes_example``) the 5-unit example."""
    r = compare_params(input_shape, kernel_size, filters, stride, padding, bias)
    n_in = r.fc_connections_per_output
    n_out = int(np.prod(r.output_shape))
    k = _shape(r.kernel_size)
    c = r.input_shape[-1]
    lines = [
        (f"mapping {_shape(r.input_shape)} -> {_shape(r.output_shape)} "
         f"({n_in:,} -> {n_out:,} units)"),
        f"kernel {k}, {r.output_shape[-1]} filters, stride {stride}, padding {padding!r}",
        "",
        f"{'':34}{'fully connected':>22}{'convolution':>18}",
        f"{'weights':34}{r.fc_weights:>22,}{r.conv_weights:>18,}",
        f"{'biases':34}{r.fc_biases:>22,}{r.conv_biases:>18,}",
        (f"{'connections per output unit':34}{r.fc_connections_per_output:>22,}"
         f"{r.conv_connections_per_output:>18,}"),
        f"{'multiplications (links)':34}{r.fc_links:>22,}{r.conv_links:>18,}",
        (f"{'uses of each weight':34}{1:>22}"
         f"{_uses(r.conv_weight_uses_min, r.conv_weight_uses_max):>18}"),
        "",
        f"FC: every output unit sees all {n_in:,} inputs, with its own weights:",
        f"    {n_in:,} · {n_out:,} = {r.fc_weights:,} weights.",
        (f"conv: sparse connectivity — an output sees only its receptive field, {c}×{k} = "
         f"{r.conv_connections_per_output} inputs;"),
        (f"      parameter sharing — the same {r.conv_weights:,} weights ({r.output_shape[-1]} "
         f"filters of {c}×{k}) serve every output position"),
        f"      (up to {r.conv_weight_uses_max:,} times each).",
        f"      {r.fc_weights / r.conv_weights:,.0f}× fewer weights.",
    ]
    if notes_example:
        e = compare_params((5,), 3, 1, 1, 1, bias=False)
        lines += ["", "the 1-D example: 5 units -> 5 units, a 3-tap kernel, padding 1",
                  f"  FC: {e.fc_weights} weights (5·5; s3 sees x1..x5)",
                  (f"  conv: {e.conv_weights} weights (s3 sees x2, x3, x4), "
                   f"{e.conv_links} links, each weight used "
                   f"{_uses(e.conv_weight_uses_min, e.conv_weight_uses_max)} times")]
    return "\n".join(lines)


def _uses(low, high) -> str:
    return f"{low:,}" if low == high else f"{low:,}..{high:,}"
