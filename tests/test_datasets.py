"""Dataset loaders on small files written in the exact standard formats."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from flipflow.training import datasets
from flipflow.training.datasets import DatasetError


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_mnist(folder, compress: bool, n_train: int = 12, n_test: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, a in arrays.items():
        write_idx(folder / (name + (".gz" if compress else "")), a, compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_roundtrip(tmp_path, compress):
    arrays = make_mnist(tmp_path, compress)
    d = datasets.load("mnist", tmp_path)
    assert d.train.images.shape == (12, 28, 28, 1) and d.train.images.dtype == np.uint8
    np.testing.assert_array_equal(d.train.images[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(d.test.labels, arrays["t10k-labels-idx1-ubyte"])
    assert d.input_shape == (28, 28, 1)


def test_mnist_errors(tmp_path):
    with pytest.raises(DatasetError, match="--data-dir"):
        datasets.load("mnist")
    make_mnist(tmp_path, compress=False)
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])  # truncated
    with pytest.raises(DatasetError, match="truncated"):
        datasets.mnist(tmp_path)
    images.write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 20)  # float IDX, not unsigned bytes
    with pytest.raises(DatasetError, match="magic"):
        datasets.mnist(tmp_path)
    images.unlink()
    with pytest.raises(DatasetError, match="not found"):
        datasets.mnist(tmp_path)
    make_mnist(tmp_path, compress=False, n_train=12)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(11), compress=False)
    with pytest.raises(DatasetError, match="11 labels"):
        datasets.mnist(tmp_path)


def write_cifar(folder, n: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    rng = np.random.default_rng(2)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3 * 32 * 32)).astype(np.uint8)  # rows: R plane, G plane, B plane
        labels = rng.integers(0, 10, n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}, f)
        batches[name] = (data, labels)
    return batches


def test_cifar10_pickle_batches(tmp_path):
    batches = write_cifar(tmp_path)
    d = datasets.load("cifar10", tmp_path)
    assert d.train.images.shape == (20, 32, 32, 3) and d.test.images.shape == (4, 32, 32, 3)
    data, labels = batches["data_batch_2"]
    img = d.train.images[4 + 1]  # second image of the second batch
    np.testing.assert_array_equal(img[..., 0].ravel(), data[1, :1024])  # red plane, row-major
    np.testing.assert_array_equal(img[..., 2].ravel(), data[1, 2048:])
    assert d.train.labels[5] == labels[1]
    assert d.classes[0] == "airplane"


def test_cifar10_errors(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="not a CIFAR-10 batch"):
        datasets.cifar10(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3 is missing"):
        datasets.cifar10(tmp_path)


def test_unknown_dataset():
    with pytest.raises(DatasetError, match="choose one of"):
        datasets.load("imagenet")


def test_subsets_and_splits_are_deterministic(digits):
    a, b = digits.train.subset(100, seed=3), digits.train.subset(100, seed=3)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, digits.train.subset(100, seed=4).images)
    assert digits.train.subset(None) is digits.train
    rest, held = digits.train.split(200, seed=0)
    assert len(rest) + len(held) == len(digits.train) and len(held) == 200
    joined = np.concatenate([rest.images, held.images]).reshape(len(digits.train), -1)
    assert len(np.unique(joined, axis=0)) == len(np.unique(digits.train.images.reshape(len(digits.train), -1), axis=0))
    with pytest.raises(DatasetError):
        digits.train.split(0)


def test_augment_shifts_and_flips(fashion_test_images):
    x = torch.from_numpy(np.array(fashion_test_images[:16])).permute(0, 3, 1, 2)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(datasets.augment(x, gen, shift=0, hflip=False), x)
    y = datasets.augment(x, torch.Generator().manual_seed(0), shift=2, hflip=True)
    assert y.shape == x.shape and y.dtype == torch.uint8
    for i in range(len(x)):  # every output is the image or its mirror, shifted by at most 2 pixels
        found = False
        for img in (x[i], x[i].flip(2)):
            padded = torch.nn.functional.pad(img, (2,) * 4)
            found |= any(torch.equal(padded[:, dy : dy + 28, dx : dx + 28], y[i]) for dy in range(5) for dx in range(5))
        assert found
    assert not torch.equal(y, x)
