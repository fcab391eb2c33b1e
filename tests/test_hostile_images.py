"""Hostile image files: headers that claim far more pixels than the file holds (decompression
bombs) are refused before decoding, with one line naming the file and --max-pixels."""
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnkit import models
from cnnkit.data import DEFAULT_MAX_PIXELS, ImageFolder, load_image, open_image
from cnnkit.train import save_model


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png_header_only(path, width, height):
    """A valid-looking grey PNG of width × height whose pixel data is missing: tens of bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                     + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b""))
    return path


@pytest.fixture
def bomb(tmp_path):
    return png_header_only(tmp_path / "bomb.png", 20000, 20000)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(path, models.get("lenet5", input_size=[8, 8]),
               {"model": {"name": "lenet5", "kwargs": {"input_size": [8, 8]}},
                "input_shape": [1, 8, 8], "classes": [str(k) for k in range(10)]})
    return path


def test_the_bomb_is_tiny_and_claims_400_megapixels(bomb):
    assert bomb.stat().st_size < 100
    with open_image(bomb, max_pixels=20000 ** 2) as image:
        assert image.size == (20000, 20000)


def test_load_image_refuses_before_decoding(bomb):
    with pytest.raises(ValueError, match=r"bomb\.png is 20000×20000 = 400,000,000 pixels, more "
                                         r"than the limit of 16,777,216"):
        load_image(bomb)
    with pytest.raises(ValueError, match="max_pixels must be >= 1"):
        load_image(bomb, max_pixels=0)


def test_max_pixels_is_the_limit_exactly(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(np.zeros((64, 32), np.uint8)).save(path)
    assert load_image(path, max_pixels=64 * 32).shape == (3, 64, 32)
    with pytest.raises(ValueError, match="is 64×32 = 2,048 pixels, more than the limit of 2,047"):
        load_image(path, max_pixels=64 * 32 - 1)


def test_a_limit_above_pillows_own_opens_and_restores_pillows(tmp_path):
    # 14000² is past twice Pillow's default limit, where Image.open itself raises.
    path = png_header_only(tmp_path / "huge.png", 14000, 14000)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ValueError, match="more than the limit"):
        load_image(path)
    with open_image(path, max_pixels=14000 ** 2) as image:
        assert image.size == (14000, 14000)
    assert Image.MAX_IMAGE_PIXELS == pillow_limit
    with pytest.raises(ValueError, match="cannot read image"):  # the data is not there
        load_image(path, max_pixels=14000 ** 2)


def test_image_folder_checks_every_file(tmp_path, bomb):
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "data" / "a" / "0.png")
    bomb.rename(tmp_path / "data" / "b" / "0.png")
    folder = ImageFolder(tmp_path / "data")
    assert folder[0][0].shape == (1, 8, 8)
    with pytest.raises(ValueError, match="more than the limit"):
        folder[1]
    with pytest.raises(ValueError, match="more than the limit of 63"):
        ImageFolder(tmp_path / "data", max_pixels=63)


def _commands(model_file, bomb, out):
    return [["predict", model_file, bomb], ["filter", bomb, "-k", "blur", "-o", out],
            ["plot", "features", model_file, bomb, "-o", out],
            ["plot", "receptive-field", model_file, "--image", bomb, "-o", out]]


def test_every_command_that_reads_images_refuses_the_bomb(run_cli, model_file, bomb, tmp_path):
    out = tmp_path / "out.png"
    for argv in _commands(model_file, bomb, out):
        code, _, err = run_cli(*argv)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1, (argv, err)
        assert "bomb.png is 20000×20000" in lines[0] and "--max-pixels" in lines[0], argv
        assert not out.exists()


def test_max_pixels_option_raises_and_lowers_the_limit(run_cli, model_file, tmp_path):
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    out = tmp_path / "out.png"
    for argv in _commands(model_file, image, out):
        code, _, err = run_cli(*argv, "--max-pixels", "63")
        assert code == 1 and "more than the limit of 63" in err, (argv, err)
        code, _, err = run_cli(*argv, "--max-pixels", "64")
        assert code == 0, (argv, err)
    for bad in ("0", "-5", "many"):
        code, _, err = run_cli("filter", image, "-k", "blur", "-o", out, "--max-pixels", bad)
        assert code == 2 and "argument --max-pixels: expected an integer >= 1" in err


def test_default_limit_is_documented_value():
    assert DEFAULT_MAX_PIXELS == 4096 * 4096


def test_image_folder_data_sets_obey_max_pixels_in_train_and_evaluate(run_cli, tmp_path, bomb):
    root = tmp_path / "shapes"
    for split in ("train", "test"):
        for name in ("dark", "light"):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(np.full((8, 8), 40 if name == "dark" else 200, np.uint8)).save(
                    root / split / name / f"{i}.png")
    common = ["--model", "lenet5", "--dataset", root, "--epochs", "1", "--batch-size", "4",
              "--no-progress"]
    code, _, err = run_cli("train", *common, "--out", tmp_path / "a", "--max-pixels", "63")
    assert code == 1 and "more than the limit of 63" in err and len(err.splitlines()) == 1
    code, _, err = run_cli("train", *common, "--out", tmp_path / "b", "--max-pixels", "64")
    assert code == 0, err
    model = tmp_path / "b" / "model.safetensors"
    assert run_cli("evaluate", model)[0] == 0
    bomb.rename(root / "test" / "light" / "6.png")  # a hostile file joins the data set
    code, _, err = run_cli("evaluate", model)
    assert code == 1 and "6.png is 20000×20000" in err and len(err.splitlines()) == 1
    code, _, err = run_cli("plot", "confusion", model, "-o", tmp_path / "c.png",
                           "--max-pixels", "63")
    assert code == 1 and "more than the limit of 63" in err


@settings(max_examples=200, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["PNG", "JPEG", "GIF", "BMP"]))
def test_damaged_image_files_are_read_or_refused_with_value_error(tmp_path_factory, data, kind):
    import io
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buffer, format=kind)
    contents = bytearray(buffer.getvalue())
    for position, value in data.draw(st.lists(st.tuples(
            st.integers(0, len(contents) - 1), st.integers(0, 255)), max_size=4), "edits"):
        contents[position] = value
    contents = contents[:data.draw(st.integers(0, len(contents)), "length")]
    path = tmp_path_factory.mktemp("img") / f"damaged.{kind.lower()}"
    path.write_bytes(bytes(contents))
    try:
        image = load_image(path, max_pixels=1 << 16)
    except ValueError as err:
        assert str(path) in str(err)
    else:
        assert image.dtype == np.float32 and image.ndim == 3
