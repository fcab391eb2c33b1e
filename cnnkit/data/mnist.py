"""Fashion-MNIST and MNIST from their IDX files, found on disk (never downloaded).

Search order for the four files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``:
``root`` (if given), ``$CNNKIT_DATA``, ``$CNNKIT_DATA/<name>``, then the system directory
(``/usr/share/datasets/fashion-mnist``, where Debian's ``dataset-fashion-mnist`` installs them).
"""
import os

import numpy as np

from .datasets import InMemoryImages
from .idx import read_idx

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")


def _split_files(train):
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _existing(directory, stem):
    """Path of ``stem`` or ``stem.gz`` in ``directory`` (raw preferred: no inflating), or None."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def search_dirs(root, name, system_dir):
    """The directories searched, in order, for a data set called ``name``."""
    dirs = [] if root is None else [os.fspath(root)]
    env = os.environ.get("CNNKIT_DATA")
    if env:
        dirs += [env, os.path.join(env, name)]
    return dirs + [system_dir]


class IdxImageDataset(InMemoryImages):
    """Base for MNIST-style data sets: 28x28 uint8 images and uint8 labels in IDX files.

    Attributes
    ----------
    images : ndarray of shape (N, 1, 28, 28), float32 in [0, 1]
    labels : ndarray of shape (N,), int64 in [0, 10)
    arrays : (images, labels), for ``DataLoader``'s fast path
    classes : list of str, class names by label
    files : (images_path, labels_path) that were read
    """

    name = ""
    system_dir = ""
    classes = ()
    how_to_get = ""

    def __init__(self, root=None, train=True, transform=None):
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__}: train must be a bool, got {train!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"{type(self).__name__}: transform must be callable, "
                            f"got {transform!r}")
        self.train = bool(train)
        self.transform = transform
        self.classes = list(type(self).classes)
        self.class_to_idx = {c: k for k, c in enumerate(self.classes)}
        self.files = self._find(root)
        self.images, self.labels = self._load(*self.files)

    def _find(self, root):
        image_stem, label_stem = _split_files(self.train)
        dirs = search_dirs(root, self.name, self.system_dir)
        for directory in dirs:
            images, labels = _existing(directory, image_stem), _existing(directory, label_stem)
            if images and labels:
                return images, labels
        searched = "\n".join(f"  {d}" for d in dirs)
        raise FileNotFoundError(
            f"{type(self).__name__}: could not find {image_stem}[.gz] and {label_stem}[.gz] in "
            f"any of:\n{searched}\n{self.how_to_get}")

    def _load(self, images_path, labels_path):
        raw_images, raw_labels = read_idx(images_path), read_idx(labels_path)
        if raw_images.dtype != np.uint8 or raw_images.ndim != 3 or raw_images.shape[1:] != (28, 28):
            raise ValueError(f"{images_path}: expected uint8 images of shape (N, 28, 28), got "
                             f"{raw_images.dtype} {raw_images.shape}")
        if raw_labels.dtype != np.uint8 or raw_labels.ndim != 1:
            raise ValueError(f"{labels_path}: expected uint8 labels of shape (N,), got "
                             f"{raw_labels.dtype} {raw_labels.shape}")
        if len(raw_images) != len(raw_labels):
            raise ValueError(f"{images_path} has {len(raw_images)} images but {labels_path} has "
                             f"{len(raw_labels)} labels")
        if raw_labels.size and raw_labels.max() >= len(self.classes):
            raise ValueError(f"{labels_path}: label {raw_labels.max()} out of range for "
                             f"{len(self.classes)} classes")
        images = raw_images.astype(np.float32)[:, None]
        images /= np.float32(255)  # exactly x / 255, like torchvision ToTensor
        return images, raw_labels.astype(np.int64)


    def __repr__(self):
        split = "train" if self.train else "test"
        return f"{type(self).__name__}({split}, {len(self)} images from {self.files[0]})"


class FashionMNIST(IdxImageDataset):
    """Zalando's Fashion-MNIST: 60,000 train / 10,000 test 28x28 grayscale clothing images."""

    name = "fashion-mnist"
    system_dir = "/usr/share/datasets/fashion-mnist"
    classes = FASHION_MNIST_CLASSES
    how_to_get = (
        "To get them, either install Debian's package:  sudo apt-get install "
        "dataset-fashion-mnist  (files go to /usr/share/datasets/fashion-mnist), or download "
        "the four IDX files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from the data/fashion folder "
        "of Zalando's GitHub repository zalandoresearch/fashion-mnist into a directory, then "
        "pass root=<that directory> or set CNNKIT_DATA=<that directory>.")


class MNIST(IdxImageDataset):
    """LeCun's MNIST handwritten digits: 60,000 train / 10,000 test 28x28 grayscale images."""

    name = "mnist"
    system_dir = "/usr/share/datasets/mnist"
    classes = tuple(str(d) for d in range(10))
    how_to_get = (
        "To get them, download the four MNIST IDX files train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
        "into a directory, then pass root=<that directory> or set CNNKIT_DATA=<that directory> "
        "(or put them in $CNNKIT_DATA/mnist).")
