"""Backpropagation through a convolution is a convolution: docs/concepts.md §13's 1-D example.

Forward, a 'valid' cross-correlation of x = (x1..xN) with w = (w1..wK), O = N − K + 1 outputs:

    O_i = Σ_k w_k · x_{i+k−1}

x_j meets tap w_{j−i+1} in output O_i, so it receives every output gradient times that tap:

    dL/dx_j = Σ_i dO_i · w_{j−i+1}     (x3 gets w3·dO1 + w2·dO2 + w1·dO3 for N = 5, K = 3)
            = (dO ∗ w)_j                 a true convolution, 'full' mode
            = correlate(dO, flip(w), 'full')_j

and w_k meets x_{i+k−1} in every output O_i:

    dL/dw_k = Σ_i dO_i · x_{i+k−1} = correlate(x, dO, 'valid')_k

(the second seed's formulas (1) and (2), in one dimension). Both are checked against
cnnkit's autograd through ``cnnkit.functional.conv1d``.
"""
from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..signal import convolve, correlate
from ..tensor import Tensor
from ._text import fmt

__all__ = ["Backprop1d", "backprop_1d", "explain_backprop", "input_gradient_terms"]


@dataclass
class Backprop1d:
    """x : (N,); w : (K,); output, dout : (N − K + 1,); the gradients by formula and autograd."""
    x: np.ndarray
    w: np.ndarray
    output: np.ndarray
    dout: np.ndarray
    dx_convolve: np.ndarray           # convolve(dO, w, 'full')
    dx_flipped_correlate: np.ndarray  # correlate(dO, w[::-1], 'full')
    dw_correlate: np.ndarray          # correlate(x, dO, 'valid')
    dx_autograd: np.ndarray
    dw_autograd: np.ndarray


def input_gradient_terms(n_inputs: int, kernel_size: int) -> list:
    """For each input j (0-based), the (tap k, output i) pairs with x_j feeding O_i via w_k.

    x_j = x_{i+k} in 0-based indices, so k = j − i for every output i with 0 ≤ j − i < K.
    """
    n_out = n_inputs - kernel_size + 1
    if n_out < 1:
        raise ValueError(f"kernel_size: {kernel_size} is larger than the input ({n_inputs})")
    return [[(j - i, i) for i in range(n_out) if 0 <= j - i < kernel_size]
            for j in range(n_inputs)]


def backprop_1d(x, w, dout) -> Backprop1d:
    """Input and kernel gradients of O = correlate(x, w, 'valid') for the output gradient dout."""
    x, w, dout = (np.asarray(a, dtype=np.float64) for a in (x, w, dout))
    if x.ndim != 1 or w.ndim != 1 or dout.shape != (x.size - w.size + 1,):
        raise ValueError(f"backprop_1d: expected x (N,), w (K,) and dout (N − K + 1,), got "
                         f"{x.shape}, {w.shape}, {dout.shape}")
    xt = Tensor(x[None, None], requires_grad=True)
    wt = Tensor(w[None, None], requires_grad=True)
    out = F.conv1d(xt, wt)
    out.backward(dout[None, None])
    return Backprop1d(
        x, w, out.data[0, 0], dout,
        dx_convolve=convolve(dout, w, "full"),
        dx_flipped_correlate=correlate(dout, w[::-1], "full"),
        dw_correlate=correlate(x, dout, "valid"),
        dx_autograd=xt.grad[0, 0], dw_autograd=wt.grad[0, 0])


def _vector(values) -> str:
    return "[" + ", ".join(fmt(v) for v in values) + "]"


def _times(a, b) -> str:
    return f"{fmt(a) if a >= 0 else f'({fmt(a)})'}·{fmt(b) if b >= 0 else f'({fmt(b)})'}"


def explain_backprop(n_inputs: int = 5, kernel_size: int = 3, seed: int = 0) -> str:
    """Text: the symbolic gradient of every input and tap, then the numbers, checked."""
    terms = input_gradient_terms(n_inputs, kernel_size)
    n_out = n_inputs - kernel_size + 1
    rng = np.random.default_rng(seed)
    # Distinct non-zero taps, so that flipping the kernel visibly matters.
    taps = np.r_[-3:0, 1:4]
    w = rng.choice(taps, size=kernel_size, replace=kernel_size > taps.size)
    x = rng.integers(1, 5, n_inputs)
    dout = rng.choice(taps, size=n_out)
    r = backprop_1d(x, w, dout)

    lines = [(f"Backpropagation through a 1-D convolution: x = x1..x{n_inputs}, "
              f"w = w1..w{kernel_size}, O = {n_out} outputs"),
             "", "forward (cross-correlation, 'valid'): O_i = Σ_k w_k · x_(i+k−1)"]
    for i in range(n_out):
        lines.append(f"  O{i + 1} = " + " + ".join(f"w{k + 1}·x{i + k + 1}"
                                                   for k in range(kernel_size)))
    lines += ["", "backward: x_j receives each output's gradient dO_i times the tap it met there"]
    for j, pairs in enumerate(terms):
        lines.append(f"  dL/dx{j + 1} = " + " + ".join(f"w{k + 1}·dO{i + 1}" for k, i in pairs))
    lines += [("  -> dL/dx = dO ∗ w: a true convolution ('full'), i.e. the full correlation of dO "
               "with the flipped kernel"),
              "", "and each tap w_k collects dO_i times the input it met in O_i:"]
    for k in range(kernel_size):
        lines.append(f"  dL/dw{k + 1} = " + " + ".join(f"x{i + k + 1}·dO{i + 1}"
                                                      for i in range(n_out)))
    lines += ["  -> dL/dw = correlate(x, dO, 'valid'): a convolution layer's forward pass again",
              "", f"with numbers (seed {seed}):",
              f"  x  = {_vector(x)}", f"  w  = {_vector(w)}",
              f"  O  = {_vector(r.output)}   (cnnkit.functional.conv1d)",
              f"  dO = {_vector(dout)}   (an upstream gradient dL/dO)"]
    for j, pairs in enumerate(terms):
        expanded = " + ".join(_times(w[k], dout[i]) for k, i in pairs)
        lines.append(f"  dL/dx{j + 1} = {expanded} = {fmt(r.dx_convolve[j])}")
    ok = (np.allclose(r.dx_convolve, r.dx_autograd)
          and np.allclose(r.dx_flipped_correlate, r.dx_autograd)
          and np.allclose(r.dw_correlate, r.dw_autograd))
    mark = "✓" if ok else "✗ MISMATCH"
    lines += [f"  convolve(dO, w, 'full')          = {_vector(r.dx_convolve)}",
              f"  correlate(dO, w[::-1], 'full')   = {_vector(r.dx_flipped_correlate)}",
              f"  autograd x.grad                  = {_vector(r.dx_autograd)} {mark}",
              f"  correlate(x, dO, 'valid')        = {_vector(r.dw_correlate)}",
              f"  autograd w.grad                  = {_vector(r.dw_autograd)} {mark}"]
    return "\n".join(lines)
