"""cnnkit serve without a browser: the JSON API's numbers against cnnkit.functional, scipy and
PyTorch, receptive fields against gradients, and every refusal answered as JSON."""
import http.client
import io
import json
import struct
import zlib

import numpy as np
import pytest
import scipy.signal
import torch
from PIL import Image

import cnnkit
from cnnkit import functional as F
from cnnkit import nn
from cnnkit.serve import BadRequest, LayerView, api, load_run, make_server, serve_in_thread
from cnnkit.serve.images import ImageStore, decode_upload, sample_image


@pytest.fixture(scope="module")
def view():
    return LayerView(*load_run(None))


@pytest.fixture(scope="module")
def server(view):
    server = make_server(view, 0)
    serve_in_thread(server)
    yield server
    server.shutdown()
    server.server_close()


def call(server, method, path, body=None, headers=None, raw=None):
    """(status, parsed JSON or text) of one request; ``path`` is sent as it is, unnormalised."""
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    connection.request(method, path, body=data, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(payload) if kind.startswith("application/json") \
        else payload.decode()


def png_bytes(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width=30000, height=30000) -> bytes:
    """A tiny PNG whose header claims width × height pixels (the payload is one empty row)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(b"\0" * (width + 1))) + chunk(b"IEND", b""))


# -- the numbers ------------------------------------------------------------------------------

@pytest.mark.parametrize("convolve", [False, True])
@pytest.mark.parametrize("size", [3, 5])
def test_filter_and_pixel_match_conv2d_and_scipy(convolve, size):
    store = ImageStore()
    kernel = np.random.default_rng(size).integers(-3, 4, (size, size)).astype(float)
    body = {"image": {"source": "sample", "name": "shapes"}, "kernel": kernel.tolist(),
            "convolve": convolve}
    result = api.filter_(store, body)
    grey = sample_image("shapes")[0].astype(np.float64)
    applied = kernel[::-1, ::-1] if convolve else kernel
    expected = F.conv2d(cnnkit.tensor(grey[None, None]), cnnkit.tensor(applied[None, None]),
                        padding=size // 2).data[0, 0]
    oracle = (scipy.signal.convolve2d if convolve else scipy.signal.correlate2d)(
        grey, kernel, mode="same")
    np.testing.assert_allclose(result["output"], expected, atol=2e-6)
    np.testing.assert_allclose(result["output"], oracle, atol=2e-6)
    for row, col in [(0, 0), (10, 17), (47, 47), (20, 0)]:
        p = api.pixel(store, dict(body, row=row, col=col))
        assert np.allclose(np.array(p["window"]) * np.array(p["kernel"]), p["products"])
        assert p["sum"] == pytest.approx(expected[row, col], abs=1e-9)
        assert p["value"] == pytest.approx(expected[row, col], abs=1e-9)
        assert np.array_equal(p["kernel"], applied)
    assert result["bound"] == max(kernel[kernel > 0].sum(), -kernel[kernel < 0].sum())


@pytest.mark.parametrize("size,kernel,stride,padding,dilation", [
    (7, 3, 1, 0, 1), (7, 3, 2, 1, 1), (8, 3, 2, "same", 1), (9, 3, 1, "same", 2),
    (10, 5, 3, 2, 2), (5, 1, 1, 0, 1), (12, 4, 2, "same", 1)])
def test_shape_matches_torch(size, kernel, stride, padding, dilation):
    result = api.shape({"size": size, "kernel": kernel, "stride": stride, "padding": padding,
                        "dilation": dilation})
    lo, hi = result["pad"]
    x = torch.nn.functional.pad(torch.zeros(1, 1, size, size), (lo, hi, lo, hi))
    out = torch.nn.functional.conv2d(x, torch.zeros(1, 1, kernel, kernel), stride=stride,
                                     dilation=dilation)
    assert result["output"] == out.shape[-1]
    assert result["formula"].endswith(f"= {out.shape[-1]}")
    if padding == "same":
        assert result["output"] == -(-size // stride)
    assert len(result["taps"]) == result["output"]
    assert all(0 <= tap < size + lo + hi for taps in result["taps"] for tap in taps)


def test_shape_refusals_are_bad_requests():
    with pytest.raises(BadRequest, match="kernel_size"):
        api.shape({"size": 3, "kernel": 5, "stride": 1, "padding": 0, "dilation": 1})
    with pytest.raises(BadRequest, match="stride"):
        api.shape({"size": 3, "kernel": 3, "stride": 0, "padding": 0, "dilation": 1})
    with pytest.raises(BadRequest, match="padding"):
        api.shape({"size": 3, "kernel": 3, "stride": 1, "padding": "half", "dilation": 1})


def _gradient_support(model, shape, layer_index, view, channel, row, col):
    """Input pixels with a nonzero gradient of one unit (computed by cnnkit's autograd)."""
    x = cnnkit.tensor(np.random.default_rng(1).random((1,) + shape).astype(np.float32) + 0.5,
                      requires_grad=True)
    out = x
    for _, module in view.steps[:layer_index + 1]:
        out = module(out)
    out[0, channel, row, col].backward()
    support = np.argwhere(np.abs(x.grad[0]).sum(axis=0) > 0)
    return support[:, 0].min(), support[:, 0].max(), support[:, 1].min(), support[:, 1].max()


def test_receptive_field_is_the_gradient_support():
    # Positive weights and average pooling: no cancellation, so every input pixel in the field
    # gets a nonzero gradient and none outside does.
    cnnkit.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AvgPool2d(2),
                          nn.Conv2d(2, 3, 3, stride=2, dilation=2, padding=2),
                          nn.Conv2d(3, 2, (1, 3), padding="same"))
    for p in model.parameters():
        p.data[...] = np.abs(p.data) + 0.1
    config = {"model": {"name": "test"}, "input_shape": [1, 15, 13], "classes": None}
    view = LayerView(model.eval(), config)
    for layer in range(4):
        shape = view.out_shapes[layer]
        for row, col in [(0, 0), (shape[1] - 1, shape[2] - 1), (shape[1] // 2, 1)]:
            unit = view.unit(layer, 1, row, col)
            field = unit["receptive_field"]
            expected = _gradient_support(model, (1, 15, 13), layer, view, 1, row, col)
            assert (field["rows"][0], field["rows"][1], field["cols"][0], field["cols"][1]) \
                == tuple(int(v) for v in expected)


def test_resnet_block_field_contains_the_gradient_support():
    from cnnkit import models
    cnnkit.manual_seed(0)
    model = models.get("resnet_small", widths=(4, 8), num_classes=3).eval()
    config = {"model": {"name": "resnet_small"}, "input_shape": [1, 16, 16]}
    view = LayerView(model, config)
    block = next(i for i, (_, m) in enumerate(view.steps) if hasattr(m, "branches"))
    x = np.random.default_rng(1).random((1, 1, 16, 16)).astype(np.float32) + 0.5
    maps = view._run(x)[block][0, 0]
    row, col = np.unravel_index(np.argmax(maps), maps.shape)  # a unit ReLU lets through
    field = view.unit(block, 0, int(row), int(col))["receptive_field"]
    r0, r1, c0, c1 = _gradient_support(model, (1, 16, 16), block, view, 0, int(row), int(col))
    assert field["rows"][0] <= r0 and r1 <= field["rows"][1]
    assert field["cols"][0] <= c0 and c1 <= field["cols"][1]


def test_forward_matches_the_model(view):
    store = ImageStore()
    result = api.model_forward(store, view, {"image": {"source": "digits", "index": 4}})
    image = np.asarray(result["input"], dtype=np.float32)
    assert image.shape == (1, 28, 28)
    with cnnkit.no_grad():
        logits = view.model(cnnkit.tensor(image[None])).data
        first = view.model.features[0](cnnkit.tensor(image[None])).data[0]
    expected = np.exp(logits[0] - logits.max()) / np.exp(logits[0] - logits.max()).sum()
    np.testing.assert_allclose(result["probabilities"], expected, atol=2e-5)
    np.testing.assert_allclose(result["layers"][0]["maps"], first, atol=2e-5)
    np.testing.assert_allclose(result["layers"][0]["filters"],
                               view.model.features[0].weight.data, atol=1e-5)
    assert result["label"] == str(store._dataset("digits").labels[4])
    assert view.describe()["trained"] is False


def test_a_model_whose_forward_is_not_its_chain_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return self.conv(x) * 2
    with pytest.raises(ValueError, match="layer by layer"):
        LayerView(Twice(), {"model": {"name": "twice"}, "input_shape": [1, 6, 6]})


# -- uploads ----------------------------------------------------------------------------------

def test_decode_upload_limits():
    grey = np.arange(200 * 300, dtype=np.uint32).reshape(200, 300) % 256
    image = decode_upload(png_bytes(grey.astype(np.uint8)))
    assert image.shape == (1, 64, 96) and image.dtype == np.float32  # shrunk to fit 96×96
    rgb = decode_upload(png_bytes(np.zeros((10, 12, 3), np.uint8)))
    assert rgb.shape == (3, 10, 12)
    with pytest.raises(BadRequest, match="limit") as err:
        decode_upload(png_bytes(grey.astype(np.uint8)), max_bytes=100)
    assert err.value.status == 413
    with pytest.raises(BadRequest) as err:
        decode_upload(bomb_png())
    assert err.value.status == 413
    with pytest.raises(BadRequest, match="pixels") as err:
        decode_upload(png_bytes(grey.astype(np.uint8)), max_pixels=1000)
    assert err.value.status == 413
    with pytest.raises(BadRequest, match="not an image") as err:
        decode_upload(b"GIF89a-not-really")
    assert err.value.status == 400


def test_upload_then_filter_over_http(server):
    status, up = call(server, "POST", "/api/upload",
                      raw=png_bytes(np.full((20, 30), 128, np.uint8)))
    assert status == 200 and up["shape"] == [1, 20, 30]
    status, result = call(server, "POST", "/api/filter", {
        "image": {"source": "upload", "id": up["id"]}, "kernel": "box-blur"})
    assert status == 200
    assert np.allclose(np.array(result["input"]), 128 / 255, atol=1e-5)


def test_upload_limits_over_http(server):
    from cnnkit.serve.images import MAX_UPLOAD_BYTES
    status, body = call(server, "POST", "/api/upload",
                        headers={"Content-Length": str(MAX_UPLOAD_BYTES + 1)}, raw=b"")
    assert status == 413 and "limit" in body["error"]
    status, body = call(server, "POST", "/api/upload", raw=bomb_png())
    assert status == 413 and "error" in body
    status, body = call(server, "POST", "/api/upload", raw=b"hello")
    assert status == 400 and "not an image" in body["error"]


# -- refusals over HTTP -----------------------------------------------------------------------

def test_static_files_and_page(server):
    status, page = call(server, "GET", "/")
    assert status == 200 and "cnnkit explorer" in page
    for name in ("common.js", "kernel.js", "shape.js", "model.js", "style.css"):
        status, text = call(server, "GET", f"/static/{name}")
        assert status == 200 and text
    assert "http" not in page.replace("http-equiv", "")  # nothing from elsewhere


@pytest.mark.parametrize("path", [
    "/../pyproject.toml", "/static/../server.py", "/static/%2e%2e/server.py",
    "/static/..%2fserver.py", "/static/../../cnnkit/serve/server.py", "//etc/passwd",
    "/static//etc/passwd", "/static/", "/etc/passwd", "/static/./index.html/.."])
def test_paths_outside_the_static_table_are_refused(server, path):
    status, body = call(server, "GET", path)
    assert status == 404 and "not found" in body["error"]


@pytest.mark.parametrize("path,body,status,word", [
    ("/api/filter", {"image": {"source": "sample", "name": "shapes"}}, 400, "kernel"),
    ("/api/filter", {"image": {"source": "sample", "name": "shapes"},
                     "kernel": [[1] * 8] * 8}, 400, "kernel"),
    ("/api/filter", {"image": {"source": "sample", "name": "shapes"},
                     "kernel": [[1, 2], [3]]}, 400, "kernel"),
    ("/api/filter", {"image": {"source": "sample", "name": "shapes"},
                     "kernel": [[1, True], [3, 4]]}, 400, "kernel"),
    ("/api/filter", {"image": {"source": "disk", "path": "/etc/passwd"}, "kernel": "blur"},
     400, "image.source"),
    ("/api/filter", {"image": {"source": "sample", "name": "../x"}, "kernel": "blur"}, 400,
     "image.name"),
    ("/api/filter", {"image": {"source": "digits", "index": 10**6}, "kernel": "blur"}, 400,
     "image.index"),
    ("/api/filter", {"image": {"source": "upload", "id": "nope"}, "kernel": "blur"}, 404,
     "image.id"),
    ("/api/filter", {"image": {"source": "sample", "name": "shapes"}, "kernel": "blur",
                     "convolve": "yes"}, 400, "convolve"),
    ("/api/pixel", {"image": {"source": "sample", "name": "shapes"}, "kernel": "blur",
                    "row": 48, "col": 0}, 400, "row"),
    ("/api/shape", {"size": 3, "kernel": 5, "stride": 1, "padding": 0, "dilation": 1}, 400,
     "kernel_size"),
    ("/api/shape", {"size": "7"}, 400, "size"),
    ("/api/model/unit", {"layer": 99, "channel": 0, "row": 0, "col": 0}, 400, "layer"),
    ("/api/model/unit", {"layer": 0, "channel": 32, "row": 0, "col": 0}, 400, "channel"),
    ("/api/model/forward", {}, 400, "image"),
    ("/api/nothing", {}, 404, "not found"),
])
def test_bad_requests_get_json_errors(server, path, body, status, word):
    got, answer = call(server, "POST", path, body)
    assert got == status
    assert set(answer) == {"error"} and word in answer["error"]


def test_malformed_requests_get_json_errors(server):
    checks = [
        (call(server, "POST", "/api/filter", raw=b"{not json"), 400, "not JSON"),
        (call(server, "POST", "/api/filter", raw=b"[1, 2]"), 400, "JSON object"),
        (call(server, "POST", "/api/filter", raw=b"\xff\xfe"), 400, "not JSON"),
        (call(server, "POST", "/api/filter", raw=b"[" * 100000 + b"]" * 100000), 400,
         "not JSON"),
        (call(server, "GET", "/api/filter"), 405, "not allowed"),
        (call(server, "DELETE", "/api/info"), 405, "not allowed"),
        (call(server, "POST", "/api/shape", headers={"Content-Length": str(2**21)}, raw=b""),
         413, "limit"),
        (call(server, "GET", "/", headers={"Host": "evil.example:80"}), 403, "Host"),
    ]
    for (status, body), expected, word in checks:
        assert status == expected and word in body["error"], (status, body)


def test_internal_errors_are_json_without_traceback(server, monkeypatch):
    def broken(body):
        raise RuntimeError("something\nbroke")
    monkeypatch.setitem(server.RequestHandlerClass.explorer.routes, ("POST", "/api/shape"),
                        broken)
    status, body = call(server, "POST", "/api/shape", {})
    assert status == 500 and body == {"error": "internal error: RuntimeError: something broke"}


def test_info_and_model_description(server):
    status, info = call(server, "GET", "/api/info")
    assert status == 200 and "sobel-left" in info["presets"] and "digits" in info["datasets"]
    status, model = call(server, "GET", "/api/model")
    assert status == 200 and model["trained"] is False and model["name"] == "vgg_small"
    assert model["layers"][0]["shape"] == [32, 28, 28]


def test_cli_errors_are_one_line(capsys):
    from cnnkit.cli import main
    assert main(["serve", "/no/such/run"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such run directory" in err
    assert main(["serve", "--port", "70000"]) == 2  # argparse's range check: a usage error
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port" in err
