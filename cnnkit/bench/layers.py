"""Suite 1: single layers, forward and forward+backward (input, weight and bias gradients);
suite "more": the same for layers outside the targets (``MORE_CASES``)."""
import functools
import math

import numpy as np

import cnnkit
import cnnkit.functional as F
from cnnkit.conv_arithmetic import conv_output_shape
from cnnkit.kernels.conv import PASSES, ConvGeometry, select

from .blas_products import LayerProducts
from .timing import best_of_interleaved

# name: (dims, N, C, K, spatial, kernel, stride, padding, groups): the layers BENCHMARKS.md reports.
CONV_CASES = {
    "lenet_c1": (2, 64, 1, 32, (28, 28), 5, 1, 2, 1),
    "res3x3": (2, 32, 64, 64, (32, 32), 3, 1, 1, 1),
    "res3x3_s2": (2, 32, 64, 128, (32, 32), 3, 2, 1, 1),
    "pw1x1": (2, 32, 256, 64, (16, 16), 1, 1, 0, 1),
    "dw3x3": (2, 32, 128, 128, (32, 32), 3, 1, 1, 128),
    "alex_c1": (2, 8, 3, 64, (224, 224), 11, 4, 2, 1),
    "audio1d_k101": (1, 8, 1, 16, (16000,), 101, 1, 50, 1),
    "vol3d": (3, 4, 8, 16, (16, 16, 16), 3, 1, 1, 1),
}
# Suite "more": layers the targets are not judged on, so that a change tuned to the suite's
# shapes shows here (same columns, plus dilation): channel counts of three vectors, small maps
# with many channels, 1×1 expansions, a stem, dilated and grouped layers (4 groups at stride 1
# and 2; a ResNeXt block's 32 groups of 4, 8 and 16 channels, on 28², 14² and 7² maps),
# depthwise layers (5 × 5; MobileNet's 3 × 3 at stride 2, on 14 × 14 maps of 384 channels and
# on 7 × 7 maps of 960), 1-D and 3-D, narrow layers (resnet_small's 16 channels on 28 × 28
# maps; 8 channels), large kernels (13 × 13; 15 × 15 at stride 2) and 3-D depthwise layers
# (3 × 3 × 3; at stride 2 with two outputs per channel).
MORE_CASES = {
    "c3x3_96": (2, 16, 96, 96, (28, 28), 3, 1, 1, 1),
    "c3x3_48": (2, 32, 48, 48, (32, 32), 3, 1, 1, 1),
    "c3x3_192_s2": (2, 16, 96, 192, (28, 28), 3, 2, 1, 1),
    "c5x5": (2, 32, 32, 64, (28, 28), 5, 1, 2, 1),
    "pw_24_144": (2, 16, 24, 144, (56, 56), 1, 1, 0, 1),
    "pw_320_1280": (2, 8, 320, 1280, (7, 7), 1, 1, 0, 1),
    "stem7x7_s2": (2, 4, 3, 64, (224, 224), 7, 2, 3, 1),
    "c3x3_256_8": (2, 64, 256, 256, (8, 8), 3, 1, 1, 1),
    "dil3x3": (2, 16, 64, 64, (32, 32), 3, 1, 2, 1, 2),
    "grouped": (2, 16, 128, 128, (28, 28), 3, 1, 1, 4),
    "grouped_s2": (2, 16, 128, 128, (28, 28), 3, 2, 1, 4),
    "resnext_g32": (2, 16, 128, 128, (28, 28), 3, 1, 1, 32),
    "resnext_g32_14": (2, 16, 256, 256, (14, 14), 3, 1, 1, 32),
    "resnext_g32_7": (2, 16, 512, 512, (7, 7), 3, 1, 1, 32),
    "dw5x5": (2, 16, 96, 96, (28, 28), 5, 1, 2, 96),
    "dw3x3_s2": (2, 16, 96, 96, (56, 56), 3, 2, 1, 96),
    "dw3x3_14": (2, 16, 384, 384, (14, 14), 3, 1, 1, 384),
    "dw3x3_7": (2, 16, 960, 960, (7, 7), 3, 1, 1, 960),
    "conv1d": (1, 16, 64, 128, (1024,), 3, 1, 1, 1),
    "conv1d_s2": (1, 16, 64, 64, (2048,), 7, 2, 3, 1),
    "conv3d": (3, 2, 32, 32, (16, 16, 16), 3, 1, 1, 1),
    "vgg_c2": (2, 128, 32, 64, (14, 14), 3, 1, 1, 1),
    "c3x3_16": (2, 128, 16, 16, (28, 28), 3, 1, 1, 1),
    "c3x3_8": (2, 64, 8, 8, (32, 32), 3, 1, 1, 1),
    "c13x13": (2, 8, 16, 16, (64, 64), 13, 1, 6, 1),
    "c15x15_s2": (2, 4, 16, 32, (64, 64), 15, 2, 7, 1),
    "dw3d": (3, 8, 48, 48, (8, 16, 16), 3, 1, 1, 48),
    "dw3d_s2": (3, 8, 16, 32, (16, 16, 16), 3, 2, 1, 16),
}
# Suite "more"'s other layers: name: (op of both libraries' functional modules, input shape,
# arguments): a ResNet's stem pool (3 × 3 at stride 2) and its global pools, VGG's adaptive
# pool to 7 × 7 on the 10 × 10 maps of a 320² input (windows of 2 and 3), a "same" 3 × 3
# max pool, LeNet's average pool and a "same" 3 × 3 one, a volume's max pool, 1-D pools
# (cnn1d's by 2 on a 64 × 32 × 500 batch, and windows of 3 at stride 2), the activations
# besides ReLU on res3x3's output, and reflect padding of that output by one (an
# image-to-image network's border).
MORE_OP_CASES = {
    "maxpool3x3_s2": ("max_pool2d", (16, 64, 56, 56), dict(kernel_size=3, stride=2, padding=1)),
    "maxpool3x3_s1": ("max_pool2d", (16, 64, 28, 28), dict(kernel_size=3, stride=1, padding=1)),
    "maxpool3d": ("max_pool3d", (8, 16, 16, 32, 32), dict(kernel_size=2)),
    "maxpool1d_2": ("max_pool1d", (64, 32, 500), dict(kernel_size=2)),
    "maxpool1d_3s2": ("max_pool1d", (64, 32, 500), dict(kernel_size=3, stride=2, padding=1)),
    "avgpool2x2": ("avg_pool2d", (64, 6, 28, 28), dict(kernel_size=2)),  # LeNet's
    "avgpool3x3_s1": ("avg_pool2d", (16, 64, 28, 28), dict(kernel_size=3, stride=1, padding=1)),
    "global_avgpool": ("adaptive_avg_pool2d", (64, 256, 7, 7), dict(output_size=1)),
    "global_maxpool": ("adaptive_max_pool2d", (64, 256, 7, 7), dict(output_size=1)),
    "adaptive_avgpool_10to7": ("adaptive_avg_pool2d", (32, 512, 10, 10), dict(output_size=7)),
    "leaky_relu": ("leaky_relu", (32, 64, 32, 32), dict(negative_slope=0.1)),
    "elu": ("elu", (32, 64, 32, 32), {}),
    "gelu": ("gelu", (32, 64, 32, 32), {}),
    "sigmoid": ("sigmoid", (32, 64, 32, 32), {}),
    "pad_reflect": ("pad", (32, 64, 32, 32), dict(pad=(1, 1, 1, 1), mode="reflect")),
}
# The dense layers the "≥ 60 % of the FMA peak" target is judged on (BENCHMARKS.md, "Against
# the targets"); suite "ceiling" (``ceiling``) times every way of computing them.
PEAK_TARGET_LAYERS = ("res3x3", "res3x3_s2", "pw1x1", "alex_c1")
POOL_AND_NORM_CASES = ("maxpool2x2", "batchnorm")  # pool_and_norm_cases' rows
# Calls of one library timed in a row in each turn of the layer suites' round-robin (the best
# of all of them counts): the first call after the other library's reads slow, for both, and
# the more so the shorter the layer (AVX-512, ms: pw1x1's step 4.13 at one call a turn, 3.61
# at three, 3.71 alone; dw3x3's 8.12, 6.84, 6.27; PyTorch's 5.49, 4.77, 4.54 and 11.74,
# 10.23, 9.66). Re-measured per layer by ``python -m cnnkit.bench.turns``; BENCHMARKS.md,
# "The layer suites time three calls a turn".
CALLS_PER_TURN = 3
# Suite "more"'s skip connection, relu(x) + x on pw1x1's input: the sum forward, and backward
# the gradient of x, summed from its two consumers (``residual_case``).
RESIDUAL_CASE = ("residual_sum", (32, 256, 16, 16))


def _in_turns(functions, repeats):
    """Best times of ``functions`` (cnnkit's, PyTorch's) round-robin, ``CALLS_PER_TURN``
    calls of each a turn."""
    return best_of_interleaved(list(functions), repeats, back_to_back=CALLS_PER_TURN)


def _pair(fn_ours, fn_theirs, backward):
    """Wrap forward (no graph) or forward+backward runs of both libraries."""
    import torch

    def ours():
        if backward:
            fn_ours()
        else:
            with cnnkit.no_grad():
                fn_ours()

    def theirs():
        if backward:
            fn_theirs()
        else:
            with torch.no_grad():
                fn_theirs()
    return ours, theirs


class LayerStep:
    """One layer of ``cases`` in both libraries, on the same data: ``ours`` and ``theirs``
    run a training step (forward with the bias, then ``backward``: input, weight and bias
    gradients), or only the forward pass where the graph is off; ``flops`` is one pass's
    (2 · K · C/G · prod(kernel) · N · prod(out)), ``geometry`` the padded input's
    ``ConvGeometry`` and ``blas`` its three products by BLAS (``blas_products``)."""

    def __init__(self, name, cases=CONV_CASES):
        import torch
        import torch.nn.functional as TF
        n_dims, n, c, k, spatial, kernel, stride, padding, groups, *dilation = cases[name]
        dilation = dilation[0] if dilation else 1
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c) + spatial, dtype=np.float32)
        w = (rng.standard_normal((k, c // groups) + (kernel,) * n_dims, dtype=np.float32)
             / np.float32(math.sqrt(c // groups * kernel ** n_dims)))
        b = rng.standard_normal(k, dtype=np.float32)
        out = conv_output_shape(spatial, kernel, stride, padding, dilation)
        g = rng.standard_normal((n, k) + out, dtype=np.float32)
        ours_conv, theirs_conv = getattr(F, f"conv{n_dims}d"), getattr(TF, f"conv{n_dims}d")
        tensors = [cnnkit.tensor(a, requires_grad=True) for a in (x, w, b)]
        torch_tensors = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        g_torch = torch.tensor(g)

        def ours():
            for t in tensors:
                t.grad = None
            y = ours_conv(*tensors, stride, padding, dilation, groups)
            if y.requires_grad:
                y.backward(g)

        def theirs():
            for t in torch_tensors:
                t.grad = None
            y = theirs_conv(*torch_tensors, stride, padding, dilation, groups)
            if y.requires_grad:
                y.backward(g_torch)
        self.ours, self.theirs = ours, theirs
        self.flops = 2 * n * k * (c // groups) * kernel ** n_dims * math.prod(out)
        padded = tuple(s + 2 * padding for s in spatial)
        self.geometry = ConvGeometry.of((n, c) + padded, (k, c // groups) + (kernel,) * n_dims,
                                        (stride,) * n_dims, (dilation,) * n_dims, groups,
                                        np.float32, ((padding, padding),) * n_dims)
        self._blas_shape = (groups, k // groups, c // groups * kernel ** n_dims,
                            n * math.prod(out))

    @functools.cached_property
    def blas(self):
        """The layer's three products by BLAS (``LayerProducts``), made on first use: their
        operands, im2col's columns among them, are as large as the layer's multiply-adds."""
        return LayerProducts(*self._blas_shape)


def conv_case(name, repeats, cases=CONV_CASES):
    step = LayerStep(name, cases)
    flops = step.flops
    # what ``select`` runs for each pass (float32 weights are finite here)
    picks = [select(step.geometry, pass_name) for pass_name in PASSES]
    algorithm = picks[0] if len(set(picks)) == 1 else "/".join(picks)  # forward/input/weight
    rows = []
    for (mode, backward, work), blas_run in zip((("fwd", False, flops),
                                                 ("fwd+bwd", True, 3 * flops)),
                                                (step.blas.forward, step.blas.all_three)):
        t_ours, t_theirs = _in_turns(_pair(step.ours, step.theirs, backward), repeats)
        # alone, after: in the round-robin, OpenBLAS's run slowed the run after it (pw1x1's
        # forward 1.80–1.95 ms after PyTorch's, 2.19–2.94 after BLAS's)
        (t_blas,) = best_of_interleaved([blas_run], repeats)
        rows.append(_row(name, mode, t_ours, t_theirs, work, algorithm, t_blas))
    return rows


def _row(name, mode, t_ours, t_theirs, flops, algorithm="", t_blas=None):
    """A table row; ``t_blas``: the same products by BLAS, laid out beforehand
    (``blas_products``)."""
    return {"suite": "layers", "name": name, "mode": mode, "cnnkit_ms": t_ours * 1e3,
            "torch_ms": t_theirs * 1e3, "ratio": t_ours / t_theirs,
            "cnnkit_gflops": flops / t_ours / 1e9 if flops else None,
            "torch_gflops": flops / t_theirs / 1e9 if flops else None, "algorithm": algorithm,
            "blas_ms": None if t_blas is None else t_blas * 1e3,
            "blas_gflops": flops / t_blas / 1e9 if t_blas and flops else None}


def op_case(name, op, x, arguments, repeats):
    """A layer's rows, fwd and fwd+bwd: the functional ``op`` ("max_pool2d", ...) on x."""
    import torch
    import torch.nn.functional as TF
    xc, xt = cnnkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    with torch.no_grad():
        out_shape = getattr(TF, op)(xt, **arguments).shape
    g = np.random.default_rng(2).standard_normal(tuple(out_shape), dtype=np.float32)
    g_torch = torch.tensor(g)

    def ours():
        xc.grad = None
        y = getattr(F, op)(xc, **arguments)
        if y.requires_grad:
            y.backward(g)

    def theirs():
        xt.grad = None
        y = getattr(TF, op)(xt, **arguments)
        if y.requires_grad:
            y.backward(g_torch)
    return [_row(name, mode, *_in_turns(_pair(ours, theirs, backward), repeats), 0)
            for mode, backward in (("fwd", False), ("fwd+bwd", True))]


def pool_and_norm_cases(repeats):
    """Max-pool 2×2 and batch norm on res3x3's output, (32, 64, 32, 32)."""
    import torch
    import torch.nn.functional as TF
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 64, 32, 32), dtype=np.float32)
    xc, xt = cnnkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    rows = op_case("maxpool2x2", "max_pool2d", x, dict(kernel_size=2), repeats)

    if not hasattr(F, "batch_norm"):
        return rows
    weight, bias = (cnnkit.tensor(np.ones(64, np.float32), requires_grad=True),
                    cnnkit.tensor(np.zeros(64, np.float32), requires_grad=True))
    tw, tb = (torch.ones(64, requires_grad=True), torch.zeros(64, requires_grad=True))
    g = rng.standard_normal(x.shape, dtype=np.float32)

    def run_bn(lib):
        def run():
            if lib == "ours":
                xc.grad = weight.grad = bias.grad = None
                y = F.batch_norm(xc, np.zeros(64, np.float32), np.ones(64, np.float32), weight,
                                 bias, training=True)
                if y.requires_grad:
                    y.backward(g)
            else:
                xt.grad = tw.grad = tb.grad = None
                y = TF.batch_norm(xt, torch.zeros(64), torch.ones(64), tw, tb, training=True)
                if y.requires_grad:
                    y.backward(torch.tensor(g))
        return run
    for mode, backward in (("fwd", False), ("fwd+bwd", True)):
        t = _in_turns(_pair(run_bn("ours"), run_bn("torch"), backward), repeats)
        rows.append(_row("batchnorm", mode, *t, 0))
    return rows


def residual_case(repeats):
    """``RESIDUAL_CASE``'s rows, fwd and fwd+bwd."""
    import torch
    name, shape = RESIDUAL_CASE
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape, dtype=np.float32)
    g = rng.standard_normal(shape, dtype=np.float32)
    xc, xt, g_torch = (cnnkit.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True),
                       torch.tensor(g))

    def ours():
        xc.grad = None
        y = F.relu(xc) + xc
        if y.requires_grad:
            y.backward(g)

    def theirs():
        xt.grad = None
        y = torch.relu(xt) + xt
        if y.requires_grad:
            y.backward(g_torch)
    return [_row(name, mode, *_in_turns(_pair(ours, theirs, backward), repeats), 0)
            for mode, backward in (("fwd", False), ("fwd+bwd", True))]


def run(repeats=5, only=None, cases=CONV_CASES):
    rows = []
    for name in cases:
        if only and name not in only:
            continue
        rows += conv_case(name, repeats, cases)
        yield from rows[-2:]
    if cases is MORE_CASES:
        for name, (op, shape, arguments) in MORE_OP_CASES.items():
            if not only or name in only:
                x = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
                yield from op_case(name, op, x, arguments, repeats)
        if not only or RESIDUAL_CASE[0] in only:
            yield from residual_case(repeats)
    if cases is not CONV_CASES:
        return
    if not only or set(only) & set(POOL_AND_NORM_CASES):
        yield from pool_and_norm_cases(repeats)
