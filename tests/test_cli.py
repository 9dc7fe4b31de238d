"""The one `flipflow` command and the Makefile's setup."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import flipflow
from flipflow import cli

ROOT = Path(flipflow.__file__).resolve().parent


COMMANDS = ["info", "train", "prune", "bitslice-sensitivity", "table", "import", "export-qonnx", "hls", "earlyexit", "fold", "bench", "bitslice", "margin-sweep", "sparse", "golden", "sim", "deploy"]


def test_help_lists_every_command():
    """Every subpackage's commands are registered (cli.py skips a missing module silently)."""
    out = subprocess.run([sys.executable, "-m", "flipflow.cli", "--help"], capture_output=True, text=True, check=True).stdout
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    assert listed == COMMANDS


def test_bad_model_is_a_clean_error(capsys):
    assert cli.main(["info", "no_such_model"]) == 2
    err = capsys.readouterr().err
    assert "no_such_model" in err and "zoo models" in err and "Traceback" not in err


def test_info_prints_the_layer_table(tmp_path, capsys):
    from test_ir import small_net

    path = small_net().save(tmp_path / "m.ir.npz")
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "binary_conv" in out and f"{small_net().binary_ops:,}" in out



def test_info_names_each_layers_options(tmp_path, capsys):
    from test_ir import _sparse_net

    net = _sparse_net()
    net.layers[1].centred, net.layers[1].thresholds = True, np.zeros(4, np.int64)
    assert cli.main(["info", str(net.save(tmp_path / "s.ir.npz"))]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("s1 "))
    assert "sparse_conv" in line and line.endswith("  2:4 centred")


def test_second_setup_does_nothing_and_is_fast():
    t0 = time.monotonic()
    out = subprocess.run(["make", "-s", "setup"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert time.monotonic() - t0 < 20
    assert "installing" not in out.stdout + out.stderr and "creating" not in out.stdout + out.stderr
