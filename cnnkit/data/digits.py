"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download needed)."""
import numpy as np

from .datasets import InMemoryImages

SPLIT_SEED = 0  # fixed, so every run and every user sees the same train/test split


class Digits(InMemoryImages):
    """The UCI optical digits shipped with scikit-learn, split into train and test.

    The split is a permutation drawn with ``np.random.default_rng(SPLIT_SEED)``: the first
    ``round(N * test_fraction)`` positions are the test set, the rest train (each kept in the
    original order). Pixel values 0..16 are scaled to [0, 1].

    Parameters
    ----------
    train : bool, which side of the split
    transform : callable or None, applied to each (1, 8, 8) image
    test_fraction : float in (0, 1)

    Attributes
    ----------
    images : ndarray of shape (N, 1, 8, 8), float32 in [0, 1]
    labels : ndarray of shape (N,), int64 in [0, 10)
    arrays : (images, labels), for ``DataLoader``'s fast path
    classes : list of str, ["0", ..., "9"]
    indices : ndarray of shape (N,), positions in ``sklearn.datasets.load_digits()``
    """

    classes = tuple(str(d) for d in range(10))

    def __init__(self, train=True, transform=None, test_fraction=0.2):
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"Digits: train must be a bool, got {train!r}")
        if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) \
                or not 0.0 < test_fraction < 1.0:
            raise ValueError(f"Digits: test_fraction must be a float in (0, 1), "
                             f"got {test_fraction!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"Digits: transform must be callable, got {transform!r}")
        # Imported here: scikit-learn is slow to import and only this dataset needs it.
        from sklearn.datasets import load_digits

        bunch = load_digits()
        n = len(bunch.target)
        n_test = round(n * test_fraction)
        if not 0 < n_test < n:
            raise ValueError(f"Digits: test_fraction={test_fraction} leaves an empty split of "
                             f"{n} images")
        order = np.random.default_rng(SPLIT_SEED).permutation(n)
        self.indices = np.sort(order[n_test:] if train else order[:n_test])
        self.train = bool(train)
        self.transform = transform
        self.classes = list(type(self).classes)
        images = bunch.images[self.indices].astype(np.float32) / np.float32(16)
        self.images = images[:, None]
        self.labels = bunch.target[self.indices].astype(np.int64)

