"""The command line, through ``cnnkit.cli.main([...])``: outputs, files, exit codes, errors."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main
from cnnkit.data import Digits

COMMANDS = ["train", "evaluate", "predict", "summary"]


def _one_line_error(capsys, command):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"cnnkit {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv", [["--help"]] + [[c, "--help"] for c in COMMANDS])
def test_help(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cnnkit")
    if argv == ["--help"]:
        assert all(c in out for c in COMMANDS)


def test_no_command_prints_usage(capsys):
    assert main([]) == 2
    assert "usage: cnnkit" in capsys.readouterr().err


def test_python_dash_m(tmp_path):
    for module in ("cnnkit", "cnnkit.cli"):
        result = subprocess.run([sys.executable, "-m", module, "summary", "--list"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["cnn1d", "lenet5", "resnet18", "resnet_small", "vgg_small"]


# -- summary -------------------------------------------------------------------------------------
def test_summary_lenet5(capsys):
    assert main(["summary", "lenet5", "--input-shape", "1,28,28"]) == 0
    out = capsys.readouterr().out
    assert "total params: 61,706" in out
    row = next(line for line in out.splitlines() if line.startswith("features.5"))
    assert "16×5×5" in row and "16×16" in row and "4×4" in row  # shape, receptive field, jump
    assert "fully connected layers with the same input/output sizes would need" in out


def test_summary_other_shapes(capsys):
    assert main(["summary", "cnn1d", "--input-shape", "2,64", "--num-classes", "3"]) == 0
    assert "output shape: 3" in capsys.readouterr().out
    assert main(["summary", "lenet5", "--input-shape", "1,8,8"]) == 0
    assert "total params: 21,386" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["summary", "resnet99"], "unknown model 'resnet99'"),
    (["summary", "lenet5", "--input-shape", "1,x,28"], "--input-shape"),
    (["summary", "lenet5", "--input-shape", "1,28"], "--input-shape"),
    (["summary", "vgg_small", "--input-shape", "1,2,2"], "cannot build vgg_small"),
    (["summary"], "MODEL"),
])
def test_summary_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in _one_line_error(capsys, "summary")


# -- train / evaluate / predict ------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One quick CLI training run shared by the tests below."""
    out = tmp_path_factory.mktemp("runs") / "lenet"
    code = main(["train", "--model", "lenet5", "--dataset", "digits", "--epochs", "1",
                 "--batch-size", "16", "--optimizer", "adam", "--scheduler", "none",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_train_prints_accuracy_and_writes_the_run(digits_run, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", "lenet5", "--dataset", "digits", "--epochs", "1",
            "--limit-train", "200", "--limit-test", "100", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    final_line = r"^test accuracy: \d+\.\d\d% \(1 epoch, \d+\.\d s\)$"
    assert re.search(final_line, stdout, re.MULTILINE), stdout
    assert "200 train / 100 test images of 1×8×8, 10 classes" in stdout
    assert {p.name for p in out.iterdir()} >= {"checkpoint.safetensors", "model.safetensors",
                                               "metrics.csv", "metrics.json"}
    # The same directory again without --resume is refused (nothing overwritten by accident).
    assert main(argv) == 1
    assert "--resume" in _one_line_error(capsys, "train")
    assert main(argv + ["--overwrite"]) == 0


def test_evaluate_reproduces_the_final_accuracy(digits_run, capsys):
    import json
    final = json.loads((digits_run / "metrics.json").read_text())[-1]["test_accuracy"]
    for name in ("model.safetensors", "checkpoint.safetensors"):
        assert main(["evaluate", str(digits_run / name)]) == 0
        out = capsys.readouterr().out
        assert f"test accuracy: {100 * final:.2f}%" in out
        assert "(359 images of digits)" in out
    assert final > 0.5  # one epoch of LeNet-5 on Digits learns something


def _digit_png(path, index=0, size=None, rgb=False):
    image = Digits(train=False).images[index, 0]
    pixels = np.round(image * 255).astype(np.uint8)
    picture = Image.fromarray(pixels, mode="L")
    if rgb:
        picture = picture.convert("RGB")
    if size is not None:
        picture = picture.resize((size, size))
    picture.save(path)
    return path


def test_predict_prints_top_k(digits_run, tmp_path, capsys):
    labels = Digits(train=False).labels
    paths = [str(_digit_png(tmp_path / f"d{i}.png", i, rgb=i == 1)) for i in range(3)]
    assert main(["predict", str(digits_run / "model.safetensors"), *paths, "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9
    assert lines[0] == paths[0]
    probabilities = [float(line.split()[-1].rstrip("%")) for line in lines if line.startswith("  ")]
    assert all(0 <= p <= 100 for p in probabilities)
    assert probabilities[0] >= probabilities[1]
    assert re.match(r"  1\. \d +\d+\.\d\d%$", lines[1]), lines[1]
    # Mostly right after one epoch: at least 2 of the 3 top-1 answers are the true digit.
    top1 = [int(lines[i].split()[1]) for i in (1, 4, 7)]
    assert sum(t == int(y) for t, y in zip(top1, labels[:3])) >= 2


def test_predict_wrong_size_is_an_error_unless_resize(digits_run, tmp_path, capsys):
    path = str(_digit_png(tmp_path / "big.png", size=16))
    model = str(digits_run / "model.safetensors")
    assert main(["predict", model, path]) == 1
    line = _one_line_error(capsys, "predict")
    assert "big.png" in line and "16×16" in line and "8×8" in line and "--resize" in line
    assert main(["predict", model, path, "--resize"]) == 0
    assert capsys.readouterr().out.startswith(path)


def test_predict_and_evaluate_errors(digits_run, tmp_path, capsys):
    model = str(digits_run / "model.safetensors")
    assert main(["predict", model, str(tmp_path / "missing.png")]) == 1
    assert "missing.png" in _one_line_error(capsys, "predict")
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    assert main(["predict", model, str(not_image)]) == 1
    assert "notes.png" in _one_line_error(capsys, "predict")

    data = (digits_run / "model.safetensors").read_bytes()
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(data[: len(data) - 50])
    for argv in (["evaluate", str(corrupt)], ["predict", str(corrupt), str(not_image)]):
        assert main(argv) == 1
        assert "corrupt.safetensors" in _one_line_error(capsys, argv[0])
    assert main(["evaluate", str(tmp_path / "nope.safetensors")]) == 1
    assert "nope.safetensors" in _one_line_error(capsys, "evaluate")


def test_train_errors(tmp_path, capsys, monkeypatch):
    import cnnkit.data.mnist
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    monkeypatch.setattr(cnnkit.data.mnist.MNIST, "system_dir", str(tmp_path / "no-mnist"))
    out = ["--out", str(tmp_path / "run"), "--no-progress"]
    assert main(["train", "--dataset", "mnist", *out]) == 1
    line = _one_line_error(capsys, "train")
    assert "'mnist' not found" in line and "no-mnist" in line

    cases = [
        (["train", "--model", "alexnet", "--dataset", "digits", *out], 2, "unknown model"),
        (["train", "--dataset", "imagenet-21k", *out], 2, "unknown data set 'imagenet-21k'"),
        (["train", "--model", "cnn1d", "--dataset", "digits", *out], 2, "1-D signals"),
        (["train", "--dataset", "digits", "--epochs", "0", *out], 2, "--epochs"),
        (["train", "--dataset", "digits", "--lr", "-1", *out], 2, "--lr"),
        (["train", "--dataset", "digits", "--resume", *out], 1, "nothing to resume"),
        (["train", "--dataset", "digits", "--batch-size", "8", "--limit-train", "1", *out], 2,
         "leaves no batch"),
    ]
    for argv, code, message in cases:
        assert main(argv) == code, argv
        assert message in _one_line_error(capsys, "train"), argv
    assert main(["train", "--optimizer", "rmsprop"]) == 2  # argparse's own error
    assert "invalid choice" in capsys.readouterr().err


def test_resume_from_the_command_line(tmp_path, capsys):
    out = str(tmp_path / "run")
    base = ["train", "--model", "lenet5", "--dataset", "digits", "--augment",
            "--limit-train", "160",
            "--limit-test", "64", "--batch-size", "32", "--scheduler", "none", "--out", out,
            "--no-progress"]
    assert main(base + ["--epochs", "1"]) == 0
    capsys.readouterr()
    # Saved settings are reused; a conflicting one is refused before any work.
    assert main(["train", "--out", out, "--resume", "--epochs", "2", "--lr", "0.5"]) == 2
    assert "--lr 0.5 differs" in _one_line_error(capsys, "train")
    assert main(["train", "--out", out, "--resume", "--epochs", "2", "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("resuming lenet5 on digits")
    assert "epoch 2/2" in stdout and "epoch 1/2" not in stdout
    assert "(2 epochs," in stdout
    import json
    assert [row["epoch"] for row in json.loads((tmp_path / "run" / "metrics.json").read_text())] \
        == [1, 2]


def test_image_folder_dataset(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    for name, value in (("dark", 40), ("light", 210)):
        (root / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(value + rng.normal(0, 20, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="RGB").save(root / name / f"{i}.png")
    out = str(tmp_path / "run")
    assert main(["train", "--model", "lenet5", "--dataset", str(root), "--epochs", "2",
                 "--batch-size", "4", "--seed", "3", "--augment", "--out", out,
                 "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "19 train / 5 test images of 3×12×12, 2 classes" in stdout
    import json
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())[-1]["test_accuracy"]
    assert main(["evaluate", os.path.join(out, "model.safetensors")]) == 0  # same 80/20 split
    assert f"test accuracy: {100 * final:.2f}%" in capsys.readouterr().out
    assert main(["predict", os.path.join(out, "model.safetensors"),
                 str(root / "light" / "0.png"), "--top-k", "1"]) == 0
    assert re.search(r"1\. (dark|light) ", capsys.readouterr().out)
