"""Shared fixtures (real images from the installed datasets) and the Hypothesis profiles."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

from flipflow.training import datasets

# CI runs derandomised (the same examples on every run, so a failure reproduces from the
# log); locally examples vary, and a failure prints the blob that replays it
# (@reproduce_failure). Either profile can be forced with HYPOTHESIS_PROFILE.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile("dev", print_blob=True, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def fashion() -> datasets.Dataset:
    return datasets.fashion_mnist()


@pytest.fixture(scope="session")
def digits() -> datasets.Dataset:
    return datasets.digits()


@pytest.fixture(scope="session")
def fashion_test_images(fashion) -> np.ndarray:
    return fashion.test.images[:200]
