"""cnnkit serve in a real browser: Debian's headless Chromium driven by Playwright.

The tests start ``cnnkit serve RUN --port 0`` as a subprocess on a tiny LeNet-5 trained on the
8×8 digits here, read the printed address, use the page as a person would (edit a kernel cell,
drag the slider with the keyboard, hover, click, upload) and check what it shows against
cnnkit.functional and the model itself, and that every request went to 127.0.0.1.
Screenshots go to a temporary folder; with CNNKIT_DOCS_SCREENSHOTS=1 they are also copied to
docs/img/ for docs/explore.md. Without /usr/bin/chromium (``apt-get install chromium``, which
``make test`` does) or the playwright package, the tests are skipped.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

import cnnkit
from cnnkit import functional as F

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (Debian: apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the playwright package is missing (pip install playwright)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS_IMG = os.path.join(REPO, "docs", "img")


def _env():
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([REPO] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "lenet5_digits"
    subprocess.run([sys.executable, "-m", "cnnkit", "train", "--model", "lenet5", "--dataset",
                    "digits", "--epochs", "4", "--batch-size", "32", "--out", str(out),
                    "--no-progress"], check=True, env=_env(), capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="module")
def url(run_dir):
    process = subprocess.Popen([sys.executable, "-m", "cnnkit", "serve", str(run_dir),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=_env())
    line = process.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not found:
        process.kill()
        pytest.fail(f"cnnkit serve printed {line!r}, stderr {process.stderr.read()!r}")
    yield found.group(0)
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            args=FLAGS, headless=True, viewport={"width": 1280, "height": 860},
            bypass_csp=True)  # wait_for_function evaluates strings, which the page's CSP forbids
        yield context
        context.close()


@pytest.fixture
def page(browser, url):
    """A fresh tab on the explorer; afterwards, every request it made must be to 127.0.0.1."""
    tab = browser.new_page()
    requests, errors = [], []
    tab.on("request", lambda request: requests.append(request.url))
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(url)
    yield tab
    tab.close()
    assert requests and all(r.startswith(url) for r in requests), \
        [r for r in requests if not r.startswith(url)]
    assert not errors


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")

    def save(tab, name, **kwargs):
        path = folder / name
        tab.screenshot(path=str(path), **kwargs)
        if os.environ.get("CNNKIT_DOCS_SCREENSHOTS"):
            os.makedirs(DOCS_IMG, exist_ok=True)
            shutil.copy(path, os.path.join(DOCS_IMG, name))
        return path
    return save


def post(url, path, body):
    request = urllib.request.Request(url.rstrip("/") + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def signed_colour(values, bound):
    """common.js's cnn.signedColour: blue negative, white 0, red positive, full at ±bound."""
    t = np.clip(np.asarray(values, np.float64) / (bound if bound > 0 else np.inf), -1, 1)
    fade = np.round(255 * (1 - np.abs(t)) + 1e-9)  # JS Math.round rounds halves up
    red = np.where(t >= 0, 255, fade)
    blue = np.where(t >= 0, fade, 255)
    return np.stack([red, fade, blue], axis=-1)


def canvas_rgb(tab, selector):
    """(H, W, 3) pixels of a canvas, read back from the page."""
    data = tab.eval_on_selector(selector, """canvas => {
        const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
        return {w: canvas.width, h: canvas.height, px: Array.from(d.data)}; }""")
    return np.array(data["px"], np.float64).reshape(data["h"], data["w"], 4)[..., :3]


def table(tab, selector):
    return np.array(tab.eval_on_selector_all(
        f"{selector} tr", "rows => rows.map(r => [...r.cells].map(c => Number(c.textContent)))"))


def wait_version(tab, attribute, old):
    tab.wait_for_function(f"document.body.dataset.{attribute} !== undefined && "
                          f"document.body.dataset.{attribute} !== '{old}'")
    return tab.evaluate(f"document.body.dataset.{attribute}")


def pixel_position(tab, selector, row, col):
    """Where array pixel (row, col) of a CSS-scaled canvas is centred, in CSS pixels."""
    size = tab.eval_on_selector(selector, "c => [c.clientWidth / c.width, c.clientHeight / "
                                          "c.height]")
    return {"x": (col + 0.5) * size[0], "y": (row + 0.5) * size[1]}


def hover_pixel(tab, selector, row, col):
    tab.hover(selector, position=pixel_position(tab, selector, row, col))


def click_pixel(tab, selector, row, col):
    tab.click(selector, position=pixel_position(tab, selector, row, col))


def correlate(image, kernel):
    """'same' zero-padded correlation of (H, W) with an odd (k, k) kernel by cnnkit.functional."""
    return F.conv2d(cnnkit.tensor(image[None, None]), cnnkit.tensor(kernel[None, None]),
                    padding=kernel.shape[0] // 2).data[0, 0]


def test_kernel_playground_shows_cnnkits_numbers(page, shots):
    from cnnkit.serve.images import sample_image
    version = wait_version(page, "kernelVersion", "")
    page.fill('#k-grid input[data-r="0"][data-c="0"]', "3")          # edit a cell
    version = wait_version(page, "kernelVersion", version)
    page.click('#k-grid input[data-r="2"][data-c="2"]')
    page.focus("#k-slider")
    for _ in range(6):                                               # -1 + 6 · 0.25 = 0.5
        page.keyboard.press("ArrowRight")
    page.wait_for_function("document.getElementById('k-slider-value').textContent === '0.5'")
    version = wait_version(page, "kernelVersion", version)
    kernel = np.array([[3, 0, -1], [2, 0, -2], [1, 0, 0.5]])
    image = sample_image("shapes")[0].astype(np.float64)
    padded = np.pad(image, 1)
    expected = correlate(image, kernel)

    row, col = 12, 14
    hover_pixel(page, "#k-output", row, col)
    page.wait_for_selector(f'#k-breakdown[data-row="{row}"][data-col="{col}"]')
    window = padded[row:row + 3, col:col + 3]
    np.testing.assert_allclose(table(page, "#bd-window"), window, atol=5e-4)
    np.testing.assert_allclose(table(page, "#bd-kernel"), kernel, atol=5e-4)
    np.testing.assert_allclose(table(page, "#bd-products"), window * kernel, atol=5e-4)
    assert float(page.text_content("#bd-sum")) == pytest.approx(expected[row, col], abs=6e-5)
    assert float(page.text_content("#bd-value")) == pytest.approx(expected[row, col], abs=6e-5)
    bound = max(kernel[kernel > 0].sum(), -kernel[kernel < 0].sum())
    assert page.text_content("#k-scale-high") == f"+{bound:.2f}"
    np.testing.assert_allclose(canvas_rgb(page, "#k-output"), signed_colour(expected, bound),
                               atol=1)
    np.testing.assert_allclose(canvas_rgb(page, "#k-input")[..., 0],
                               np.round(255 * image), atol=1)
    shots(page, "kernel-playground.png")

    page.check("#k-convolve")                                        # convolution flips
    wait_version(page, "kernelVersion", version)
    row, col = 30, 20
    hover_pixel(page, "#k-output", row, col)
    page.wait_for_selector(f'#k-breakdown[data-row="{row}"][data-col="{col}"]')
    flipped = kernel[::-1, ::-1]
    np.testing.assert_allclose(table(page, "#bd-kernel"), flipped, atol=5e-4)
    assert float(page.text_content("#bd-sum")) == pytest.approx(
        correlate(image, flipped)[row, col], abs=6e-5)
    assert "flipped" in page.text_content("#bd-kernel-caption")


def test_kernel_playground_upload_and_preset(page):
    from PIL import Image
    import io
    version = wait_version(page, "kernelVersion", "")
    picture = np.zeros((30, 40), np.uint8)
    picture[10:20, 10:30] = 200
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    page.set_input_files("#k-upload", files=[{"name": "box.png", "mimeType": "image/png",
                                              "buffer": buffer.getvalue()}])
    version = wait_version(page, "kernelVersion", version)
    assert page.text_content("#k-input-shape") == "30×40"
    page.select_option("#k-preset", "box-blur")
    page.select_option("#k-size", "5")                              # 3×3 centred in 5×5
    wait_version(page, "kernelVersion", version)
    kernel = np.zeros((5, 5))
    kernel[1:4, 1:4] = 1 / 9
    hover_pixel(page, "#k-output", 10, 10)
    page.wait_for_selector('#k-breakdown[data-row="10"][data-col="10"]')
    np.testing.assert_allclose(table(page, "#bd-kernel"), kernel, atol=5e-4)
    assert float(page.text_content("#bd-sum")) == pytest.approx(
        correlate(picture / 255, kernel)[10, 10], abs=6e-5)


def test_shape_playground_formula(page, shots):
    from cnnkit import conv_output_shape
    page.click("#tab-shape")
    page.wait_for_function("document.body.dataset.shapeOutput === '5'")   # 7, k 3, s 1, p 0
    page.focus("#s-stride")
    page.keyboard.press("ArrowRight")                                     # stride 2
    page.focus("#s-padding")
    page.keyboard.press("ArrowRight")                                     # padding 1
    page.focus("#s-size")
    page.keyboard.press("ArrowRight")                                     # size 8
    expected = conv_output_shape((8, 8), 3, stride=2, padding=1)[0]
    page.wait_for_function(f"document.body.dataset.shapeOutput === '{expected}'")
    assert page.text_content("#s-formula").endswith(f"= {expected}")
    page.check("#s-same")
    expected = conv_output_shape((8, 8), 3, stride=2, padding="same")[0]
    page.wait_for_function(f"document.body.dataset.shapeOutput === '{expected}'")
    page.wait_for_timeout(1400)                                           # a few cells filled
    shots(page, "shape-playground.png", clip={"x": 0, "y": 0, "width": 1280, "height": 600})


def test_model_view_matches_the_trained_model(page, url, run_dir, shots):
    from cnnkit.serve.images import ImageStore
    from cnnkit.train import load_model
    page.click("#tab-model")
    wait_version(page, "modelVersion", "")
    assert "trained" in page.text_content("#m-title") and str(run_dir) in \
        page.text_content("#m-title")
    api = post(url, "/api/model/forward", {"image": {"source": "digits", "index": 0}})

    model, config = load_model(os.path.join(run_dir, "model.safetensors"))
    image, _ = ImageStore().get({"source": "digits", "index": 0})
    norm = config["normalize"]
    x = (image - np.reshape(norm["mean"], (-1, 1, 1))) / np.reshape(norm["std"], (-1, 1, 1))
    with cnnkit.no_grad():
        conv1 = model.features[0](cnnkit.tensor(x[None].astype(np.float32))).data[0]
        logits = model(cnnkit.tensor(x[None].astype(np.float32))).data[0]
    np.testing.assert_allclose(api["layers"][0]["maps"], conv1, atol=1e-4)
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(api["probabilities"], probabilities, atol=1e-4)
    shown = page.eval_on_selector_all("#m-probs .prob .value", "v => v.map(e => e.textContent)")
    assert shown == [f"{100 * p:.1f}%" for p in api["probabilities"]]

    for index, layer in enumerate(api["layers"]):
        if "maps" not in layer:
            continue
        for channel in (0, len(layer["maps"]) - 1):
            drawn = canvas_rgb(page, f'canvas[data-layer="{index}"][data-channel="{channel}"]')
            np.testing.assert_allclose(drawn, signed_colour(layer["maps"][channel],
                                                            layer["scale"]), atol=1)

    click_pixel(page, 'canvas[data-layer="4"][data-channel="5"]', 1, 2)  # ReLU after conv 2
    page.wait_for_selector('#m-unit[data-layer="4"][data-channel="5"]')
    unit = post(url, "/api/model/unit", {"layer": 4, "channel": 5, "row": 1, "col": 2})
    field = unit["receptive_field"]
    assert f"rows {field['rows'][0]}–{field['rows'][1]}" in page.text_content("#m-unit-text")
    weights = model.features[3].weight.data[5]                   # (6, 5, 5)
    shown = [table(page, f"#m-unit-kernel figure:nth-of-type({c + 1}) table")
             for c in range(weights.shape[0])]
    np.testing.assert_allclose(np.array(shown), weights, atol=5e-4)
    click_pixel(page, 'canvas[data-layer="1"][data-channel="2"]', 2, 3)  # ReLU after conv 1
    page.wait_for_selector('#m-unit[data-layer="1"][data-channel="2"]')
    field = post(url, "/api/model/unit", {"layer": 1, "channel": 2, "row": 2, "col": 3})[
        "receptive_field"]
    assert field["rows"] == [0, 4] and field["cols"] == [1, 5]       # 5×5, padding 2
    assert "rows 0–4, cols 1–5" in page.text_content("#m-unit-text")
    np.testing.assert_allclose(table(page, "#m-unit-kernel table"),
                               model.features[0].weight.data[2, 0], atol=5e-4)
    assert page.is_visible("#m-field-box")
    page.evaluate("window.scrollTo(0, 0)")
    shots(page, "your-model.png", full_page=True)


def test_every_request_goes_to_127_0_0_1(browser, url):
    tab = browser.new_page()
    requests = []
    tab.on("request", lambda request: requests.append(request.url))
    tab.goto(url)
    wait_version(tab, "kernelVersion", "")
    hover_pixel(tab, "#k-output", 5, 5)
    tab.wait_for_selector('#k-breakdown[data-row="5"][data-col="5"]')
    tab.click("#tab-shape")
    tab.wait_for_function("document.body.dataset.shapeOutput === '5'")
    tab.click("#tab-model")
    wait_version(tab, "modelVersion", "")
    click_pixel(tab, 'canvas[data-layer="0"][data-channel="0"]', 0, 0)
    tab.wait_for_selector('#m-unit[data-layer="0"]')
    tab.close()
    assert any("/api/model/unit" in r for r in requests) and len(requests) > 10
    assert [r for r in requests if not r.startswith(url)] == []
    assert url.startswith("http://127.0.0.1:")
