"""A QONNX graph as the importer and the proofs read it: qonnx's cleanup and shape
inference, single nodes run exactly as qonnx's executor runs them, and the
pixel convention of the graph input (docs/DESIGN.md, "Importing QONNX").

A node is evaluated on arrays of any batch size: custom ops (Quant, BipolarQuant,
MultiThreshold) through qonnx's own numpy implementation, standard ops through
onnxruntime with the node alone in a model, the way ``qonnx.core.onnx_exec``
does it, so thresholds derived from these values resolve ties as the executor does.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from flipflow.errors import FlipflowError

PIXEL_LEVELS = 256
TOTENSOR_SCALE = "1/255"  # torchvision's ToTensor: pixel / 255, the convention of BNN-PYNQ's training scripts
INPUT_SCALE_KEY = "flipflow_input_scale"  # metadata of a graph that states its own input scale (export-qonnx)


class QonnxError(FlipflowError, ValueError):
    """A file that is not a QONNX graph flipflow can read, or an option that does not fit it."""


def load(path: str | os.PathLike, batch: int = 1):
    """Read an ONNX/QONNX file and clean it up (qonnx's cleanup: constant folding except
    quantisers, shape inference, unique names) for ``batch`` images per run."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    if not path.is_file():
        raise QonnxError(f"{path}: no such ONNX file", fix="give a .onnx file exported by brevitas.export.export_qonnx or FINN")
    try:
        model = ModelWrapper(str(path))
    except Exception as e:  # protobuf raises several kinds on a foreign or truncated file
        raise QonnxError(f"{path}: not a readable ONNX model ({type(e).__name__})", fix="give a .onnx file") from e
    model = cleanup_model(model, override_inpsize=batch if batch != 1 else None)
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise QonnxError(f"{path}: the graph has {len(model.graph.input)} inputs and {len(model.graph.output)} outputs",
                         fix="give a classifier with one image input and one score output")
    return model


def opset(model) -> int:
    return next((o.version for o in model.model.opset_import if o.domain in ("", "ai.onnx")), 11)


def run_node(node: onnx.NodeProto, values: dict[str, np.ndarray], opset_version: int) -> list[np.ndarray]:
    """The outputs of one node on the given input arrays (any batch size)."""
    from qonnx.core.execute_custom_node import execute_custom_node
    from qonnx.custom_op.registry import is_custom_op

    if is_custom_op(node.domain, node.op_type):
        context = {**values, **{o: None for o in node.output}}
        execute_custom_node(node, context, None, opset_version)
        return [np.asarray(context[o], np.float32) for o in node.output]
    import onnxruntime as rt
    from qonnx.util.basic import qonnx_make_model

    names = [n for n in node.input if n]
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(values[n].dtype), None) for n in names]
    outputs = [helper.make_tensor_value_info(n, inputs[0].type.tensor_type.elem_type, None) for n in node.output]
    model = qonnx_make_model(helper.make_graph([node], "single_node", inputs, outputs))
    model.opset_import[0].version = opset_version
    session = rt.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {n: values[n] for n in names})


def stated_input_scale(model) -> str | None:
    """The input scale a graph states in its metadata (flipflow's export-qonnx does)."""
    return next((p.value for p in model.model.metadata_props if p.key == INPUT_SCALE_KEY), None)


def parse_input_scale(text: str) -> Fraction:
    """``--input-scale``: the graph input is pixel x this (a fraction such as 1/255, or a number)."""
    try:
        scale = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise QonnxError(f"--input-scale {text!r} is not a number", fix="give a fraction such as 1/255 or a number such as 0.5") from None
    if scale <= 0:
        raise QonnxError(f"--input-scale {text} must be positive")
    return scale


def pixels_to_input(pixels: np.ndarray, scale: Fraction) -> np.ndarray:
    """uint8 pixels -> the graph's float32 input values. pixel / D is divided in float32
    (what ToTensor does for 1/255), any other scale is rounded once to float32."""
    p = np.asarray(pixels)
    if scale.numerator == 1:
        return p.astype(np.float32) / np.float32(scale.denominator)
    return (p.astype(np.float64) * float(scale)).astype(np.float32)


def images_to_input(images: np.ndarray, scale: Fraction) -> np.ndarray:
    """(N, H, W, C) uint8 images -> the graph input (N, C, H, W) float32."""
    return np.ascontiguousarray(pixels_to_input(images, scale).transpose(0, 3, 1, 2))


def execute(model, images: np.ndarray, scale: Fraction) -> np.ndarray:
    """qonnx's executor on a batch of images (the model loaded for that batch size):
    the graph output as float32 (N, outputs)."""
    from qonnx.core.onnx_exec import execute_onnx

    inp, out = model.graph.input[0].name, model.graph.output[0].name
    result = execute_onnx(model, {inp: images_to_input(images, scale)})[out]
    return np.asarray(result, np.float32).reshape(len(images), -1)
