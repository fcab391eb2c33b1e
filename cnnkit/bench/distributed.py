"""``python -m cnnkit.bench.distributed``: data-parallel training speed on this machine, and a
projection to several machines.

Measured (each rank timing real training steps of vgg_small on 28×28 images; the threads are
split between the ranks as ``cnnkit train`` splits them):
  * images/s with 1 rank × batch 128 and 2 ranks × batch 64 (the same global batch);
  * the time of one gradient average (``DataParallel.average_gradients``: pack, bucketed
    in-place Allreduce, unpack) of vgg_small's gradients on 2 ranks;
  * whether overlapping the Allreduce with backward pays: each bucket's ``Iallreduce`` starts as
    soon as backward has finished its parameters, against the blocking average after backward;
  * the step with ``SyncBatchNorm`` (``--sync-bn``).
Projected (``ring_allreduce_seconds``): communication per step on N machines,
2(N−1)/N · bytes / bandwidth + 2(N−1)·latency, against the computation per step.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

RESNET18_PARAMS = 11_689_512  # torchvision's resnet18: 11.7M parameters
RESNET18_MACS = 1_814_073_344  # its multiply-adds per 224×224 image (forward)
LINK_GBITS = (10, 25, 100)
LATENCY_S = 20e-6  # per ring step: a typical TCP/RoCE small-message latency (an assumption)
BATCH = 128
OVERLAP_BUCKET = 128 << 10  # bytes: vgg_small's 0.97 MB of gradients in about 8 buckets


def ring_allreduce_seconds(nbytes: float, ranks: int, gbit_per_s: float,
                           latency_s: float = LATENCY_S) -> float:
    """Time of a ring Allreduce of ``nbytes`` over ``ranks`` machines: each sends and receives
    2(N−1)/N of the data, in 2(N−1) steps that each pay one latency."""
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes * 8 / (gbit_per_s * 1e9) + 2 * (ranks - 1) * latency_s


# -- the worker: one rank under mpiexec -------------------------------------------------------
def _worker(steps: int) -> None:
    import numpy as np

    from .. import distributed, manual_seed, models, optim
    from ..distributed.data_parallel import DataParallel
    from ..distributed.sync_batchnorm import convert_sync_batchnorm
    from ..functional import cross_entropy
    from ..summary import summarize
    from ..tensor import tensor
    from .overlap import OverlappedAverage

    comm = distributed.init()
    local_batch = BATCH // comm.world_size
    manual_seed(0)  # the same initial weights on every rank (DataParallel.start checks)
    model = models.get("vgg_small", in_channels=1, num_classes=10, input_size=28)
    parallel = DataParallel(model, comm)
    parallel.start()
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(comm.rank)
    images = tensor(rng.normal(size=(local_batch, 1, 28, 28)).astype(np.float32))
    labels = rng.integers(0, 10, local_batch)
    # Overlap needs several buckets, so that the first ones are summed while backward runs.
    overlapped = None
    if comm.world_size > 1:
        overlapped = OverlappedAverage(DataParallel(model, comm, bucket_bytes=OVERLAP_BUCKET))

    def backward_and_average(overlap: bool) -> None:
        loss = cross_entropy(model(images), labels)
        optimizer.zero_grad()
        if overlap:
            with overlapped.during_backward(len(labels)):
                loss.backward()
        else:
            loss.backward()
            parallel.average_gradients(len(labels))

    def gradients(overlap: bool) -> list:
        model.train(False)  # no BN statistics updated: both passes see the same model
        backward_and_average(overlap)
        model.train(True)
        return [p.grad.copy() for p in parallel.params]

    if overlapped:  # the experiment computes what the blocking average computes
        for a, b in zip(gradients(False), gradients(True)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)

    def step(overlap: bool) -> float:
        start = time.perf_counter()
        backward_and_average(overlap)
        optimizer.step()
        return time.perf_counter() - start

    modes = [False, True] if overlapped else [False]
    for overlap in modes:
        step(overlap)  # warm-up: compilation, first-touch of buffers
    times = {mode: [] for mode in modes}
    for _ in range(steps):  # interleaved, so the machine's load falls on both alike
        for overlap in modes:
            times[overlap].append(parallel.max_over_ranks(step(overlap)))
    result = {"ranks": comm.world_size, "local_batch": local_batch,
              "step_ms": 1e3 * statistics.median(times[False]),
              "gradient_bytes": int(sum(p.data.nbytes for p in parallel.params)),
              "buckets": len(parallel.buckets),
              "train_macs_per_image": 3 * summarize(model, (1, 28, 28)).total_macs,
              "threads": os.environ.get("OPENBLAS_NUM_THREADS", "all")}
    result["images_per_second"] = BATCH / (result["step_ms"] / 1e3)
    if overlapped:
        result["overlapped_step_ms"] = 1e3 * statistics.median(times[True])
        result["overlap_buckets"] = len(overlapped.parallel.buckets)
        averages = []
        for _ in range(20):
            start = time.perf_counter()
            parallel.average_gradients(local_batch)
            averages.append(parallel.max_over_ranks(time.perf_counter() - start))
        result["average_gradients_ms"] = 1e3 * statistics.median(averages)
        convert_sync_batchnorm(model, comm)  # --sync-bn: two more Allreduces per BN layer
        step(False)
        synced = [parallel.max_over_ranks(step(False)) for _ in range(steps)]
        result["sync_bn_step_ms"] = 1e3 * statistics.median(synced)
    if comm.is_main:
        print("RESULT " + json.dumps(result), flush=True)


# -- the driver -------------------------------------------------------------------------------
def _measure(ranks: int, steps: int) -> dict:
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("cnnkit.bench.distributed needs mpiexec: pip install 'cnnkit[mpi]'")
    # The workers' thread counts are cnnkit's own split (cores / ranks), not the caller's.
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_NUM_THREADS") and not k.startswith(("PMI_", "OMPI_"))}
    command = [mpiexec, "-n", str(ranks), sys.executable, "-m", "cnnkit.bench.distributed",
               "--worker", "--steps", str(steps)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"the {ranks}-rank run failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def projection(seconds_per_image: float, params: int, ranks_list, per_rank_batch=BATCH):
    """Rows (model, Gb/s, N, compute ms, communication ms) for data-parallel steps with
    ``per_rank_batch`` images per rank (compute per step is then the same at every N)."""
    compute = per_rank_batch * seconds_per_image
    rows = []
    for link in LINK_GBITS:
        for ranks in ranks_list:
            rows.append((link, ranks, 1e3 * compute,
                         1e3 * ring_allreduce_seconds(4 * params, ranks, link)))
    return rows


MAX_RANKS = 4096


def crossover(seconds_per_image: float, params: int, link: float, per_rank_batch):
    """The fewest ranks at which one step's Allreduce takes longer than its computation, or
    None. The global batch is ``per_rank_batch`` × N when per_rank_batch is given (up to
    ``MAX_RANKS`` ranks), else ``BATCH`` split over N ranks (up to one image per rank)."""
    for ranks in range(2, (MAX_RANKS if per_rank_batch else BATCH) + 1):
        batch = per_rank_batch if per_rank_batch else BATCH / ranks
        if ring_allreduce_seconds(4 * params, ranks, link) > batch * seconds_per_image:
            return ranks
    return None


def report(one: dict, two: dict) -> str:
    vgg_spi = 1.0 / one["images_per_second"]  # seconds per image, 1 rank, all cores
    rate = one["train_macs_per_image"] * 2 / vgg_spi  # cnnkit's FLOP/s on vgg_small
    resnet_spi = 3 * RESNET18_MACS * 2 / rate  # estimate: the same FLOP rate
    lines = ["| ranks × batch | threads/rank | step (ms) | images/s |", "|---|---|---|---|"]
    for r in (one, two):
        lines.append(f"| {r['ranks']} × {r['local_batch']} | {r['threads']} | "
                     f"{r['step_ms']:.0f} | {r['images_per_second']:.0f} |")
    lines += ["", f"2 ranks: gradient average of vgg_small ({two['gradient_bytes'] / 1e6:.2f} "
              f"MB in {two['buckets']} bucket(s)): {two['average_gradients_ms']:.2f} ms; step with "
              f"the Allreduce after backward {two['step_ms']:.0f} ms, overlapped with backward "
              f"({two['overlap_buckets']} buckets) {two['overlapped_step_ms']:.0f} ms; with "
              f"SyncBatchNorm {two['sync_bn_step_ms']:.0f} ms.", "",
              f"Projection (per-rank batch {BATCH}, compute per image from the 1-rank run: "
              f"vgg_small {1e3 * vgg_spi:.2f} ms measured; resnet18-sized {1e3 * resnet_spi:.0f} "
              f"ms estimated at the same {rate / 1e9:.1f} GFLOP/s for "
              f"{3 * RESNET18_MACS * 2 / 1e9:.1f} GFLOP per 224×224 image):", "",
              "| model | link | N | compute/step (ms) | Allreduce/step (ms) |",
              "|---|---|---|---|---|"]
    for name, spi, params in (("vgg_small", vgg_spi, two["gradient_bytes"] // 4),
                              ("resnet18-sized", resnet_spi, RESNET18_PARAMS)):
        for link, ranks, compute, comm in projection(spi, params, (2, 8, 64)):
            lines.append(f"| {name} | {link} Gb/s | {ranks} | {compute:.0f} | {comm:.2f} |")
    lines += ["", "Fewest machines at which the Allreduce outweighs the computation:", "",
              "| model | link | per-rank batch 128 | global batch 128 |", "|---|---|---|---|"]
    for name, spi, params in (("vgg_small", vgg_spi, two["gradient_bytes"] // 4),
                              ("resnet18-sized", resnet_spi, RESNET18_PARAMS)):
        for link in LINK_GBITS:
            weak = crossover(spi, params, link, BATCH)
            strong = crossover(spi, params, link, None)
            lines.append(f"| {name} | {link} Gb/s | {weak or f'none up to {MAX_RANKS}'} | "
                         f"{strong or f'none up to {BATCH}'} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnkit.bench.distributed",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the measurements here")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    if args.worker:
        return _worker(args.steps)
    one, two = _measure(1, args.steps), _measure(2, args.steps)
    print(report(one, two))
    if args.json:
        from ..io import atomic_write_text
        atomic_write_text(args.json, json.dumps({"one_rank": one, "two_ranks": two}, indent=1))


if __name__ == "__main__":
    main()
