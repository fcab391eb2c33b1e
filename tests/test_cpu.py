"""``cnnkit.cpu``'s target description under emulation, and that emulated code really is
narrower: each case runs in a fresh process, since Numba reads NUMBA_CPU_NAME at start-up."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import cnnkit.cpu
from cnnkit.bench import isa, peak
from cnnkit.kernels import implicit_gemm_numba as compiled

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the emulated CPU names are x86-64 ones")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(cpu_name, *args, **env_vars):
    """Run ``python *args`` with NUMBA_CPU_NAME=cpu_name and no other ISA cap (plus
    ``env_vars``); its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in isa.CAPS}
    env.update(env_vars)
    env.update(NUMBA_CPU_NAME=cpu_name, PYTHONPATH=os.pathsep.join(
        filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          check=True, timeout=300).stdout.strip()


@pytest.mark.parametrize("cpu_name, description", [
    ("haswell", "haswell (avx2, emulated): 16 × 256-bit vector registers, FMA;"),
    ("skylake-avx512", "skylake-avx512 (avx512, emulated): 32 × 512-bit vector registers, FMA;"),
    ("x86-64", "x86-64 (sse, emulated): 16 × 128-bit vector registers, no FMA;"),
])
def test_emulated_target_description(cpu_name, description):
    assert _run(cpu_name, "-m", "cnnkit", "cpu").startswith(description)


@pytest.mark.parametrize("cpu_name, registers", [
    ("haswell", ["ymm"]), ("skylake-avx512", ["zmm"]), ("x86-64", [])])
def test_emulated_kernel_uses_that_cpu_s_registers(cpu_name, registers):
    """The peak kernel's fused multiply-adds, compiled (not run) for the emulated CPU."""
    code = ("from cnnkit.bench import peak; asm = peak.assembly(); "
            "print(peak.fma_registers(asm), 'mulps' in asm and 'xmm' in asm)")
    fma, multiplies_xmm = _run(cpu_name, "-c", code).rsplit(" ", 1)
    assert fma == str(registers)
    if not registers:  # no FMA on plain x86-64: separate 128-bit multiplies and adds
        assert multiplies_xmm == "True"


_WIDEST = r"""
import numba, numpy as np
from cnnkit.kernels import activation_numba
from cnnkit.kernels import vector_math_numba as vector_math

@numba.njit(parallel=True, fastmath=vector_math.FMA)
def plain(x, out):
    for i in numba.prange(x.size):
        out[i] = vector_math.erfcx_f32(x[i])

@numba.njit(parallel=True, fastmath=vector_math.FMA)
def widest(x, out):
    for i in numba.prange(x.size):
        vector_math.widest_vectors()
        out[i] = vector_math.erfcx_f32(x[i])

x = np.zeros(64, np.float32)
for loop in (plain, widest, activation_numba._exact_gelu_forward):
    loop(x, x.copy())
    print("zmm" in "".join(loop.inspect_asm().values()), end=" ")
"""


@pytest.mark.parametrize("cpu_name, zmm", [("skylake-avx512", True), ("haswell", False)])
def test_transcendental_loops_ask_for_the_widest_vectors(cpu_name, zmm, tmp_path):
    """LLVM vectorises a float32 loop for skylake-avx512 in 256-bit registers unless the loop
    asks for more (``vector_math.widest_vectors``), as GELU's does; haswell has no zmm. The
    loops are compiled afresh (an empty cache), so that their assembly is there to read."""
    plain, widest, gelu = _run(cpu_name, "-c", _WIDEST, NUMBA_CACHE_DIR=str(tmp_path)).split()
    assert (plain, widest, gelu) == ("False", str(zmm), str(zmm))


# The targets whose tap loops are inspected: AMD's Zen 4 and Zen 3, Intel's client cores
# (Alder Lake) and server cores (Sapphire Rapids: its loops compiled the same as Emerald
# Rapids', instruction for instruction), and the two that --isa emulates.
TAP_LOOP_TARGETS = ["znver4", "znver3", "alderlake", "sapphirerapids", "skylake-avx512",
                    "haswell"]

_TAP_LOOP = r"""
import re, numpy as np
from cnnkit.cpu import host
from cnnkit.kernels import implicit_gemm_numba as compiled
for vectors, rows in enumerate(host().tiles.gemm_rows):
    if rows:
        run = compiled.forward_task(rows, vectors)  # the forward kernel's task for the tile
        arrays = (np.zeros((1, 1, 4, 4), np.float32),
                  np.zeros((1, 9, host().lanes * vectors), np.float32),
                  np.zeros(9, np.int64), np.zeros(4, np.int64), np.zeros((8, 16), np.float32),
                  compiled.NO_Y)
        signature = compiled.forward_task_types(*arrays, rows, vectors, 1, 1, 128,
                                                compiled.NO_ROWS, compiled.NO_BIAS)
        run.compile(signature)  # compiled, not run: the host need not have the target's ISA
        blocks = re.split(r"\n(?=\.LBB)", run.inspect_asm(signature))
        loop = max(blocks, key=lambda block: block.count("vfmadd"))
        spills = len(re.findall(r"vmov\w+\s+%[xyz]mm\d+, -?\d*\(%rsp\)", loop))
        print(rows, vectors, loop.count("vfmadd"), spills)
"""


@pytest.mark.parametrize("cpu_name", TAP_LOOP_TARGETS)
def test_tap_loop_is_one_tap_with_no_spill(cpu_name, tmp_path):
    """The micro-kernel's tap loop, compiled for each table tile: MR·NV fused multiply-adds per
    iteration and no vector stored to the stack. Unrolled, LLVM's schedulers for Zen 4, Zen 3
    and Alder Lake hoisted the next tap's broadcasts and spilled (``microkernel._not_unrolled``)."""
    # an empty cache: Numba knows a cached kernel by its own file, not by the micro-kernel's
    for line in _run(cpu_name, "-c", _TAP_LOOP, NUMBA_CACHE_DIR=str(tmp_path)).splitlines():
        rows, vectors, multiply_adds, spills = map(int, line.split())
        assert (multiply_adds, spills) == (rows * vectors, 0), line


_LANEWISE_LOOP = r"""
import re
from numba import types
from cnnkit.kernels import depthwise_lanes_numba as lanes
from cnnkit.kernels.microkernel import broadcasts, spans_vectors, wide_vectors
f32_3, f32_2, i64_1 = types.float32[:, :, ::1], types.float32[:, ::1], types.int64[::1]
literal = types.IntegerLiteral

def report(function, signature, rows, width, expected):
    function.compile(signature)  # compiled, not run
    blocks = re.split(r"\n(?=\.LBB)", function.inspect_asm(signature))
    loop = max(blocks, key=lambda block: block.count("vfmadd"))
    spills = len(re.findall(r"vmov\w+\s+%[xyz]mm\d+, -?\d*\(%rsp\)", loop))
    print(rows, width, expected, loop.count("vfmadd"), spills)

def per_term(rows, width, broadcast):
    # multiply-adds per iteration: MR·NV·G; the broadcast tile, one (tap, member) pair's
    # MR·(G / LANES)
    return rows * (wide_vectors(width) if broadcast else lanes.VECTORS * width)

for width in lanes.GROUP_WIDTHS:
    rows = lanes._pixels(width)
    report(lanes._tiles, (f32_2, i64_1, i64_1, types.int64, types.int64, f32_3, types.int64,
                          f32_2, i64_1, types.int64, literal(rows), literal(width)),
           rows, width, per_term(rows, width, broadcasts(width, lanes.VECTORS)))
    for rotate in range(2 if width in lanes.ROTATABLE else 1):  # weight gradient: taps as rows
        rows = lanes._tap_rows(width, rotate)
        report(lanes._spread_tiles, (f32_2, i64_1, i64_1, types.int64, f32_2, f32_3, i64_1,
                                     literal(rows), literal(width), literal(rotate)),
               rows, width, per_term(rows, width, spans_vectors(width)))
    if lanes._slides(width):  # along rows: MR·KW per (kernel row, member) pair
        rows = lanes.sliding_rows(1)
        for kw in lanes.SLIDING_WIDTHS:
            report(lanes._slide, (f32_2, i64_1, i64_1, f32_3, types.int64, f32_2, i64_1,
                                  literal(rows), literal(kw), literal(width)),
                   rows, width, rows * kw)
"""


@pytest.mark.parametrize("cpu_name", TAP_LOOP_TARGETS)
def test_lanewise_tap_loop_is_one_tap_with_no_spill(cpu_name, tmp_path):
    """The same for the lane-wise micro-kernel of the kernels with channels on the lanes, at
    each of its tile heights (pixels per group width, and the weight gradient's taps per group
    width, G sets of accumulators): MR·NV·G multiply-adds per tap, or where the tile is the
    broadcast one (``microkernel.broadcasts``, ``spans_vectors``) its per (tap, member) pair,
    and along rows (``_slide``, where the target has it) MR·KW per (kernel row, member)
    pair."""
    for line in _run(cpu_name, "-c", _LANEWISE_LOOP, NUMBA_CACHE_DIR=str(tmp_path)).splitlines():
        rows, width, expected, multiply_adds, spills = map(int, line.split())
        assert (multiply_adds, spills) == (expected, 0), line


_SLIDING_LOOP = r"""
import re, numba
from numba import types
from cnnkit.kernels import implicit_gemm_numba as compiled
ROWS = compiled.SLIDING_ROWS  # a global: compile-time constants in ``run``


def runner(vectors):
    rows = ROWS[vectors]

    @numba.njit
    def run(x, wt, runs, start, c_row, local, width):
        compiled.slide(x, wt, runs, start, c_row, local, 40, width, 0, 0, 0, rows, vectors)
    return run

i64_1, i64_2, f32_2 = types.int64[::1], types.int64[:, ::1], types.float32[:, ::1]
signature = (types.int64, f32_2, i64_1, i64_1, i64_2, f32_2, types.int64)
for vectors, rows in enumerate(ROWS):
    if not rows:
        continue
    run = runner(vectors)
    run.compile(signature)  # compiled, not run
    blocks = re.split(r"\n(?=\.LBB)", run.inspect_asm(signature))
    for block in sorted(blocks, key=lambda block: block.count("vfmadd"))[-2:]:  # KW 3 and 5
        spills = len(re.findall(r"vmov\w+\s+%[xyz]mm\d+, -?\d*\(%rsp\)", block))
        print(vectors, rows, block.count("vfmadd"), spills)
"""


@pytest.mark.parametrize("cpu_name", TAP_LOOP_TARGETS)
def test_sliding_run_loop_has_its_multiply_adds_and_no_spill(cpu_name, tmp_path):
    """The tiles along rows, compiled for each target and each NV it has them for:
    MR·NV·KW multiply-adds per run of KW taps (KW = 3 and 5), no vector stored to the stack."""
    lines = _run(cpu_name, "-c", _SLIDING_LOOP, NUMBA_CACHE_DIR=str(tmp_path)).splitlines()
    found = sorted(tuple(map(int, line.split())) for line in lines)
    per_nv = {}
    for vectors, rows, multiply_adds, spills in found:
        per_nv.setdefault((vectors, rows), []).append((multiply_adds, spills))
    assert per_nv and 1 in {vectors for vectors, _ in per_nv}, found
    for (vectors, rows), seen in per_nv.items():
        assert sorted(seen) == [(3 * rows * vectors, 0), (5 * rows * vectors, 0)], found


_COPY_LOOPS = r"""
from numba import types
from cnnkit.kernels import depthwise_lanes_numba, implicit_gemm_numba, pad_numba
from cnnkit.kernels import pad_modes_numba, planar_images_numba
i64, i64_1, f32_1 = types.int64, types.int64[::1], types.float32[::1]
f32_2, f32_3, u32_3 = types.float32[:, ::1], types.float32[:, :, ::1], types.uint32[:, :, ::1]
f32_4 = types.float32[:, :, :, ::1]
loops = [
    (implicit_gemm_numba._pad_into, (types.float32[:, :, :, ::1], i64_1, f32_1, i64,
                                     types.boolean)),
    (pad_numba._pad_planes, (u32_3, u32_3, i64, i64, i64, i64, i64, types.uint32,
                             types.boolean[::1])),
    (planar_images_numba._crop, (f32_1, i64, f32_2, i64_1, i64, i64)),
    (depthwise_lanes_numba._to_lanes, (f32_3, i64, i64, i64, i64_1, f32_2)),
    (pad_modes_numba._pad_rows, (f32_4, f32_4, i64_1, i64_1, i64_1, i64, i64, i64, i64)),
]
for function, signature in loops:
    function.compile(signature)  # compiled, not run
    assembly = function.inspect_asm(signature)
    print(function.py_func.__name__, assembly.count("scatter"), assembly.count("gather"),
          assembly.count("vmovups"))
"""
# Loops that read through a table of positions (a padded row's border cells, by
# ``padding._source_index``): gathers there are the reads themselves, not index wrapping.
_GATHERING_COPY_LOOPS = {"_pad_rows"}


@pytest.mark.parametrize("cpu_name", ["skylake-avx512", "sapphirerapids", "znver4"])
def test_copy_loops_store_vectors_not_scatters(cpu_name, tmp_path):
    """The loops that copy rows into padded or laid-out buffers index them unsigned: on a
    signed index Numba wraps negative values, and LLVM vectorised the copies as AVX-512
    scatters and gathers, a lane at a time (a per-image padding ran at half its speed;
    BENCHMARKS.md, "Copy loops on unsigned indices"). Compiled for AVX-512 targets, not
    run."""
    lines = _run(cpu_name, "-c", _COPY_LOOPS, NUMBA_CACHE_DIR=str(tmp_path)).splitlines()
    assert len(lines) == 5, lines
    for line in lines:
        name, scattered, gathered, vector_moves = line.split()
        if name in _GATHERING_COPY_LOOPS:
            gathered = 0
        assert (int(scattered), int(gathered), int(vector_moves) > 0) == (0, 0, True), line


_FLOAT64_EXP_LOOPS = r"""
import numpy as np
from cnnkit.kernels import activation_numba, erf_numba, loss_numba
x = np.linspace(-3, 3, 64, dtype=np.float32)
out = np.empty_like(x)
loops = [
    (activation_numba.elu_vector_forward, (x, 0.7, out)),
    (activation_numba.elu_vector_backward, (x, x, 0.7, out)),
    (activation_numba._tanh_gelu_forward, (x, out)),
    (erf_numba._erf, (x, out)),
    (erf_numba._erf_backward, (x, x, out)),
    (loss_numba._logit_cross_entropy_backward, (x, x, np.float32(0.5), out)),
]
for function, arguments in loops:
    function(*arguments)
    assembly = function.inspect_asm(function.signatures[0])
    print(function.py_func.__name__, assembly.count("cvttsd2si") + assembly.count("cvtsd2si"),
          assembly.count("pd\t"))
"""


def test_float64_exp_loops_convert_no_lane_alone_on_avx2(tmp_path):
    """The float64 loops built on ``vector_math.exp`` and ``expm1`` find 2^n without a
    float64 → int64 conversion, which AVX2 has for single values only: LLVM converted lane by
    lane there, and those loops took up to 1.4 times as long (BENCHMARKS.md, "float64 e^a
    without float64 → int64 conversions"). Compiled for ``haswell``."""
    lines = _run("haswell", "-c", _FLOAT64_EXP_LOOPS, NUMBA_CACHE_DIR=str(tmp_path)).splitlines()
    assert len(lines) == 6, lines
    for line in lines:
        name, converted, vector_ops = line.split()
        assert (int(converted), int(vector_ops) > 0) == (0, True), line


def test_fma_registers_reads_assembly():
    assert peak.fma_registers("vfmadd213ps %zmm0, %zmm14, %zmm2\n") == ["zmm"]
    assert peak.fma_registers("vfmadd231ps\t%ymm1, %ymm2, %ymm3") == ["ymm"]
    assert peak.fma_registers("fmla v0.4s, v1.4s, v2.4s") == ["v"]
    assert peak.fma_registers("mulps %xmm0, %xmm1") == []


def test_peak_loop_runs_on_every_thread_and_stays_finite():
    result = peak.measure(threads=2, repeats=1, iterations=1000)
    assert result["threads"] == 2 and result["chains"] == peak.CHAINS
    assert np.isfinite(result["gflops_total"]) and result["gflops_total"] > 0
    assert result["gflops_per_core"] == pytest.approx(result["gflops_total"] / 2)


@pytest.mark.parametrize("registers", sorted(cnnkit.cpu.TILES))
def test_every_tile_fits_its_register_file(registers):
    """MR·NV accumulators + NV operand vectors + 1 broadcast ≤ the family's vector registers
    (a tile over the budget spills: AVX-512's 8 × 2 on AVX2's 16 registers)."""
    tiles = cnnkit.cpu.TILES[registers]
    gemm = [(rows, vectors) for vectors, rows in enumerate(tiles.gemm_rows) if rows]
    assert gemm and all(vectors in (1, 2, 3, 4) for _, vectors in gemm)
    for rows, vectors in gemm + [tiles.planar, tiles.fold] + list(tiles.rows):
        assert cnnkit.cpu.tile_registers(rows, vectors) <= registers, (rows, vectors)
    assert tiles.rows[0][0] == 1 and all(rows == 4 for rows, _ in tiles.rows[1:])
    # the tiles along rows: MR·NV accumulators + KW·NV weight vectors + 1 broadcast, KW up
    # to 5, each faster than the plain tile of its NV
    sliding = [(rows, vectors) for vectors, rows in enumerate(tiles.sliding) if rows]
    assert sliding and sliding[0][1] == 1
    for rows, vectors in sliding:
        assert rows * vectors + max(compiled.SLIDING_WIDTHS) * vectors + 1 <= registers
        assert tiles.gemm_rows[vectors] and tiles.sliding_gain[vectors] > 1


def test_tile_tool_candidates_cover_the_table():
    from cnnkit.bench.tiles import _candidates
    for registers, tiles in cnnkit.cpu.TILES.items():
        candidates = _candidates(registers)
        assert all((rows, vectors) in candidates
                   for vectors, rows in enumerate(tiles.gemm_rows) if rows)
        assert tiles.planar in candidates
        assert set(tiles.rows) <= set(_candidates(registers, (1, 2, 4, 6, 8)))


def test_tile_tool_times_the_sliding_tile_against_the_plain_one():
    """``python -m cnnkit.bench.tiles --sliding``: the command that re-measures the table's
    ``sliding`` and ``sliding_gain`` entries (its own MRs here; each costs a compilation)."""
    from cnnkit.bench.tiles import measure_sliding
    table = [rows for rows in compiled.SLIDING_ROWS if rows]
    lines = []
    results = measure_sliding(threads=1, repeats=1, log=lines.append, candidates=table)
    layers = {layer for layer, _ in results}
    assert len(layers) == 2 * len(table)
    assert all(results[(layer, "plain")] > 0 for layer in layers)
    assert all(rate > 0 for rate in results.values())
    assert sum(line.endswith("<- table") for line in lines) == 2 * len(table)
    assert all("1.00 outputs computed per output" in line
               for line in lines if line.endswith("<- table"))


def test_tile_tool_times_a_tile_and_marks_the_table():
    """``python -m cnnkit.bench.tiles``: the command that re-measures the tile table (one
    tile here, each costs a compilation)."""
    from cnnkit.bench.tiles import measure
    from cnnkit.kernels import implicit_gemm_numba as compiled
    rows, vectors = compiled.TILE_ROWS[1], 1
    lines = []
    results = measure(threads=1, repeats=1, log=lines.append, candidates=[(rows, vectors)])
    assert list(results) == [(rows, vectors)] and results[(rows, vectors)] > 0
    assert lines[-1].endswith("<- table")


def test_planar_tile_tool_times_a_tile_and_marks_the_table():
    """``python -m cnnkit.bench.tiles --planar``: the command that re-measures the planar
    entry of the tile table."""
    from cnnkit.bench.tiles import measure_planar
    table = cnnkit.cpu.host().tiles.planar
    lines = []
    results = measure_planar(threads=1, repeats=1, log=lines.append, candidates=[table, (2, 1)])
    assert list(results) == [table, (2, 1)] and all(rate > 0 for rate in results.values())
    assert lines[1].endswith("<- table") and not lines[2].endswith("<- table")


def test_rows_tile_tool_times_both_cases_and_marks_the_table():
    """``python -m cnnkit.bench.tiles --rows``: the command that re-measures the row
    correlation's entries of the tile table, the one-row tile on the signal and the four-row
    tiles on the image."""
    from cnnkit.bench.tiles import measure_rows
    one_row, four_rows = cnnkit.cpu.host().tiles.rows[0], cnnkit.cpu.host().tiles.rows[1]
    lines = []
    results = measure_rows(threads=1, repeats=1, log=lines.append,
                           candidates=[one_row, four_rows])
    assert set(results) == {("image", *one_row), ("signal", *one_row), ("image", *four_rows)}
    assert all(rate > 0 for rate in results.values())
    marked = [line.split()[0] for line in lines[1:] if line.endswith("<- table")]
    assert marked == ["signal", "image"]


def test_block_tool_times_every_size_and_marks_the_constants():
    """``python -m cnnkit.bench.tiles --blocks``: the command that re-measures
    implicit_tap_block, implicit_position_block, implicit_weight_share_positions,
    implicit_plane_tap_block (on two layers), implicit_image_chunk (on three: two per-image
    products and one over the batch) and depthwise_weight_band (on three, in ms)."""
    from cnnkit import tuning
    from cnnkit.bench.tiles import measure_blocks
    lines = []
    results = measure_blocks(threads=1, repeats=1, log=lines.append)
    constants = {"tap": "implicit_tap_block", "position": "implicit_position_block",
                 "share": "implicit_weight_share_positions"}
    assert {key[0] for key in results} == set(constants) | {"depthwise band", "plane tap",
                                                            "image chunk"}
    assert all(value > 0 for value in results.values())
    for name, constant_name in constants.items():
        constant = tuning.CONSTANTS[constant_name]
        assert constant.measured_by == "python -m cnnkit.bench.tiles --blocks"
        assert (name, constant.default) in results
        assert sum(f"<- {constant_name}" in line for line in lines) == 1
    for name, constant_name, count in (("depthwise band", "depthwise_weight_band", 3),
                                       ("plane tap", "implicit_plane_tap_block", 2),
                                       ("image chunk", "implicit_image_chunk", 3)):
        constant = tuning.CONSTANTS[constant_name]
        assert constant.measured_by == "python -m cnnkit.bench.tiles --blocks"
        layers = {key[1] for key in results if key[0] == name}
        assert len(layers) == count
        assert all((name, layer, constant.default) in results for layer in layers)
        assert sum(f"<- {constant_name}" in line for line in lines) == count
