"""Re-measure ``layers.CALLS_PER_TURN``: how many calls of one library the layer suites time
in a row in each turn of their round-robin against PyTorch.

    python -m cnnkit.bench.turns [--only pw1x1 res3x3 ...] [--repeats 7] [--more]

For each layer (the layers suite's convolutions; ``--more``: suite "more"'s too) it times
both libraries' training steps (``layers.LayerStep``) round-robin with 1, 2, 3 and 4 calls a
turn, then each library alone, and prints the best times (ms) and their ratio. The first call
after the other library's reads slow; the constant is the fewest calls a turn whose best
comes near the times alone on the short layers, where that costs the most.
"""
import argparse

from .layers import CONV_CASES, MORE_CASES, LayerStep
from .timing import best_of_interleaved

CALLS = (1, 2, 3, 4)


def measure(name, cases, repeats):
    """{calls a turn (or "alone"): (cnnkit's best, PyTorch's best)} in seconds, for one
    layer of ``cases``."""
    step = LayerStep(name, cases)
    both = [step.ours, step.theirs]
    times = {calls: tuple(best_of_interleaved(both, repeats, back_to_back=calls))
             for calls in CALLS}
    times["alone"] = tuple(best_of_interleaved([run], 2 * repeats)[0] for run in both)
    return times


def table(rows):
    """Markdown lines for [(name, ``measure``'s times)]."""
    keys = [*CALLS, "alone"]
    head = " | ".join(f"{k} a turn" if k != "alone" else "alone" for k in keys)
    lines = [f"| layer | {head} |", "|---|" + "---:|" * len(keys)]
    for name, times in rows:
        cells = " | ".join(f"{times[k][0] * 1e3:.2f} / {times[k][1] * 1e3:.2f} "
                           f"({times[k][0] / times[k][1]:.2f})" for k in keys)
        lines.append(f"| {name} | {cells} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cnnkit.bench.turns",
        description="cnnkit / PyTorch training-step ms (ratio) by calls a turn, and alone")
    parser.add_argument("--only", nargs="+", metavar="LAYER")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--more", action="store_true", help="suite 'more's layers too")
    args = parser.parse_args(argv)
    cases = {**CONV_CASES, **MORE_CASES} if args.more else dict(CONV_CASES)
    unknown = sorted(set(args.only or ()) - set(cases))
    if unknown:
        parser.error(f"--only: no layer named {', '.join(unknown)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    print("\n".join(table([])[:2]))
    for name in args.only or cases:
        print(table([(name, measure(name, cases, args.repeats))])[2], flush=True)


if __name__ == "__main__":
    main()
