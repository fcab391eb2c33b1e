"""``python -m cnnkit.bench [--suite layers signals e2e more ceiling] [--only CASE ...]
[--threads N] [--repeats R] [--isa native|avx2|avx512] [--json PATH]``.

``--calibrate`` instead measures this machine's kernel constants and saves them, as
``cnnkit tune`` (``cnnkit.tuning.calibrate``).
"""
import argparse
import os
import subprocess
import sys

from .isa import ISA_CHOICES, environment, host_features, missing_features

PROG = "cnnkit bench"
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # one line, as the cnnkit command line prints errors
        self.exit(2, f"{PROG}: error: {message}\n")


def build_parser():
    parser = _OneLineParser(prog=PROG, description=__doc__.split("\n")[0] +
                            " — cnnkit against PyTorch (and scipy), as ratios.")
    parser.add_argument("--suite", nargs="+", default=["layers", "signals", "e2e"],
                        choices=["layers", "signals", "e2e", "more", "ceiling"],
                        help="layers, signals and e2e by default; 'more': layers outside the "
                             "targets (channel counts, small maps, groups, dilation, 1-D, 3-D); "
                             "'ceiling': the layers of the peak target computed every way")
    parser.add_argument("--only", nargs="*", help="run only these case names")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for both libraries (default: all cores)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--isa", choices=ISA_CHOICES, default=None,
                        help="run as on a CPU with this ISA: every library capped at it in a "
                             "child process (native: no caps; default: the environment's)")
    parser.add_argument("--json", default="bench-results.json", help="where to write results")
    parser.add_argument("--calibrate", action="store_true",
                        help="measure this machine's kernel constants and save them (as "
                             "'cnnkit tune'), then exit")
    return parser


def case_names():
    """Every name --only accepts, suite by suite."""
    from . import layers, signals
    return {"layers": [*layers.CONV_CASES, *layers.POOL_AND_NORM_CASES],
            "signals": list(signals.SIGNAL_CASES),
            "more": [*layers.MORE_CASES, *layers.MORE_OP_CASES, layers.RESIDUAL_CASE[0]],
            "ceiling": list(layers.PEAK_TARGET_LAYERS)}


def check_args(args):
    """Raise ValueError naming the argument for values the bench cannot run with."""
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    if args.only:
        valid = [name for names in case_names().values() for name in names]
        unknown = [name for name in args.only if name not in valid]
        if unknown:
            raise ValueError(f"--only: unknown case {', '.join(map(repr, unknown))}; valid "
                             f"names: {', '.join(valid)}")
    folder = os.path.dirname(os.path.abspath(args.json))
    if not os.path.isdir(folder):
        raise ValueError(f"--json: folder {folder} does not exist")
    if args.isa:
        lacking = missing_features(args.isa)
        if lacking:
            possible = [isa for isa in ISA_CHOICES if not missing_features(isa, host_features())]
            raise ValueError(f"--isa {args.isa}: this CPU lacks {', '.join(lacking)}, so it "
                             f"cannot run {args.isa} code (it can: {', '.join(possible)})")


def wanted_environment(args):
    """The environment the bench must run in: thread counts and ISA caps (see ``isa``)."""
    return dict(environment(os.environ, args.isa),
                **{name: str(args.threads) for name in THREAD_VARIABLES})


def _restart_if_needed(args, argv):
    """Thread counts and ISA caps are read by BLAS, OpenMP, Numba and PyTorch at start-up, so
    when they differ from this process's, the bench runs again in a child process that has
    them. Returns the child's exit code, or None when this process is already right."""
    wanted = wanted_environment(args)
    if wanted == dict(os.environ):
        return None
    return subprocess.run([sys.executable, "-m", "cnnkit.bench", *argv], env=wanted).returncode


def main(argv=None):
    """Run the bench with ``argv`` (default: the command line); returns the exit code."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = build_parser().parse_args(argv)
    if args.calibrate:
        from ..tuning import calibrate
        calibrate.run()
        return 0
    try:
        check_args(args)
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    code = _restart_if_needed(args, argv)
    if code is not None:
        return code
    try:
        import scipy  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        print(f"{PROG}: error: it compares against PyTorch and scipy: pip install "
              "'cnnkit[test]'", file=sys.stderr)
        return 1
    run(args)
    return 0


def _confirm_peak(info, log=print):
    """Measure the FMA peak again and keep the higher reading in ``info`` (all readings under
    'readings'). The peak is a physical limit, so a low reading only means the machine was
    busy at that moment (another process, a vCPU the host paused): one such reading, half the
    usual, once put the layers at 130 % "of peak"."""
    from . import peak
    first = info["peak"]
    again = peak.measure(first["threads"])
    readings = first.get("readings", [first["gflops_total"]]) + [again["gflops_total"]]
    info["peak"] = dict(max(first, again, key=lambda p: p["gflops_total"]), readings=readings)
    used = info["peak"]["gflops_total"]
    # said whenever the table divides by another reading than the header's, or they differ
    # by more than the usual spread
    if used != first["gflops_total"] or min(readings) < 0.9 * max(readings):
        log(f"# peak re-measured: {again['gflops_total']:.0f} GFLOP/s, against "
            f"{first['gflops_total']:.0f} before; the table divides by {used:.0f}")


def _layer_suite(rows, info):
    """Print the layer rows as they come, then their table and summary; returns both."""
    from . import report
    done = []
    for row in rows:
        done.append(row)
        print(f"  {row['name']:14s} {row['mode']:8s} {row['cnnkit_ms']:9.2f} ms vs "
              f"{row['torch_ms']:9.2f} ms  ratio {row['ratio']:.2f}", flush=True)
    _confirm_peak(info)
    print("\n" + report.layer_table(done, info["sgemm_gflops"], info["peak"]["gflops_total"]))
    summary = report.summary(done)
    print(summary, flush=True)
    return done, summary


def run(args):
    from . import ceiling, end_to_end, layers, machine, peak, report, signals
    from .timing import limit_threads, sgemm_rate
    limit_threads(args.threads)
    info = machine.describe()
    info.update(threads=args.threads, isa=args.isa, peak=peak.measure(args.threads),
                sgemm_gflops=sgemm_rate())
    print("\n".join(machine.header_lines(info)), flush=True)
    results = {"machine": info, "layers": [], "signals": [], "end_to_end": []}
    if "layers" in args.suite:
        results["layers"], results["layer_summary"] = _layer_suite(
            layers.run(args.repeats, args.only), info)
    if "more" in args.suite:
        results["more_layers"], results["more_summary"] = _layer_suite(
            layers.run(args.repeats, args.only, layers.MORE_CASES), info)
    if "signals" in args.suite:
        results["signals"] = list(signals.run(max(2, args.repeats // 2), args.only))
        print("\n" + report.signal_table(results["signals"]), flush=True)
    if "ceiling" in args.suite:
        results["ceiling"] = list(ceiling.run(args.repeats, args.only))
        _confirm_peak(info)
        print("\n" + ceiling.table(results["ceiling"], info["peak"]["gflops_total"]),
              flush=True)
    if "e2e" in args.suite:
        results["end_to_end"] = list(end_to_end.run())
        print("\n" + report.e2e_table(results["end_to_end"]), flush=True)
    report.write_json(args.json, results)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
