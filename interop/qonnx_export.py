"""`flipflow export-qonnx`: a flipflow model's checkpoint as a QONNX graph.

Brevitas' own exporter (``brevitas.export.export_qonnx``) writes the trained
blocks of training/blocks.py: BipolarQuant / Quant weights, BatchNormalization,
BipolarQuant activations, Pad(-1) in front of binary convolutions, MaxPool and
ReduceSum, which qonnx's executor runs. The graph input is pixel / 256 (the
blocks' PIXEL_SCALE); the file says so in its metadata (``INPUT_SCALE_KEY``),
which ``flipflow import`` reads, so a model goes out and back in without options.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import onnx

from flipflow import atomic, ir
from flipflow.interop import qonnx_graph as qg
from flipflow.training import blocks, checkpoint

CHECKPOINT = "checkpoint.pt"  # a zoo entry's (and a training run's) checkpoint


def resolve_checkpoint(model: str | os.PathLike) -> Path:
    """A zoo name, a model folder or a checkpoint.pt -> the checkpoint path."""
    path = Path(model)
    for candidate in (path, path / CHECKPOINT, ir.ZOO / str(model) / CHECKPOINT):
        if candidate.is_file():
            return candidate
    raise checkpoint.CheckpointError(f"{model}: no checkpoint (a zoo name, a run folder or a checkpoint.pt)",
                                     fix="export a model trained by flipflow; an imported model has no checkpoint")


def export(model: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the checkpoint's network as QONNX to ``out``; returns the path."""
    import torch
    from brevitas.export import export_qonnx

    bnn, _ = checkpoint.load(resolve_checkpoint(model))
    sparse = [f"layer {i} ({s.kind} {s.nm[0]}:{s.nm[1]})" for i, s in enumerate(bnn.arch.layers) if s.nm]
    if sparse:  # QONNX has no N:M 0/1 weight quantiser, and flipflow import no reading of one
        raise qg.QonnxError(f"{model}: {', '.join(sparse)} N:M sparse, which has no QONNX form",
                            fix="export the dense model it was made from; the sparse net's IR (model.ir.npz) "
                                "goes to hardware as it is")
    h, w, c = bnn.arch.input_shape
    out = Path(out)
    atomic.make_dir(out.parent)
    with tempfile.TemporaryDirectory(dir=out.parent) as work:  # Brevitas writes the weights beside, as .data
        export_qonnx(bnn.eval(), torch.zeros(1, c, h, w), export_path=str(Path(work) / "model.onnx"))
        graph = onnx.load(str(Path(work) / "model.onnx"))
    onnx.helper.set_model_props(graph, {qg.INPUT_SCALE_KEY: str(Fraction(blocks.PIXEL_SCALE))})
    with atomic.replacing(out) as tmp:
        onnx.save(graph, str(tmp))  # one self-contained file
    return out
