"""DataLoader: batches from a dataset, shuffled reproducibly, resumable mid-run.

Randomness. One ``np.random.default_rng(seed)`` drives everything. At the start of every epoch
the loader draws the epoch's permutation (if shuffling) and one 63-bit ``epoch_key``; batch ``b``
of that epoch is augmented with ``default_rng([epoch_key, b])``. Because each batch's generator
depends only on (epoch_key, b), a run resumed from ``state_dict()`` -- between epochs or in the
middle of one -- reproduces exactly the batches it would have produced.

Fast path. A dataset with an ``arrays`` attribute (whole in-memory arrays, samples on axis 0)
is batched by fancy-indexing each array with the batch's indices: one NumPy call per array
per batch instead of ``batch_size`` Python calls. ``Subset``s of such datasets are looked
through, composing the indices, so they stay fast without copying their parent.
"""
import numbers

import numpy as np

from .datasets import Subset
from ..io.atomic import jsonable
from .transforms import apply_to_batch


def _resolve_arrays(dataset):
    """``(arrays, index_map, transform)`` if ``dataset`` can be gathered by fancy indexing.

    ``index_map`` maps the dataset's positions to rows of ``arrays`` (None = identity);
    ``transform`` is the dataset's per-sample transform for ``arrays[0]`` (or None).
    Returns None when the dataset has no whole arrays and must be read item by item.
    """
    index_map = None
    while isinstance(dataset, Subset):
        index_map = dataset.indices if index_map is None else dataset.indices[index_map]
        dataset = dataset.dataset
    arrays = getattr(dataset, "arrays", None)
    if arrays is None:
        return None
    return tuple(arrays), index_map, getattr(dataset, "transform", None)


def _collate(items):
    """Stack a list of samples position by position: tuples of arrays -> tuple of batches."""
    first = items[0]
    try:
        if isinstance(first, (tuple, list)):
            return tuple(np.stack([item[k] for item in items]) for k in range(len(first)))
        return np.stack(items)
    except ValueError as err:
        raise ValueError(f"DataLoader: cannot stack the samples of a batch ({err}); images of "
                         "different sizes need a common size (e.g. ImageFolder(image_size=...) "
                         "or a RandomCrop transform)") from err


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` samples (PyTorch's ``DataLoader``).

    Each batch is collated like the samples: a dataset of ``(image, label)`` tuples yields
    tuples ``(images, labels)`` with ``images`` of shape (B, C, H, W) (float32 for cnnkit's
    datasets) and ``labels`` of shape (B,) (int64). ``transform`` is applied to the first
    element (the images) of every batch, through its ``apply_batch`` when it has one.

    Parameters
    ----------
    dataset : Dataset
    batch_size : int >= 1
    shuffle : bool, draw a new permutation every epoch
    drop_last : bool, drop the final batch if it is smaller than ``batch_size``
    seed : int or None, seed of the loader's Generator (shuffling and ``transform``)
    transform : callable or None, on a (B, C, H, W) batch via ``apply_batch(batch, rng)``

    ``len(loader)`` is the number of batches per epoch. Only one iteration may be active at a
    time; starting a new one abandons the previous epoch.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 transform=None):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: dataset must have __len__ and __getitem__, got "
                            f"{type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"DataLoader: {name} must be a bool, got {flag!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                 or seed < 0):
            raise ValueError(f"DataLoader: seed must be None or a non-negative int, got {seed!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {transform!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.transform = transform
        self._rng = np.random.default_rng(seed)
        self._epoch = 0            # index of the current (or next) epoch
        self._active = False       # an epoch has started and not finished
        self._epoch_start_state = None
        self._batches_done = 0     # batches yielded so far in the current epoch
        self._skip = 0             # batches to skip on the next epoch (set by load_state_dict)

    @property
    def epoch(self) -> int:
        """Index of the epoch in progress, or of the next one between epochs."""
        return self._epoch

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        if self._active:  # the previous epoch was abandoned part way
            self._epoch += 1
        self._active = True
        self._epoch_start_state = self._rng.bit_generator.state
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        epoch_key = int(self._rng.integers(2**63))
        skip, self._skip = self._skip, 0
        self._batches_done = skip
        return self._batches(order, epoch_key, skip)

    def _batches(self, order, epoch_key, skip):
        whole = _resolve_arrays(self.dataset)
        for b in range(skip, len(self)):
            indices = self._batch_indices(order, b)
            rng = self._batch_rng(epoch_key, b) if self.transform is not None else None
            if whole is not None:
                batch = self._gather(whole, indices)
            else:
                batch = _collate([self.dataset[int(i)] for i in indices])
            if self.transform is not None:
                if isinstance(batch, tuple):
                    batch = (apply_to_batch(self.transform, batch[0], rng),) + batch[1:]
                else:
                    batch = apply_to_batch(self.transform, batch, rng)
            self._batches_done = b + 1
            yield batch
        self._epoch += 1
        self._active = False
        self._batches_done = 0

    def _batch_indices(self, order, b):
        """Positions in the dataset of batch ``b`` of the epoch whose order is ``order``."""
        return order[b * self.batch_size:(b + 1) * self.batch_size]

    def _batch_rng(self, epoch_key, b):
        """The Generator that augments batch ``b`` (see the module docstring)."""
        return np.random.default_rng([epoch_key, b])

    @staticmethod
    def _gather(whole, indices):
        arrays, index_map, dataset_transform = whole
        rows = indices if index_map is None else index_map[indices]
        batch = tuple(a[rows] for a in arrays)
        if dataset_transform is not None:
            # The dataset's own transform keeps its own Generator, as it would item by item.
            batch = (apply_to_batch(dataset_transform, batch[0]),) + batch[1:]
        return batch

    def state_dict(self) -> dict:
        """Where the loader stands, as plain JSON-able data (ints, strings, dicts; no pickle).

        Between epochs: the next epoch's index and the Generator state it will start from.
        Mid-epoch: the current epoch's index, the state it started from and how many batches
        were already yielded, so ``load_state_dict`` resumes with the very next batch.
        """
        epoch = self._epoch
        if self._active and self._batches_done < len(self):
            state, done = self._epoch_start_state, self._batches_done
        else:
            # Also after the last batch of an epoch whose loop has not yet noticed the end: the
            # epoch's draws are all made, so this is the next epoch's starting point.
            state, done = self._rng.bit_generator.state, 0
            epoch += 1 if self._active else 0
        return {"epoch": epoch, "batches_done": done, "rng_state": jsonable(state),
                "num_samples": len(self.dataset), "batch_size": self.batch_size,
                "shuffle": self.shuffle, "drop_last": self.drop_last}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()``; the next iteration continues exactly where it left off."""
        required = ("epoch", "batches_done", "rng_state")
        if not isinstance(state, dict) or any(k not in state for k in required):
            raise ValueError(f"DataLoader.load_state_dict: expected a dict with keys {required}, "
                             f"got {state!r:.200}")
        for key, mine in (("num_samples", len(self.dataset)), ("batch_size", self.batch_size),
                          ("shuffle", self.shuffle), ("drop_last", self.drop_last)):
            if key in state and state[key] != mine:
                raise ValueError(f"DataLoader.load_state_dict: state has {key}={state[key]!r} "
                                 f"but this loader has {key}={mine!r}; the resumed order would "
                                 "differ")
        epoch, done = state["epoch"], state["batches_done"]
        if not isinstance(epoch, int) or epoch < 0 or not isinstance(done, int) \
                or not 0 <= done <= len(self):
            raise ValueError(f"DataLoader.load_state_dict: epoch and batches_done must be "
                             f"non-negative ints (batches_done <= {len(self)}), got "
                             f"{epoch!r}, {done!r}")
        rng_state = state["rng_state"]
        name = type(self._rng.bit_generator).__name__
        if not isinstance(rng_state, dict) or rng_state.get("bit_generator") != name:
            raise ValueError(f"DataLoader.load_state_dict: rng_state must be a {name} state "
                             f"dict, got {rng_state!r:.200}")
        try:
            self._rng.bit_generator.state = rng_state
        except (TypeError, ValueError, KeyError) as err:
            raise ValueError(f"DataLoader.load_state_dict: invalid rng_state ({err})") from err
        self._epoch = epoch
        self._active = False
        self._skip = done
        self._batches_done = 0
