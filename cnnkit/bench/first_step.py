"""How long a fresh install waits before its first step: one training step of a model and then
one image through it in evaluation, on an empty Numba cache, with the seconds each compiled
kernel took to compile.

    python -m cnnkit.bench.first_step [--model resnet_small ...] [--top 12]
    NUMBA_CPU_NAME=haswell python -m cnnkit.bench.first_step   # the AVX2 kernels

Each model runs in a child process of its own with a new, empty ``NUMBA_CACHE_DIR``, so every
kernel it reaches is compiled there, as on a fresh install (later runs load them from the
cache in well under a second). A kernel's seconds are its own: those of the kernels it
compiles inside it (a helper it calls) are counted for the helper (Numba's compile events).
A kernel listed with several compilations was compiled for that many argument types.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MODELS = ("lenet5", "vgg_small", "resnet_small")
BATCH = 32


def _child(model_name):
    """Run in the child: {"step_s", "eval_s", "kernels": [[name, seconds, compilations]]}."""
    from numba.core import event
    own, count, stack = {}, {}, []

    class Compiles(event.Listener):
        def on_start(self, ev):
            function = ev.data["dispatcher"].py_func
            stack.append([f"{function.__module__}.{function.__qualname__}",
                          time.perf_counter(), 0.0])

        def on_end(self, ev):
            name, start, inner = stack.pop()
            spent = time.perf_counter() - start
            own[name] = own.get(name, 0.0) + spent - inner
            count[name] = count.get(name, 0) + 1
            if stack:
                stack[-1][2] += spent

    import numpy as np
    import cnnkit
    import cnnkit.functional as F
    from cnnkit import models
    rng = np.random.default_rng(0)
    model = models.get(model_name)  # for Fashion-MNIST's 28 × 28 images, ten classes
    x = cnnkit.tensor(rng.standard_normal((BATCH, 1, 28, 28), dtype=np.float32))
    labels = cnnkit.tensor(np.arange(BATCH) % 10)
    with event.install_listener("numba:compile", Compiles()):
        start = time.perf_counter()
        F.cross_entropy(model(x), labels).backward()
        step = time.perf_counter() - start
        model.eval()
        start = time.perf_counter()
        with cnnkit.no_grad():
            model(x[:1])
        evaluation = time.perf_counter() - start
    kernels = sorted(([name, seconds, count[name]] for name, seconds in own.items()),
                     key=lambda k: -k[1])
    return {"step_s": step, "eval_s": evaluation, "kernels": kernels}


def measure(model_name):
    """The child's measurements for one model, on an empty Numba cache of its own."""
    with tempfile.TemporaryDirectory(prefix="cnnkit-numba-") as cache:
        run = subprocess.run([sys.executable, "-m", "cnnkit.bench.first_step", "--child",
                              model_name], capture_output=True, text=True,
                             env={**os.environ, "NUMBA_CACHE_DIR": cache})
    if run.returncode != 0:
        raise RuntimeError(f"the first step of {model_name} failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def report(model_name, result, top):
    lines = [f"{model_name}: first training step {result['step_s']:.1f} s (batch {BATCH}), "
             f"then one image in evaluation {result['eval_s']:.1f} s; compiling, by kernel:"]
    for name, seconds, compilations in result["kernels"][:top]:
        times = f" ({compilations} compilations)" if compilations > 1 else ""
        lines.append(f"  {seconds:6.1f} s  {name}{times}")
    total = sum(seconds for _, seconds, _ in result["kernels"])
    lines.append(f"  {total:6.1f} s  in all, {len(result['kernels'])} kernels")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnkit.bench.first_step",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", choices=MODELS, default=["resnet_small"])
    parser.add_argument("--top", type=int, default=12, help="kernels listed per model")
    parser.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child)))
        return
    if args.top < 0:
        parser.error("--top must be at least 0")
    for model_name in args.model:
        print(report(model_name, measure(model_name), args.top))


if __name__ == "__main__":
    main()
