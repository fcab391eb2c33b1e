"""``cnnkit tune``: measure this machine's kernel constants and save them for later runs."""
from __future__ import annotations

import os

from .common import CommandError, UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune", help="measure this machine's kernel cost constants (under a minute)",
        description="Time a few shapes of the row correlation, the FFT convolution, "
                    "np.convolve and the compiled-vs-NumPy kernels, fit the constants "
                    "cnnkit decides by (cnnkit/tuning/constants.py), print each as "
                    "default -> measured, and save them to the per-user cache "
                    "($XDG_CACHE_HOME/cnnkit/, one file per CPU and cnnkit version), where "
                    "every later run reads them. CNNKIT_TUNING=off ignores the cache. Same as "
                    "python -m cnnkit.bench --calibrate.")
    parser.add_argument("--dry-run", action="store_true", help="measure and print, save nothing")
    parser.add_argument("--fast", action="store_true",
                        help="tiny shapes, a few seconds (a smoke test; values are rough)")
    parser.add_argument("--output", metavar="FILE",
                        help="save to FILE instead of the per-user cache (read it with "
                             "CNNKIT_TUNING=FILE)")
    parser.set_defaults(run=run)


def _check_output(path) -> None:
    """Refuse an --output that cannot be written, before minutes of measuring."""
    if os.path.isdir(path):
        raise UsageError(f"--output {path!r} is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UsageError(f"--output {path!r}: cannot write under {parent!r}")


def run(args) -> int:
    from ..tuning import calibrate
    if args.output:
        _check_output(args.output)
    try:
        calibrate.run(dry_run=args.dry_run, fast=args.fast, path=args.output)
    except OSError as err:
        raise CommandError(f"cannot save the measurements to {err.filename or args.output}: "
                           f"{err.strerror or err}") from err
    return 0
