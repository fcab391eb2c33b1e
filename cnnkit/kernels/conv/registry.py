"""The convolution algorithms, in the order the heuristic asks them, and what may run where.

Each algorithm is one module of this package (see the package docstring for its interface).
The order is the heuristic's priority: ``heuristic`` takes the first algorithm that applies and
whose ``wins`` rule holds; gemm, last, applies to everything and always wins. An algorithm
whose module declares ``claims`` (``CLAIMING``) is asked that ahead of the order, after fc
(``ASKED_FIRST``).
"""

from ... import tuning
from . import blocked, depthwise, fc, fft, gemm, implicit, lanes, rows, shift, winograd

REGISTRY = {
    "fc": fc,                  # kernel = the padded map: one matrix product (fully connected)
    "lanes": lanes,            # depthwise 2-D and 3-D, float32, small maps: channels on lanes
    "rows": rows,              # one input channel per group, float32, stride 1: row correlation
    "blocked": blocked,        # narrow groups, float32, strided: implicit GEMM on dense blocks
    "implicit": implicit,      # float32: compiled implicit GEMM (one product per group)
    "fft": fft,                # stride 1, large kernels: products of spectra
    "depthwise": depthwise,    # one input channel per group: direct sum over kernel offsets
    "winograd": winograd,      # 3×3, stride 1: Winograd F(2×2, 3×3)
    "shift": shift,            # stride 1: shifted matrix products
    "gemm": gemm,              # anything: im2col and one matrix product
}
ALGORITHMS = tuple(REGISTRY)
# Algorithms whose module declares ``claims(geometry, pass_name)``: passes they claim are
# theirs before the order is asked, in the order's order (the depthwise kernels' and shift's
# input gradients of single-channel maps, gemm's deep 3-D input gradients of few channels,
# which algorithms ahead of them would otherwise take and run more slowly).
CLAIMING = tuple(name for name in ALGORITHMS if hasattr(REGISTRY[name], "claims"))
# Asked before the claims: fc, whose kernel covers the padded map, is one product wherever it
# applies, and no claim was measured against it.
ASKED_FIRST = ("fc",)
# What the heuristic asks, in turn: (algorithm, the name of its module's rule).
QUESTIONS = tuple((name, "wins") for name in ASKED_FIRST) + \
    tuple((name, "claims") for name in CLAIMING) + \
    tuple((name, "wins") for name in ALGORITHMS if name not in ASKED_FIRST)
PASSES = ("forward", "input", "weight")


class NotApplicable(ValueError):
    """A forced algorithm cannot compute this call (it is refused, never replaced)."""

    def __init__(self, algorithm, geometry, pass_name, nonfinite=frozenset()):
        self.algorithm, self.geometry, self.pass_name = algorithm, geometry, pass_name
        blocked = sorted(needs_finite(algorithm, pass_name, geometry) & frozenset(nonfinite))
        reason = f" ({' and '.join(blocked)} not finite: it would invent NaN or lose ±inf " \
            f"where the sums have none, docs/ieee.md)" if blocked else ""
        super().__init__(
            f"algorithm {algorithm!r} does not apply to the {pass_name} pass of "
            f"{_describe(geometry)}{reason}; applicable: "
            f"{', '.join(applicable(geometry, pass_name, nonfinite))}")


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


# The operands each pass reads, and which of them each algorithm needs finite. The literal
# sums (``cnnkit.kernels.conv``'s formulas, the padding's zeros included as values, see
# docs/ieee.md) turn an inf or NaN into NaN or ±inf only at the outputs whose terms hold it.
# An algorithm that multiplies an operand by zeros the sums do not have (0·inf = NaN), or
# mixes it with other entries before multiplying (transforms, spectra: inf − inf = NaN, and
# an FFT spreads one NaN over the whole map), is exact only while that operand is finite.
OPERANDS = {"forward": ("x", "w"), "input": ("dy", "w"), "weight": ("x", "dy")}
_EVERY = {pass_name: frozenset(operands) for pass_name, operands in OPERANDS.items()}
NEEDS_FINITE = {
    "fc": {},                                    # the sums' own terms only
    "lanes": {"input": frozenset({"w"})},        # dy's zero padding meets w
    "rows": {},                                  # checks its bands as it copies them;
                                                 # 3-D weight pass: ``rows.needs_finite``
    "blocked": {"forward": frozenset({"x"}),     # zeros between groups meet x
                "input": frozenset({"dy", "w"})},  # ... and dy; dy's zero padding meets w
    "implicit": {},                              # by shape: ``implicit.needs_finite``
    "fft": _EVERY,                               # spectra: one NaN reaches every output
    "depthwise": {},                             # only the sums' terms reach a result
    "winograd": _EVERY,                          # transforms: inf − inf = NaN
    "shift": {"input": frozenset({"w"}),         # dy's zero padding meets w
              "weight": frozenset({"x"})},       # dy's zero border columns meet x
    "gemm": {},                                  # im2col/col2im: only the sums' own terms
}


def needs_finite(name, pass_name, geometry=None):
    """The operands ("x", "w", "dy") of this pass that algorithm ``name`` needs finite:
    ``NEEDS_FINITE``'s, and for a given geometry also those its module's
    ``needs_finite(geometry, pass_name)`` names, where it has one (an arrangement that
    multiplies an operand by zeros of its own for some shapes only)."""
    fixed = NEEDS_FINITE[name].get(pass_name, frozenset())
    module = REGISTRY[name]
    if geometry is None or not hasattr(module, "needs_finite"):
        return fixed
    return fixed | module.needs_finite(geometry, pass_name)


def checks_finite(name, pass_name, geometry):
    """The operands of ``needs_finite`` that algorithm ``name``'s pass checks itself as it
    reads them (its module's ``checks_finite(geometry, pass_name)``, where it has one): it
    raises ``finite.NotFinite`` for one that holds inf or NaN, before it returns anything,
    and the dispatcher makes no pass over them first."""
    module = REGISTRY[name]
    if not hasattr(module, "checks_finite"):
        return frozenset()
    return module.checks_finite(geometry, pass_name)


def applies(name, geometry, pass_name, nonfinite=frozenset()):
    """Whether algorithm ``name`` computes this pass exactly, for this shape and with the
    operands named in ``nonfinite`` ("x", "w", "dy") holding an inf or NaN (``NEEDS_FINITE``).
    """
    if needs_finite(name, pass_name, geometry) & frozenset(nonfinite):
        return False
    return REGISTRY[name].applies(geometry, pass_name)


def applicable(geometry, pass_name, nonfinite=frozenset()):
    """The algorithms that can compute this pass, in registry order."""
    return [name for name in ALGORITHMS if applies(name, geometry, pass_name, nonfinite)]


def heuristic(geometry, pass_name, nonfinite=frozenset()):
    """The first applicable algorithm whose rule says it wins (rules from the benchmark's
    measurements, see BENCHMARKS.md; their numbers are in ``cnnkit.tuning``), unless one
    of ``CLAIMING`` claims the pass first.

    The rules read nothing but the geometry, the tuning values, the CPU and the thread count
    (``implicit.per_image_tasks``, ``lanes``' tasks of a volume), so each answer is kept
    (``tuning.kept``, per thread count): asking them again cost a small layer's call as much
    as its arithmetic (16 → 16 channels on one 8 × 8 image: 7.5 µs)."""
    return _heuristic(geometry, geometry.pad_widths, pass_name, frozenset(nonfinite))


@tuning.kept(threads=True)
def _heuristic(geometry, pad_widths, pass_name, nonfinite):
    # ``pad_widths`` keys the kept answer: the geometry's identity leaves the input's padding
    # out, and rules read it (``gemm.takes_input``: a stride-1 input gradient's dx leaves the
    # padding out; ``implicit``'s strided arrangements)
    for name, rule in QUESTIONS:
        if applies(name, geometry, pass_name, nonfinite) and \
                getattr(REGISTRY[name], rule)(geometry, pass_name):
            return name
    raise AssertionError("gemm applies to every convolution")  # pragma: no cover
