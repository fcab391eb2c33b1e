"""``cnnkit serve``: the explorer (kernel and shape playgrounds, a run's feature maps) on
127.0.0.1, in the browser."""
from __future__ import annotations

import sys

from .common import CommandError, add_data_root_argument, int_in, one_line


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="explore kernels, output shapes and a run's feature maps in the browser",
        description="Serve the explorer on 127.0.0.1 and print its address. Nothing is loaded "
                    "from the internet; cnnkit computes everything. Without RUN the 'your "
                    "model' page shows an untrained vgg_small and says so.")
    parser.add_argument("run_dir", metavar="RUN", nargs="?",
                        help="a run directory of 'cnnkit train' or its model/checkpoint file")
    parser.add_argument("--port", type=int_in(0, 65535), default=0,
                        help="port on 127.0.0.1 (default 0: a free port, printed)")
    parser.add_argument("--open", action="store_true",
                        help="also open the page in the default web browser")
    add_data_root_argument(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..serve import LayerView, load_run, make_server

    try:
        view = LayerView(*load_run(args.run_dir))
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(one_line(err)) from err
    try:
        server = make_server(view, args.port, args.data_root)
    except OSError as err:
        raise CommandError(f"cannot listen on 127.0.0.1:{args.port}: {err.strerror or err}")
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    model = view.source or f"an untrained {view.config['model'].get('name')}"
    print(f"cnnkit serve: {url}  (model: {model}; Ctrl+C stops)", flush=True)
    if args.open:
        import webbrowser
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("cnnkit serve: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
