"""Convolution arithmetic (Dumoulin & Visin, "A guide to convolution arithmetic", 2016).

The one place that knows how big a convolution's or pooling's output is. Every op sizes its
output and validates its arguments through these functions, so the formula is written once:

    out = floor((in + pad_lo + pad_hi − dilation·(k − 1) − 1) / stride) + 1

With ``pad_lo = pad_hi = p`` this is the familiar ``floor((in + 2p − d(k−1) − 1)/s) + 1``; for the
7×7 input of docs/concepts.md §6, k = 3, s = 1, p = 0 it gives 5×5. A transposed convolution
inverts it:

    out = (in − 1)·stride − pad_lo − pad_hi + dilation·(k − 1) + output_padding + 1
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy as np

PADDING_STRINGS = ("valid", "same", "full")


def to_tuple(value, n: int, name: str) -> tuple:
    """An int or a length-``n`` sequence of ints -> tuple of ``n`` ints (PyTorch's ``_ntuple``;
    a sequence of one int counts for every dim, as PyTorch's ``expand_param_if_needed``)."""
    # Plain ints first: every layer call passes its arguments through here, and the checks
    # against the numbers ABCs below cost microseconds each.
    if type(value) is int:
        return (value,) * n
    if type(value) is tuple and len(value) == n and all(type(v) is int for v in value):
        return value
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and len(value) == 1 and n > 1:
        value = tuple(value) * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(
            isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)
            for v in value):
        return tuple(int(v) for v in value)
    raise TypeError(f"{name}: expected an int or a tuple of {n} ints, got {value!r}")


def positive_tuple(value, n: int, name: str) -> tuple:
    values = to_tuple(value, n, name)
    if any(v <= 0 for v in values):
        raise ValueError(f"{name}: must be positive, got {value!r}")
    return values


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple:
    """(lo, hi) padding that makes ``out = ceil(size / stride)``.

    Odd totals put the extra cell on the high side, as TensorFlow (and PyTorch, for stride 1) do.
    PyTorch refuses ``'same'`` with stride > 1; we follow TensorFlow's rule instead.
    """
    total = max((math.ceil(size / stride) - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, spatial: tuple, kernel: tuple, stride: tuple, dilation: tuple,
                    name: str = "padding") -> tuple:
    """Any accepted padding form -> one ``(lo, hi)`` pair of non-negative ints per spatial dim.

    Accepted: an int; a tuple of one int per dim; explicit per-side pairs ``((lo, hi), ...)``;
    ``'valid'`` (no padding), ``'same'`` (see ``same_padding``) and ``'full'`` (``d·(k−1)`` on
    both sides, so every partial overlap is an output, as in ``scipy.signal``'s full mode).
    """
    n = len(spatial)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            return tuple(same_padding(*args) for args in zip(spatial, kernel, stride, dilation))
        if padding == "full":
            return tuple((d * (k - 1), d * (k - 1)) for k, d in zip(kernel, dilation))
        raise ValueError(f"{name}: expected an int, a tuple, or one of {PADDING_STRINGS}, "
                         f"got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == n and all(
            isinstance(p, (tuple, list)) for p in padding):
        pairs = []
        for p in padding:
            if len(p) != 2:
                raise TypeError(f"{name}: per-side padding needs (lo, hi) pairs, got {padding!r}")
            pairs.append(to_tuple(tuple(p), 2, name))
    else:
        pairs = [(p, p) for p in to_tuple(padding, n, name)]
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"{name}: must be non-negative, got {padding!r}")
    return tuple(pairs)


def output_size(size: int, kernel: int, stride: int = 1, pad: tuple = (0, 0),
                dilation: int = 1, ceil_mode: bool = False) -> int:
    """out = floor((in + pad_lo + pad_hi − d·(k−1) − 1) / s) + 1   (ceil instead with ceil_mode).

    In ceil mode a last window that would *start* in the high-side padding is dropped, as
    PyTorch does, so every window covers at least one input or low-side padding cell; the
    windows may then reach past the padded input (by less than a stride), even when the kernel
    is larger than the padded input (PyTorch's one output for a 1-pixel input, kernel 2,
    stride 2).
    """
    span = size + pad[0] + pad[1] - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad[0]:
            out -= 1
        return out
    return span // stride + 1


def transposed_output_size(size: int, kernel: int, stride: int = 1, pad: tuple = (0, 0),
                           dilation: int = 1, output_padding: int = 0) -> int:
    """out = (in − 1)·s − pad_lo − pad_hi + d·(k − 1) + output_padding + 1."""
    return (size - 1) * stride - pad[0] - pad[1] + dilation * (kernel - 1) + output_padding + 1


def conv_output_shape(input_shape, kernel_size, stride=1, padding=0, dilation=1,
                      ceil_mode: bool = False, transposed: bool = False, output_padding=0) -> tuple:
    """Spatial output shape of a convolution or pooling (or, ``transposed``, of its transpose).

    Args:
        input_shape: spatial sizes, e.g. ``(H, W)`` (an int for 1-D).
        kernel_size, stride, dilation: an int or one int per spatial dim.
        padding: an int, per-dim ints, ``((lo, hi), ...)``, ``'valid'``, ``'same'`` or ``'full'``.
        output_padding: transposed only; extra cells on the high side, each < stride or dilation.

    >>> conv_output_shape((7, 7), 3)
    (5, 5)
    >>> conv_output_shape((5, 5), 3, stride=2, padding=1)
    (3, 3)

    Raises ValueError when an argument is out of range or the (dilated) kernel does not fit the
    padded input. Every call of a layer asks the same question: answers to plain arguments
    are kept (``answers_kept``; the checks cost a small layer's call 6 µs).
    """
    return _output_shape(input_shape, kernel_size, stride, padding, dilation, ceil_mode,
                         transposed, output_padding)


def answers_kept(function):
    """Decorate a function of its positional arguments alone (no state, no side effects) so
    that its answers to plain arguments (None, ints, bools, strings and tuples of ints or of
    int tuples) are kept and given again; other calls, and calls that raise, run each time."""
    kept = functools.lru_cache(maxsize=4096, typed=True)(function)  # typed: True is not 1

    @functools.wraps(function)
    def answer(*args):
        if all(map(_plain, args)):
            return kept(*args)
        return function(*args)
    return answer


def _plain(value):
    """Whether ``value`` is None, an int, a bool, a str, or a tuple of ints or of int tuples:
    a key equal only to the same argument (unlike 3.0 or True inside a tuple, equal to 3
    and 1), so that an answer kept for it holds for it."""
    kind = type(value)
    if kind is tuple:
        for item in value:
            if type(item) is tuple:
                if not all(type(number) is int for number in item):
                    return False
            elif type(item) is not int:
                return False
        return True
    return value is None or kind is int or kind is bool or kind is str


@answers_kept
def _output_shape(input_shape, kernel_size, stride, padding, dilation, ceil_mode, transposed,
                  output_padding):
    if not isinstance(input_shape, (tuple, list)) and np.ndim(input_shape) == 0:
        input_shape = (input_shape,)
    spatial = tuple(int(s) for s in input_shape)
    n = len(spatial)
    if any(s < 0 for s in spatial):
        raise ValueError(f"input_shape: sizes must be non-negative, got {input_shape!r}")
    kernel = positive_tuple(kernel_size, n, "kernel_size")
    strides = positive_tuple(stride, n, "stride")
    dilations = positive_tuple(dilation, n, "dilation")
    pads = resolve_padding(padding, spatial, kernel, strides, dilations)
    if transposed:
        extra = to_tuple(output_padding, n, "output_padding")
        for op, s, d in zip(extra, strides, dilations):
            if op < 0 or (op >= s and op >= d):
                raise ValueError(f"output_padding: must be smaller than either stride or dilation,"
                                 f" got output_padding={output_padding!r}, stride={stride!r}, "
                                 f"dilation={dilation!r}")
        out = tuple(transposed_output_size(*args) for args in
                    zip(spatial, kernel, strides, pads, dilations, extra))
        if any(o <= 0 for o in out):
            raise ValueError(f"padding: {padding!r} leaves a non-positive output size {out} for "
                             f"input {spatial}")
        return out
    out = tuple(output_size(*args, ceil_mode) for args in
                zip(spatial, kernel, strides, pads, dilations))
    for s, k, p, d, o in zip(spatial, kernel, pads, dilations, out):
        if s + p[0] + p[1] < d * (k - 1) + 1 and not (ceil_mode and o >= 1):
            raise ValueError(
                f"kernel_size: the kernel (size {k}, dilation {d}, spanning {d * (k - 1) + 1}) is "
                f"larger than the padded input (size {s} + padding {p[0]}+{p[1]}); "
                f"input spatial shape {spatial}, kernel_size {kernel}")
    return out
