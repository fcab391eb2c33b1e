"""Each compiled helper is compiled once per kind of operand, not once per way of calling it.

Numba compiles a function again for each distinct tuple of argument types, and three
differences in type make no difference to the work:
  * a literal int, a constant written in a compiled caller (``Literal[int](0)``), against
    an int64 variable;
  * a ``prange`` index, which Numba types unsigned in the parallel body, against a signed
    int;
  * a read-only array (a NumPy array flagged so, or a module-level array read by compiled
    code, which Numba freezes as a constant) against a writable one.
A helper reached both ways is compiled twice, seconds for the GEMM kernels: resnet_small's
first training step on an empty Numba cache took 85.0 s while the strided input gradient's
kept tables were flagged read-only and compiled callers passed literals, 63.4 s since
(``python -m cnnkit.bench.first_step``). So compiled callers pass ``np.int64(...)`` for such
ints and hand arrays down as arguments. (A literal bool is left alone: it may be meant, to
let Numba drop a branch.)

The layers run in a child process, so that only their own calls count, not those of the
other tests in this one.
"""
import json
import os
import subprocess
import sys
import tempfile

import pytest

torch = pytest.importorskip("torch")  # the test extra: marks the slow, whole-model tests

WORKLOAD = r"""
import json, sys
import numpy as np
import numba
import cnnkit, cnnkit.models
import cnnkit.functional as F
from numba.core import types

rng = np.random.default_rng(0)
labels = cnnkit.tensor(np.arange(8) % 10)
for name in ("lenet5", "vgg_small", "resnet_small"):
    model = cnnkit.models.get(name)
    x = cnnkit.tensor(rng.standard_normal((8, 1, 28, 28), dtype=np.float32))
    F.cross_entropy(model(x), labels).backward()
    model.eval()
    with cnnkit.no_grad():
        model(x[:1])
# other layers: 1-D and 3-D, grouped, depthwise, dilated, strided, transposed
for dims, c, k, groups, stride, dilation in ((1, 4, 8, 1, 2, 1), (3, 4, 8, 1, 1, 1),
                                             (2, 16, 32, 4, 1, 1), (2, 16, 16, 16, 2, 1),
                                             (2, 8, 8, 1, 1, 2)):
    x = cnnkit.tensor(rng.standard_normal((4, c) + (12,) * dims, dtype=np.float32),
                      requires_grad=True)
    w = cnnkit.tensor(rng.standard_normal((k, c // groups) + (3,) * dims, dtype=np.float32),
                      requires_grad=True)
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    conv(x, w, stride=stride, padding=1, dilation=dilation, groups=groups).sum().backward()
    if dims == 2 and groups == 1:
        wt = cnnkit.tensor(rng.standard_normal((c, k, 3, 3), dtype=np.float32),
                           requires_grad=True)
        F.conv_transpose2d(x, wt, stride=2, padding=1).sum().backward()


def alike(a, b):  # whether argument types a and b differ in none of the ways that count
    for one, other in ((a, b), (b, a)):
        if isinstance(one, types.Literal) and not isinstance(one, types.BooleanLiteral) \
                and not isinstance(other, types.Literal) and types.unliteral(one) == other:
            return True
    if {a, b} <= {types.int64, types.uint64}:
        return True
    if isinstance(a, types.Array) and isinstance(b, types.Array):
        return a.copy(readonly=False) == b.copy(readonly=False)
    return a == b


twice = {}
for module_name, module in list(sys.modules.items()):
    if not module_name.startswith("cnnkit."):
        continue
    for attribute, value in vars(module).items():
        if not isinstance(value, numba.core.registry.CPUDispatcher) or \
                value.py_func.__module__ != module_name:
            continue
        signatures = value.signatures
        for i, first in enumerate(signatures):
            for second in signatures[i + 1:]:
                if len(first) == len(second) and all(map(alike, first, second)):
                    twice[f"{module_name}.{attribute}"] = [str(first), str(second)]
print(json.dumps(twice))
"""


def test_no_helper_is_compiled_twice_for_the_same_work():
    # an empty cache: a helper whose callers' code is loaded from the cache is not compiled,
    # nor listed
    with tempfile.TemporaryDirectory() as cache:
        run = subprocess.run([sys.executable, "-c", WORKLOAD], capture_output=True, text=True,
                             timeout=900, env={**os.environ, "NUMBA_CACHE_DIR": cache})
    assert run.returncode == 0, run.stderr[-3000:]
    twice = json.loads(run.stdout.strip().splitlines()[-1])
    assert twice == {}, "compiled twice for the same work:\n" + "\n".join(
        f"{name}:\n  {a}\n  {b}" for name, (a, b) in twice.items())
