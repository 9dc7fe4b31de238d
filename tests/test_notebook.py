"""The PYNQ-Z2 notebook, executed headless with nbclient from a deploy folder,
exactly as it runs on the board but with an off-board backend."""

from __future__ import annotations

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

import flipflow
from flipflow.host.deploy import NOTEBOOK, deploy
from flipflow import golden

from host_helpers import make_build, small_fashion_net


@pytest.fixture(scope="module")
def deployed(fashion, tmp_path_factory):
    net = small_fashion_net(fashion.train.images)
    build = make_build(net, tmp_path_factory.mktemp("nb") / "build")
    return net, deploy(build / "model.ir.npz", build / "deploy", test_images=40).folder


def run_notebook(folder, monkeypatch, backend: str) -> nbformat.NotebookNode:
    monkeypatch.setenv("FLIPFLOW_BACKEND", backend)
    monkeypatch.setenv("FLIPFLOW_SHOW", "8")
    monkeypatch.setenv("FLIPFLOW_TEST_IMAGES", "40")
    monkeypatch.setenv("FLIPFLOW_BATCH", "16")
    nb = nbformat.read(folder / NOTEBOOK, as_version=4)
    # The python3 kernel runs this interpreter (jupyter_client maps "python" to sys.executable).
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_notebook_is_packaged():
    assert (flipflow.ROOT / "notebooks" / NOTEBOOK).is_file()


@pytest.mark.parametrize(
    "backend",
    ["golden", pytest.param("sim", marks=[pytest.mark.slow, pytest.mark.xdist_group("host_sim")])],
)
def test_notebook_runs_headless(deployed, monkeypatch, fashion, tmp_path_factory, backend):
    net, folder = deployed
    monkeypatch.setenv("FLIPFLOW_CACHE", str(tmp_path_factory.getbasetemp() / "flipflow_cache"))  # shared with test_host_sim
    nb = run_notebook(folder, monkeypatch, backend)
    text = outputs(nb)
    expected = golden.accuracy(net, fashion.test.images[:40], fashion.test.labels[:40])
    assert f"accuracy: {expected:.2%} on 40 test images" in text
    assert "scores identical to the golden model" in text
    assert "throughput[images/s]" in text and f"backend='{backend}'" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the prediction grid
