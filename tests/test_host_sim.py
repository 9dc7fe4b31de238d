"""The identical driver code on the RTL simulation (Verilator) and the golden
model: same scores and class ids on real Fashion-MNIST test images."""

from __future__ import annotations

import numpy as np
import pytest

from flipflow.host import Accelerator
from flipflow import golden

from host_helpers import make_build, small_fashion_net

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("host_sim")]  # one Verilator build per worker


@pytest.fixture()
def sim_cache(tmp_path_factory, monkeypatch):
    """One harness cache per test session (the notebook test reuses it)."""
    monkeypatch.setenv("FLIPFLOW_CACHE", str(tmp_path_factory.getbasetemp() / "flipflow_cache"))


@pytest.fixture(scope="module")
def net(fashion):
    return small_fashion_net(fashion.train.images)


def test_sim_and_golden_backends_agree(net, tmp_path, sim_cache, fashion):
    build = make_build(net, tmp_path / "build")
    images, labels = fashion.test.images[:150], fashion.test.labels[:150]
    sim = Accelerator(build, "sim", batch_size=50)
    gold = Accelerator(build, "golden", batch_size=50)
    s, g = sim.execute(images), gold.execute(images)
    np.testing.assert_array_equal(s.scores, g.scores)
    np.testing.assert_array_equal(s.class_ids, g.class_ids)
    np.testing.assert_array_equal(s.scores, golden.scores(net, images))
    assert sim.accuracy(images, labels) == gold.accuracy(images, labels)

    # backpressure on the result stream and gaps in the pixel stream change the timing, never the result
    stalled = Accelerator(build, "sim", sim_options={"idle": 0.3, "stall": 0.3})
    np.testing.assert_array_equal(stalled.execute(images[:10]).scores, g.scores[:10])

    r = sim.throughput_test(batch_size=20, images=images)
    assert r["backend"] == "sim" and r["fclk[mhz]"] == 100.0 and r["batch_size"] == 20
    # runtime is simulated time: the batch's cycles at the design clock
    assert r["runtime[ms]"] == pytest.approx(r["cycles"] / 100e6 * 1e3)
    assert r["cycles"] >= 20 * 784  # at least one pixel per cycle in
