"""The accelerator metadata file (``accelerator.json``): what the host driver
must know about a built accelerator, written by the generator next to the
HLS project and shipped to the board with the bitstream.

It fixes the stream contract (host/stream.py) for one model: input
shape and beat width, output words per image, class names, the clock the
design was built for, the names of the DMA and accelerator cells in the
block design, and the model hash, so that the driver can refuse a bitstream
or metadata file that belongs to another model (a stale build).

Only numpy and the standard library are needed: this module runs on the
board. Format (version 1)::

    {
      "format": "flipflow-accelerator", "version": 1,
      "model": "nin_pruned", "dataset": "fashion_mnist",
      "model_hash": "<sha256 hex of the IR's hardware content>",
      "model_id": <first 32 bits of model_hash as an unsigned int>,
      "classes": ["T-shirt/top", ...],
      "top": "flipflow_top",
      "input":  {"port": "in_stream", "bits": 8, "dtype": "uint8", "order": "hwc",
                 "shape": [28, 28, 1], "words_per_image": 784},
      "output": {"port": "out_stream", "bits": 32, "n_classes": 10, "words_per_image": 11,
                 "layout": "int32 score per class, then class id with TLAST"},
      "clock_mhz": 100.0, "part": "xc7z020clg400-1", "board": "pynq-z2",
      "hardware": {"dma": "axi_dma", "accelerator": "flipflow_top_0", "control": "ap_ctrl_hs",
                   "count_register": 16},       # AXI-Lite offset of the image count, or null
      "bitstream": "flipflow.bit",
      "cycles_per_frame": 12345 | null,
      "folding": {"<layer>": {"pe": 4, "simd": 32}, ...} | null,
      "flipflow_version": "0.1.0"
    }
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flipflow import __version__, atomic
from flipflow.errors import FlipflowError
from flipflow.host import stream

FORMAT = "flipflow-accelerator"
VERSION = 1
FILENAME = "accelerator.json"
CONTROL_MODES = ("ap_ctrl_hs", "ap_ctrl_none")
# Cell names of the block design (hls_templates/hls/build_bitstream.tcl) and the
# accelerator's control: ap_ctrl_hs with the image count in an AXI-Lite register
# (the HLS top's `images` argument at 0x10), or ap_ctrl_none (free-running).
DEFAULT_HARDWARE: dict[str, Any] = {
    "dma": "axi_dma",
    "accelerator": f"{stream.TOP_NAME}_0",
    "control": "ap_ctrl_hs",
    "count_register": 0x10,
}


class MetadataError(FlipflowError, ValueError):
    """An accelerator.json is malformed or does not belong to the model in use."""


def model_hash(net: Any) -> str:
    """SHA-256 of everything in an IR that shapes the hardware.

    Covers the input shape, every layer's header (kind, shapes, kernel,
    stride, pad, weight bits) and its weight, threshold and pixel-code values. It leaves
    out the name, class names, provenance and metrics, which can change
    without changing the bitstream.
    """
    h = hashlib.sha256()
    h.update(json.dumps({"input_shape": list(net.input_shape)}, sort_keys=True).encode())
    for layer in net.layers:
        header = layer.header()
        header.pop("name")  # renaming a layer does not change the hardware
        header.pop("weight_scale")  # only rescales float logits, never the integer path
        h.update(json.dumps(header, sort_keys=True).encode())
        for arr in (layer.weights, layer.thresholds, layer.pixel_codes):
            if arr is not None:
                a = np.ascontiguousarray(arr)
                h.update(f"{a.dtype.str}{a.shape}".encode())
                h.update(a.tobytes())
    return h.hexdigest()


def model_id(hash_hex: str) -> int:
    """The 32-bit id a bitstream can expose in a register: the hash's first 8 hex digits."""
    return int(hash_hex[:8], 16)


@dataclass
class StreamIn:
    shape: tuple[int, int, int]
    port: str = stream.IN_PORT
    bits: int = stream.IN_BITS
    dtype: str = "uint8"
    order: str = "hwc"

    @property
    def words_per_image(self) -> int:
        return stream.words_per_image_in(self.shape)

    @property
    def bytes_per_image(self) -> int:
        return self.words_per_image * self.bits // 8


@dataclass
class StreamOut:
    n_classes: int
    port: str = stream.OUT_PORT
    bits: int = stream.OUT_BITS

    @property
    def words_per_image(self) -> int:
        return stream.words_per_image_out(self.n_classes)

    @property
    def bytes_per_image(self) -> int:
        return self.words_per_image * self.bits // 8


@dataclass
class Metadata:
    model: str
    dataset: str
    model_hash: str
    classes: list[str]
    input: StreamIn
    output: StreamOut
    clock_mhz: float = 100.0
    part: str = "xc7z020clg400-1"
    board: str = "pynq-z2"
    top: str = stream.TOP_NAME
    hardware: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_HARDWARE))
    bitstream: str = "flipflow.bit"
    cycles_per_frame: int | None = None
    folding: dict[str, dict[str, int]] | None = None
    flipflow_version: str = __version__

    @property
    def model_id(self) -> int:
        return model_id(self.model_hash)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.input.shape

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["input"] = {**d["input"], "shape": list(self.input.shape), "words_per_image": self.input.words_per_image}
        d["output"] = {
            **d["output"],
            "words_per_image": self.output.words_per_image,
            "layout": "int32 score per class, then class id with TLAST",
        }
        return {"format": FORMAT, "version": VERSION, **d, "model_id": self.model_id}

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename)."""
        path = Path(path)
        atomic.write_json(path, self.to_json(), indent=1)
        return path

    def check_network(self, net: Any, where: str = "metadata") -> None:
        """Raise MetadataError if this metadata was not built from ``net``."""
        actual = model_hash(net)
        if actual != self.model_hash:
            raise MetadataError(
                f"{where} was built for model {self.model!r} (hash {self.model_hash[:12]}) but the IR "
                f"{net.name!r} has hash {actual[:12]}: the build is stale. Rebuild it from this IR "
                f"(`make hls MODEL=...` then Vivado, then `make deploy MODEL=...`), or load the IR it was built from."
            )


def from_network(
    net: Any,
    *,
    clock_mhz: float = 100.0,
    cycles_per_frame: int | None = None,
    folding: dict[str, Any] | None = None,
    hardware: dict[str, Any] | None = None,
    bitstream: str = "flipflow.bit",
) -> Metadata:
    """Metadata for an accelerator generated from the IR network ``net``.

    ``folding`` accepts generator.folding's {layer: LayerConfig} or plain
    {layer: {"pe": .., "simd": ..}} dicts.
    """
    fold = None
    if folding is not None:
        fold = {name: (asdict(f) if not isinstance(f, dict) else dict(f)) for name, f in folding.items()}
    hw = {**DEFAULT_HARDWARE, **(hardware or {})}
    if hw["control"] not in CONTROL_MODES:
        raise MetadataError(f"hardware.control must be one of {CONTROL_MODES}, got {hw['control']!r}")
    return Metadata(
        model=net.name,
        dataset=net.dataset,
        model_hash=model_hash(net),
        classes=list(net.classes),
        input=StreamIn(tuple(int(v) for v in net.input_shape)),
        output=StreamOut(len(net.classes)),
        clock_mhz=float(clock_mhz),
        hardware=hw,
        bitstream=bitstream,
        cycles_per_frame=None if cycles_per_frame is None else int(cycles_per_frame),
        folding=fold,
    )


def write_metadata(net: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write ``accelerator.json`` for ``net`` (an ir.Network) to ``path``.

    ``path`` may be a folder (the file is then ``path/accelerator.json``).
    Keyword arguments are those of :func:`from_network` (clock_mhz,
    cycles_per_frame, folding, hardware, bitstream). Returns the file path.
    """
    path = Path(path)
    if path.suffix != ".json":
        path = path / FILENAME
    return from_network(net, **kwargs).save(path)


def _field(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise MetadataError(f"{where}: field {key!r} is missing")
    if not isinstance(d[key], kind):
        raise MetadataError(f"{where}: field {key!r} has the wrong type ({type(d[key]).__name__})")
    return d[key]


def from_json(d: dict[str, Any], where: str = "metadata") -> Metadata:
    if d.get("format") != FORMAT:
        raise MetadataError(f"{where}: not a flipflow accelerator metadata file (format {d.get('format')!r}, expected {FORMAT!r})")
    version = d.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise MetadataError(f"{where}: metadata version {version!r}; this driver reads up to {VERSION}: update the driver files on the board")
    inp = _field(d, "input", dict, where)
    out = _field(d, "output", dict, where)
    shape = tuple(_field(inp, "shape", list, f"{where}: input"))
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise MetadataError(f"{where}: input.shape must be [H, W, C] positive ints, got {list(shape)}")
    classes = _field(d, "classes", list, where)
    meta = Metadata(
        model=_field(d, "model", str, where),
        dataset=_field(d, "dataset", str, where),
        model_hash=_field(d, "model_hash", str, where),
        classes=[str(c) for c in classes],
        input=StreamIn(shape, port=inp.get("port", stream.IN_PORT), bits=int(inp.get("bits", 8)), dtype=inp.get("dtype", "uint8"), order=inp.get("order", "hwc")),
        output=StreamOut(int(_field(out, "n_classes", int, f"{where}: output")), port=out.get("port", stream.OUT_PORT), bits=int(out.get("bits", 32))),
        clock_mhz=float(d.get("clock_mhz", 100.0)),
        part=d.get("part", "xc7z020clg400-1"),
        board=d.get("board", "pynq-z2"),
        top=d.get("top", stream.TOP_NAME),
        hardware={**DEFAULT_HARDWARE, **d.get("hardware", {})},
        bitstream=d.get("bitstream", "flipflow.bit"),
        cycles_per_frame=d.get("cycles_per_frame"),
        folding=d.get("folding"),
        flipflow_version=d.get("flipflow_version", "unknown"),
    )
    # The stream contract this driver implements: refuse anything else.
    if (meta.input.bits, meta.input.dtype, meta.input.order) != (stream.IN_BITS, "uint8", "hwc"):
        raise MetadataError(f"{where}: input stream is {meta.input.bits}-bit {meta.input.dtype} {meta.input.order}; this driver sends 8-bit uint8 pixels in hwc order")
    if meta.output.bits != stream.OUT_BITS:
        raise MetadataError(f"{where}: output stream is {meta.output.bits}-bit; this driver reads 32-bit words")
    if meta.output.n_classes != len(meta.classes):
        raise MetadataError(f"{where}: output.n_classes is {meta.output.n_classes} but {len(meta.classes)} class names are listed")
    for key, expect in (("words_per_image", meta.input.words_per_image),):
        if key in inp and inp[key] != expect:
            raise MetadataError(f"{where}: input.words_per_image is {inp[key]} but shape {list(shape)} gives {expect}")
    if "words_per_image" in out and out["words_per_image"] != meta.output.words_per_image:
        raise MetadataError(f"{where}: output.words_per_image is {out['words_per_image']}, expected {meta.output.words_per_image}")
    count = meta.hardware.get("count_register")
    if count is not None and (not isinstance(count, int) or count < 0 or count % 4):
        raise MetadataError(f"{where}: hardware.count_register must be a word-aligned AXI-Lite offset or null, got {count!r}")
    if meta.hardware["control"] not in CONTROL_MODES:
        raise MetadataError(f"{where}: hardware.control must be one of {CONTROL_MODES}, got {meta.hardware['control']!r}")
    return meta


def load_metadata(path: str | os.PathLike) -> Metadata:
    """Read an accelerator.json (or the one inside a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise MetadataError(
            f"{path}: no accelerator metadata. It is written by `flipflow hls` (make hls MODEL=...) and "
            f"shipped by `make deploy`; point the driver at that build or deploy folder."
        )
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MetadataError(f"{path}: not valid JSON ({e}); regenerate it with `make hls`") from e
    if not isinstance(d, dict):
        raise MetadataError(f"{path}: expected a JSON object")
    return from_json(d, str(path))
