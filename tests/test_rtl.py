"""RTL backend: lint, per-layer cocotb tests (Icarus and Verilator) on random
shapes with idle cycles and backpressure, whole-network Verilator runs on real
Fashion-MNIST images, bit-exact with the golden model."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import rtl_nets
from flipflow import ir, kinds
from flipflow.generator import rtl
from flipflow.host import stream
from flipflow.generator.folding import LayerConfig
from flipflow import golden
from flipflow.sim.rtl import RtlSimulator, first_layer_mismatch
from rtl_helpers import lint, run_cocotb

KINDS = ["input_conv", "input_dense", "bitplane_conv", "binary_conv", "binary_dense", "maxpool", "output_conv", "output_dense", "global_sum",
         "sparse_conv", "sparse_dense"]


@pytest.fixture(scope="module")
def digit_images(digits) -> np.ndarray:
    return digits.test.images[:4]


@pytest.mark.parametrize("kind", KINDS)
def test_layer_kind_icarus(kind, digit_images, tmp_path, monkeypatch):
    """Each layer kind in a small network with random odd widths, kernel/stride/pad
    and foldings that PE/SIMD do not divide; random idle cycles and backpressure."""
    seed = KINDS.index(kind)
    net = rtl_nets.build(f"case_{kind}", digit_images, rtl_nets.layer_case(kind, seed), 10, seed)
    run_cocotb(net, rtl_nets.random_folding(net, seed), digit_images, tmp_path, "icarus", 0.3, 0.3, monkeypatch)


@pytest.mark.parametrize("kind", ["binary_conv", "maxpool", "output_conv", "sparse_conv"])
def test_layer_kind_verilator(kind, digit_images, tmp_path, monkeypatch):
    seed = 100 + KINDS.index(kind)
    net = rtl_nets.build(f"case_{kind}", digit_images, rtl_nets.layer_case(kind, seed), 10, seed)
    run_cocotb(net, rtl_nets.random_folding(net, seed), digit_images, tmp_path, "verilator", 0.4, 0.4, monkeypatch)


@pytest.mark.parametrize("kind", ["sparse_conv", "sparse_dense"])
def test_centred_sparse_layer(kind, digit_images, tmp_path, monkeypatch):
    """A centred sparse layer (weights b - N/M) in a small network: random N:M, shapes and
    folding, idle cycles and backpressure (Verilator: tests/test_rtl_modules.py)."""
    seed = 200 + KINDS.index(kind)
    net = rtl_nets.build(f"centred_{kind}", digit_images, rtl_nets.layer_case(kind, seed, centred=True), 10, seed)
    assert [l.centred for l in net.layers if l.nm] == [True]
    run_cocotb(net, rtl_nets.random_folding(net, seed), digit_images, tmp_path, "icarus", 0.3, 0.3, monkeypatch)


def test_centred_sparse_conv_counts_each_pixel_once(digit_images, tmp_path, monkeypatch):
    """A centred 3x3 conv with padding: its count unit appends each pixel's ones, the window
    unit carries them (padding counts 0) and the matrix unit sums the window's nine."""
    specs = [{"kind": "input_conv", "out": 11, "k": 3, "s": 1, "p": 1},
             {"kind": "sparse_conv", "out": 7, "k": 3, "s": 1, "p": 1, "nm": (2, 8), "centred": True},
             {"kind": "output_dense"}]
    net = rtl_nets.build("centred_window", digit_images, specs, 10, 7)
    folding = rtl_nets.random_folding(net, 7)
    design = rtl.generate(net, folding, tmp_path / "design")
    assert [u.module for u in design.units if u.layer == net.layers[1].name] == ["flipflow_count", "flipflow_swu",
                                                                                "flipflow_mvu"]
    run_cocotb(net, folding, digit_images, tmp_path, "icarus", 0.3, 0.3, monkeypatch)


@pytest.mark.parametrize("pe", [4, 7])
def test_input_layer_packed_products_exact(pe, tmp_path, monkeypatch):
    """Two PE rows share a DSP48 in the input layer: extreme weights (-128, 127)
    and pixels (0, 255), accumulators exactly on their thresholds, odd and even PE."""
    net, folding, images = rtl_nets.knife_edge_input_case(pe)
    run_cocotb(net, folding, images, tmp_path, "icarus", 0.2, 0.2, monkeypatch)


def test_bit_plane_input_of_colour_pixels(tmp_path, monkeypatch):
    """Three 8-bit channels: the gathered pixel's kept planes (wiring in the top) feed the
    window unit as 3 x P binary channels, in the golden model's order."""
    rng = np.random.default_rng(21)
    images = rng.integers(0, 256, (3, 7, 7, 3)).astype(np.uint8)
    specs = [{"kind": "bitplane_conv", "out": 9, "k": 3, "s": 1, "p": 1, "planes": (6, 3, 0)},
             {"kind": "maxpool", "k": 2, "s": 2}, {"kind": "output_dense"}]
    net = rtl_nets.build("planes_rgb", images, specs, 10, 21)
    run_cocotb(net, rtl_nets.random_folding(net, 21), images, tmp_path, "icarus", 0.3, 0.3, monkeypatch)


def test_pixel_codes_table_on_the_input_stream(tmp_path, monkeypatch):
    """The input layer's pixel_codes ROM sits between in_stream and the gather."""
    net, folding, images = rtl_nets.pixel_codes_case(6)
    run_cocotb(net, folding, images, tmp_path, "icarus", 0.3, 0.3, monkeypatch)


def test_mismatch_names_layer_pixel_channel(digit_images, tmp_path):
    """A corrupted threshold is reported at its layer, not just at the output."""
    net = rtl_nets.build("bad", digit_images, rtl_nets.layer_case("binary_conv", 3), 10, 3)
    folding = {l.name: rtl.LayerConfig(1, 1) for l in net.layers if l.has_weights}
    rtl_dir = tmp_path / "rtl"
    design = rtl.generate(net, folding, rtl_dir)
    target = net.layers[1]  # the binary conv
    mem = rtl_dir / f"{rtl.ident(target.name)}_thresholds.mem"
    lines = mem.read_text().split()
    lines[0] = "0" * len(lines[0])  # channel 0 always fires
    mem.write_text("\n".join(lines) + "\n")
    files = [str(rtl_dir / f) for f in design.files]
    tb = tmp_path / "tb.v"
    n = stream.words_per_image_in(net.input_shape)
    data = " ".join(f"{b:02x}" for b in digit_images[:1].reshape(-1))
    (tmp_path / "in.hex").write_text(data + "\n")
    tb.write_text(f"""
module tb;
  reg clk = 0, rst_n = 0; reg [7:0] mem [0:{n - 1}]; integer i = 0;
  wire ready, ov, ol; wire [31:0] od;
  flipflow_top dut(.ap_clk(clk), .ap_rst_n(rst_n), .in_stream_TDATA(mem[i]), .in_stream_TVALID(i < {n}),
    .in_stream_TREADY(ready), .in_stream_TLAST(i == {n - 1}), .out_stream_TDATA(od), .out_stream_TVALID(ov),
    .out_stream_TREADY(1'b1), .out_stream_TLAST(ol));
  always #5 clk = ~clk;
  initial begin $readmemh("{tmp_path}/in.hex", mem); #20 rst_n = 1; end
  always @(posedge clk) begin
    if (rst_n && i < {n} && ready) i <= i + 1;
    if (ov && ol) $finish;
  end
endmodule
""")
    sim = tmp_path / "a.out"
    subprocess.run(["iverilog", "-g2012", "-o", str(sim), "-s", "tb", str(tb), *files], check=True)
    subprocess.run(["vvp", str(sim), "+flipflow_trace"], cwd=rtl_dir, check=True, capture_output=True, timeout=300)
    where = first_layer_mismatch(net, design, digit_images[:1], rtl_dir)
    want = golden.run_layers(net, digit_images[:1])[target.name][0]
    assert where is not None and where.layer == target.name and where.channel == 0
    assert want[where.pixel[0], where.pixel[1], 0] == 0 and where.got == 1
    assert "pixel (h=" in str(where) and target.name in str(where)


def test_lint_odd_widths_default_folding(tmp_path, fashion_test_images):
    """A NIN-shaped network with odd widths and the default folding is lint-clean
    under verilator -Wall and accepted by Icarus."""
    specs = [{"kind": "input_conv", "out": 23, "k": 5, "s": 1, "p": 2}, {"kind": "binary_conv", "out": 17},
             {"kind": "maxpool", "k": 3, "s": 2, "p": 1}, {"kind": "binary_conv", "out": 29, "k": 5, "p": 2},
             {"kind": "maxpool", "k": 3, "s": 2, "p": 1}, {"kind": "binary_conv", "out": 15, "k": 3, "p": 1},
             {"kind": "output_conv"}, {"kind": "global_sum"}]
    net = rtl_nets.build("nin_odd", fashion_test_images[:32], specs, 10, 5)
    rtl.generate(net, None, tmp_path)
    lint(tmp_path)


@pytest.mark.slow
def test_whole_network_verilator_fashion(tmp_path, fashion_test_images, monkeypatch):
    """A NIN-shaped pruned-width network on real Fashion-MNIST test images through
    the compiled Verilator harness: bit-exact, cycles within 5% of the model.
    The build folder is relative, as `make sim` passes it."""
    specs = [{"kind": "input_conv", "out": 13, "k": 5, "s": 1, "p": 2}, {"kind": "binary_conv", "out": 11},
             {"kind": "maxpool", "k": 3, "s": 2, "p": 1}, {"kind": "binary_conv", "out": 19, "k": 5, "p": 2},
             {"kind": "maxpool", "k": 3, "s": 2, "p": 1}, {"kind": "binary_conv", "out": 15, "k": 3, "p": 1},
             {"kind": "output_conv"}, {"kind": "global_sum"}]
    net = rtl_nets.build("nin_odd", fashion_test_images[:64], specs, 10, 6)
    images = fashion_test_images[:20]
    monkeypatch.chdir(tmp_path)
    sim = RtlSimulator(net, build_dir="build/nin_odd")
    run = sim.run(images)
    comparison = sim.compare(images, run)
    assert comparison.mismatches == 0, comparison.layer_mismatch
    model = sim.model_cycles()
    assert abs(run.cycles_per_frame - model["cycles_per_frame"]) <= 0.05 * model["cycles_per_frame"]
    assert abs(run.latency_cycles - model["latency_cycles"]) <= 0.05 * model["latency_cycles"]
    stressed = sim.run(images[:5], idle=0.3, stall=0.3, seed=1)
    assert np.array_equal(stressed.words, run.words[: stressed.words.size])


@pytest.mark.slow
def test_sparse_nin_pruned_verilator_fashion(fashion, tmp_path):
    """nin_pruned with its seven binary layers made 2:8 sparse (training/models.sparsified of the
    zoo checkpoint, no fine-tuning) at its default folding, on real Fashion-MNIST test images
    through the compiled Verilator harness: bit-exact, cycles per frame those of the model
    (10,192, against 13,328 dense), latency within 5%. About 4 min."""
    from flipflow.generator import folding as fold
    from flipflow.training import checkpoint, models
    from flipflow.training.export import export

    dense = checkpoint.load(ir.ZOO / "nin_pruned" / "checkpoint.pt")[0]
    net = export(models.sparsified(dense, (2, 8), fashion.train.images[:256]).eval(), "nin_pruned_2of8", "fashion_mnist")
    assert sum(kinds.of(l).sparse for l in net.layers) == 7
    sim = RtlSimulator(net, fold.default(net), tmp_path / "rtl")
    images = fashion.test.images[:20]
    run = sim.run(images)
    assert sim.compare(images, run).mismatches == 0
    model = sim.model_cycles()
    assert run.cycles_per_frame == model["cycles_per_frame"]
    assert abs(run.latency_cycles - model["latency_cycles"]) <= 0.05 * model["latency_cycles"]


def test_yosys_resources_per_layer(digit_images, tmp_path):
    """yosys synth_xilinx counts for every layer; the input layer's 8-bit products
    use DSPs, two products per DSP48 as the cost model counts them."""
    from flipflow.generator import cost
    from flipflow.sim import resources

    net = rtl_nets.build("res", digit_images, rtl_nets.layer_case("binary_conv", 4), 10, 4)
    folding = {l.name: LayerConfig(3, 4) for l in net.layers if l.has_weights}
    rtl.generate(net, folding, tmp_path)
    est = resources.synthesize(tmp_path)
    assert set(est["total"]) == {"LUT", "FF", "BRAM36", "DSP"} and "relative" in est["note"]
    assert set(est["layers"]) == {l.name for l in net.layers} | {"stream_io"}
    for name, figures in est["layers"].items():
        assert figures["LUT"] > 0 and figures["FF"] > 0, name
    first = net.layers[0]
    assert est["layers"][first.name]["DSP"] == cost.input_multipliers(folding[first.name]) == 8
    assert sum(l["LUT"] for l in est["layers"].values()) == pytest.approx(est["total"]["LUT"], rel=0.05)
