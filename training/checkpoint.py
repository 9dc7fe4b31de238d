"""Checkpoints: the architecture plus weights (and training state), written
atomically so a kill mid-write never corrupts the last good one."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from flipflow import atomic
from flipflow.errors import FlipflowError
from flipflow.training.blocks import BNN, Arch


class CheckpointError(FlipflowError, ValueError):
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
        raise CheckpointError(f"{path}: no such checkpoint", fix="train one with `flipflow train`")
    try:
        # weights_only: the unpickler admits tensors and plain data only, so a crafted
        # checkpoint (e.g. from a shared model zoo) cannot run code while it loads
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several kinds on truncated files
        refused = re.search(r"GLOBAL (\S+)", str(e)) if isinstance(e, pickle.UnpicklingError) else None
        if refused:
            raise CheckpointError(f"{path}: refused to load: the file asks to run {refused.group(1)} (loading it could run code)",
                                  fix="use a checkpoint written by flipflow, from a source you trust") from e
        raise CheckpointError(f"{path}: unreadable checkpoint (truncated or corrupt?)",
                              fix="re-run training with --resume or restore a copy") from e
    if not isinstance(payload, dict) or payload.get("format") != "flipflow-checkpoint":
        raise CheckpointError(f"{path}: not a flipflow checkpoint", fix="give a checkpoint.pt written by `flipflow train` or `prune`")
    try:
        model = BNN(Arch.from_dict(payload["arch"]))
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, RuntimeError) as e:  # a malformed payload: fields missing or of the wrong shape
        raise CheckpointError(f"{path}: weights do not match the stored architecture: {' '.join(str(e).split())[:200]}",
                              fix="restore the checkpoint from a copy or re-train") from e
    model.eval()
    return model, payload
