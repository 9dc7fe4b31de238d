"""Shared fixtures: real images from the installed datasets."""

from __future__ import annotations

import numpy as np
import pytest

from flipflow.training import datasets


@pytest.fixture(scope="session")
def fashion() -> datasets.Dataset:
    return datasets.fashion_mnist()


@pytest.fixture(scope="session")
def digits() -> datasets.Dataset:
    return datasets.digits()


@pytest.fixture(scope="session")
def fashion_test_images(fashion) -> np.ndarray:
    return fashion.test.images[:200]
