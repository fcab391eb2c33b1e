"""The convolution algorithms, in the order the heuristic asks them, and what may run where.

Each algorithm is one module of this package (see the package docstring for its interface).
The order is the heuristic's priority: ``heuristic`` takes the first algorithm that applies and
whose ``wins`` rule holds; gemm, last, applies to everything and always wins.
"""
from . import depthwise, fft, gemm, implicit, rows, shift, winograd

REGISTRY = {
    "rows": rows,              # one input channel per group, float32, stride 1: row correlation
    "implicit": implicit,      # float32, groups 1: compiled implicit GEMM
    "fft": fft,                # stride 1, large kernels: products of spectra
    "depthwise": depthwise,    # one input channel per group: direct sum over kernel offsets
    "winograd": winograd,      # 3×3, stride 1: Winograd F(2×2, 3×3)
    "shift": shift,            # stride 1: shifted matrix products
    "gemm": gemm,              # anything: im2col and one matrix product
}
ALGORITHMS = tuple(REGISTRY)
PASSES = ("forward", "input", "weight")


class NotApplicable(ValueError):
    """A forced algorithm cannot compute this call (it is refused, never replaced)."""

    def __init__(self, algorithm, geometry, pass_name, reason=""):
        self.algorithm, self.geometry, self.pass_name = algorithm, geometry, pass_name
        super().__init__(
            f"algorithm {algorithm!r} does not apply to the {pass_name} pass of "
            f"{_describe(geometry)}{reason}; applicable: "
            f"{', '.join(n for n in ALGORITHMS if REGISTRY[n].applies(geometry, pass_name))}")


def _describe(g):
    return (f"a {len(g.kernel)}-D conv (N={g.batch}, C={g.in_channels}, K={g.out_channels}, "
            f"groups={g.groups}, kernel={g.kernel}, stride={g.stride}, dilation={g.dilation}, "
            f"padded={g.padded}, out={g.out}, {g.dtype})")


def check_pass(pass_name):
    if pass_name not in PASSES:
        raise ValueError(f"pass_name: expected one of {PASSES}, got {pass_name!r}")


def check_algorithm(name):
    if name not in REGISTRY:
        raise ValueError(f"algorithm: expected one of {ALGORITHMS}, got {name!r}")


def applies(name, geometry, pass_name, finite_weights=True):
    """Whether algorithm ``name`` computes this pass exactly.

    The one data-dependent rule lives here: with a non-finite weight (inf or NaN) only gemm
    computes the input gradient as PyTorch does. The other algorithms pad dy with zeros, and
    0·inf = NaN where PyTorch has no term at all; col2im adds only real products."""
    if pass_name == "input" and not finite_weights and name != "gemm":
        return False
    return REGISTRY[name].applies(geometry, pass_name)


def applicable(geometry, pass_name, finite_weights=True):
    """The algorithms that can compute this pass, in registry order."""
    return [name for name in ALGORITHMS if applies(name, geometry, pass_name, finite_weights)]


def heuristic(geometry, pass_name, finite_weights=True):
    """The first applicable algorithm whose rule says it wins (rules from the benchmark's
    measurements, see BENCHMARKS.md; their numbers are in ``cnnkit.tuning``)."""
    for name in ALGORITHMS:
        if applies(name, geometry, pass_name, finite_weights) and \
                REGISTRY[name].wins(geometry, pass_name):
            return name
    raise AssertionError("gemm applies to every convolution")  # pragma: no cover
