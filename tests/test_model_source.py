"""training.reports.model_source: how sparse, bitslice and margin-sweep resolve the model a
user names (a zoo name, an IR file, a checkpoint.pt, a prune run folder) into its label, IR,
checkpoint and fine-tuning seeds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flipflow import ir
from flipflow.errors import UsageError
from flipflow.ir import IRError
from flipflow.sim import bitslice, margin_sweep, sparse_sweep
from flipflow.training import reports


def test_a_zoo_model_with_its_pruning_comparison():
    source = reports.model_source("nin_pruned")
    comparison = json.loads((ir.ZOO / "nin_pruned" / "comparison" / "comparison.json").read_text())
    chosen = next(r for r in comparison["rows"] if r["criterion"] == reports.flip_criterion(comparison["prune"]["rule"]))
    assert (source.label, source.ir_file, source.checkpoint_file) == (
        "nin_pruned", ir.ZOO / "nin_pruned" / ir.FILENAME, ir.ZOO / "nin_pruned" / "checkpoint.pt")
    assert source.seeds == chosen["accuracy_per_seed"] and len(source.seeds) == 3
    assert source.seeds_source == "mean of 3 fine-tuning seeds (zoo/nin_pruned/comparison/comparison.json)"


def test_a_zoo_model_without_a_comparison_has_no_seeds():
    source = reports.model_source("tfc")
    assert (source.label, source.seeds, source.seeds_source) == ("tfc", None, "")
    assert source.checkpoint_file == ir.ZOO / "tfc" / "checkpoint.pt"
    with pytest.raises(UsageError, match="no checkpoint.pt beside it to train from"):
        reports.model_source("nin_planes4").checkpoint_file  # the zoo keeps only its IR


def test_an_ir_file_takes_the_checkpoint_beside_it_only_as_a_run_folder_keeps_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(ir.ZOO / "tfc" / ir.FILENAME, run / ir.FILENAME)
    shutil.copy(ir.ZOO / "tfc" / ir.FILENAME, run / "other.ir.npz")
    assert reports.model_source(str(run / ir.FILENAME)).checkpoint is None  # none beside it yet
    shutil.copy(ir.ZOO / "tfc" / "checkpoint.pt", run / "checkpoint.pt")
    source = reports.model_source(str(run / ir.FILENAME))
    assert (source.label, source.ir_file, source.checkpoint_file, source.seeds) == (
        "run", run / ir.FILENAME, run / "checkpoint.pt", None)
    other = reports.model_source(str(run / "other.ir.npz"))  # not the run's own net: its checkpoint is not this one's
    assert (other.label, other.checkpoint) == ("other", None)
    assert source.origin != other.origin


def test_a_checkpoint_is_named_after_its_folder_and_has_no_ir(tmp_path, monkeypatch):
    source = reports.model_source(str(ir.ZOO / "tfc" / "checkpoint.pt"))
    assert (source.label, source.ir_path, source.checkpoint_file) == ("tfc", None, ir.ZOO / "tfc" / "checkpoint.pt")
    with pytest.raises(UsageError, match="a checkpoint, not an exported network"):
        source.ir_file
    monkeypatch.chdir(tmp_path)
    assert reports.model_source("checkpoint.pt").label == tmp_path.name  # a bare file name: the working folder's


def test_an_unknown_model_names_the_zoo():
    with pytest.raises(IRError, match="neither an IR file nor a zoo model.*nin_pruned"):
        reports.model_source("no_such_model")


def test_default_output_folders_are_named_after_the_label():
    checkpoint = str(ir.ZOO / "tfc" / "checkpoint.pt")
    assert bitslice.default_out("nin_pruned") == Path("build/nin_pruned-bitslice")
    assert margin_sweep.default_out(checkpoint) == Path("build/tfc-margin")
    assert sparse_sweep.default_out(checkpoint) == Path("build/tfc-sparse")
