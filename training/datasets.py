"""Datasets behind one interface: uint8 images (N, H, W, C) and int labels.

Nothing is downloaded: Fashion-MNIST comes from Debian's
``dataset-fashion-mnist`` (installed by ``make setup``), digits from
scikit-learn; MNIST and CIFAR-10 are read from a folder the user provides,
in their standard file formats.
"""

from __future__ import annotations

import codecs
import gzip
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flipflow.errors import FlipflowError

FASHION_MNIST_DIR = Path(os.environ.get("FLIPFLOW_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class DatasetError(FlipflowError, FileNotFoundError):
    """A dataset's files are missing or malformed; the message says how to get them."""


@dataclass
class Split:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> "Split":
        """The first ``n`` images (all when None)."""
        if n is not None and n < 1:
            raise DatasetError(f"asked for the first {n} images", fix="give an image count of at least 1")
        return self if n is None else Split(self.images[:n], self.labels[:n])

    def subset(self, n: int | None, seed: int = 0) -> "Split":
        """A fixed random subset of ``n`` images (same seed, same subset), in a random order."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise DatasetError(f"a subset needs at least one image, got {n}")
        keep = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return Split(self.images[keep], self.labels[keep])

    def split(self, n_second: int, seed: int = 0) -> tuple["Split", "Split"]:
        """Deterministic disjoint (rest, n_second images), e.g. (train, validation)."""
        if not 0 < n_second < len(self):
            raise DatasetError(f"cannot hold out {n_second} of {len(self)} images")
        order = np.random.default_rng(seed).permutation(len(self))
        rest, held = np.sort(order[n_second:]), np.sort(order[:n_second])
        return Split(self.images[rest], self.labels[rest]), Split(self.images[held], self.labels[held])


@dataclass
class Dataset:
    name: str
    classes: list[str]
    train: Split
    test: Split

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.test.images.shape[1:])


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally .gz), the MNIST / Fashion-MNIST format."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        raise DatasetError(f"{path} is missing") from e
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: unreadable ({e})") from e
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file (bad magic {data[:4]!r})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetError(f"{path}: header says {dims} but holds {body.size} bytes (truncated?)")
    return body.reshape(dims)


def _idx_pair(folder: Path, prefix: str) -> Split:
    def find(stem: str) -> Path:
        for name in (f"{stem}.gz", stem):
            if (folder / name).exists():
                return folder / name
        raise DatasetError(f"{folder}: {stem}[.gz] not found")

    images = read_idx(find(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    if len(images) != len(labels):
        raise DatasetError(f"{folder}: {len(images)} {prefix} images but {len(labels)} labels")
    return Split(images[..., None], labels)


def fashion_mnist(folder: Path | None = None) -> Dataset:
    folder = Path(folder or FASHION_MNIST_DIR)
    if not folder.is_dir():
        raise DatasetError(f"{folder} not found: install Debian's dataset-fashion-mnist (`make setup`) or set FLIPFLOW_FASHION_MNIST")
    return Dataset("fashion_mnist", FASHION_CLASSES, _idx_pair(folder, "train"), _idx_pair(folder, "t10k"))


def fashion_mnist_rgb32(folder: Path | None = None) -> Dataset:
    """Fashion-MNIST as 32x32x3 images (2 pixels of 0 around, the grey value in every
    channel): a CIFAR-shaped input for CIFAR networks such as BNN-PYNQ's CNV."""
    base = fashion_mnist(folder)

    def rgb32(split: Split) -> Split:
        images = np.pad(split.images, ((0, 0), (2, 2), (2, 2), (0, 0)))
        return Split(np.ascontiguousarray(np.repeat(images, 3, axis=3)), split.labels)

    return Dataset("fashion_mnist_rgb32", base.classes, rgb32(base.train), rgb32(base.test))


def mnist(folder: Path) -> Dataset:
    """MNIST from the four standard IDX files in ``folder``."""
    folder = Path(folder)
    return Dataset("mnist", [str(i) for i in range(10)], _idx_pair(folder, "train"), _idx_pair(folder, "t10k"))


def digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (0..16 grey levels scaled to 0..255), split deterministically."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255 / 16)).astype(np.uint8)[..., None]
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(len(images) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    labels = d.target.astype(np.int64)
    return Dataset("digits", [str(i) for i in range(10)], Split(images[train], labels[train]), Split(images[test], labels[test]))


class _CifarUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR-10 python batch holds: dicts, lists, bytes, strings,
    numbers and uint8 numpy arrays. Any other global (os.system, ...) is refused
    before it is called, so a crafted batch cannot run code."""

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # the array constructors of the original batches and of numpy >= 2's protocol-5 pickles
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy.core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: a CIFAR-10 batch holds only arrays and plain data")
        return self.ALLOWED[module, name]


def cifar10(folder: Path) -> Dataset:
    """CIFAR-10 from the standard python pickle batches in ``folder``."""
    folder = Path(folder)

    def batch(name: str) -> Split:
        path = folder / name
        if not path.exists():
            raise DatasetError(f"{path} is missing: point to the extracted cifar-10-batches-py folder")
        try:
            with open(path, "rb") as f:
                d = _CifarUnpickler(f, encoding="bytes").load()
            data = np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            labels = np.asarray(d[b"labels"], np.int64)
        except Exception as e:  # a corrupt or foreign file fails in many ways (pickle, keys, shapes)
            raise DatasetError(f"{path}: not a CIFAR-10 batch ({e!r})",
                               fix="point --data-dir to the extracted cifar-10-batches-py folder of the official archive") from e
        return Split(np.ascontiguousarray(data), labels)

    train = [batch(f"data_batch_{i}") for i in range(1, 6)]
    return Dataset(
        "cifar10",
        CIFAR10_CLASSES,
        Split(np.concatenate([s.images for s in train]), np.concatenate([s.labels for s in train])),
        batch("test_batch"),
    )


def augment(images: torch.Tensor, generator: torch.Generator, shift: int = 2, hflip: bool = True) -> torch.Tensor:
    """Random translation by up to ``shift`` pixels (new pixels are 0, like the
    input layer's padding) and random horizontal flips, on a uint8 NCHW batch."""
    n, _, h, w = images.shape
    if hflip:
        flip = torch.rand(n, generator=generator) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(3), images)
    if shift:
        padded = torch.nn.functional.pad(images, (shift,) * 4)
        dy, dx = (torch.randint(0, 2 * shift + 1, (2, n), generator=generator)).tolist()
        images = torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx))])
    return images


LOADERS = {"fashion_mnist": fashion_mnist, "fashion_mnist_rgb32": fashion_mnist_rgb32, "digits": digits, "mnist": mnist,
           "cifar10": cifar10}


def load(name: str, folder: Path | None = None) -> Dataset:
    if name not in LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}")
    if name in ("mnist", "cifar10"):
        if folder is None:
            raise DatasetError(f"{name} cannot be downloaded here: pass --data-dir with its standard files")
        return LOADERS[name](folder)
    if name in ("fashion_mnist", "fashion_mnist_rgb32"):
        return LOADERS[name](folder)
    return digits()
