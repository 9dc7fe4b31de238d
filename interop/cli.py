"""`flipflow import` (QONNX -> IR) and `flipflow export-qonnx` (checkpoint -> QONNX)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="read a QONNX graph (Brevitas export_qonnx, FINN) into a flipflow IR file")
    p.add_argument("onnx", type=Path, help="the .onnx file")
    p.add_argument("--dataset", required=True, help="the dataset it classifies (class names, test images), e.g. fashion_mnist")
    p.add_argument("--out", type=Path, required=True, help="the IR file to write, e.g. model.ir.npz")
    p.add_argument("--input-scale", default=None,
                   help="the graph input is pixel x this, channel-first (default: what the graph states, else 1/255 "
                        "as torchvision's ToTensor)")
    p.add_argument("--name", default=None, help="the model's name (default: the file's stem)")
    p.set_defaults(func=_import)
    e = sub.add_parser("export-qonnx", help="write a flipflow model (from its checkpoint) as QONNX for qonnx/FINN")
    e.add_argument("model", help="zoo name, training run folder or checkpoint.pt")
    e.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    e.set_defaults(func=_export)


def _import(args: argparse.Namespace) -> int:
    from flipflow.interop import qonnx_import
    from flipflow.training import datasets

    data = datasets.load(args.dataset)
    net = qonnx_import.import_model(args.onnx, data.name, data.classes, data.input_shape, args.input_scale, args.name)
    net.save(args.out)
    kinds = ", ".join(f"{l.kind}" for l in net.layers)
    print(f"flipflow import: {net.name}: {len(net.layers)} layers ({kinds}); input scale {net.provenance['input_scale']}, "
          f"scores = {net.provenance['score_scale']:g} x integer + {net.provenance['score_offset']:g}; wrote {args.out}",
          file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from flipflow.interop import qonnx_export

    out = qonnx_export.export(args.model, args.out)
    print(f"flipflow export-qonnx: wrote {out}", file=sys.stderr)
    return 0
