"""cnnkit.vision and ``cnnkit filter``: numbers against scipy.signal.correlate2d / convolve2d."""
import os
import re

import numpy as np
import pytest
import scipy.signal
from PIL import Image

from cnnkit.data import load_image
from cnnkit.vision import (
    KERNELS,
    filter_image,
    get_kernel,
    is_edge_kernel,
    map_response,
    parse_kernel,
    response_bound,
    save_png,
    side_by_side,
    to_grayscale,
    to_uint8,
)
from cnnkit.vision import filter as filter_module

MY_COMMANDS = ("filter", "explain", "plot")



def scipy_filter(image, kernel, mode="same", convolve=False):
    """The oracle: scipy per channel on (C, H, W)."""
    op = scipy.signal.convolve2d if convolve else scipy.signal.correlate2d
    return np.stack([op(channel, kernel, mode) for channel in image])


@pytest.fixture
def image(rng):
    return rng.random((3, 9, 11))


# -- kernels ---------------------------------------------------------------------------------------

def test_presets_are_the_setosa_kernels():
    assert set(KERNELS) == {"identity", "sharpen", "blur", "box-blur", "emboss", "outline",
                            "sobel-left", "sobel-right", "sobel-top", "sobel-bottom"}
    assert np.array_equal(KERNELS["blur"] * 16, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    assert np.allclose(KERNELS["box-blur"], np.full((3, 3), 1 / 9))
    assert np.array_equal(KERNELS["sharpen"], [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    assert np.array_equal(KERNELS["sobel-right"], -KERNELS["sobel-left"])
    assert np.array_equal(KERNELS["sobel-bottom"], -KERNELS["sobel-top"])
    assert np.array_equal(KERNELS["sobel-top"], KERNELS["sobel-left"].T)
    with pytest.raises(ValueError):
        KERNELS["blur"][0, 0] = 5  # read-only
    with pytest.raises(TypeError):
        KERNELS["mine"] = np.ones((3, 3))


def test_edge_kernels_are_the_zero_sum_ones():
    edges = {name for name in KERNELS if is_edge_kernel(name)}
    assert edges == {"outline", "sobel-left", "sobel-right", "sobel-top", "sobel-bottom"}
    assert response_bound("sobel-left") == 4 and response_bound("outline") == 8


def test_parse_kernel_rows_fractions_and_any_size():
    assert np.array_equal(parse_kernel("0,-1,0;-1,5,-1;0,-1,0"), KERNELS["sharpen"])
    assert np.allclose(parse_kernel(" 1/16, 1/8 ; 1/8, 1/4 "), [[1 / 16, 1 / 8], [1 / 8, 1 / 4]])
    assert parse_kernel("1,2,3,4").shape == (1, 4)
    assert parse_kernel("1;2;3;").shape == (3, 1)
    assert np.array_equal(get_kernel("Sobel_Left"), KERNELS["sobel-left"])


@pytest.mark.parametrize("text, message", [
    ("1,0;0", "different lengths [2, 1]"),
    ("1,a;0,1", "entry 'a' (row 1, column 2)"),
    ("1,2;;3,4", "empty row"),
    ("", "empty row"),
    ("1/0,1", "not a number"),
    ("nan,1", "not a number"),
])
def test_parse_kernel_errors_name_the_problem(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_kernel(text)


def test_get_kernel_rejects_unknown_names_and_bad_arrays():
    with pytest.raises(ValueError, match="unknown kernel name 'blurry'"):
        get_kernel("blurry")
    with pytest.raises(ValueError, match="2-D"):
        get_kernel(np.ones(3))
    with pytest.raises(TypeError):
        get_kernel(np.array([["a"]]))


# -- filter_image against scipy --------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("convolve", [False, True])
def test_presets_match_scipy(image, name, convolve):
    out = filter_image(image, name, convolve=convolve, output_range=None, grayscale=False)
    np.testing.assert_allclose(out, scipy_filter(image, KERNELS[name], "same", convolve),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 4), (3, 2), (1, 3), (4, 4), (5, 3)])
@pytest.mark.parametrize("mode", ["same", "valid", "full"])
@pytest.mark.parametrize("convolve", [False, True])
def test_any_kernel_size_and_mode_matches_scipy(image, rng, shape, mode, convolve):
    kernel = rng.standard_normal(shape)
    out = filter_image(image, kernel, mode=mode, convolve=convolve, output_range=None,
                       grayscale=False)
    np.testing.assert_allclose(out, scipy_filter(image, kernel, mode, convolve), rtol=1e-12,
                               atol=1e-12)


def test_grey_2d_image_keeps_its_layout(image):
    out = filter_image(image[0], "sobel-top", output_range=None)
    assert out.shape == image.shape[1:]
    np.testing.assert_allclose(out, scipy.signal.correlate2d(image[0], KERNELS["sobel-top"],
                                                             "same"), atol=1e-12)


def test_goes_through_cnnkit_conv2d(image, monkeypatch):
    calls = []
    original = filter_module.F.conv2d

    def spy(*args, **kwargs):
        calls.append(kwargs.get("groups"))
        return original(*args, **kwargs)
    monkeypatch.setattr(filter_module.F, "conv2d", spy)
    filter_image(image, "blur")
    assert calls == [3]  # one depthwise call for all three channels


def test_correlation_and_convolution_negatives_for_sobel_equal_for_blur(image):
    for name in ("sobel-left", "sobel-top"):
        corr = filter_image(image, name, output_range=None)
        conv = filter_image(image, name, convolve=True, output_range=None)
        np.testing.assert_allclose(conv, -corr, atol=1e-12)
        assert np.abs(corr).max() > 0.1
        # Displayed with the signed range, one picture is the other's negative: 1 − v.
        np.testing.assert_allclose(filter_image(image, name), 1 - filter_image(
            image, name, convolve=True), atol=1e-12)
    np.testing.assert_allclose(filter_image(image, "blur", convolve=True),
                               filter_image(image, "blur"), atol=1e-12)
    emboss = KERNELS["emboss"]
    np.testing.assert_allclose(filter_image(image, emboss, convolve=True, output_range=None),
                               filter_image(image, np.rot90(emboss, 2), output_range=None),
                               atol=1e-12)


def test_edge_kernels_work_on_luminance_and_map_signed(image):
    out = filter_image(image, "sobel-left")
    assert out.shape == (1,) + image.shape[1:]
    luma = 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]
    raw = scipy.signal.correlate2d(luma, KERNELS["sobel-left"], "same")
    np.testing.assert_allclose(out[0], 0.5 + raw / 8, atol=1e-12)
    np.testing.assert_allclose(to_grayscale(image)[0], luma, atol=1e-12)
    colour = filter_image(image, "sobel-left", grayscale=False, output_range="abs")
    np.testing.assert_allclose(colour, np.abs(scipy_filter(image, KERNELS["sobel-left"])) / 4,
                               atol=1e-12)


def test_output_ranges(image):
    sharp = filter_image(image, "sharpen")
    raw = scipy_filter(image, KERNELS["sharpen"])
    assert raw.min() < 0 and raw.max() > 1  # so clipping is exercised
    np.testing.assert_allclose(sharp, np.clip(raw, 0, 1), atol=1e-12)
    assert np.array_equal(filter_image(image, "identity"), image)
    for name in KERNELS:
        for rng_name in ("auto", "clip", "signed", "abs"):
            out = filter_image(image, name, output_range=rng_name)
            assert out.min() >= 0 and out.max() <= 1
    # The bound B is tight: the extreme image for sobel-left reaches exactly 0 and 1.
    extreme = (KERNELS["sobel-left"] > 0).astype(float)
    assert map_response(np.array([4.0, -4.0, 0.0]), "sobel-left", "signed").tolist() == [1, 0, .5]
    assert filter_image(extreme, "sobel-left", mode="valid")[0, 0] == 1.0


def test_flat_image_gives_zero_edges_away_from_zero_padding():
    flat = np.full((3, 6, 7), 0.7)
    zeros = filter_image(flat, "outline", output_range=None)
    assert np.abs(zeros[:, 1:-1, 1:-1]).max() < 1e-12 and np.abs(zeros).max() > 0.5
    replicate = filter_image(flat, "outline", output_range=None, padding_mode="replicate")
    assert np.abs(replicate).max() < 1e-12


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "wide"}, "mode"),
    ({"output_range": "stretchy"}, "output_range"),
    ({"grayscale": "yes"}, "grayscale"),
    ({"padding_mode": "mirror"}, "padding_mode"),
])
def test_filter_image_rejects_bad_arguments(image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        filter_image(image, "blur", **kwargs)


def test_filter_image_rejects_bad_images():
    with pytest.raises(ValueError, match=r"\(H, W\) or \(C, H, W\)"):
        filter_image(np.ones((1, 2, 3, 4)), "blur")
    with pytest.raises(TypeError):
        filter_image(np.array([["a"]]), "blur")
    with pytest.raises(ValueError, match="does not fit"):
        filter_image(np.ones((2, 2)), "blur", mode="valid")


# -- PNG output ------------------------------------------------------------------------------------

def test_save_png_round_trip_and_atomic(tmp_path, image):
    path = tmp_path / "out.png"
    save_png(path, image)
    save_png(path, image[:1])  # overwriting works
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary file left behind
    with Image.open(path) as img:
        assert img.mode == "L" and img.size == (11, 9)
        assert np.array_equal(np.asarray(img), to_uint8(image[0]))
    assert to_uint8(np.array([[-1.0, 0.5, 2.0]])).tolist() == [[0, 128, 255]]


def test_side_by_side_places_both_images():
    a, b = np.zeros((3, 4, 5)), np.ones((1, 2, 3))
    canvas = side_by_side(a, b, gap=2)
    assert canvas.shape == (3, 4, 10)
    assert np.array_equal(canvas[:, :, :5], a)
    assert np.array_equal(canvas[:, 1:3, 7:], np.ones((3, 2, 3)))  # grey repeated, centred


# -- the command -----------------------------------------------------------------------------------

@pytest.fixture
def png(tmp_path, rng):
    pixels = (rng.random((10, 13, 3)) * 255).astype(np.uint8)
    path = tmp_path / "in.png"
    Image.fromarray(pixels).save(path)
    return path


def read_png(path):
    with Image.open(path) as img:
        return np.asarray(img).astype(int)


@pytest.mark.parametrize("kernel, options", [
    ("blur", []), ("sharpen", ["--convolve"]), ("sobel-left", []), ("sobel-left", ["--convolve"]),
    ("outline", ["--range", "abs"]), ("1,2;3,-4;0,1", ["--mode", "valid"]),
    ("emboss", ["--mode", "full", "--convolve"]),
])
def test_filter_command_matches_scipy(run_cli, png, tmp_path, kernel, options):
    out = tmp_path / "out.png"
    code, stdout, stderr = run_cli("filter", png, "--kernel", kernel, "-o", out, *options)
    assert code == 0, stderr
    assert "wrote" in stdout
    image = load_image(png).astype(np.float64)
    k = get_kernel(kernel)
    mode = options[options.index("--mode") + 1] if "--mode" in options else "same"
    edge = is_edge_kernel(k)
    source = to_grayscale(image) if edge else image
    raw = scipy_filter(source, k, mode, "--convolve" in options)
    chosen = options[options.index("--range") + 1] if "--range" in options else \
        ("stretch" if edge else "clip")  # the command's auto: a percentile stretch for edges
    expected = to_uint8(map_response(raw, k, chosen))
    got = read_png(out)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1  # 8-bit rounding of float32 vs float64 inputs


@pytest.mark.parametrize("args, code, message", [
    (["--kernel", "1,0;0"], 2, "different lengths"),
    (["--kernel", "1,x;0,1"], 2, "not a number"),
    (["--kernel", "smooth"], 2, "unknown kernel name"),
])
def test_filter_command_bad_kernel_is_one_line(run_cli, png, tmp_path, args, code, message):
    result, _, stderr = run_cli("filter", png, "-o", tmp_path / "x.png", *args)
    assert result == code
    assert message in stderr and stderr.startswith("cnnkit filter: error:")
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not (tmp_path / "x.png").exists()


def test_filter_command_unreadable_image_is_one_line(run_cli, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    for path in (junk, tmp_path / "missing.png"):
        code, _, stderr = run_cli("filter", path, "-k", "blur", "-o", tmp_path / "x.png")
        assert code == 1 and len(stderr.strip().splitlines()) == 1
        assert "Traceback" not in stderr and str(path) in stderr


def test_filter_command_help_and_list(run_cli):
    code, stdout, _ = run_cli("filter", "--help")
    assert code == 0 and "--convolve" in stdout and "sobel-left" in stdout
    code, stdout, _ = run_cli("filter", "--list-kernels")
    assert code == 0 and "box-blur:" in stdout


def test_library_code_uses_no_oracle():
    """scipy and torch are test oracles only: none of these modules may import them."""
    root = os.path.join(os.path.dirname(__file__), os.pardir, "cnnkit")
    files = [os.path.join(root, "cli", f"{name}.py") for name in MY_COMMANDS]
    for package in ("vision", "explain", "plots"):
        folder = os.path.join(root, package)
        files += [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".py")]
    for path in files:
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        assert not re.search(r"^\s*(import|from)\s+(scipy|torch)\b", source, re.MULTILINE), path
