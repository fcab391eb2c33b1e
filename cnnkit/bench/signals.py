"""Suite 2: ``cnnkit.signal.correlate(mode='same')`` against scipy and PyTorch ('same' conv)."""
import numpy as np

from .timing import best_of_interleaved

# name: (signal shape, kernel shape)
SIGNAL_CASES = {
    "img512_k3": ((512, 512), (3, 3)),
    "img512_k11": ((512, 512), (11, 11)),
    "img2048_k31": ((2048, 2048), (31, 31)),
    "sig1M_k1024": ((1_000_000,), (1024,)),
    "vol64_k5": ((64, 64, 64), (5, 5, 5)),
}


def signal_case(name, repeats):
    import scipy.signal
    import torch
    import torch.nn.functional as TF

    import cnnkit.signal
    shape, kshape = SIGNAL_CASES[name]
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape, dtype=np.float32)
    k = rng.standard_normal(kshape, dtype=np.float32)
    conv = getattr(TF, f"conv{len(shape)}d")
    at, kt = torch.tensor(a)[None, None], torch.tensor(k)[None, None]

    def theirs_torch():
        with torch.no_grad():
            conv(at, kt, padding="same")
    functions = [lambda: cnnkit.signal.correlate(a, k, mode="same"),
                 lambda: scipy.signal.correlate(a, k, mode="same", method="auto"),
                 theirs_torch]
    # two calls per turn: PyTorch's long direct convolutions (2.4 s for sig1M_k1024) left the
    # next call, whichever library's, several times slower on the benchmark's machine
    t_ours, t_scipy, t_torch = best_of_interleaved(functions, repeats, budget_s=30.0,
                                                   back_to_back=2)
    faster = min(t_scipy, t_torch)
    return {"suite": "signals", "name": name, "mode": "same", "cnnkit_ms": t_ours * 1e3,
            "scipy_ms": t_scipy * 1e3, "torch_ms": t_torch * 1e3,
            "ratio": t_ours / faster, "ratio_vs_torch": t_ours / t_torch,
            "method": cnnkit.signal.choose_conv_method(a, k, mode="same")}


def run(repeats=3, only=None):
    for name in SIGNAL_CASES:
        if not only or name in only:
            yield signal_case(name, repeats)
