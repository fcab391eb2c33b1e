"""Keep the replicas of a model on every rank identical while each trains on its own shard.

At the start (``start``): the ranks compare a checksum of their parameters and buffers and a
signature of their data (sizes, normalisation statistics), so a stale checkpoint copy or a
different data set on one machine is an error rather than a silently wrong run; then rank 0's
parameters and buffers are broadcast, which also absorbs any last-bit difference between
machines.

Every step (``average_gradients``): rank r's gradient g_r is that of its mean loss over its
n_r images, so the gradient of the mean loss over the whole global batch is
    g = Σ_r n_r·g_r / Σ_r n_r,
which is the plain average when the shards are equal. Each rank writes n_r·g_r into contiguous
buffers ("buckets", one dtype each, about ``bucket_bytes`` long) and sums them with in-place
``Allreduce``. Each bucket ends with one slot per parameter, 1 if the rank has a gradient for
it (a parameter no rank used keeps ``grad = None``, as in one process), and the first bucket
with n_r, whose sum divides. Parameters are bucketed last layer first, the order in which
backward finishes them.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .. import random as cnnkit_random

__all__ = ["DEFAULT_BUCKET_BYTES", "DataParallel", "RanksDisagree", "state_checksum"]

DEFAULT_BUCKET_BYTES = 4 << 20


class RanksDisagree(RuntimeError):
    """The ranks hold different models or data; raised on every rank alike."""


def state_checksum(model) -> bytes:
    """SHA-256 (32 bytes) of the model's state_dict: names, dtypes, shapes and values."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        array = np.ascontiguousarray(np.asarray(getattr(value, "data", value)))
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.digest()


def _buckets(params, bucket_bytes):
    """Group ``params`` (in order) into runs of one dtype of about ``bucket_bytes`` each."""
    groups, current, size = [], [], 0
    for param in params:
        if current and (param.data.dtype != current[0].data.dtype or size >= bucket_bytes):
            groups.append(current)
            current, size = [], 0
        current.append(param)
        size += param.data.nbytes
    if current:
        groups.append(current)
    return groups


class DataParallel:
    """Gradient averaging and state synchronisation of ``model`` over ``comm``'s ranks.

    Parameters
    ----------
    model : Module, the same architecture on every rank
    comm : ``Communicator`` (or ``SingleProcess``) from ``cnnkit.distributed.init()``
    data_signature : ints and floats describing the rank's data (e.g. data-set sizes); must be
        equal on all ranks
    bucket_bytes : target size of each gradient buffer summed by one Allreduce
    """

    def __init__(self, model, comm, data_signature=(), bucket_bytes=DEFAULT_BUCKET_BYTES):
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) \
                or bucket_bytes < 1:
            raise ValueError(f"bucket_bytes must be a positive int, got {bucket_bytes!r}")
        self.model, self.comm = model, comm
        self.is_main = comm.is_main
        self.data_signature = np.asarray(data_signature, dtype=np.float64).ravel()
        self.params = [p for p in model.parameters() if p.requires_grad][::-1]
        self.buckets = _buckets(self.params, bucket_bytes)
        # One flat buffer per bucket: gradients, a flag per parameter, and (first) the count.
        self._flat = [np.empty(sum(p.data.size for p in bucket) + len(bucket) + (i == 0),
                               bucket[0].data.dtype) for i, bucket in enumerate(self.buckets)]

    # -- at the start ----------------------------------------------------------------------
    def start(self) -> None:
        """Check that all ranks hold the same model and data, broadcast rank 0's state, and
        give each rank its own stream of the global generator (dropout masks)."""
        if self.comm.world_size == 1:
            return
        checksums = self.comm.allgather(np.frombuffer(state_checksum(self.model), np.uint8))
        differ = [r for r in range(1, len(checksums)) if not np.array_equal(checksums[r],
                                                                          checksums[0])]
        if differ:
            raise RanksDisagree(f"rank(s) {differ} hold other parameters than rank 0 (another "
                                f"cnnkit version, model, seed, or checkpoint file?)")
        data = self.comm.allgather(self.data_signature)
        differ = [r for r in range(1, len(data)) if not np.array_equal(data[r], data[0])]
        if differ:
            theirs, ours = data[differ[0]].tolist(), data[0].tolist()
            raise RanksDisagree(f"rank(s) {differ} see other data than rank 0 ({theirs} vs "
                                f"{ours}: the data set, its size or its files differ)")
        for name, value in self.model.state_dict(keep_vars=True).items():
            array = value.data
            if not array.flags.c_contiguous:
                array = value.data = np.ascontiguousarray(array)
            self.comm.bcast_(array)
        # Rank r draws from rank 0's stream jumped r·2^128 steps ahead: independent masks, and
        # the state a checkpoint saves (rank 0's) rebuilds every rank's on resume.
        state = np.random.PCG64()
        state.state = cnnkit_random.get_rng_state()
        if self.comm.rank > 0:
            cnnkit_random.set_rng_state(state.jumped(self.comm.rank).state)

    # -- every step ------------------------------------------------------------------------
    def average_gradients(self, count: int) -> None:
        """Replace each parameter's ``.grad`` by the image-weighted mean over the ranks.

        count : images this rank's gradients were averaged over (its shard of the batch)
        """
        if self.comm.world_size == 1:
            return
        for i in range(len(self.buckets)):
            self.comm.allreduce_(self.pack(i, count))
        self.unpack()

    def pack(self, i: int, count: int) -> np.ndarray:
        """Bucket ``i``'s buffer filled with count·grad of its parameters (see the module
        docstring); returns it, ready to be summed in place."""
        flat, bucket, flags = self._flat[i], self.buckets[i], self._flags(i)
        start = 0
        for k, param in enumerate(bucket):
            end = start + param.data.size
            if param.grad is None:  # unused on this rank: contributes zero
                flat[start:end] = 0
            else:
                np.multiply(param.grad.reshape(-1), count, out=flat[start:end])
            flags[k] = param.grad is not None
            start = end
        if i == 0:
            flat[-1] = count
        return flat

    def unpack(self) -> None:
        """Each parameter's ``.grad`` from the summed buffers."""
        total = self._flat[0][-1]
        for i, (flat, bucket) in enumerate(zip(self._flat, self.buckets)):
            start, used = 0, self._flags(i) > 0
            for k, param in enumerate(bucket):
                end = start + param.data.size
                param.grad = (flat[start:end] / total).astype(param.data.dtype, copy=False) \
                    .reshape(param.data.shape) if used[k] else None
                start = end

    def _flags(self, i: int) -> np.ndarray:
        """The view of bucket ``i``'s buffer holding one has-a-gradient flag per parameter."""
        end = self._flat[i].size - (i == 0)
        return self._flat[i][end - len(self.buckets[i]):end]

    # -- every epoch -----------------------------------------------------------------------
    def average_buffers(self) -> None:
        """Average the floating-point buffers (BN running statistics) over the ranks, so the
        model evaluated and saved is one model (identical already with SyncBatchNorm)."""
        if self.comm.world_size == 1:
            return
        buffers = [b for b in self.model.buffers() if b is not None and b.data.dtype.kind == "f"]
        if not buffers:
            return
        flat = np.concatenate([b.data.ravel().astype(np.float64) for b in buffers])
        self.comm.allreduce_(flat)
        flat /= self.comm.world_size
        start = 0
        for buffer in buffers:
            end = start + buffer.data.size
            buffer.data[...] = flat[start:end].reshape(buffer.data.shape)
            start = end

    def sum_over_ranks(self, *values) -> tuple:
        """The sums of some numbers over the ranks, as floats."""
        return tuple(self.comm.allreduce_(np.array(values, dtype=np.float64)).tolist())

    def max_over_ranks(self, value: float) -> float:
        return float(self.comm.allreduce_(np.array([value], dtype=np.float64), op="max")[0])

    def reduce_evaluation(self, result: dict) -> dict:
        """``evaluate``'s {"loss", "accuracy", "count"} of this rank's shard -> of all shards."""
        count = result["count"]
        if self.comm.world_size == 1 or count is None:
            return result
        loss = result["loss"] * count if count else 0.0
        correct = round(result["accuracy"] * count) if count else 0
        loss, correct, count = self.sum_over_ranks(loss, correct, count)
        return {"loss": loss / count if count else float("nan"),
                "accuracy": correct / count if count else float("nan"), "count": int(count)}
