"""Device budgets for the folding search: LUT, FF, BRAM36 and DSP of a part,
and the clock the accelerator is expected to close at.

Figures are the vendor data-sheet totals of the programmable logic (Zynq-7000
DS190, Zynq UltraScale+ DS891). BRAM is counted in 36 Kb blocks; a RAMB18
half counts 0.5, as Vivado's utilisation report does. UltraRAM is not used
by the generator and is not listed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from flipflow.errors import FlipflowError


class DeviceError(FlipflowError, ValueError):
    """Unknown device name or an impossible budget; the message lists the choices."""


RESOURCES = ("LUT", "FF", "BRAM36", "DSP")


@dataclass(frozen=True)
class Device:
    name: str
    part: str
    lut: int
    ff: int
    bram36: float
    dsp: int
    mhz: float = 100.0

    def budget(self) -> dict[str, float]:
        return {"LUT": self.lut, "FF": self.ff, "BRAM36": self.bram36, "DSP": self.dsp}

    def to_dict(self) -> dict:
        return asdict(self)


_XC7Z020 = dict(part="xc7z020clg400-1", lut=53_200, ff=106_400, bram36=140, dsp=220, mhz=100.0)

DEVICES: dict[str, Device] = {
    "pynq-z2": Device("pynq-z2", **_XC7Z020),
    "pynq-z1": Device("pynq-z1", **_XC7Z020),
    "xc7z020": Device("xc7z020", **_XC7Z020),
    "xc7z010": Device("xc7z010", part="xc7z010clg400-1", lut=17_600, ff=35_200, bram36=60, dsp=80, mhz=100.0),
    "zc706": Device("zc706", part="xc7z045ffg900-2", lut=218_600, ff=437_200, bram36=545, dsp=900, mhz=100.0),
    "ultra96": Device("ultra96", part="xczu3eg-sbva484-1", lut=70_560, ff=141_120, bram36=216, dsp=360, mhz=100.0),
    "kv260": Device("kv260", part="xck26-sfvc784-2LV-c", lut=117_120, ff=234_240, bram36=144, dsp=1_248, mhz=100.0),
    "zcu104": Device("zcu104", part="xczu7ev-ffvc1156-2", lut=230_400, ff=460_800, bram36=312, dsp=1_728, mhz=100.0),
    "zcu102": Device("zcu102", part="xczu9eg-ffvb1156-2", lut=274_080, ff=548_160, bram36=912, dsp=2_520, mhz=100.0),
}
DEFAULT_DEVICE = "pynq-z2"


def get(name: str = DEFAULT_DEVICE) -> Device:
    key = name.strip().lower().replace("_", "-")
    if key not in DEVICES:
        raise DeviceError(f"unknown device {name!r}", fix=f"choose one of the known devices: {', '.join(DEVICES)} (or give --lut/--ff/--bram/--dsp numbers)")
    return DEVICES[key]


def custom(
    base: str | Device = DEFAULT_DEVICE,
    lut: int | None = None,
    ff: int | None = None,
    bram36: float | None = None,
    dsp: int | None = None,
    mhz: float | None = None,
) -> Device:
    """A named device with any figure overridden (a part the table does not list)."""
    dev = get(base) if isinstance(base, str) else base
    overrides = {k: v for k, v in dict(lut=lut, ff=ff, bram36=bram36, dsp=dsp, mhz=mhz).items() if v is not None}
    for k, v in overrides.items():
        if v < 0 or (k == "mhz" and v == 0):
            raise DeviceError(f"--{k} must be positive, got {v}")
    return replace(dev, name=dev.name + "+custom", **overrides) if overrides else dev


# -- what the accelerator may use: the device less the board shell, under a ceiling --------------

@dataclass(frozen=True)
class Shell:
    """The static logic a board design puts around the accelerator."""

    name: str
    lut: int
    ff: int
    bram36: float
    dsp: int
    source: str

    def resources(self) -> dict[str, float]:
        return {"LUT": self.lut, "FF": self.ff, "BRAM36": self.bram36, "DSP": self.dsp}

    def to_dict(self) -> dict:
        return asdict(self)


# build_bitstream.tcl's block design around the accelerator: AXI DMA v7.1 in simple mode
# (no scatter-gather, 32-bit memory side, 8-bit MM2S and 32-bit S2MM streams, bursts of 16),
# an AXI interconnect from GP0 to the two AXI-Lite slaves, one from the DMA's two masters to
# HP0, and a processor reset. The PS7 itself is hard logic.
PYNQ_DMA_SHELL = Shell(
    "pynq-dma", lut=3_600, ff=5_200, bram36=2, dsp=0,
    source="flipflow's estimate for build_bitstream.tcl's shell (AXI DMA simple mode about 1,700 LUT / 2,600 FF "
           "/ 2 BRAM36, two AXI interconnects about 1,900 LUT / 2,600 FF, reset logic); not measured here (no "
           "Vivado): after a first build, read `report_utilization -hierarchical` and pass --shell-lut/--shell-ff/"
           "--shell-bram",
)
NO_SHELL = Shell("none", 0, 0, 0, 0, "no board shell reserved")
SHELLS = {"pynq-dma": PYNQ_DMA_SHELL, "none": NO_SHELL}
CEILING = 0.85  # share of the device the design plus shell may use: the rest is left to placement and routing


@dataclass(frozen=True)
class ModelReserve:
    """Room kept for the cost model's error, so that a design the model fits under the ceiling
    still fits when synthesis counts more than the model (BRAM36 and DSP are counted exactly)."""

    lut: float
    ff: float
    source: str

    def resources(self) -> dict[str, float]:
        return {"LUT": self.lut, "FF": self.ff, "BRAM36": 0.0, "DSP": 0.0}

    def to_dict(self) -> dict:
        return asdict(self)


# The cost model's largest whole-design underestimate over its calibration set
# (generator/cost_calibration.json, 16 designs; tests/test_cost_model.py recomputes it and
# fails when a refit makes it larger).
MODEL_RESERVE = ModelReserve(
    lut=1_185, ff=1_014,
    source="the cost model's largest whole-design underestimate of yosys over its 16 calibration designs "
           "(LUT: cal7, 7,377 counted vs 6,193 modelled; FF: nin_pruned, 38,101 vs 37,087)",
)
NO_RESERVE = ModelReserve(0, 0, "no reserve for the cost model's error")


@dataclass(frozen=True)
class Budget:
    """The resources a design's cost model may use: ``ceiling`` x the device, less the shell
    and less the reserve for the model's error."""

    device: Device
    shell: Shell = PYNQ_DMA_SHELL
    ceiling: float = CEILING
    reserve: ModelReserve = MODEL_RESERVE

    def limits(self) -> dict[str, float]:
        total = self.device.budget()
        shell = self.shell.resources()
        reserve = self.reserve.resources()
        return {k: max(0.0, math.floor(2 * (total[k] * self.ceiling - shell[k] - reserve[k])) / 2)
                for k in RESOURCES}

    def as_device(self) -> Device:
        """The budget as a Device, for the folding search."""
        limits = self.limits()
        reserved = " and the model reserve" if self.reserve.lut or self.reserve.ff else ""
        return replace(self.device, name=f"{self.device.name} ({self.ceiling:.0%}, less {self.shell.name} shell{reserved})",
                       lut=int(limits["LUT"]), ff=int(limits["FF"]), bram36=limits["BRAM36"], dsp=int(limits["DSP"]))

    def utilisation(self, design: dict[str, float]) -> float:
        """The largest share of the device that design plus shell use, over LUT, FF, BRAM36 and DSP."""
        total = self.device.budget()
        shell = self.shell.resources()
        return max((design[k] + shell[k]) / total[k] for k in RESOURCES if total[k])

    def to_dict(self) -> dict:
        return {"device": self.device.to_dict(), "ceiling": self.ceiling, "shell": self.shell.to_dict(),
                "model_reserve": self.reserve.to_dict(), "limits": self.limits()}


def budget(device: str | Device = DEFAULT_DEVICE, ceiling: float = CEILING, shell: str | Shell = "pynq-dma",
           shell_lut: int | None = None, shell_ff: int | None = None, shell_bram36: float | None = None,
           model_reserve: bool = True) -> Budget:
    """The default budget of `flipflow hls`, `fold` and `bench`: the device's resources under a
    utilisation ceiling, less the board shell (figures overridable) and the cost model's reserve."""
    dev = get(device) if isinstance(device, str) else device
    if not 0 < ceiling <= 1:
        raise DeviceError(f"--ceiling must be in (0, 1], got {ceiling}", fix="e.g. 0.85 leaves 15% for routing")
    if isinstance(shell, str):
        if shell not in SHELLS:
            raise DeviceError(f"unknown shell {shell!r}", fix=f"choose one of {', '.join(SHELLS)}")
        shell = SHELLS[shell]
    overrides = {k: v for k, v in dict(lut=shell_lut, ff=shell_ff, bram36=shell_bram36).items() if v is not None}
    if any(v < 0 for v in overrides.values()):
        raise DeviceError(f"shell figures must be >= 0, got {overrides}")
    if overrides:
        shell = replace(shell, name=f"{shell.name}+custom", source="given on the command line", **overrides)
    return Budget(dev, shell, ceiling, MODEL_RESERVE if model_reserve else NO_RESERVE)
