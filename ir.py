"""The flipflow IR: one versioned on-disk description of a quantized BNN.

The IR is the only thing that crosses from training to hardware. A file is a
numpy ``.npz`` archive holding one JSON header (``__ir__``) and the layer
arrays (``<layer>.weights``, ``<layer>.thresholds``).

Conventions (docs/DESIGN.md; each kind's own in kinds.py):

* Activations are channel-last (H, W, C); a binary value is one bit,
  1 = +1, 0 = -1. Kernels are stored [out_ch, ky, kx, in_ch] so that a
  window flattens in the order the line buffer emits it (channel fastest).
* Binary weights are packed LSB-first per output row on disk and unpacked
  to {0, 1} uint8 in memory.
* A thresholded layer outputs bit = (acc >= T) per channel. For binary
  layers acc = P = popcount(XNOR(w, x)) in [0, K]; for the input layer
  acc = sum(w * pixel). Channels whose BatchNorm scale is negative already
  have their weight row inverted (binary) or negated (fixed point).
* Binary layers pad with -1 (bit 0); the input layer pads with pixel 0.
* A sparse binary layer (sparse_conv, sparse_dense) has 0/1 weights b with N:M
  structure (``nm``) and acc = popcount(x AND b): a kept weight adds its input bit;
  its bit is (acc >= T) XOR ``invert`` (per channel, absent = 0). A ``centred``
  sparse layer (the {alpha, beta} domain, weights b - N/M) has acc = M x popcount(x AND b)
  - N x popcount(x), the second count over the whole window (docs/DESIGN.md).
* An input layer may carry ``pixel_codes``: 256 uint8 values, the value its
  datapath sees for each 8-bit pixel (an imported model's input quantiser,
  docs/DESIGN.md "Importing QONNX"); without it the value is the pixel itself.
* A dense layer after a spatial layer reads the (H, W, C) tensor flattened
  in that order.
"""

from __future__ import annotations

import io
import json
import os
import weakref
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

from flipflow import atomic, kinds
from flipflow.errors import FlipflowError

FILENAME = "model.ir.npz"  # the IR's name in a zoo entry and in every build folder
FORMAT = "flipflow-ir"
VERSION = 2  # 2: a sparse layer may be centred; a file without one is written as version 1
HEADER_KEY = "__ir__"

# Kinds a network may contain, by the role that fixes where they may stand (kinds.py).
INPUT_KINDS = kinds.names("input")
BINARY_KINDS = kinds.names("binary")
OUTPUT_KINDS = kinds.names("output")
REDUCE_KINDS = kinds.names("reduce")
LAYER_KINDS = tuple(kinds.KINDS)


class IRError(FlipflowError, ValueError):
    """An IR file or object is malformed; the message names the field."""


Shape = tuple[int, int, int]  # (H, W, C)
T = TypeVar("T")

_REMEMBERED: dict[int, dict[Any, Any]] = {}


def remembered(layer: "Layer", key: Any, compute: Callable[[], T]) -> T:
    """``compute()`` once per layer object and key (the folding search asks the same of a
    layer thousands of times). Layers are unhashable, so entries are kept by id and
    dropped when the layer is."""
    entry = _REMEMBERED.get(id(layer))
    if entry is None:
        entry = _REMEMBERED[id(layer)] = {}
        weakref.finalize(layer, _REMEMBERED.pop, id(layer), None)
    if key not in entry:
        entry[key] = compute()
    return entry[key]


@dataclass
class Layer:
    """One layer of the network.

    ``kind`` is one of LAYER_KINDS. Spatial kinds use kernel/stride/pad;
    dense kinds treat their input as a flat vector (kernel = 1 on a 1x1 map).
    ``weights`` is [out_ch, k, k, in_ch] for convolutions and
    [out_ch, in_features] for dense layers: uint8 {0,1} for binary layers,
    int8 for the fixed-point input and output layers. ``thresholds`` is an
    int64 vector [out_ch] for thresholded kinds.
    """

    name: str
    kind: str
    in_shape: Shape
    out_shape: Shape
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    weight_bits: int = 1
    weight_scale: float = 1.0  # fixed-point layers: real weight = scale * int
    weights: np.ndarray | None = field(default=None, repr=False)
    thresholds: np.ndarray | None = field(default=None, repr=False)
    # bit-plane input kinds: the kept bits of each 8-bit pixel channel, most significant first
    planes: tuple[int, ...] = ()
    # sparse kinds: (N, M), every block of M consecutive weights of a row (window order) has N ones
    nm: tuple[int, int] | None = None
    # sparse kinds: uint8[out_ch], 1 where the channel's bit is inverted, (acc >= T) XOR 1 (a negative
    # BatchNorm scale: a 0/1 row cannot be inverted as a +-1 row is)
    invert: np.ndarray | None = field(default=None, repr=False)
    # sparse kinds: weights b - N/M instead of b (SBNN's {alpha, beta} domain with alpha = -N/M,
    # beta = 1 - N/M), acc = M x popcount(x AND b) - N x popcount(x) (kinds._SparseDatapath)
    centred: bool = False
    pixel_codes: np.ndarray | None = field(default=None, repr=False)  # input layers: uint8[256], pixel -> value

    @property
    def in_ch(self) -> int:
        return self.in_shape[2]

    @property
    def out_ch(self) -> int:
        return self.out_shape[2]

    @property
    def fan_in(self) -> int:
        """Terms per dot product (K): kernel window x input channels, or the whole input (dense)."""
        return kinds.of(self).fan_in(self)

    @property
    def has_weights(self) -> bool:
        return kinds.of(self).has_weights

    @property
    def is_thresholded(self) -> bool:
        return kinds.of(self).thresholded

    @property
    def macs(self) -> int:
        """Multiply-accumulates per image (binary ones for binary kinds)."""
        kind = kinds.of(self)
        return kind.macs(self) if isinstance(kind, kinds.MatrixKind) else 0

    def header(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("weights")
        d.pop("thresholds")
        d.pop("invert")
        d.pop("pixel_codes")
        d["in_shape"] = list(self.in_shape)
        d["out_shape"] = list(self.out_shape)
        d["planes"] = list(self.planes)
        d["nm"] = list(self.nm) if self.nm is not None else None
        if not self.centred:
            d.pop("centred")  # absent = False: headers of other layers stay as version 1 wrote them
        return d


@dataclass
class Network:
    """A whole quantized network plus its dataset and provenance."""

    name: str
    input_shape: Shape  # (H, W, C) of uint8 pixels
    classes: list[str]
    dataset: str
    layers: list[Layer]
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"network {self.name!r} has no layer {name!r}")

    @property
    def binary_ops(self) -> int:
        """Binary MACs per image (XNOR-popcount terms of the binary layers)."""
        return sum(l.macs for l in self.layers if kinds.of(l).counts_binary_ops)

    def validate(self) -> None:
        validate(self)

    # -- disk ------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename), so a crash never leaves half a file."""
        self.validate()
        path = Path(path)
        header = {
            "format": FORMAT,
            "version": 2 if any(l.centred for l in self.layers) else 1,  # the oldest reader that computes it right
            "name": self.name,
            "input_shape": list(self.input_shape),
            "classes": list(self.classes),
            "dataset": self.dataset,
            "provenance": self.provenance,
            "metrics": self.metrics,
            "layers": [l.header() for l in self.layers],
        }
        arrays: dict[str, np.ndarray] = {HEADER_KEY: np.frombuffer(json.dumps(header).encode(), np.uint8)}
        for l in self.layers:
            if l.weights is not None:
                if l.weight_bits == 1:
                    rows = l.weights.reshape(l.out_ch, -1)
                    arrays[f"{l.name}.weights"] = np.packbits(rows, axis=1, bitorder="little")
                else:
                    arrays[f"{l.name}.weights"] = l.weights.astype(np.int8)
            if l.thresholds is not None:
                arrays[f"{l.name}.thresholds"] = l.thresholds.astype(np.int64)
            if l.invert is not None:
                arrays[f"{l.name}.invert"] = l.invert.astype(np.uint8)
            if l.pixel_codes is not None:
                arrays[f"{l.name}.pixel_codes"] = l.pixel_codes.astype(np.uint8)
        with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        return path


def _fail(where: str, msg: str) -> None:
    raise IRError(f"{where}: {msg}")


def expected_out_shape(layer: Layer) -> Shape:
    """The output shape a layer must have, given its input shape and kind."""
    return kinds.of(layer).out_shape(layer)


def validate(net: Network) -> None:
    """Check a network for consistency; raise IRError naming the bad field."""
    if not net.layers:
        _fail("layers", "the network has no layers")
    if len(net.input_shape) != 3 or min(net.input_shape) < 1:
        _fail("input_shape", f"must be (H, W, C) of positive ints, got {net.input_shape}")
    if not net.classes:
        _fail("classes", "no class names")
    names = [l.name for l in net.layers]
    if len(set(names)) != len(names):
        _fail("layers", f"duplicate layer names in {names}")
    first, last = net.layers[0], net.layers[-1]
    if first.kind not in INPUT_KINDS:
        _fail(f"layers[0] ({first.name}).kind", f"the first layer must be one of {INPUT_KINDS}, got {first.kind!r}")
    shape = tuple(net.input_shape)
    seen_output = False
    for i, l in enumerate(net.layers):
        where = f"layers[{i}] ({l.name})"
        if l.kind not in LAYER_KINDS:
            _fail(f"{where}.kind", f"unknown layer kind {l.kind!r}; supported: {', '.join(LAYER_KINDS)}")
        if i > 0 and l.kind in INPUT_KINDS:
            _fail(f"{where}.kind", f"{l.kind} may only be the first layer")
        if seen_output and l.kind not in REDUCE_KINDS:
            _fail(f"{where}.kind", f"{l.kind} cannot follow the output layer")
        seen_output = seen_output or l.kind in OUTPUT_KINDS
        if tuple(l.in_shape) != shape:
            _fail(f"{where}.in_shape", f"{tuple(l.in_shape)} does not match the previous output {shape}")
        for attr in ("kernel", "stride"):
            if int(getattr(l, attr)) < 1:
                _fail(f"{where}.{attr}", f"must be >= 1, got {getattr(l, attr)}")
        if l.pad < 0 or (l.kernel > 1 and l.pad >= l.kernel):
            _fail(f"{where}.pad", f"must be in [0, kernel), got {l.pad}")
        if kinds.of(l).spatial:
            if l.kernel > l.in_shape[0] + 2 * l.pad or l.kernel > l.in_shape[1] + 2 * l.pad:
                _fail(f"{where}.kernel", f"{l.kernel} is larger than the padded input {l.in_shape}")
        _validate_planes(l, where)
        _validate_nm(l, where)
        if tuple(l.out_shape) != expected_out_shape(l):
            _fail(f"{where}.out_shape", f"{tuple(l.out_shape)} but kind/kernel/stride/pad give {expected_out_shape(l)}")
        _validate_arrays(l, where)
        shape = tuple(l.out_shape)
    if last.kind not in OUTPUT_KINDS + REDUCE_KINDS:
        _fail(f"layers[-1] ({last.name}).kind", f"the network must end in an output layer, got {last.kind!r}")
    if not seen_output:
        _fail("layers", f"no output layer ({' or '.join(OUTPUT_KINDS)})")
    if shape != (1, 1, len(net.classes)):
        _fail("classes", f"{len(net.classes)} class names but the network outputs {shape}")


def _validate_planes(l: Layer, where: str) -> None:
    if not kinds.of(l).bit_planes:
        if l.planes:
            _fail(f"{where}.planes", f"{l.kind} takes no bit planes (only {', '.join(k for k, v in kinds.KINDS.items() if v.bit_planes)})")
        return
    planes = list(l.planes)
    if not planes or any(not isinstance(b, int) or not 0 <= b < kinds.PIXEL_BITS for b in planes) \
            or planes != sorted(set(planes), reverse=True):
        _fail(f"{where}.planes", f"must be distinct bit indices in 0..{kinds.PIXEL_BITS - 1}, most significant first, "
                                 f"got {planes}")


NM_MAX_M = 64  # the largest block: a 64:1 input mux per lane


def nm_problem(n: int, m: int) -> str | None:
    """Why (N, M) is not an N:M structure the hardware takes, or None."""
    if 2 <= m <= NM_MAX_M and m & (m - 1) == 0 and 1 <= n <= m:
        return None
    return f"{n}:{m} needs M a power of two in 2..{NM_MAX_M} and 1 <= N <= M"


def _validate_nm(l: Layer, where: str) -> None:
    if not kinds.of(l).sparse:
        for name in ("nm", "invert", "centred"):
            if getattr(l, name) is not None and getattr(l, name) is not False:
                _fail(f"{where}.{name}", f"{l.kind} takes no {name} (only {', '.join(k for k, v in kinds.KINDS.items() if v.sparse)})")
        return
    if not isinstance(l.centred, bool):
        _fail(f"{where}.centred", f"must be true or false, got {l.centred!r}")
    if l.invert is not None and (l.invert.shape != (l.out_ch,) or l.invert.dtype != np.uint8 or l.invert.max(initial=0) > 1):
        _fail(f"{where}.invert", f"must be uint8 bits of shape ({l.out_ch},), got {l.invert.dtype}{l.invert.shape}")
    nm = l.nm
    if not (isinstance(nm, tuple) and len(nm) == 2 and all(isinstance(v, int) for v in nm)):
        _fail(f"{where}.nm", f"must be a pair of ints (N, M), got {nm!r}")
    problem = nm_problem(*nm)
    if problem:
        _fail(f"{where}.nm", problem)


def _validate_nm_weights(l: Layer, where: str) -> None:
    """Every full block of M weights has exactly N ones, a last partial block at most min(N, its length)."""
    n, m = l.nm
    k = l.fan_in
    counts = kinds.nm_blocks(l.weights.reshape(l.out_ch, -1), m).sum(-1, dtype=np.int64)
    allowed = np.full(counts.shape[1], n)
    bad = counts != allowed
    if k % m:  # the last block holds k % m weights
        bad[:, -1] = counts[:, -1] > min(n, k % m)
    if bad.any():
        row, block = (int(v) for v in np.argwhere(bad)[0])
        _fail(f"{where}.weights", f"not {n}:{m} sparse: row {row}, block {block} (elements {block * m}.."
                                  f"{min(k, block * m + m) - 1}) has {counts[row, block]} ones")


def _validate_arrays(l: Layer, where: str) -> None:
    if l.pixel_codes is not None:
        if l.kind not in INPUT_KINDS or kinds.of(l).lane_bits != kinds.PIXEL_BITS:
            _fail(f"{where}.pixel_codes", f"only an input layer reading 8-bit pixels maps them, not {l.kind}")
        if l.pixel_codes.shape != (1 << kinds.PIXEL_BITS,) or l.pixel_codes.dtype != np.uint8:
            _fail(f"{where}.pixel_codes", f"must be uint8 of shape (256,), got {l.pixel_codes.dtype}{l.pixel_codes.shape}")
    if not l.has_weights:
        if l.weights is not None or l.thresholds is not None:
            _fail(f"{where}.weights", f"{l.kind} carries no weights or thresholds")
        return
    kind = kinds.matrix(l)
    wshape = kind.weight_shape(l)
    if l.weights is None:
        _fail(f"{where}.weights", "missing")
    if tuple(l.weights.shape) != wshape:
        _fail(f"{where}.weights", f"shape {tuple(l.weights.shape)}, expected {wshape}")
    binary = kind.binary_weights
    if binary:
        if l.weight_bits != 1:
            _fail(f"{where}.weight_bits", f"binary layers have 1-bit weights, got {l.weight_bits}")
        if l.weights.dtype != np.uint8 or l.weights.max(initial=0) > 1:
            _fail(f"{where}.weights", "binary weights must be uint8 bits {0, 1}")
        if kind.sparse:
            _validate_nm_weights(l, where)
    else:
        if not 2 <= l.weight_bits <= 8:
            _fail(f"{where}.weight_bits", f"fixed-point weights must have 2..8 bits, got {l.weight_bits}")
        lo, hi = -(2 ** (l.weight_bits - 1)), 2 ** (l.weight_bits - 1) - 1
        if l.weights.dtype != np.int8 or l.weights.min(initial=0) < lo or l.weights.max(initial=0) > hi:
            _fail(f"{where}.weights", f"must be int8 within the {l.weight_bits}-bit range [{lo}, {hi}]")
        if not (np.isfinite(l.weight_scale) and l.weight_scale > 0):
            _fail(f"{where}.weight_scale", f"must be a positive finite number, got {l.weight_scale}")
    if l.is_thresholded:
        if l.thresholds is None:
            _fail(f"{where}.thresholds", "missing")
        if l.thresholds.shape != (l.out_ch,) or l.thresholds.dtype != np.int64:
            _fail(f"{where}.thresholds", f"must be int64 of shape ({l.out_ch},), got {l.thresholds.dtype}{l.thresholds.shape}")
        bounds = kind.threshold_bounds(l)
        if bounds and (l.thresholds.min() < bounds[0] or l.thresholds.max() > bounds[1]):
            lo, hi = bounds
            _fail(f"{where}.thresholds", f"{l.kind} thresholds must lie in [{lo}, {hi}]")
    elif l.thresholds is not None:
        _fail(f"{where}.thresholds", f"{l.kind} has no thresholds")


def load(path: str | os.PathLike) -> Network:
    """Read and validate an IR file. Errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise IRError(f"{path}: no such IR file", fix="give a zoo model name or a model.ir.npz written by `flipflow train`")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise IRError(f"{path}: not a readable IR archive (truncated or corrupt?)",
                      fix="give a model.ir.npz written by flipflow, or restore a copy") from e
    try:
        return from_arrays(arrays)
    except IRError as e:
        raise IRError(f"{path}: {e}") from e


def loads(data: bytes) -> Network:
    """Read an IR from bytes (the content of a .npz file)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise IRError(f"not a readable IR archive (truncated or corrupt?): {e}") from e
    return from_arrays(arrays)


def _req(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        _fail(f"{where}{key}", "missing")
    return d[key]


def from_arrays(arrays: dict[str, np.ndarray]) -> Network:
    if HEADER_KEY not in arrays:
        _fail(HEADER_KEY, "missing header: this is not a flipflow IR file")
    try:
        header = json.loads(arrays[HEADER_KEY].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IRError(f"{HEADER_KEY}: header is not valid JSON: {e}") from e
    if header.get("format") != FORMAT:
        _fail("format", f"expected {FORMAT!r}, got {header.get('format')!r}")
    version = _req(header, "version", "")
    if not isinstance(version, int) or version > VERSION:
        _fail("version", f"file has version {version}, this flipflow reads up to {VERSION}: upgrade flipflow")
    layers = []
    for i, lh in enumerate(_req(header, "layers", "")):
        where = f"layers[{i}]."
        name = _req(lh, "name", where)
        kind = _req(lh, "kind", where)
        layer = Layer(
            name=name,
            kind=kind,
            in_shape=tuple(_req(lh, "in_shape", where)),
            out_shape=tuple(_req(lh, "out_shape", where)),
            kernel=int(lh.get("kernel", 1)),
            stride=int(lh.get("stride", 1)),
            pad=int(lh.get("pad", 0)),
            weight_bits=int(lh.get("weight_bits", 1)),
            weight_scale=float(lh.get("weight_scale", 1.0)),
            planes=tuple(lh.get("planes", ())),
            nm=tuple(lh["nm"]) if lh.get("nm") is not None else None,
            centred=lh.get("centred", False),
        )
        w = arrays.get(f"{name}.weights")
        if w is not None and layer.weight_bits == 1:
            w = _unpack_binary(w, layer, f"layers[{i}] ({name}).weights")
        layer.weights = w
        layer.thresholds = arrays.get(f"{name}.thresholds")
        layer.invert = arrays.get(f"{name}.invert")
        layer.pixel_codes = arrays.get(f"{name}.pixel_codes")
        layers.append(layer)
    net = Network(
        name=_req(header, "name", ""),
        input_shape=tuple(_req(header, "input_shape", "")),
        classes=list(_req(header, "classes", "")),
        dataset=_req(header, "dataset", ""),
        layers=layers,
        provenance=header.get("provenance", {}),
        metrics=header.get("metrics", {}),
    )
    validate(net)
    return net


def _unpack_binary(packed: np.ndarray, layer: Layer, where: str) -> np.ndarray:
    if layer.kind not in kinds.KINDS or not layer.has_weights:
        _fail(where, f"a {layer.kind} layer carries no weights")
    shape = kinds.matrix(layer).weight_shape(layer)
    k = int(np.prod(shape[1:]))
    if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape != (shape[0], (k + 7) // 8):
        _fail(where, f"packed array {packed.dtype}{packed.shape} does not hold {shape[0]} rows of {k} bits")
    return np.unpackbits(packed, axis=1, count=k, bitorder="little").reshape(shape)


ZOO = Path(__file__).resolve().parent / "zoo"


def resolve(model: str | os.PathLike) -> Path:
    """A zoo name (``nin_pruned``) or a path -> the IR file path."""
    path = Path(model)
    if path.is_file():
        return path
    candidate = ZOO / str(model) / FILENAME
    if candidate.is_file():
        return candidate
    names = sorted(p.parent.name for p in ZOO.glob(f"*/{FILENAME}"))
    raise IRError(f"{model}: neither an IR file nor a zoo model", fix=f"give an IR file path or one of the zoo models: {', '.join(names) or 'none'}")


def model_label(model: str | os.PathLike) -> str:
    """How reports name a model: the zoo name, the folder of a ``model.ir.npz``, else the file's
    name without ``.ir.npz`` (the Makefile's MODEL_NAME)."""
    path = resolve(model)
    return path.parent.name if path.name == FILENAME else path.name.removesuffix(".npz").removesuffix(".ir")


def load_model(model: str | os.PathLike) -> Network:
    """Load a zoo model by name, or an IR file by path."""
    return load(resolve(model))
