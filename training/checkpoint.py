"""Checkpoints: the architecture plus weights (and training state), written
atomically so a kill mid-write never corrupts the last good one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from flipflow import atomic
from flipflow.training.blocks import BNN, Arch


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not match its architecture."""


def save(path: str | os.PathLike, model: BNN, **state: Any) -> Path:
    path = Path(path)
    payload = {"format": "flipflow-checkpoint", "version": 1, "arch": model.arch.to_dict(), "model": model.state_dict(), **state}
    with atomic.replacing(path) as tmp:
        torch.save(payload, tmp)
    return path


def load(path: str | os.PathLike) -> tuple[BNN, dict[str, Any]]:
    """Rebuild the model; returns (model in eval mode, the whole payload)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint (train one with `flipflow train`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises several kinds on truncated files
        raise CheckpointError(f"{path}: unreadable checkpoint (truncated or corrupt?): {e}; re-run training with --resume or restore a copy") from e
    if not isinstance(payload, dict) or payload.get("format") != "flipflow-checkpoint":
        raise CheckpointError(f"{path}: not a flipflow checkpoint")
    model = BNN(Arch.from_dict(payload["arch"]))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the stored architecture: {e}") from e
    model.eval()
    return model, payload
