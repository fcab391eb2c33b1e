"""Dataset containers: the base protocol, in-memory arrays, and subsets.

A dataset is anything with ``__len__`` and ``__getitem__(i)`` returning one sample, usually a
tuple ``(image, label)``. Datasets that hold all their samples in memory also expose ``arrays``,
a tuple of whole arrays with the samples along axis 0, plus an optional per-sample ``transform``
for ``arrays[0]``. ``DataLoader`` then gathers a batch with one fancy index per array instead of
one Python call per sample, which is what makes an epoch of 60,000 images take milliseconds.
"""
import itertools

import numpy as np

from ..tensor import Tensor


class Dataset:
    """Base class: subclasses implement ``__len__`` and ``__getitem__`` (as in PyTorch)."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")


def _as_array(value, name):
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f"{name}: expected an ndarray or cnnkit Tensor, got {type(value).__name__}")


class InMemoryImages(Dataset):
    """Base for data sets held as whole arrays: ``images`` (N, C, H, W) float32 and ``labels``
    (N,) int64, with an optional per-image ``transform``. ``arrays`` lets ``DataLoader`` gather
    whole batches by fancy indexing (its fast path) instead of calling ``__getitem__``."""

    images = labels = transform = None

    @property
    def arrays(self):
        return self.images, self.labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]


class TensorDataset(Dataset):
    """Samples are the rows of equally long arrays: item ``i`` is ``(a[i] for a in arrays)``.

    Parameters
    ----------
    *arrays : ndarray or Tensor, each of shape (N, ...)
        Tensors are unwrapped to their ``.data`` (no copy, no graph).
    """

    transform = None

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset: expected at least one array")
        self.arrays = tuple(_as_array(a, f"arrays[{k}]") for k, a in enumerate(arrays))
        for k, a in enumerate(self.arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: arrays[{k}] is 0-dimensional; samples run "
                                 "along axis 0")
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) > 1:
            raise ValueError(f"TensorDataset: arrays must have the same length along axis 0, "
                             f"got lengths {lengths}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order (PyTorch's ``Subset``).

    ``DataLoader`` looks through a Subset to its parent's ``arrays``, so subsets of in-memory
    datasets keep the fast path without copying the parent's data.

    Parameters
    ----------
    dataset : Dataset
    indices : sequence of int, shape (M,)
        Positions in ``dataset``; each in ``[-len(dataset), len(dataset))``.
    """

    def __init__(self, dataset, indices):
        n = len(dataset)
        indices = np.asarray(indices)
        if indices.size == 0:
            indices = indices.astype(np.int64)
        if indices.ndim != 1 or indices.dtype.kind not in "iu":
            raise TypeError(f"Subset: indices must be a 1-D sequence of ints, got dtype "
                            f"{indices.dtype} and shape {indices.shape}")
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise ValueError(f"Subset: indices must lie in [-{n}, {n}) for a dataset of "
                             f"{n} samples, got range [{indices.min()}, {indices.max()}]")
        self.dataset = dataset
        self.indices = np.where(indices < 0, indices + n, indices).astype(np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]


def random_split(dataset, lengths, seed=None):
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given lengths.

    Parameters
    ----------
    dataset : Dataset of N samples
    lengths : sequence of int summing to N, or of fractions summing to 1
        Fractions are floored and the remainder handed out one each, as PyTorch does.
    seed : int or None
        Seed of ``np.random.default_rng`` drawing the permutation.

    Returns
    -------
    list of Subset, one per entry of ``lengths``.
    """
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths must not be empty")
    if all(isinstance(x, float) for x in lengths):
        if any(x < 0 for x in lengths) or not np.isclose(sum(lengths), 1.0):
            raise ValueError(f"random_split: fractions must be >= 0 and sum to 1, got {lengths}")
        counts = [int(np.floor(n * x)) for x in lengths]
        for k in range(n - sum(counts)):  # hand out the remainder round-robin
            counts[k % len(counts)] += 1
        lengths = counts
    if any(not isinstance(x, (int, np.integer)) or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions, "
                         f"got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths sum to {sum(lengths)}, the dataset has {n} "
                         "samples")
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + lengths)
    return [Subset(dataset, order[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
