"""Checkpoints round-trip, and a damaged one gets an error that names the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flipflow.training import checkpoint
from flipflow.training.blocks import BNN, Arch, LayerSpec, images_to_input


def tiny_model() -> BNN:
    torch.manual_seed(0)
    return BNN(Arch("tiny", (8, 8, 1), [str(i) for i in range(10)], [LayerSpec("input_dense", 6), LayerSpec("binary_dense", 5), LayerSpec("output_dense", 10)]))


def test_round_trip_rebuilds_the_same_function(tmp_path):
    model = tiny_model().eval()
    path = checkpoint.save(tmp_path / "c.pt", model, epoch=3)
    back, payload = checkpoint.load(path)
    x = images_to_input(np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8))
    with torch.no_grad():
        assert torch.equal(model(x), back(x))
    assert payload["epoch"] == 3 and back.arch == model.arch


def test_truncated_checkpoint_is_named(tmp_path):
    path = checkpoint.save(tmp_path / "c.pt", tiny_model())
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupt"):
        checkpoint.load(path)


def test_foreign_file_is_rejected(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not a flipflow checkpoint"):
        checkpoint.load(tmp_path / "other.pt")


def test_weights_not_matching_arch(tmp_path):
    path = checkpoint.save(tmp_path / "c.pt", tiny_model())
    payload = torch.load(path, weights_only=True)
    payload["arch"]["layers"][1]["out_ch"] = 7
    torch.save(payload, path)
    with pytest.raises(checkpoint.CheckpointError, match="do not match"):
        checkpoint.load(path)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = checkpoint.save(tmp_path / "c.pt", tiny_model(), epoch=1)
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        checkpoint.save(path, tiny_model(), epoch=2)
    monkeypatch.undo()
    assert checkpoint.load(path)[1]["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
