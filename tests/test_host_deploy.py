"""`flipflow deploy`: one folder and one archive with everything the board needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from flipflow import cli, ir
from flipflow.host import BitstreamError, MetadataError
from flipflow.host.deploy import deploy
from flipflow import golden

from host_helpers import hwh_text, make_build, small_fashion_net


@pytest.fixture(scope="module")
def net(fashion):
    return small_fashion_net(fashion.train.images)


def test_deploy_without_bitstream_explains_vivado(net, tmp_path, capsys):
    build = tmp_path / "build" / "host_small"
    build.mkdir(parents=True)
    (build / "hls").mkdir()
    (build / "hls" / "vivado_pynq_z2.tcl").write_text("# block design\n")
    ir_path = net.save(tmp_path / "m.ir.npz")
    assert cli.main(["deploy", str(ir_path), "--out", str(build / "deploy"), "--test-images", "50"]) == 0
    summary = json.loads(capsys.readouterr().out)
    out = build / "deploy"
    assert summary["bitstream"].startswith("absent")
    readme = (out / "README.md").read_text()
    assert "No bitstream yet" in readme and "Vivado" in readme and "jupyter_notebooks" in readme and "pip install" in readme
    assert (out / "tcl" / "hls" / "vivado_pynq_z2.tcl").is_file()
    assert "from the IR alone" in " ".join(summary["notes"])  # no build: metadata had to come from the IR
    for name in ("accelerator.json", "model.ir.npz", "flipflow_pynq.ipynb", "test_set.npz", "driver/flipflow/host/accelerator.py"):
        assert (out / name).is_file(), name
    with np.load(out / "test_set.npz") as f:
        assert f["images"].shape == (50, 28, 28, 1) and f["images"].dtype == np.uint8 and len(f["labels"]) == 50
    with tarfile.open(summary["archive"]) as tar:
        names = tar.getnames()
    assert "flipflow_host_small/accelerator.json" in names and "flipflow_host_small/driver/flipflow/ir.py" in names


def test_deploy_after_hls_only_takes_folding_and_cycles_from_the_build(net, tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    net.save(build / "model.ir.npz")
    folding = {l.name: {"pe": 1, "simd": 2} for l in net.layers if l.has_weights}
    (build / "folding.json").write_text(json.dumps(folding))
    (build / "report.json").write_text(json.dumps({"cycles_per_frame_estimate": 4321}))
    result = deploy(build / "model.ir.npz", build / "deploy", test_images=5)
    meta = json.loads((result.folder / "accelerator.json").read_text())
    assert meta["folding"] == folding and meta["cycles_per_frame"] == 4321
    assert "folding.json + report.json" in result.notes[0]
    assert (result.folder / "accelerator.json").stat().st_mode & 0o777 == 0o644  # readable by the board's user
    assert result.archive.stat().st_mode & 0o777 == 0o644


def test_deploy_ships_a_checked_bitstream_and_replaces_the_old_folder(net, tmp_path):
    build = make_build(net, tmp_path / "build")
    out = build / "deploy"
    out.mkdir()
    (out / "leftover.txt").write_text("from an older deploy")
    result = deploy(build / "model.ir.npz", out, test_images=10)
    assert result.bitstream and (out / "flipflow.bit").is_file() and (out / "flipflow.hwh").is_file()
    assert not (out / "leftover.txt").exists()
    assert not [p for p in build.iterdir() if p.name.startswith(".")]  # no temp folders left behind
    assert "come from the Vivado build" in (out / "README.md").read_text()


def test_deploy_takes_the_control_mode_of_the_bitstream_it_ships(net, tmp_path):
    """An RTL-built bitstream (free-running top) ships with the RTL design's accelerator.json,
    the HLS one (ap_ctrl_hs) with the HLS build's, whichever folder the newest .bit is in."""
    from flipflow.generator import folding, rtl

    build = make_build(net, tmp_path / "build")  # the HLS build: accelerator.json with ap_ctrl_hs
    os.utime(build / "flipflow.bit", (1, 1))  # older than the RTL bitstream below
    design = build / "rtl"
    rtl.generate(net, folding.minimal(net), design)
    (design / "flipflow.bit").write_bytes(b"stand-in bitstream")
    (design / "flipflow.hwh").write_text(hwh_text().replace("flipflow.org:hls:flipflow_top", "xilinx.com:module_ref:flipflow_top"))
    deploy(build / "model.ir.npz", build / "deploy", test_images=4)
    shipped = json.loads((build / "deploy" / "accelerator.json").read_text())
    assert shipped["hardware"]["control"] == "ap_ctrl_none" and shipped["hardware"]["count_register"] is None
    deploy(build / "model.ir.npz", build / "deploy_hls", bitstream=build / "flipflow.bit", test_images=4)
    assert json.loads((build / "deploy_hls" / "accelerator.json").read_text())["hardware"]["control"] == "ap_ctrl_hs"


def test_deploy_refuses_a_bitstream_the_driver_would_refuse(net, tmp_path):
    build = make_build(net, tmp_path / "build")
    (build / "flipflow.hwh").write_text(hwh_text(with_dma=False))
    with pytest.raises(BitstreamError, match="no AXI DMA"):
        deploy(build / "model.ir.npz", build / "deploy", test_images=5)
    assert not (build / "deploy").exists()


def test_deploy_refuses_stale_metadata(net, tmp_path):
    build = make_build(net, tmp_path / "build")
    changed = ir.load(build / "model.ir.npz")
    layer = next(l for l in changed.layers if l.kind == "binary_conv")
    layer.thresholds = layer.thresholds + 1  # retrained model, old build
    path = changed.save(tmp_path / "changed.ir.npz")
    assert cli.main(["deploy", str(path), "--out", str(build / "deploy"), "--test-images", "5"]) == 2
    with pytest.raises(MetadataError, match="stale"):
        deploy(path, build / "deploy", test_images=5)


def test_shipped_driver_runs_on_its_own(net, tmp_path, fashion_test_images):
    """The board copy in driver/ imports from there alone and gives the golden scores."""
    build = make_build(net, tmp_path / "build")
    out = deploy(build / "model.ir.npz", build / "deploy", test_images=20).folder
    code = (
        "import numpy as np, flipflow\n"
        f"assert flipflow.__file__.startswith({str(out / 'driver')!r}), flipflow.__file__\n"
        "from flipflow.host import Accelerator\n"
        "acc = Accelerator('.', 'golden')\n"
        "with np.load('test_set.npz') as f: images = f['images']\n"
        "np.save('scores.npy', acc.execute(images).scores)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(out / "driver")}
    run = subprocess.run([sys.executable, "-c", code], cwd=out, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(np.load(out / "scores.npy"), golden.scores(net, fashion_test_images[:20]))


def test_shipped_driver_parses_on_the_board_python(net, tmp_path):
    """PYNQ-Z2 image v3.0 runs Python 3.10: the driver files must not use newer syntax."""
    import ast

    build = make_build(net, tmp_path / "build")
    out = deploy(build / "model.ir.npz", build / "deploy", test_images=1).folder
    files = sorted((out / "driver").rglob("*.py"))
    assert len(files) >= 10
    for path in files:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))
