"""The command line under hostile arguments: numbers at and beyond their limits, empty, negative,
huge; paths missing, unwritable, or files where directories are expected. Every command exits
0, 1 or 2, never prints a traceback, and errors are one line (naming the option when one is to
blame). Training itself is replaced by a stub here: what is tested is the checking around it."""
import os
import re
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import cnnkit.train
from cnnkit import models
from cnnkit.cli import main
from cnnkit.train import save_model

INTS = ["0", "-1", "1", "2", "3", "17", "4096", "4097", "100000", "2147483648",
        "99999999999999999999", "", "abc", "1.5", "inf", "nan", "-inf", "1e308"]
REALS = ["0", "-1", "1e-3", "0.5", "inf", "nan", "-inf", "1e308", "", "abc"]
ROWS_COLS = ["0,0", "3,4", "-1,0", "100000,100000", "1", "a,b", ""]
SHAPES = ["1,8,8", "1,28,28", "3,1000000,1000000", "1,0,8", "1,-8,8", "8", "1,128", "",
          "a,b", "1,,8", "64x64", "100000x100000"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = root / "model.safetensors"
    save_model(model, models.get("lenet5", input_size=[8, 8]),
               {"model": {"name": "lenet5", "kwargs": {"input_size": [8, 8]}},
                "dataset": "digits", "input_shape": [1, 8, 8],
                "classes": [str(k) for k in range(10)],
                "normalize": {"mean": [0.3], "std": [0.4]}})
    image = root / "digit.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    (root / "run").mkdir()
    (root / "run" / "metrics.json").write_text('[{"epoch": 1, "train_loss": 1.0}]')
    (root / "run" / "batch_losses.csv").write_text("epoch,batch,loss\n1,0,2.5\n1,1,nan\n")
    shutil.copy(model, root / "run" / "model.safetensors")  # a run directory of cnnkit train
    text = root / "notes.txt"
    text.write_text("not an image, not a model")
    return {"model": str(model), "image": str(image), "run": str(root / "run"),
            "text": str(text), "dir": str(root), "missing": str(root / "missing" / "x"),
            "unwritable": "/proc/cnnkit-cannot-write/x", "file-as-dir": str(text / "x"),
            "out": str(root / "out.png"), "gif": str(root / "slide.gif"),
            "html": str(root / "report.html")}


def _paths(files, *keys):
    return st.sampled_from([files[key] for key in keys])


def _commands(files):
    """(fixed argv prefix, positional choices, {option: values}) per command. Not here: bench
    and tune (they measure for minutes), export (the onnx extra) and serve (it would start a
    server); their numbers are in NAMED."""
    paths = ("missing", "unwritable", "file-as-dir", "dir", "text")
    model_or_path = _paths(files, "model", "run", *paths)
    image_or_path = _paths(files, "image", *paths)
    out = _paths(files, "out", *paths)
    ints, reals, shapes = st.sampled_from(INTS), st.sampled_from(REALS), st.sampled_from(SHAPES)
    rows_cols = st.sampled_from(ROWS_COLS)
    return {
        "train": (["train", "--no-progress"], [], {
            "--model": st.sampled_from(["lenet5", "vgg_small", "alexnet", "cnn1d", ""]),
            "--dataset": st.sampled_from(["digits", "/nonexistent", files["text"], ""]),
            "--data-root": _paths(files, *paths), "--epochs": ints, "--batch-size": ints,
            "--lr": reals, "--weight-decay": reals, "--seed": ints, "--limit-train": ints,
            "--limit-test": ints, "--image-size": ints,
            "--out": _paths(files, *paths[:3], "text"),
            "--optimizer": st.sampled_from(["sgd", "rmsprop"]),
            "--resume": None, "--overwrite": None, "--augment": None, "--sync-bn": None,
            "--max-pixels": ints}),
        "evaluate": (["evaluate"], [model_or_path], {
            "--dataset": st.sampled_from(["digits", "mnist", "", files["dir"]]),
            "--batch-size": ints, "--limit-test": ints, "--data-root": _paths(files, *paths),
            "--max-pixels": ints}),
        "predict": (["predict"], [model_or_path, image_or_path], {
            "--top-k": ints, "--max-pixels": ints, "--resize": None, "--invert": None,
            "--test-index": ints, "--data-root": _paths(files, *paths)}),
        "summary": (["summary"], [st.sampled_from(["lenet5", "vgg_small", "resnet_small",
                                                   "cnn1d", "nope", files["model"],
                                                   files["text"]])],
                    {"--input-shape": shapes, "--num-classes": ints}),
        "filter": (["filter"], [_paths(files, "image", *paths)], {
            "-k": st.sampled_from(["blur", "sobel-left", "1,2;3", "", "abc", "1/0", "1,0;0,1",
                                   "1e308,1e308;1e308,1e308"]),
            "-o": out, "--mode": st.sampled_from(["same", "full", "bad"]),
            "--max-pixels": ints, "--side-by-side": None, "--compare": None,
            "--explain": rows_cols, "--convolve": None,
            "--range": st.sampled_from(["auto", "signed", "abs", "bad"]),
            "--padding-mode": st.sampled_from(["reflect", "circular", "bad"])}),
        "explain conv": (["explain", "conv"], [], {
            "--input-size": st.sampled_from(INTS + ["4x4", "100000x3"]), "--channels": ints,
            "--kernel-size": ints, "--filters": ints, "--stride": ints, "--padding": ints,
            "--seed": ints, "--positions": st.sampled_from(["0,0", "all", "9,9", "a", ""]),
            "--image": image_or_path, "--max-pixels": ints, "--at": rows_cols,
            "--kernel": st.sampled_from(["blur", "sobel-left", "1,2;3", "", "nope"]),
            "--gif": _paths(files, "gif", "out", *paths)}),
        "explain backprop": (["explain", "backprop"], [], {
            "--inputs": ints, "--kernel-size": ints, "--seed": ints}),
        "explain params": (["explain", "params"], [], {
            "--input": st.sampled_from(SHAPES + ["224x224x3", "100000000x100000000x3"]),
            "--kernel": ints, "--filters": ints, "--stride": ints,
            "--padding": st.sampled_from(INTS + ["same", "valid", "full"])}),
        "explain matrix": (["explain", "matrix"], [], {
            "--input-size": st.sampled_from(INTS + ["4x4", "100000x100000"]),
            "--kernel-size": ints, "--stride": ints, "--padding": ints, "--seed": ints}),
        "plot filters": (["plot", "filters"], [model_or_path], {
            "--max-filters": ints, "-o": out}),
        "plot features": (["plot", "features"], [model_or_path, image_or_path], {
            "--max-channels": ints, "--layers": st.sampled_from(["", "0", "nope", "0,1"]),
            "-o": out, "--max-pixels": ints, "--resize": None, "--test-index": ints}),
        "plot curves": (["plot", "curves"], [_paths(files, "run", *paths)], {"-o": out}),
        "plot confusion": (["plot", "confusion"], [model_or_path], {
            "--limit-test": ints, "--batch-size": ints, "-o": out,
            "--dataset": st.sampled_from(["digits", "nope"])}),
        "plot receptive-field": (["plot", "receptive-field"], [st.sampled_from(
            ["lenet5", "vgg_small", files["model"], files["text"]])], {
            "--input-shape": shapes, "--image": image_or_path, "-o": out}),
        "report": (["report"], [model_or_path, image_or_path], {
            "--test-index": ints, "--data-root": _paths(files, *paths), "--resize": None,
            "--invert": None, "--max-channels": ints, "--max-pixels": ints,
            "-o": _paths(files, "html", *paths)}),
    }


@st.composite
def _argv(draw, command):
    prefix, positional, options = command
    argv = list(prefix) + [draw(choice) for choice in positional]
    for name in draw(st.lists(st.sampled_from(sorted(options)), max_size=4, unique=True)):
        argv.append(name)
        if options[name] is not None:
            argv.append(draw(options[name]))
    return argv


def _check_result(argv, code, err):
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and re.match(r"cnnkit [a-z -]+: (internal )?error: ", lines[0]), \
            (argv, err)
        assert "internal error" not in lines[0], (argv, err)  # every refusal is a known one


def _stub_fit(*args, **kwargs):
    return [{"epoch": 1, "test_accuracy": 0.5, "elapsed_seconds": 0.0}]


@pytest.mark.parametrize("name", ["train", "evaluate", "predict", "summary", "filter",
                                  "explain conv", "explain backprop", "explain params",
                                  "explain matrix", "plot filters", "plot features",
                                  "plot curves", "plot confusion", "plot receptive-field",
                                  "report"])
def test_generated_arguments_never_crash(name, files, tmp_path_factory, capsys):
    work = tmp_path_factory.mktemp("work")

    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(argv=_argv(_commands(files)[name]))
    def check(argv):
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(work)
            patch.setattr(cnnkit.train, "fit", _stub_fit)
            patch.delenv("CNNKIT_DATA", raising=False)
            code = main(argv)
        out, err = capsys.readouterr()
        _check_result(argv, code, err)

    check()


NAMED = [  # (argv, option the one-line error must name)
    (["plot", "filters", "lenet5", "--max-filters", "0"], "--max-filters"),
    (["plot", "filters", "lenet5", "--max-filters", "-1"], "--max-filters"),
    (["plot", "features", "lenet5", "x.png", "--max-channels", "0"], "--max-channels"),
    (["explain", "conv", "--input-size", "100000"], "--input-size"),
    (["explain", "conv", "--channels", "100000"], "--channels"),
    (["explain", "conv", "--seed", "-1"], "--seed"),
    (["explain", "matrix", "--input-size", "100x100"], "--input-size"),
    (["explain", "backprop", "--inputs", "0"], "--inputs"),
    (["explain", "params", "--kernel", "0"], "--kernel"),
    (["summary", "lenet5", "--input-shape", "3,1000000,1000000"], "--input-shape"),
    (["summary", "lenet5", "--num-classes", "0"], "--num-classes"),
    (["evaluate", "m.safetensors", "--limit-test", "-1"], "--limit-test"),
    (["evaluate", "m.safetensors", "--batch-size", "0"], "--batch-size"),
    (["predict", "m.safetensors", "x.png", "--top-k", "0"], "--top-k"),
    (["train", "--lr", "inf"], "--lr"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--lr", "0"], "--lr"),
    (["train", "--weight-decay", "-1"], "--weight-decay"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--batch-size", "-3"], "--batch-size"),
    (["train", "--image-size", "100000"], "--image-size"),
    (["train", "--limit-train", "0"], "--limit-train"),
    (["train", "--dataset", "digits", "--out", "/proc/cnnkit-cannot-write/run"], "--out"),
    (["train", "--dataset", "mnist", "--data-root", "/nonexistent"], "--data-root"),
    (["filter", "x.png", "-k", "blur", "-o", "out.png", "--max-pixels", "0"], "--max-pixels"),
    (["predict", "m.safetensors", "--test-index", "-1"], "--test-index"),
    (["report", "m.safetensors", "--max-channels", "0"], "--max-channels"),
    (["explain", "conv", "--stride", "0"], "--stride"),
    (["export", "m.safetensors", "-o", "m.onnx", "--opset", "nan"], "--opset"),
    (["serve", "--port", "-1"], "--port"),
    (["serve", "--port", "65536"], "--port"),
]


@pytest.mark.parametrize("argv, option", NAMED, ids=[" ".join(a) for a, _ in NAMED])
def test_bad_values_are_one_line_naming_the_option(argv, option, run_cli, tmp_path,
                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(*argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and option in lines[0], err


def test_summary_of_a_model_too_large_to_build_is_refused_before_allocating(run_cli):
    code, _, err = run_cli("summary", "lenet5", "--input-shape", "3,4096,4096")
    assert code == 2 and "more parameters than the budget allows" in err


def test_internal_errors_are_one_line_unless_debug(run_cli, monkeypatch):
    import cnnkit.cli.summary as summary

    def broken(args):
        raise RuntimeError("an invariant broke\nsecond line")

    monkeypatch.setattr(summary, "run", broken)
    code, _, err = run_cli("summary", "--list")
    assert code == 1
    assert err.strip() == ("cnnkit summary: internal error: RuntimeError: an invariant broke "
                           "second line (run with --debug for the traceback)")
    with pytest.raises(RuntimeError, match="invariant"):
        main(["summary", "--list", "--debug"])
    monkeypatch.setenv("CNNKIT_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["summary", "--list"])
    assert os.environ["CNNKIT_DEBUG"] == "1"


@pytest.mark.parametrize("argv", [
    ["evaluate", "{model}", "--dataset", "digits"], ["predict", "{model}", "{image}"],
    ["summary", "{model}"], ["plot", "features", "{model}", "{image}", "-o", "{out}"],
    ["plot", "confusion", "{model}", "--dataset", "digits", "-o", "{out}"],
    ["plot", "receptive-field", "{model}", "-o", "{out}"],
    ["predict", "{signal_model}", "{image}"]])
def test_model_files_with_a_minimal_config_are_one_line(argv, files, tmp_path, run_cli):
    """A model file saved from Python with only {"model": ...} (no input_shape, classes or
    normalize), or a 1-D model given an image."""
    minimal = tmp_path / "minimal.safetensors"
    save_model(minimal, models.get("lenet5", input_size=8),
               {"model": {"name": "lenet5", "kwargs": {"input_size": 8}}})
    signal = tmp_path / "signal.safetensors"
    save_model(signal, models.get("cnn1d"), {"model": {"name": "cnn1d", "kwargs": {}},
                                             "input_shape": [1, 128]})
    values = {"model": minimal, "signal_model": signal, "image": files["image"],
              "out": tmp_path / "out.png"}
    code, _, err = run_cli(*[arg.format(**values) for arg in argv])
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0], err
    assert "input_shape" in lines[0] or "not images" in lines[0]
