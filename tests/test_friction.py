"""What a new user tripped over, each fixed and pinned: run directories, --test-index,
per-class accuracy, extending a resumed run, messages (H×W sizes, plurals, --data-root), pipes,
lazy subpackages and ``summary resnet18``."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import main


@pytest.fixture
def run_dir(tmp_path):
    """A run directory holding an untrained 8×8 lenet5 for the digits data set."""
    from cnnkit import models
    from cnnkit.train import save_model
    model = models.get("lenet5", input_size=8)
    out = tmp_path / "run"
    out.mkdir()
    save_model(out / "model.safetensors", model,
               {"model": {"name": "lenet5", "kwargs": {"input_size": [8, 8]}},
                "input_shape": [1, 8, 8], "dataset": "digits",
                "normalize": {"mean": [0.3], "std": [0.4]},
                "classes": [str(d) for d in range(10)]})
    return out


def test_subpackages_reachable_after_a_bare_import():
    code = ("import cnnkit, sys; assert 'cnnkit.plots' not in sys.modules; "
            "print(cnnkit.vision.filter_image.__name__, cnnkit.plots.plot_filters.__name__, "
            "cnnkit.summary.summarize.__name__, cnnkit.models.names()[0], hasattr(cnnkit, 'nope'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["filter_image", "plot_filters", "summarize", "cnn1d", "False"]


def test_summary_resnet18_reads_the_downsample_branch(capsys):
    assert main(["summary", "resnet18"]) == 0
    assert main(["summary", "resnet18", "--input-shape", "3,224,224", "--num-classes",
                 "1000"]) == 0
    out = capsys.readouterr().out
    assert "total params: 11,689,512" in out  # torchvision's resnet18
    assert "layer2.0               ResNetBasicBlock (sum)  128×28×28" in out


def test_summary_into_a_closed_pipe_is_quiet():
    process = subprocess.Popen([sys.executable, "-m", "cnnkit", "summary", "resnet18"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # as `| head` does once it has its lines
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert err == ""


def test_predict_and_evaluate_take_a_run_directory(run_dir, capsys):
    assert main(["predict", str(run_dir), "--test-index", "0", "--test-index", "7"]) == 0
    out = capsys.readouterr().out
    assert "digits test image 0 (true class: " in out and "digits test image 7" in out
    assert main(["evaluate", str(run_dir), "--limit-test", "50"]) == 0
    out = capsys.readouterr().out
    assert "(50 images of digits)" in out
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [row[0] for row in rows] == [str(d) for d in range(10)]
    assert sum(int(row[-1].split("/")[1]) for row in rows) == 50  # correct/total per class


def test_test_index_out_of_range_and_nothing_to_predict(run_dir, capsys):
    assert main(["predict", str(run_dir), "--test-index", "100000"]) == 2
    assert "the digits test split has 359 images" in capsys.readouterr().err
    assert main(["predict", str(run_dir)]) == 2
    assert "--test-index" in capsys.readouterr().err
    assert main(["evaluate", str(run_dir.parent)]) == 1
    assert "run directory" in capsys.readouterr().err


def test_sizes_are_height_by_width(run_dir, tmp_path, capsys):
    photo = tmp_path / "tall.png"
    Image.fromarray(np.zeros((12, 9), np.uint8)).save(photo)  # 12 rows, 9 columns
    assert main(["predict", str(run_dir), str(photo)]) == 1
    assert "is 12×9 pixels (H×W) but the model expects 8×8" in capsys.readouterr().err
    assert main(["filter", str(photo), "-k", "blur", "-o", str(tmp_path / "f.png")]) == 0
    assert "12×9" in capsys.readouterr().out


def test_one_is_singular(run_dir, tmp_path, capsys):
    from cnnkit.train.metrics import MetricsLog
    MetricsLog(tmp_path / "m").append({"epoch": 1, "train_loss": 1.0, "test_accuracy": 0.5})
    assert main(["plot", "curves", str(tmp_path / "m"), "-o", str(tmp_path / "c.png")]) == 0
    assert main(["plot", "filters", str(run_dir), "--max-filters", "1", "-o",
                 str(tmp_path / "k.png")]) == 0
    out = capsys.readouterr().out
    assert ": 1 epoch\n" in out and "1 first-layer filter of" in out


def test_missing_data_set_names_the_option(tmp_path, monkeypatch):
    from cnnkit.data import MNIST
    monkeypatch.setattr(MNIST, "system_dir", str(tmp_path / "nowhere"))
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    from cnnkit.cli.common import CommandError, load_datasets
    with pytest.raises(CommandError, match="pass --data-root ") as info:
        load_datasets("mnist")
    assert "root=" not in str(info.value)


def test_resume_extends_a_one_cycle_run(tmp_path, capsys):
    out = tmp_path / "oc"
    base = ["train", "--model", "lenet5", "--dataset", "digits", "--batch-size", "32",
            "--limit-train", "64", "--limit-test", "32", "--out", str(out), "--no-progress"]
    assert main(base + ["--epochs", "1"]) == 0
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "onecycle schedule lasts 1 epoch; epochs after it keep its final learning rate" \
        in printed
    with open(out / "metrics.json") as f:
        data = json.load(f)
    rows = data["rows"] if isinstance(data, dict) else data
    assert [row["epoch"] for row in rows] == [1, 2]
    final_lr = 3e-3 / 25 / 1e4  # OneCycleLR's min lr: max_lr / div_factor / final_div_factor
    assert rows[1]["lr"] == pytest.approx(final_lr, rel=1e-6)
    assert main(["train", "--out", str(out), "--resume", "--epochs", "1", "--no-progress"]) == 2
    assert "already done 2 epochs" in capsys.readouterr().err
    assert os.path.isfile(out / "model.safetensors")
    from cnnkit.train.batch_losses import read_batch_losses
    rows = read_batch_losses(out)  # 64 images in batches of 32: 2 per epoch, epoch 1 kept
    assert rows[:, :2].tolist() == [[1, 0], [1, 1], [2, 0], [2, 1]]
    assert np.all(np.isfinite(rows[:, 2]))
