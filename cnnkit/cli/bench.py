"""``cnnkit bench``: the benchmark suites against PyTorch (same as ``python -m cnnkit.bench``)."""


def register(subparsers):
    from ..bench.__main__ import build_parser
    template = build_parser()
    parser = subparsers.add_parser("bench", help="benchmark cnnkit against PyTorch and scipy",
                                   description=template.description)
    for action in template._actions:  # the same options as python -m cnnkit.bench
        if action.dest != "help":
            parser._add_action(action)
    parser.set_defaults(run=run)


def run(args):
    """Rebuild the options as ``python -m cnnkit.bench`` takes them (it checks them, and may
    run again in a child process with the threads and ISA caps set)."""
    from ..bench.__main__ import main
    argv = ["--suite", *args.suite, "--threads", args.threads, "--repeats", args.repeats,
            "--json", args.json]
    if args.only:
        argv += ["--only", *args.only]
    if args.calibrate:
        argv.append("--calibrate")
    if args.isa:
        argv += ["--isa", args.isa]
    return main(argv)
