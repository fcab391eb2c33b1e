"""Tests for cnnkit.data: IDX files, datasets, DataLoader, transforms, images."""
import gzip
import json
import os
import time

import numpy as np
import pytest
from PIL import Image

import cnnkit
from cnnkit.data import (
    MNIST,
    Compose,
    DataLoader,
    Dataset,
    Digits,
    FashionMNIST,
    ImageFolder,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Subset,
    TensorDataset,
    ToFloat,
    load_image,
    random_split,
    read_idx,
    write_idx,
)

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


# ----------------------------------------------------------------------------- IDX files

def _extreme_values(dtype, shape, rng):
    if np.dtype(dtype).kind == "f":
        values = rng.standard_normal(shape) * 1e3
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=shape, endpoint=True)
        values.flat[:2] = [info.min, info.max][:values.size]
    return values.astype(dtype)


@pytest.mark.parametrize("dtype", IDX_DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 0, 3)])
def test_idx_round_trip(tmp_path, rng, dtype, suffix, shape):
    array = _extreme_values(dtype, shape, rng)
    path = tmp_path / f"a-idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable and back.dtype.isnative
    assert os.listdir(tmp_path) == [path.name]  # no temp file left behind
    with open(path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == (suffix == ".gz")


def test_idx_layout_is_big_endian_with_standard_type_codes(tmp_path):
    path = tmp_path / "x"
    write_idx(path, np.array([1, 256], dtype=np.int16))
    assert path.read_bytes() == bytes.fromhex("00000B01 00000002 0001 0100")
    write_idx(path, np.array([[1.5]], dtype=np.float64))
    assert path.read_bytes() == bytes.fromhex("00000E02 00000001 00000001") + \
        np.array([1.5], ">f8").tobytes()
    # A hand-made uint8 file: 2x3 matrix.
    path.write_bytes(bytes.fromhex("00000802 00000002 00000003 010203040506"))
    np.testing.assert_array_equal(read_idx(path), [[1, 2, 3], [4, 5, 6]])


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    raw = bytes.fromhex("00000D01 00000002") + np.array([0.5, -2], ">f4").tobytes()
    path = tmp_path / "no-suffix"
    path.write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(path), np.array([0.5, -2], np.float32))


def test_write_idx_accepts_tensor_and_rejects_bad_dtypes(tmp_path):
    write_idx(tmp_path / "t", cnnkit.tensor(np.arange(4, dtype=np.int32)))
    np.testing.assert_array_equal(read_idx(tmp_path / "t"), np.arange(4))
    for bad in (np.arange(3, dtype=np.int64), np.array([True]), np.array([1j])):
        with pytest.raises(TypeError, match="IDX type code"):
            write_idx(tmp_path / "bad", bad)
    assert not (tmp_path / "bad").exists()


def test_write_idx_replaces_existing_file(tmp_path):
    path = tmp_path / "a.gz"
    write_idx(path, np.zeros(100, np.uint8))
    write_idx(path, np.ones(3, np.uint8))
    np.testing.assert_array_equal(read_idx(path), [1, 1, 1])
    assert sorted(os.listdir(tmp_path)) == ["a.gz"]


def _good_idx_bytes():
    return bytes.fromhex("00000802 00000002 00000003 010203040506")


@pytest.mark.parametrize("contents, message", [
    (b"", "magic number alone"),
    (bytes.fromhex("0000"), "magic number alone"),
    (bytes.fromhex("01000801 00000001 07"), "bad IDX magic"),
    (bytes.fromhex("00010801 00000001 07"), "bad IDX magic"),
    (bytes.fromhex("00000A01 00000001 07"), "unknown IDX type code 0x0A"),
    (bytes.fromhex("00000803 00000002 000000"), "truncated IDX header"),
    (_good_idx_bytes()[:-1], "truncated"),
    (_good_idx_bytes() + b"\x00", "trailing bytes"),
    (bytes.fromhex("00000C01 00000002 00000001 000000"), "truncated"),  # int32 short by 1 byte
])
def test_read_idx_rejects_corrupt_files(tmp_path, contents, message):
    for name, data in (("bad-raw", contents), ("bad.gz", gzip.compress(contents))):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message) as info:
            read_idx(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize("damage", ["cut", "cut_early", "garbage", "crc"])
def test_read_idx_corrupt_gzip_becomes_value_error_naming_file(tmp_path, rng, damage):
    good = tmp_path / "good.gz"
    write_idx(good, rng.integers(0, 255, size=(50, 28, 28)).astype(np.uint8))
    data = bytearray(good.read_bytes())
    if damage == "cut":
        data = data[:len(data) // 2]      # EOFError inside gzip
    elif damage == "cut_early":
        data = data[:12]                  # header only
    elif damage == "garbage":
        data[20:60] = b"\xff" * 40        # zlib.error
    else:
        data[-8] ^= 0xFF                  # CRC mismatch (BadGzipFile)
    path = tmp_path / "broken-images-idx3-ubyte.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# ----------------------------------------------------------------------------- Fashion-MNIST

requires_fashion = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_DIR, "train-labels-idx1-ubyte.gz")),
    reason="Debian's dataset-fashion-mnist is not installed")


@pytest.fixture(scope="module")
def fashion_train():
    return FashionMNIST(root=FASHION_DIR, train=True)


@requires_fashion
def test_fashion_mnist_real_files(fashion_train):
    ds = fashion_train
    assert len(ds) == 60000
    assert ds.images.shape == (60000, 1, 28, 28) and ds.images.dtype == np.float32
    assert ds.labels.shape == (60000,) and ds.labels.dtype == np.int64
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), [6000] * 10)
    assert ds.classes == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                          "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert ds.labels[0] == 9  # the first training image is an ankle boot
    raw = read_idx(ds.files[0])
    np.testing.assert_array_equal(ds.images[123, 0], raw[123].astype(np.float32) / 255)
    image, label = ds[5]
    assert image.shape == (1, 28, 28) and image.dtype == np.float32
    assert label.dtype == np.int64 and label == ds.labels[5]


@requires_fashion
def test_fashion_mnist_test_split_and_system_fallback(monkeypatch):
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    ds = FashionMNIST(train=False)  # no root: found in the system directory
    assert len(ds) == 10000 and ds.images.shape == (10000, 1, 28, 28)
    assert ds.files[0].startswith(FASHION_DIR)
    np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), [1000] * 10)


@requires_fashion
def test_fashion_mnist_epoch_is_fast(fashion_train):
    loader = DataLoader(fashion_train, batch_size=64, shuffle=True, seed=0)
    start = time.perf_counter()
    count = sum(len(labels) for _, labels in loader)
    elapsed = time.perf_counter() - start
    assert count == 60000 and len(loader) == 938
    assert elapsed < 1.0, f"one shuffled epoch took {elapsed:.2f} s"


def _write_fake_split(directory, train, n=12, gz=True, seed=0, n_labels=None):
    rng = np.random.default_rng(seed)
    prefix = "train" if train else "t10k"
    suffix = ".gz" if gz else ""
    os.makedirs(directory, exist_ok=True)
    images = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
    labels = (np.arange(n if n_labels is None else n_labels) % 10).astype(np.uint8)
    write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}"), images)
    write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"), labels)
    return images, labels


@pytest.fixture
def no_system_data(monkeypatch, tmp_path):
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    monkeypatch.setattr(FashionMNIST, "system_dir", str(tmp_path / "no-system"))
    monkeypatch.setattr(MNIST, "system_dir", str(tmp_path / "no-system"))


def test_fashion_mnist_from_root_converts_and_scales(tmp_path, no_system_data):
    images, labels = _write_fake_split(tmp_path / "d", train=False, gz=False)
    ds = FashionMNIST(root=tmp_path / "d", train=False)
    np.testing.assert_array_equal(ds.images[:, 0] * 255, images.astype(np.float32))
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.arrays[0] is ds.images and ds.arrays[1] is ds.labels


def test_fashion_mnist_search_order(tmp_path, monkeypatch, no_system_data):
    _write_fake_split(tmp_path / "root", True, n=3)
    _write_fake_split(tmp_path / "env" / "fashion-mnist", True, n=4)
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "env"))
    assert len(FashionMNIST(root=tmp_path / "root")) == 3          # root first
    assert len(FashionMNIST(root=tmp_path / "empty")) == 4         # then $CNNKIT_DATA/<name>
    _write_fake_split(tmp_path / "env", True, n=5)
    assert len(FashionMNIST()) == 5                                # $CNNKIT_DATA before /<name>
    _write_fake_split(tmp_path / "mnist-env" / "mnist", True, n=6)
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "mnist-env"))
    mnist = MNIST()
    assert len(mnist) == 6 and mnist.classes == [str(d) for d in range(10)]


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, no_system_data):
    with pytest.raises(FileNotFoundError) as info:
        FashionMNIST(root=tmp_path)
    message = str(info.value)
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "CNNKIT_DATA" in message and "root=" in message and "fashion-mnist" in message
    assert "train-images-idx3-ubyte" in message and str(tmp_path) in message


def test_dataset_transform_applies_on_fast_path_and_per_item(tmp_path, no_system_data):
    _write_fake_split(tmp_path, True, n=7)
    plain = FashionMNIST(root=tmp_path)
    for transform in (lambda x: x + 1, Normalize(-1.0, 1.0)):  # per image, and batch-aware
        ds = FashionMNIST(root=tmp_path, transform=transform)
        np.testing.assert_allclose(ds[3][0], plain.images[3] + 1)
        images, labels = next(iter(DataLoader(ds, batch_size=7)))
        np.testing.assert_allclose(images, plain.images + 1)
        np.testing.assert_array_equal(labels, plain.labels)


def test_fashion_mnist_count_mismatch_and_bad_labels(tmp_path, no_system_data):
    _write_fake_split(tmp_path, True, n=10, n_labels=9)
    with pytest.raises(ValueError, match="10 images but .* 9 labels"):
        FashionMNIST(root=tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(10, 10, np.uint8))
    with pytest.raises(ValueError, match="label 10 out of range"):
        FashionMNIST(root=tmp_path)


# ----------------------------------------------------------------------------- Digits

@pytest.fixture(scope="module")
def digits_pair():
    return Digits(train=True), Digits(train=False)


def test_digits_split(digits_pair):
    from sklearn.datasets import load_digits
    train, test = digits_pair
    assert (len(train), len(test)) == (1438, 359)
    assert not set(train.indices) & set(test.indices)
    assert sorted(np.concatenate([train.indices, test.indices])) == list(range(1797))
    for ds in (train, test):
        assert ds.images.shape == (len(ds), 1, 8, 8) and ds.images.dtype == np.float32
        assert ds.labels.dtype == np.int64 and ds.images.min() == 0 and ds.images.max() == 1
    bunch = load_digits()
    np.testing.assert_array_equal(test.images[:, 0] * 16, bunch.images[test.indices])
    np.testing.assert_array_equal(test.labels, bunch.target[test.indices])
    assert train.classes == [str(d) for d in range(10)]
    assert np.all(np.bincount(train.labels) > 100)  # the split is not ordered by class


def test_digits_deterministic_and_fraction(digits_pair):
    again = Digits(train=False)
    np.testing.assert_array_equal(again.indices, digits_pair[1].indices)
    assert len(Digits(train=False, test_fraction=0.5)) == 898
    for bad in (0, 1.0, -0.1, True, "0.2"):
        with pytest.raises(ValueError, match="test_fraction"):
            Digits(test_fraction=bad)


# ----------------------------------------------------------------------------- DataLoader

class ItemOnly(Dataset):
    """Same samples as a TensorDataset but without ``arrays``: forces the per-item path."""

    def __init__(self, *arrays):
        self.inner = TensorDataset(*arrays)
        self.calls = 0

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        self.calls += 1
        return self.inner[index]


def _ids(loader):
    return [labels.tolist() for _, labels in loader]


def _toy(n=10):
    images = np.arange(n * 4, dtype=np.float32).reshape(n, 1, 2, 2)
    return images, np.arange(n, dtype=np.int64)


@pytest.mark.parametrize("item_path", [False, True])
def test_loader_batch_counts_and_order(item_path):
    images, labels = _toy(10)
    ds = ItemOnly(images, labels) if item_path else TensorDataset(images, labels)
    loader = DataLoader(ds, batch_size=3)
    assert len(loader) == 4
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [3, 3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), images)
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    dropping = DataLoader(ds, batch_size=3, drop_last=True)
    assert len(dropping) == 3 and _ids(dropping) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2
    assert len(DataLoader(ds, batch_size=11)) == 1 and len(DataLoader(ds, 11, drop_last=True)) == 0


def test_loader_fast_path_makes_no_item_calls_and_matches_item_path():
    images, labels = _toy(23)

    class Counting(TensorDataset):
        def __getitem__(self, index):
            raise AssertionError("fast path must not call __getitem__")

    fast = DataLoader(Counting(images, labels), batch_size=4, shuffle=True, seed=3,
                      transform=Normalize(1.0, 2.0))
    slow_ds = ItemOnly(images, labels)
    slow = DataLoader(slow_ds, batch_size=4, shuffle=True, seed=3, transform=Normalize(1.0, 2.0))
    for (fx, fy), (sx, sy) in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(fx, sx)
        np.testing.assert_array_equal(fy, sy)
    assert slow_ds.calls == 23


def test_loader_shuffle_reproducible_and_new_each_epoch():
    ds = TensorDataset(*_toy(50))
    a, b = DataLoader(ds, 8, shuffle=True, seed=7), DataLoader(ds, 8, shuffle=True, seed=7)
    epochs_a = [_ids(a) for _ in range(3)]
    epochs_b = [_ids(b) for _ in range(3)]
    assert epochs_a == epochs_b
    for epoch in epochs_a:
        assert sorted(np.concatenate(epoch)) == list(range(50))   # a permutation
    assert epochs_a[0] != epochs_a[1] != epochs_a[2]
    assert _ids(DataLoader(ds, 8, shuffle=True, seed=8)) != epochs_a[0]
    assert np.concatenate(_ids(DataLoader(ds, 8))).tolist() == list(range(50))
    assert a.epoch == 3


def _augmenting_loader(ds, seed=11):
    augment = Compose([RandomCrop(2, padding=1), RandomHorizontalFlip()])
    return DataLoader(ds, batch_size=4, shuffle=True, seed=seed, transform=augment)


def test_loader_state_dict_resumes_next_epoch_exactly():
    ds = TensorDataset(*_toy(18))
    loader = _augmenting_loader(ds)
    list(loader)
    state = json.loads(json.dumps(loader.state_dict()))  # plain JSON data
    expected = [[x.copy() for x in batch] for batch in loader]

    resumed = _augmenting_loader(ds, seed=999)  # the state, not the seed, decides
    resumed.load_state_dict(state)
    assert resumed.epoch == 1
    got = list(resumed)
    assert len(got) == len(expected)
    for (ex, ey), (gx, gy) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(gx, ex)
        np.testing.assert_array_equal(gy, ey)
    fresh_second_epoch = _augmenting_loader(ds, seed=999)
    assert _ids(fresh_second_epoch) != [y.tolist() for _, y in expected]


@pytest.mark.parametrize("stop_after", [0, 2, 5])
def test_loader_state_dict_resumes_mid_epoch(stop_after):
    ds = TensorDataset(*_toy(18))
    loader = _augmenting_loader(ds)
    list(loader)  # one full epoch first
    it = iter(loader)
    for _ in range(stop_after):
        next(it)
    state = json.loads(json.dumps(loader.state_dict()))
    rest = [b for b in it] + [b for b in loader]  # rest of this epoch, then the next one

    resumed = _augmenting_loader(ds)
    resumed.load_state_dict(state)
    # After the last batch the saved state already points at the next epoch (no empty epoch).
    in_epoch = stop_after < len(loader)
    assert (state["epoch"], state["batches_done"]) == ((1, stop_after) if in_epoch else (2, 0))
    got = list(resumed) + (list(resumed) if in_epoch else [])
    assert len(got) == len(rest)
    for (ex, ey), (gx, gy) in zip(rest, got, strict=True):
        np.testing.assert_array_equal(gx, ex)
        np.testing.assert_array_equal(gy, ey)


def test_loader_state_validation():
    ds = TensorDataset(*_toy(10))
    loader = DataLoader(ds, 2, shuffle=True, seed=0)
    with pytest.raises(ValueError, match="num_samples"):
        DataLoader(TensorDataset(*_toy(12)), 2, shuffle=True).load_state_dict(loader.state_dict())
    for bad in ({}, {"epoch": 0, "batches_done": 0, "rng_state": {"bit_generator": "MT19937"}},
                {"epoch": -1, "batches_done": 0, "rng_state": {}}):
        with pytest.raises(ValueError, match="load_state_dict"):
            loader.load_state_dict(bad)


def test_loader_rejects_bad_arguments():
    ds = TensorDataset(*_toy(4))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(ds, batch_size=bad)
    with pytest.raises(TypeError, match="shuffle"):
        DataLoader(ds, shuffle="yes")
    with pytest.raises(ValueError, match="seed"):
        DataLoader(ds, seed=-1)
    with pytest.raises(TypeError, match="transform"):
        DataLoader(ds, transform=3)
    with pytest.raises(TypeError, match="dataset"):
        DataLoader([1, 2][0])


def test_loader_transform_touches_images_only_and_plain_callables_work():
    images, labels = _toy(6)
    loader = DataLoader(TensorDataset(images, labels), 4, transform=lambda x: x * 2)
    (x0, y0), (x1, y1) = loader
    np.testing.assert_array_equal(np.concatenate([x0, x1]), images * 2)
    np.testing.assert_array_equal(np.concatenate([y0, y1]), labels)


def test_tensor_dataset_and_subsets():
    images, labels = _toy(10)
    ds = TensorDataset(cnnkit.tensor(images), labels)
    assert isinstance(ds.arrays[0], np.ndarray) and len(ds) == 10
    x, y = ds[3]
    np.testing.assert_array_equal(x, images[3]) and y == 3
    with pytest.raises(ValueError, match="same length"):
        TensorDataset(images, labels[:9])
    with pytest.raises(TypeError, match="arrays\\[1\\]"):
        TensorDataset(images, [1, 2])
    parts = random_split(ds, [0.7, 0.3], seed=0)
    assert [len(p) for p in parts] == [7, 3]
    assert sorted(np.concatenate([p.indices for p in parts])) == list(range(10))
    nested = Subset(parts[0], [-1, 0])
    loaded = next(iter(DataLoader(nested, batch_size=2)))[1]
    np.testing.assert_array_equal(loaded, parts[0].indices[[-1, 0]])
    assert nested[0][1] == loaded[0]
    with pytest.raises(ValueError, match="indices must lie"):
        Subset(ds, [10])
    with pytest.raises(ValueError, match="sum to"):
        random_split(ds, [3, 3])


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="timing only on Linux")
def test_loader_60k_epoch_is_fast_without_real_data():
    images = np.zeros((60000, 1, 28, 28), np.float32)
    loader = DataLoader(TensorDataset(images, np.zeros(60000, np.int64)), 128, shuffle=True,
                        seed=0)
    start = time.perf_counter()
    assert sum(len(y) for _, y in loader) == 60000
    assert time.perf_counter() - start < 1.0


# ----------------------------------------------------------------------------- transforms

def test_normalize_numerics(rng):
    x = rng.random((3, 4, 5)).astype(np.float32)
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.3, 4.0]
    out = Normalize(mean, std)(x)
    expected = (x.astype(np.float64) - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    batch = np.stack([x, x * 2])
    np.testing.assert_allclose(Normalize(mean, std).apply_batch(batch)[1],
                               Normalize(mean, std)(x * 2))
    np.testing.assert_allclose(Normalize(0.5, 0.25)(x), (x - 0.5) / 0.25, rtol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        Normalize([0.1, 0.2], [1, 1])(x)
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize(0, 0)


def _padded(batch, pad, mode="constant"):
    return np.pad(batch, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=mode)


def _offsets_of_crops(crops, padded):
    """For each crop, the (top, left) where it sits in its padded image (asserting one exists)."""
    h, w = crops.shape[-2:]
    offsets = []
    for crop, source in zip(crops, padded, strict=True):
        hits = [(i, j) for i in range(source.shape[-2] - h + 1)
                for j in range(source.shape[-1] - w + 1)
                if np.array_equal(source[:, i:i + h, j:j + w], crop)]
        assert hits, "crop is not a slice of the padded image"
        offsets.append(hits[0])
    return offsets


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_random_crop_is_a_slice_of_the_padded_image(mode):
    batch = np.arange(1, 1 + 64 * 2 * 5 * 6, dtype=np.float32).reshape(64, 2, 5, 6)
    crop = RandomCrop((4, 3), padding=2, padding_mode=mode, seed=0)
    out = crop.apply_batch(batch)
    assert out.shape == (64, 2, 4, 3) and out.dtype == np.float32
    offsets = _offsets_of_crops(out, _padded(batch, 2, mode))
    tops, lefts = zip(*offsets, strict=True)
    assert set(tops) == set(range(9 - 4 + 1)) and set(lefts) == set(range(10 - 3 + 1))
    single = crop(batch[0])
    assert single.shape == (2, 4, 3)
    _offsets_of_crops(single[None], _padded(batch[:1], 2, mode))


def test_random_crop_seeding_and_validation():
    batch = np.random.default_rng(0).random((8, 1, 6, 6)).astype(np.float32)
    a = RandomCrop(4, padding=1, seed=5).apply_batch(batch)
    np.testing.assert_array_equal(a, RandomCrop(4, padding=1, seed=5).apply_batch(batch))
    assert not np.array_equal(a, RandomCrop(4, padding=1, seed=6).apply_batch(batch))
    same_rng = RandomCrop(4, padding=1)
    np.testing.assert_array_equal(same_rng.apply_batch(batch, np.random.default_rng(1)),
                                  same_rng.apply_batch(batch, np.random.default_rng(1)))
    no_pad = RandomCrop(6).apply_batch(batch)
    np.testing.assert_array_equal(no_pad, batch)
    with pytest.raises(ValueError, match="larger than the padded image"):
        RandomCrop(9, padding=1).apply_batch(batch)
    with pytest.raises(ValueError, match="padding"):
        RandomCrop(4, padding=-1)
    with pytest.raises(ValueError, match="shape \\(B, C, H, W\\)"):
        RandomCrop(4).apply_batch(batch[0])


def test_random_horizontal_flip():
    batch = np.arange(40 * 2 * 3 * 4, dtype=np.float32).reshape(40, 2, 3, 4)
    original = batch.copy()
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0).apply_batch(batch),
                                  batch[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0).apply_batch(batch), batch)
    out = RandomHorizontalFlip(seed=0).apply_batch(batch)
    flipped = np.array([np.array_equal(o, b[..., ::-1]) for o, b in zip(out, batch, strict=True)])
    kept = np.array([np.array_equal(o, b) for o, b in zip(out, batch, strict=True)])
    assert np.all(flipped ^ kept) and 5 < flipped.sum() < 35
    np.testing.assert_array_equal(batch, original)  # input untouched
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1)(batch[0]), batch[0][..., ::-1])
    with pytest.raises(ValueError, match="p must be"):
        RandomHorizontalFlip(p=1.5)


def test_compose_and_to_float():
    image = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3) * 20
    pipeline = Compose([ToFloat(), Normalize([0.5, 0.0], [0.5, 1.0]),
                        RandomHorizontalFlip(p=1.0)])
    expected = (image.astype(np.float32) / 255 - np.array([0.5, 0])[:, None, None]) \
        / np.array([0.5, 1.0])[:, None, None]
    np.testing.assert_allclose(pipeline(image), expected[..., ::-1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pipeline.apply_batch(image[None])[0], pipeline(image))
    assert ToFloat()(np.array([[[255]]], np.uint8))[0, 0, 0] == 1.0
    assert ToFloat()(np.array([[[3]]], np.int32)).dtype == np.float32
    with pytest.raises(TypeError, match="not callable"):
        Compose([ToFloat(), 3])


# ----------------------------------------------------------------------------- images

@pytest.fixture
def image_tree(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {}
    for cls, count in (("dog", 2), ("cat", 3)):
        os.makedirs(tmp_path / cls)
        for k in range(count):
            rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)  # H != W on purpose
            path = tmp_path / cls / f"{k}.png"
            Image.fromarray(rgb).save(path)
            pixels[str(path)] = rgb
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    return tmp_path, pixels


def test_image_folder(image_tree):
    root, pixels = image_tree
    ds = ImageFolder(root)
    assert ds.classes == ["cat", "dog"] and len(ds) == 5
    np.testing.assert_array_equal(ds.targets, [0, 0, 0, 1, 1])
    for index, (path, label) in enumerate(ds.samples):
        image, target = ds[index]
        assert image.shape == (3, 5, 7) and image.dtype == np.float32 and target == label
        np.testing.assert_allclose(image, pixels[path].transpose(2, 0, 1) / 255, rtol=1e-6)
    images, labels = next(iter(DataLoader(ds, batch_size=5)))
    assert images.shape == (5, 3, 5, 7) and labels.dtype == np.int64
    gray = ImageFolder(root, grayscale=True, image_size=(4, 6))
    assert gray[0][0].shape == (1, 4, 6)
    path = ds.samples[0][0]
    expected = np.asarray(Image.open(path).convert("L"), np.float32) / 255
    np.testing.assert_allclose(ImageFolder(root, grayscale=True)[0][0][0], expected, rtol=1e-6)


def test_image_folder_grayscale_auto_and_errors(tmp_path):
    os.makedirs(tmp_path / "a")
    Image.fromarray(np.full((3, 3), 255, np.uint8)).save(tmp_path / "a" / "x.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a" / "y.png")
    ds = ImageFolder(tmp_path)
    assert ds.grayscale and ds[0][0].shape == (1, 3, 3) and ds[0][0].max() == 1.0
    with pytest.raises(ValueError, match="image_size"):
        list(DataLoader(ds, batch_size=2))
    (tmp_path / "a" / "z.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="z.png"):
        ImageFolder(tmp_path)[2]
    with pytest.raises(FileNotFoundError):
        ImageFolder(tmp_path / "missing")


def test_load_image(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, size=(4, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    image = load_image(tmp_path / "c.png")
    np.testing.assert_allclose(image, rgba[..., :3].transpose(2, 0, 1) / 255, rtol=1e-6)
    assert load_image(tmp_path / "c.png", size=8).shape == (3, 8, 8)
    wide = (np.arange(6, dtype=np.uint16).reshape(2, 3) * 13107)  # 0 .. 65535
    Image.fromarray(wide).save(tmp_path / "w.png")
    np.testing.assert_allclose(load_image(tmp_path / "w.png", grayscale=True)[0],
                               wide / 65535, rtol=1e-6)
    assert load_image(tmp_path / "w.png").shape == (3, 2, 3)
    Image.fromarray(rgba[..., :3]).save(tmp_path / "j.jpg", quality=95)
    assert load_image(tmp_path / "j.jpg").shape == (3, 4, 6)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff truncated")
    with pytest.raises(ValueError, match="bad.jpg"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match="size"):
        load_image(tmp_path / "c.png", size=(0, 3))
