"""``cnnkit cpu``: the CPU the compiled kernels are built for, and its register tiles."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cpu", help="the CPU target the kernels compile for, and its register tiles",
        description="Print the compilation target cnnkit detected (cnnkit/cpu.py): vector "
                    "width, vector registers, FMA, the ISA family and its register-tile "
                    "table; NUMBA_CPU_NAME=haswell (or another CPU) emulates that CPU. "
                    "python -m cnnkit.bench.tiles re-measures the tiles.")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..cpu import host
    print(host().summary())
    return 0
