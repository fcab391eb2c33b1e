"""Data-parallel pieces without MPI: the launcher environment, the sharded loader, and the
gradient / batch-norm arithmetic over "ranks" that are threads (tests/thread_ranks.py).
The runs under a real ``mpiexec`` are in test_distributed_mpi.py."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnkit
from cnnkit import nn
from cnnkit.data import DataLoader, ShardedLoader, TensorDataset
from cnnkit.data.sampler import final_batch_too_small, shard_bounds
from cnnkit.distributed import environment
from cnnkit.distributed.data_parallel import DataParallel, RanksDisagree
from cnnkit.distributed.launch import drop_final_batch, evaluation_shard, per_rank_batch
from cnnkit.distributed.sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm
from cnnkit.functional import cross_entropy
from thread_ranks import ThreadGroup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(cnnkit.__file__)))


# -- the launcher's environment ------------------------------------------------------------
def test_launcher_environment_is_read_without_mpi():
    hydra = {"PMI_RANK": "1", "PMI_SIZE": "4", "MPI_LOCALNRANKS": "2"}
    assert environment.launched_world_size(hydra) == 4
    assert environment.launched_rank(hydra) == 1
    assert environment.local_ranks(hydra) == 2
    openmpi = {"OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_RANK": "2"}
    assert (environment.launched_world_size(openmpi), environment.launched_rank(openmpi)) == (3, 2)
    assert environment.local_ranks(openmpi) == 3  # unknown: assume all ranks share the machine
    assert environment.launched_world_size({}) == 1 and environment.launched_rank({}) == 0


def test_threads_are_split_between_the_ranks_of_a_machine():
    env = {"PMI_SIZE": "4", "MPI_LOCALNRANKS": "2", "OMP_NUM_THREADS": "3"}
    assert environment.split_threads(env, cores=(16, 16)) == 8
    assert env["OPENBLAS_NUM_THREADS"] == env["NUMBA_NUM_THREADS"] == "8"
    assert env["OMP_NUM_THREADS"] == "3"  # the user's setting stays
    bound = {"PMI_SIZE": "2", "MPI_LOCALNRANKS": "2"}
    assert environment.split_threads(bound, cores=(6, 12)) == 6  # mpiexec -bind-to: its share
    crowded = {"PMI_SIZE": "8", "MPI_LOCALNRANKS": "8"}
    assert environment.split_threads(crowded, cores=(2, 2)) == 1
    container = {"PMI_SIZE": "2", "MPI_LOCALNRANKS": "2"}  # a cpuset of 8 of the machine's cores
    assert environment.split_threads(container, cores=(8, 8)) == 4
    alone = {"PMI_SIZE": "1"}
    assert environment.split_threads(alone, cores=(16, 16)) is None and "OMP_NUM_THREADS" \
        not in alone
    assert environment.split_threads({}, cores=(16, 16)) is None


def test_import_and_single_process_never_load_mpi4py():
    code = ("import sys, cnnkit, cnnkit.cli, cnnkit.train, cnnkit.distributed as d\n"
            "from cnnkit.cli import train\n"
            "import cnnkit.distributed.launch, cnnkit.distributed.sync_batchnorm\n"
            "comm = d.init()\n"
            "assert (d.rank, d.world_size, d.is_main) == (0, 1, True), comm\n"
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "OMPI_", "MPI_LOCAL", "PYTHONPATH"))}
    env["PYTHONPATH"] = ROOT
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_collective_timeout_setting():
    from cnnkit.distributed.comm import DEFAULT_TIMEOUT, timeout_from_environment
    assert timeout_from_environment({}) == DEFAULT_TIMEOUT
    assert timeout_from_environment({"CNNKIT_MPI_TIMEOUT": "2.5"}) == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(ValueError, match="CNNKIT_MPI_TIMEOUT must be a positive number"):
            timeout_from_environment({"CNNKIT_MPI_TIMEOUT": bad})


def test_mpiexec_without_mpi4py_is_a_clear_error(monkeypatch):
    from cnnkit import distributed
    monkeypatch.setattr(distributed, "_communicator", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "1")
    assert (distributed.rank, distributed.world_size, distributed.is_main) == (1, 2, False)
    with pytest.raises(RuntimeError, match=r"mpiexec started 2 ranks but mpi4py cannot be "
                                           r"imported .*pip install 'cnnkit\[mpi\]'"):
        distributed.init()
    assert distributed.SyncBatchNorm is SyncBatchNorm


# -- the sampler -----------------------------------------------------------------------------
def _dataset(n):
    images = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)
    return TensorDataset(images, np.arange(n))


@pytest.mark.parametrize("n, batch, world", [(50, 4, 3), (48, 8, 2), (7, 2, 4), (10, 5, 1)])
def test_shards_of_each_global_batch_are_the_single_process_batch(n, batch, world):
    single = DataLoader(_dataset(n), batch * world, shuffle=True, seed=3)
    ranks = [ShardedLoader(_dataset(n), batch, shuffle=True, seed=3, rank=r, world_size=world)
             for r in range(world)]
    for _ in range(2):  # two epochs: a new order each
        expected = [labels for _, labels in single]
        shards = [[labels for _, labels in loader] for loader in ranks]
        assert all(len(s) == len(expected) == len(ranks[0]) for s in shards)
        for b, labels in enumerate(expected):
            joined = np.concatenate([shards[r][b] for r in range(world)])
            np.testing.assert_array_equal(joined, labels)
            sizes = [len(shards[r][b]) for r in range(world)]
            assert max(sizes) - min(sizes) <= 1
        seen = np.concatenate([np.concatenate(s) for s in shards])
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))  # each image once


def test_sharded_state_is_the_same_on_every_rank_and_resumes_on_another_count():
    loaders = [ShardedLoader(_dataset(40), 4, shuffle=True, seed=1, rank=r, world_size=2)
               for r in range(2)]
    iterators = [iter(loader) for loader in loaders]
    for iterator in iterators:
        next(iterator)
    state = loaders[0].state_dict()
    assert state == loaders[1].state_dict()
    single = DataLoader(_dataset(40), 8, shuffle=True, seed=1)
    single.load_state_dict(state)  # two ranks of 4 resume as one process of 8
    rest = [labels for _, labels in single]
    assert len(rest) == len(single) - 1
    joined = [np.concatenate([labels for _, labels in it][:1]) for it in iterators]
    np.testing.assert_array_equal(np.concatenate(joined), rest[0])


def test_sharded_loader_arguments_and_helpers():
    with pytest.raises(ValueError, match="rank"):
        ShardedLoader(_dataset(4), 2, rank=2, world_size=2)
    with pytest.raises(TypeError, match="world_size"):
        ShardedLoader(_dataset(4), 2, rank=0, world_size=2.0)
    np.testing.assert_array_equal(shard_bounds(7, 3), [0, 2, 4, 7])
    assert final_batch_too_small(129, 128, 1) and not final_batch_too_small(130, 128, 1)
    assert final_batch_too_small(131, 64, 2) and not final_batch_too_small(132, 64, 2)
    assert not final_batch_too_small(256, 64, 2)
    assert per_rank_batch(64, 2, 1) == 128 and per_rank_batch(128, 1, 4) == 32
    # A run decides once whether it drops its final batch (2 ranks: 2 of 258 images, 1 each).
    assert drop_final_batch(258, 128, 2, 1) and not drop_final_batch(258, 128, 1, 1)
    with pytest.raises(ValueError, match="fewer than 2"):
        drop_final_batch(258, 128, 1, 2)
    with pytest.raises(ValueError, match="does not split"):
        per_rank_batch(64, 2, 3)
    shards = [evaluation_shard(_dataset(10), r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 4]


# -- gradient averaging and synchronised batch norm, over thread ranks ----------------------
def _model(batch_norm: bool):
    cnnkit.manual_seed(0)
    layers = [nn.Conv2d(2, 3, 3, padding=1)]
    layers += [nn.BatchNorm2d(3)] if batch_norm else []
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)]
    return nn.Sequential(*layers).double()


def _gradients(model, images, labels):
    model.zero_grad()
    cross_entropy(model(cnnkit.tensor(images)), labels).backward()
    return {name: p.grad.copy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("batch_norm", [True, False])
def test_unequal_shards_average_to_the_whole_batch_gradient(batch_norm):
    rng = np.random.default_rng(0)
    images, labels = rng.normal(size=(8, 2, 4, 4)), rng.integers(0, 5, 8)
    whole = _model(batch_norm)
    expected = _gradients(whole, images, labels)
    shards = [slice(0, 5), slice(5, 8)]  # 5 and 3 images
    replicas = [_model(batch_norm) for _ in shards]

    def step(comm):
        model = convert_sync_batchnorm(replicas[comm.rank], comm)
        parallel = DataParallel(model, comm, bucket_bytes=64)  # several buckets
        part = shards[comm.rank]
        grads = _gradients(model, images[part], labels[part])
        assert grads  # this rank's own gradients, before averaging
        parallel.average_gradients(len(labels[part]))
        return {name: p.grad for name, p in model.named_parameters()}
    results = ThreadGroup(2).run(step)
    for got in results:
        for name, grad in expected.items():
            np.testing.assert_allclose(got[name], grad, rtol=1e-10, atol=1e-12, err_msg=name)
    if batch_norm:
        assert isinstance(replicas[0][1], SyncBatchNorm)
        for replica in replicas:
            np.testing.assert_allclose(replica[1].running_var.data, whole[1].running_var.data,
                                       rtol=1e-12)
            np.testing.assert_allclose(replica[1].running_mean.data,
                                       whole[1].running_mean.data, rtol=1e-12)


def test_fit_refuses_a_data_parallel_of_another_model():
    from cnnkit.distributed.comm import SingleProcess
    from cnnkit.train import fit
    model, other = _model(False), _model(False)
    with pytest.raises(ValueError, match="data_parallel must wrap"):
        fit(model, [], [], None, epochs=1, data_parallel=DataParallel(other, SingleProcess()))


def test_a_parameter_no_rank_used_keeps_no_gradient():
    replicas = [nn.ModuleList([nn.Linear(3, 2), nn.Linear(3, 2)]).double() for _ in range(2)]
    x = cnnkit.tensor(np.ones((4, 3)))

    def step(comm):
        used, unused = replicas[comm.rank]
        parallel = DataParallel(replicas[comm.rank], comm)
        used(x).sum().backward()
        grad = used.weight.grad.copy()
        parallel.average_gradients(4)
        return grad, used.weight.grad, unused.weight.grad, unused.bias.grad
    for before, after, unused_weight, unused_bias in ThreadGroup(2).run(step):
        np.testing.assert_array_equal(after, before)  # the same on both ranks: its mean
        assert unused_weight is None and unused_bias is None


def test_start_detects_other_models_and_data_then_broadcasts():
    state = cnnkit.random.get_rng_state()
    try:
        def start(models, signatures):
            def fn(comm):
                DataParallel(models[comm.rank], comm, signatures[comm.rank]).start()
            return ThreadGroup(2).run(fn)
        same = [_model(True), _model(True)]
        with pytest.raises(RanksDisagree, match="see other data"):
            start(same, [(10, 5), (10, 4)])
        other = _model(True)
        other[0].weight.data[0, 0, 0, 0] += 1e-7
        with pytest.raises(RanksDisagree, match=r"rank\(s\) \[1\] hold other parameters"):
            start([_model(True), other], [(10,), (10,)])
        start(same, [(10, 5), (10, 5)])
    finally:
        cnnkit.random.set_rng_state(state)


def test_ring_allreduce_cost_model():
    from cnnkit.bench.distributed import crossover, ring_allreduce_seconds
    assert ring_allreduce_seconds(1e9, 1, 10) == 0.0
    # 2 machines, 1 GB over 10 Gb/s: each sends half twice = 1 GB = 0.8 s, plus 2 latencies.
    assert ring_allreduce_seconds(1e9, 2, 10, latency_s=1e-3) == pytest.approx(0.802)
    assert ring_allreduce_seconds(1e9, 1000, 10, latency_s=0) == pytest.approx(1.6 * 0.999)
    # 1 ms of compute per image, 1M parameters (4 MB) over 10 Gb/s with a global batch of 128:
    # compute 128/N ms against 6.4·(N−1)/N + 0.04·(N−1) ms: 6.74 < 6.78 first at N = 19.
    assert crossover(1e-3, 1_000_000, 10, None) == 19
    # 128 images per rank: 128 ms per step, reached only by the latencies, 0.04·(N−1) ms.
    assert crossover(1e-3, 1_000_000, 10, 128) == 3042
