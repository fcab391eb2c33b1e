"""Suite "ceiling": every way of computing the layers that the "≥ 60 % of the FMA peak" target
is judged on (``layers.PEAK_TARGET_LAYERS``), as a share of that peak. It shows whether a
layer below the line is below it in cnnkit only, or for every code that computes it.

    python -m cnnkit.bench --suite ceiling [--only pw1x1] [--isa avx2]

Each way runs a whole training step: the forward pass with the bias, then the input, weight
and bias gradients. One layer's ways are timed round-robin in one process (best of
``--repeats``), so a slow moment of the machine falls on all of them alike, and several calls
in a row each turn (``layers.CALLS_PER_TURN``): a way's best call follows its own, not another
way's that left other data in the caches (in a plain round-robin the same code read 8–12 %
slower after BLAS's turn than after its own):

    cnnkit (A/B/C)      the heuristic, which picks A, B and C for the forward pass, input and
                        weight gradients (one name when it is the same), as the layers suite
    cnnkit, NAME        algorithm NAME forced on all three passes (``kernels.conv.using``),
                        for every other algorithm that applies to all three
    PyTorch             its own step
    BLAS, laid out      the step's three products by NumPy's BLAS on operands laid out
                        beforehand (``blas_products``): a step whose layouts cost nothing
"""
from ..kernels.conv import ALGORITHMS, PASSES, applies, select, using
from .layers import CALLS_PER_TURN, CONV_CASES, PEAK_TARGET_LAYERS, LayerStep
from .timing import best_of_interleaved


def ways(step):
    """[(label, run)] for one ``LayerStep``: the heuristic, each other algorithm that
    applies to all three passes forced, PyTorch and BLAS."""
    def forced(name):
        def run():
            with using(algorithm=name):
                step.ours()
        return run
    picks = [select(step.geometry, p) for p in PASSES]
    heuristic = picks[0] if len(set(picks)) == 1 else "/".join(picks)
    every_pass = [name for name in ALGORITHMS if name != heuristic
                  and all(applies(name, step.geometry, p) for p in PASSES)]
    return ([(f"cnnkit ({heuristic})", step.ours)]
            + [(f"cnnkit, {name}", forced(name)) for name in every_pass]
            + [("PyTorch", step.theirs), ("BLAS, laid out", step.blas.all_three)])


def run(repeats=5, only=None):
    """Rows {name, way, ms, gflops} for each target layer (``only``: those named), one per
    way, in the order of ``ways``."""
    for name in PEAK_TARGET_LAYERS:
        if only and name not in only:
            continue
        step = LayerStep(name, CONV_CASES)
        labels, runs = zip(*ways(step))
        times = best_of_interleaved(list(runs), repeats, back_to_back=CALLS_PER_TURN)
        for label, seconds in zip(labels, times):
            yield {"suite": "ceiling", "name": name, "way": label, "ms": seconds * 1e3,
                   "gflops": 3 * step.flops / seconds / 1e9}


def table(rows, peak):
    """Markdown table of ``run``'s rows against ``peak`` (GFLOP/s, all threads)."""
    lines = ["| layer | way | fwd+bwd ms | GFLOP/s | % of peak |", "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['way']} | {r['ms']:.2f} | {r['gflops']:.1f} | "
                     f"{r['gflops'] / peak * 100:.0f} |")
    return "\n".join(lines)
