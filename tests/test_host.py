"""The host driver (flipflow.host) on real Fashion-MNIST test images.

The ``pynq`` backend runs here against tests/host_helpers.py's stand-in for
the pynq module - NOT the board. The stand-in follows pynq's documented
interface and models cache coherence and TLAST-terminated S2MM transfers, so
these tests check the driver's own buffer handling, DMA sequencing, timeouts
and error paths; they cannot check the board's timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from flipflow import ir
from flipflow.host import (
    Accelerator,
    BackendError,
    BitstreamError,
    DMATimeoutError,
    ImageError,
    MetadataError,
    OutputError,
    load_metadata,
    model_hash,
    write_metadata,
)
from flipflow import golden

from host_helpers import hwh_text, make_build, small_fashion_net, standin_pynq

FINN_KEYS = {"runtime[ms]", "throughput[images/s]", "DRAM_in_bandwidth[MB/s]", "DRAM_out_bandwidth[MB/s]", "fclk[mhz]", "batch_size"}


@pytest.fixture(scope="module")
def net(fashion):
    return small_fashion_net(fashion.train.images)


@pytest.fixture()
def build(net, tmp_path):
    return make_build(net, tmp_path / "build")


@pytest.fixture(scope="module")
def images(fashion_test_images):
    return fashion_test_images[:120]


# -- one driver, identical results -----------------------------------------------

def test_golden_and_pynq_standin_give_the_golden_scores(net, build, images):
    expected = golden.scores(net, images)
    gold = Accelerator(build, "golden").execute(images)
    board = Accelerator(build, "pynq", pynq=standin_pynq(net), batch_size=32).execute(images)
    np.testing.assert_array_equal(gold.scores, expected)
    np.testing.assert_array_equal(board.scores, expected)
    np.testing.assert_array_equal(board.class_ids, golden.argmax(expected))
    assert len(np.unique(gold.class_ids)) > 2  # a realistic net, not a constant output


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 40), batch=st.integers(1, 17), start=st.integers(0, 150))
def test_any_batch_split_gives_the_same_results(net, fashion_test_images, tmp_path_factory, n, batch, start):
    build = make_build(net, tmp_path_factory.mktemp("b"))
    imgs = fashion_test_images[start : start + n]
    pynq = standin_pynq(net)
    acc = Accelerator(build, "pynq", pynq=pynq, batch_size=batch)
    np.testing.assert_array_equal(acc.execute(imgs).scores, golden.scores(net, imgs))
    # every image went through the DMA exactly once, each at a 64-byte aligned address
    sends = acc.backend.dma.sendchannel.log
    assert len(sends) == len(imgs) and all(addr % 64 == 0 and nb == 784 for _, addr, nb in sends)
    assert pynq.memory.reads == 784 * len(imgs)


def test_classify_and_accuracy(net, build, fashion):
    acc = Accelerator(build, "golden")
    imgs, labels = fashion.test.images[:100], fashion.test.labels[:100]
    np.testing.assert_array_equal(acc.classify(imgs), golden.predict(net, imgs))
    assert acc.accuracy(imgs, labels) == pytest.approx(golden.accuracy(net, imgs, labels))
    assert acc.class_names([0, 9]) == ["T-shirt/top", "Ankle boot"]


# -- the pynq backend's own logic, against the stand-in ------------------------------

def test_buffers_are_reused_and_grown(net, build, images):
    pynq = standin_pynq(net)
    acc = Accelerator(build, "pynq", pynq=pynq, batch_size=8)
    acc.execute(images[:8])
    acc.execute(images[8:16])
    assert len(pynq.allocated) == 2  # one input and one output buffer, reused
    acc.batch_size = 20
    acc.execute(images[:20])
    assert len(pynq.allocated) == 4 and pynq.allocated[0].freed[0] and pynq.allocated[1].freed[0]
    acc.close()
    assert all(b.freed[0] for b in pynq.allocated)


def test_driver_flushes_and_invalidates_itself(net, build, images):
    """A DMA driver that does no cache maintenance (the caller's job) still gives correct results."""
    pynq = standin_pynq(net)
    acc = Accelerator(build, "pynq", pynq=pynq, batch_size=16)
    acc.backend.dma.cache_ops = False
    np.testing.assert_array_equal(acc.execute(images[:30]).scores, golden.scores(net, images[:30]))


def test_accelerator_started_once_per_batch_with_its_image_count(net, build, images):
    acc = Accelerator(build, "pynq", pynq=standin_pynq(net), batch_size=4)
    np.testing.assert_array_equal(acc.execute(images[:10]).scores, golden.scores(net, images[:10]))
    hw = acc.backend.acc
    assert hw.starts == 3 and hw.regs[0x10] == 2 and hw.idle  # batches of 4, 4, 2; idle afterwards


def test_free_running_accelerator_without_count_register(net, tmp_path, images):
    build = make_build(net, tmp_path, hardware={"count_register": None})
    acc = Accelerator(build, "pynq", pynq=standin_pynq(net), batch_size=4)
    np.testing.assert_array_equal(acc.execute(images[:10]).scores, golden.scores(net, images[:10]))
    assert acc.backend.acc.starts == 1 and acc.backend.acc.free_running  # ap_start | auto_restart, once


def test_dma_timeout_names_the_channel_and_the_fix_then_reset_recovers(net, build, images):
    pynq = standin_pynq(net)
    acc = Accelerator(build, "pynq", pynq=pynq, timeout_s=0.2)
    acc.backend.acc.stalled = True
    with pytest.raises(DMATimeoutError) as e:
        acc.execute(images[:4])
    msg = str(e.value)
    assert "recvchannel" in msg and "0.2 s" in msg and "stale" in msg and "reset()" in msg
    acc.reset()
    assert pynq.overlay.downloads == 2
    np.testing.assert_array_equal(acc.execute(images[:4]).scores, golden.scores(net, images[:4]))


def test_send_timeout_when_the_accelerator_takes_no_pixels(net, build, images):
    acc = Accelerator(build, "pynq", pynq=standin_pynq(net), timeout_s=0.1)
    acc.backend.acc.refuse_pixels = True
    with pytest.raises(DMATimeoutError, match=r"sendchannel \(MM2S, images\) did not finish image 0 of 3.*stopped accepting pixels"):
        acc.execute(images[:3])
    with pytest.raises(DMATimeoutError, match="not idle before a new batch.*reset()"):
        acc.execute(images[:3])  # the aborted batch still holds the accelerator


def test_default_timeout_follows_the_expected_frame_time(net, tmp_path):
    build = make_build(net, tmp_path, cycles_per_frame=50_000_000)  # 0.5 s per image at 100 MHz
    assert Accelerator(build, "golden").default_timeout_s() == pytest.approx(5.0)
    assert Accelerator(make_build(net, tmp_path / "fast"), "golden").default_timeout_s() == 1.0


def test_wrong_class_id_from_the_hardware_is_caught(net, build, images):
    acc = Accelerator(build, "pynq", pynq=standin_pynq(net))
    acc.backend.acc.corrupt_class_id = True
    with pytest.raises(OutputError, match="not the argmax"):
        acc.execute(images[:3])


def test_model_id_register_catches_a_stale_bitstream(net, build, images):
    meta = load_metadata(build)
    Accelerator(build, "pynq", pynq=standin_pynq(net, register_model_id=meta.model_id)).execute(images[:2])
    with pytest.raises(BitstreamError, match="stale bitstream"):
        Accelerator(build, "pynq", pynq=standin_pynq(net, register_model_id=meta.model_id ^ 1))


def test_no_board_is_a_clear_error(net, build):
    with pytest.raises(BackendError, match="no FPGA device.*'sim' or 'golden'"):
        Accelerator(build, "pynq", pynq=standin_pynq(net, fail_load="No Devices Found"))


def test_dma_too_narrow_for_one_image(net, build):
    with pytest.raises(BitstreamError, match="at most 511 bytes.*c_sg_length_width >= 10"):
        Accelerator(build, "pynq", pynq=standin_pynq(net, buffer_max_size=511))


def test_overlay_without_the_named_ip(net, build):
    with pytest.raises(BitstreamError, match="no IP 'axi_dma'"):
        Accelerator(build, "pynq", pynq=standin_pynq(net, dma_name="axi_dma_1"))


def test_auto_backend(net, build, monkeypatch):
    monkeypatch.delenv("FLIPFLOW_BACKEND", raising=False)
    board = standin_pynq(net)
    assert Accelerator(build, pynq=board).backend_name == "pynq"
    board.Device.devices = []
    assert Accelerator(build, pynq=board).backend_name == "golden"
    monkeypatch.setenv("FLIPFLOW_BACKEND", "golden")
    assert Accelerator(build, pynq=standin_pynq(net)).backend_name == "golden"
    with pytest.raises(BackendError, match="unknown backend 'fpga'"):
        Accelerator(build, "fpga")


# -- bitstream and metadata checks ----------------------------------------------

@pytest.mark.parametrize(
    "hwh_kw, message",
    [
        ({"with_dma": False}, "no AXI DMA"),
        ({"with_acc": False}, "no flipflow_top accelerator"),
        ({"mm2s_width": 32}, "MM2S .* is 32 bits wide"),
        ({"s2mm_width": 64}, "S2MM .* is 64 bits wide"),
    ],
)
def test_hwh_that_does_not_match_is_refused(net, build, hwh_kw, message):
    (build / "flipflow.hwh").write_text(hwh_text(**hwh_kw))
    with pytest.raises(BitstreamError, match=message):
        Accelerator(build, "pynq", pynq=standin_pynq(net))


def test_missing_bitstream_files(net, build):
    (build / "flipflow.hwh").unlink()
    with pytest.raises(BitstreamError, match="hardware handoff is missing"):
        Accelerator(build, "pynq", pynq=standin_pynq(net))
    (build / "flipflow.bit").unlink()
    with pytest.raises(BitstreamError, match="no bitstream.*Tcl"):
        Accelerator(build, "pynq", pynq=standin_pynq(net))


def test_cell_names_come_from_the_hwh(net, build, images):
    (build / "flipflow.hwh").write_text(hwh_text(accelerator="bnn_0", dma="dma_in_out"))
    acc = Accelerator(build, "pynq", pynq=standin_pynq(net, acc_name="bnn_0", dma_name="dma_in_out"))
    np.testing.assert_array_equal(acc.execute(images[:3]).scores, golden.scores(net, images[:3]))


def test_metadata_round_trip_and_content(net, tmp_path):
    path = write_metadata(net, tmp_path, cycles_per_frame=1234, folding={"01_binary": {"pe": 2, "simd": 8}})
    assert path.name == "accelerator.json"
    d = json.loads(path.read_text())
    assert d["format"] == "flipflow-accelerator" and d["version"] == 1
    assert d["input"]["shape"] == [28, 28, 1] and d["input"]["words_per_image"] == 784
    assert d["output"]["words_per_image"] == 11 and d["model_id"] == int(d["model_hash"][:8], 16)
    meta = load_metadata(tmp_path)
    assert meta.classes == net.classes and meta.cycles_per_frame == 1234 and meta.model_hash == model_hash(net)


def test_model_hash_tracks_hardware_content_only(net, tmp_path):
    reloaded = ir.load(net.save(tmp_path / "m.ir.npz"))
    assert model_hash(reloaded) == model_hash(net)
    reloaded.name, reloaded.metrics = "renamed", {"accuracy": 0.5}
    assert model_hash(reloaded) == model_hash(net)
    binary = next(l for l in reloaded.layers if l.kind == "binary_conv")
    binary.thresholds = binary.thresholds.copy()
    binary.thresholds[0] += 1
    assert model_hash(reloaded) != model_hash(net)


def test_stale_metadata_against_the_ir(net, build, tmp_path):
    other = ir.load(net.save(tmp_path / "o.ir.npz"))
    layer = next(l for l in other.layers if l.kind == "binary_dense")
    layer.weights = 1 - layer.weights
    other.save(build / "model.ir.npz")
    with pytest.raises(MetadataError, match="stale"):
        Accelerator(build, "golden")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("model_hash"), "'model_hash' is missing"),
        (lambda d: d.update(format="something"), "not a flipflow accelerator metadata"),
        (lambda d: d.update(version=99), "version 99"),
        (lambda d: d["output"].update(n_classes=3), "3 but 10 class names"),
        (lambda d: d["input"].update(shape=[28, 28]), "input.shape"),
        (lambda d: d["input"].update(bits=16), "8-bit"),
    ],
)
def test_malformed_metadata_names_the_field(net, build, edit, message):
    path = build / "accelerator.json"
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d))
    with pytest.raises(MetadataError, match=message):
        Accelerator(build, "golden")


def test_missing_metadata_says_where_it_comes_from(tmp_path):
    with pytest.raises(MetadataError, match="make hls"):
        Accelerator(tmp_path, "golden")


# -- images ------------------------------------------------------------------------

def test_image_layouts(net, build, images):
    acc = Accelerator(build, "golden")
    ref = acc.execute(images[:5]).scores
    np.testing.assert_array_equal(acc.execute(images[:5, :, :, 0]).scores, ref)  # (N, H, W) greyscale
    np.testing.assert_array_equal(acc.execute(images[0]).scores, ref[:1])  # one image
    with pytest.raises(ImageError, match="uint8.*astype"):
        acc.execute(images[:2].astype(np.float32) / 255)
    with pytest.raises(ImageError, match=r"\(N, 28, 28, 1\).*\(2, 1, 28, 28\).*transpose"):
        acc.execute(images[:2].transpose(0, 3, 1, 2))
    with pytest.raises(ImageError, match="got \\(2, 32, 32, 1\\)"):
        acc.execute(np.zeros((2, 32, 32, 1), np.uint8))


def test_throughput_test_has_finns_keys(net, build, images):
    for acc in (Accelerator(build, "golden"), Accelerator(build, "pynq", pynq=standin_pynq(net))):
        r = acc.throughput_test(batch_size=16, images=images)
        assert FINN_KEYS <= set(r) and r["batch_size"] == 16
        assert r["throughput[images/s]"] == pytest.approx(16 / (r["runtime[ms]"] / 1e3))
        assert r["DRAM_in_bandwidth[MB/s]"] == pytest.approx(r["throughput[images/s]"] * 784 / 1e6)
        assert r["DRAM_out_bandwidth[MB/s]"] == pytest.approx(r["throughput[images/s]"] * 44 / 1e6)
    assert r["fclk[mhz]"] == 100.0


def test_importing_the_driver_never_needs_pynq(build):
    code = (
        "import sys; sys.modules['pynq'] = None\n"  # any `import pynq` now raises ImportError
        "from flipflow.host import Accelerator\n"
        f"acc = Accelerator({str(build)!r})\n"
        "assert acc.backend_name == 'golden', acc.backend_name\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FLIPFLOW_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
