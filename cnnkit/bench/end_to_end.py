"""Suite 3: training speed and peak memory of the default model, LeNet-5 and a small ResNet
(``MODELS``), and their latency on one image, cnnkit against PyTorch.

Speed: training steps of the two libraries alternate in one process (same batches, same
optimizer, same batch size); images/s is the best of several timed windows. Memory: each library
trains in a fresh child process and reports its peak resident memory (VmHWM) above the level it
had after building the model and the data, before the first step, so neither pays for the
other's imports and both pay for their allocator's caches. Latency: the trained-model use of
``cnnkit serve`` and ``cnnkit explain``, one image through the model in evaluation mode with no
gradients, where each layer's fixed cost per call (argument checks, dispatch, waking threads)
weighs more than its arithmetic.
"""
import json
import subprocess
import sys
import time

import numpy as np

import cnnkit
from cnnkit.bench.timing import best_of_interleaved

DEFAULT_MODEL = "vgg_small"


def _batches(batch_size, count, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((count, batch_size, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, (count, batch_size))
    return x, y


def _cnnkit_step(model, optimizer):
    import cnnkit.functional as F

    def step(x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(cnnkit.tensor(x)), cnnkit.tensor(y))
        loss.backward()
        optimizer.step()
    return step


def _torch_step(model, optimizer):
    import torch
    import torch.nn.functional as TF

    def step(x, y):
        optimizer.zero_grad()
        loss = TF.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        optimizer.step()
    return step


def cnnkit_training(name, lr=0.01):
    """(model, step): model ``name`` of ``cnnkit.models``, seeded and in training mode, and
    its training step step(x, y), SGD with momentum 0.9, as ``speed`` times it."""
    import cnnkit.models
    import cnnkit.optim
    cnnkit.manual_seed(0)
    model = cnnkit.models.get(name)
    model.train()
    return model, _cnnkit_step(model, cnnkit.optim.SGD(model.parameters(), lr=lr, momentum=0.9))


def _models(name, lr=0.01):
    import torch

    from cnnkit.bench.torch_twin import torch_twin
    ours, step_ours = cnnkit_training(name, lr)
    theirs = torch_twin(ours)
    theirs.train()
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=lr, momentum=0.9)
    return step_ours, _torch_step(theirs, opt_theirs)


def speed(name=DEFAULT_MODEL, batch_size=128, steps=5, repeats=4):
    ours, theirs = _models(name)
    x, y = _batches(batch_size, steps)

    def window(step):
        def run():
            for i in range(steps):
                step(x[i], y[i])
        return run
    # Two warm-up windows: the first loads (or compiles) the Numba kernels.
    t_ours, t_theirs = best_of_interleaved([window(ours), window(theirs)], repeats, warmup=2,
                                           budget_s=120.0)
    images = batch_size * steps
    return images / t_ours, images / t_theirs


def one_image_latency(name=DEFAULT_MODEL, calls=50, repeats=7):
    """ms per forward pass of one 28 × 28 image, evaluation mode, no gradients: (cnnkit,
    PyTorch), the best of ``repeats`` alternating windows of ``calls`` passes each."""
    import torch

    import cnnkit.models
    from cnnkit.bench.torch_twin import torch_twin
    cnnkit.manual_seed(0)
    ours = cnnkit.models.get(name)
    theirs = torch_twin(ours)
    ours.eval()
    theirs.eval()
    image = _batches(1, 1)[0][0]
    x_ours, x_theirs = cnnkit.tensor(image), torch.from_numpy(image)

    def ours_window():
        with cnnkit.no_grad():
            for _ in range(calls):
                ours(x_ours)

    def theirs_window():
        with torch.no_grad():
            for _ in range(calls):
                theirs(x_theirs)
    best = best_of_interleaved([ours_window, theirs_window], repeats, warmup=2, budget_s=30.0)
    return tuple(t / calls * 1e3 for t in best)


def _peak_child(library, name, batch_size, steps):
    """Run in a child process: peak RSS growth (MiB) over ``steps`` training steps.

    ``peak_mib`` is taken after one warm-up step on a small batch, which loads each library's
    compiled code (Numba's kernels, oneDNN's generated kernels) but none of the large batch's
    arrays; ``cold_peak_mib`` is measured from before that step, code loading included.
    """
    ours, theirs = _models(name)
    step = ours if library == "cnnkit" else theirs
    x, y = _batches(batch_size, 2)
    small_x, small_y = _batches(max(1, batch_size // 4), 1, seed=1)
    cold = _status_mib("VmRSS")
    step(small_x[0], small_y[0])
    # The baseline is taken before any step at full size, so memory that an allocator keeps
    # cached after the first step (PyTorch's does) counts for both libraries alike.
    base = _status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS: setup spikes don't count
    start = time.perf_counter()
    for i in range(steps):
        step(x[i % 2], y[i % 2])
    peak = _status_mib("VmHWM")
    return {"peak_mib": peak - base, "cold_peak_mib": peak - cold,
            "seconds": time.perf_counter() - start}


def _status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory(library, name=DEFAULT_MODEL, batch_size=128, steps=3):
    """``_peak_child``'s figures for ``library``, from a fresh process."""
    code = ("import json, sys; from cnnkit.bench.end_to_end import _peak_child; "
            f"print(json.dumps(_peak_child({library!r}, {name!r}, {batch_size}, {steps})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# The default model; LeNet-5, the model a course starts from: one-channel first layer, small
# maps, where fixed costs and thin products weigh most; and a small ResNet: batch norm after
# every convolution, 16- to 64-channel layers, and each block's sum of two branches.
MODELS = (DEFAULT_MODEL, "lenet5", "resnet_small")


def run(names=MODELS, batch_size=128):
    for name in names:
        ours, theirs = speed(name, batch_size)
        memory = {library: peak_memory(library, name, batch_size)
                  for library in ("cnnkit", "torch")}
        latency = one_image_latency(name)
        yield {"suite": "end_to_end", "name": name, "batch_size": batch_size,
               "cnnkit_images_per_s": ours, "torch_images_per_s": theirs,
               "cnnkit_peak_mib": memory["cnnkit"]["peak_mib"],
               "torch_peak_mib": memory["torch"]["peak_mib"],
               "cnnkit_cold_peak_mib": memory["cnnkit"]["cold_peak_mib"],
               "torch_cold_peak_mib": memory["torch"]["cold_peak_mib"],
               "cnnkit_one_image_ms": latency[0], "torch_one_image_ms": latency[1]}
