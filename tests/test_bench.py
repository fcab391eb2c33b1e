"""The benchmark's arguments, ISA emulation switch, machine header and tables (no timing runs)."""
import importlib
import os

import numpy as np
import pytest

from cnnkit.bench import __main__ as bench_main
from cnnkit.bench import isa, machine, report


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "--threads must be at least 1, got 0"),
    (["--threads", "-2"], "--threads must be at least 1, got -2"),
    (["--repeats", "0"], "--repeats must be at least 1, got 0"),
    (["--only", "pw1x1", "nosuch"], "--only: unknown case 'nosuch'; valid names: lenet_c1,"),
])
def test_bad_arguments_are_one_line_errors_with_exit_2(args, message, capsys):
    assert bench_main.main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"cnnkit bench: error: {message}")
    assert err.count("\n") == 1


def test_unknown_case_error_lists_every_suite_s_names(capsys):
    bench_main.main(["--only", "nosuch"])
    err = capsys.readouterr().err
    for name in ("res3x3", "batchnorm", "sig1M_k1024", "pw_320_1280"):
        assert name in err


def test_more_suite_times_dilated_and_grouped_layers():
    """Suite "more": its dilation column reaches both libraries (the FLOPs are those of the
    dilated layer's output), and each row names what ran."""
    from cnnkit.bench import layers
    flops = {"dil3x3": 2 * 16 * 64 * 64 * 9 * 32 * 32,   # padding 2, dilation 2: out 32×32
             "grouped": 2 * 16 * 128 * 32 * 9 * 28 * 28}  # 4 groups of 32 input channels
    for name, work in flops.items():
        rows = layers.conv_case(name, 1, layers.MORE_CASES)
        assert [r["mode"] for r in rows] == ["fwd", "fwd+bwd"]
        assert rows[0]["algorithm"] == "implicit"
        for row, passes in zip(rows, (1, 3)):
            assert row["cnnkit_gflops"] * row["cnnkit_ms"] * 1e6 == pytest.approx(passes * work)


def test_more_suite_times_its_pooling_and_activation_layers(monkeypatch):
    """Suite "more"'s other layers (selected by --only) come after its convolutions: fwd and
    fwd+bwd of each, no FLOP rate."""
    from cnnkit.bench import layers
    monkeypatch.setitem(layers.MORE_OP_CASES, "maxpool1d_3s2",
                        ("max_pool1d", (2, 3, 20), dict(kernel_size=3, stride=2, padding=1)))
    rows = list(layers.run(1, ["maxpool1d_3s2"], layers.MORE_CASES))
    assert [(r["name"], r["mode"]) for r in rows] == [("maxpool1d_3s2", "fwd"),
                                                       ("maxpool1d_3s2", "fwd+bwd")]
    assert all(r["cnnkit_ms"] > 0 and r["torch_ms"] > 0 and r["cnnkit_gflops"] is None
               for r in rows)
    assert {"maxpool3x3_s2", "gelu"} <= set(bench_main.case_names()["more"])


def test_more_suite_times_a_skip_connection(monkeypatch):
    """relu(x) + x, fwd and fwd+bwd, on the shape ``RESIDUAL_CASE`` gives."""
    from cnnkit.bench import layers
    monkeypatch.setattr(layers, "RESIDUAL_CASE", ("residual_sum", (2, 3, 4, 5)))
    rows = list(layers.run(1, ["residual_sum"], layers.MORE_CASES))
    assert [(r["name"], r["mode"]) for r in rows] == [("residual_sum", "fwd"),
                                                       ("residual_sum", "fwd+bwd")]
    assert all(r["cnnkit_ms"] > 0 and r["torch_ms"] > 0 for r in rows)
    assert "residual_sum" in bench_main.case_names()["more"]


def test_json_into_a_missing_folder_is_refused_and_not_created(tmp_path, capsys):
    target = tmp_path / "missing" / "results.json"
    assert bench_main.main(["--json", str(target)]) == 2
    assert "--json: folder" in capsys.readouterr().err
    assert not target.parent.exists()


def test_argparse_errors_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_main.main(["--isa", "avx9"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnkit bench: error: argument --isa") and err.count("\n") == 1


def test_an_isa_the_host_lacks_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(isa, "host_features", lambda: {"avx", "avx2", "fma"})
    monkeypatch.setattr(bench_main, "host_features", isa.host_features)
    assert bench_main.main(["--isa", "avx512", "--suite", "layers"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnkit bench: error: --isa avx512: this CPU lacks avx512f")
    assert "it can: native, avx2" in err and err.count("\n") == 1


def test_missing_features():
    assert isa.missing_features("native", set()) == ()
    assert isa.missing_features("avx2", {"avx2"}) == ("fma",)
    assert isa.missing_features("avx2", {"avx2", "fma", "avx512f"}) == ()
    assert "avx512f" in isa.missing_features("avx512", {"avx2", "fma"})


def test_emulation_environment_sets_every_library_s_cap_and_is_idempotent():
    base = {"PATH": "/bin", "NUMBA_CPU_FEATURES": "+avx2", "OPENBLAS_CORETYPE": "Zen"}
    avx2 = isa.environment(base, "avx2")
    assert avx2 == {"PATH": "/bin", "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "",
                    "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                    "OPENBLAS_CORETYPE": "Haswell"}
    assert isa.environment(avx2, "avx2") == avx2
    avx512 = isa.environment(avx2, "avx512")
    assert (avx512["NUMBA_CPU_NAME"], avx512["ONEDNN_MAX_CPU_ISA"],
            avx512["ATEN_CPU_CAPABILITY"]) == ("skylake-avx512", "AVX512_CORE", "avx512")
    assert isa.environment(avx512, "native") == {"PATH": "/bin"}
    assert isa.environment(base, None) == base
    with pytest.raises(ValueError, match="isa must be one of"):
        isa.environment(base, "avx9")


def test_the_restarted_child_does_not_restart_again(monkeypatch):
    args = bench_main.build_parser().parse_args(["--isa", "avx2", "--threads", "1"])
    wanted = bench_main.wanted_environment(args)
    assert wanted["NUMBA_NUM_THREADS"] == "1" and wanted["NUMBA_CPU_NAME"] == "haswell"
    monkeypatch.setattr(os, "environ", dict(wanted))
    assert bench_main._restart_if_needed(args, []) is None


def test_test_targets_use_only_the_host_architecture_s_names():
    assert isa.test_targets("aarch64", set()) == ["generic"]
    assert isa.test_targets("x86_64", {"avx2", "fma"}) == ["haswell", "x86-64"]
    assert isa.test_targets("x86_64", {"avx"}) == ["x86-64"]


def test_cli_passes_isa_through(monkeypatch, run_cli):
    seen = []
    monkeypatch.setattr(bench_main, "main", lambda argv: seen.append(argv) or 0)
    code, _, _ = run_cli("bench", "--isa", "avx2", "--only", "pw1x1", "--suite", "layers")
    assert code == 0
    argv = seen[0]
    assert argv[argv.index("--isa") + 1] == "avx2" and "pw1x1" in argv


def test_layer_table_shows_sgemm_peak_and_blas_shares():
    row = {"name": "pw1x1", "mode": "fwd", "algorithm": "implicit", "cnnkit_ms": 1.0,
           "torch_ms": 2.0, "ratio": 0.5, "cnnkit_gflops": 50.0, "blas_gflops": 120.0}
    lines = report.layer_table([row, dict(row, cnnkit_gflops=None, blas_gflops=None)],
                               100.0, 200.0).splitlines()
    assert lines[0].endswith("| % of sgemm | % of peak | BLAS % of peak |")
    assert lines[2].endswith("| 50.0 | 50 | 25 | 60 |")
    assert lines[3].endswith("| — | — | — | — |")


def test_e2e_table_shows_one_image_latency():
    row = {"name": "vgg_small", "batch_size": 128, "cnnkit_images_per_s": 1800.0,
           "torch_images_per_s": 1500.0, "cnnkit_peak_mib": 85.0, "torch_peak_mib": 113.0,
           "cnnkit_one_image_ms": 0.9, "torch_one_image_ms": 0.6}
    lines = report.e2e_table([row]).splitlines()
    assert lines[2].startswith("| vgg_small | 128 | 1800 | 1500 | 1.20 | 85 | 113 | 0.75 |")
    assert lines[4].startswith("| model | one image, evaluation: cnnkit ms |")
    assert lines[6] == "| vgg_small | 0.900 | 0.600 | 1.50 |"


def test_one_image_latency_times_both_libraries():
    from cnnkit.bench import end_to_end
    ours, theirs = end_to_end.one_image_latency(calls=2, repeats=2)
    assert 0 < ours < 1e3 and 0 < theirs < 1e3


@pytest.mark.parametrize("groups", [1, 4])
def test_blas_products_are_the_layer_products(groups):
    """Per group: y = W @ cols, dcols = Wᵀ @ dy, dw = dy @ colsᵀ, each K'·T·P multiply-adds
    (K' = 3 outputs, T = 5 terms, P = 7 positions)."""
    from cnnkit.bench.blas_products import LayerProducts
    p = LayerProducts(groups, 3, 5, 7, seed=1)
    p.all_three()
    assert p.y.shape == (groups, 3, 7) and p.dcols.shape == (groups, 5, 7)
    assert p.dw.shape == (groups, 3, 5)
    assert np.allclose(p.y, p.w @ p.cols, rtol=1e-5, atol=1e-5)
    assert np.allclose(p.dcols, p.w_t @ p.dy, rtol=1e-5, atol=1e-5)
    assert np.allclose(p.dw, p.dy @ p.cols_t, rtol=1e-5, atol=1e-5)
    p.y[...] = np.nan
    p.forward()
    assert np.allclose(p.y, p.w @ p.cols, rtol=1e-5, atol=1e-5)


def test_blas_line_says_when_openblas_coretype_holds_it_back():
    blas = [{"internal_api": "openblas", "version": "0.3.31", "architecture": "Haswell",
             "num_threads": 2}]
    held = {"set": "Haswell", "in_use": "Haswell", "own_choice": "SkylakeX", "holds": True}
    line = machine._blas_line(blas, held)
    assert "openblas 0.3.31 (Haswell kernels), 2 threads" in line
    assert "OPENBLAS_CORETYPE=Haswell is set and holds OpenBLAS to Haswell" in line
    assert "its own pick here: SkylakeX" in line
    same = dict(held, own_choice="Haswell", holds=False)
    assert "picks Haswell without it too" in machine._blas_line(blas, same)
    assert "OPENBLAS_CORETYPE" not in machine._blas_line(blas, None)


def test_openblas_coretype_compares_with_a_fresh_process(monkeypatch):
    blas = [{"internal_api": "openblas", "architecture": "Haswell"}]
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    assert machine.openblas_coretype(blas) is None
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    seen = {}
    monkeypatch.setattr(machine, "_openblas_choice",
                        lambda env: seen.update(env) or "SkylakeX")
    assert machine.openblas_coretype(blas) == {"set": "Haswell", "in_use": "Haswell",
                                               "own_choice": "SkylakeX", "holds": True}
    assert "OPENBLAS_CORETYPE" not in seen


def test_machine_description_names_target_blas_and_torch_isa():
    info = machine.describe()
    assert info["target"]["family"] in ("avx512", "avx2", "avx", "sse", "neon", "sve", "generic")
    assert info["target"]["lanes"] * 32 == info["target"]["vector_bits"]
    assert all("internal_api" in b for b in info["blas"])
    assert info["torch_cpu_capability"]
    info.update(threads=1, isa=None, sgemm_gflops=50.0,
                peak={"chains": 12, "lanes": 16, "gflops_per_core": 100.0,
                      "gflops_total": 100.0, "threads": 1})
    lines = machine.header_lines(info)
    assert lines[-1].endswith("sgemm 50 GFLOP/s = 50 % of peak")
    assert info["target"]["summary"] in lines[1]
    info.update(emulated=False, host_cpu="rocketlake")
    assert machine.header_lines(info)[1].endswith("(native, not emulated: host rocketlake)")
    info.update(emulated=True)
    assert machine.header_lines(info)[1].endswith("(on a rocketlake host)")


@pytest.mark.parametrize("first, again, kept, noted", [
    (224.0, 466.0, 466.0, True),    # the first reading was taken on a busy machine
    (466.0, 224.0, 466.0, True),    # the second was
    (466.0, 455.0, 466.0, False),   # the usual spread, the header's reading kept
    (455.0, 466.0, 466.0, True),    # within it, but the table divides by the new one
])
def test_peak_is_measured_again_and_the_highest_reading_kept(monkeypatch, first, again, kept,
                                                              noted):
    from cnnkit.bench import peak
    monkeypatch.setattr(peak, "measure", lambda threads: {"gflops_total": again,
                                                          "threads": threads})
    info = {"peak": {"gflops_total": first, "threads": 2}}
    notes = []
    bench_main._confirm_peak(info, log=notes.append)
    assert info["peak"]["gflops_total"] == kept
    assert info["peak"]["readings"] == [first, again]
    assert bool(notes) == noted and all("peak re-measured" in note for note in notes)
    assert all(f"the table divides by {kept:.0f}" in note for note in notes)


@pytest.mark.parametrize("back_to_back, order", [(1, "abab"), (2, "aabbaabb")])
def test_interleaved_turns_time_calls_back_to_back(back_to_back, order):
    from cnnkit.bench import timing
    calls = []
    best = timing.best_of_interleaved([lambda: calls.append("a"), lambda: calls.append("b")],
                                      repeats=2, warmup=0, back_to_back=back_to_back)
    assert "".join(calls) == order and len(best) == 2


def test_depthwise_bench_times_lanes_against_the_pick_without_them():
    from cnnkit.bench import depthwise
    lines = []
    rows = depthwise.measure(layers=((2, 16, 5, 3, 2),), repeats=1, log=lines.append)
    assert [row[1] for row in rows] == ["forward", "input", "weight"]
    assert all(row[3] != "lanes" and min(row[4:]) > 0 for row in rows)
    assert len(lines) == 3 and lines[0].startswith("| 2 × 16 × 5², 3 × 3/2 | forward |")


def test_depthwise_bench_times_grouped_layers_and_both_weight_tiles():
    from cnnkit.bench import depthwise
    lines = []
    rows = depthwise.measure(layers=((2, 16, 5, 3, 1, 4),), repeats=1, log=lines.append)
    assert [row[1] for row in rows] == ["forward", "input", "weight"]
    assert lines[0].startswith("| 2 × 16 × 5², 3 × 3/1, groups of 4 | forward | lanes |")
    lines = []
    rows = depthwise.measure_spread(layers=((2, 16, 5, 3, 1), (2, 16, 5, 3, 1, 4)), repeats=1,
                                    log=lines.append)
    assert len(rows) == 1 and min(rows[0][1:3]) > 0 and rows[0][3] in ("rotate", "permute")
    assert len(lines) == 1


def test_depthwise_bench_times_volumes():
    """``--volumes``: 3-D layers, labelled as cubes, against PyTorch's conv3d and its
    backward; a 7 × 7 × 7 depthwise layer runs on the lanes."""
    from cnnkit.bench import depthwise
    lines = []
    rows = depthwise.measure(layers=((2, 16, 9, 7, 1), (2, 16, 6, 3, 2, 4)), repeats=1,
                             log=lines.append, dims=3)
    assert [row[1] for row in rows] == ["forward", "input", "weight"] * 2
    assert all(row[3] != "lanes" and min(row[4:]) > 0 for row in rows)
    assert lines[0].startswith("| 2 × 16 × 9³, 7 × 7 × 7/1 | forward | lanes |")
    assert lines[3].startswith("| 2 × 16 × 6³, 3 × 3 × 3/2, groups of 4 | forward |")
    assert all(len(layer) in (5, 6) for layer in depthwise.VOLUMES)


def test_depthwise_bench_times_volumes_at_each_tap_block():
    """``--tap-blocks``: each stride-1 volume's forward pass on the lanes at each of the tap
    block sizes tried; strided layers left out."""
    from cnnkit.bench import depthwise
    lines = []
    rows = depthwise.measure_tap_blocks(layers=((2, 16, 6, 3, 1), (2, 16, 6, 3, 2)),
                                        repeats=1, log=lines.append)
    assert len(rows) == 1 and len(rows[0]) == 1 + len(depthwise.TAP_BLOCK_BYTES)
    assert min(rows[0][1:]) > 0 and lines[0].startswith("| 2 × 16 × 6³, 3 × 3 × 3/1 |")


@pytest.mark.parametrize("args, message", [(["--only", "99"], "--only: expected indices"),
                                           (["--volumes", "--only", "11"], "0 to 10"),
                                           (["--repeats", "0"], "--repeats: expected")])
def test_depthwise_bench_refuses_bad_arguments(args, message, capsys):
    from cnnkit.bench import depthwise
    with pytest.raises(SystemExit) as stop:
        depthwise.main(args)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_ceiling_suite_times_every_way_of_computing_the_target_layers(monkeypatch):
    """Suite "ceiling": the heuristic's step, each other algorithm that applies to all three
    passes forced (and running: the dispatcher is asked with it forced), PyTorch's step and
    BLAS's products, for the layers the peak target names (one, shrunk, here)."""
    from cnnkit.bench import ceiling, layers
    from cnnkit.kernels.conv import ALGORITHMS, PASSES, applies, dispatch
    monkeypatch.setitem(layers.CONV_CASES, "pw1x1", (2, 2, 8, 4, (6, 6), 1, 1, 0, 1))
    step = layers.LayerStep("pw1x1")
    picks = [dispatch.select(step.geometry, p) for p in PASSES]  # on 2 images: shift's
    heuristic = "/".join(picks)  # 1×1 products for forward and input, implicit for weight
    others = [name for name in ALGORITHMS
              if all(applies(name, step.geometry, p) for p in PASSES)]
    assert len(set(picks)) == 2 and len(others) >= 3  # implicit, shift, gemm at least
    ran = []
    select = dispatch.select
    monkeypatch.setattr(dispatch, "select", lambda *a: ran.append(select(*a)) or ran[-1])
    rows = list(ceiling.run(1, ["pw1x1"]))
    assert [r["way"] for r in rows] == [f"cnnkit ({heuristic})"] + \
        [f"cnnkit, {name}" for name in others] + ["PyTorch", "BLAS, laid out"]
    assert set(others) <= set(ran)
    for r in rows:
        assert r["gflops"] * r["ms"] * 1e6 == pytest.approx(3 * step.flops)
    table = ceiling.table(rows, peak=rows[0]["gflops"] * 2)
    assert "| pw1x1 | PyTorch |" in table and table.count("\n") == len(rows) + 1
    assert "| 50 |" in table.splitlines()[2]
    assert bench_main.case_names()["ceiling"] == list(layers.PEAK_TARGET_LAYERS)
    # one algorithm on all three passes: not timed twice, once as the heuristic's, once forced
    monkeypatch.setitem(layers.CONV_CASES, "res3x3", (2, 2, 4, 8, (6, 6), 3, 1, 1, 1))
    labels = [label for label, _ in ceiling.ways(layers.LayerStep("res3x3"))]
    assert labels[0] == "cnnkit (implicit)" and "cnnkit, implicit" not in labels
    assert {"cnnkit, winograd", "cnnkit, gemm"} <= set(labels)


def test_torch_twin_builds_residual_blocks(rng):
    """The end-to-end suite's ResNet: the twin's blocks add their two branches and take the
    same state-dict keys, so both libraries compute the same model."""
    import torch

    import cnnkit
    from cnnkit import models
    from cnnkit.bench.torch_twin import torch_twin
    cnnkit.manual_seed(0)
    model = models.get("resnet_small", widths=(8, 16), blocks_per_stage=1)
    twin = torch_twin(model)
    assert list(twin.state_dict()) == list(model.state_dict())
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        expected = twin.train()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.train()(cnnkit.tensor(x)).data, expected, rtol=1e-4,
                               atol=1e-5)


def test_cold_bench_times_steps_warm_and_cold_and_1x1_products_in_both_layouts(monkeypatch):
    """``python -m cnnkit.bench.cold``: each layer's two steps, plus a 1×1 layer's forward
    product on x as planes and channels-last, which compute the same rows."""
    from cnnkit.bench import cold, layers
    monkeypatch.setitem(layers.CONV_CASES, "pw1x1", (2, 3, 20, 24, (5, 6), 1, 1, 0, 1))
    monkeypatch.setitem(layers.CONV_CASES, "res3x3", (2, 2, 4, 8, (6, 6), 3, 1, 1, 1))
    planes, last = cold.forward_products("pw1x1", layers.CONV_CASES)
    positions = 3 * 5 * 6
    np.testing.assert_allclose(last[1]()[:positions, :24], planes[1]()[:positions, :24],
                               rtol=1e-5, atol=1e-5)
    evictions = []
    monkeypatch.setattr(cold.Evictor, "__call__", lambda self: evictions.append(self.mb))
    lines = []
    rows = cold.measure(["res3x3", "pw1x1"], repeats=2, evict_mb=1, log=lines.append)
    assert [(r["name"], r["way"]) for r in rows] == [
        ("res3x3", "cnnkit step"), ("res3x3", "PyTorch step"), ("pw1x1", "cnnkit step"),
        ("pw1x1", "PyTorch step"), ("pw1x1", "forward product, x as planes"),
        ("pw1x1", "forward product, x channels-last")]
    assert len(evictions) == 4 + 2 * (2 + 4)  # the rate's four copies, then one a cold call
    assert all(r["warm_ms"] > 0 and r["cold_ms"] > 0 for r in rows)
    assert "evicting pass: 1 MB" in lines[0]
    table = cold.table(rows)
    assert table.count("\n") == len(rows) + 1 and "| pw1x1 | forward product, x as planes |" in table


@pytest.mark.parametrize("sizes, expected", [
    ({1: "48K", 2: "2048K", 3: "266240K"}, 266240 << 10),
    ({1: "32K", 2: "1M"}, 1 << 20),
    ({}, 0),
])
def test_last_level_cache_is_the_highest_level_linux_lists(tmp_path, sizes, expected):
    from cnnkit.bench import cold
    for i, (level, size) in enumerate(sizes.items()):
        (tmp_path / f"index{i}").mkdir()
        (tmp_path / f"index{i}" / "level").write_text(f"{level}\n")
        (tmp_path / f"index{i}" / "size").write_text(f"{size}\n")
    (tmp_path / "index9").mkdir()  # a listing without its files is skipped
    assert cold.last_level_cache_bytes(str(tmp_path)) == expected
    assert cold.last_level_cache_bytes(str(tmp_path / "missing")) == 0


@pytest.mark.parametrize("tool, args, message", [
    ("cold", ["--repeats", "0"], "--repeats must be at least 1"),
    ("cold", ["--evict-mb", "0"], "--evict-mb must be at least 1"),
    ("cold", ["--only", "lenet_c1"], "invalid choice"),
    ("first_step", ["--top", "-1"], "--top must be at least 0"),
    ("first_step", ["--model", "resnet18"], "invalid choice"),
])
def test_bench_tools_refuse_bad_arguments(tool, args, message, capsys):
    module = importlib.import_module(f"cnnkit.bench.{tool}")
    with pytest.raises(SystemExit) as stop:
        module.main(args)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_first_step_times_a_step_and_one_image_and_lists_each_kernels_own_compiling():
    """``python -m cnnkit.bench.first_step``'s child: both times, and the kernels compiled
    meanwhile with their own seconds, heaviest first (none when the cache had them)."""
    from cnnkit.bench import first_step
    result = first_step._child("lenet5")
    assert result["step_s"] > 0 and result["eval_s"] > 0
    seconds = [s for _, s, _ in result["kernels"]]
    assert seconds == sorted(seconds, reverse=True)
    assert all(name.startswith(("cnnkit.", "numba.")) and n >= 1
               for name, _, n in result["kernels"])
    text = first_step.report("lenet5", {"step_s": 40.0, "eval_s": 0.5, "kernels": [
        ["cnnkit.kernels.a.f", 12.5, 3], ["cnnkit.kernels.b.g", 2.0, 1]]}, top=1)
    assert "first training step 40.0 s" in text and "12.5 s  cnnkit.kernels.a.f (3 " in text
    assert "b.g" not in text and "14.5 s  in all, 2 kernels" in text


def test_pool_rows_times_each_arrangement_and_restores_the_tasks_per_thread():
    """``python -m cnnkit.bench.pool_rows``: a line per map size with the three ways of each
    case, and ``--chunks``' line per size, the flat kernel's tasks per thread put back."""
    from cnnkit.bench import pool_rows
    from cnnkit.kernels import pooling_flat_numba
    lines = []
    pool_rows.measure(sizes=(28,), repeats=1, log=lines.append)
    assert len(lines) == 1 and lines[0].count(" / ") == 2 * (len(pool_rows.CASES) + 1)
    kept = pooling_flat_numba.CHUNKS_PER_THREAD
    pool_rows.measure_chunks(sizes=(28,), counts=(1, 3), repeats=1, log=lines.append)
    assert "1: " in lines[1] and "3: " in lines[1]
    assert pooling_flat_numba.CHUNKS_PER_THREAD == kept
    with pytest.raises(ValueError, match="--repeats must be at least 1"):
        pool_rows.main(["--repeats", "0"])


def test_volume_stencil_times_both_ways_and_names_the_rule_s_pick():
    """``python -m cnnkit.bench.volume_stencil``: a line per width with both ways' times and
    the pick of ``flat_planes``; with ``--weight``, a line per layer with the implicit GEMM's
    and the stencil's weight gradients and the pick of ``rows.takes_volume_weight``."""
    from cnnkit.bench import volume_stencil
    lines = []
    volume_stencil.measure(widths=(7, 16), repeats=1, log=lines.append)
    assert len(lines) == 2 and "row by row" in lines[0] and "flat" in lines[0]
    assert lines[0].endswith("picks flat") and lines[1].endswith("picks rows")
    volume_stencil.measure_weight(layers=((2, 1, 1), (2, 2, 16)), side=6, repeats=1,
                                  log=lines.append)
    assert "implicit" in lines[2] and lines[2].endswith("picks stencil")
    assert lines[3].endswith("picks implicit")
    with pytest.raises(ValueError, match="--repeats must be at least 1"):
        volume_stencil.main(["--repeats", "0"])


def test_layer_suites_time_several_calls_of_each_library_a_turn(monkeypatch):
    """Every round-robin of the layer suites (conv layers, other ops, batch norm, the residual
    sum, the ceiling's ways) times ``layers.CALLS_PER_TURN`` calls a turn."""
    from cnnkit.bench import ceiling, layers
    seen = []

    def recorder(functions, repeats=5, warmup=1, budget_s=20.0, back_to_back=1):
        seen.append((len(functions), back_to_back))
        return [1e-3] * len(functions)
    monkeypatch.setattr(layers, "best_of_interleaved", recorder)
    monkeypatch.setattr(ceiling, "best_of_interleaved", recorder)
    layers.conv_case("tiny", 1, {"tiny": (2, 2, 3, 4, (8, 8), 3, 1, 1, 1)})
    layers.op_case("elu", "elu", np.ones((2, 3, 4, 4), np.float32), {}, 1)
    layers.residual_case(1)
    layers.pool_and_norm_cases(1)
    list(ceiling.run(1, only=["pw1x1"]))
    round_robins = [calls for count, calls in seen if count > 1]
    assert len(round_robins) == 2 + 2 + 2 + 4 + 1
    assert layers.CALLS_PER_TURN >= 2
    assert all(calls == layers.CALLS_PER_TURN for calls in round_robins)


def test_turns_times_each_count_of_calls_a_turn_and_each_library_alone(capsys):
    from cnnkit.bench import turns
    tiny = {"tiny": (2, 2, 3, 4, (8, 8), 3, 1, 1, 1)}
    times = turns.measure("tiny", tiny, 1)
    assert list(times) == [*turns.CALLS, "alone"]
    assert all(len(pair) == 2 and min(pair) > 0 for pair in times.values())
    lines = turns.table([("tiny", times)])
    assert lines[0].count("a turn") == len(turns.CALLS) and lines[2].startswith("| tiny | ")
    assert lines[2].count("/") == len(times)
    with pytest.raises(SystemExit):
        turns.main(["--only", "no_such_layer"])
    assert "no layer named no_such_layer" in capsys.readouterr().err


def test_spin_bench_times_each_setting_in_a_child_of_its_own(capsys):
    """``python -m cnnkit.bench.spin``: a row per setting, each a process with that spin,
    cnnkit's own marked."""
    from cnnkit import _runtime
    from cnnkit.bench import spin
    ours = int(_runtime.GOMP_SPIN_POLLS)
    spin.main(["--model", "lenet5", "--rounds", "1", "--gomp", str(ours), str(ours * 10)])
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == ("| GOMP_SPINCOUNT, OPENBLAS_THREAD_TIMEOUT | lenet5 step | "
                       "lenet5 one image |")
    assert rows[2].startswith(f"| {ours}, {_runtime.OPENBLAS_SPIN_LOG2_CYCLES} (cnnkit's) | ")
    assert rows[3].startswith(f"| {ours * 10}, ") and "cnnkit's" not in rows[3]
    for row in rows[2:]:
        best, slowest = (float(v) for v in row.split(" | ")[1].split(" / "))
        assert 0 < best == slowest  # one round
    for wrong, message in ((["--rounds", "0"], "--rounds must be at least 1"),
                           (["--openblas", "40"], "4 ≤ n ≤ 30"),
                           (["--gomp", "-1"], "spin counts are 0 or more")):
        with pytest.raises(SystemExit):
            spin.main(wrong)
        assert message in capsys.readouterr().err


def test_sweep_times_each_pass_of_random_layers_against_every_algorithm(monkeypatch, capsys,
                                                                        tmp_path):
    """``python -m cnnkit.bench.sweep``: every pass of each drawn layer timed against the
    algorithms that apply, forced; slow picks printed, all rows written to --json."""
    import json
    import random

    from cnnkit.bench import sweep
    drawn = [sweep.draw_layer(random.Random(seed)) for seed in range(200)]
    layers = [layer for layer in drawn if layer is not None]
    assert len(layers) > 20 and {layer[0] for layer in layers} == {1, 2, 3}
    assert all(len(layer[4]) == layer[0] and layer[2] % layer[8] == layer[3] % layer[8] == 0
               for layer in layers)
    tiny = (2, 2, 4, 8, (9, 9), 3, 1, 1, 1, 1)
    monkeypatch.setattr(sweep, "draw_layer", lambda pick: tiny)
    out = tmp_path / "rows.json"
    sweep.main(["--seconds", "0.01", "--threshold", "1", "--json", str(out)])
    printed = capsys.readouterr().out.splitlines()
    rows = json.loads(out.read_text())
    assert [row["pass"] for row in rows[:3]] == ["forward", "input", "weight"]
    assert all(row["layer"] == [2, 2, 4, 8, [9, 9], 3, 1, 1, 1, 1] and row["ratio"] >= 1 and
               row["best_ms"] <= row["pick_ms"] for row in rows)
    assert printed[-1] == f"{len(rows)} passes; {sum(r['ratio'] > 1 for r in rows)} with the " \
        "pick over 1 times the fastest"
    for wrong, message in ((["--seconds", "0"], "--seconds must be positive"),
                           (["--threshold", "0.5"], "--threshold must be at least 1")):
        with pytest.raises(SystemExit):
            sweep.main(wrong)
        assert message in capsys.readouterr().err


def test_sweep_against_torch_times_forward_passes_and_steps(monkeypatch, capsys, tmp_path):
    """``python -m cnnkit.bench.sweep --torch``: each drawn layer's forward pass and training
    step against PyTorch's (a dilated one too), the summary's geomean and count from the
    rows written to --json."""
    import json

    from cnnkit.bench import layers, sweep
    tiny = (2, 2, 4, 8, (9, 9), 3, 2, 2, 2, 1)  # stride 2, dilation 2, 2 groups, padding 1
    monkeypatch.setattr(sweep, "draw_layer", lambda pick: tiny)
    steps = []

    class Recorded(layers.LayerStep):
        def __init__(self, name, cases):
            super().__init__(name, cases)
            steps.append(self)
    monkeypatch.setattr(layers, "LayerStep", Recorded)
    out = tmp_path / "rows.json"
    sweep.main(["--torch", "--seconds", "0.01", "--threshold", "1", "--json", str(out)])
    printed = capsys.readouterr().out.splitlines()
    rows = json.loads(out.read_text())
    g = steps[0].geometry
    assert (g.batch, g.in_channels, g.out_channels, g.padded, g.kernel, g.stride, g.dilation,
            g.groups) == (2, 4, 8, (11, 11), (3, 3), (2, 2), (2, 2), 2)
    assert [row["pass"] for row in rows[:2]] == ["forward", "step"]
    assert all(row["layer"] == [2, 2, 4, 8, [9, 9], 3, 2, 2, 2, 1] and row["ms"] > 0 and
               row["ratio"] == pytest.approx(row["ms"] / row["torch_ms"]) for row in rows)
    steps = [row["ratio"] for row in rows if row["pass"] == "step"]
    assert printed[-1] == (f"{len(steps)} step rows: geomean {sweep.geomean(steps):.3f} of "
                           f"PyTorch's time, {sum(r > 1 for r in steps)} over 1")
    assert sweep.geomean([2.0, 8.0]) == pytest.approx(4.0) and sweep.geomean([]) == 1.0


def test_subpixel_tool_times_both_ways_beside_the_rule():
    """``python -m cnnkit.bench.subpixel``: each layer's strided input gradient on im2col and
    over all phases, forced, with the heuristic's pick (one of the two) and its terms."""
    from cnnkit.bench import subpixel
    lines = []
    layers = [(2, 2, 2, 8, 7, 5), (1, 2, 2, 8, 32, 3)]
    rows = subpixel.measure(1, layers, log=lines.append)
    assert [row[0] for row in rows] == layers
    assert max(subpixel.strided_input.subpixel_terms(subpixel._geometry(*layer))
               for layer in subpixel.LAYERS) >= 512  # the terms' threshold is measured too
    assert all(row[1] > 0 and row[2] > 0 and row[3] in ("gemm", "implicit") for row in rows)
    assert len(lines) == 3 and "terms, taps 0.69 of them" in lines[1]
    with pytest.raises(SystemExit):
        subpixel.main(["--repeats", "0"])


def test_orientation_ties_time_both_orientations_beside_the_rule(monkeypatch):
    """``python -m cnnkit.bench.orientation``'s 1-D table: each layer's forward pass in both
    orientations, forced, with the rule's pick."""
    from cnnkit.bench import orientation
    monkeypatch.setattr(orientation, "TIE_CASES", [(1, 4, 32, 64, 3), (8, 2, 16, 64, 3)])
    monkeypatch.setattr(orientation, "_best", lambda run, repeats=7, clock=None: (run(), 1.0)[1])
    lines = []
    rows = orientation.measure_ties(log=lines.append)
    assert [row[0] for row in rows] == orientation.TIE_CASES and len(lines) == 3
    assert all(row[1:3] == (1.0, 1.0) and row[3] in ("planar", "channels-last") for row in rows)


def test_planar_input_fits_the_rule_that_loses_least(monkeypatch, capsys, tmp_path):
    """``python -m cnnkit.bench.planar_input``: distinct layers of fewer input channels than a
    vector's lanes, each input gradient timed as the heuristic runs it without the rule and on
    im2col; the loss counts only the 3-D layers the rule (``gemm.idle_and_deep``) sends the
    wrong way and the others it leaves on the slower one, and the fit finds the pair that loses
    least, the nearest to the current values among equals."""
    import json

    from cnnkit.bench import planar_input as bench
    from cnnkit.kernels import implicit_gemm_numba as compiled
    from cnnkit.kernels.conv import ALGORITHMS
    layers = bench.draw_layers(2000, 0)
    assert len(layers) == len(set(layers)) > 300 and {layer[0] for layer in layers} == {1, 2, 3}
    assert all(layer[2] < compiled.LANES for layer in layers)
    assert {layer[-1] for layer in layers} == {True, False}
    assert bench.draw_layers(5, 1) != bench.draw_layers(5, 2)
    same, valid = bench.geometry((3, 4, 1, 16, 3, 2, 10, True)), \
        bench.geometry((3, 4, 1, 16, 3, 2, 10, False))
    assert same.out == (10,) * 3 and same.pads == ((2, 2),) * 3 and valid.out == (6,) * 3
    # 3-D: 3 times as slow before the rule at lane use 0.5 and depth 64, 2 times as fast at
    # lane use 1: only lane use ≤ 0.5 and depth ≤ 64 loses nothing; the 2-D row, slower
    # before, is never claimed and always counts
    rows = [{"layer": [3], "lane_use": 0.5, "c": 1, "k": 32, "before_ms": 3.0, "gemm_ms": 1},
            {"layer": [3], "lane_use": 1.0, "c": 1, "k": 256, "before_ms": 1.0, "gemm_ms": 2},
            {"layer": [2], "lane_use": 0.5, "c": 1, "k": 32, "before_ms": 5.0, "gemm_ms": 1}]
    assert bench.loss(rows, -1, 0) == pytest.approx(np.log(3) + np.log(5))
    assert bench.loss(rows, 1.0, 1) == pytest.approx(np.log(2) + np.log(5))
    assert bench.loss(rows, 0.5, 128) == pytest.approx(np.log(3) + np.log(5))
    assert bench.fit(rows, (0.5, 64)) == (pytest.approx(np.log(5)), 0.5, 64)
    assert bench.fit(rows, (0.75, 8))[1:] == (0.75, 8)
    monkeypatch.setattr(bench, "draw_layers", lambda count, seed: [(2, 2, 1, 16, 3, 1, 9, True)])
    out = tmp_path / "rows.json"
    bench.main(["--layers", "1", "--json", str(out)])
    printed = capsys.readouterr().out.splitlines()
    written = json.loads(out.read_text())
    assert len(written) == 1 and written[0]["before_ms"] > 0 and written[0]["gemm_ms"] > 0
    assert written[0]["before"] in ALGORITHMS
    assert printed[0].startswith("2-D, 2 × 1 → 16, 3^2 at dilation 1 on 9^2, padded (lanes ")
    assert printed[-1].startswith("loss (Σ |log ratio| where the rule picks the slower): none ")
    nowhere = str(tmp_path / "no" / "rows.json")
    for wrong, message in ((["--layers", "0"], "--layers must be at least 1"),
                           (["--json", nowhere], "--json: no directory")):
        with pytest.raises(SystemExit):
            bench.main(wrong)
        assert message in capsys.readouterr().err


def test_window_fold_bench_times_the_fold_against_the_heuristics_other_way(monkeypatch, capsys):
    """``python -m cnnkit.bench.window_fold``: per layer its gain, whether the heuristic folds,
    what runs without the fold and both times."""
    from cnnkit.bench import window_fold as bench
    monkeypatch.setattr(bench, "LAYERS", {"stem": (2, 3, 8, 30, 7, 2, 3),
                                          "patches": (2, 3, 8, 32, 4, 4, 0)})
    gain, taken, before, *times = bench.measure("stem", repeats=2)
    assert gain > 1.15 and taken and before in ("subpixel", "gemm") and min(times) > 0
    bench.main(["--repeats", "1"])
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("implicit_fold_min_gain now: 1.15")
    assert [r.split(" | ")[0] for r in rows[3:]] == ["| stem", "| patches"]
    assert rows[4].startswith("| patches | ") and " | no | " in rows[4]


def test_window_fold_bench_times_the_fold_on_each_tile(monkeypatch):
    """``python -m cnnkit.bench.window_fold --tiles``: the command that re-measures the fold's
    entry of the tile table: each candidate's time per layer, its ratio to the table's tile,
    which it marks; the candidates fit the register budget."""
    from cnnkit.bench import window_fold as bench
    from cnnkit.cpu import TILES, host, tile_registers
    for registers in TILES:
        candidates = bench.tile_candidates(registers)
        assert TILES[registers].fold in candidates
        assert all(tile_registers(r, v) <= registers for r, v in candidates)
    monkeypatch.setattr(bench, "LAYERS", {"stem": (1, 3, 8, 30, 7, 2, 3),
                                          "wide": (1, 64, 8, 30, 3, 2, 1)})
    lines = []
    results = bench.measure_tiles(1, candidates=[(2, 1)], log=lines.append)
    table = host().tiles.fold
    assert list(results)[0] == table and (2, 1) in results
    assert all(list(times) == ["stem"] and times["stem"] > 0 for times in results.values())
    assert lines[1] == "| tile | stem | geomean ratio |"
    assert lines[3].endswith("| 1.000  <- table |")
    with pytest.raises(ValueError, match="no layer of fewer input channels"):
        bench.measure_tiles(1, only=["wide"], log=lines.append)
