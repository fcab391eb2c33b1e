"""The explorer's HTTP server: the standard library's ThreadingHTTPServer on 127.0.0.1.

Why the standard library (docs/explore.md says more): the API is eight small JSON routes and a
dozen static files for one local user, so a framework would add a dependency and nothing the
page needs; ``ThreadingHTTPServer`` keeps a slow model forward from blocking the page's other
requests.

Safety: it binds 127.0.0.1 only and answers only requests whose Host header names it (a web
page elsewhere cannot reach it through DNS rebinding). Static files are looked up in a table
built once from the package's ``static`` folder, so no request path is ever joined to a file
system path: ``/../x`` or ``/static/%2e%2e/x`` simply are not in the table (404). Request bodies
have a size limit checked against Content-Length before reading. Every refusal and every
failure is answered as JSON ``{"error": "..."}``; tracebacks never reach the client.
"""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from . import api
from .errors import BadRequest
from .images import MAX_UPLOAD_BYTES, ImageStore
from .network import LayerView

MAX_JSON_BYTES = 2**20
# Fixed here rather than by ``mimetypes``, which reads the platform's tables.
CONTENT_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
                 "css": "text/css; charset=utf-8", "svg": "image/svg+xml", "png": "image/png"}
STATIC_PACKAGE = "cnnkit.serve"


def static_files() -> dict:
    """{url path: (content type, bytes)} of every file in the package's ``static`` folder."""
    table = {}
    root = resources.files(STATIC_PACKAGE) / "static"

    def walk(folder, prefix):
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif not entry.name.startswith("."):
                kind = CONTENT_TYPES.get(entry.name.rsplit(".", 1)[-1], "application/octet-stream")
                table[f"/static/{prefix}{entry.name}"] = (kind, entry.read_bytes())
    walk(root, "")
    table["/"] = table["/static/index.html"]
    return table


class Explorer:
    """What the handlers share: the image store, the model view and the static table."""

    def __init__(self, view: LayerView, data_root=None):
        self.view = view
        self.store = ImageStore(data_root)
        self.static = static_files()
        self.routes = {
            ("GET", "/api/info"): lambda body: api.info(self.store),
            ("GET", "/api/model"): lambda body: self.view.describe(),
            ("POST", "/api/filter"): lambda body: api.filter_(self.store, body),
            ("POST", "/api/pixel"): lambda body: api.pixel(self.store, body),
            ("POST", "/api/shape"): api.shape,
            ("POST", "/api/model/forward"): lambda body: api.model_forward(self.store,
                                                                           self.view, body),
            ("POST", "/api/model/unit"): lambda body: api.model_unit(self.view, body),
        }


class Handler(BaseHTTPRequestHandler):
    server_version = "cnnkit-serve"
    explorer: Explorer  # set on the subclass make_server builds

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # one line per request would drown the URL the user needs

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # The page may load and contact only this server.
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data: "
                                                    "blob:; style-src 'self'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value) -> None:
        self._send(status, json.dumps(value, allow_nan=False).encode(), "application/json")

    def _body(self, limit: int) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise BadRequest("chunked request bodies are not accepted; send Content-Length",
                             status=411)
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise BadRequest("a POST needs a Content-Length header", status=411) from None
        if length < 0:
            raise BadRequest("Content-Length must be >= 0")
        if length > limit:
            self.close_connection = True  # the unread body must not be parsed as a request
            raise BadRequest(f"request body of {length:,} bytes, more than the limit of "
                             f"{limit:,}", status=413)
        return self.rfile.read(length)

    def _host_ok(self) -> bool:
        host = self.headers.get("Host", "")
        port = self.server.server_address[1]
        return host in (f"127.0.0.1:{port}", f"localhost:{port}")

    def _handle(self, method: str) -> None:
        try:
            if not self._host_ok():
                raise BadRequest("unexpected Host header; open the address cnnkit serve "
                                 "printed", status=403)
            path = urlsplit(self.path).path
            explorer = self.explorer
            if method in ("GET", "HEAD") and path in explorer.static:
                kind, content = explorer.static[path]
                self._send(200, content, kind)
                return
            if method == "POST" and path == "/api/upload":
                self._json(200, explorer.store.add_upload(self._body(MAX_UPLOAD_BYTES)))
                return
            route = explorer.routes.get((method if method != "HEAD" else "GET", path))
            if route is None:
                known = any(p == path for _, p in explorer.routes) or path == "/api/upload"
                raise BadRequest(f"{method} {path}: " + ("method not allowed" if known else
                                                         "not found"),
                                 status=405 if known else 404)
            body = None
            if method == "POST":
                try:
                    body = json.loads(self._body(MAX_JSON_BYTES) or b"null")
                except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
                    raise BadRequest(f"request body is not JSON ({err})") from None
                if not isinstance(body, dict):
                    raise BadRequest("request body: expected a JSON object")
            self._json(200, route(body))
        except BadRequest as err:
            self._json(err.status, {"error": str(err)})
        except Exception as err:  # noqa: BLE001 - answered as JSON, never as a traceback
            message = " ".join(str(err).split()) or type(err).__name__
            print(f"cnnkit serve: {self.command} {self.path}: {type(err).__name__}: {message}",
                  file=sys.stderr)
            self._json(500, {"error": f"internal error: {type(err).__name__}: {message}"})

    def do_GET(self):  # noqa: N802 - BaseHTTPRequestHandler's names
        self._handle("GET")

    def do_HEAD(self):  # noqa: N802
        self._handle("HEAD")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def do_PUT(self):  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self):  # noqa: N802
        self._handle("DELETE")


def make_server(view: LayerView, port: int = 0, data_root=None) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:``port`` (0 = a free port; read ``server.server_address``)."""
    handler = type("ExplorerHandler", (Handler,), {"explorer": Explorer(view, data_root)})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Run ``server.serve_forever`` in a daemon thread (tests; ``server.shutdown()`` stops it)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
