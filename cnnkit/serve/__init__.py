"""``cnnkit serve``: an explorer in the browser, served from 127.0.0.1 (see docs/explore.md).

    kernel playground   a kernel (preset or edited) on an image, every output pixel explained
    shape playground    input size, kernel, stride, padding, dilation -> output size, animated
    your model          every layer's feature maps and filters, receptive fields, probabilities

The page only draws; cnnkit computes every number behind a small JSON API (``api.py``), served
by the standard library's HTTP server (``server.py``). All assets ship in ``static/``.
"""
from .errors import BadRequest
from .network import LayerView, load_run
from .server import make_server, serve_in_thread

__all__ = ["BadRequest", "LayerView", "load_run", "make_server", "serve_in_thread"]
