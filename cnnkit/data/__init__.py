"""Data: datasets, batching and image transforms, all on plain NumPy arrays.

Images are float32 (C, H, W) in [0, 1] and batches float32 (B, C, H, W) with int64 labels,
ready for ``cnnkit.tensor``. Nothing is downloaded: Fashion-MNIST/MNIST are read from IDX
files on disk, Digits comes with scikit-learn, ImageFolder reads your own images.
"""
from . import transforms
from .datasets import Dataset, Subset, TensorDataset, random_split
from .digits import Digits
from .idx import read_idx, write_idx
from .images import DEFAULT_MAX_PIXELS, ImageFolder, load_image, open_image
from .loader import DataLoader
from .mnist import FASHION_MNIST_CLASSES, MNIST, FashionMNIST
from .sampler import ShardedLoader
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToFloat

__all__ = ["DEFAULT_MAX_PIXELS", "FASHION_MNIST_CLASSES", "MNIST", "Compose", "DataLoader",
           "Dataset", "Digits",
           "FashionMNIST", "ImageFolder", "Normalize", "RandomCrop", "RandomHorizontalFlip",
           "ShardedLoader", "Subset", "TensorDataset", "ToFloat", "load_image", "open_image",
           "random_split",
           "read_idx", "transforms", "write_idx"]
