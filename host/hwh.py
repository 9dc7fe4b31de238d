"""Read a Vivado hardware handoff (.hwh) without pynq, to check a bitstream
before it is loaded: does the block design hold the flipflow accelerator and
an AXI DMA, with the stream widths and the names the metadata expects?

A .hwh is XML; every IP cell is a ``MODULE`` element with INSTANCE, MODTYPE
and VLNV attributes and ``PARAMETER`` children (NAME, VALUE).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from flipflow.errors import FlipflowError
from flipflow.host.metadata import Metadata


class BitstreamError(FlipflowError, ValueError):
    """The bitstream / hardware handoff does not match the accelerator metadata."""


@dataclass
class Cell:
    instance: str
    modtype: str
    vlnv: str
    parameters: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        return self.parameters.get(name.upper())


@dataclass
class HardwareInfo:
    accelerator: Cell
    dma: Cell

    @property
    def dma_max_transfer_bytes(self) -> int | None:
        """Largest single DMA transfer: the buffer length register is C_SG_LENGTH_WIDTH bits."""
        width = self.dma.param("C_SG_LENGTH_WIDTH")
        return (1 << int(width)) - 1 if width else None


def read_cells(path: Path) -> list[Cell]:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise BitstreamError(f"{path}: not a readable hardware handoff file ({e}); re-export it from Vivado with the bitstream") from e
    cells = []
    for m in root.iter("MODULE"):
        params = {p.get("NAME", "").upper(): p.get("VALUE", "") for p in m.iter("PARAMETER")}
        cells.append(Cell(m.get("INSTANCE", ""), m.get("MODTYPE", ""), m.get("VLNV", ""), params))
    return cells


def check_hwh(path: Path, meta: Metadata) -> HardwareInfo:
    """Find the accelerator and DMA in ``path`` and check them against ``meta``."""
    cells = read_cells(path)
    fix = (
        f"build the bitstream from the Vivado Tcl that `make hls MODEL={meta.model}` writes, and copy the .bit and "
        f".hwh of the same run next to {meta.bitstream!r}"
    )
    accs = [c for c in cells if c.modtype == meta.top or f":{meta.top}:" in c.vlnv]
    dmas = [c for c in cells if c.modtype == "axi_dma"]
    if not accs:
        found = ", ".join(sorted(f"{c.instance} ({c.modtype})" for c in cells)) or "no IP cells"
        raise BitstreamError(f"{path}: the block design has no {meta.top} accelerator (found: {found}); this bitstream was built for another design: {fix}")
    if not dmas:
        raise BitstreamError(f"{path}: the block design has no AXI DMA (xilinx.com:ip:axi_dma) to stream images to {meta.top}: {fix}")
    acc = _pick(accs, meta.hardware["accelerator"])
    dma = _pick(dmas, meta.hardware["dma"])
    for param, want, what in (
        ("C_M_AXIS_MM2S_TDATA_WIDTH", meta.input.bits, "MM2S (image) stream"),
        ("C_S_AXIS_S2MM_TDATA_WIDTH", meta.output.bits, "S2MM (result) stream"),
    ):
        got = dma.param(param)
        if got is not None and int(got) != want:
            raise BitstreamError(f"{path}: DMA {dma.instance} {what} is {got} bits wide but the accelerator streams {want}-bit words: {fix}")
    if dma.param("C_INCLUDE_SG") == "1":
        raise BitstreamError(f"{path}: DMA {dma.instance} is in scatter-gather mode; the flipflow design uses simple mode (c_include_sg 0): {fix}")
    return HardwareInfo(acc, dma)


def _pick(cells: list[Cell], wanted: str) -> Cell:
    for c in cells:
        if c.instance == wanted:
            return c
    return cells[0]
