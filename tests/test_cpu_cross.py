"""``cnnkit.cpu`` on architectures other than the host's: LLVM cross-compiles the same probe
(a 16-lane fused multiply-add) for an ARM CPU, and the description is read off its assembly
as it would be on that machine, so the ARM rows of the tile table are checked on any host."""
import pytest

from cnnkit import cpu

ARM = "aarch64-unknown-linux-gnu"


@pytest.mark.parametrize("name, features, family", [
    ("neoverse-n1", "+neon", "neon"),      # Graviton 2, Ampere Altra
    ("apple-m1", "+neon", "neon"),
    ("neoverse-v1", "+neon,+sve", "sve"),  # Graviton 3: SVE, but the kernels use 128 bits
])
def test_arm_cpus_are_described_from_their_probe(name, features, family):
    assembly = cpu._probe_assembly(name, features, ARM)
    assert "fmla" in assembly and "zmm" not in assembly and "ymm" not in assembly
    bits, fma, registers, described = cpu._describe(name, features, assembly, "aarch64")
    assert (bits, fma, registers, described) == (128, True, 32, family)
    arm = cpu.CPU(name=name, arch="aarch64", family=described, vector_bits=bits,
                  registers=registers, fma=fma, emulated=False)
    assert arm.lanes == 4 and arm.tiles == cpu.TILES[32]
    assert arm.summary().endswith("implicit-GEMM tiles 8×4, 10×8, 8×12, 6×16, planar 4×16, "
                                  "fold 5×20, along rows 14×4, 10×8")


def test_x86_descriptions_follow_the_probe_not_the_name():
    """The same reading on x86, cross-compiled: the width comes from the registers the
    assembly names (and a CPU without FMA is told apart by its multiplies)."""
    x86 = "x86_64-unknown-linux-gnu"
    for name, family, registers in (("skylake-avx512", "avx512", 32), ("haswell", "avx2", 16),
                                    ("sandybridge", "avx", 16), ("nehalem", "sse", 16)):
        assembly = cpu._probe_assembly(name, "", x86)
        bits, fma, count, described = cpu._describe(name, "", assembly, "x86_64")
        assert (described, count) == (family, registers)
        assert fma == (family in ("avx512", "avx2"))
