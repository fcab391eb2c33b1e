"""Pictures that explain themselves: labels, keys, scales and contrast, checked on the figures'
texts and on image statistics (not pixel-exact images)."""
import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A soft-edged 60×48 (H×W) colour photo with a little noise, as JPEG."""
    from PIL import ImageDraw, ImageFilter
    image = Image.new("RGB", (48, 60), (120, 140, 160))
    draw = ImageDraw.Draw(image)
    draw.ellipse((6, 8, 30, 32), fill=(200, 170, 120))
    draw.rectangle((28, 30, 46, 56), fill=(70, 90, 60))
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    noisy = np.asarray(image).astype(float) + np.random.default_rng(0).normal(0, 2, (60, 48, 3))
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=95)
    return path


def pixels(path):
    with Image.open(path) as image:
        return image.format, np.asarray(image.convert("L")).astype(float)


def test_edge_filter_is_stretched_by_default_and_signed_on_request(photo, tmp_path, capsys):
    assert main(["filter", str(photo), "-k", "outline", "-o", str(tmp_path / "a.png")]) == 0
    assert main(["filter", str(photo), "-k", "outline", "--range", "signed", "-o",
                 str(tmp_path / "b.png")]) == 0
    out = capsys.readouterr().out
    assert "the 99th percentile of |response|" in out and "largest possible is ±8" in out
    _, stretched = pixels(tmp_path / "a.png")
    _, signed = pixels(tmp_path / "b.png")
    # The strongest 1 % of responses reach black or white; with the exact bound (±8) they
    # stay within a few grey levels of mid-grey, the nearly flat picture this replaces.
    assert np.percentile(np.abs(stretched - 128), 99.5) > 100
    assert np.percentile(np.abs(signed - 128), 99.5) < 30
    assert stretched.std() > 4 * signed.std()
    assert abs(np.median(stretched) - 128) < 10  # zero response stays mid-grey


def test_output_extension_picks_the_format(photo, tmp_path, capsys):
    assert main(["filter", str(photo), "-k", "blur", "-o", str(tmp_path / "b.jpg")]) == 0
    assert pixels(tmp_path / "b.jpg")[0] == "JPEG"
    assert main(["filter", str(photo), "-k", "blur", "-o", str(tmp_path / "b.gif")]) == 2
    assert "unknown image extension" in capsys.readouterr().err


def test_side_by_side_and_compare_are_labelled(photo, monkeypatch, tmp_path):
    from cnnkit.vision import figures
    texts = []
    save = figures.save_figure_as

    def recording_save(figure, path, dpi=100):
        texts.append([t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text"))])
        save(figure, path, dpi)
    monkeypatch.setattr(figures, "save_figure_as", recording_save)
    assert main(["filter", str(photo), "-k", "sobel-left", "--side-by-side", "-o",
                 str(tmp_path / "s.png")]) == 0
    assert main(["filter", str(photo), "-k", "sobel-left", "--compare", "-o",
                 str(tmp_path / "c.jpg")]) == 0
    side, compare = (" | ".join(t) for t in texts)
    for words in (side, compare):
        assert "kernel sobel-left" in words and "mid-grey = 0" in words and "-2" in words
    assert "input" in compare and "correlation (kernel as printed)" in compare
    assert "convolution (kernel flipped)" in compare
    assert pixels(tmp_path / "c.jpg")[0] == "JPEG"


def test_explain_pixel_prints_the_sum_of_the_real_image(photo, tmp_path, capsys):
    out = tmp_path / "e.png"
    assert main(["filter", str(photo), "-k", "sobel-top", "--convolve", "--explain", "20,7",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "output pixel (row 20, column 7), convolution" in printed
    assert "products window × kernel" in printed and "✓ the filtered image holds" in printed
    assert pixels(tmp_path / "e_window.png")[1].std() > 0
    assert main(["filter", str(photo), "-k", "blur", "--explain", "60,0", "-o", str(out)]) == 2
    assert "outside the 60×48 image" in capsys.readouterr().err


@pytest.fixture
def figure_texts(monkeypatch):
    """Every text of each figure that ``cnnkit.plots`` saves, as one string per figure."""
    from cnnkit.plots import _figure
    saved = []
    save = _figure.save_figure

    def recording_save(figure, path, dpi=100):
        saved.append(" | ".join(t.get_text() for t in
                                figure.findobj(lambda a: hasattr(a, "get_text"))))
        save(figure, path, dpi)
    monkeypatch.setattr(_figure, "save_figure", recording_save)
    return saved


def test_plot_filters_and_features_are_labelled(photo, tmp_path, figure_texts, capsys):
    assert main(["plot", "filters", "vgg_small", "--max-filters", "5", "-o",
                 str(tmp_path / "f.png")]) == 0
    assert main(["plot", "features", "lenet5", str(photo), "--resize", "--input-shape",
                 "1,16,16", "--max-channels", "4", "-o", str(tmp_path / "m.png")]) == 0
    filters, features = figure_texts
    assert "untrained" in filters and "5 of 32 shown" in filters
    assert "weight (red +, blue −)" in filters and "filter 4" in filters  # the colour bar
    assert "untrained" in features and "predicted class " in features
    assert "features.0 (Conv2d) 6×16×16: 4 of 6 channels shown" in features
    assert "ch 3" in features and "ch 4" not in features
    assert "predicted class" in capsys.readouterr().out


def test_curves_of_one_epoch_are_labelled_bars(tmp_path, figure_texts):
    from cnnkit.train.metrics import MetricsLog
    MetricsLog(tmp_path / "m").append({"epoch": 1, "train_loss": 1.25, "test_accuracy": 0.5})
    assert main(["plot", "curves", str(tmp_path / "m"), "-o", str(tmp_path / "c.png")]) == 0
    (texts,) = figure_texts
    assert "one epoch" in texts and "1.25" in texts and "50" in texts


def test_explain_conv_on_real_pixels_and_its_gif(photo, tmp_path, capsys):
    from cnnkit.data import load_image
    gif = tmp_path / "slide.gif"
    assert main(["explain", "conv", "--image", str(photo), "--kernel", "outline", "--at",
                 "10,10", "--input-size", "3", "--positions", "all", "--gif", str(gif)]) == 0
    out = capsys.readouterr().out
    assert "stride 1" in out  # with --image; the random example keeps the figure's 2
    assert "the 3×3 crop of" in out and "rows 9..11, columns 9..11" in out
    assert out.count("✓") == 9 and "✗" not in out
    crop = np.round(load_image(photo, grayscale=True)[0, 9:12, 9:12] * 255).astype(int)
    assert " ".join(str(v).rjust(3) for v in crop[0]) in out  # the photo's own pixels
    assert "wrote " + str(gif) + ": 9 frames" in out
    with Image.open(gif) as animation:
        assert animation.format == "GIF" and animation.n_frames == 9
    assert main(["explain", "conv", "--kernel", "blur"]) == 2
    assert "need --image" in capsys.readouterr().err


@pytest.fixture
def digits_run(tmp_path):
    """A run directory holding an (untrained) 8×8 lenet5 saved for the digits data set."""
    from cnnkit import models
    from cnnkit.train import save_model
    run = tmp_path / "run"
    run.mkdir()
    save_model(run / "model.safetensors", models.get("lenet5", input_size=8),
               {"model": {"name": "lenet5", "kwargs": {"input_size": [8, 8]}},
                "input_shape": [1, 8, 8], "dataset": "digits",
                "normalize": {"mean": [0.3], "std": [0.4]},
                "classes": [f"digit {d}" for d in range(10)]})
    return run


def test_plot_features_of_a_test_image(digits_run, tmp_path, figure_texts):
    assert main(["plot", "features", str(digits_run), "--test-index", "2", "-o",
                 str(tmp_path / "f.png")]) == 0
    (texts,) = figure_texts
    assert "digits test image 2 (true class: digit" in texts and ": predicted digit" in texts
    assert main(["plot", "features", str(digits_run), "-o", str(tmp_path / "f.png")]) == 2


def test_report_is_one_offline_html_page(digits_run, tmp_path, capsys):
    import base64
    import io
    import re
    run = digits_run
    assert main(["report", str(run), "--test-index", "2"]) == 0
    assert f"wrote {run / 'report.html'}" in capsys.readouterr().out
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "digits test image 2 (true class: digit" in page
    assert "http:" not in page and "https:" not in page  # nothing to fetch
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) > 10 and all(s.startswith("data:image/png;base64,") for s in sources)
    with Image.open(io.BytesIO(base64.b64decode(sources[0].split(",", 1)[1]))) as first:
        assert first.format == "PNG"
    for text in ("features.0</span> (Conv2d) → 6×8×8", "6 of 6 channels shown",
                 "classifier.4</span> (Linear) → 10", "Class probabilities"):
        assert text in page
    assert page.count('<tr class="') == 10
    digit = tmp_path / "digit.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(digit)
    assert main(["report", str(run), str(digit), "-o", str(tmp_path / "r.html")]) == 0
    assert main(["report", str(run), str(digit), "--test-index", "1"]) == 2
    assert "give one IMAGE or one --test-index N" in capsys.readouterr().err


def test_curves_draw_the_loss_of_every_batch(tmp_path, figure_texts):
    from cnnkit.train.batch_losses import BATCH_LOSS_FILE
    from cnnkit.train.metrics import MetricsLog
    MetricsLog(tmp_path / "m").append({"epoch": 1, "train_loss": 1.25, "test_accuracy": 0.5})
    (tmp_path / "m" / BATCH_LOSS_FILE).write_text(
        "epoch,batch,loss\n" + "".join(f"1,{b},{2 - b / 10}\n" for b in range(8)))
    assert main(["plot", "curves", str(tmp_path / "m"), "-o", str(tmp_path / "c.png")]) == 0
    (texts,) = figure_texts
    assert "train loss per batch" in texts and "epoch (batches inside)" in texts
    (tmp_path / "m" / BATCH_LOSS_FILE).write_text("epoch,batch,loss\n1,x,2\n")
    assert main(["plot", "curves", str(tmp_path / "m"), "-o", str(tmp_path / "c.png")]) == 1
