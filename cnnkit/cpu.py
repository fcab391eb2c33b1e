"""What the compiled kernels are compiled for: the CPU, detected once, and its register tiles.

The compiled kernels (``cnnkit/kernels/*_numba.py``) keep a tile of the output in vector
registers. How big that tile may be is a property of the instruction set, not of the code:
AVX-512 has 32 registers of 16 float32 lanes, AVX2 16 of 8, NEON 32 of 4. A tile sized for
one spills on another (an 8 × 32 tile, right for AVX-512, needs 32 of AVX2's 16 registers).
So, as BLIS keeps one kernel configuration per architecture, cnnkit keeps one small table per
ISA family (``TILES``) and the kernels read it at compile time.

The target is the one Numba compiles for: the host CPU, or ``NUMBA_CPU_NAME`` (with
``NUMBA_CPU_FEATURES``) when set, which is how one machine measures another:
``NUMBA_CPU_NAME=haswell`` compiles and runs AVX2 code on an AVX-512 machine. Setting only
``NUMBA_CPU_NAME`` would keep the host's feature list, AVX-512 included, so cnnkit then
compiles for the named CPU's own features (``emulate``).

The vector width is not guessed from feature names: LLVM compiles a 16-lane fused
multiply-add for the target, and the registers its assembly names (zmm, ymm, xmm on x86;
v registers on ARM) are the width the kernels will get. That also catches CPUs whose
feature list is empty or new.

    cnnkit cpu                  # prints the description and the tiles in use
"""
import dataclasses
import functools
import os
import platform
import re


def tile_registers(rows, vectors):
    """Vector registers an MR × NV register tile holds: MR·NV accumulators, NV operand vectors
    and 1 broadcast (the budget each entry of ``TILES`` must fit; a tile over it spills)."""
    return rows * vectors + vectors + 1


@dataclasses.dataclass(frozen=True)
class Tiles:
    """Register-tile shapes of the compiled kernels for one ISA family (see the kernels'
    docstrings for what the rows and vectors of each are).

    gemm_rows    MR of the implicit GEMM's channels-last tile, indexed by its vector count
                 NV (1 to 4; 0 = that NV is not used on this family): MR·NV accumulators
                 + NV operand vectors + 1 broadcast must fit the vector registers
    planar       (MR, NV) of the implicit GEMM's channels-first tile
    fold         (MR, NV) of the windows' columns product of a strided input gradient
                 (``window_fold_numba``): the planar kind of tile, kernel taps as rows and
                 dy's positions on the lanes, on K terms only
    rows         the row correlation's (MR, NV) tiles: a one-row tile for 1-D signals and
                 four-row tiles of growing width
    sliding      MR of the implicit GEMM's tile along an output row
                 (``microkernel.sliding_micro_kernel``), indexed by NV as ``gemm_rows`` (0 =
                 the plain tile for that NV): MR·NV accumulators + KW·NV weight vectors +
                 1 broadcast, for KW up to 5
    sliding_gain that tile's speed over the plain tile's of the same NV, per output it
                 computes: a shape whose rows make it compute more outputs than it keeps
                 (``implicit_gemm_numba.sliding_tiles``) runs along rows while that ratio
                 stays under the gain (``conv.implicit.sliding_width``). The default where
                 ``cnnkit tune`` has not measured this machine's
                 (``implicit_gemm_numba.sliding_gain``)
    lanes_wide_width the padded width up to which a stride-1 depthwise pass with a kernel
                 of more than 9 taps runs with its channels on the lanes rather than on the
                 row correlation, where ``cnnkit tune`` has not measured this machine's
                 (``depthwise_lanes_wide_max_width``)
    """
    gemm_rows: tuple
    planar: tuple
    fold: tuple
    rows: tuple
    sliding: tuple
    sliding_gain: tuple
    lanes_wide_width: int


# Per family: register budget, as in BLIS's per-architecture configurations (the Haswell
# sgemm kernel is 6 × 16: 12 ymm accumulators + 2 B vectors + 1 broadcast of 16 registers).
# Re-measured by ``python -m cnnkit.bench.tiles`` (with NUMBA_CPU_NAME=haswell for the AVX2 row):
# it times every tile near the budget; ``--planar`` and ``--rows`` do the same for the planar
# and row-correlation entries; figures in BENCHMARKS.md.
#   32 registers (AVX-512, NEON, SVE at 128 bits): 8 × 1, 10 × 2 = 20 accumulators, 8 × 3 = 24,
#   6 × 4 = 24 (10 × 2 ran 213 against 199 GFLOP/s for 8 × 2, one core; 12 × 2 spilled: 102).
#   16 registers (AVX2, AVX, SSE): 8 × 1 = 8 accumulators, 6 × 2 = 12, 4 × 3 = 12; no 4-vector
#   tile (3 × 4 + 4 + 1 = 17 would spill). The three-vector tiles are there for channel counts
#   of three vectors' multiples (48 and 96 on AVX-512, 24 on AVX2), which a wider tile pads:
#   ``implicit_gemm_numba.tile`` picks the tile that pads least. The row correlation's four
#   output rows share each input vector, so its tiles are 4 × NV with 4·NV + NV + 1 registers.
#   One core: planar 4 × 4 176 GFLOP/s on AVX-512 (6 × 4: 163); on AVX2, timed alternately,
#   6 × 2 ran 94–104 and 4 × 3 94–106, too close to change the table. Rows, 1024² ⋆ 11 × 11:
#   4 × 4 79 (6 × 4: 82); 2²⁰ ⋆ 127: 1 × 4 67, AVX2 58, the fastest. On AVX2 4 × 3 beat 4 × 2
#   on that image (59–64 against 55–59) and on 2048² ⋆ 31 × 31 (89 against 98 ms), but its
#   24-wide tiles pad 56-wide planes to 72 (depthwise 3 × 3 on 256 planes of 56 × 56: 1.62
#   against 1.56 ms) and tied on 3 × 3 and 5 × 5 images, so the table keeps 4 × 2.
#   The tiles along rows (``sliding``, ``python -m cnnkit.bench.tiles --sliding``), one core,
#   16 → 16 channels 3 × 3 on 28 × 28 maps and 6 → 16 5 × 5 on 14 × 14, GFLOP/s: AVX-512
#   MR 14 176.6 and 161.2 against 73.4 and 74.0 for the plain 8 × 16 tile (MR 16, which 28
#   does not divide: 141.0); AVX2 (8 lanes) MR 8 77.4 and 77.3 against 68.5 and 68.8 (MR 10:
#   86.0 on the 3 × 3 layer, 65.9 on the 5 × 5 one, 16 registers). Two vectors wide (32
#   outputs on AVX-512; BENCHMARKS.md, "Two vectors of outputs along rows"): MR 10, whose
#   20 accumulators + 10 weight vectors + 1 broadcast fill 31 registers at KW 5. AVX2 has
#   none: at two vectors its 16 registers leave MR 4 (KW 3), which ran slower than the 6 × 16
#   tile in a scratch version (90 against 104 GFLOP/s). The gains, on rows of twice MR
#   (the tool's ratio beside the table's MR; the lower readings): AVX-512 one vector 2.2
#   (2.18–2.87), two vectors 1.25 (1.26–1.40); AVX2 1.3 (1.29–1.39). Those were read on an
#   Emerald Rapids machine; a Rocket Lake one read 1.45–1.48 and 1.09–1.17, so ``cnnkit tune``
#   measures each machine's (``implicit_sliding_gain_1`` and ``_2``).
#   lanes_wide_width: 5 × 5 and 7 × 7 depthwise layers, 8 images of 64 channels, 2 threads,
#   ms, forward / input gradient, lanes against the row correlation (BENCHMARKS.md, "Depthwise
#   layers with kernels over 3 × 3 on the lanes"): on AVX2 the lanes won at every map tried,
#   28² to 112² (5 × 5 on 56²: 0.86 / 0.96 against 1.46 / 1.59); on AVX-512 the lanes won or
#   tied on 5 × 5 layers up to 96² (not on 112²), on 7 × 7 ones up to 40² (not on 48², 56²,
#   64², 96² or 112², but on 80²), so 48 columns, padded.
#   fold (``python -m cnnkit.bench.window_fold --tiles``; BENCHMARKS.md, "The windows' fold on
#   a tile of its own"): its product sums only K terms per cell, so a tile's stores and its
#   loads per multiply-add weigh more than in the planar GEMM's. 2 threads, ms, best of 10,
#   the table's tile against the planar one: AVX-512 5 × 80 against 4 × 64 on AlexNet's
#   first layer 4.598 / 4.775, ResNet's stem 3.816 / 4.251, a 3 × 3 stride-2 layer of 3
#   channels 3.405 / 3.652, a 5 × 5 one 1.231 / 1.354 (geomean over the tool's nine layers
#   1.064 times 5 × 80's; every other candidate 1.030–1.428). AVX2, best of 12, two runs:
#   4 × 24 against 6 × 16 6.809 and 6.901 / 7.252 and 7.394, 5.690 and 5.617 / 6.229 and
#   6.211, 4.824 and 4.857 / 5.026 and 5.216, 1.696 and 1.714 / 2.010 and 1.971 (geomean
#   1.087 and 1.093). 2 × 40 read 0.985 and 0.987 of 4 × 24's by the geomean, all of it on
#   small layers and the 3 × 3 kernel (9 taps on 10 rows, against 12), and slower on the
#   two largest (AlexNet's, the stem's), so the table keeps 4 × 24.
# The kernels compile these numbers in, and Numba's on-disk cache knows a kernel by its own
# source file, not by this table: after editing it, delete the kernels' cached builds
# (cnnkit/kernels/__pycache__/*.nbi and *.nbc), or a stale tile runs against new buffers.
TILES = {
    32: Tiles(gemm_rows=(0, 8, 10, 8, 6), planar=(4, 4), fold=(5, 5),
              rows=((1, 4), (4, 1), (4, 2), (4, 4)), sliding=(0, 14, 10),
              sliding_gain=(0, 2.2, 1.25), lanes_wide_width=48),
    16: Tiles(gemm_rows=(0, 8, 6, 4, 0), planar=(6, 2), fold=(4, 3),
              rows=((1, 4), (4, 1), (4, 2), (4, 2)), sliding=(0, 8), sliding_gain=(0, 1.3),
              lanes_wide_width=1 << 20),
}


@dataclasses.dataclass(frozen=True)
class CPU:
    """The compilation target, as the kernels see it."""
    name: str           # LLVM's CPU name (e.g. 'haswell', 'skylake-avx512', 'neoverse-n1')
    arch: str           # 'x86_64', 'aarch64', ...
    family: str         # 'avx512', 'avx2', 'avx', 'sse', 'neon', 'sve' or 'generic'
    vector_bits: int    # width of the vector registers the kernels' code uses
    registers: int      # number of vector registers
    fma: bool           # fused multiply-add in hardware
    emulated: bool      # NUMBA_CPU_NAME names a CPU other than the host

    @property
    def lanes(self) -> int:
        """float32 lanes of one vector register."""
        return self.vector_bits // 32

    @property
    def tiles(self) -> Tiles:
        return TILES[32 if self.registers >= 32 else 16]

    def summary(self) -> str:
        tiles = self.tiles
        gemm, sliding = (", ".join(f"{rows}×{self.lanes * nv}" for nv, rows in enumerate(table)
                                   if rows) for table in (tiles.gemm_rows, tiles.sliding))
        return (f"{self.name} ({self.family}{', emulated' if self.emulated else ''}): "
                f"{self.registers} × {self.vector_bits}-bit vector registers, "
                f"{'FMA' if self.fma else 'no FMA'}; implicit-GEMM tiles {gemm}, "
                f"planar {tiles.planar[0]}×{self.lanes * tiles.planar[1]}, "
                f"fold {tiles.fold[0]}×{self.lanes * tiles.fold[1]}, "
                f"along rows {sliding}")


def emulate():
    """When ``NUMBA_CPU_NAME`` names a CPU and ``NUMBA_CPU_FEATURES`` is unset, compile for that
    CPU's own features (Numba would otherwise pass the host's, AVX-512 included). Called before
    anything is compiled (``cnnkit/__init__`` imports this module first)."""
    if os.environ.get("NUMBA_CPU_NAME") and "NUMBA_CPU_FEATURES" not in os.environ:
        os.environ["NUMBA_CPU_FEATURES"] = ""  # LLVM: the named CPU's default features
        try:
            from numba.core import config
        except ImportError:
            return
        if config.CPU_NAME and not config.CPU_FEATURES:
            config.CPU_FEATURES = ""


def _target():
    """(cpu name, feature string) as Numba's JIT passes them to LLVM."""
    import llvmlite.binding as llvm
    from numba.core import config
    name = config.CPU_NAME or llvm.get_host_cpu_name()
    if config.CPU_FEATURES is not None:
        features = config.CPU_FEATURES
    else:
        features = llvm.get_host_cpu_features().flatten()
    return name, features


_PROBE = """
declare <16 x float> @llvm.fmuladd.v16f32(<16 x float>, <16 x float>, <16 x float>)
define void @probe(<16 x float>* %a, <16 x float>* %b, <16 x float>* %c) {
  %x = load <16 x float>, <16 x float>* %a
  %y = load <16 x float>, <16 x float>* %b
  %z = load <16 x float>, <16 x float>* %c
  %r = call <16 x float> @llvm.fmuladd.v16f32(<16 x float> %x, <16 x float> %y, <16 x float> %z)
  store <16 x float> %r, <16 x float>* %c
  ret void
}
"""


def _probe_assembly(name, features, triple=None):
    """The assembly LLVM makes of a 16-lane multiply-add for this target (of the host's
    architecture, or cross-compiled for ``triple``, e.g. 'aarch64-unknown-linux-gnu')."""
    import llvmlite.binding as llvm
    if triple is None:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        target = llvm.Target.from_default_triple()
    else:
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
        target = llvm.Target.from_triple(triple)
    machine = target.create_target_machine(cpu=name, features=features, opt=2)
    module = llvm.parse_assembly(_PROBE)
    module.verify()
    return machine.emit_assembly(module)


def _describe(name, features, assembly, arch):
    if arch in ("x86_64", "amd64", "i686", "x86"):
        bits = 512 if "zmm" in assembly else 256 if "ymm" in assembly else 128
        fma = bool(re.search(r"vfn?madd", assembly))
        family = {512: "avx512", 256: "avx2" if fma else "avx"}.get(bits, "sse")
        registers = 32 if bits == 512 else 16
    elif arch in ("aarch64", "arm64"):
        bits, fma, registers = 128, "fmla" in assembly, 32
        family = "sve" if "+sve" in features else "neon"
    else:  # a plain generic vector width: correct everywhere, tuned nowhere
        bits, fma, registers, family = 128, False, 16, "generic"
    return bits, fma, registers, family


@functools.cache
def host() -> CPU:
    """The target the compiled kernels are built for (detected once per process)."""
    import llvmlite.binding as llvm
    emulate()
    name, features = _target()
    arch = platform.machine().lower()
    try:
        assembly = _probe_assembly(name, features)
    except Exception:  # an LLVM without this target: the generic width
        assembly, arch = "", "unknown"
    bits, fma, registers, family = _describe(name, features, assembly, arch)
    emulated = name != llvm.get_host_cpu_name()
    return CPU(name=name, arch=arch, family=family, vector_bits=bits, registers=registers,
               fma=fma, emulated=emulated)

