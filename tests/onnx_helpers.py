"""Shared by the ONNX tests: run an exported model in onnxruntime and compare with cnnkit."""
import numpy as np
import pytest

import cnnkit

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RTOL, ATOL = 1e-4, 1e-5


def ort_session(proto):
    """One single-threaded onnxruntime session (the machine's cores are shared)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def randomize_batchnorm(model, rng):
    """Running statistics away from 0 and 1, so export mistakes in BatchNorm show."""
    for name, value in model.state_dict().items():
        if name.endswith("running_mean"):
            value[...] = rng.standard_normal(value.shape) * 0.3
        elif name.endswith("running_var"):
            value[...] = rng.uniform(0.5, 2.0, value.shape)
    return model


def assert_runtime_matches(model, input_shape, batch=2, opset=20, seed=0):
    """Export ``model`` for one example of ``input_shape``; onnxruntime on a batch of ``batch``
    (so the symbolic batch dimension is exercised) must match cnnkit's eval output."""
    from cnnkit.onnx import export
    model.eval()
    proto = export(model, input_shape, opset=opset)
    x = np.random.default_rng(seed).standard_normal((batch,) + tuple(input_shape))
    x = x.astype(np.float32)
    expected = model(cnnkit.tensor(x)).data
    (actual,) = ort_session(proto).run(None, {"input": x})
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)
    return proto
