"""Training loop: metrics, evaluation, a real learning check, and bit-exact resume."""
import csv
import json
import time

import numpy as np
import pytest

import cnnkit
from cnnkit import models, optim
from cnnkit.data import DataLoader, Digits, Subset, TensorDataset
from cnnkit.data import transforms as T
from cnnkit.train import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    MetricsLog,
    RunningMean,
    accuracy,
    confusion_matrix,
    correct_count,
    evaluate,
    fit,
    load_checkpoint,
    load_model,
)


# -- metrics -------------------------------------------------------------------------------------
def test_accuracy_and_top_k():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = np.array([1, 1, 0, 2])
    assert correct_count(scores, labels) == 1
    assert accuracy(scores, labels) == 0.25
    assert accuracy(cnnkit.tensor(scores), labels, k=2) == 0.5   # rows 0 and 1
    assert accuracy(scores, labels, k=3) == 1.0
    with pytest.raises(ValueError, match="labels"):
        accuracy(scores, labels[:3])


def test_confusion_matrix_and_running_mean():
    m = confusion_matrix([0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0], 3)
    np.testing.assert_array_equal(m, [[1, 0, 1], [0, 1, 0], [0, 1, 2]])  # m[true, predicted]
    mean = RunningMean()
    mean.update(1.0, n=3)
    mean.update(3.0, n=1)
    assert mean.mean == 1.5


def test_metrics_log_writes_csv_and_json(tmp_path):
    log = MetricsLog(tmp_path, rows=[{"epoch": 1, "loss": 0.5}])
    log.append({"epoch": 2, "loss": 0.25, "extra": "x"})
    assert json.loads((tmp_path / "metrics.json").read_text()) == log.rows
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[1]["extra"] == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "metrics.json"]


# -- evaluate ------------------------------------------------------------------------------------
def test_evaluate_matches_a_direct_computation(rng):
    cnnkit.manual_seed(0)
    model = models.get("vgg_small", input_size=8, stages=[[4]], hidden=8)
    images = rng.random((37, 1, 8, 8), dtype=np.float32)
    labels = rng.integers(0, 10, 37)
    result = evaluate(model.train(), DataLoader(TensorDataset(images, labels), batch_size=10))
    assert model.training  # mode restored
    model.eval()
    scores = model(cnnkit.tensor(images))
    expected_loss = cnnkit.functional.cross_entropy(scores, labels).item()
    assert result["count"] == 37
    assert result["accuracy"] == accuracy(scores, labels)
    np.testing.assert_allclose(result["loss"], expected_loss, rtol=1e-5)


# -- learning: a real, quick training run --------------------------------------------------------
def test_lenet5_learns_digits(tmp_path):
    start = time.perf_counter()
    cnnkit.manual_seed(0)
    train_set, test_set = Digits(train=True), Digits(train=False)
    norm = T.Normalize(float(train_set.images.mean()), float(train_set.images.std()))
    model = models.get("lenet5", input_size=8)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    config = {"model": {"name": "lenet5", "kwargs": {"input_size": 8}}, "input_shape": [1, 8, 8]}
    history = fit(model, DataLoader(train_set, 16, shuffle=True, seed=0, transform=norm),
                  DataLoader(test_set, 500, transform=norm), optimizer, epochs=3,
                  out_dir=tmp_path, config=config, progress=False, log=None)
    assert time.perf_counter() - start < 60
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["test_accuracy"] >= 0.90
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {p.name for p in tmp_path.iterdir()} == {CHECKPOINT_FILE, MODEL_FILE, "metrics.csv",
                                                    "metrics.json"}
    # The model file alone reproduces the final test accuracy.
    rebuilt, _ = load_model(tmp_path / MODEL_FILE)
    again = evaluate(rebuilt, DataLoader(test_set, 500, transform=norm))
    assert again["accuracy"] == history[-1]["test_accuracy"]


# -- resume: bit-identical -----------------------------------------------------------------------
CONFIG = {"model": {"name": "vgg_small",
                    "kwargs": {"input_size": 8, "stages": [[4], [8]], "hidden": 16}}}


def _run(out_dir, init_seed=0, epochs=3, schedule=True, callback=None, resume=False):
    """A tiny run on 192 Digits images with everything random: shuffling, crops, dropout."""
    cnnkit.manual_seed(init_seed)
    model = models.get("vgg_small", **CONFIG["model"]["kwargs"])
    train_set, test_set = Digits(train=True), Digits(train=False)
    train_loader = DataLoader(Subset(train_set, np.arange(192)), batch_size=32, shuffle=True,
                              seed=7, transform=T.RandomCrop(8, padding=1))
    test_loader = DataLoader(Subset(test_set, np.arange(64)), batch_size=64)
    optimizer = optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01,
                                              total_steps=3 * len(train_loader)) if schedule \
        else None
    history = fit(model, train_loader, test_loader, optimizer, scheduler, epochs=epochs,
                  out_dir=out_dir, config=CONFIG, resume=resume, progress=False, log=None,
                  callback=callback)
    return model, optimizer, history


def _assert_same_run(a, b):
    model_a, optimizer_a, history_a = a
    model_b, optimizer_b, history_b = b
    for (key, value), (key_b, value_b) in zip(model_a.state_dict().items(),
                                              model_b.state_dict().items()):
        assert key == key_b
        assert value.dtype == value_b.dtype
        assert np.array_equal(value, value_b), f"{key} differs after resume"
    state_a, state_b = optimizer_a.state_dict(), optimizer_b.state_dict()
    assert state_a["param_groups"] == state_b["param_groups"]
    for index in state_a["state"]:
        for name, value in state_a["state"][index].items():
            assert np.array_equal(value, state_b["state"][index][name])
    timing = {"images_per_second", "train_seconds", "epoch_seconds", "elapsed_seconds"}
    strip = [{k: v for k, v in row.items() if k not in timing} for row in history_a]
    assert strip == [{k: v for k, v in row.items() if k not in timing} for row in history_b]


def test_interrupted_and_resumed_run_is_bit_identical(tmp_path):
    uninterrupted = _run(tmp_path / "a")

    def interrupt_after_two(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", callback=interrupt_after_two)
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT_FILE).epoch == 2
    cnnkit.random.default_generator.random(100)  # the resumed process's RNG is elsewhere
    resumed = _run(tmp_path / "b", init_seed=123, resume=True)  # other init: all must load
    _assert_same_run(uninterrupted, resumed)
    assert len(json.loads((tmp_path / "b" / "metrics.json").read_text())) == 3


def test_two_epochs_then_one_more_equals_three(tmp_path):
    uninterrupted = _run(tmp_path / "a", schedule=False)
    _run(tmp_path / "b", schedule=False, epochs=2)
    resumed = _run(tmp_path / "b", schedule=False, epochs=3, resume=True)
    _assert_same_run(uninterrupted, resumed)
    # Nothing left to do: resuming a finished run returns its history untouched.
    again = _run(tmp_path / "b", schedule=False, epochs=3, resume=True)
    assert len(again[2]) == 3


def test_resume_really_restores_the_random_state(tmp_path):
    """Control for the tests above: without the saved RNG state the run would differ."""
    _run(tmp_path / "b", schedule=False, epochs=2)
    checkpoint_path = tmp_path / "b" / CHECKPOINT_FILE
    from cnnkit.io import load_file, save_file
    tensors, meta = load_file(checkpoint_path)
    meta["rng_state"]["state"]["state"] += 1  # a different dropout stream
    save_file(checkpoint_path, tensors, meta)
    resumed = _run(tmp_path / "b", schedule=False, epochs=3, resume=True)
    uninterrupted = _run(tmp_path / "a", schedule=False)
    with pytest.raises(AssertionError, match="differs"):
        _assert_same_run(uninterrupted, resumed)


def test_fit_validates_arguments(tmp_path):
    model = models.get("lenet5", input_size=8)
    loader = DataLoader(TensorDataset(np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, np.int64)))
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, loader, loader, optimizer, epochs=0)
    with pytest.raises(ValueError, match="config"):
        fit(model, loader, loader, optimizer, epochs=1, out_dir=tmp_path)
    with pytest.raises(ValueError, match="out_dir"):
        fit(model, loader, loader, optimizer, epochs=1, resume=True)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        fit(model, loader, loader, optimizer, epochs=1, out_dir=tmp_path, config=CONFIG,
            resume=True)
    assert not any(tmp_path.iterdir())


# -- the progress bar while a fresh install compiles ------------------------------------------
class _Bar:
    """What ``compiling_shown`` uses of a tqdm bar."""

    def __init__(self, disable=False):
        self.disable, self.descriptions = disable, []

    def set_description_str(self, text, refresh=True):
        self.descriptions.append(text)


def test_the_bar_says_so_while_a_step_waits_on_compiling():
    """The note goes up at the step's first compile and comes down after the step; nothing
    listens once the epoch is over, or when the bar is not shown."""
    import numba

    from cnnkit.train.compile_note import COMPILING, compiling_shown
    bar = _Bar()
    with compiling_shown(bar, "train") as note:
        numba.njit(lambda v: v + 1)(1)  # new functions: compiled here
        numba.njit(lambda v: v + 2)(1)
        note.step_done()
        note.step_done()
        numba.njit(lambda v: v + 3)(1)
    numba.njit(lambda v: v + 4)(1)
    assert bar.descriptions == [f"train ({COMPILING})", "train", f"train ({COMPILING})"]
    hidden = _Bar(disable=True)
    with compiling_shown(hidden, "train"):
        numba.njit(lambda v: v + 5)(1)
    assert hidden.descriptions == []


@pytest.mark.parametrize("phase", ["train", "eval"])
def test_an_epochs_bars_show_the_compiling(monkeypatch, rng, phase):
    """``train_one_epoch``'s and ``evaluate``'s own bars (shown here although the output is
    not a terminal) say so during a step that compiles (a loss that calls a function compiled
    on first use)."""
    import io

    import numba

    from cnnkit.train import trainer
    from cnnkit.train.compile_note import COMPILING
    written, real = io.StringIO(), trainer.tqdm
    monkeypatch.setattr(trainer, "tqdm",
                        lambda *a, **k: real(*a, **{**k, "disable": False, "file": written}))
    fresh = numba.njit(lambda v: v * 2.0)

    def loss_fn(scores, labels):
        fresh(1.0)
        return cnnkit.functional.cross_entropy(scores, labels)
    cnnkit.manual_seed(0)
    model = models.get("vgg_small", input_size=8, stages=[[4]], hidden=8)
    images = rng.random((20, 1, 8, 8), dtype=np.float32)
    loader = DataLoader(TensorDataset(images, rng.integers(0, 10, 20)), batch_size=10)
    if phase == "train":
        trainer.train_one_epoch(model, loader, optim.SGD(model.parameters(), lr=0.1),
                                loss_fn=loss_fn, progress=True)
    else:
        trainer.evaluate(model, loader, loss_fn=loss_fn, progress=True)
    assert f"{phase} ({COMPILING})" in written.getvalue()
