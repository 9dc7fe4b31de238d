"""Every `flipflow` command answers a typical user mistake with one stderr line
naming the problem and the fix, and exit code 2; a bug in flipflow keeps its
traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from flipflow import cli, ir
from flipflow.sim import rtl as sim_rtl
from test_ir import small_net


@pytest.fixture
def ir_file(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # default output folders land here, not in the repository
    return small_net().save(tmp_path / "small.ir.npz")


def corrupt(path: Path) -> str:
    path.write_bytes(b"\x00not what it claims to be")
    return str(path)


def a_file(tmp_path: Path) -> Path:
    """A plain file: any output folder below it cannot be created (even as root)."""
    f = tmp_path / "a_file"
    f.write_text("x")
    return f


# (command line, text the error must contain); fn(tmp_path, ir_file) -> (argv, expected)
CASES = {
    "info": lambda t, m: (["info", corrupt(t / "bad.ir.npz")], "not a readable IR archive"),
    "train": lambda t, m: (["train", "tfc", "--dataset", "digits", "--widths", "8,0,8"], "tfc: needs 3 positive widths"),
    "prune": lambda t, m: (["prune", corrupt(t / "checkpoint.pt"), "--dataset", "digits", "--out", str(t / "p")],
                           "unreadable checkpoint"),
    "table": lambda t, m: (["table", str(t / "no_run")], "comparison.json not found"),
    "bitslice-sensitivity": lambda t, m: (["bitslice-sensitivity", str(m), "--out", str(t / "b")], "reads 8-bit pixels, not bit planes"),
    "bitslice": lambda t, m: (["bitslice", str(m), "--planes-models", str(m), "--out", str(t / "b")], "reads 8-bit pixels, not bit planes"),
    "import": lambda t, m: (["import", corrupt(t / "m.onnx"), "--dataset", "digits", "--out", str(t / "m.ir.npz")],
                            "not a readable ONNX model"),
    "export-qonnx": lambda t, m: (["export-qonnx", corrupt(t / "checkpoint.pt"), "--out", str(t / "m.onnx")],
                                  "unreadable checkpoint"),
    "earlyexit": lambda t, m: (["earlyexit", str(m), "--folding", corrupt(t / "folding.json")], "not a folding JSON"),
    "hls": lambda t, m: (["hls", str(m), "--folding", corrupt(t / "folding.json"), "--out", str(t / "h")], "not a folding JSON"),
    "fold": lambda t, m: (["fold", str(m), "--device", "pynq-z3"], "unknown device 'pynq-z3'"),
    "bench": lambda t, m: (["bench", "--out", str(a_file(t) / "bench"), "--no-sim", "--no-cnv"], "cannot create folder"),
    "margin-sweep": lambda t, m: (["margin-sweep", corrupt(t / "checkpoint.pt"), "--out", str(t / "m")], "unreadable checkpoint"),
    "sparse": lambda t, m: (["sparse", corrupt(t / "checkpoint.pt"), "--out", str(t / "s")], "unreadable checkpoint"),
    "golden": lambda t, m: (["golden", str(m), "--bench", "--checkpoint", corrupt(t / "c.pt")], "unreadable checkpoint"),
    "sim": lambda t, m: (["sim", str(m), "--images", "2", "--no-resources", "--out", str(t / "s")], "verilator rejected the design"),
    "deploy": lambda t, m: (["deploy", str(m), "--out", str(a_file(t) / "deploy")], f"cannot create folder {t / 'a_file'}"),
}


def test_every_command_has_a_case():
    assert set(cli.build_parser()._subparsers._group_actions[0].choices) == set(CASES)


@pytest.mark.parametrize("command", sorted(CASES))
def test_user_error_is_one_line_and_exit_2(command, tmp_path, ir_file, capsys, monkeypatch):
    monkeypatch.setattr(sim_rtl, "verilator_bin", lambda: "false")  # a Verilator that rejects every design
    argv, expected = CASES[command](tmp_path, ir_file)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    progress = [l for l in lines[:-1] if l.startswith(f"flipflow {command}: ") and ": error:" not in l]
    assert lines[:-1] == progress, err  # at most progress notes before the one error line
    assert lines[-1].startswith(f"flipflow {command}: error: ") and expected in lines[-1], err
    assert "(fix: " in lines[-1], err
    assert "Traceback" not in err


@pytest.mark.parametrize("bug", [ValueError("a numpy shape bug"), ZeroDivisionError("division by zero")])
def test_a_bug_keeps_its_traceback(bug, ir_file, monkeypatch):
    def broken(model):
        raise bug

    monkeypatch.setattr(ir, "load_model", broken)
    with pytest.raises(type(bug), match=str(bug)):
        cli.main(["info", str(ir_file)])
