"""Loading a file runs no code: a crafted pickle that would create a marker
folder when unpickled is refused with a clear error by every loader."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from flipflow.errors import FlipflowError
from flipflow.training import checkpoint, datasets
from test_checkpoint import tiny_model
from test_datasets import write_cifar


class RunsCode:
    """Unpickling this calls os.mkdir(marker): the stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_checkpoint_loader_refuses_code(tmp_path):
    marker = tmp_path / "ran"
    path = checkpoint.save(tmp_path / "c.pt", tiny_model())
    payload = torch.load(path, weights_only=True)
    payload["log"] = [RunsCode(marker)]  # a well-formed checkpoint with one poisoned entry
    torch.save(payload, path)
    with pytest.raises(checkpoint.CheckpointError, match=r"refused to load: the file asks to run posix\.mkdir") as e:
        checkpoint.load(path)
    assert isinstance(e.value, FlipflowError) and e.value.fix
    assert not marker.exists()


def test_checkpoint_loader_refuses_a_bare_pickle(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "c.pt").write_bytes(pickle.dumps(RunsCode(marker), protocol=2))
    with pytest.raises(checkpoint.CheckpointError, match=r"refused to load: the file asks to run posix\.mkdir"):
        checkpoint.load(tmp_path / "c.pt")
    assert not marker.exists()


def test_zoo_checkpoints_load_as_plain_data():
    for name in ("nin", "nin_pruned", "tfc"):
        model, payload = checkpoint.load(checkpoint.Path(__file__).parents[1] / "zoo" / name / "checkpoint.pt")
        assert payload["format"] == "flipflow-checkpoint" and sum(p.numel() for p in model.parameters()) > 0


def test_cifar10_loader_refuses_code(tmp_path):
    write_cifar(tmp_path)
    marker = tmp_path / "ran"
    with open(tmp_path / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"filenames": [RunsCode(marker)]}, f)
    with pytest.raises(datasets.DatasetError, match=r"data_batch_2: not a CIFAR-10 batch.*refused global posix\.mkdir"):
        datasets.cifar10(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_loader_reads_old_and_new_pickles(tmp_path, protocol):
    """The official batches are protocol-2 pickles (numpy's _reconstruct); numpy 2 writes _frombuffer."""
    write_cifar(tmp_path)
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"batch_label": b"test", b"labels": [3, 7], b"data": data, b"filenames": [b"a.png", "b.png"]}, f, protocol=protocol)
    test = datasets.cifar10(tmp_path).test
    np.testing.assert_array_equal(test.images[1, ..., 0].ravel(), data[1, :1024])
    assert test.labels.tolist() == [3, 7]
