"""float16 is computed in float32 and stored in float16, as PyTorch does on the CPU: every
functional op that can reach a compiled kernel, values and gradients against torch's float16."""
import numpy as np
import pytest
import torch

import cnnkit
import cnnkit.functional as F

TF = torch.nn.functional


def _pair(rng, shape, scale=1.0):
    data = (rng.standard_normal(shape) * scale).astype(np.float16)
    return (cnnkit.tensor(data, requires_grad=True),
            torch.tensor(data, requires_grad=True))


# (name, input shape, cnnkit op, torch op, extra parameter shapes). Sizes reach the compiled
# kernels: 16 channels with a 3×3 kernel for conv2d, >= 65,536 elements elsewhere.
CASES = [
    ("conv1d", (2, 16, 40), F.conv1d, TF.conv1d, [(16, 16, 3), (16,)]),
    ("conv2d", (2, 16, 12, 12), F.conv2d, TF.conv2d, [(16, 16, 3, 3), (16,)]),
    ("conv3d", (1, 16, 6, 6, 6), F.conv3d, TF.conv3d, [(8, 16, 3, 3, 3), (8,)]),
    ("conv_transpose2d", (2, 16, 12, 12), F.conv_transpose2d, TF.conv_transpose2d,
     [(16, 8, 3, 3), (8,)]),
    ("relu", (4, 16, 32, 33), F.relu, TF.relu, []),
    ("max_pool2d", (4, 16, 32, 33), lambda x: F.max_pool2d(x, 2),
     lambda x: TF.max_pool2d(x, 2), []),
    ("max_pool1d", (4, 16, 1100), lambda x: F.max_pool1d(x, 3), lambda x: TF.max_pool1d(x, 3),
     []),
    ("avg_pool2d", (4, 16, 32, 33), lambda x: F.avg_pool2d(x, 2),
     lambda x: TF.avg_pool2d(x, 2), []),
    ("adaptive_avg_pool2d", (4, 16, 32, 33), lambda x: F.adaptive_avg_pool2d(x, 5),
     lambda x: TF.adaptive_avg_pool2d(x, 5), []),
    ("adaptive_max_pool2d", (4, 16, 32, 33), lambda x: F.adaptive_max_pool2d(x, 5),
     lambda x: TF.adaptive_max_pool2d(x, 5), []),
    ("batch_norm", (4, 16, 32, 33),
     lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
     lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True), [(16,), (16,)]),
]


@pytest.mark.parametrize("name, shape, ours, theirs, params", CASES, ids=[c[0] for c in CASES])
def test_float16_matches_torch(name, shape, ours, theirs, params, rng):
    x, tx = _pair(rng, shape)
    extra = [_pair(rng, p, 0.2) for p in params]
    out = ours(x, *[e[0] for e in extra])
    expected = theirs(tx, *[e[1] for e in extra])
    assert out.dtype == np.float16 and out.shape == tuple(expected.shape)
    # Both sides sum in float32 and round once: a float16 ulp or two apart at most.
    np.testing.assert_allclose(out.data.astype(np.float32), expected.detach().float().numpy(),
                               rtol=4e-3, atol=4e-3)
    g = rng.standard_normal(out.shape).astype(np.float16)
    out.backward(cnnkit.tensor(g))
    expected.backward(torch.tensor(g))
    for mine, reference in [(x, tx)] + extra:
        assert mine.grad.dtype == np.float16
        scale = float(np.abs(reference.grad.float().numpy()).max()) + 1.0
        np.testing.assert_allclose(mine.grad.astype(np.float32), reference.grad.float().numpy(),
                                   rtol=1e-2, atol=4e-3 * scale)


def test_batch_norm_running_statistics_stay_float16_and_are_updated(rng):
    x = cnnkit.tensor(rng.standard_normal((4, 16, 32, 33)).astype(np.float16))
    mean, var = np.zeros(16, np.float16), np.ones(16, np.float16)
    tmean, tvar = torch.zeros(16, dtype=torch.float16), torch.ones(16, dtype=torch.float16)
    F.batch_norm(x, mean, var, training=True)
    TF.batch_norm(torch.tensor(x.data), tmean, tvar, training=True)
    assert mean.dtype == var.dtype == np.float16
    np.testing.assert_allclose(mean, tmean.numpy(), atol=2e-3)
    np.testing.assert_allclose(var, tvar.numpy(), rtol=2e-3)


def test_float16_modules_train_a_step(rng):
    model = cnnkit.nn.Sequential(cnnkit.nn.Conv2d(16, 16, 3), cnnkit.nn.BatchNorm2d(16),
                                 cnnkit.nn.ReLU(), cnnkit.nn.MaxPool2d(2))
    for p in model.parameters():
        p.data = p.data.astype(np.float16)
    x = cnnkit.tensor(rng.standard_normal((4, 16, 66, 66)).astype(np.float16))
    out = model(x)
    out.sum().backward()
    assert out.dtype == np.float16 and all(p.grad.dtype == np.float16
                                           for p in model.parameters())
