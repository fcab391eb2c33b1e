"""Running the benchmark (or the tests) as if on another CPU: the ``--isa`` switch.

Each library has its own cap on the instructions it uses, all read from the environment at
start-up, so emulation means a fresh process with these variables set:

    cnnkit (Numba)   NUMBA_CPU_NAME       compile for that CPU (cnnkit.cpu: its own features)
    PyTorch (ATen)   ATEN_CPU_CAPABILITY  which of ATen's compiled kernel sets to dispatch to
    PyTorch (oneDNN) ONEDNN_MAX_CPU_ISA   the newest ISA oneDNN's JIT may generate
    NumPy (OpenBLAS) OPENBLAS_CORETYPE    which core's kernels OpenBLAS loads (cnnkit's GEMM
                                          paths run in it, so it is capped too)

A CPU can run code for an older ISA but not a newer one, so emulating an ISA the host lacks is
refused (``missing_features``). ``native`` removes every cap, so each library picks for the host.
"""
import platform

# --isa name: the environment that caps each library at it (see the module docstring).
EMULATIONS = {
    "avx2": {"NUMBA_CPU_NAME": "haswell", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "ATEN_CPU_CAPABILITY": "avx2", "OPENBLAS_CORETYPE": "Haswell"},
    "avx512": {"NUMBA_CPU_NAME": "skylake-avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
               "ATEN_CPU_CAPABILITY": "avx512", "OPENBLAS_CORETYPE": "SkylakeX"},
}
# The host features each emulation's code needs (LLVM's names): Haswell's AVX2 + FMA, and
# Skylake-SP's AVX-512 subsets, which is also what oneDNN's AVX512_CORE means.
REQUIRED_FEATURES = {
    "avx2": ("avx2", "fma"),
    "avx512": ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"),
}
ISA_CHOICES = ("native", *EMULATIONS)
# Every variable some emulation sets, plus the feature list cnnkit derives from the CPU name.
CAPS = sorted({name for env in EMULATIONS.values() for name in env} | {"NUMBA_CPU_FEATURES"})


def host_features():
    """The host CPU's feature names that it has (LLVM's names, e.g. 'avx2', 'avx512f')."""
    import llvmlite.binding as llvm
    return {name for name, present in llvm.get_host_cpu_features().items() if present}


def missing_features(isa, features=None):
    """The features ``isa`` needs that the host (or ``features``) lacks; () for 'native'."""
    if isa == "native":
        return ()
    have = host_features() if features is None else set(features)
    return tuple(f for f in REQUIRED_FEATURES[isa] if f not in have)


def environment(env, isa):
    """``env`` (a mapping) with the caps of ``isa`` set ('native': all caps removed); None
    leaves it unchanged. Applying it twice gives the same result (no restart loop)."""
    env = dict(env)
    if isa is None:
        return env
    if isa not in ISA_CHOICES:
        raise ValueError(f"isa must be one of {', '.join(ISA_CHOICES)}, got {isa!r}")
    for name in CAPS:
        env.pop(name, None)
    if isa != "native":
        # NUMBA_CPU_FEATURES="" is what cnnkit.cpu sets for a named CPU (its own features);
        # set here so the child's environment already holds it.
        env.update(EMULATIONS[isa], NUMBA_CPU_FEATURES="")
    return env


def test_targets(arch=None, features=None):
    """Numba CPU names the kernel tests also run under on this host, narrowest last: AVX2
    (if the host can run it) and a 128-bit generic target. Only names of the host's own
    architecture: 'generic' off x86-64."""
    arch = (arch or platform.machine()).lower()
    if arch not in ("x86_64", "amd64"):
        return ["generic"]
    return (["haswell"] if not missing_features("avx2", features) else []) + ["x86-64"]


if __name__ == "__main__":  # for the Makefile: the extra test targets, one line
    print(" ".join(test_targets()))
