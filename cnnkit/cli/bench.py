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
    import sys

    from ..bench.__main__ import main
    argv = ["--suite", *args.suite, "--threads", str(args.threads), "--repeats",
            str(args.repeats), "--json", args.json]
    if args.only:
        argv += ["--only", *args.only]
    if args.calibrate:
        argv.append("--calibrate")
    sys.argv = ["cnnkit-bench", *argv]
    main(argv)
    return 0
