"""Re-measure ``cnnkit/_runtime.py``'s spin settings: how long idle OpenMP threads (Numba's
compiled kernels, ``GOMP_SPINCOUNT``) and OpenBLAS threads (``OPENBLAS_THREAD_TIMEOUT``) wait
for more work before they sleep.

    python -m cnnkit.bench.spin [--gomp 1000 10000 100000 300000] [--openblas 20]
                                [--model vgg_small lenet5 resnet_small] [--rounds 3]

Each setting runs in a child process of its own, since both libraries read their spin when they
load, and the settings take turns, round after round, so that the machine's slow and fast
moments fall on all of them. A child times cnnkit alone, as a user runs it: training steps of
each model at batch 128 (``end_to_end.cnnkit_training``, best of 5 windows of 5 steps) and one
image through it in evaluation mode (best of 5 windows of 50 calls). A long spin keeps threads
awake across the gaps between kernels, where a short one lets them sleep and wake again (tens
of µs each time); but a pool that spins holds cores the other pool's next call needs. The
table gives each setting's best ms over the rounds, and the slowest round's best after it.
"""
import argparse
import json
import os
import subprocess
import sys

from .end_to_end import MODELS, _batches, cnnkit_training
from .timing import best_of_interleaved

GOMP_POLLS = (1000, 10000, 100000, 300000)
OPENBLAS_LOG2_CYCLES = (20,)
BATCH = 128
STEPS = 5  # training steps per timed window
CALLS = 50  # one-image calls per timed window
WINDOWS = 5


def child(models):
    """{model: (ms per training step, ms per one-image call)} in this process's settings."""
    import cnnkit
    times = {}
    for name in models:
        model, step = cnnkit_training(name)
        x, y = _batches(BATCH, STEPS)

        def train():
            for i in range(STEPS):
                step(x[i], y[i])
        (train_s,) = best_of_interleaved([train], WINDOWS, warmup=2, budget_s=60.0)
        model.eval()
        image = cnnkit.tensor(_batches(1, 1)[0][0])

        def one_image():
            with cnnkit.no_grad():
                for _ in range(CALLS):
                    model(image)
        (image_s,) = best_of_interleaved([one_image], WINDOWS, warmup=2, budget_s=30.0)
        times[name] = (train_s / STEPS * 1e3, image_s / CALLS * 1e3)
    return times


def _run_child(models, polls, log2_cycles):
    env = dict(os.environ, GOMP_SPINCOUNT=str(polls), OPENBLAS_THREAD_TIMEOUT=str(log2_cycles))
    code = ("import json, sys; from cnnkit.bench.spin import child; "
            f"print(json.dumps(child({list(models)!r})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"the child with GOMP_SPINCOUNT={polls} and "
                           f"OPENBLAS_THREAD_TIMEOUT={log2_cycles} failed: {last}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(models, settings, rounds):
    """{(polls, log2 cycles): {model: [(step ms, one-image ms) per round]}}."""
    results = {setting: {name: [] for name in models} for setting in settings}
    for _ in range(rounds):
        for setting in settings:
            for name, times in _run_child(models, *setting).items():
                results[setting][name].append(tuple(times))
    return results


def table(results, models, current):
    """Markdown lines: per setting and model, training step and one image, ms, best over the
    rounds and (after the slash) the slowest round's; ``current`` marks cnnkit's setting."""
    head = " | ".join(f"{name} step | {name} one image" for name in models)
    lines = [f"| GOMP_SPINCOUNT, OPENBLAS_THREAD_TIMEOUT | {head} |",
             "|---|" + "---:|" * (2 * len(models))]
    for setting, per_model in results.items():
        cells = []
        for name in models:
            rounds = per_model[name]
            for column in (0, 1):
                values = [r[column] for r in rounds]
                cells.append(f"{min(values):.3f} / {max(values):.3f}")
        mark = " (cnnkit's)" if setting == current else ""
        lines.append(f"| {setting[0]}, {setting[1]}{mark} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    from .._runtime import GOMP_SPIN_POLLS, OPENBLAS_SPIN_LOG2_CYCLES
    parser = argparse.ArgumentParser(
        prog="python -m cnnkit.bench.spin",
        description="cnnkit's training step and one-image ms by OpenMP and OpenBLAS spin")
    parser.add_argument("--gomp", nargs="+", type=int, default=list(GOMP_POLLS),
                        metavar="POLLS", help="GOMP_SPINCOUNT values")
    parser.add_argument("--openblas", nargs="+", type=int, default=list(OPENBLAS_LOG2_CYCLES),
                        metavar="LOG2_CYCLES", help="OPENBLAS_THREAD_TIMEOUT values")
    parser.add_argument("--model", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if any(polls < 0 for polls in args.gomp):
        parser.error("--gomp: spin counts are 0 or more")
    if any(not 4 <= cycles <= 30 for cycles in args.openblas):  # OpenBLAS's own bounds
        parser.error("--openblas: OPENBLAS_THREAD_TIMEOUT is read as 2**n cycles, 4 ≤ n ≤ 30")
    settings = [(polls, cycles) for cycles in dict.fromkeys(args.openblas)
                for polls in dict.fromkeys(args.gomp)]
    models = list(dict.fromkeys(args.model))
    results = measure(models, settings, args.rounds)
    current = (int(GOMP_SPIN_POLLS), int(OPENBLAS_SPIN_LOG2_CYCLES))
    print("\n".join(table(results, models, current)))


if __name__ == "__main__":
    main()
