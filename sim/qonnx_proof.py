"""The QONNX import proof (`make qonnx-proof`): Brevitas' BNN-PYNQ models from
brevitas_examples (TFC, SFC, LFC and CNV, W1A1), trained briefly on Fashion-MNIST
(CNV on its 32x32x3 form, fashion_mnist_rgb32), exported by Brevitas' export_qonnx,
imported by flipflow, and run on real test images by the golden model, the C
simulation and the RTL simulation, each compared with qonnx's executor in integer
class scores. Writes <out>/report.json and, per model, <out>/<model>/ (the .onnx,
model.ir.npz, the HLS project and the RTL build).

    python -m flipflow.sim.qonnx_proof [--models tfc_1w1a,cnv_1w1a] [--hardware tfc_1w1a,cnv_1w1a]
                                       [--golden 500 --csim 100 --rtl 20] [--out build/qonnx-proof]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from flipflow import atomic, golden, ir
from flipflow.generator import folding as folding_mod
from flipflow.generator import hls
from flipflow.host import stream
from flipflow.interop import qonnx_graph, qonnx_import
from flipflow.sim.rtl import RtlSimulator
from flipflow.training import datasets

# model -> its dataset; the input is pixel / 255 (ToTensor), as BNN-PYNQ's training scripts feed it
MODELS = {"tfc_1w1a": "fashion_mnist", "sfc_1w1a": "fashion_mnist", "lfc_1w1a": "fashion_mnist", "cnv_1w1a": "fashion_mnist_rgb32"}
HARDWARE = "tfc_1w1a,cnv_1w1a"  # also C- and RTL-simulated by default (the bar)


def train_and_export(name: str, data: datasets.Dataset, out: Path, images: int, seed: int = 0) -> Path:
    """One epoch of Adam on a fixed training subset (BNN-PYNQ's weight clipping to [-1, 1]),
    then Brevitas' QONNX export of the eval-mode model."""
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    model, _ = model_with_cfg(name, pretrained=False)
    train = data.train.subset(images, seed)
    scale = qonnx_graph.parse_input_scale(qonnx_graph.TOTENSOR_SCALE)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for i in range(0, len(train), 64):
        x = torch.from_numpy(qonnx_graph.images_to_input(train.images[i : i + 64], scale))
        loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(train.labels[i : i + 64]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        model.clip_weights(-1, 1)
    path = out / f"{name}.onnx"
    h, w, c = data.input_shape
    export_qonnx(model.eval(), torch.zeros(1, c, h, w), export_path=str(path))
    return path


def _compare(scores: np.ndarray, reference: np.ndarray) -> dict:
    return {"images": len(scores), "mismatches": int((scores != reference[: len(scores)]).any(axis=1).sum())}


def prove(name: str, out: Path, golden_images: int, csim_images: int, rtl_images: int, train_images: int,
          hardware: bool = True) -> dict:
    t0 = time.perf_counter()
    data = datasets.load(MODELS[name])
    folder = atomic.make_dir(out / name)
    onnx_path = train_and_export(name, data, folder, train_images)
    row: dict = {"dataset": data.name, "trained_on": f"{min(train_images, len(data.train))} images, 1 epoch",
                 "train_export_s": round(time.perf_counter() - t0, 1)}
    net = qonnx_import.import_model(onnx_path, data.name, data.classes, data.input_shape, name=name)
    net.save(folder / ir.FILENAME)
    row["layers"] = [l.kind for l in net.layers]
    row["pixel_codes"] = net.layers[0].pixel_codes is not None
    test = data.test.head(golden_images)
    t = time.perf_counter()
    model = qonnx_graph.load(onnx_path, batch=len(test))
    y = qonnx_graph.execute(model, test.images, qonnx_graph.parse_input_scale(net.provenance["input_scale"]))
    source = qonnx_import.source_scores(net, y)
    reference = np.round(source).astype(np.int64)
    row["executor_s"] = round(time.perf_counter() - t, 1)
    row["executor_max_off_integer"] = float(np.abs(source - reference).max())
    row["golden"] = _compare(golden.scores(net, test.images), reference)
    row["accuracy"] = float((golden.argmax(reference) == test.labels).mean())
    if hardware and csim_images:
        t = time.perf_counter()
        folding = folding_mod.default(net)
        images = test.images[:csim_images]
        plan = hls.render(net, folding, folder / "hls")
        result = hls.run_csim(hls.compile_csim(folder / "hls"), plan, images)
        row["csim"] = {**_compare(result.scores, reference), "seconds": round(time.perf_counter() - t, 1)}
    if hardware and rtl_images:
        t = time.perf_counter()
        sim = RtlSimulator(net, folding_mod.default(net), build_dir=folder / "rtl_build")
        run = sim.run(test.images[:rtl_images])
        scores, _ = stream.unpack_output(run.words, len(net.classes))
        row["rtl"] = {**_compare(scores, reference), "cycles_per_frame": float(run.cycles_per_frame),
                      "seconds": round(time.perf_counter() - t, 1)}
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flipflow.sim.qonnx_proof", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    p.add_argument("--out", type=Path, default=Path("build/qonnx-proof"))
    p.add_argument("--golden", type=int, default=500, help="test images, golden model vs executor (default 500)")
    p.add_argument("--hardware", default=HARDWARE, help=f"models also C- and RTL-simulated (default {HARDWARE})")
    p.add_argument("--csim", type=int, default=100, help="of those, C-simulated (default 100)")
    p.add_argument("--rtl", type=int, default=20, help="of those, RTL-simulated (default 20)")
    p.add_argument("--train-images", type=int, default=4096, help="training subset, one epoch (default 4096)")
    args = p.parse_args(argv)
    report: dict = {"models": {}}
    if (args.out / "report.json").is_file():  # models proved by an earlier run stay in the report
        report = json.loads((args.out / "report.json").read_text())
    for name in args.models.split(","):
        if name not in MODELS:
            p.error(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
        print(f"qonnx-proof: {name}", file=sys.stderr)
        report["models"][name] = prove(name, args.out, args.golden, args.csim, args.rtl, args.train_images,
                                       hardware=name in args.hardware.split(","))
        print(f"qonnx-proof: {name}: {report['models'][name]}", file=sys.stderr)
        atomic.write_json(args.out / "report.json", report, indent=1)
    bad = sum(row[k]["mismatches"] for row in report["models"].values() for k in ("golden", "csim", "rtl") if k in row)
    print(f"qonnx-proof: {bad} mismatching images; wrote {args.out / 'report.json'}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
