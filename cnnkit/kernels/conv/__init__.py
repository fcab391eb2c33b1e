"""Convolution kernels on plain ndarrays: forward and both gradients, any number of dims.

The input is x with its zero padding: an array already padded, or a ``PaddedInput`` (the array
and its pads), which makes the padded copy only for an algorithm that reads one, and at most
once for a layer's forward pass and weight gradient. ``cnnkit.functional.conv`` does the
autograd wiring. Notation (docs/concepts.md's forward sum, with batch and groups):

    y[n, k, i] = Σ_c Σ_a w[k, c, a] · x[n, c, i·s + a·d]          (i, a: spatial multi-indices)

Its two gradients are convolutions again:

    dL/dx[n, c, j] = Σ_k Σ_{a : j = i·s + a·d} dL/dy[n, k, i] · w[k, c, a]
        the *transposed* convolution of dL/dy with w: every output gradient is spread back over
        its receptive field, weighted by the kernel taps. For stride 1 this is the full
        correlation of dL/dy with the flipped kernel.
    dL/dw[k, c, a] = Σ_n Σ_i dL/dy[n, k, i] · x[n, c, i·s + a·d]
        the correlation of the input with dL/dy.

Several algorithms compute these same sums, each a module of this package; ``select`` picks
one per call and pass (``cnnkit.reference`` holds the literal loops they are all tested
against). In the order the heuristic asks them (``registry.REGISTRY``):

    'fc'         a kernel as large as the padded input (one output per image), one group:
                 a fully connected layer, one matrix product per pass (``fc``)
    'lanes'      2-D and 3-D depthwise layers (one output channel per input channel) and
                 groups of up to a vector's lanes (K = C), float32: a block of channels of
                 one image transposed onto the vector lanes; depthwise layers' small maps and
                 volumes and their weight gradients, grouped layers' passes (``lanes``)
    'rows'       one input channel per group, float32, stride 1: forward and input gradient
                 on the register-tiled row correlation, 3 × 3 (× 3) kernels on a stencil,
                 and a 3 × 3 × 3 kernel's weight gradient (``rows``)
    'blocked'    groups narrower than a vector, float32, strided: the implicit GEMM on blocks
                 of several groups with zeros between them (``blocked``)
    'implicit'   float32: an implicit GEMM, a compiled register-tiled product that
                 reads the padded input in place (``implicit``)
    'fft'        stride 1 with a large kernel: products of spectra (``fft``); on float32
                 only where its estimate beats the implicit GEMM (large batches)
    'depthwise'  one input channel per group: a direct sum over kernel offsets (compiled with
                 Numba for 1-D and 2-D layers of float32 or float64, on the input's stride
                 phases, ``depthwise_numba``; NumPy's sums otherwise)
    'winograd'   3×3, stride 1, dilation 1: Winograd F(2×2, 3×3), 2.25× fewer multiplies
    'shift'      stride 1: shifted matrix products on the padded input, no im2col copy
    'gemm'       anything else: im2col and one large matrix product

How the choice is made (``dispatch.select``): a forced algorithm (``using(algorithm=...)``)
runs or, if it does not apply to the call, raises ``NotApplicable``; else, with autotune on
(``using(autotune=True)``), the algorithm measured fastest for that shape and pass; else the
first algorithm in registry order that applies and whose rule says it wins, unless an algorithm
that declares ``claims`` claims the pass first, after fc (the depthwise kernels' and shift's
input gradients of single-channel maps, gemm's deep 3-D input gradients of few channels:
``gemm.takes_input``). Every call's shape is one frozen ``ConvGeometry``; every threshold the
rules use is in ``cnnkit.tuning``. One
rule depends on the data: an algorithm that would invent terms for an operand holding inf or
NaN (zero-padded kernel rows or dy, transforms, spectra) does not apply to it
(``registry.NEEDS_FINITE``; the operand is checked only when the choice depends on it), so
NaN and ±inf land where the sums above put them (docs/ieee.md).

Settings are context-local (``config``): ``with using(...)`` holds for its block in its own
thread. ``force_algorithm(name)`` and ``set_autotune(flag)`` still work, as the unscoped forms
(they set the value for the rest of the calling thread or task).

To add an algorithm: write one module here with

    applies(geometry, pass_name) -> bool   the complete precondition, on shapes only
    wins(geometry, pass_name) -> bool      the heuristic's rule, asked where it applies;
                                           it may read only the geometry, ``cnnkit.tuning``
                                           and the CPU (the heuristic keeps its answers per
                                           geometry, its ``pad_widths``, pass and
                                           ``tuning.state()``)
    forward_pass(xp, w, geometry)          -> y (N, K, *out)
    input_pass(dy, w, geometry)            -> dx inside geometry.pads (N, C, *inner)
    weight_pass(xp, dy, geometry)          -> dw (K, C/G, *kernel)

(a pass that ``applies`` refuses need not exist). Optionally, ``claims(geometry, pass_name)``
-> bool: passes the algorithm takes before the order is asked, where every algorithm ahead
of it would run them more slowly (same rules as ``wins``). Optionally, to read the input
unpadded or fuse the bias, ``forward_from(source, w, geometry, bias)`` -> y + bias and
``weight_from(source, dy, geometry, with_bias)`` -> (dw, db or None), ``source`` a
``PaddedInput``; the dispatcher then calls these instead. Optionally,
``forward_plan(geometry)`` -> a callable plan(source, w, bias) -> y + bias, or None: the
forward pass with every decision and table that reads only the shapes made once, which the
dispatcher keeps per geometry, padding, tuning state and thread count, and calls instead of
``forward_from`` where the heuristic picks the algorithm (``dispatch.forward_plan``). A plan
must give ``forward_from``'s floats bit for bit and leave ``source`` as it would (the padded
copy a training step's weight gradient reads); ``implicit`` gives none where its tasks pad
image by image. Then add one line to ``registry.REGISTRY``, at the place in the order where
its rule should be asked, and one to ``registry.NEEDS_FINITE`` naming the operands it needs
finite (and, if that depends on the shape, ``needs_finite(geometry, pass_name)`` -> the
operands needed beyond those; and
``checks_finite(geometry, pass_name)`` -> those its pass checks itself as it reads them,
raising ``finite.NotFinite`` before it returns anything, so that the dispatcher makes no pass
over them first). Forcing it on the
shared grid in tests/test_conv_algorithms.py then checks it against PyTorch, and
tests/test_ieee.py checks what it needs finite.
"""
from . import autotune
from .config import force_algorithm, set_autotune, using
from .dispatch import (PaddedInput, conv_backward_input, conv_backward_weight, conv_forward,
                       select)
from .geometry import ConvGeometry, output_spatial
from .registry import ALGORITHMS, PASSES, REGISTRY, NotApplicable, applicable, applies

__all__ = ["ALGORITHMS", "PASSES", "REGISTRY", "ConvGeometry", "NotApplicable", "PaddedInput",
           "applicable", "applies", "autotune", "conv_backward_input", "conv_backward_weight",
           "conv_forward", "force_algorithm", "output_spatial", "select", "set_autotune",
           "using"]
