"""The ``cnnkit`` command line: ``cnnkit <command> [options]`` (also ``python -m cnnkit``).

Each command lives in its own small module of this package, which defines two functions::

    def register(subparsers):            # add the command's parser
        parser = subparsers.add_parser("name", help="one line", description="more")
        parser.add_argument(...)
        parser.set_defaults(run=run)

    def run(args) -> int:                # do the work; return the exit code
        ...

To add a command (``bench``, ``filter``, ``explain``, ``plot``, ...), write ``cli/<name>.py``
that way and append its module name to ``COMMANDS`` below. Keep heavy imports inside ``run`` so
``cnnkit --help`` stays fast. Problems the user can fix are raised as ``common.CommandError``
(exit 1) or ``common.UsageError`` (exit 2); ``main`` prints them as one line,
``cnnkit <command>: error: <message>``, without a traceback. Anything else that escapes a
command is a bug: it is printed as one line too, with a hint to rerun with ``--debug`` (or
``CNNKIT_DEBUG=1``), which shows the traceback. argparse's own errors are one line as well.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .common import CommandError, one_line

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = ["train", "evaluate", "predict", "summary", "export", "filter", "explain", "plot",
            "bench", "tune", "cpu", "serve", "report"]


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (the usage is one --help away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="cnnkit", description="Convolutional neural networks in NumPy: train, evaluate, "
                                   "inspect. 'cnnkit <command> --help' describes each command.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an internal error (anywhere on the line)")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMANDS:
        importlib.import_module(f".{name}", __name__).register(subparsers)
    return parser


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or bool(os.environ.get("CNNKIT_DEBUG"))
    argv = [arg for arg in argv if arg != "--debug"]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argparse's usage errors (code 2)
        return exit_.code if isinstance(exit_.code, int) else 1
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = args.run(args)
        sys.stdout.flush()  # here, so a closed pipe is caught below, not at interpreter exit
        return code
    except BrokenPipeError:  # `cnnkit summary ... | head`: the reader has all it wants
        return _stdout_closed()
    except CommandError as err:
        print(f"cnnkit {args.command}: error: {one_line(err)}", file=sys.stderr)
        return err.exit_code
    except (ValueError, OSError) as err:  # a library refusal: still one line, no traceback
        if debug:
            raise
        print(f"cnnkit {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cnnkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug (or MemoryError): one line, the traceback on request
        if debug:
            raise
        print(f"cnnkit {args.command}: internal error: {type(err).__name__}: "
              f"{one_line(err)[:300]} (run with --debug for the traceback)", file=sys.stderr)
        return 1


def _stdout_closed() -> int:
    """Silence the rest of the output, as a program killed by SIGPIPE would be; exit 141."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit would fail again
    os.close(devnull)
    return 128 + 13
