"""ONNX's own backend test suite run against cnnkit (``cnnkit.onnx.backend.CnnkitBackend``).

Included: the node tests of the operators cnnkit's layers are made of, and the models
converted from PyTorch's layer tests that ship in the onnx wheel. Every included case must pass;
EXCLUDED would list exclusions with their reasons (none are needed with onnx 1.23: 142 cases).
"""
import re
import warnings

import pytest

pytest.importorskip("onnx")

import onnx.backend.test  # noqa: E402

from cnnkit.onnx.backend import CnnkitBackend  # noqa: E402

NODE_OPS = ("conv", "convtranspose", "averagepool", "maxpool", "globalaveragepool",
            "globalmaxpool", "batchnorm", "relu", "gemm", "flatten", "add")
PYTORCH_CONVERTED = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d", "AvgPool1d", "AvgPool2d",
                     "AvgPool3d", "MaxPool1d", "MaxPool2d", "MaxPool3d", "BatchNorm1d",
                     "BatchNorm2d", "BatchNorm3d")

INCLUDED = [re.compile(r"^test_(basic_)?(" + "|".join(NODE_OPS) + r")(_.*)?_cpu$"),
            re.compile(r"^test_(" + "|".join(PYTORCH_CONVERTED) + r")(_.*)?_cpu$")]
EXCLUDED = {}  # pattern -> reason
EXPECTED_COUNT = 142  # what the patterns select from onnx 1.23's suite (see test below)


class StrictBackend(CnnkitBackend):
    """Never reports a model incompatible: the runner would skip it silently; here an operator
    cnnkit lacks fails the case instead."""

    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs):
        return True


with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the suite's own case generators warn about overflows
    backend_test = onnx.backend.test.BackendTest(StrictBackend, __name__)
    for pattern in EXCLUDED:
        backend_test.exclude(pattern)
    _cases = backend_test.test_cases
# Keep only the selected cases (rather than thousands of skipped ones) as pytest items.
SELECTED = []
for _case in _cases.values():
    for _name in [n for n in vars(_case) if n.startswith("test_")]:
        if any(p.search(_name) for p in INCLUDED):
            SELECTED.append(_name)
        else:
            delattr(_case, _name)
globals().update(_cases)


def test_selection_is_the_expected_one():
    """Guards against a pattern silently matching nothing after an onnx upgrade."""
    assert len(SELECTED) - len(EXCLUDED) >= EXPECTED_COUNT
