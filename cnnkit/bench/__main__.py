"""``python -m cnnkit.bench [--suite layers signals e2e] [--threads N] [--json PATH]``.

``--calibrate`` instead measures this machine's kernel constants and saves them, as
``cnnkit tune`` (``cnnkit.tuning.calibrate``).
"""
import argparse
import os
import sys


def _reexec_with_threads(threads):
    """BLAS reads its thread count at start-up, so set it in the environment and restart."""
    wanted = str(threads)
    if os.environ.get("OPENBLAS_NUM_THREADS") == wanted:
        return
    env = dict(os.environ, OPENBLAS_NUM_THREADS=wanted, OMP_NUM_THREADS=wanted,
               MKL_NUM_THREADS=wanted, NUMBA_NUM_THREADS=wanted)
    os.execve(sys.executable, [sys.executable, "-m", "cnnkit.bench"] + sys.argv[1:], env)


def build_parser():
    parser = argparse.ArgumentParser(prog="cnnkit bench", description=__doc__.split("\n")[0] +
                                     " — cnnkit against PyTorch (and scipy), as ratios.")
    parser.add_argument("--suite", nargs="+", default=["layers", "signals", "e2e"],
                        choices=["layers", "signals", "e2e"])
    parser.add_argument("--only", nargs="*", help="run only these case names")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for both libraries (default: all cores)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default="bench-results.json", help="where to write results")
    parser.add_argument("--calibrate", action="store_true",
                        help="measure this machine's kernel constants and save them (as "
                             "'cnnkit tune'), then exit")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.calibrate:
        from ..tuning import calibrate
        calibrate.run()
        return
    _reexec_with_threads(args.threads)
    try:
        import torch  # noqa: F401
        import scipy  # noqa: F401
    except ImportError:
        sys.exit("cnnkit bench compares against PyTorch and scipy: pip install 'cnnkit[test]'")
    from . import end_to_end, layers, report, signals
    from .timing import limit_threads, machine, sgemm_rate
    limit_threads(args.threads)
    info = machine()
    info["threads"] = args.threads
    info["sgemm_gflops"] = sgemm_rate()
    print(f"# machine: {info.get('cpu')}, {info['cpu_count']} cores, threads={args.threads}, "
          f"numpy {info['numpy']}, torch {info['torch']}; sgemm {info['sgemm_gflops']:.0f} GFLOP/s",
          flush=True)
    results = {"machine": info, "layers": [], "signals": [], "end_to_end": []}
    if "layers" in args.suite:
        for row in layers.run(args.repeats, args.only):
            results["layers"].append(row)
            print(f"  {row['name']:14s} {row['mode']:8s} {row['cnnkit_ms']:9.2f} ms vs "
                  f"{row['torch_ms']:9.2f} ms  ratio {row['ratio']:.2f}", flush=True)
        print("\n" + report.layer_table(results["layers"], info["sgemm_gflops"]))
        results["layer_summary"] = report.summary(results["layers"])
        print(results["layer_summary"], flush=True)
    if "signals" in args.suite:
        results["signals"] = list(signals.run(max(2, args.repeats // 2), args.only))
        print("\n" + report.signal_table(results["signals"]), flush=True)
    if "e2e" in args.suite:
        results["end_to_end"] = list(end_to_end.run())
        print("\n" + report.e2e_table(results["end_to_end"]), flush=True)
    report.write_json(args.json, results)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
