"""What the benchmark runs on, as each library sees it: the header of the bench's output.

A ratio to PyTorch is only meaningful next to what each side was allowed to use: the ISA
cnnkit compiles for (``cnnkit.cpu.host()``, possibly emulated), the kernel set PyTorch's ATen
dispatches to and the ISA oneDNN generates code for, and which BLAS NumPy loaded with which
kernels (OpenBLAS picks its kernels per CPU, unless ``OPENBLAS_CORETYPE`` holds it to another
core type, which can halve its sgemm on an AVX-512 machine).
"""
import contextlib
import ctypes
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

import cnnkit.cpu

from .isa import CAPS

_BLAS_KEYS = ("internal_api", "version", "architecture", "corename", "num_threads",
              "threading_layer", "prefix")


def blas_libraries():
    """The BLAS libraries loaded in this process (threadpoolctl's view), one dict each."""
    from threadpoolctl import threadpool_info
    return [{k: info[k] for k in _BLAS_KEYS if k in info}
            for info in threadpool_info() if info.get("user_api") == "blas"]


def _openblas_choice(env):
    """The core type OpenBLAS picks in a fresh process with ``env`` (None if it cannot tell)."""
    code = ("import json, numpy, threadpoolctl; print(json.dumps([i.get('architecture') for i "
            "in threadpoolctl.threadpool_info() if i.get('internal_api') == 'openblas']))")
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60, check=True)
        picks = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None
    return picks[0] if picks else None


def openblas_coretype(blas):
    """None when ``OPENBLAS_CORETYPE`` is unset; else {'set': its value, 'in_use': the core
    type OpenBLAS reports, 'own_choice': what it picks without the variable, 'holds': whether
    the variable changes OpenBLAS's pick}."""
    value = os.environ.get("OPENBLAS_CORETYPE")
    if value is None:
        return None
    in_use = next((b.get("architecture") for b in blas if b["internal_api"] == "openblas"),
                  None)
    own = _openblas_choice({k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"})
    holds = None if in_use is None or own is None else in_use.lower() != own.lower()
    return {"set": value, "in_use": in_use, "own_choice": own, "holds": holds}


def onednn_isa():
    """The ISA oneDNN generates code for (its verbose header, e.g. 'Intel AVX2'), or None.

    oneDNN prints it with C's stdio on its first primitive with verbose on, so file
    descriptor 1 is pointed at a temporary file around one small convolution."""
    try:
        import torch
        verbose = torch.backends.mkldnn.verbose
    except (ImportError, AttributeError):
        return None
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as capture:
        try:
            os.dup2(capture.fileno(), 1)
            with verbose(torch.backends.mkldnn.VERBOSE_ON), torch.no_grad():
                torch.nn.functional.conv2d(torch.ones(8, 16, 32, 32), torch.ones(16, 16, 3, 3))
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None).fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    for line in text.splitlines():
        if ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    return None


def _torch_capabilities():
    try:
        import torch
    except ImportError:
        return {"torch": None}
    return {"torch": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_isa": onednn_isa()}


def describe():
    """Everything the header prints, as a JSON-ready dict (the "machine" entry)."""
    import llvmlite.binding as llvm
    target = cnnkit.cpu.host()
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "cpu_count": os.cpu_count(), "machine": platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in f
                                if line.startswith("model name")), None)
    except OSError:
        info["cpu"] = None
    info["host_cpu"] = llvm.get_host_cpu_name()
    info["target"] = {"name": target.name, "family": target.family,
                      "vector_bits": target.vector_bits, "registers": target.registers,
                      "lanes": target.lanes, "fma": target.fma, "summary": target.summary()}
    info["emulated"] = target.emulated
    info["isa_caps"] = {name: os.environ[name] for name in CAPS if name in os.environ}
    info.update(_torch_capabilities())
    info["blas"] = blas_libraries()
    info["openblas_coretype"] = openblas_coretype(info["blas"])
    return info


def _blas_line(blas, coretype):
    parts = [f"{b['internal_api']} {b.get('version') or '?'}"
             + (f" ({b['architecture']} kernels)" if b.get("architecture") else "")
             + f", {b.get('num_threads')} threads" for b in blas] or ["none found"]
    line = "# BLAS (NumPy): " + "; ".join(parts)
    if coretype:
        line += f"; OPENBLAS_CORETYPE={coretype['set']} is set"
        if coretype["holds"]:
            line += (f" and holds OpenBLAS to {coretype['in_use']} (its own pick here: "
                     f"{coretype['own_choice']})")
        elif coretype["holds"] is False:
            line += f" (OpenBLAS picks {coretype['own_choice']} without it too)"
    return line


def header_lines(info):
    """The '# ...' lines that open the bench's output, from ``describe()`` plus the
    'threads', 'peak' and 'sgemm_gflops' entries."""
    where = (f"on a {info['host_cpu']} host" if info["emulated"]
             else f"native, not emulated: host {info['host_cpu']}")
    caps = ", ".join(f"{k}={v}" for k, v in info["isa_caps"].items()) or "none"
    peak, sgemm = info["peak"], info["sgemm_gflops"]
    return [
        f"# machine: {info.get('cpu')}, {info['cpu_count']} cores, threads={info['threads']}, "
        f"--isa {info.get('isa') or 'not given'}, numpy {info['numpy']}, torch {info['torch']}",
        f"# cnnkit target: {info['target']['summary']} ({where})",
        f"# PyTorch: ATen kernels {info.get('torch_cpu_capability')}, oneDNN ISA "
        f"{info.get('onednn_isa')}; ISA caps in the environment: {caps}",
        _blas_line(info["blas"], info["openblas_coretype"]),
        f"# peak (FMA loop in registers, {peak['chains']} chains × {peak['lanes']} lanes): "
        f"{peak['gflops_per_core']:.0f} GFLOP/s per core, {peak['gflops_total']:.0f} on "
        f"{peak['threads']} threads; sgemm {sgemm:.0f} GFLOP/s = "
        f"{sgemm / peak['gflops_total'] * 100:.0f} % of peak",
    ]
